//! Building an index: scan the dump once, write the page table and strings
//! as we go, sort the titles, write the fst, and rename the finished
//! directory into place.
//!
//! Scanning runs on one thread per core: each takes the next 32 MiB chunk
//! of the dump (chunks start at a `<page>`), maps just that part, and hands
//! back a batch that this thread writes out in dump order.
//!
//! Memory: the scanner keeps nothing per page, and each chunk is unmapped
//! when done, so the dump's pages do not accumulate in resident memory. The
//! builder keeps 24 bytes per page (a sort key and the title's place in
//! `strings.bin`) and reads titles back from the mapped `strings.bin` while
//! sorting and writing the fst: 15 million pages peak at about 870 MB
//! resident (see `benches/RESULTS.md`). Nothing else grows with the dump.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::IndexError;
use crate::format::{
    Header, MAX_STRING_LEN, NO_REDIRECT, PAGES_FILE, RECORD_LEN, Record, STRINGS_FILE, fingerprint,
    fst_file,
};
use crate::mmap::{Access, Mapped};
use crate::scan::Scanner;

/// How many duplicate titles a [`BuildReport`] lists by name.
const DUPLICATE_EXAMPLES: usize = 10;
/// Bytes of dump per unit of work handed to a scanning thread.
const CHUNK: usize = 32 << 20;

/// Options for [`build_index`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildOptions {
    /// Draw a progress bar (bytes, rate, ETA) on standard error. The CLI
    /// passes `std::io::stderr().is_terminal()`. Default: `false`.
    pub progress: bool,
}

/// Builds the title index of the dump at `dump` into the directory
/// `out_dir`, replacing an index already there.
///
/// The index is written to `OUT_DIR.tmp-XXXX` next to `out_dir` and renamed
/// into place only when complete; on any error the temporary directory is
/// removed, and an existing index at `out_dir` is left as it was.
pub fn build_index(
    dump: &Path,
    out_dir: &Path,
    opts: BuildOptions,
) -> Result<BuildReport, IndexError> {
    IndexBuilder::new(dump, out_dir)
        .progress(opts.progress)
        .build()
}

/// Builds a title index; see [`build_index`] for the one-call form.
#[derive(Debug, Clone)]
pub struct IndexBuilder {
    /// The MediaWiki XML export to index.
    dump: PathBuf,
    /// The index directory to create or replace.
    out: PathBuf,
    /// Whether to draw a progress bar on standard error.
    progress: bool,
    /// Scanning threads; 0 means one per available core.
    threads: usize,
    /// Bytes of dump per unit of work handed to a thread.
    chunk_size: usize,
}

impl IndexBuilder {
    /// A builder for the index of `dump` in the directory `out_dir`.
    pub fn new(dump: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        IndexBuilder {
            dump: dump.into(),
            out: out_dir.into(),
            progress: false,
            threads: 0,
            chunk_size: CHUNK,
        }
    }

    /// Draws a progress bar on standard error while building (default: off).
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Scans with `threads` threads (default 0: one per available core, at
    /// most 8).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Hands threads `bytes` of dump at a time (default 32 MiB; at least
    /// 4 KiB). The index is the same whatever the value; tests use small
    /// chunks to exercise chunk boundaries on small dumps.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(4096);
        self
    }

