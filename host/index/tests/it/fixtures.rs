//! Hand-written fixtures against quick-xml.

use crate::support::{assert_matches_reference, build, fixture, tempdir};

/// The decoded titles of `tricky.xml`, in dump order.
const TRICKY_TITLES: [&str; 13] = [
    "AccessibleComputing",
    "AT&T",
    "\"Weird Al\" Yankovic",
    "O'Brien",
    "Less <than> more été 😀",
    "Москва",
    "東京都",
    "Talk:Москва",
    "Star Wars: Episode IV – A New Hope",
    "Talk:Star Wars: Episode IV – A New Hope",
    "Category:Programming languages",
    "AT&T",
    "Zürich",
];

fn check(name: &str) {
    let path = fixture(name);
    let dump = std::fs::read(&path).unwrap();
    let dir = tempdir();
    let (report, index) = build(&path, dir.path());
    let reference = assert_matches_reference(&index, &dump);
    let titles: Vec<_> = reference.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(titles, TRICKY_TITLES, "{name}");
    assert_eq!(
        (report.pages, report.redirects, report.duplicates),
        (13, 4, 1),
        "{name}"
    );
    assert_eq!(report.duplicate_examples[0].title, "AT&T");
    assert_eq!(report.duplicate_examples[0].kept_id, 17555269);
    assert_eq!(report.duplicate_examples[0].ignored_id, 99999);
    let shown = report.to_string();
    assert!(
        shown.contains("duplicates: 1 (the first page with a title wins"),
        "{shown}"
    );
    assert!(shown.contains("\"AT&T\": kept page id 17555269"), "{shown}");

    // First page, last page, and the fields the host relies on.
    let first = index.page(0).unwrap();
    assert_eq!(
        first.first,
        dump.windows(6).position(|w| w == b"<page>").unwrap() as u64
    );
    assert_eq!(first.redirect.as_deref(), Some("Computer accessibility"));
    let last = index.page(12).unwrap();
    let end = dump.windows(7).rposition(|w| w == b"</page>").unwrap() as u64 + 6;
    assert_eq!(last.last, end);
    assert_eq!(last.redirect.as_deref(), Some("Zürich (city)"));
    let att = index.lookup("AT&T").unwrap();
    assert_eq!(
        (att.id, att.namespace, att.redirect.as_deref()),
        (17555269, 0, None)
    );
    let text = String::from_utf8_lossy(index.page_bytes(&att));
    assert!(
        text.contains("&lt;page&gt; elements"),
        "escaped markup stays in the page"
    );
    let talk = index.lookup("Talk:Москва").unwrap();
    assert_eq!((talk.namespace, talk.id), (1, 19005));
    assert_eq!(
        index.lookup("O'Brien").unwrap().redirect.as_deref(),
        Some("O'Brien (surname)")
    );
    assert_eq!(
        index
            .lookup("Category:Programming languages")
            .unwrap()
            .namespace,
        14
    );
}

#[test]
fn tricky_titles_and_fields() {
    check("tricky.xml");
}

#[test]
fn crlf_line_ends() {
    check("crlf.xml");
}

#[test]
fn pages_not_indented() {
    check("noindent.xml");
}

#[test]
fn last_page_at_the_very_end_without_newline() {
    check("end-no-newline.xml");
    let dump = std::fs::read(fixture("end-no-newline.xml")).unwrap();
    assert!(dump.ends_with(b"</page></mediawiki>"));
}

#[test]
fn schema_0_10_and_pages_on_one_line() {
    check("schema-0.10.xml");
}

#[test]
fn sample_dump_matches_reference() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sample.xml");
    let dump = std::fs::read(&path).unwrap();
    let dir = tempdir();
    let (report, index) = build(&path, dir.path());
    assert_matches_reference(&index, &dump);
    assert!(report.pages >= 300, "{report}");
    assert_eq!(report.duplicates, 1, "{report}");
    let rust = index
        .lookup_normalized("rust_(programming_language)")
        .unwrap();
    assert!(String::from_utf8_lossy(index.page_bytes(&rust)).contains("Rust"));
    assert!(index.lookup("AT&T").is_some());
    assert!(index.lookup("Москва").is_some());
}
