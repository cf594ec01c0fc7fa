//! [`TitleIndex`]: an opened index, and the lookups the host serves from it.
//!
//! Opening maps the three index files and the dump, checks the header, and
//! fingerprints the dump (about 3 MiB read), so it takes milliseconds for
//! any number of titles. After that every call is a read of shared,
//! immutable memory: a `TitleIndex` is `Send + Sync` and meant to live in
//! an `Arc` shared by every worker.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fst::automaton::{Automaton, Str};
use fst::{IntoStreamer, Streamer};

use crate::IndexError;
use crate::format::{
    Header, HeaderError, NO_REDIRECT, PAGES_FILE, RECORD_LEN, Record, STRINGS_FILE, fingerprint,
    fst_file,
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
    /// Length of the page's `<page>…</page>` element in bytes.
    pub fn byte_len(&self) -> u64 {
        self.last - self.first + 1
    }
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
    /// `pages.bin`, mapped; records start at `records_at`.
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
    /// absolute path the index records).
    pub fn open(index_dir: &Path) -> Result<TitleIndex, IndexError> {
        Self::open_inner(index_dir, None)
    }

    /// Opens the index in `index_dir` with the dump at `dump_path`, for a
    /// dump that moved since it was indexed. The dump must still have the
    /// size and fingerprint the index recorded.
    pub fn open_with_dump(index_dir: &Path, dump_path: &Path) -> Result<TitleIndex, IndexError> {
        Self::open_inner(index_dir, Some(dump_path))
    }

    fn open_inner(dir: &Path, dump_override: Option<&Path>) -> Result<TitleIndex, IndexError> {
        let pages_path = dir.join(PAGES_FILE);
        if !pages_path.is_file() {
            return Err(IndexError::IndexMissing { dir: dir.into() });
        }
        let unusable = |dump: &Path, why: String| IndexError::IndexUnusable {
            dir: dir.into(),
            dump: dump.into(),
            why,
        };
        let pages = Mapped::open(&pages_path, Access::Normal, "cannot open index file")?;
        let unknown_dump = Path::new("DUMP.xml");
        let (header, records_at) = Header::decode(&pages).map_err(|e| {
            let why = match e {
                HeaderError::BadMagic => {
                    format!("{} is not a percore page table", pages_path.display())
                }
                HeaderError::Version(v) => format!(
                    "it has format version {v}, this build reads version {}",
                    crate::format::VERSION
                ),
                HeaderError::Corrupt(what) => format!("{}: {what}", pages_path.display()),
            };
            unusable(unknown_dump, why)
        })?;
        let recorded_dump = PathBuf::from(&header.dump_path);
        let dump_path = dump_override.map_or_else(|| recorded_dump.clone(), Path::to_path_buf);
        let records_len = (pages.len() - records_at) as u64;
        if header.pages.checked_mul(RECORD_LEN as u64) != Some(records_len) {
            return Err(unusable(
                &dump_path,
                format!("{} is cut short or damaged", pages_path.display()),
            ));
        }
        let strings_path = dir.join(STRINGS_FILE);
        let strings = Mapped::open(&strings_path, Access::Normal, "cannot open index file")?;
        if strings.len() as u64 != header.strings_len {
            return Err(unusable(
                &dump_path,
                format!("{} has the wrong size", strings_path.display()),
            ));
        }
        let mut shards = Vec::with_capacity(header.fst_lens.len());
        let mut titles = 0u64;
        for (n, &len) in header.fst_lens.iter().enumerate() {
            let path = dir.join(fst_file(n));
            let bytes = Mapped::open(&path, Access::Normal, "cannot open index file")?;
            if bytes.len() as u64 != len {
                return Err(unusable(
                    &dump_path,
                    format!("{} has the wrong size", path.display()),
                ));
            }
            let map = fst::Map::new(bytes)
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
        Some(self.make_page(number, record, title.to_owned()))
    }

    fn page_with_title(&self, number: u64, title: &str) -> Option<Page> {
        Some(self.make_page(number, self.record(number)?, title.to_owned()))
    }

    fn make_page(&self, number: u64, r: Record, title: String) -> Page {
        let redirect = (r.redirect_len != NO_REDIRECT)
            .then(|| self.string(r.strings_off + u64::from(r.title_len), r.redirect_len))
            .flatten()
            .map(str::to_owned);
        Page {
            title,
            number,
            first: r.first,
            last: r.last,
            id: r.id,
            namespace: r.ns,
            redirect,
        }
    }

    fn record(&self, number: u64) -> Option<Record> {
        if number >= self.header.pages {
            return None;
        }
        let at = self.records_at + number as usize * RECORD_LEN;
        self.pages.get(at..at + RECORD_LEN).map(Record::decode)
    }

    fn string(&self, off: u64, len: u16) -> Option<&str> {
        let off = usize::try_from(off).ok()?;
        std::str::from_utf8(self.strings.get(off..off + len as usize)?).ok()
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
