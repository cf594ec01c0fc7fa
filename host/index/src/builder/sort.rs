//! Phase 2 of a build, "sort": orders the pages' sort keys by title (then
//! page number, so the first page of a duplicated title comes first) and
//! splits them into one run of consecutive titles per fst shard, sorted in
//! parallel.
//!
//! A key is the title's first 8 bytes as a number plus the page number;
//! titles are compared in full, read back from the mapped `strings.bin`,
//! only when those 8 bytes tie.

use std::thread;

/// Sorts `keys` by title and splits them into `shards` runs (some may be
/// empty) such that every title of a run orders before every title of the
/// next; `strings_at` and `strings` are the titles, as in [`title_of`].
pub(super) fn sort_titles<'k>(
    keys: &'k mut [(u64, u32)],
    shards: usize,
    strings_at: &[u64],
    strings: &[u8],
) -> Vec<&'k mut [(u64, u32)]> {
    let order = |a: &(u64, u32), b: &(u64, u32)| title_order(a, b, strings_at, strings);
    let mut parts = partition(keys, shards, &order);
    thread::scope(|scope| {
        for part in parts.iter_mut() {
            scope.spawn(|| part.sort_unstable_by(order));
        }
    });
    parts
}

/// The first 8 bytes of a title as a big-endian number, zero-padded, so
/// that comparing prefixes agrees with comparing titles whenever they differ.
pub(super) fn title_prefix(title: &[u8]) -> u64 {
    let mut p = [0u8; 8];
    let n = title.len().min(8);
    p[..n].copy_from_slice(&title[..n]);
    u64::from_be_bytes(p)
}

/// The title of page `number`.
pub(super) fn title_of<'s>(strings: &'s [u8], strings_at: &[u64], number: u32) -> &'s [u8] {
    let at = strings_at[number as usize];
    let off = (at >> 16) as usize;
    &strings[off..off + (at & 0xFFFF) as usize]
}

/// Orders sort keys by title, then by page number (so the first page of a
/// duplicated title comes first).
fn title_order(
    a: &(u64, u32),
    b: &(u64, u32),
    strings_at: &[u64],
    strings: &[u8],
) -> std::cmp::Ordering {
    a.0.cmp(&b.0)
        .then_with(|| {
            if a.0 & 0xFF == 0 {
                // The titles are at most 7 bytes and their prefixes are equal.
                std::cmp::Ordering::Equal
            } else {
                title_of(strings, strings_at, a.1).cmp(title_of(strings, strings_at, b.1))
            }
        })
        .then(a.1.cmp(&b.1))
}

/// Splits `keys` into `parts` slices such that every key of a slice orders
/// before every key of the next (quickselect, no full sort).
fn partition<'k>(
    keys: &'k mut [(u64, u32)],
    parts: usize,
    order: &(impl Fn(&(u64, u32), &(u64, u32)) -> std::cmp::Ordering + Sync),
) -> Vec<&'k mut [(u64, u32)]> {
    if parts <= 1 || keys.len() < 2 {
        let mut out = vec![keys];
        out.resize_with(parts.max(1), Default::default);
        return out;
    }
    let left_parts = parts / 2;
    let mid = keys.len() * left_parts / parts;
    keys.select_nth_unstable_by(mid, order);
    let (left, right) = keys.split_at_mut(mid);
    let mut out = partition(left, left_parts, order);
    out.extend(partition(right, parts - left_parts, order));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_order_like_titles() {
        let mut titles: Vec<&[u8]> = vec![
            b"ab",
            b"a",
            b"abcdefgh",
            b"abcdefgha",
            b"b",
            b"",
            "é".as_bytes(),
        ];
        let mut by_prefix = titles.clone();
        titles.sort();
        by_prefix.sort_by(|a, b| title_prefix(a).cmp(&title_prefix(b)).then(a.cmp(b)));
        assert_eq!(titles, by_prefix);
    }

    #[test]
    fn sorts_and_keeps_first_duplicate() {
        let strings = b"bananaapplebananacherry";
        let strings_at = [6, 6 << 16 | 5, 11 << 16 | 6, 17 << 16 | 6];
        let mut keys: Vec<(u64, u32)> = (0..4u32)
            .rev()
            .map(|n| (title_prefix(title_of(strings, &strings_at, n)), n))
            .collect();
        keys.sort_unstable_by(|a, b| title_order(a, b, &strings_at, strings));
        assert_eq!(keys.iter().map(|k| k.1).collect::<Vec<_>>(), [1, 0, 2, 3]);
    }

    #[test]
    fn partitions_are_ordered() {
        let order = |a: &(u64, u32), b: &(u64, u32)| a.cmp(b);
        for parts in 1..6 {
            for len in [0, 1, 2, 7, 100] {
                let mut keys: Vec<(u64, u32)> =
                    (0..len).map(|n| ((n * 7919 % 101) as u64, n)).collect();
                let mut split = partition(&mut keys, parts, &order);
                assert_eq!(split.len(), parts);
                for part in &mut split {
                    part.sort();
                }
                let joined: Vec<_> = split.iter().flat_map(|p| p.iter().copied()).collect();
                let mut sorted = joined.clone();
                sorted.sort();
                assert_eq!(joined, sorted, "parts {parts}, len {len}");
            }
        }
    }
}
