//! Damaged indexes: every file's checksum is verified at open, so a flipped
//! byte anywhere is refused with the file named; an index from before
//! checksums is refused with a rebuild hint; and damage that gets past
//! verification (an unverified open, or a file rewritten while mapped)
//! gives `None` or empty answers, never a panic.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use percore_index::{IndexBuilder, IndexError, TitleIndex};

use crate::support::{fixture, tempdir};

/// Builds `tricky.xml` into `dir/index` with three fst shards; returns the
/// index directory and the dump (copied into `dir`, as the index records it).
fn build_tricky(dir: &Path) -> (PathBuf, PathBuf) {
    let dump = dir.join("tricky.xml");
    std::fs::copy(fixture("tricky.xml"), &dump).unwrap();
    let out = dir.join("index");
    IndexBuilder::new(&dump, &out).threads(3).build().unwrap();
    (out, dump)
}

/// The index files in `dir`, by name.
fn index_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Every query the host makes, over everything the index holds; the
/// answers may be wrong, but nothing may panic.
fn query_everything(index: &TitleIndex) {
    let mut titles: Vec<String> = index
        .prefix("", None, 10_000)
        .into_iter()
        .map(|p| p.title)
        .collect();
    titles.extend(
        index
            .prefix_ci("", None, 10_000)
            .into_iter()
            .map(|p| p.title),
    );
    titles.extend(["AT&T", "talk:москва", "Zürich", "", "\u{10FFFF}"].map(String::from));
    for title in &titles {
        for page in [
            index.lookup(title),
            index.lookup_normalized(title),
            index.resolve(title, 5),
        ]
        .into_iter()
        .flatten()
        {
            let _ = page.byte_len();
            let _ = index.page_bytes(&page);
            let _ = index.page_text(&page);
        }
        let prefix: String = title.chars().take(2).collect();
        let _ = index.prefix(&prefix, Some(title), 10);
        let _ = index.prefix_ci(&prefix.to_lowercase(), None, 10);
    }
    for n in 0..index.page_count() + 3 {
        if let Some(page) = index.page(n) {
            assert!(
                page.first <= page.last && page.last < index.dump_len(),
                "{page:?}"
            );
            let _ = index.page_bytes(&page);
            let _ = index.page_text(&page);
        }
    }
    let _ = index.page(u64::MAX);
}

#[test]
fn a_flipped_byte_in_any_file_is_refused_naming_the_file() {
    let dir = tempdir();
    let (out, dump) = build_tricky(dir.path());
    let files = index_files(&out);
    assert_eq!(files.len(), 5, "pages, strings, three fsts: {files:?}");
    for file in &files {
        let good = std::fs::read(file).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 1 << (at % 8);
            std::fs::write(file, &bad).unwrap();
            let err = TitleIndex::open(&out).expect_err("a damaged index must not open");
            let msg = err.to_string();
            let name = file.file_name().unwrap().to_str().unwrap();
            assert!(
                msg.contains(&file.display().to_string()),
                "{name} byte {at}: {msg}"
            );
            assert!(
                msg.contains(&format!("--out {}`", out.display())),
                "{name} byte {at}: {msg}"
            );
            match err {
                IndexError::IndexCorrupt { file: named, .. } => assert_eq!(&named, file),
                // The magic and the version are checked before the checksum.
                IndexError::IndexUnusable { .. } => {
                    assert!(name == "pages.bin" && at < 12, "{name} byte {at}: {msg}")
                }
                other => panic!("{name} byte {at}: {other:?}"),
            }
            if name != "pages.bin" {
                assert!(
                    msg.contains(&format!("percore index {} --out", dump.display())),
                    "{name} byte {at}: the hint names the dump: {msg}"
                );
            }
        }
        std::fs::write(file, &good).unwrap();
    }
    TitleIndex::open(&out).expect("the repaired index opens");
}

