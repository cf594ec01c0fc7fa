//! Building an index: [`build_index`] / [`IndexBuilder`] run the phases in
//! order and return a [`BuildReport`]. Each phase has its own file:
//!
//! | phase | file | does |
//! | --- | --- | --- |
//! | scan | `scan.rs` | scans the dump on every core; writes `pages.bin` (provisional header) and `strings.bin` |
//! | sort | `sort.rs` | sorts the titles into one run per fst shard |
//! | fst | `fsts.rs` | writes the fst shards in parallel; finds duplicate titles |
//! | checksum, sync | `seal.rs` | hashes every file; writes the final header and the footer; `fsync` |
//! | | `tempdir.rs` | the scratch directory next to the output, and the rename into place |
//! | | `progress.rs` | the progress bar (the `progress` feature) |
//! | | `report.rs` | [`BuildReport`], the summary `percore index` prints |
//!
//! Memory: the builder keeps 24 bytes per page (a sort key and the title's
//! place in `strings.bin`) and reads titles back from the mapped
//! `strings.bin` while sorting and writing the fst: 15 million pages peak
//! at about 870 MB resident (see `benches/RESULTS.md`). Nothing else grows
//! with the dump.

mod fsts;
mod progress;
mod report;
mod scan;
mod seal;
mod sort;
mod tempdir;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Instant, UNIX_EPOCH};

pub use report::{BuildReport, DuplicateTitle};

use crate::IndexError;
use crate::format::{Header, PAGES_FILE, STRINGS_FILE, fingerprint};
use crate::mmap::{Access, Mapped};
use crate::scan::Scanner;
use progress::Progress;
use tempdir::{TempDir, check_output};

/// Bytes of dump per unit of work handed to a scanning thread.
const CHUNK: usize = 32 << 20;

/// Options for [`build_index`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildOptions {
    /// Draw a progress bar (bytes, rate, ETA) on standard error. The CLI
    /// passes `std::io::stderr().is_terminal()`. Default: `false`. Needs
    /// the crate feature `progress`; without it the option is accepted and
    /// nothing is drawn.
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
    /// Whether to draw a progress bar on standard error (with the
    /// `progress` feature).
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

    /// Draws a progress bar on standard error while building (default:
    /// off). Needs the crate feature `progress`; without it the call is
    /// accepted and nothing is drawn.
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
        let bar = Progress::new(self.progress, dump.len() as u64);

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
        let scanned = scan::scan_into(
            scanner,
            &file,
            (threads, self.chunk_size),
            tmp.path(),
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

        bar.message("sorting titles");
        let strings = Mapped::open(
            &tmp.path().join(STRINGS_FILE),
            Access::Normal,
            "cannot read back",
        )?;
        let pages_path = tmp.path().join(PAGES_FILE);
        let pages = Mapped::open(&pages_path, Access::Normal, "cannot read back")?;
        let records = &pages[scanned.header_len..];
        let mut keys = scanned.keys;
        let parts = sort::sort_titles(
            &mut keys,
            header.fst_lens.len(),
            &scanned.strings_at,
            &strings,
        );
        phase("sort");
        bar.message("writing fsts");
        let (titles, duplicates, fst_lens) =
            fsts::write_fsts(tmp.path(), &parts, &scanned.strings_at, &strings, records)?;
        phase("fst");
        drop(parts);
        drop((keys, scanned.strings_at, pages, strings));
        header.titles = titles;
        header.duplicates = duplicates.count;
        header.fst_lens = fst_lens;

        // The header last, with the final counts and the checksums, then
        // the footer, then make it all durable.
        bar.message("checksums");
        seal::seal(
            tmp.path(),
            scanned.pages_file,
            scanned.header_len,
            &mut header,
            &mut phase,
        )?;
        bar.finish();
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
