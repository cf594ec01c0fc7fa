//! Unit tests of the renderer: real page shapes (infobox, tables,
//! references, nested lists), hostile markup, and a fuzz-style run of many
//! random and mutated inputs that checks for panics and well-formed output.

use crate::html::check_well_formed;
use crate::{MAX_HTML_BYTES, render};

/// Renders with every title but those starting with "Missing" existing.
fn html(wikitext: &str) -> String {
    let rendered = render(wikitext, &mut |t: &str| !t.starts_with("Missing"));
    if let Err(problem) = check_well_formed(&rendered.html) {
        panic!("{problem}\n{}", rendered.html);
    }
    rendered.html
}

const ARTICLE: &str = r#"{{Short description|Japanese capital}}
{{Use dmy dates|date=May 2020}}
{{Infobox settlement
| name = Tokyo
| image_skyline = Skyline.jpg
| population_total = 14,094,034<ref name="census">{{cite web|title=Census 2020|url=https://example.org/census|website=Stats Bureau|date=2021}}</ref>
| leader_name = [[Yuriko Koike]]
| area_km2 = {{convert|2194|km2}}
}}
'''Tokyo''' ({{lang|ja|東京}}) is the [[Capital city|capital]] of [[Japan]].<ref>Plain note with [[Honshu]].</ref> It has ''many'' [[Missing ward]]s.<ref name="census"/>
__NOTOC__

== History ==
Tokyo was called '''''Edo'''''.<!-- hidden comment -->

=== Edo period ===
* Item one
** Nested [[Shogun]]
*** Deeper
* Item two
# First
## First point one
#* Bullet in number
; Term : Definition
: Indented

== Demographics ==
{| class="wikitable sortable"
|+ Population by year
! Year !! Population
|-
| 1920 || 3,699,428
|-
| style="text-align:right" | 2020 || {{nts|14047594}}
|-
| colspan="2" | Nested:
{| class="wikitable"
| inner
|}
|}

 preformatted line
 second line
<pre>{{not a template}} ''raw''</pre>

== External links ==
* [https://www.metro.tokyo.lg.jp/ Official site]
* [https://example.org]
* http://bare.example.org/path.

[[Category:Cities in Japan]]
[[Category:Capitals in Asia|Tokyo]]
[[de:Tokio]]
[[File:Tokyo.jpg|thumb|A [[photo]] caption]]
"#;

#[test]
fn a_real_page_shape_renders_with_structure() {
    let rendered = render(ARTICLE, &mut |t: &str| !t.starts_with("Missing"));
    let h = &rendered.html;
    check_well_formed(h).unwrap();
    // Infobox: a key/value box with the kept rows, images left out.
    assert!(
        h.starts_with("<table class=\"infobox\"><caption>Tokyo</caption>"),
        "{h}"
    );
    assert!(h.contains("<th>Population total</th><td>14,094,034<sup class=\"reference\">"));
    assert!(
        h.contains("<th>Leader name</th><td><a href=\"/read/Yuriko_Koike\">Yuriko Koike</a></td>")
    );
    assert!(h.contains("<th>Area km2</th><td>2194 km2</td>"));
    assert!(!h.contains("Skyline.jpg"));
    // No template survives as text.
    let outside_pre = h.replace("{{not a template}}", "");
    assert!(
        !outside_pre.contains("{{") && !outside_pre.contains("}}"),
        "{h}"
    );
    assert!(!h.contains("Short description") && !h.contains("dmy"));
    // Inline markup.
    assert!(h.contains("<b>Tokyo</b> (東京) is the <a href=\"/read/Capital_city\">capital</a> of <a href=\"/read/Japan\">Japan</a>."));
    assert!(h.contains("<i>many</i>"));
    assert!(h.contains("<a class=\"new\" title=\"Missing ward (page does not exist)\" href=\"/read/Missing_ward\">Missing wards</a>"));
    assert!(h.contains("<b><i>Edo</i></b>"), "{h}");
    assert!(!h.contains("hidden comment"));
    // Headings; __NOTOC__ suppresses the table of contents.
    assert!(h.contains("<h2 id=\"History\">History</h2>"));
    assert!(h.contains("<h3 id=\"Edo_period\">Edo period</h3>"));
    assert!(!h.contains("id=\"toc\""));
    // Nested and mixed lists, definition lists.
    assert!(h.contains("<ul><li>Item one<ul><li>Nested <a href=\"/read/Shogun\">Shogun</a><ul><li>Deeper</li></ul></li></ul></li><li>Item two</li></ul>"), "{h}");
    assert!(h.contains("<ol><li>First<ol><li>First point one</li></ol><ul><li>Bullet in number</li></ul></li></ol>"), "{h}");
    assert!(
        h.contains("<dl><dt>Term</dt><dd>Definition</dd><dd>Indented</dd></dl>"),
        "{h}"
    );
    // Tables: caption, header cells, attributes dropped, spans kept, nesting.
    assert!(h.contains("<table class=\"wikitable\"><caption>Population by year</caption><tbody><tr><th>Year</th><th>Population</th></tr><tr><td>1920</td><td>3,699,428</td></tr><tr><td>2020</td><td></td></tr><tr><td colspan=\"2\">"), "{h}");
    assert!(h.contains("<table class=\"wikitable\"><tbody><tr><td>inner</td></tr></tbody></table></td></tr></tbody></table>"), "{h}");
    assert!(!h.contains("text-align"));
    // Preformatted text, and <pre> kept raw.
    assert!(h.contains("<pre>preformatted line\nsecond line</pre>"));
    assert!(
        h.contains("<pre>{{not a template}} &#39;&#39;raw&#39;&#39;</pre>"),
        "{h}"
    );
    // External links.
    assert!(h.contains("<a class=\"external\" rel=\"nofollow\" href=\"https://www.metro.tokyo.lg.jp/\">Official site</a>"));
    assert!(h.contains("href=\"https://example.org\">[1]</a>"));
    assert!(h.contains("<a class=\"external\" rel=\"nofollow\" href=\"http://bare.example.org/path\">http://bare.example.org/path</a>."));
    // Footnotes: named ones share a number; citations rendered.
    assert_eq!(rendered.footnotes, 2);
    assert!(h.contains("<ol class=\"references\"><li id=\"cite_note-1\">"));
    assert!(h.contains("<a class=\"external\" rel=\"nofollow\" href=\"https://example.org/census\">Census 2020</a>. Stats Bureau. 2021."));
    assert!(h.contains("Plain note with <a href=\"/read/Honshu\">Honshu</a>"));
    assert_eq!(h.matches("href=\"#cite_note-1\"").count(), 2);
    // Categories at the bottom; files and interlanguage links dropped.
    assert_eq!(rendered.categories, ["Cities in Japan", "Capitals in Asia"]);
    assert!(h.contains("<div class=\"catlinks\">Categories: <ul><li><a href=\"/read/Category:Cities_in_Japan\">Cities in Japan</a></li>"));
    assert!(!h.contains("Tokio") && !h.contains("caption</") && !h.contains("photo"));
}

#[test]
fn a_table_of_contents_comes_with_four_headings() {
    let h = html("Intro\n== A ==\n=== A1 ===\n== B & C ==\n== D ==\ntext [[#B & C|see]]");
    let toc = h.find("<nav id=\"toc\"").expect("a table of contents");
    assert!(toc > h.find("<p>Intro</p>").unwrap() && toc < h.find("<h2").unwrap());
    assert!(h.contains("<li class=\"toclevel-1\"><a href=\"#A\"><span class=\"tocnumber\">1</span> A</a></li><li class=\"toclevel-2\"><a href=\"#A1\"><span class=\"tocnumber\">1.1</span> A1</a></li>"), "{h}");
    assert!(h.contains("<span class=\"tocnumber\">3</span> D"));
    assert!(h.contains("<h2 id=\"B_&amp;_C\">"));
    assert!(h.contains("<a href=\"#B_&amp;_C\">see</a>"), "{h}");
    assert!(!html("== A ==\n== B ==\n== C ==").contains("toc"));
    assert!(html("__TOC__\n== A ==").contains("id=\"toc\""));
}

#[test]
fn hostile_markup_stays_text() {
    let h = html(concat!(
        "<script>alert(1)</script> <img src=x onerror=alert(2)> <svg/onload=alert(3)>\n",
        "[javascript:alert(4) click] [[javascript:alert(5)]] [data:text/html,x y]\n",
        "<span onmouseover=\"alert(6)\">s</span> <a href=\"javascript:alert(7)\">a</a>\n",
        "[http://x.org\"onmouseover=alert(8) z] {{cite web|url=javascript:alert(9)|title=t}}\n",
        "<ref>{{cite web|url=javascript:alert(10)|title=t}}</ref>\n",
        "<div style=\"background:url(javascript:alert(11))\">d</div>\n",
        "'''\"><b onclick=alert(12)>'''",
    ));
    assert!(
        !h.contains("<script") && !h.contains("<img") && !h.contains("<svg"),
        "{h}"
    );
    assert!(
        !h.contains("href=\"javascript") && !h.contains("href=\"data"),
        "{h}"
    );
    assert!(
        !h.contains(" onerror=") || h.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "{h}"
    );
    assert!(!h.contains("<span") && !h.contains("<a href=\"javascript"));
    assert!(h.contains("&lt;img src=x onerror=alert(2)&gt;"), "{h}");
    assert!(h.contains("[javascript:alert(4) click]"), "{h}");
    assert!(
        !h.contains("alert(5)"),
        "an interwiki-like link, dropped: {h}"
    );
}

#[test]
fn unclosed_and_stray_markup_is_harmless() {
    for input in [
        "{{",
        "}}",
        "{{{{{{",
        "[[",
        "]]",
        "[[a|",
        "''",
        "'''''",
        "<ref>",
        "<ref name=x/>",
        "</ref>",
        "<nowiki>",
        "<!--",
        "{|",
        "|}",
        "{|\n|-\n|",
        "=",
        "==",
        "== ==",
        ";",
        ":",
        "*#;:",
        "\u{E000}1\u{E002}",
        "[http://x",
        "&",
        "&#",
        "&#x110000;",
        "&amp",
        "__NOTOC",
        "<pre>",
        "<math>x",
        "{{Infobox",
        "{{Infobox|a=",
        "{{cite web|title=x}}",
        "<ref>{{cite web|title=x|url=http://y}}</ref><references/>",
        ";a:b:c",
        "{|\n! a !! b\n|}",
        "[[Category:]]",
        "[[:Category:X]]",
        "[[File:x|[[y]]]]",
    ] {
        html(input);
    }
    assert_eq!(html("a\u{E000}0\u{E002}b"), "<p>a\u{FFFD}0\u{FFFD}b</p>");
}

#[test]
fn windows_that_end_inside_a_character_do_not_panic() {
    // The searches for the end of a start tag (2000 bytes) and of short
    // inline elements (300 bytes) end in the middle of a character.
    for pad in 0..4 {
        let filler = "a".repeat(pad);
        html(&format!("<ref {filler}{}", "東".repeat(1000)));
        html(&format!("<sub>{filler}{}</sub>", "東".repeat(200)));
    }
}

#[test]
fn an_unclosed_external_link_leaves_later_lines_alone() {
    let h = html("[http://a.org no end\n[http://b.org b] and [http://c.org c]");
    assert!(h.contains("[<a class=\"external\" rel=\"nofollow\" href=\"http://a.org\">http://a.org</a> no end\n"), "{h}");
    assert!(
        h.contains("href=\"http://b.org\">b</a>") && h.contains("href=\"http://c.org\">c</a>"),
        "{h}"
    );
}

#[test]
fn fuzz_regressions() {
    // tests/fuzz/regressions/wikitext-*: an upper-case scheme (the checker
    // took `httP://` for an unsafe link).
    let h = html("[httP://x.org x] HTTPS://y.org");
    assert!(
        h.contains("href=\"httP://x.org\">x</a>") && h.contains("href=\"HTTPS://y.org\""),
        "{h}"
    );
}

#[test]
fn titles_with_colons_and_interwiki_labels() {
    let h = html("[[Halo: Reach]], [[wikt:word|a word]]s, [[de:Tokio]], [[Help:Contents|help]]");
    assert_eq!(
        h,
        "<p><a href=\"/read/Halo:_Reach\">Halo: Reach</a>, a words, , <a href=\"/read/Help:Contents\">help</a></p>"
    );
}

#[test]
fn nowiki_math_and_entities() {
    let h = html(
        "<nowiki>[[not a link]] ''x''</nowiki> <math>x^2 < y</math> H<sub>2</sub>O a&nbsp;b &lt;i&gt; &bogus;",
    );
    assert_eq!(
        h,
        "<p>[[not a link]] &#39;&#39;x&#39;&#39; <code class=\"math\">x^2 &lt; y</code> H<sub>2</sub>O a\u{a0}b &lt;i&gt; &amp;bogus;</p>"
    );
}

/// A small deterministic generator (xorshift) for the fuzz-style test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

/// Pieces of markup that random inputs are made of.
const PIECES: &[&str] = &[
    "{{",
    "}}",
    "{{{",
    "}}}",
    "[[",
    "]]",
    "[",
    "]",
    "|",
    "||",
    "!!",
    "\n",
    "\n\n",
    "'",
    "''",
    "'''",
    "<ref>",
    "</ref>",
    "<ref name=\"a\"/>",
    "<ref name=a>",
    "<nowiki>",
    "</nowiki>",
    "<!--",
    "-->",
    "<pre>",
    "</pre>",
    "<br/>",
    "<sub>",
    "</sub>",
    "<math>",
    "</math>",
    "<references/>",
    "<gallery>",
    "{|",
    "|}",
    "|-",
    "|+",
    "\n!",
    "\n|",
    "\n*",
    "\n#",
    "\n;",
    "\n:",
    "\n ",
    "\n==",
    "==",
    "=",
    "----",
    "__TOC__",
    "__NOTOC__",
    "&",
    "&amp;",
    "&#",
    ";",
    "http://x.org",
    "https://",
    "javascript:",
    "Infobox",
    "{{Infobox x|",
    "cite web|",
    "url=",
    "title=",
    "Category:",
    "File:",
    ":",
    "#",
    "a",
    "b c",
    "é",
    "東京",
    "\u{E000}",
    "\u{E001}",
    "\u{E002}",
    "0",
    "<script>",
    "<b>",
    "</div>",
    "<",
    ">",
    "\"",
    "_",
];

#[test]
fn random_and_mutated_inputs_never_panic_and_render_well_formed() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..4000 {
        let mut input = String::new();
        if round % 4 == 0 {
            // A mutation of the sample article.
            input.push_str(ARTICLE);
            for _ in 0..1 + rng.below(8) {
                let mut at = rng.below(input.len());
                while !input.is_char_boundary(at) {
                    at -= 1;
                }
                let piece = PIECES[rng.below(PIECES.len())];
                if rng.below(2) == 0 {
                    input.insert_str(at, piece);
                } else {
                    let mut end = (at + rng.below(40)).min(input.len());
                    while !input.is_char_boundary(end) {
                        end -= 1;
                    }
                    input.replace_range(at..end, piece);
                }
            }
        } else {
            for _ in 0..rng.below(60) {
                input.push_str(PIECES[rng.below(PIECES.len())]);
            }
        }
        let rendered = render(&input, &mut |t: &str| t.len().is_multiple_of(2));
        if let Err(problem) = check_well_formed(&rendered.html) {
            panic!("{problem}\ninput: {input:?}\noutput: {}", rendered.html);
        }
    }
}

#[test]
fn pathological_inputs_take_linear_time_and_bounded_output() {
    // Each would be quadratic (or deep) with naive matching: unclosed
    // constructs by the hundred thousand, deep nesting.
    for piece in [
        "{{",
        "[[",
        "<ref>",
        "<nowiki>",
        "[http://x ",
        "{|\n",
        "*",
        "''",
        "<gallery>",
        "&#",
        "}}",
        "{{a|",
        "<sub>",
    ] {
        let input = piece.repeat(300_000 / piece.len());
        let rendered = render(&input, &mut |_: &str| true);
        check_well_formed(&rendered.html).unwrap();
    }
    // 3 MB of the worst escaping case stays under the cap.
    let input = "<".repeat(3 << 20);
    let rendered = render(&input, &mut |_: &str| true);
    assert!(rendered.html.len() <= MAX_HTML_BYTES + 4096);
    check_well_formed(&rendered.html).unwrap();
}

#[test]
fn a_three_megabyte_article_renders() {
    let mut input = String::new();
    while input.len() < 3 << 20 {
        input.push_str(ARTICLE);
    }
    let mut lookups = 0;
    let rendered = render(&input, &mut |_: &str| {
        lookups += 1;
        true
    });
    check_well_formed(&rendered.html).unwrap();
    assert!(
        lookups < 20,
        "each distinct title is looked up once: {lookups}"
    );
    assert!(rendered.html.contains("id=\"Edo_period_"));
}