    /// Scans the dump and writes the index.
    pub fn build(self) -> Result<BuildReport, IndexError> {
        let started = Instant::now();
        let dump_path = fs::canonicalize(&self.dump)
            .map_err(|e| IndexError::io("cannot open dump", &self.dump, e))?;
        let file = File::open(&dump_path)
            .map_err(|e| IndexError::io("cannot open dump", &dump_path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| IndexError::io("cannot stat dump", &dump_path, e))?;
        let dump_mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let map = Mapped::file(&file, &dump_path, Access::Sequential)?;
        let dump: &[u8] = &map;
        let (scanner, site) = Scanner::new(dump, &dump_path)?;

        check_output(&self.out)?;
        let tmp = TempDir::create(&self.out)?;
        let bar = progress_bar(self.progress, dump.len() as u64);

        let mut header = Header {
            dump_len: dump.len() as u64,
            fingerprint: fingerprint(dump),
            dump_mtime,
            schema: site.schema,
            dump_path: dump_path.to_string_lossy().into_owned(),
            namespaces: site.namespaces,
            ..Header::default()
        };
        let threads = match self.threads {
            0 => thread::available_parallelism().map_or(1, |n| n.get().min(8)),
            n => n,
        };
        // One fst shard per thread, so that they can be built in parallel.
        header.fst_lens = vec![0; threads];
        let scan = scan_into(
            scanner,
            &file,
            (threads, self.chunk_size),
            &tmp.path,
            &dump_path,
            &mut header,
            &bar,
        )?;
        let scan_elapsed = started.elapsed();
        let mut lap = Instant::now();
        let mut phases = Vec::new();
        let mut phase = |name| {
            phases.push((name, lap.elapsed()));
            lap = Instant::now();
        };

        bar.set_message("sorting titles");
        let strings_path = tmp.path.join(STRINGS_FILE);
        let strings = Mapped::open(&strings_path, Access::Normal, "cannot read back")?;
        let pages_path = tmp.path.join(PAGES_FILE);
        let pages = Mapped::open(&pages_path, Access::Normal, "cannot read back")?;
        let records = &pages[scan.header_len..];
        let mut keys = scan.keys;
        let (titles, duplicates, fst_lens) = write_titles(
            &tmp.path,
            &mut keys,
            header.fst_lens.len(),
            &scan.strings_at,
            &strings,
            records,
            |name| {
                phase(name);
                if name == "sort" {
                    bar.set_message("writing fsts");
                }
            },
        )?;
        drop(keys);
        header.titles = titles;
        header.duplicates = duplicates.count;
        header.fst_lens = fst_lens;

        // The header last, with the final counts, then make it all durable.
        let mut file = scan.pages_file;
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&header.encode()))
            .and_then(|_| file.sync_all())
            .map_err(|e| IndexError::io("cannot write", &pages_path, e))?;
        let fst_paths = (0..header.fst_lens.len()).map(|n| tmp.path.join(fst_file(n)));
        for path in fst_paths.chain([strings_path]) {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| IndexError::io("cannot sync", &path, e))?;
        }
        drop((pages, strings));
        phase("sync");
        bar.finish_and_clear();
        let index_bytes = (pages_path.metadata().map(|m| m.len()).unwrap_or(0))
            + header.strings_len
            + header.fst_lens.iter().sum::<u64>();
        tmp.commit(&self.out)?;

        Ok(BuildReport {
            dump: dump_path,
            out: self.out,
            dump_len: header.dump_len,
            pages: header.pages,
            titles: header.titles,
            redirects: header.redirects,
            duplicates: header.duplicates,
            duplicate_examples: duplicates.examples,
            index_bytes,
            scan_elapsed,
            phases,
            elapsed: started.elapsed(),
        })
    }
}

/// What [`scan_into`] leaves for the later phases.
struct Scanned {
    /// `pages.bin`, header not yet final.
    pages_file: File,
    /// Where records start in `pages.bin`.
    header_len: usize,
    /// Sort keys: the first 8 title bytes (big-endian) and the page number.
    keys: Vec<(u64, u32)>,
    /// Per page: offset of the title in `strings.bin` << 16 | title length.
    strings_at: Vec<u64>,
}

/// The pages of one chunk of the dump, scanned by a worker thread.
#[derive(Default)]
struct Batch {
    /// Records with `strings_off` relative to `strings`.
    records: Vec<Record>,
    /// Titles and redirect targets of these pages.
    strings: Vec<u8>,
    /// Sort-key prefix of each page's title.
    prefixes: Vec<u64>,
    /// Where the chunk's last page ends, for the progress bar.
    end: u64,
}

