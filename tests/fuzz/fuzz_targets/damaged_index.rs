//! Fuzzes opening a damaged index: a real small index of
//! `host/index/testdata/sample.xml`, built once into a temporary directory
//! (a static, never dropped: `run.sh` points `TMPDIR` at a folder it
//! removes), gets bytes
//! XORed at fuzzer-chosen positions in one of its files. Then:
//!
//! * `TitleIndex::open` must refuse it, with an error that names the file
//!   (and must open it when the XORs cancel out);
//! * lookups (exact, normalised, prefix, case-insensitive prefix, by page
//!   number, page bytes and text) must never panic, also on an index
//!   opened with `open_unverified` when the damage is in `pages.bin` or
//!   `strings.bin`: the case of a file that changes after verification.
//!
//! Damaged fst files are only opened verified: the `fst` crate may panic on
//! malformed bytes, and verifying at open is the defence there (see
//! `TitleIndex::open_unverified`).
//!
//! Input: one byte picks the file, then each 3 bytes are an edit: a
//! position (`u16`, little-endian, modulo the file's length) and the byte
//! to XOR there.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use percore_index::{IndexBuilder, TitleIndex};

/// The index every run damages a copy of one file of.
struct Fixture {
    /// Holds the index.
    _dir: tempfile::TempDir,
    /// The index directory.
    index: PathBuf,
    /// Each index file and its intact bytes.
    files: Vec<(PathBuf, Vec<u8>)>,
    /// Titles to look up: every eighth title of the intact index (all of
    /// them made runs several times slower), plus misses.
    titles: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let dump =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../host/index/testdata/sample.xml");
        let index = dir.path().join("index");
        // Three shards, so that damage can also hit a shard boundary.
        IndexBuilder::new(&dump, &index)
            .threads(3)
            .build()
            .expect("index the sample dump");
        let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&index)
            .expect("list the index")
            .map(|e| {
                let path = e.expect("an index file").path();
                let bytes = std::fs::read(&path).expect("read an index file");
                (path, bytes)
            })
            .collect();
        files.sort();
        let intact = TitleIndex::open(&index).expect("the intact index opens");
        let mut titles: Vec<String> = intact
            .prefix("", None, usize::MAX)
            .into_iter()
            .step_by(8)
            .map(|p| p.title)
            .collect();
        titles.extend(["talk:москва", "python_(programming_language)", "", "Zz"].map(String::from));
        Fixture {
            _dir: dir,
            index,
            files,
            titles,
        }
    })
}

/// Every query the host makes, and every page by number; answers may be
/// wrong, nothing may panic.
fn query(index: &TitleIndex, titles: &[String]) {
    for title in titles {
        for page in [
            index.lookup(title),
            index.lookup_normalized(title),
            index.resolve(title, 3),
        ]
        .into_iter()
        .flatten()
        {
            assert!(
                page.first <= page.last && page.last < index.dump_len(),
                "{page:?}"
            );
            let _ = page.byte_len();
            let _ = index.page_bytes(&page);
            let _ = index.page_text(&page);
        }
    }
    for prefix in ["", "A", "Talk:", "Py"] {
        let _ = index.prefix(prefix, None, 50);
        let _ = index.prefix(prefix, Some("M"), 50);
        let _ = index.prefix_ci(&prefix.to_lowercase(), None, 50);
    }
    for n in 0..index.page_count() + 2 {
        if let Some(page) = index.page(n) {
            let _ = index.page_bytes(&page);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let Some((&which, edits)) = data.split_first() else {
        return;
    };
    let (path, good) = &fixture.files[usize::from(which) % fixture.files.len()];
    let mut bad = good.clone();
    for edit in edits.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % bad.len();
        bad[at] ^= edit[2];
    }
    std::fs::write(path, &bad).expect("write the damaged file");
    let damaged = bad != *good;
    let name = path.display().to_string();

    match TitleIndex::open(&fixture.index) {
        Ok(index) => {
            assert!(!damaged, "a damaged {name} was opened");
            query(&index, &fixture.titles);
        }
        Err(e) => {
            assert!(damaged, "the intact index was refused: {e}");
            assert!(
                e.to_string().contains(&name),
                "the error does not name {name}: {e}"
            );
        }
    }
    if path.extension().is_some_and(|ext| ext == "bin") {
        if let Ok(index) = TitleIndex::open_unverified(&fixture.index) {
            query(&index, &fixture.titles);
        }
    }
    std::fs::write(path, good).expect("restore the file");
});
