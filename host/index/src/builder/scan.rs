//! Phase 1 of a build, "scan": the dump scanner (`crate::scan`) runs on
//! one thread per core, each taking the next chunk of the dump (chunks
//! start at a `<page>`), mapping just that part and handing back a batch;
//! this thread writes the batches in dump order: records to `pages.bin`,
//! titles and redirect targets to `strings.bin`.
//!
//! Memory: the scanner keeps nothing per page, and each chunk is unmapped
//! when done, so the dump's pages do not accumulate in resident memory.
//! What grows with the dump is what the later phases need: 24 bytes per
//! page of sort keys and title places ([`Scanned`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use super::progress::Progress;
use super::sort::title_prefix;
use crate::IndexError;
use crate::format::{Header, MAX_STRING_LEN, NO_REDIRECT, PAGES_FILE, Record, STRINGS_FILE};
use crate::mmap::{Access, Mapped};
use crate::scan::Scanner;

/// What [`scan_into`] leaves for the later phases.
pub(super) struct Scanned {
    /// `pages.bin`, header not yet final.
    pub pages_file: File,
    /// Where records start in `pages.bin`.
    pub header_len: usize,
    /// Sort keys: the first 8 title bytes (big-endian) and the page number.
    pub keys: Vec<(u64, u32)>,
    /// Per page: offset of the title in `strings.bin` << 16 | title length.
    pub strings_at: Vec<u64>,
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
pub(super) fn scan_into(
    scanner: Scanner<'_>,
    file: &File,
    (threads, chunk_size): (usize, usize),
    dir: &Path,
    dump_path: &Path,
    header: &mut Header,
    bar: &Progress,
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
                    bar.position(batch.end);
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
