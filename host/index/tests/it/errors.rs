//! Bad input: clear errors with byte offsets, and no partial index.

use std::path::Path;

use percore_index::{BuildOptions, IndexError, build_index};

use crate::support::{build, fixture, tempdir};

/// Builds `dump` into a fresh dir; expects failure and no leftovers.
fn fails(dump: &Path) -> IndexError {
    let dir = tempdir();
    let out = dir.path().join("index");
    let err = build_index(dump, &out, BuildOptions::default()).expect_err("the build must fail");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    err
}

#[test]
fn truncated_dump_names_the_unclosed_page() {
    let path = fixture("truncated.xml");
    let dump = std::fs::read(&path).unwrap();
    let last_page = dump.windows(6).rposition(|w| w == b"<page>").unwrap() as u64;
    let err = fails(&path);
    assert!(matches!(err, IndexError::Truncated { .. }), "{err:?}");
    assert_eq!(err.offset(), Some(last_page));
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("the <page> at byte {last_page} is never closed")),
        "{msg}"
    );
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn dump_cut_between_pages_is_truncated() {
    let dir = tempdir();
    let src = std::fs::read_to_string(fixture("tricky.xml")).unwrap();
    let cut = src.rfind("</page>").unwrap() + 7;
    let path = dir.path().join("cut.xml");
    std::fs::write(&path, &src[..cut]).unwrap();
    let err = fails(&path);
    assert_eq!(err.offset(), Some(cut as u64), "{err}");
    assert!(err.to_string().contains("without </mediawiki>"), "{err}");
}

#[test]
fn page_cut_and_followed_by_another_page() {
    let dir = tempdir();
    let src = std::fs::read_to_string(fixture("tricky.xml")).unwrap();
    let second = src.match_indices("<page>").nth(1).unwrap().0;
    let third = src.match_indices("<page>").nth(2).unwrap().0;
    // Drop the end of the second page: it now runs into the third.
    let spliced = format!("{}{}", &src[..second + 100], &src[third - 3..]);
    let path = dir.path().join("spliced.xml");
    std::fs::write(&path, spliced).unwrap();
    let err = fails(&path);
    assert_eq!(err.offset(), Some(second as u64), "{err}");
    assert!(
        err.to_string()
            .contains("is not closed before the <page> at byte"),
        "{err}"
    );
}

#[test]
fn not_an_export() {
    let err = fails(&fixture("not-export.xml"));
    let dump = std::fs::read(fixture("not-export.xml")).unwrap();
    let rss = dump.windows(4).position(|w| w == b"<rss").unwrap() as u64;
    assert!(matches!(err, IndexError::NotAnExport { .. }), "{err:?}");
    assert_eq!(err.offset(), Some(rss));
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("at byte {rss}")) && msg.contains("<rss"),
        "{msg}"
    );
}

