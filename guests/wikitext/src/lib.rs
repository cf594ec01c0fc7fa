//! The wiki guest's wikitext renderer: MediaWiki markup from a dump's page
//! text to an HTML fragment, without MediaWiki. Pure (the one outside fact
//! it needs, whether a linked title exists, comes through a callback), so
//! it is unit-tested and fuzzed natively.
//!
//! # Layout
//! - [`preprocess`](crate::preprocess): the constructs that span lines are
//!   taken out first (comments, templates, `<ref>`, `<nowiki>`, `<pre>`,
//!   extension tags, magic words); each becomes a marker that points at
//!   HTML already made, or disappears.
//! - [`blocks`](crate::blocks): line structure: headings (and the table of
//!   contents), paragraphs, lists, definition lists, tables, preformatted
//!   text.
//! - [`inline`](crate::inline): bold and italic, internal and external
//!   links, categories, entities.
//! - [`html`]: escaping, `/read/` paths and the well-formedness check.
//! - [`xml`]: the `<text>` of a dump's `<page>` element.
//!
//! Every character of the input reaches the output escaped; the only tags in
//! the output are the renderer's own, always balanced, without event
//! attributes, and links only to `/read/`, `#` anchors or `http(s)`, `ftp`
//! and `mailto` URLs. Work is linear in the input (brackets and braces are
//! matched with one stack pass each, searches for end tags are memoised),
//! nesting is capped, and the output is cut off at [`MAX_HTML_BYTES`].

#![deny(missing_docs)]

mod blocks;
pub mod html;
mod inline;
mod page;
mod preprocess;
pub mod xml;

use std::collections::{HashMap, HashSet};

pub use page::{article_page, message_page};

/// The largest body [`render`] renders (about; it stops at the first block
/// past it and says that the page was cut short). With the table of
/// contents, infoboxes and footnotes (capped too) the fragment stays under
/// 14 MiB, in the host's default 16 MiB response cap with the page around it.
pub const MAX_HTML_BYTES: usize = 10 << 20;

/// Most infoboxes rendered (the rest dropped), and most entries in the
/// table of contents: each is repeated for every copy of a section, so
/// without a cap they could take the output past the response limit.
const MAX_INFOBOXES: usize = 3;
const MAX_TOC_ENTRIES: usize = 500;

/// Footnotes stop being listed once the page passes this size.
const MAX_WITH_FOOTNOTES: usize = MAX_HTML_BYTES + (2 << 20);

/// How deeply templates, references and tables nest before the renderer
/// stops descending (deeper ones are dropped). Keeps the work linear and
/// the guest's stack small on hostile input.
const MAX_DEPTH: u8 = 4;

/// Marker characters (from the Private Use Area, removed from the input
/// first) around the decimal index of a prepared fragment: an inline one
/// (`<sup>` footnote marks, `<nowiki>` text, `<code>`) or a block one
/// (`<pre>`, `<hr>`), which a paragraph is split around.
pub(crate) const INLINE: char = '\u{E000}';
pub(crate) const BLOCK: char = '\u{E001}';
pub(crate) const END: char = '\u{E002}';

/// An article rendered from wikitext.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The article body: infoboxes, table of contents, text, footnotes and
    /// categories, as one well-formed HTML fragment.
    pub html: String,
    /// The categories the page is in, in order, without `Category:`.
    pub categories: Vec<String>,
    /// The number of footnotes collected from `<ref>` elements.
    pub footnotes: usize,
}

