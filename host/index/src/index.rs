//! [`TitleIndex`]: an opened index, and the lookups the host serves from it.
//!
//! Opening maps the index files and the dump, verifies the checksum of
//! every index file (reading all of it, on several cores: see
//! `checksum.rs`), checks the header, and fingerprints the dump (about
//! 3 MiB read). After that every call is a read of shared, immutable
//! memory: a `TitleIndex` is `Send + Sync` and meant to live in an `Arc`
//! shared by every worker.
//!
//! Index files are input from disk, maybe from a shared volume, so nothing
//! read from them is trusted to be in range: a record whose offsets, lengths
//! or page number point outside the files or the dump gives `None` (or an
//! empty slice), never a panic, even if a file changes after it was
//! verified. The one exception is the `fst` crate, which may panic on
//! malformed fst bytes; verifying the fsts at open is the defence there
//! (see [`TitleIndex::open_unverified`]).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fst::automaton::{Automaton, Str};
use fst::{IntoStreamer, Streamer};

use crate::IndexError;
use crate::checksum::checksums;
use crate::format::{
    Header, HeaderError, NO_REDIRECT, PAGES_FILE, RECORD_LEN, Record, STRINGS_FILE, VERSION,
    VERSION_WITHOUT_CHECKSUMS, fingerprint, fst_file, split_footer, v1_dump_path,
};
use crate::mmap::{Access, Mapped};
use crate::normalize::{CaseInsensitivePrefix, normalize_title, upper_first};

/// One page of the dump, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Page {
    /// The title, entities decoded, e.g. `AT&T` or `Talk:Москва`.
    pub title: String,
    /// The page's position in the page table (0 for the first `<page>`).
    pub number: u64,
    /// Byte offset of the `<` of `<page>` in the dump.
    pub first: u64,
    /// Byte offset of the `>` of `</page>`: inclusive, so an HTTP
    /// `Range: bytes={first}-{last}` returns exactly the element.
    pub last: u64,
    /// The page id (`<id>` directly inside `<page>`).
    pub id: u64,
    /// The namespace number (`<ns>`): 0 for articles, 1 for `Talk:` ….
    pub namespace: i32,
    /// The target title if the page is a redirect.
    pub redirect: Option<String>,
}

impl Page {
    /// Length of the page's `<page>…</page>` element in bytes (0 for a
    /// `Page` whose `last` is before its `first`, which no index returns).
    pub fn byte_len(&self) -> u64 {
        self.last
            .checked_sub(self.first)
            .map_or(0, |span| span.saturating_add(1))
    }
}

/// Whether opening verifies the checksums of the index files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verify {
    /// Verify every file: [`TitleIndex::open`], [`TitleIndex::open_with_dump`].
    Checksums,
    /// Trust them: [`TitleIndex::open_unverified`].
    Skip,
}

/// A title index opened for lookups; see the crate docs.
pub struct TitleIndex {
    /// The index directory.
    dir: PathBuf,
    /// The dump, mapped: pages are served from here.
    dump: Mapped,
    /// The dump's path (absolute unless the caller gave a relative override).
    dump_path: PathBuf,
    /// The dump's modification time when opened.
    dump_modified: SystemTime,
    /// `pages.bin`, mapped; records start at `records_at` (and the footer
    /// follows them).
    pages: Mapped,
    /// Where records start in `pages`.
    records_at: usize,
    /// `strings.bin`, mapped.
    strings: Mapped,
    /// The fst shards (`titles.N.fst`) that hold any titles, in order, each
    /// with its first title: a title belongs to the last shard whose first
    /// title is not greater.
    shards: Vec<(Vec<u8>, fst::Map<Mapped>)>,
    /// The header of `pages.bin`.
    header: Header,
}

impl std::fmt::Debug for TitleIndex {
    // Not derived: `fst::Map`'s `Debug` would print every title.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TitleIndex")
            .field("dir", &self.dir)
            .field("dump_path", &self.dump_path)
            .field("dump_len", &self.header.dump_len)
            .field("pages", &self.header.pages)
            .field("titles", &self.header.titles)
            .finish_non_exhaustive()
    }
}

