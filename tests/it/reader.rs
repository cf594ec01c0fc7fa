//! The offline reader over real HTTP: `/read/<title>` renders articles of a
//! dump written here (real page shapes: an infobox, tables, references,
//! nested lists, categories; redirects, a redirect chain and loop; a page
//! of hostile markup; a 3 MB page), `/random` picks articles, and every
//! article of the repo's sample dump renders.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use percore::config::{Isolation, RouteConfig};

use crate::guests;
use crate::support::{Response, TestHost, config};

/// The article with the most constructs (a Wikipedia page's shape).
pub const TOKYO: &str = r#"{{Short description|Capital of Japan}}
{{Infobox settlement
| name = Tokyo
| image_skyline = Skyline.jpg
| population_total = 14,094,034<ref name="census">{{cite web|title=Census 2020|url=https://example.org/census|website=Statistics Bureau}}</ref>
| leader_name = [[Yuriko Koike]]
}}
'''Tokyo''' is the capital of [[Japan]] and its largest city.<ref>It was called [[Edo]] until 1868.</ref> Its wards include [[Shinjuku]] and [[Nowhere ward]].<ref name="census"/>

== History ==
Tokyo was formerly named '''''Edo'''''. See [[Edo period|the Edo period]].

=== Meiji era ===
* Capital moved in 1868
** The [[Emperor]] moved to the city
*** Into the former castle
* Renamed Tokyo
# First
## First, part one

== Geography ==
; Area : 2,194 km<sup>2</sup>
: Includes islands

{| class="wikitable"
|+ Population
! Year !! People
|-
| 1920 || 3,699,428
|-
| style="text-align:right" | 2020 || 14,047,594
|}

== Economy ==
 a preformatted line

== External links ==
* [https://www.metro.tokyo.lg.jp/ Official website]

[[Category:Cities in Japan]]
[[Category:Capitals in Asia]]
[[ja:東京都]]
"#;

/// A page whose wikitext tries to run script in the reader's browser.
pub const HOSTILE: &str = r#"Hostile page. <script>window.pwned = 1</script>
<img src=x onerror="window.pwned = 2"> <svg onload="window.pwned = 3"></svg>
[javascript:window.pwned=4 Click me] <a href="javascript:window.pwned=5">a</a>
<div onmouseover="window.pwned=6">hover</div> {{cite web|url=javascript:window.pwned=7}}
[[Tokyo|Back to Tokyo]] "><script>window.pwned=8</script>
"#;

fn unescape_xml(s: &str) -> String {
    s.replace("&#039;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The reader's dump: (title, redirect target, wikitext) of each page.
pub(crate) fn pages() -> Vec<(String, Option<&'static str>, String)> {
    let mut big = String::from("A page of three megabytes.\n\n");
    while big.len() < 3 << 20 {
        big.push_str(TOKYO);
    }
    let redirect = |title: &str, to: &'static str| {
        (title.to_string(), Some(to), format!("#REDIRECT [[{to}]]"))
    };
    vec![
        ("Tokyo".into(), None, TOKYO.into()),
        (
            "Japan".into(),
            None,
            "'''Japan''' is an island country. Its capital is [[Tokyo]].".into(),
        ),
        ("Shinjuku".into(), None, "A ward of [[Tokyo]].".into()),
        ("Emperor".into(), None, "An emperor.".into()),
        ("Yuriko Koike".into(), None, "Governor of [[Tokyo]].".into()),
        ("Hostile".into(), None, HOSTILE.into()),
        ("Big".into(), None, big),
        redirect("Edo", "Tokyo"),
        redirect("Tokio", "Edo"),
        redirect("Loop one", "Loop two"),
        redirect("Loop two", "Loop one"),
        redirect("Dangling", "Not here"),
        ("Talk:Tokyo".into(), None, "A talk page.".into()),
    ]
}

/// One dump and index for the whole test binary.
pub(crate) fn reader_index() -> PathBuf {
    static INDEX: OnceLock<PathBuf> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("reader");
            std::fs::create_dir_all(&dir).unwrap();
            let mut xml = String::from(
                "<mediawiki xmlns=\"http://www.mediawiki.org/xml/export-0.11/\" version=\"0.11\" xml:lang=\"en\">\n",
            );
            for (id, (title, redirect, text)) in pages().into_iter().enumerate() {
                let ns = if title.starts_with("Talk:") { 1 } else { 0 };
                xml.push_str(&format!(
                    "  <page>\n    <title>{}</title>\n    <ns>{ns}</ns>\n    <id>{}</id>\n",
                    escape_xml(&title),
                    id + 1
                ));
                if let Some(to) = redirect {
                    xml.push_str(&format!("    <redirect title=\"{}\" />\n", escape_xml(to)));
                }
                xml.push_str(&format!(
                    "    <revision>\n      <id>{}</id>\n      <model>wikitext</model>\n      <format>text/x-wiki</format>\n      <text bytes=\"{}\" xml:space=\"preserve\">{}</text>\n    </revision>\n  </page>\n",
                    id + 100,
                    text.len(),
                    escape_xml(&text)
                ));
            }
            xml.push_str("</mediawiki>\n");
            let dump = dir.join("reader.xml");
            std::fs::write(&dump, xml).unwrap();
            let index = dir.join("index");
            percore_index::build_index(&dump, &index, Default::default())
                .expect("index the reader's dump");
            index
        })
        .clone()
}

/// A host serving the wiki guest at `/` over the reader's dump.
pub fn reader_host(isolation: Isolation) -> TestHost {
    let mut cfg = config(vec![RouteConfig::file("/", guests::WIKI)], 2, isolation);
    cfg.index = Some(reader_index());
    TestHost::start(cfg)
}

/// Checks that tags in `html` are balanced (void elements aside), and
/// returns the body's text between `<main>` and `</main>`.
fn main_of(response: &Response) -> String {
    let html = response.text();
    let void = ["br", "hr", "meta", "link", "input", "!doctype"];
    let mut stack = Vec::new();
    let mut rest = html.as_str();
    while let Some(at) = rest.find('<') {
        let end = rest[at..].find('>').expect("a tag ends") + at;
        let tag = &rest[at + 1..end];
        let name = tag
            .trim_start_matches('/')
            .split([' ', '/'])
            .next()
            .unwrap()
            .to_ascii_lowercase();
        if tag.starts_with('/') {
            assert_eq!(stack.pop(), Some(name.clone()), "</{name}> in {html}");
        } else if !void.contains(&name.as_str()) {
            stack.push(name.clone());
        }
        rest = &rest[end + 1..];
        if !tag.starts_with('/') && (name == "script" || name == "style") {
            // Their content is not markup; the page's own are fixed text.
            let close = rest
                .find(&format!("</{name}>"))
                .unwrap_or_else(|| panic!("<{name}> is not closed in {html}"));
            rest = &rest[close..];
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    let start = html.find("<main>").expect("a main element") + 6;
    html[start..html.find("</main>").unwrap()].to_string()
}

#[test]
fn an_article_renders_with_its_structure() {
    let host = reader_host(Isolation::Request);
    let page = host.get("/read/Tokyo");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    let main = main_of(&page);
    assert!(
        main.starts_with("<h1 id=\"firstHeading\">Tokyo</h1>"),
        "{main}"
    );
    // The infobox, as a key/value box, without its image.
    assert!(main.contains("<table class=\"infobox\"><caption>Tokyo</caption>"));
    assert!(main.contains(
        "<tr><th>Leader name</th><td><a href=\"/read/Yuriko_Koike\">Yuriko Koike</a></td></tr>"
    ));
    assert!(!main.contains("Skyline"));
    // No template text.
    assert!(
        !main.contains("{{") && !main.contains("Short description"),
        "{main}"
    );
    // Links: existing titles plain, missing ones marked, redirects exist.
    assert!(main.contains("<a href=\"/read/Japan\">Japan</a>"));
    assert!(main.contains("<a href=\"/read/Edo\">Edo</a>"));
    assert!(main.contains(
        "<a class=\"new\" title=\"Nowhere ward (page does not exist)\" href=\"/read/Nowhere_ward\">"
    ));
    assert!(main.contains("<a class=\"new\" title=\"Edo period (page does not exist)\" href=\"/read/Edo_period\">the Edo period</a>"));
    // Headings with a table of contents before the first one.
    let toc = main.find("<nav id=\"toc\"").expect("a table of contents");
    assert!(toc < main.find("<h2 id=\"History\">").unwrap());
    assert!(main.contains("<span class=\"tocnumber\">1.1</span> Meiji era"));
    // Emphasis, lists, definition lists, tables, preformatted text.
    assert!(main.contains("<b><i>Edo</i></b>"));
    assert!(main.contains("<ul><li>Capital moved in 1868<ul><li>The <a href=\"/read/Emperor\">Emperor</a> moved to the city<ul><li>Into the former castle</li></ul></li></ul></li><li>Renamed Tokyo</li></ul>"), "{main}");
    assert!(
        main.contains(
            "<dl><dt>Area</dt><dd>2,194 km<sup>2</sup></dd><dd>Includes islands</dd></dl>"
        ),
        "{main}"
    );
    assert!(main.contains("<caption>Population</caption><tbody><tr><th>Year</th><th>People</th></tr><tr><td>1920</td><td>3,699,428</td></tr><tr><td>2020</td><td>14,047,594</td></tr></tbody></table>"), "{main}");
    assert!(main.contains("<pre>a preformatted line</pre>"));
    assert!(main.contains("href=\"https://www.metro.tokyo.lg.jp/\">Official website</a>"));
    // Footnotes collected at the end, categories at the bottom, no
    // interlanguage link.
    let refs = main.find("<ol class=\"references\">").expect("footnotes");
    assert!(main[refs..].contains("Census 2020</a>. Statistics Bureau."));
    assert!(main[refs..].contains("It was called <a href=\"/read/Edo\">Edo</a> until 1868."));
    assert!(main.contains("<div class=\"catlinks\">Categories: <ul><li><a class=\"new\" title=\"Category:Cities in Japan (page does not exist)\" href=\"/read/Category:Cities_in_Japan\">Cities in Japan</a></li>"), "{main}");
    assert!(!main.contains("東京都"));
    // A normalised title reaches the same page; a missing one gets 404
    // with titles that start alike.
    assert_eq!(main_of(&host.get("/read/tokyo")), main);
    let missing = host.get("/read/Tok");
    assert_eq!(missing.status, 404);
    assert!(main_of(&missing).contains("<a href=\"/read/Tokyo\">Tokyo</a>"));
    // The search form without script.
    let form = host.get("/read/?title=Shinjuku+ward");
    assert_eq!(
        (form.status, form.header("location")),
        (302, Some("/read/Shinjuku_ward"))
    );
}

#[test]
fn redirects_are_followed_once_and_chains_and_loops_stop() {
    let host = reader_host(Isolation::Core);
    let edo = host.get("/read/Edo");
    assert_eq!(edo.status, 200);
    let main = main_of(&edo);
    assert!(main.starts_with("<h1 id=\"firstHeading\">Tokyo</h1><p class=\"redirected\">(Redirected from <a href=\"/read/Edo?redirect=no\">Edo</a>)</p>"), "{main}");
    assert!(main.contains("<table class=\"infobox\">"));
    let itself = main_of(&host.get("/read/Edo?redirect=no"));
    assert!(itself.contains("This page is a redirect to <a href=\"/read/Tokyo\">Tokyo</a>."));
    let chain = main_of(&host.get("/read/Tokio"));
    assert!(chain.contains("Redirect chain: <a href=\"/read/Tokio?redirect=no\">Tokio</a> redirects to <a href=\"/read/Edo?redirect=no\">Edo</a>, which redirects to Tokyo."), "{chain}");
    for title in ["Loop_one", "Loop_two"] {
        let looped = main_of(&host.get(&format!("/read/{title}")));
        assert!(
            looped.starts_with("<h1 id=\"firstHeading\">Redirect loop</h1>"),
            "{looped}"
        );
    }
    let dangling = host.get("/read/Dangling");
    assert_eq!(dangling.status, 404);
    assert!(main_of(&dangling).contains("redirects to Not here, which is not in this dump."));
}

#[test]
fn markup_from_a_page_cannot_run_script() {
    let host = reader_host(Isolation::Request);
    let main = main_of(&host.get("/read/Hostile"));
    let lower = main.to_ascii_lowercase();
    assert!(
        !lower.contains("<script") && !lower.contains("<img") && !lower.contains("<svg"),
        "{main}"
    );
    assert!(
        !lower.contains("javascript:window") || !lower.contains("href=\"javascript"),
        "{main}"
    );
    assert!(
        !lower.contains(" onerror=\"")
            && !lower.contains(" onload=\"")
            && !lower.contains(" onmouseover=\""),
        "{main}"
    );
    assert!(
        main.contains("&lt;img src=x onerror=&quot;window.pwned = 2&quot;&gt;"),
        "{main}"
    );
    assert!(main.contains("<a href=\"/read/Tokyo\">Back to Tokyo</a>"));
}

#[test]
fn a_three_megabyte_page_renders_within_the_default_limits() {
    let host = reader_host(Isolation::Request);
    let page = host.get("/read/Big");
    assert_eq!(page.status, 200);
    let main = main_of(&page);
    assert!(main.len() > 3 << 20, "{}", main.len());
    assert!(
        main.contains("id=\"Meiji_era_"),
        "repeated headings get distinct ids"
    );
}

#[test]
fn random_redirects_to_articles_only() {
    // The sample dump: hundreds of pages of similar size, articles,
    // redirects and other namespaces among them.
    let host = crate::wiki::wiki_host(Isolation::Core);
    let dump = std::fs::read_to_string(crate::wiki::sample_dump()).unwrap();
    let mut seen = BTreeSet::new();
    for _ in 0..60 {
        let response = host.get("/random");
        assert_eq!(response.status, 302, "{}", response.text());
        let location = response.header("location").unwrap().to_string();
        let title = location.strip_prefix("/read/").expect("a /read/ URL");
        let page = main_of(&host.get(&location));
        assert!(
            !page.contains("class=\"redirected\""),
            "{location} is a redirect"
        );
        seen.insert(title.to_string());
    }
    assert!(
        seen.len() >= 10,
        "60 picks found {} articles: {seen:?}",
        seen.len()
    );
    for title in &seen {
        // Each is a main-namespace page of the dump, not a redirect.
        let heading = percent_decode(title).replace('_', " ");
        let element = dump
            .split("<page>")
            .find(|p| unescape_xml(p).contains(&format!("<title>{heading}</title>")))
            .unwrap_or_else(|| panic!("{title} is not a page title of the dump"));
        assert!(
            element.contains("<ns>0</ns>") && !element.contains("<redirect"),
            "{title}"
        );
    }
}

#[test]
fn every_article_of_the_sample_dump_renders() {
    let host = crate::wiki::wiki_host(Isolation::Core);
    let dump = std::fs::read_to_string(crate::wiki::sample_dump()).unwrap();
    let mut rendered = 0;
    for page in dump.split("<page>").skip(1) {
        let title = page
            .split("<title>")
            .nth(1)
            .unwrap()
            .split("</title>")
            .next()
            .unwrap();
        let title = title
            .replace("&#039;", "'")
            .replace("&amp;", "&")
            .replace("&quot;", "\"");
        let encoded: String = title
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    char::from(b).to_string()
                }
                b' ' => "_".into(),
                b => format!("%{b:02X}"),
            })
            .collect();
        let response = host.get(&format!("/read/{encoded}"));
        assert!(
            response.status == 200 || page.contains("<redirect"),
            "{title}: {}",
            response.status
        );
        let main = main_of(&response);
        assert!(
            main.starts_with("<h1 id=\"firstHeading\">"),
            "{title}: {main}"
        );
        rendered += 1;
    }
    assert!(rendered > 300, "{rendered}");
    // The sample's WebAssembly article, with links to existing pages.
    let main = main_of(&host.get("/read/WebAssembly"));
    assert!(main.contains("<b>WebAssembly</b> (<b>Wasm</b>)"), "{main}");
    assert!(
        main.contains("<a href=\"/read/Wikipedia\">Wikipedia</a>"),
        "{main}"
    );
}
