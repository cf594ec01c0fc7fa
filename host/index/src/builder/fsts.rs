//! Phase 3 of a build, "fst": writes one fst per shard of sorted titles,
//! all in parallel, mapping each title to its page number and keeping the
//! first page of a duplicated title (also across shard boundaries).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::thread;

use super::DuplicateTitle;
use super::sort::title_of;
use crate::IndexError;
use crate::format::{RECORD_LEN, Record, fst_file};

/// How many duplicate titles a [`BuildReport`](super::BuildReport) lists by name.
const DUPLICATE_EXAMPLES: usize = 10;

/// Writes one fst per run of sorted keys (shard `n` to `titles.N.fst` in
/// `dir`), all in parallel; returns the number of distinct titles, the
/// duplicates, and each fst's length.
pub(super) fn write_fsts(
    dir: &Path,
    parts: &[&mut [(u64, u32)]],
    strings_at: &[u64],
    strings: &[u8],
    records: &[u8],
) -> Result<(u64, Duplicates, Vec<u64>), IndexError> {
    // A shard's first keys may repeat the title that ends the shard
    // before it: tell each shard the last title before it, with the page
    // that keeps it.
    let mut before = Vec::with_capacity(parts.len());
    let mut last: Option<(&[u8], u32)> = None;
    for part in parts {
        before.push(last);
        if let Some(&(_, number)) = part.last() {
            let title = title_of(strings, strings_at, number);
            let first = part
                .iter()
                .map(|&(_, n)| n)
                .find(|&n| title_of(strings, strings_at, n) == title)
                .unwrap_or(number);
            last = match last {
                Some((t, kept)) if t == title => Some((t, kept)),
                _ => Some((title, first)),
            };
        }
    }
    let results: Vec<_> = thread::scope(|scope| {
        let handles: Vec<_> = parts
            .iter()
            .zip(before)
            .enumerate()
            .map(|(n, (part, before))| {
                scope.spawn(move || {
                    let path = dir.join(fst_file(n));
                    write_fst(&path, part, before, strings_at, strings, records)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut titles = 0;
    let mut dups = Duplicates::default();
    let mut lens = Vec::with_capacity(parts.len());
    for result in results {
        let (t, d, len) = result?;
        titles += t;
        dups.count += d.count;
        dups.examples.extend(d.examples);
        lens.push(len);
    }
    dups.examples.sort_by_key(|d| d.ignored_offset);
    dups.examples.truncate(DUPLICATE_EXAMPLES);
    Ok((titles, dups, lens))
}

/// Duplicate titles seen while writing the fst.
#[derive(Default)]
pub(super) struct Duplicates {
    /// Pages whose title an earlier page has.
    pub count: u64,
    /// The first [`DUPLICATE_EXAMPLES`] of them (per shard until merged).
    pub examples: Vec<DuplicateTitle>,
}

/// Writes one fst from sorted keys, skipping duplicates (including those of
/// `before`, the last title of the previous shard and its page); returns
/// the number of titles written, the duplicates, and the file's length.
fn write_fst(
    path: &Path,
    keys: &[(u64, u32)],
    before: Option<(&[u8], u32)>,
    strings_at: &[u64],
    strings: &[u8],
    records: &[u8],
) -> Result<(u64, Duplicates, u64), IndexError> {
    let io = |e: fst::Error| match e {
        fst::Error::Io(e) => IndexError::io("cannot write", path, e),
        other => IndexError::io("cannot write", path, std::io::Error::other(other)),
    };
    let file = File::create(path).map_err(|e| IndexError::io("cannot create", path, e))?;
    let mut builder = fst::MapBuilder::new(BufWriter::with_capacity(1 << 20, file)).map_err(io)?;
    let record = |n: u32| Record::decode(&records[n as usize * RECORD_LEN..][..RECORD_LEN]);
    let mut dups = Duplicates::default();
    let mut titles = 0u64;
    let mut prev = before;
    for &(_, number) in keys {
        let title = title_of(strings, strings_at, number);
        if let Some((prev_title, kept)) = prev
            && prev_title == title
        {
            dups.count += 1;
            if dups.examples.len() < DUPLICATE_EXAMPLES {
                let (k, d) = (record(kept), record(number));
                dups.examples.push(DuplicateTitle {
                    title: String::from_utf8_lossy(title).into_owned(),
                    kept_id: k.id,
                    kept_offset: k.first,
                    ignored_id: d.id,
                    ignored_offset: d.first,
                });
            }
            continue;
        }
        builder.insert(title, u64::from(number)).map_err(io)?;
        titles += 1;
        prev = Some((title, number));
    }
    let mut out = builder.into_inner().map_err(io)?;
    out.flush()
        .map_err(|e| IndexError::io("cannot write", path, e))?;
    let len = out
        .get_ref()
        .metadata()
        .map_err(|e| IndexError::io("cannot stat", path, e))?
        .len();
    Ok((titles, dups, len))
}