impl TitleIndex {
    /// Opens the index in `index_dir` with the dump it was built from (whose
    /// absolute path the index records), after verifying the checksum of
    /// every index file: a damaged file gives
    /// [`IndexError::IndexCorrupt`], naming it.
    ///
    /// Verifying reads every byte of the index (on up to 8 threads), which
    /// also brings it into the page cache: for the 1.2 GB index of 15
    /// million pages, about 40 ms on 2 cores with the files cached (0.8 ms
    /// without verifying) and about a second from a cold disk.
    pub fn open(index_dir: &Path) -> Result<TitleIndex, IndexError> {
        Self::open_inner(index_dir, None, Verify::Checksums)
    }

    /// Opens the index in `index_dir` with the dump at `dump_path`, for a
    /// dump that moved since it was indexed. The dump must still have the
    /// size and fingerprint the index recorded. Verifies checksums like
    /// [`open`](Self::open).
    pub fn open_with_dump(index_dir: &Path, dump_path: &Path) -> Result<TitleIndex, IndexError> {
        Self::open_inner(index_dir, Some(dump_path), Verify::Checksums)
    }

    /// Opens the index in `index_dir` like [`open`](Self::open) but
    /// **without verifying checksums**: only the header, the file sizes and
    /// the dump are checked. For tools and benchmarks that time the rest of
    /// opening, or reopen an index they have just verified; percore's host
    /// never calls it.
    ///
    /// Lookups on a damaged index opened this way do not panic on damaged
    /// page records or strings (they return `None` or wrong answers), but
    /// the `fst` crate may panic, loop or misbehave on a damaged fst file.
    pub fn open_unverified(index_dir: &Path) -> Result<TitleIndex, IndexError> {
        Self::open_inner(index_dir, None, Verify::Skip)
    }