/// Renders `wikitext` to HTML. `exists` says whether a linked title is in
/// the dump (it is asked once for each distinct target); links to the
/// others get the class `new`, as on Wikipedia.
pub fn render(wikitext: &str, exists: &mut dyn FnMut(&str) -> bool) -> Rendered {
    let text: String = wikitext
        .chars()
        .map(|c| match c {
            INLINE | BLOCK | END => '\u{FFFD}',
            c => c,
        })
        .collect();
    let mut renderer = Renderer {
        exists,
        known: HashMap::new(),
        frags: Vec::new(),
        refs: Vec::new(),
        ref_names: HashMap::new(),
        infoboxes: Vec::new(),
        categories: Vec::new(),
        category_set: HashSet::new(),
        heading_ids: HashMap::new(),
        headings: Vec::new(),
        toc: TocMode::Auto,
        truncated: false,
        emitted: 0,
    };
    let prepared = renderer.preprocess(&text, 0, Context::Top);
    drop(text);
    let mut html = renderer.top_blocks(&prepared);
    drop(prepared);
    let mut infoboxes = String::new();
    for index in 0..renderer.infoboxes.len().min(MAX_INFOBOXES) {
        infoboxes.push_str(&renderer.infobox_html(index));
    }
    html.insert_str(0, &infoboxes);
    if renderer.truncated {
        html.push_str(
            "<p class=\"truncated\">This page is too long to render in full; the rest is cut off.</p>",
        );
    }
    let footnotes = renderer.refs.len();
    if footnotes > 0 {
        html.push_str("<h2 id=\"References\">References</h2><ol class=\"references\">");
        for n in 0..footnotes {
            if html.len() > MAX_WITH_FOOTNOTES {
                html.push_str("<li>(more footnotes left out)</li>");
                break;
            }
            let content = std::mem::take(&mut renderer.refs[n]);
            let rendered = renderer.inline(&content, true);
            html.push_str(&format!("<li id=\"cite_note-{}\">", n + 1));
            html.push_str(&format!(
                "<a class=\"backlink\" href=\"#cite_ref-{}\">^</a> ",
                n + 1
            ));
            html.push_str(&rendered);
            html.push_str("</li>");
        }
        html.push_str("</ol>");
    }
    if !renderer.categories.is_empty() {
        html.push_str("<div class=\"catlinks\">Categories: <ul>");
        let categories = renderer.categories.clone();
        for category in &categories {
            let target = format!("Category:{category}");
            html.push_str("<li>");
            let link = renderer.link_html(&target, &html::escape(category));
            html.push_str(&link);
            html.push_str("</li>");
        }
        html.push_str("</ul></div>");
    }
    Rendered {
        html,
        categories: renderer.categories,
        footnotes,
    }
}

/// Where text is being prepared: which templates are rendered there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// The article itself: infoboxes are rendered.
    Top,
    /// A footnote: citation templates are rendered.
    Ref,
    /// A value of an infobox or a template argument: templates dropped.
    Nested,
}

/// Whether the page gets a table of contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TocMode {
    /// With four headings or more (MediaWiki's rule).
    Auto,
    /// `__TOC__` or `__FORCETOC__`: whenever there is a heading.
    Force,
    /// `__NOTOC__`: never.
    Never,
}

/// One rendering: what the passes share.
pub(crate) struct Renderer<'a> {
    /// Whether a title is in the dump.
    exists: &'a mut dyn FnMut(&str) -> bool,
    /// Answers of `exists` so far, by normalised title.
    known: HashMap<String, bool>,
    /// Prepared HTML fragments that markers point at.
    frags: Vec<String>,
    /// Footnote contents (prepared wikitext), footnote `n` at `n - 1`.
    refs: Vec<String>,
    /// Footnote numbers of named references.
    ref_names: HashMap<String, usize>,
    /// Infoboxes: their name and their (key, prepared value) rows.
    infoboxes: Vec<(String, Vec<(String, String)>)>,
    /// Categories, in order of appearance, without duplicates.
    categories: Vec<String>,
    /// The same categories, to find duplicates.
    category_set: HashSet<String>,
    /// How many headings have each id so far (later ones get `_2`, `_3`).
    heading_ids: HashMap<String, usize>,
    /// Headings seen so far: level, anchor id, text (HTML).
    headings: Vec<(u8, String, String)>,
    /// Whether the page gets a table of contents.
    toc: TocMode,
    /// Set when the output reached [`MAX_HTML_BYTES`].
    truncated: bool,
    /// Bytes of HTML made so far (counted by the inline pass, with an
    /// allowance for the tags around each piece), held under
    /// [`MAX_HTML_BYTES`].
    emitted: usize,
}

impl Renderer<'_> {
    /// Stores a prepared fragment; returns its marker.
    pub(crate) fn marker(&mut self, kind: char, html: String) -> String {
        self.frags.push(html);
        format!("{kind}{}{END}", self.frags.len() - 1)
    }

    /// Whether `title` (a link target without its `#fragment`) exists.
    pub(crate) fn title_exists(&mut self, title: &str) -> bool {
        let key = html::url_title(title);
        if let Some(&known) = self.known.get(&key) {
            return known;
        }
        let answer = (self.exists)(&key.replace('_', " "));
        self.known.insert(key, answer);
        answer
    }
}

#[cfg(test)]
mod tests;
