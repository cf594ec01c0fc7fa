//! The one error type of the crate, [`IndexError`].
//!
//! Every variant carries the path (and, for bad input, the byte offset) it is
//! about, and its message says what to do next. Callers that branch on the
//! kind of failure (the host maps a missing or stale index to a startup error
//! with a rebuild hint) match on the variant; everybody else prints it.

use std::io;
use std::path::PathBuf;

/// Why building or opening a title index failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing, e.g. "cannot open dump".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The dump file has no bytes at all.
    #[error(
        "{path} is empty (0 bytes), not a MediaWiki XML export: \
         download pages-articles.xml.bz2 again and decompress it completely"
    )]
    EmptyDump {
        /// The dump.
        path: PathBuf,
    },

    /// The dump is UTF-16 encoded; MediaWiki exports are UTF-8.
    #[error(
        "{path} looks like UTF-16 at byte {offset}: MediaWiki exports are UTF-8; \
         use the original dump, or convert it with `iconv -f UTF-16 -t UTF-8`"
    )]
    Utf16 {
        /// The dump.
        path: PathBuf,
        /// Where the UTF-16 evidence (a byte-order mark or NUL bytes) is.
        offset: u64,
    },

    /// The dump is still compressed.
    #[error(
        "{path} is {format}-compressed (magic bytes at byte 0): \
         decompress it first, e.g. `{command} {path}`, and index the .xml file"
    )]
    Compressed {
        /// The dump.
        path: PathBuf,
        /// "bzip2", "gzip", "zstd", "xz" or "7z".
        format: &'static str,
        /// The command that decompresses it.
        command: &'static str,
    },

    /// The file does not start like a MediaWiki XML export.
    #[error(
        "{path} is not a MediaWiki XML export: at byte {offset} expected {expected} \
         but found {found:?}; pass an uncompressed pages-articles.xml dump"
    )]
    NotAnExport {
        /// The dump.
        path: PathBuf,
        /// Where the unexpected bytes are.
        offset: u64,
        /// What should have been there.
        expected: &'static str,
        /// The first bytes that were there instead (lossily decoded).
        found: String,
    },

    /// The export uses a schema version this scanner does not know.
    #[error(
        "{path} uses MediaWiki export schema {version} (byte {offset}); \
         percore reads schema 0.10 and 0.11: download a current dump"
    )]
    UnsupportedSchema {
        /// The dump.
        path: PathBuf,
        /// Where the `<mediawiki ...>` element is.
        offset: u64,
        /// The version found, e.g. "0.4".
        version: String,
    },

    /// The dump ends inside a `<page>` or before `</mediawiki>`.
    #[error(
        "{path} is truncated: {what} (byte {offset} of {len}); \
         the download or decompression was interrupted: fetch or decompress the dump again"
    )]
    Truncated {
        /// The dump.
        path: PathBuf,
        /// The start of the unclosed element, or the end of the file.
        offset: u64,
        /// The dump's size in bytes.
        len: u64,
        /// What is missing, e.g. "the `<page>` at byte 123 is never closed".
        what: String,
    },

    /// The dump is an export but something in it is malformed.
    #[error("{path} is malformed at byte {offset}: {what}; the dump is corrupt: fetch it again")]
    Malformed {
        /// The dump.
        path: PathBuf,
        /// Where the problem is.
        offset: u64,
        /// What is wrong.
        what: String,
    },

    /// The output directory exists and is not a title index we may replace.
    #[error(
        "{path} exists and is not a percore title index: \
         choose another --out directory or remove it"
    )]
    OutputNotAnIndex {
        /// The output directory.
        path: PathBuf,
    },

    /// There is no index in the directory.
    #[error("no title index at {dir}: build one with `percore index DUMP.xml --out {dir}`")]
    IndexMissing {
        /// The index directory.
        dir: PathBuf,
    },

    /// The index was written by another format version, or is damaged.
    #[error(
        "the title index at {dir} is unusable ({why}): \
         rebuild it with `percore index {dump} --out {dir}`"
    )]
    IndexUnusable {
        /// The index directory.
        dir: PathBuf,
        /// The dump it was built from, as far as we know it.
        dump: PathBuf,
        /// What is wrong, e.g. "…/pages.bin has format version 1 (from a
        /// percore without checksums); this build reads version 2".
        why: String,
    },

    /// An index file is not what the builder wrote: its checksum or its
    /// size differs from what the index recorded. The file was damaged
    /// after `percore index` wrote it (a failing disk, an interrupted copy,
    /// a write by another program), and nothing in it can be trusted.
    #[error(
        "the title index at {dir} is corrupt: {file} {why}, so it changed after \
         `percore index` wrote it (a failing disk, a bad copy, or a write by another program); \
         rebuild the index with `percore index {dump} --out {dir}`"
    )]
    IndexCorrupt {
        /// The index directory.
        dir: PathBuf,
        /// The damaged file.
        file: PathBuf,
        /// The dump the index was built from, as far as we know it (when
        /// `pages.bin`, which records it, is the damaged file: the path it
        /// records if such a file exists, else `DUMP.xml`).
        dump: PathBuf,
        /// How it differs, e.g. "has checksum 0123…, but the index
        /// recorded 4567…".
        why: String,
    },

    /// The dump the index was built from cannot be opened.
    #[error(
        "the title index at {dir} was built from {dump}, which cannot be opened ({source}): \
         if the dump moved, open the index with its new path (`TitleIndex::open_with_dump`); \
         otherwise rebuild it with `percore index DUMP.xml --out {dir}`"
    )]
    DumpMissing {
        /// The index directory.
        dir: PathBuf,
        /// The dump path the index recorded (or the override given).
        dump: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The index was built from a dump of another size or content.
    #[error(
        "the title index at {dir} was built for {expected}, but {dump} is {found}: \
         rebuild it with `percore index {dump} --out {dir}` (or point at the dump it was built from)"
    )]
    DumpMismatch {
        /// The index directory.
        dir: PathBuf,
        /// The dump we opened.
        dump: PathBuf,
        /// What the index recorded, e.g. "a dump of 123 bytes".
        expected: String,
        /// What the dump is, e.g. "456 bytes".
        found: String,
    },
}

impl IndexError {
    /// Wraps an I/O error with what we were doing and the path involved.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The byte offset in the dump that the error is about, if there is one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Self::Utf16 { offset, .. }
            | Self::NotAnExport { offset, .. }
            | Self::UnsupportedSchema { offset, .. }
            | Self::Truncated { offset, .. }
            | Self::Malformed { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}
