//! The last phases of a build, "checksum" and "sync": hash every index
//! file, write the final header (counts, and the checksums of `strings.bin`
//! and of every fst) over the provisional one at the start of `pages.bin`,
//! append the footer (the checksum of all of `pages.bin` before it), and
//! make every file durable.
//!
//! Checksums are computed from the files as written, read back through
//! fresh maps, with the same function `TitleIndex::open` verifies with.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::IndexError;
use crate::checksum::checksums;
use crate::format::{Header, PAGES_FILE, STRINGS_FILE, fst_file};
use crate::mmap::{Access, Mapped};

/// Seals the index in `dir`: `pages_file` is `pages.bin` (write-only), whose
/// provisional header is `header_len` bytes; `header` has the final counts
/// and gets the checksums. Calls `phase` after "checksum" and "sync".
pub(super) fn seal(
    dir: &Path,
    mut pages_file: File,
    header_len: usize,
    header: &mut Header,
    mut phase: impl FnMut(&'static str),
) -> Result<(), IndexError> {
    let pages_path = dir.join(PAGES_FILE);
    let strings_path = dir.join(STRINGS_FILE);
    let fst_paths: Vec<PathBuf> = (0..header.fst_lens.len())
        .map(|n| dir.join(fst_file(n)))
        .collect();
    let write_error = |e| IndexError::io("cannot write", &pages_path, e);

    let others = std::iter::once(&strings_path)
        .chain(&fst_paths)
        .map(|path| Mapped::open(path, Access::Sequential, "cannot read back"))
        .collect::<Result<Vec<_>, _>>()?;
    let sums = checksums(&others.iter().map(|m| &m[..]).collect::<Vec<_>>());
    drop(others);
    header.strings_checksum = sums[0];
    header.fst_checksums = sums[1..].to_vec();

    let encoded = header.encode();
    if encoded.len() != header_len {
        return Err(write_error(std::io::Error::other(format!(
            "the final header is {} bytes, the provisional one {header_len}: a bug in percore-index",
            encoded.len()
        ))));
    }
    pages_file
        .seek(SeekFrom::Start(0))
        .and_then(|_| pages_file.write_all(&encoded))
        .map_err(write_error)?;
    let pages = Mapped::open(&pages_path, Access::Sequential, "cannot read back")?;
    let footer = checksums(&[&pages])[0];
    drop(pages);
    pages_file
        .seek(SeekFrom::End(0))
        .and_then(|_| pages_file.write_all(&footer.to_le_bytes()))
        .map_err(write_error)?;
    phase("checksum");

    pages_file.sync_all().map_err(write_error)?;
    for path in fst_paths.iter().chain([&strings_path]) {
        File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| IndexError::io("cannot sync", path, e))?;
    }
    phase("sync");
    Ok(())
}
