//! The on-disk format of a title index, and the dump fingerprint.
//!
//! An index is a directory of these files, all little-endian:
//!
//! | file | contents |
//! | --- | --- |
//! | `pages.bin` | a [`Header`], then one fixed-width [`Record`] per `<page>` in dump order (the record number is the page number), then an 8-byte footer: the [checksum](crate::checksum) of every byte before it |
//! | `strings.bin` | for each page, its title then its redirect target, UTF-8, back to back; records point into it |
//! | `titles.0.fst`, `titles.1.fst` … | `fst::Map`s from title bytes to page number (for duplicate titles, the first page), one per shard |
//!
//! The titles are split into shards of consecutive titles (one per build
//! thread) so that the fsts can be built in parallel: shard `n + 1` holds
//! only titles greater than every title of shard `n`, so a title belongs to
//! the last shard whose first title is not greater than it, and walking the
//! shards in order lists all titles in byte order.
//!
//! Every file is covered by a checksum: `pages.bin` by its footer, the
//! others by checksums in its header. `TitleIndex::open` verifies them all
//! before it trusts anything in them (it reads only the magic and the
//! version first), so a damaged file is refused, not served.
//!
//! `pages.bin` starts with:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `PCTITLE\0` |
//! | 8 | 4 | format version ([`VERSION`]) |
//! | 12 | 4 | record size in bytes ([`RECORD_LEN`]) |
//! | 16 | 8 | header length: where records start (a multiple of 8) |
//! | 24 | 8 | dump size in bytes |
//! | 32 | 8 | dump fingerprint ([`fingerprint`]) |
//! | 40 | 8 | dump modification time when indexed, Unix seconds (informational) |
//! | 48 | 8 | pages (records) |
//! | 56 | 8 | distinct titles (keys in all the fsts) |
//! | 64 | 8 | redirects |
//! | 72 | 8 | duplicate titles (pages whose title an earlier page has) |
//! | 80 | 8 | length of `strings.bin` |
//! | 88 | 8 | total length of the fst files |
//! | 96 | 4 | length of the dump path |
//! | 100 | 4 | number of namespaces |
//! | 104 | 8 | export schema version, e.g. `0.11`, NUL-padded |
//! | 112 | 8 | checksum of `strings.bin` |
//! | 120 | … | absolute dump path (UTF-8 where the OS allows); for each namespace: key `i32`, name length `u16`, name; the number of fst shards `u32`, then for each fst file its length `u64` and checksum `u64` |
//!
//! and a [`Record`] is 40 bytes:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | first byte of `<page>` |
//! | 8 | 8 | last byte of `</page>` (inclusive) |
//! | 16 | 8 | page id |
//! | 24 | 8 | offset of the title in `strings.bin`; the redirect target follows it |
//! | 32 | 2 | title length |
//! | 34 | 2 | redirect target length, `0xFFFF` when the page is not a redirect |
//! | 36 | 4 | namespace |
//!
//! Version 1 (before checksums) had no footer, no `strings.bin` checksum
//! (the dump path started at 112) and no fst checksums; this crate refuses
//! it and reads only its dump path, for the rebuild hint.

/// The first eight bytes of `pages.bin`.
pub(crate) const MAGIC: [u8; 8] = *b"PCTITLE\0";
/// The format version this crate writes and reads. Bump on any change.
pub(crate) const VERSION: u32 = 2;
/// The last version without checksums.
pub(crate) const VERSION_WITHOUT_CHECKSUMS: u32 = 1;
/// Size of one page record in bytes.
pub(crate) const RECORD_LEN: usize = 40;
/// Size of the fixed part of the header.
pub(crate) const FIXED_HEADER_LEN: usize = 120;
/// Size of the footer of `pages.bin`: the checksum of the bytes before it.
pub(crate) const FOOTER_LEN: usize = 8;
/// `redirect_len` value of pages that are not redirects.
pub(crate) const NO_REDIRECT: u16 = u16::MAX;
/// Longest title or redirect target a record can hold, in bytes
/// (MediaWiki allows 255).
pub(crate) const MAX_STRING_LEN: usize = NO_REDIRECT as usize - 1;

/// File names inside an index directory.
pub(crate) const PAGES_FILE: &str = "pages.bin";
/// See [`PAGES_FILE`].
pub(crate) const STRINGS_FILE: &str = "strings.bin";

/// The file name of fst shard `n`.
pub(crate) fn fst_file(n: usize) -> String {
    format!("titles.{n}.fst")
}

