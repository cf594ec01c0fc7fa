//! The lookup API and `open`'s validation.

use std::sync::Arc;

use percore_index::{IndexError, TitleIndex, normalize_title};

use crate::support::{build, fixture, tempdir};

fn titles(pages: Vec<percore_index::Page>) -> Vec<String> {
    pages.into_iter().map(|p| p.title).collect()
}

#[test]
fn exact_and_normalized_lookup() {
    let dir = tempdir();
    let (_, index) = build(&fixture("tricky.xml"), dir.path());
    assert!(
        index.lookup("at&t").is_none(),
        "exact lookup is case-sensitive"
    );
    assert_eq!(
        index.lookup_normalized("at&t"),
        None,
        "only the first letter is upper-cased"
    );
    assert_eq!(index.lookup_normalized("aT&T").unwrap().id, 17555269);
    assert_eq!(
        index
            .lookup_normalized("_star_Wars:_Episode_IV_–_A_New_Hope_")
            .unwrap()
            .id,
        50793
    );
    assert_eq!(
        index.lookup_normalized("talk:москва").unwrap().title,
        "Talk:Москва"
    );
    assert_eq!(index.lookup_normalized("TALK : москва").unwrap().id, 19005);
    assert_eq!(
        index
            .lookup_normalized("category:programming languages")
            .unwrap()
            .namespace,
        14
    );
    assert!(index.lookup_normalized("nope").is_none());
    assert_eq!(normalize_title("o'Brien"), "O'Brien");
    let resolved = index.resolve("AccessibleComputing", 3).unwrap();
    assert_eq!(
        resolved.title, "AccessibleComputing",
        "target absent: stays on the redirect"
    );
    assert_eq!(
        index.namespaces().iter().find(|(k, _)| *k == 1).unwrap().1,
        "Talk"
    );
}

#[test]
fn prefix_listing_with_cursor_and_limit() {
    let dir = tempdir();
    let (_, index) = build(&fixture("tricky.xml"), dir.path());
    assert_eq!(
        titles(index.prefix("Talk:", None, 10)),
        ["Talk:Star Wars: Episode IV – A New Hope", "Talk:Москва"]
    );
    assert_eq!(
        titles(index.prefix("Talk:", None, 1)),
        ["Talk:Star Wars: Episode IV – A New Hope"]
    );
    assert_eq!(
        titles(index.prefix("Talk:", Some("Talk:Star Wars: Episode IV – A New Hope"), 10)),
        ["Talk:Москва"]
    );
    assert_eq!(
        titles(index.prefix("Talk:", Some("Talk:Москва"), 10)),
        Vec::<String>::new()
    );
    assert!(index.prefix("Talk:", None, 0).is_empty());
    // Byte order over everything, paged 5 at a time.
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch = index.prefix("", after.as_deref(), 5);
        if batch.is_empty() {
            break;
        }
        after = batch.last().map(|p| p.title.clone());
        all.extend(titles(batch));
    }
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(all, sorted);
    assert_eq!(all.len(), index.len());
}

#[test]
fn case_insensitive_prefix() {
    let dir = tempdir();
    let (_, index) = build(&fixture("tricky.xml"), dir.path());
    assert_eq!(titles(index.prefix_ci("моск", None, 10)), ["Москва"]);
    assert_eq!(
        titles(index.prefix_ci("TALK:", None, 10)),
        ["Talk:Star Wars: Episode IV – A New Hope", "Talk:Москва"]
    );
    assert_eq!(titles(index.prefix_ci("at&", None, 10)), ["AT&T"]);
    assert_eq!(titles(index.prefix_ci("zÜ", None, 10)), ["Zürich"]);
    assert_eq!(
        titles(index.prefix_ci("talk:", Some("Talk:Star Wars: Episode IV – A New Hope"), 10)),
        ["Talk:Москва"]
    );
    assert_eq!(index.prefix_ci("", None, 100).len(), index.len());
    assert!(index.prefix_ci("xyz", None, 10).is_empty());
}

