//! The Wikipedia title index: built once from a MediaWiki XML dump,
//! memory-mapped, and shared read-only by every worker.
//!
//! ```no_run
//! use std::path::Path;
//! use percore_index::{BuildOptions, TitleIndex, build_index};
//!
//! # fn main() -> Result<(), percore_index::IndexError> {
//! let report = build_index(Path::new("pages-articles.xml"), Path::new("index"), BuildOptions::default())?;
//! println!("{report}");
//! let index = TitleIndex::open(Path::new("index"))?;
//! if let Some(page) = index.lookup_normalized("rust_(programming language)") {
//!     let xml = index.page_bytes(&page); // <page>…</page>, straight from the mapped dump
//!     println!("{} is {} bytes at {}-{}", page.title, xml.len(), page.first, page.last);
//! }
//! for page in index.prefix_ci("москв", None, 10) {
//!     println!("{}", page.title);
//! }
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! None by default. `progress` draws a progress bar while building (the
//! host's `percore index` enables it; without it [`BuildOptions::progress`]
//! and [`IndexBuilder::progress`] are accepted and ignored). `synth` adds
//! the `synth` module, for tests, benches and examples.
//!
//! # Layout
//!
//! | file | owns |
//! | --- | --- |
//! | `lib.rs` | this map, the features, the public re-exports |
//! | `scan.rs` | finding `<page>` elements and their title, ns, id, redirect in the mapped dump (memchr, no XML parser) |
//! | `builder/mod.rs` | [`build_index`] / [`IndexBuilder`] / [`BuildOptions`]: runs the build's phases in order |
//! | `builder/scan.rs` | phase "scan": the scanner on every core, writing `pages.bin` and `strings.bin` in dump order |
//! | `builder/sort.rs` | phase "sort": title order, split into one sorted run per fst shard |
//! | `builder/fsts.rs` | phase "fst": one fst per shard, in parallel; duplicate titles |
//! | `builder/seal.rs` | phases "checksum" and "sync": checksums, final header, footer, `fsync` |
//! | `builder/tempdir.rs` | the scratch directory next to the output and the rename into place |
//! | `builder/progress.rs` | the progress bar (feature `progress`) |
//! | `builder/report.rs` | [`BuildReport`], [`DuplicateTitle`] |
//! | `format.rs` | the bytes on disk: header, fixed-width page records, footer, the dump fingerprint |
//! | `checksum.rs` | the checksum of an index file (block-wise XXH3, hashed on several cores) |
//! | `index.rs` | [`TitleIndex`]: open, verify and validate; exact / normalised / prefix lookups; page bytes |
//! | `normalize.rs` | [`normalize_title`] and the case-insensitive prefix automaton |
//! | `mmap.rs` | the crate's `unsafe` calls: mapping a file read-only, and its `madvise`/`mincore` |
//! | `error.rs` | [`IndexError`], whose messages say how to fix the problem |
//! | `synth.rs` | `synth` (feature `synth`): a deterministic generator of realistic synthetic dumps |
//!
//! The on-disk format is documented in `format.rs`; an index is a directory
//! `pages.bin` + `strings.bin` + `titles.N.fst` that records the dump's
//! absolute path, size and fingerprint, so it is never used with another
//! dump, and a checksum of every file, so that a damaged index is refused
//! when it is opened.

#![deny(missing_docs)]

mod builder;
mod checksum;
mod error;
mod format;
mod index;
mod mmap;
mod normalize;
mod scan;
#[cfg(feature = "synth")]
pub mod synth;

pub use builder::{BuildOptions, BuildReport, DuplicateTitle, IndexBuilder, build_index};
pub use error::IndexError;
pub use index::{Page, TextWindowError, TitleIndex, text_window};
pub use normalize::normalize_title;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TitleIndex>();
        assert_send_sync::<IndexError>();
    }
}