/// The header of `pages.bin`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Header {
    pub dump_len: u64,
    pub fingerprint: u64,
    pub dump_mtime: i64,
    pub pages: u64,
    pub titles: u64,
    pub redirects: u64,
    pub duplicates: u64,
    pub strings_len: u64,
    /// Checksum of `strings.bin`.
    pub strings_checksum: u64,
    /// Length of each fst shard's file.
    pub fst_lens: Vec<u64>,
    /// Checksum of each fst shard's file (as many as `fst_lens`).
    pub fst_checksums: Vec<u64>,
    pub schema: String,
    pub dump_path: String,
    pub namespaces: Vec<(i32, String)>,
}

/// Why a header could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Not a `pages.bin` at all.
    BadMagic,
    /// Another format version.
    Version(u32),
    /// Cut short or inconsistent.
    Corrupt(&'static str),
}

impl Header {
    /// Encodes the header, padded so that records start 8-byte aligned.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_HEADER_LEN + self.dump_path.len() + 256);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(RECORD_LEN as u32).to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // header length, patched below
        for v in [
            self.dump_len,
            self.fingerprint,
            self.dump_mtime as u64,
            self.pages,
            self.titles,
        ]
        .into_iter()
        .chain([
            self.redirects,
            self.duplicates,
            self.strings_len,
            self.fst_lens.iter().sum(),
        ]) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.dump_path.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.namespaces.len() as u32).to_le_bytes());
        let mut schema = [0u8; 8];
        let n = self.schema.len().min(8);
        schema[..n].copy_from_slice(&self.schema.as_bytes()[..n]);
        out.extend_from_slice(&schema);
        out.extend_from_slice(&self.strings_checksum.to_le_bytes());
        debug_assert_eq!(out.len(), FIXED_HEADER_LEN);
        out.extend_from_slice(self.dump_path.as_bytes());
        for (key, name) in &self.namespaces {
            let name = &name.as_bytes()[..name.len().min(u16::MAX as usize)];
            out.extend_from_slice(&key.to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name);
        }
        out.extend_from_slice(&(self.fst_lens.len() as u32).to_le_bytes());
        for (n, len) in self.fst_lens.iter().enumerate() {
            let checksum = self.fst_checksums.get(n).copied().unwrap_or_default();
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&checksum.to_le_bytes());
        }
        out.resize(out.len().next_multiple_of(8), 0);
        let len = out.len() as u64;
        out[16..24].copy_from_slice(&len.to_le_bytes());
        out
    }

    /// Checks that `bytes` start like a `pages.bin` of this version: the
    /// magic, then [`VERSION`].
    pub(crate) fn check_version(bytes: &[u8]) -> Result<(), HeaderError> {
        if bytes.len() < 12 || bytes[..8] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        match u32_at(bytes, 8) {
            VERSION => Ok(()),
            other => Err(HeaderError::Version(other)),
        }
    }

    /// Decodes a header from `bytes`, the contents of `pages.bin` without
    /// its footer; returns it and the offset where records start. Never
    /// panics, whatever the bytes.
    pub(crate) fn decode(bytes: &[u8]) -> Result<(Header, usize), HeaderError> {
        Header::check_version(bytes)?;
        if bytes.len() < FIXED_HEADER_LEN {
            return Err(HeaderError::Corrupt("the header is cut short"));
        }
        if u32_at(bytes, 12) as usize != RECORD_LEN {
            return Err(HeaderError::Corrupt("the record size is wrong"));
        }
        let header_len = u64_at(bytes, 16) as usize;
        if header_len < FIXED_HEADER_LEN || header_len > bytes.len() {
            return Err(HeaderError::Corrupt("the header length is wrong"));
        }
        let path_len = u32_at(bytes, 96) as usize;
        let ns_count = u32_at(bytes, 100) as usize;
        let schema = &bytes[104..112];
        let schema = &schema[..schema.iter().position(|&b| b == 0).unwrap_or(8)];
        let mut at = FIXED_HEADER_LEN;
        let take = |at: &mut usize, n: usize| -> Result<&[u8], HeaderError> {
            let s = bytes
                .get(*at..*at + n)
                .filter(|_| *at + n <= header_len)
                .ok_or(HeaderError::Corrupt("the header is cut short"))?;
            *at += n;
            Ok(s)
        };
        let dump_path = String::from_utf8_lossy(take(&mut at, path_len)?).into_owned();
        let mut namespaces = Vec::with_capacity(ns_count.min(1024));
        for _ in 0..ns_count {
            let key = i32::from_le_bytes(take(&mut at, 4)?.try_into().unwrap_or_default());
            let len = u16::from_le_bytes(take(&mut at, 2)?.try_into().unwrap_or_default());
            let name = String::from_utf8_lossy(take(&mut at, len as usize)?).into_owned();
            namespaces.push((key, name));
        }
        let shards = u32::from_le_bytes(take(&mut at, 4)?.try_into().unwrap_or_default());
        let mut fst_lens = Vec::with_capacity((shards as usize).min(1024));
        let mut fst_checksums = Vec::with_capacity((shards as usize).min(1024));
        for _ in 0..shards {
            fst_lens.push(u64_at(take(&mut at, 8)?, 0));
            fst_checksums.push(u64_at(take(&mut at, 8)?, 0));
        }
        let total = fst_lens
            .iter()
            .try_fold(0u64, |sum, &len| sum.checked_add(len));
        if total != Some(u64_at(bytes, 88)) {
            return Err(HeaderError::Corrupt("the fst lengths do not add up"));
        }
        let header = Header {
            dump_len: u64_at(bytes, 24),
            fingerprint: u64_at(bytes, 32),
            dump_mtime: u64_at(bytes, 40) as i64,
            pages: u64_at(bytes, 48),
            titles: u64_at(bytes, 56),
            redirects: u64_at(bytes, 64),
            duplicates: u64_at(bytes, 72),
            strings_len: u64_at(bytes, 80),
            strings_checksum: u64_at(bytes, 112),
            fst_lens,
            fst_checksums,
            schema: String::from_utf8_lossy(schema).into_owned(),
            dump_path,
            namespaces,
        };
        Ok((header, header_len))
    }
}