/// Scans one chunk into a batch.
fn scan_chunk(mut scanner: Scanner<'_>, dump_path: &Path) -> Result<Batch, IndexError> {
    let mut batch = Batch::default();
    while let Some(page) = scanner.next_page()? {
        let too_long = |what: &str, len: usize| IndexError::Malformed {
            path: dump_path.into(),
            offset: page.first,
            what: format!(
                "the {what} of this page is {len} bytes; at most {MAX_STRING_LEN} are supported"
            ),
        };
        let title = page.title.as_bytes();
        if title.len() > MAX_STRING_LEN {
            return Err(too_long("title", title.len()));
        }
        let redirect_len = match &page.redirect {
            Some(r) if r.len() > MAX_STRING_LEN => {
                return Err(too_long("redirect target", r.len()));
            }
            Some(r) => r.len() as u16,
            None => NO_REDIRECT,
        };
        batch.records.push(Record {
            first: page.first,
            last: page.last,
            id: page.id,
            strings_off: batch.strings.len() as u64,
            title_len: title.len() as u16,
            redirect_len,
            ns: page.ns,
        });
        batch.strings.extend_from_slice(title);
        if let Some(r) = &page.redirect {
            batch.strings.extend_from_slice(r.as_bytes());
        }
        batch.prefixes.push(title_prefix(title));
        batch.end = page.last;
    }
    batch.end = batch.end.max(scanner.position());
    Ok(batch)
}