#[test]
fn shared_across_threads() {
    let dir = tempdir();
    let (_, index) = build(&fixture("tricky.xml"), dir.path());
    let index = Arc::new(index);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let index = Arc::clone(&index);
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    assert_eq!(index.lookup("東京都").unwrap().id, 30057);
                    assert_eq!(index.prefix("Star", None, 5).len(), 1);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn open_reports_missing_index() {
    let dir = tempdir();
    let err = TitleIndex::open(dir.path()).unwrap_err();
    assert!(matches!(err, IndexError::IndexMissing { .. }));
    assert!(
        err.to_string().contains("percore index DUMP.xml --out"),
        "{err}"
    );
}

#[test]
fn open_rejects_a_changed_dump() {
    let dir = tempdir();
    let dump = dir.path().join("dump.xml");
    let src = std::fs::read(fixture("tricky.xml")).unwrap();
    std::fs::write(&dump, &src).unwrap();
    let (_, index) = build(&dump, dir.path());
    let out = index.dir().to_path_buf();
    assert_eq!(index.dump_path(), std::fs::canonicalize(&dump).unwrap());
    assert_eq!(index.dump_len(), src.len() as u64);
    drop(index);

    // Grown: size mismatch.
    let mut longer = src.clone();
    longer.push(b'\n');
    std::fs::write(&dump, &longer).unwrap();
    let err = TitleIndex::open(&out).unwrap_err();
    assert!(matches!(err, IndexError::DumpMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("a dump of {} bytes", src.len()))
            && msg.contains("rebuild it with `percore index"),
        "{msg}"
    );

    // Same size, other bytes: fingerprint mismatch.
    let mut other = src.clone();
    let at = other.len() / 2;
    other[at] = if other[at] == b'x' { b'y' } else { b'x' };
    std::fs::write(&dump, &other).unwrap();
    let err = TitleIndex::open(&out).unwrap_err();
    assert!(err.to_string().contains("fingerprint"), "{err}");

    // Moved: the recorded path is gone, open_with_dump finds it.
    std::fs::write(&dump, &src).unwrap();
    let moved = dir.path().join("moved.xml");
    std::fs::rename(&dump, &moved).unwrap();
    let err = TitleIndex::open(&out).unwrap_err();
    assert!(matches!(err, IndexError::DumpMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("if the dump moved"), "{err}");
    let index = TitleIndex::open_with_dump(&out, &moved).unwrap();
    assert_eq!(index.lookup("Москва").unwrap().id, 19004);
}

#[test]
fn open_rejects_other_versions_and_damage() {
    let dir = tempdir();
    let (_, index) = build(&fixture("tricky.xml"), dir.path());
    let out = index.dir().to_path_buf();
    drop(index);
    let pages = out.join("pages.bin");
    let good = std::fs::read(&pages).unwrap();

    let mut old = good.clone();
    old[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&pages, &old).unwrap();
    let err = TitleIndex::open(&out).unwrap_err();
    assert!(matches!(err, IndexError::IndexUnusable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("format version 99") && err.to_string().contains("rebuild it"),
        "{err}"
    );

    std::fs::write(&pages, &good[..good.len() - 40]).unwrap();
    let err = TitleIndex::open(&out).unwrap_err();
    assert!(matches!(err, IndexError::IndexCorrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("pages.bin has checksum"), "{err}");

    std::fs::write(&pages, &good).unwrap();
    std::fs::write(out.join("titles.0.fst"), b"garbage").unwrap();
    let err = TitleIndex::open(&out).unwrap_err();
    assert!(matches!(err, IndexError::IndexCorrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("titles.0.fst is 7 bytes"), "{err}");
}

#[test]
fn export_without_pages_gives_an_empty_index() {
    let dir = tempdir();
    let src = std::fs::read_to_string(fixture("tricky.xml")).unwrap();
    let first = src.find("  <page>").unwrap();
    let path = dir.path().join("nopages.xml");
    std::fs::write(&path, format!("{}</mediawiki>\n", &src[..first])).unwrap();
    let (report, index) = build(&path, dir.path());
    assert_eq!((report.pages, report.titles), (0, 0));
    assert!(index.is_empty());
    assert!(index.lookup("AT&T").is_none());
    assert!(index.prefix("", None, 10).is_empty());
    assert!(index.prefix_ci("", None, 10).is_empty());
}

#[test]
fn page_text_is_decoded_wikitext() {
    let dir = tempdir();
    let (_, index) = build(&fixture("tricky.xml"), dir.path());
    let att = index.lookup("AT&T").unwrap();
    let text = index.page_text(&att).unwrap();
    assert!(text.starts_with("'''AT&T Inc.''' is an American"), "{text}");
    assert!(text.contains("A dump is made of <page> elements"), "{text}");
    let deleted = index.lookup("Less <than> more été 😀").unwrap();
    assert_eq!(index.page_text(&deleted).as_deref(), Some(""));
    let redirect = index.lookup("O'Brien").unwrap();
    assert_eq!(
        index.page_text(&redirect).as_deref(),
        Some("#REDIRECT [[O'Brien (surname)]]")
    );
    // In pieces of at most 64 bytes, from where the last one ended.
    let whole = index.page_text(&att).unwrap().into_owned();
    let (mut offset, mut pieces) = (0, String::new());
    loop {
        let (piece, len) = index.page_text_window(&att, offset, 64).unwrap().unwrap();
        assert_eq!(len, whole.len() as u64);
        if piece.is_empty() {
            break;
        }
        offset += piece.len() as u64;
        pieces.push_str(&piece);
    }
    assert_eq!(pieces, whole);
    assert!(
        index
            .page_text_window(&att, whole.len() as u64 + 1, 64)
            .is_err()
    );
}