/// Splits the contents of `pages.bin` into the bytes its footer covers and
/// the checksum the footer holds; `None` if the file is too short to have
/// one.
pub(crate) fn split_footer(pages: &[u8]) -> Option<(&[u8], u64)> {
    let body = pages.len().checked_sub(FOOTER_LEN)?;
    let (body, footer) = pages.split_at(body);
    Some((body, u64_at(footer, 0)))
}

/// The dump path recorded by a version 1 `pages.bin`, if it can be read:
/// the rebuild hint for an index from before checksums then names the
/// right dump.
pub(crate) fn v1_dump_path(pages: &[u8]) -> Option<String> {
    const V1_FIXED_HEADER_LEN: usize = 112;
    if pages.get(..8)? != MAGIC || u32_at(pages.get(..12)?, 8) != VERSION_WITHOUT_CHECKSUMS {
        return None;
    }
    let len = u32_at(pages.get(..V1_FIXED_HEADER_LEN)?, 96) as usize;
    let path = pages.get(V1_FIXED_HEADER_LEN..V1_FIXED_HEADER_LEN.checked_add(len)?)?;
    Some(String::from_utf8_lossy(path).into_owned()).filter(|p| !p.is_empty())
}

/// One page's fixed-width entry in `pages.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub first: u64,
    pub last: u64,
    pub id: u64,
    pub strings_off: u64,
    pub title_len: u16,
    pub redirect_len: u16,
    pub ns: i32,
}

impl Record {
    /// The record as stored.
    pub(crate) fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[0..8].copy_from_slice(&self.first.to_le_bytes());
        out[8..16].copy_from_slice(&self.last.to_le_bytes());
        out[16..24].copy_from_slice(&self.id.to_le_bytes());
        out[24..32].copy_from_slice(&self.strings_off.to_le_bytes());
        out[32..34].copy_from_slice(&self.title_len.to_le_bytes());
        out[34..36].copy_from_slice(&self.redirect_len.to_le_bytes());
        out[36..40].copy_from_slice(&self.ns.to_le_bytes());
        out
    }

    /// Reads a record from exactly [`RECORD_LEN`] bytes.
    pub(crate) fn decode(b: &[u8]) -> Record {
        Record {
            first: u64_at(b, 0),
            last: u64_at(b, 8),
            id: u64_at(b, 16),
            strings_off: u64_at(b, 24),
            title_len: u16::from_le_bytes([b[32], b[33]]),
            redirect_len: u16::from_le_bytes([b[34], b[35]]),
            ns: i32::from_le_bytes([b[36], b[37], b[38], b[39]]),
        }
    }
}

/// The `u64` at `at`; the caller has checked that `b` holds it.
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The `u32` at `at`; the caller has checked that `b` holds it.
fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// Bytes hashed at each end of the dump.
const END_BLOCK: usize = 1 << 20;
/// Bytes hashed at each of [`SAMPLES`] evenly spaced points in between.
const SAMPLE_BLOCK: usize = 64 << 10;
/// Number of sampled blocks.
const SAMPLES: usize = 16;

