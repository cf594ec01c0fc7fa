//! Helpers: the independent reference reader and temp-dir builds.

use std::path::{Path, PathBuf};

use percore_index::{BuildOptions, BuildReport, IndexBuilder, TitleIndex, build_index};
use quick_xml::events::Event;

/// A page as quick-xml reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefPage {
    pub title: String,
    pub first: u64,
    pub last: u64,
    pub id: u64,
    pub ns: i32,
    pub redirect: Option<String>,
}

/// The path of a fixture.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Reads every `<page>` of a dump with quick-xml, a real XML parser that
/// shares no code with the scanner.
pub fn reference_pages(xml: &[u8]) -> Vec<RefPage> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut pages = Vec::new();
    let mut current: Option<RefPage> = None;
    let mut text = String::new();
    loop {
        let event = reader.read_event().expect("quick-xml reads the fixture");
        let pos = reader.buffer_position();
        match event {
            Event::Start(e) => {
                let name = e.name().as_ref().to_vec();
                if name == b"page" {
                    let first = pos - (e.len() as u64 + 2);
                    current = Some(RefPage {
                        title: String::new(),
                        first,
                        last: 0,
                        id: u64::MAX,
                        ns: i32::MIN,
                        redirect: None,
                    });
                }
                stack.push(name);
                text.clear();
            }
            Event::Empty(e)
                if e.name().as_ref() == b"redirect"
                    && stack.last().is_some_and(|n| n == b"page") =>
            {
                let title = e
                    .try_get_attribute("title")
                    .unwrap()
                    .expect("redirect has a title");
                current.as_mut().unwrap().redirect =
                    Some(title.unescape_value().unwrap().into_owned());
            }
            Event::Text(e) => text.push_str(&e.decode().unwrap()),
            Event::GeneralRef(e) => {
                if let Some(c) = e.resolve_char_ref().unwrap() {
                    text.push(c);
                } else {
                    let name = e.decode().unwrap();
                    text.push_str(
                        quick_xml::escape::resolve_predefined_entity(&name).expect("known entity"),
                    );
                }
            }
            Event::End(e) => {
                let name = stack.pop().unwrap();
                assert_eq!(name, e.name().as_ref());
                let parent_is_page = stack.last().is_some_and(|n| n == b"page");
                if let Some(page) = current.as_mut() {
                    match (name.as_slice(), parent_is_page) {
                        (b"title", true) => page.title = std::mem::take(&mut text),
                        (b"ns", true) => page.ns = text.trim().parse().unwrap(),
                        (b"id", true) if page.id == u64::MAX => {
                            page.id = text.trim().parse().unwrap()
                        }
                        (b"page", _) => {
                            let mut page = current.take().unwrap();
                            page.last = pos - 1;
                            pages.push(page);
                        }
                        _ => {}
                    }
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    pages
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temp dir")
}

/// Builds the index of `dump` into `dir/index`.
pub fn build(dump: &Path, dir: &Path) -> (BuildReport, TitleIndex) {
    let out = dir.join("index");
    let report = build_index(dump, &out, BuildOptions::default())
        .unwrap_or_else(|e| panic!("building {}: {e}", dump.display()));
    let index = TitleIndex::open(&out).unwrap_or_else(|e| panic!("opening {}: {e}", out.display()));
    (report, index)
}

/// Builds with a given thread count and chunk size.
pub fn build_with(dump: &Path, out: &Path, threads: usize, chunk: usize) -> BuildReport {
    IndexBuilder::new(dump, out)
        .threads(threads)
        .chunk_size(chunk)
        .build()
        .unwrap()
}

/// Checks every page of `index` against quick-xml's reading of `dump`, and
/// every first-seen title against `lookup`. Returns the reference pages.
pub fn assert_matches_reference(index: &TitleIndex, dump: &[u8]) -> Vec<RefPage> {
    let reference = reference_pages(dump);
    assert_eq!(index.page_count(), reference.len() as u64, "page count");
    let mut seen = std::collections::HashSet::new();
    let mut duplicates = 0;
    for (n, want) in reference.iter().enumerate() {
        let got = index.page(n as u64).unwrap();
        let got_ref = RefPage {
            title: got.title.clone(),
            first: got.first,
            last: got.last,
            id: got.id,
            ns: got.namespace,
            redirect: got.redirect.clone(),
        };
        assert_eq!(&got_ref, want, "page {n}");
        let bytes = index.page_bytes(&got);
        assert!(
            bytes.starts_with(b"<page>") && bytes.ends_with(b"</page>"),
            "page {n} bytes"
        );
        if seen.insert(want.title.clone()) {
            assert_eq!(
                index.lookup(&want.title).as_ref(),
                Some(&got),
                "lookup {:?}",
                want.title
            );
        } else {
            duplicates += 1;
            assert_ne!(
                index.lookup(&want.title).unwrap().number,
                n as u64,
                "first title wins"
            );
        }
    }
    assert_eq!(index.duplicate_count(), duplicates);
    assert_eq!(index.len(), seen.len());
    reference
}
