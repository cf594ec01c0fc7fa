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
//! # Layout
//!
//! | module | owns |
//! | --- | --- |
//! | `scan` | finding `<page>` elements and their title, ns, id, redirect in the mapped dump (memchr, no XML parser) |
//! | `builder` | [`build_index`] / [`IndexBuilder`]: scan, write the page table and strings, sort titles, write the fst, rename into place; [`BuildReport`] |
//! | `format` | the bytes on disk: header, fixed-width page records, the dump fingerprint |
//! | `index` | [`TitleIndex`]: open and validate, exact / normalised / prefix lookups, page bytes |
//! | `normalize` | [`normalize_title`] and the case-insensitive prefix automaton |
//! | `mmap` | the crate's one `unsafe` call: mapping a file read-only |
//! | `error` | [`IndexError`], whose messages say how to fix the problem |
//! | [`synth`] | a deterministic generator of realistic synthetic dumps, for benches and tests |
//!
//! The on-disk format is documented in `format.rs`; an index is a directory
//! `pages.bin` + `strings.bin` + `titles.N.fst` that records the dump's
//! absolute path, size and fingerprint, so it is never used with another
//! dump.

#![deny(missing_docs)]

mod builder;
mod error;
mod format;
mod index;
mod mmap;
mod normalize;
mod scan;
pub mod synth;

pub use builder::{BuildOptions, BuildReport, DuplicateTitle, IndexBuilder, build_index};
pub use error::IndexError;
pub use index::{Page, TitleIndex};
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