/// A 64-bit fingerprint of a dump: its size, its first and last MiB, and 16
/// blocks of 64 KiB spread evenly between. It reads about 3 MiB whatever the
/// size of the dump, so opening an index stays fast, and it catches a dump
/// that was replaced, re-downloaded as another date's dump, or truncated and
/// padded to the same size. It is not a cryptographic hash.
pub(crate) fn fingerprint(dump: &[u8]) -> u64 {
    let len = dump.len();
    let mut h = Mixer(0x5043_5449_544c_4531 ^ len as u64);
    h.bytes(&dump[..len.min(END_BLOCK)]);
    h.bytes(&dump[len.saturating_sub(END_BLOCK)..]);
    for k in 1..=SAMPLES {
        let at = (len as u128 * k as u128 / (SAMPLES as u128 + 1)) as usize;
        h.bytes(&dump[at..len.min(at + SAMPLE_BLOCK)]);
    }
    h.finish()
}

/// A small multiply-xorshift hash over 8-byte words.
struct Mixer(u64);

impl Mixer {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;

    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(Self::K).rotate_left(31);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.word(u64::from_le_bytes(tail) ^ (bytes.len() as u64) << 56);
    }

    fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = Header {
            dump_len: 123,
            fingerprint: 0xdead_beef,
            dump_mtime: 1_700_000_000,
            pages: 5,
            titles: 4,
            redirects: 2,
            duplicates: 1,
            strings_len: 99,
            strings_checksum: 0x1234_5678_9abc_def0,
            fst_lens: vec![77, 0, 5],
            fst_checksums: vec![1, 2, 3],
            schema: "0.11".into(),
            dump_path: "/data/enwiki.xml".into(),
            namespaces: vec![
                (0, String::new()),
                (1, "Talk".into()),
                (-1, "Special".into()),
            ],
        };
        let bytes = h.encode();
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(Header::decode(&bytes), Ok((h, bytes.len())));
        assert_eq!(Header::decode(b"nope").unwrap_err(), HeaderError::BadMagic);
        let mut old = bytes.clone();
        old[8] = 9;
        assert_eq!(Header::decode(&old).unwrap_err(), HeaderError::Version(9));
        assert!(matches!(
            Header::decode(&bytes[..FIXED_HEADER_LEN + 3]),
            Err(HeaderError::Corrupt(_))
        ));
    }

    #[test]
    fn decoding_any_bytes_never_panics() {
        let good = Header {
            fst_lens: vec![3, 4],
            fst_checksums: vec![5, 6],
            dump_path: "/d.xml".into(),
            namespaces: vec![(1, "Talk".into())],
            ..Header::default()
        }
        .encode();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..1 + round % 3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed % bytes.len() as u64) as usize;
                bytes[at] ^= (seed >> 40) as u8 | 1;
            }
            bytes.truncate(bytes.len() - round % 7);
            let _ = Header::decode(&bytes);
            let _ = split_footer(&bytes);
            let _ = v1_dump_path(&bytes);
        }
    }

    #[test]
    fn footer_and_v1_path() {
        assert_eq!(split_footer(b"short"), None);
        let (body, sum) = split_footer(b"abc\x01\0\0\0\0\0\0\0").unwrap();
        assert_eq!((body, sum), (&b"abc"[..], 1));
        let mut v1 = vec![0u8; 112];
        v1[..8].copy_from_slice(&MAGIC);
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        v1[96..100].copy_from_slice(&6u32.to_le_bytes());
        v1.extend_from_slice(b"/d.xml");
        assert_eq!(v1_dump_path(&v1).as_deref(), Some("/d.xml"));
        assert_eq!(v1_dump_path(&v1[..115]), None);
        assert_eq!(
            Header::check_version(&v1),
            Err(HeaderError::Version(VERSION_WITHOUT_CHECKSUMS))
        );
    }

    #[test]
    fn record_round_trips() {
        let r = Record {
            first: 1 << 40,
            last: (1 << 40) + 99,
            id: 42,
            strings_off: 7,
            title_len: 255,
            redirect_len: NO_REDIRECT,
            ns: -2,
        };
        assert_eq!(Record::decode(&r.encode()), r);
    }

    #[test]
    fn fingerprint_sees_size_and_content() {
        let a = vec![b'a'; 5 << 20];
        let mut b = a.clone();
        b[(5 << 20) / 17 * 3 + 5] = b'b';
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&a[1..]));
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(b""), fingerprint(b"x"));
    }
}