#[test]
fn a_file_of_the_wrong_size_is_refused_naming_it() {
    let dir = tempdir();
    let (out, _) = build_tricky(dir.path());
    for file in index_files(&out) {
        let good = std::fs::read(&file).unwrap();
        for bad in [&good[..good.len() - 1], &[&good[..], b"\0"].concat()] {
            std::fs::write(&file, bad).unwrap();
            let err = TitleIndex::open(&out).unwrap_err();
            assert!(matches!(err, IndexError::IndexCorrupt { .. }), "{err:?}");
            assert!(
                err.to_string().contains(&file.display().to_string()),
                "{err}"
            );
        }
        std::fs::write(&file, &good).unwrap();
    }
}

#[test]
fn an_index_from_before_checksums_is_refused_with_a_rebuild_hint() {
    // Built by the last percore that wrote format version 1, from a copy of
    // tricky.xml at /tmp/v1fix/dump.xml.
    let dir = tempdir();
    let out = dir.path().join("index");
    std::fs::create_dir(&out).unwrap();
    for file in index_files(&fixture("index-v1")) {
        std::fs::copy(&file, out.join(file.file_name().unwrap())).unwrap();
    }
    for open in [TitleIndex::open, TitleIndex::open_unverified] {
        let err = open(&out).unwrap_err();
        assert!(matches!(err, IndexError::IndexUnusable { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(
                "pages.bin has format version 1, written by an older percore without checksums"
            ),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "rebuild it with `percore index /tmp/v1fix/dump.xml --out {}`",
                out.display()
            )),
            "{msg}"
        );
    }
}

#[test]
fn damaged_records_and_strings_opened_unverified_never_panic() {
    let dir = tempdir();
    let (out, _) = build_tricky(dir.path());
    for name in ["pages.bin", "strings.bin"] {
        let file = out.join(name);
        let good = std::fs::read(&file).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= [0x01, 0x80, 0xFF, 0x10][at % 4];
            std::fs::write(&file, &bad).unwrap();
            if let Ok(index) = TitleIndex::open_unverified(&out) {
                query_everything(&index);
            }
        }
        std::fs::write(&file, &good).unwrap();
    }
}

#[test]
fn records_pointing_anywhere_never_panic() {
    let dir = tempdir();
    let (out, _) = build_tricky(dir.path());
    let file = out.join("pages.bin");
    let good = std::fs::read(&file).unwrap();
    let index = TitleIndex::open(&out).unwrap();
    let count = index.page_count() as usize;
    drop(index);
    // Records are 40 bytes and end where the 8-byte footer starts.
    let records_at = good.len() - 8 - count * 40;
    let fields: [(usize, &[u8]); 10] = [
        (0, &u64::MAX.to_le_bytes()),        // first after last
        (8, &u64::MAX.to_le_bytes()),        // last past the dump
        (8, &0u64.to_le_bytes()),            // last before first
        (24, &u64::MAX.to_le_bytes()),       // title offset at the end of memory
        (24, &(u64::MAX - 3).to_le_bytes()), // title offset + length overflows
        (24, &100_000u64.to_le_bytes()),     // title offset past strings.bin
        (32, &0xFFFEu16.to_le_bytes()),      // longest title
        (34, &0xFFFEu16.to_le_bytes()),      // longest redirect
        (34, &0u16.to_le_bytes()),           // empty redirect
        (36, &i32::MIN.to_le_bytes()),       // odd namespace
    ];
    for record in 0..count {
        for (offset, value) in fields {
            let mut bad = good.clone();
            let at = records_at + record * 40 + offset;
            bad[at..at + value.len()].copy_from_slice(value);
            std::fs::write(&file, &bad).unwrap();
            assert!(matches!(
                TitleIndex::open(&out),
                Err(IndexError::IndexCorrupt { .. })
            ));
            query_everything(&TitleIndex::open_unverified(&out).unwrap());
        }
    }
}

#[test]
fn files_rewritten_while_mapped_never_panic() {
    let dir = tempdir();
    let (out, _) = build_tricky(dir.path());
    let index = TitleIndex::open(&out).unwrap();
    query_everything(&index);
    // Same size, other bytes, written into the mapped files themselves (a
    // shared volume changing under a running host): the maps see it.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for name in ["pages.bin", "strings.bin"] {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(out.join(name))
            .unwrap();
        let len = file.metadata().unwrap().len();
        for _ in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            file.write_at(&[(seed >> 32) as u8], seed % len).unwrap();
            query_everything(&index);
        }
    }
}