    fn open_inner(
        dir: &Path,
        dump_override: Option<&Path>,
        verify: Verify,
    ) -> Result<TitleIndex, IndexError> {
        let pages_path = dir.join(PAGES_FILE);
        if !pages_path.is_file() {
            return Err(IndexError::IndexMissing { dir: dir.into() });
        }
        let unusable = |dump: &Path, why: String| IndexError::IndexUnusable {
            dir: dir.into(),
            dump: dump.into(),
            why,
        };
        let corrupt = |file: &Path, dump: &Path, why: String| IndexError::IndexCorrupt {
            dir: dir.into(),
            file: file.into(),
            dump: dump.into(),
            why,
        };
        let pages = Mapped::open(&pages_path, Access::Normal, "cannot open index file")?;
        // Until its checksum is verified nothing in pages.bin is trusted,
        // not even the dump path it records, which the hints then name only
        // as a guess.
        let unknown_dump = Path::new("DUMP.xml");
        let header_error = |e: HeaderError| match e {
            HeaderError::BadMagic => unusable(
                unknown_dump,
                format!("{} is not a percore page table", pages_path.display()),
            ),
            HeaderError::Version(VERSION_WITHOUT_CHECKSUMS) => unusable(
                &v1_dump_path(&pages).map_or_else(|| unknown_dump.into(), PathBuf::from),
                format!(
                    "{} has format version {VERSION_WITHOUT_CHECKSUMS}, written by an older percore \
                     without checksums; this build reads version {VERSION}, which it can verify",
                    pages_path.display()
                ),
            ),
            HeaderError::Version(v) => unusable(
                unknown_dump,
                format!(
                    "{} has format version {v}; this build reads version {VERSION}",
                    pages_path.display()
                ),
            ),
            HeaderError::Corrupt(what) => {
                unusable(unknown_dump, format!("{}: {what}", pages_path.display()))
            }
        };
        Header::check_version(&pages).map_err(header_error)?;
        let Some((body, footer)) = split_footer(&pages) else {
            return Err(header_error(HeaderError::Corrupt("the file is cut short")));
        };
        if verify == Verify::Checksums {
            let found = checksums(&[body])[0];
            if found != footer {
                // The hint may name the dump the damaged header records,
                // but only if there is such a file.
                let dump = Header::decode(body)
                    .ok()
                    .map(|(header, _)| PathBuf::from(header.dump_path))
                    .filter(|path| path.is_absolute() && path.is_file())
                    .unwrap_or_else(|| unknown_dump.into());
                return Err(corrupt(
                    &pages_path,
                    &dump,
                    format!("has checksum {found:016x}, but its footer recorded {footer:016x}"),
                ));
            }
        }
        let (header, records_at) = Header::decode(body).map_err(header_error)?;
        let recorded_dump = PathBuf::from(&header.dump_path);
        let dump_path = dump_override.map_or_else(|| recorded_dump.clone(), Path::to_path_buf);
        let records_len = (body.len() - records_at) as u64;
        if header.pages.checked_mul(RECORD_LEN as u64) != Some(records_len) {
            return Err(corrupt(
                &pages_path,
                &dump_path,
                format!(
                    "holds {records_len} bytes of records, but its header counts {} records of {RECORD_LEN} bytes",
                    header.pages
                ),
            ));
        }

        // The other files, each with the size and checksum pages.bin records.
        let strings_path = dir.join(STRINGS_FILE);
        let mut files = vec![(strings_path, header.strings_len, header.strings_checksum)];
        for (n, (&len, &sum)) in header
            .fst_lens
            .iter()
            .zip(&header.fst_checksums)
            .enumerate()
        {
            files.push((dir.join(fst_file(n)), len, sum));
        }
        let maps = files
            .iter()
            .map(|(path, len, _)| {
                let map = Mapped::open(path, Access::Normal, "cannot open index file")?;
                if map.len() as u64 != *len {
                    return Err(corrupt(
                        path,
                        &dump_path,
                        format!("is {} bytes, but the index recorded {len}", map.len()),
                    ));
                }
                Ok(map)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if verify == Verify::Checksums {
            let found = checksums(&maps.iter().map(|m| &m[..]).collect::<Vec<_>>());
            for ((path, _, expected), found) in files.iter().zip(found) {
                if found != *expected {
                    return Err(corrupt(
                        path,
                        &dump_path,
                        format!(
                            "has checksum {found:016x}, but the index recorded {expected:016x}"
                        ),
                    ));
                }
            }
        }
        let mut maps = maps.into_iter();
        let strings = maps.next().unwrap_or(Mapped::Empty);

        let mut shards = Vec::with_capacity(header.fst_lens.len());
        let mut titles = 0u64;
        for (map, (path, _, _)) in maps.zip(&files[1..]) {
            // The fst crate trusts its input: on malformed bytes it may
            // panic (out-of-range slices, failed assertions) or loop, while
            // opening here or in any later lookup. Verifying the checksum
            // above is the defence; an fst file that changes after that
            // (it is mapped from a possibly shared volume) or one opened
            // with `open_unverified` remains a risk we cannot remove short
            // of copying every fst into memory and validating it node by
            // node.
            let map = fst::Map::new(map)
                .map_err(|e| unusable(&dump_path, format!("{}: {e}", path.display())))?;
            titles += map.len() as u64;
            let first = map.stream().next().map(|(key, _)| key.to_vec());
            if let Some(first) = first {
                shards.push((first, map));
            }
        }
        if titles != header.titles {
            return Err(unusable(
                &dump_path,
                format!(
                    "the fsts in {} have the wrong number of titles",
                    dir.display()
                ),
            ));
        }

        let file = std::fs::File::open(&dump_path).map_err(|source| IndexError::DumpMissing {
            dir: dir.into(),
            dump: dump_path.clone(),
            source,
        })?;
        let meta = file
            .metadata()
            .map_err(|e| IndexError::io("cannot stat dump", &dump_path, e))?;
        let mismatch = |expected: String, found: String| IndexError::DumpMismatch {
            dir: dir.into(),
            dump: dump_path.clone(),
            expected,
            found,
        };
        if meta.len() != header.dump_len {
            return Err(mismatch(
                format!("a dump of {} bytes", header.dump_len),
                format!("{} bytes", meta.len()),
            ));
        }
        let dump = Mapped::file(&file, &dump_path, Access::Normal)?;
        let found = fingerprint(&dump);
        if found != header.fingerprint {
            return Err(mismatch(
                format!("a dump with fingerprint {:016x}", header.fingerprint),
                format!("a different file of the same size (fingerprint {found:016x})"),
            ));
        }
        Ok(TitleIndex {
            dir: dir.into(),
            dump,
            dump_path,
            dump_modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            pages,
            records_at,
            strings,
            shards,
            header,
        })
    }

    /// The page with exactly this title (byte for byte), if any.
    pub fn lookup(&self, title: &str) -> Option<Page> {
        let (_, shard) = self
            .shards
            .iter()
            .rev()
            .find(|(first, _)| first.as_slice() <= title.as_bytes())?;
        let number = shard.get(title)?;
        self.page_with_title(number, title)
    }

    /// Looks a title up the way a MediaWiki link would: after
    /// [`normalize_title`], and with a namespace prefix matched without
    /// regard to case (`talk:foo_bar` finds `Talk:Foo bar`).
    pub fn lookup_normalized(&self, title: &str) -> Option<Page> {
        let title = normalize_title(title);
        if let Some(page) = self.lookup(&title) {
            return Some(page);
        }
        let (ns, rest) = title.split_once(':')?;
        let (ns, rest) = (ns.trim_end(), rest.trim_start());
        let canonical = self
            .header
            .namespaces
            .iter()
            .find(|(_, name)| !name.is_empty() && name.to_lowercase() == ns.to_lowercase())?;
        self.lookup(&format!("{}:{}", canonical.1, upper_first(rest)))
    }

    /// Follows redirects from `title` (exact) up to `max_hops` times and
    /// returns the final page (which may still be a redirect if the chain is
    /// longer, or if its target does not exist).
    pub fn resolve(&self, title: &str, max_hops: usize) -> Option<Page> {
        let mut page = self.lookup(title)?;
        for _ in 0..max_hops {
            let Some(next) = page
                .redirect
                .as_deref()
                .and_then(|t| self.lookup_normalized(t))
            else {
                break;
            };
            page = next;
        }
        Some(page)
    }

    /// Up to `limit` pages whose titles start with `prefix`, in byte order
    /// of their titles, starting strictly after the title `after` when
    /// given (pass the last title of one call to get the next batch).
    pub fn prefix(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<Page> {
        self.search(Str::new(prefix).starts_with(), after, limit)
    }

    /// Like [`prefix`](Self::prefix), but ignoring case (Unicode simple
    /// case folding, character by character): `москв` finds `Москва`.
    /// Results are in byte order of the stored titles.
    pub fn prefix_ci(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<Page> {
        self.search(CaseInsensitivePrefix::new(prefix), after, limit)
    }

    fn search<A: Automaton>(&self, automaton: A, after: Option<&str>, limit: usize) -> Vec<Page> {
        let mut out = Vec::new();
        if limit == 0 {
            return out;
        }
        for (_, shard) in &self.shards {
            let mut search = shard.search(&automaton);
            if let Some(after) = after {
                search = search.gt(after);
            }
            let mut stream = search.into_stream();
            while let Some((title, number)) = stream.next() {
                let Ok(title) = std::str::from_utf8(title) else {
                    continue;
                };
                if let Some(page) = self.page_with_title(number, title) {
                    out.push(page);
                }
                if out.len() >= limit {
                    return out;
                }
            }
        }
        out
    }

    /// The page with the given page number (position in the dump), if any.
    pub fn page(&self, number: u64) -> Option<Page> {
        let record = self.record(number)?;
        let title = self.string(record.strings_off, record.title_len)?;
        self.make_page(number, record, title.to_owned())
    }

    /// Page `number` (from an fst value: untrusted) with the fst's `title`.
    fn page_with_title(&self, number: u64, title: &str) -> Option<Page> {
        self.make_page(number, self.record(number)?, title.to_owned())
    }

    /// `None` if the record's redirect target is out of range or not UTF-8.
    fn make_page(&self, number: u64, r: Record, title: String) -> Option<Page> {
        let redirect = if r.redirect_len == NO_REDIRECT {
            None
        } else {
            let off = r.strings_off.checked_add(u64::from(r.title_len))?;
            Some(self.string(off, r.redirect_len)?.to_owned())
        };
        Some(Page {
            title,
            number,
            first: r.first,
            last: r.last,
            id: r.id,
            namespace: r.ns,
            redirect,
        })
    }

    /// Record `number`, if there is one and its byte range lies in the dump.
    fn record(&self, number: u64) -> Option<Record> {
        if number >= self.header.pages {
            return None;
        }
        let at = usize::try_from(number)
            .ok()?
            .checked_mul(RECORD_LEN)?
            .checked_add(self.records_at)?;
        let record = Record::decode(self.pages.get(at..at.checked_add(RECORD_LEN)?)?);
        (record.first <= record.last && record.last < self.header.dump_len).then_some(record)
    }

    /// `len` bytes at `off` in `strings.bin`, if in range and UTF-8.
    fn string(&self, off: u64, len: u16) -> Option<&str> {
        let off = usize::try_from(off).ok()?;
        let end = off.checked_add(usize::from(len))?;
        std::str::from_utf8(self.strings.get(off..end)?).ok()
    }

    /// Tells the kernel that bytes `range` of the dump were sent and need
    /// not stay mapped into this process: its resident memory stops growing
    /// with what it streams. The bytes stay readable (and cached by the
    /// kernel); this is accounting, not a change of contents.
    pub fn release_dump_range(&self, range: std::ops::Range<u64>) {
        self.dump.release(range.start as usize..range.end as usize);
    }

    /// Whether every byte of `range` of the dump is in memory now, so that
    /// sending it cannot stall on the disk.
    pub fn dump_range_resident(&self, range: std::ops::Range<u64>) -> bool {
        self.dump.resident(range.start as usize..range.end as usize)
    }

    /// Brings bytes `range` of the dump into memory, waiting for the disk
    /// if it must: call it off the threads that serve requests (the host
    /// does, from tokio's blocking pool, when
    /// [`dump_range_resident`](Self::dump_range_resident) says no).
    pub fn prefetch_dump_range(&self, range: std::ops::Range<u64>) {
        self.dump.touch(range.start as usize..range.end as usize);
    }

    /// Asks the kernel to read the index files (not the dump) into its
    /// cache in the background, so that the first lookups after a start
    /// find them there instead of faulting them in page by page.
    pub fn warm(&self) {
        self.pages.will_need();
        self.strings.will_need();
        for (_, shard) in &self.shards {
            shard.as_fst().as_inner().will_need();
        }
    }

    /// The whole dump, memory-mapped.
    pub fn dump_bytes(&self) -> &[u8] {
        &self.dump
    }

    /// The bytes of `page`'s `<page>…</page>` element (empty if the page is
    /// not from this index's dump).
    pub fn page_bytes(&self, page: &Page) -> &[u8] {
        let (Ok(first), Ok(last)) = (usize::try_from(page.first), usize::try_from(page.last))
        else {
            return &[];
        };
        self.dump.get(first..=last).unwrap_or(&[])
    }

    /// The wikitext of `page`'s (last) revision, entities decoded: what an
    /// editor would see. `None` if the page has no `<text>` element or its
    /// text is not valid UTF-8 with well-formed entities; empty for a
    /// self-closing `<text/>` (deleted or empty revisions).
    pub fn page_text(&self, page: &Page) -> Option<Cow<'_, str>> {
        crate::scan::page_text(self.page_bytes(page))
    }

    /// At most `max_bytes` of `page`'s decoded wikitext (see
    /// [`page_text`](Self::page_text)) from byte `offset` of it, ending at a
    /// character boundary, and the length of the whole text: what a caller
    /// that caps its answers hands out a piece at a time. `Ok(None)` when
    /// the page's text does not decode.
    pub fn page_text_window(
        &self,
        page: &Page,
        offset: u64,
        max_bytes: usize,
    ) -> Result<Option<(String, u64)>, TextWindowError> {
        let Some(text) = self.page_text(page) else {
            return Ok(None);
        };
        let window = text_window(&text, offset, max_bytes)?;
        Ok(Some((window.to_owned(), text.len() as u64)))
    }

    /// Size of the dump in bytes.
    pub fn dump_len(&self) -> u64 {
        self.header.dump_len
    }

    /// The dump's modification time, read when the index was opened.
    pub fn dump_modified(&self) -> SystemTime {
        self.dump_modified
    }

    /// The dump's path.
    pub fn dump_path(&self) -> &Path {
        &self.dump_path
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of distinct titles.
    pub fn len(&self) -> usize {
        self.header.titles as usize
    }

    /// Whether the index has no titles.
    pub fn is_empty(&self) -> bool {
        self.header.titles == 0
    }

    /// Number of `<page>` elements (including those with duplicate titles).
    pub fn page_count(&self) -> u64 {
        self.header.pages
    }

    /// Number of redirect pages.
    pub fn redirect_count(&self) -> u64 {
        self.header.redirects
    }

    /// Number of pages whose title an earlier page has.
    pub fn duplicate_count(&self) -> u64 {
        self.header.duplicates
    }

    /// The namespaces from the dump's `<siteinfo>`: `(number, name)`.
    pub fn namespaces(&self) -> &[(i32, String)] {
        &self.header.namespaces
    }
}

/// Why [`text_window`] refused an offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextWindowError {
    /// The offset is past the end of the text.
    #[error("offset {offset} is past the end of the text ({len} bytes)")]
    PastEnd {
        /// The offset asked for.
        offset: u64,
        /// The text's length in bytes.
        len: u64,
    },
    /// The offset is inside a UTF-8 character.
    #[error(
        "offset {offset} is inside a character: continue from the offset plus the length of the text returned"
    )]
    InsideCharacter {
        /// The offset asked for.
        offset: u64,
    },
}

/// At most `max_bytes` of `text` from byte `offset`, ending at a character
/// boundary (at least one character when `max_bytes` is at least 4 and
/// there is text left). An offset equal to the length gives `""`.
pub fn text_window(text: &str, offset: u64, max_bytes: usize) -> Result<&str, TextWindowError> {
    let len = text.len() as u64;
    if offset > len {
        return Err(TextWindowError::PastEnd { offset, len });
    }
    let start = offset as usize;
    if !text.is_char_boundary(start) {
        return Err(TextWindowError::InsideCharacter { offset });
    }
    let mut end = start.saturating_add(max_bytes).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Ok(&text[start..end])
}

#[cfg(test)]
mod text_window_tests {
    use super::*;

    #[test]
    fn windows_end_at_character_boundaries_and_cover_the_text() {
        let text = "aé€😀b";
        assert_eq!(text_window(text, 0, 100), Ok(text));
        assert_eq!(text_window(text, 0, 2), Ok("a"));
        assert_eq!(text_window(text, 1, 2), Ok("é"));
        assert_eq!(text_window(text, 3, 4), Ok("€"));
        assert_eq!(text_window(text, text.len() as u64, 4), Ok(""));
        assert_eq!(
            text_window(text, 2, 4),
            Err(TextWindowError::InsideCharacter { offset: 2 })
        );
        assert_eq!(
            text_window(text, 100, 4),
            Err(TextWindowError::PastEnd {
                offset: 100,
                len: 11
            })
        );
        // Pieces of at most 4 bytes, each continuing where the last ended,
        // put the text back together.
        let (mut offset, mut whole) = (0, String::new());
        while offset < text.len() {
            let piece = text_window(text, offset as u64, 4).unwrap();
            assert!(!piece.is_empty() && piece.len() <= 4);
            whole.push_str(piece);
            offset += piece.len();
        }
        assert_eq!(whole, text);
    }
}