#[test]
fn utf16_dump() {
    let err = fails(&fixture("utf16.xml"));
    assert!(
        matches!(err, IndexError::Utf16 { offset: 0, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("UTF-16 at byte 0"), "{err}");
}

#[test]
fn utf16_without_bom() {
    let dir = tempdir();
    let path = dir.path().join("nobom.xml");
    let text = std::fs::read_to_string(fixture("tricky.xml")).unwrap();
    let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    std::fs::write(&path, bytes).unwrap();
    let err = fails(&path);
    assert!(
        matches!(err, IndexError::Utf16 { offset: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn empty_dump() {
    let err = fails(&fixture("empty.xml"));
    assert!(matches!(err, IndexError::EmptyDump { .. }), "{err:?}");
    assert!(err.to_string().contains("is empty (0 bytes)"), "{err}");
}

#[test]
fn compressed_dump() {
    let dir = tempdir();
    let path = dir.path().join("dump.xml.bz2");
    std::fs::write(&path, b"BZh91AY&SY\x00\x00").unwrap();
    let err = fails(&path);
    assert!(
        err.to_string().contains("bzip2-compressed") && err.to_string().contains("bunzip2"),
        "{err}"
    );
}

#[test]
fn unsupported_schema() {
    let dir = tempdir();
    let path = dir.path().join("old.xml");
    let src = std::fs::read_to_string(fixture("tricky.xml")).unwrap();
    std::fs::write(
        &path,
        src.replace("export-0.11", "export-0.3")
            .replace("version=\"0.11\"", "version=\"0.3\""),
    )
    .unwrap();
    let err = fails(&path);
    assert!(
        matches!(err, IndexError::UnsupportedSchema { offset: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn bad_entity_in_title() {
    let dir = tempdir();
    let path = dir.path().join("entity.xml");
    let src = std::fs::read_to_string(fixture("tricky.xml")).unwrap();
    let src = src.replace("<title>O&#039;Brien</title>", "<title>O&nbsp;Brien</title>");
    std::fs::write(&path, &src).unwrap();
    let at = src.find("&nbsp;").unwrap() as u64;
    let err = fails(&path);
    assert_eq!(err.offset(), Some(at), "{err}");
    assert!(err.to_string().contains("&nbsp;"), "{err}");
}

#[test]
fn failed_rebuild_keeps_the_old_index() {
    let dir = tempdir();
    let (_, index) = build(&fixture("tricky.xml"), dir.path());
    drop(index);
    let out = dir.path().join("index");
    let err = build_index(&fixture("truncated.xml"), &out, BuildOptions::default()).unwrap_err();
    assert!(matches!(err, IndexError::Truncated { .. }));
    let index = percore_index::TitleIndex::open(&out).unwrap();
    assert_eq!(index.page_count(), 13);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["index"], "no temp dirs left");
}

#[test]
fn refuses_to_overwrite_other_directories() {
    let dir = tempdir();
    std::fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
    let err = build_index(&fixture("tricky.xml"), dir.path(), BuildOptions::default()).unwrap_err();
    assert!(
        matches!(err, IndexError::OutputNotAnIndex { .. }),
        "{err:?}"
    );
    assert!(dir.path().join("precious.txt").exists());
}

#[test]
fn rebuild_replaces_an_index() {
    let dir = tempdir();
    let out = dir.path().join("index");
    build_index(&fixture("noindent.xml"), &out, BuildOptions::default()).unwrap();
    let first = percore_index::TitleIndex::open(&out).unwrap();
    assert!(first.dump_path().ends_with("noindent.xml"));
    drop(first);
    build_index(&fixture("tricky.xml"), &out, BuildOptions::default()).unwrap();
    let second = percore_index::TitleIndex::open(&out).unwrap();
    assert!(second.dump_path().ends_with("tricky.xml"));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["index"], "no temp or old dirs left");
}

#[test]
fn cut_or_corrupted_anywhere_never_panics_nor_leaves_an_index() {
    let src = std::fs::read(fixture("tricky.xml")).unwrap();
    let dir = tempdir();
    let dump = dir.path().join("dump.xml");
    let out = dir.path().join("index");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..200 {
        let mut bytes = src.clone();
        if round % 2 == 0 {
            bytes.truncate(round * 37 % src.len());
        } else {
            for _ in 0..1 + round % 4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed % bytes.len() as u64) as usize;
                bytes[at] = b"<>/&\"' a\n\0"[(seed >> 32) as usize % 10];
            }
        }
        std::fs::write(&dump, &bytes).unwrap();
        match build_index(&dump, &out, BuildOptions::default()) {
            Ok(_) => {
                let index = percore_index::TitleIndex::open(&out).unwrap();
                for page in index.prefix("", None, 100) {
                    let xml = index.page_bytes(&page);
                    assert!(xml.starts_with(b"<page>") && xml.ends_with(b"</page>"));
                }
                drop(index);
                std::fs::remove_dir_all(&out).unwrap();
            }
            Err(e) => {
                assert!(!out.exists(), "round {round}: {e}");
                assert!(e.to_string().contains("dump.xml"), "round {round}: {e}");
            }
        }
    }
}