/// Scans every page with `threads` workers, each taking the next chunk of
/// about `chunk_size` bytes, while this thread writes their batches in dump order:
/// records to `pages.bin`, titles and redirect targets to `strings.bin`.
/// Counts go into `header`. `scanner` has read the header and finds chunk
/// starts; each worker maps its chunk of `file` itself and unmaps it when
/// done, so resident memory does not grow with the dump.
fn scan_into(
    scanner: Scanner<'_>,
    file: &File,
    (threads, chunk_size): (usize, usize),
    dir: &Path,
    dump_path: &Path,
    header: &mut Header,
    bar: &ProgressBar,
) -> Result<Scanned, IndexError> {
    let pages_path = dir.join(PAGES_FILE);
    let strings_path = dir.join(STRINGS_FILE);
    let create = |path: &Path| {
        File::create(path)
            .map(|f| BufWriter::with_capacity(1 << 20, f))
            .map_err(|e| IndexError::io("cannot create", path, e))
    };
    let mut pages = create(&pages_path)?;
    let mut strings = create(&strings_path)?;
    let provisional = header.encode();
    let header_len = provisional.len();
    pages
        .write_all(&provisional)
        .map_err(|e| IndexError::io("cannot write", &pages_path, e))?;

    let starts = scanner.chunk_starts(chunk_size);
    let next_chunk = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, Result<Batch, IndexError>)>();
    let mut keys = Vec::new();
    let mut strings_at = Vec::new();
    let mut strings_len = 0u64;
    let result = thread::scope(|scope| {
        for _ in 0..threads.clamp(1, starts.len()) {
            let tx = tx.clone();
            let (starts, next_chunk, abort) = (&starts, &next_chunk, &abort);
            scope.spawn(move || {
                while !abort.load(Ordering::Relaxed) {
                    let i = next_chunk.fetch_add(1, Ordering::Relaxed);
                    let Some(&start) = starts.get(i) else { break };
                    let stop = starts.get(i + 1).copied();
                    let batch =
                        Mapped::file_from(file, dump_path, start as u64, Access::Sequential)
                            .and_then(|map| {
                                scan_chunk(Scanner::chunk(&map, dump_path, start, stop), dump_path)
                            });
                    if tx.send((i, batch)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Batches arrive in any order; write them in dump order.
        let mut pending = BTreeMap::new();
        let mut next = 0;
        let mut write_batches = || -> Result<(), IndexError> {
            for (i, batch) in rx.iter() {
                pending.insert(i, batch);
                while let Some(batch) = pending.remove(&next) {
                    next += 1;
                    let batch = batch?;
                    for (record, prefix) in batch.records.iter().zip(&batch.prefixes) {
                        let number = u32::try_from(header.pages).map_err(|_| IndexError::Malformed {
                        path: dump_path.into(),
                        offset: record.first,
                        what: "the dump has more than 4 294 967 295 pages, the most an index holds".into(),
                    })?;
                        let record = Record {
                            strings_off: record.strings_off + strings_len,
                            ..*record
                        };
                        pages
                            .write_all(&record.encode())
                            .map_err(|e| IndexError::io("cannot write", &pages_path, e))?;
                        keys.push((*prefix, number));
                        strings_at.push(record.strings_off << 16 | u64::from(record.title_len));
                        header.pages += 1;
                        header.redirects += u64::from(record.redirect_len != NO_REDIRECT);
                    }
                    strings
                        .write_all(&batch.strings)
                        .map_err(|e| IndexError::io("cannot write", &strings_path, e))?;
                    strings_len += batch.strings.len() as u64;
                    bar.set_position(batch.end);
                }
            }
            Ok(())
        };
        let result = write_batches();
        if result.is_err() {
            // Stop the workers early; the scope joins them.
            abort.store(true, Ordering::Relaxed);
        }
        result
    });
    result?;
    header.strings_len = strings_len;
    strings
        .flush()
        .map_err(|e| IndexError::io("cannot write", &strings_path, e))?;
    let pages_file = pages
        .into_inner()
        .map_err(|e| IndexError::io("cannot write", &pages_path, e.into_error()))?;
    Ok(Scanned {
        pages_file,
        header_len,
        keys,
        strings_at,
    })
}

/// The first 8 bytes of a title as a big-endian number, zero-padded, so
/// that comparing prefixes agrees with comparing titles whenever they differ.
fn title_prefix(title: &[u8]) -> u64 {
    let mut p = [0u8; 8];
    let n = title.len().min(8);
    p[..n].copy_from_slice(&title[..n]);
    u64::from_be_bytes(p)
}

/// The title of page `number`.
fn title_of<'s>(strings: &'s [u8], strings_at: &[u64], number: u32) -> &'s [u8] {
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

/// Sorts the titles and writes one fst per shard, all in parallel; returns
/// the number of distinct titles, the duplicates, and each fst's length.
fn write_titles(
    dir: &Path,
    keys: &mut [(u64, u32)],
    shards: usize,
    strings_at: &[u64],
    strings: &[u8],
    records: &[u8],
    mut phase: impl FnMut(&'static str),
) -> Result<(u64, Duplicates, Vec<u64>), IndexError> {
    let order = |a: &(u64, u32), b: &(u64, u32)| title_order(a, b, strings_at, strings);
    let mut parts = partition(keys, shards, &order);
    thread::scope(|scope| {
        for part in parts.iter_mut() {
            scope.spawn(|| part.sort_unstable_by(order));
        }
    });
    phase("sort");
    // A shard's first keys may repeat the title that ends the shard
    // before it: tell each shard the last title before it, with the page
    // that keeps it.
    let mut before = Vec::with_capacity(parts.len());
    let mut last: Option<(&[u8], u32)> = None;
    for part in &parts {
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
    let mut lens = Vec::with_capacity(shards);
    for result in results {
        let (t, d, len) = result?;
        titles += t;
        dups.count += d.count;
        dups.examples.extend(d.examples);
        lens.push(len);
    }
    dups.examples.sort_by_key(|d| d.ignored_offset);
    dups.examples.truncate(DUPLICATE_EXAMPLES);
    phase("fst");
    Ok((titles, dups, lens))
}

/// Duplicate titles seen while writing the fst.
#[derive(Default)]
struct Duplicates {
    count: u64,
    examples: Vec<DuplicateTitle>,
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

/// Refuses to replace `out` unless it is absent, empty, or an index.
fn check_output(out: &Path) -> Result<(), IndexError> {
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_none() || out.join(PAGES_FILE).is_file() {
                Ok(())
            } else {
                Err(IndexError::OutputNotAnIndex { path: out.into() })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if out.exists() => Err(IndexError::OutputNotAnIndex { path: out.into() }),
        Err(e) => Err(IndexError::io("cannot read", out, e)),
    }
}

/// A directory `OUT.tmp-XXXX` next to the output, removed on drop unless
/// committed.
struct TempDir {
    path: PathBuf,
    committed: bool,
}

impl TempDir {
    fn create(out: &Path) -> Result<TempDir, IndexError> {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| IndexError::io("cannot create", parent, e))?;
        }
        let path = sibling(out, "tmp");
        fs::create_dir(&path).map_err(|e| IndexError::io("cannot create", &path, e))?;
        Ok(TempDir {
            path,
            committed: false,
        })
    }

    /// Renames the finished directory to `out`, replacing an old index.
    fn commit(mut self, out: &Path) -> Result<(), IndexError> {
        let old = sibling(out, "old");
        let had_old = match fs::rename(out, &old) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(IndexError::io("cannot move aside", out, e)),
        };
        if let Err(e) = fs::rename(&self.path, out) {
            if had_old {
                let _ = fs::rename(&old, out);
            }
            return Err(IndexError::io("cannot rename into place", out, e));
        }
        self.committed = true;
        if had_old {
            let _ = fs::remove_dir_all(&old);
        }
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// `OUT.KIND-XXXX`: a fresh name next to `out`.
fn sibling(out: &Path, kind: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{kind}-{:x}{nanos:08x}", std::process::id()));
    out.with_file_name(name)
}

fn progress_bar(on: bool, len: u64) -> ProgressBar {
    if !on {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:16} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, ETA {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("scanning dump");
    bar
}

/// A title that more than one page has; the first page keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateTitle {
    /// The title.
    pub title: String,
    /// Page id of the first page with the title, which the index maps it to.
    pub kept_id: u64,
    /// Byte offset of that page in the dump.
    pub kept_offset: u64,
    /// Page id of a later page with the same title (in the page table only).
    pub ignored_id: u64,
    /// Byte offset of that page in the dump.
    pub ignored_offset: u64,
}

/// What [`build_index`] did. `Display` prints the summary the CLI shows.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The dump, as an absolute path (recorded in the index).
    pub dump: PathBuf,
    /// The index directory.
    pub out: PathBuf,
    /// Size of the dump in bytes.
    pub dump_len: u64,
    /// `<page>` elements in the dump (records in the page table).
    pub pages: u64,
    /// Distinct titles (keys in the title map).
    pub titles: u64,
    /// Pages with a `<redirect/>`.
    pub redirects: u64,
    /// Pages whose title an earlier page already has.
    pub duplicates: u64,
    /// The first few duplicates, in dump order.
    pub duplicate_examples: Vec<DuplicateTitle>,
    /// Total size of the index files in bytes.
    pub index_bytes: u64,
    /// Time spent scanning the dump (and writing the page table), from the
    /// start of the build.
    pub scan_elapsed: Duration,
    /// Time spent in each later phase: "sort" (titles), "fst" (writing
    /// the fst shards), "sync" (header and `fsync`).
    pub phases: Vec<(&'static str, Duration)>,
    /// Total build time.
    pub elapsed: Duration,
}

impl fmt::Display for BuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let scan = self.scan_elapsed.as_secs_f64();
        writeln!(
            f,
            "indexed {} into {}",
            self.dump.display(),
            self.out.display()
        )?;
        writeln!(
            f,
            "  dump:       {} ({} bytes)",
            human_bytes(self.dump_len),
            self.dump_len
        )?;
        writeln!(f, "  pages:      {}", self.pages)?;
        writeln!(f, "  titles:     {} distinct", self.titles)?;
        writeln!(f, "  redirects:  {}", self.redirects)?;
        write!(f, "  duplicates: {}", self.duplicates)?;
        if self.duplicates > 0 {
            write!(
                f,
                " (the first page with a title wins; later ones stay in the page table only)"
            )?;
        }
        writeln!(f)?;
        for d in &self.duplicate_examples {
            writeln!(
                f,
                "    {:?}: kept page id {} (byte {}), ignored page id {} (byte {})",
                d.title, d.kept_id, d.kept_offset, d.ignored_id, d.ignored_offset
            )?;
        }
        if self.duplicates > self.duplicate_examples.len() as u64 {
            writeln!(
                f,
                "    … and {} more",
                self.duplicates - self.duplicate_examples.len() as u64
            )?;
        }
        writeln!(
            f,
            "  index size: {} ({:.1} bytes per title)",
            human_bytes(self.index_bytes),
            self.index_bytes as f64 / self.titles.max(1) as f64
        )?;
        write!(
            f,
            "  elapsed:    {secs:.2} s (scan {scan:.2} s, {:.2} GB/s",
            self.dump_len as f64 / scan.max(1e-9) / 1e9
        )?;
        for (name, took) in &self.phases {
            write!(f, "; {name} {:.2} s", took.as_secs_f64())?;
        }
        write!(f, ")")
    }
}

/// `1.5 GiB`, `12.0 MiB`, `900 B`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
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

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(900), "900 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
