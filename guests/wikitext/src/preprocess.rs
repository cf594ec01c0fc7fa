//! The first pass: constructs that span lines or hide text. Comments are
//! removed; `{{templates}}` are dropped, except infoboxes (kept for a
//! key/value box at the top), citations inside references and a few that
//! only wrap text; `<ref>` elements become footnote marks; `<nowiki>`,
//! `<pre>`, `<math>` and code become prepared fragments; extension tags
//! whose content cannot be shown are dropped; magic words (`__NOTOC__`)
//! set flags and disappear. Unknown tags stay as (escaped) text.

use std::collections::HashMap;

use crate::html::escape;
use crate::{BLOCK, Context, INLINE, MAX_DEPTH, Renderer, TocMode};

/// Extension tags dropped with their content: nothing in them can be shown
/// offline (images, graphs, scores) or should be (scripts, styles).
const DROPPED: &[&str] = &[
    "gallery",
    "timeline",
    "score",
    "graph",
    "imagemap",
    "templatedata",
    "templatestyles",
    "mapframe",
    "maplink",
    "script",
    "style",
    "includeonly",
    "inputbox",
    "categorytree",
    "indicator",
    "hiero",
    "charinsert",
];

/// HTML tags MediaWiki allows in wikitext: the tag is dropped and its
/// content kept (the renderer emits only tags it balances itself).
const TRANSPARENT: &[&str] = &[
    "div",
    "span",
    "center",
    "blockquote",
    "p",
    "font",
    "small",
    "big",
    "b",
    "i",
    "u",
    "s",
    "strike",
    "del",
    "ins",
    "sub",
    "sup",
    "abbr",
    "cite",
    "dfn",
    "em",
    "strong",
    "mark",
    "var",
    "kbd",
    "samp",
    "q",
    "tt",
    "code",
    "table",
    "tr",
    "td",
    "th",
    "caption",
    "tbody",
    "thead",
    "tfoot",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "poem",
    "noinclude",
    "onlyinclude",
    "section",
    "bdi",
    "bdo",
    "ruby",
    "rb",
    "rt",
    "rp",
    "wbr",
    "time",
    "data",
    "references",
    "nowiki",
    "pre",
    "ref",
    "math",
    "chem",
    "ce",
    "source",
    "syntaxhighlight",
    "br",
    "hr",
];

/// Inline tags whose short, markup-free content is kept in the element.
const SIMPLE_INLINE: &[&str] = &["sub", "sup", "code", "tt", "kbd", "var", "samp"];

/// Memoised end-tag searches: for each closing tag, the position from which
/// a search already failed, so that many unclosed tags cost one scan.
#[derive(Default)]
struct Finder {
    failed_from: HashMap<String, usize>,
}

impl Finder {
    /// The position of `needle` (lower case) in `lower` at or after `from`.
    fn find(&mut self, lower: &str, from: usize, needle: &str) -> Option<usize> {
        if let Some(&failed) = self.failed_from.get(needle)
            && failed <= from
        {
            return None;
        }
        match lower.get(from..).and_then(|rest| rest.find(needle)) {
            Some(at) => Some(from + at),
            None => {
                self.failed_from.insert(needle.to_string(), from);
                None
            }
        }
    }
}

/// Matches `{{`/`}}` (and `{{{`/`}}}`) in one pass: start → end (exclusive).
fn brace_pairs(text: &str) -> HashMap<usize, usize> {
    let b = text.as_bytes();
    let mut pairs = HashMap::new();
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'{' && b[i + 1] == b'{' {
            let width = if b.get(i + 2) == Some(&b'{') { 3 } else { 2 };
            stack.push((i, width));
            i += width;
        } else if b[i] == b'}' && b[i + 1] == b'}' {
            match stack.pop() {
                Some((start, 3)) if b.get(i + 2) == Some(&b'}') => {
                    pairs.insert(start, i + 3);
                    i += 3;
                }
                Some((start, _)) => {
                    pairs.insert(start, i + 2);
                    i += 2;
                }
                None => i += 2,
            }
        } else {
            i += 1;
        }
    }
    pairs
}

/// Splits a template's inside at the `|` that are not inside nested
/// `{{ }}` or `[[ ]]`.
fn split_args(inner: &str) -> Vec<&str> {
    let b = inner.as_bytes();
    let (mut braces, mut brackets) = (0usize, 0usize);
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let pair = (b[i], b.get(i + 1).copied());
        match pair {
            (b'{', Some(b'{')) => {
                braces += 1;
                i += 2;
                continue;
            }
            (b'}', Some(b'}')) => {
                braces = braces.saturating_sub(1);
                i += 2;
                continue;
            }
            (b'[', Some(b'[')) => {
                brackets += 1;
                i += 2;
                continue;
            }
            (b']', Some(b']')) => {
                brackets = brackets.saturating_sub(1);
                i += 2;
                continue;
            }
            (b'|', _) if braces == 0 && brackets == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&inner[start..]);
    parts
}

/// A template argument: `(Some(name), value)` or `(None, value)`.
fn named_arg(arg: &str) -> (Option<&str>, &str) {
    match arg.split_once('=') {
        Some((name, value)) if !name.contains(['[', '{', '<']) => (Some(name.trim()), value.trim()),
        _ => (None, arg.trim()),
    }
}

/// The value of the attribute `name` in a start tag's attribute text.
fn attribute(attrs: &str, name: &str) -> Option<String> {
    let lower = attrs.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find(name) {
        let at = from + at;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = attrs[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let value = rest[1..].trim_start();
        let value = if let Some(quoted) = value.strip_prefix('"') {
            quoted.split('"').next().unwrap_or("")
        } else if let Some(quoted) = value.strip_prefix('\'') {
            quoted.split('\'').next().unwrap_or("")
        } else {
            value
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap_or("")
        };
        return Some(value.trim().to_string());
    }
    None
}

impl Renderer<'_> {
    /// Prepares `text` (see the module's comment): returns wikitext in which
    /// the constructs handled here are markers or gone.
    pub(crate) fn preprocess(&mut self, text: &str, depth: u8, context: Context) -> String {
        let lower = text.to_ascii_lowercase();
        let pairs = brace_pairs(text);
        let mut finder = Finder::default();
        let b = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut plain = 0;
        let mut i = 0;
        while i < b.len() {
            let consumed = match b[i] {
                b'<' => self.tag(text, &lower, i, &mut finder, depth, context),
                b'{' if b.get(i + 1) == Some(&b'{') => pairs
                    .get(&i)
                    .map(|&end| (end, self.template(&text[i + 2..end - 2], depth, context))),
                b'_' if b.get(i + 1) == Some(&b'_') => self.magic_word(text, i),
                _ => None,
            };
            match consumed {
                Some((end, replacement)) => {
                    out.push_str(&text[plain..i]);
                    out.push_str(&replacement);
                    i = end;
                    plain = end;
                }
                None => i += 1,
            }
        }
        out.push_str(&text[plain..]);
        out
    }

    /// `__WORD__`: dropped, with the table-of-contents words noted.
    fn magic_word(&mut self, text: &str, at: usize) -> Option<(usize, String)> {
        let rest = &text[at + 2..];
        let len = rest
            .bytes()
            .take(40)
            .take_while(|b| b.is_ascii_uppercase())
            .count();
        if len == 0 || !rest[len..].starts_with("__") {
            return None;
        }
        match &rest[..len] {
            "NOTOC" => self.toc = TocMode::Never,
            "TOC" | "FORCETOC" if self.toc != TocMode::Never => self.toc = TocMode::Force,
            _ => {}
        }
        Some((at + 2 + len + 2, String::new()))
    }

    /// A tag (or comment) at `at`: where it ends and what replaces it, or
    /// `None` to keep the `<` as text.
    fn tag(
        &mut self,
        text: &str,
        lower: &str,
        at: usize,
        finder: &mut Finder,
        depth: u8,
        context: Context,
    ) -> Option<(usize, String)> {
        if lower[at..].starts_with("<!--") {
            let end = finder
                .find(lower, at + 4, "-->")
                .map_or(text.len(), |e| e + 3);
            return Some((end, String::new()));
        }
        let closing = lower.as_bytes().get(at + 1) == Some(&b'/');
        let name_start = at + 1 + usize::from(closing);
        let name_len = lower.as_bytes()[name_start..]
            .iter()
            .take(20)
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if name_len == 0 {
            return None;
        }
        let name = &lower[name_start..name_start + name_len];
        let after_name = lower.as_bytes().get(name_start + name_len).copied();
        if !matches!(after_name, Some(b' ' | b'>' | b'/' | b'\t' | b'\n')) {
            return None;
        }
        // The end of the start tag, looked for nearby only.
        let window_start = name_start + name_len;
        let window_end = lower.len().min(window_start + 2000);
        let gt = window_start
            + lower.as_bytes()[window_start..window_end]
                .iter()
                .position(|&b| b == b'>')?;
        let open_end = gt + 1;
        let self_closing = lower.as_bytes()[gt - 1] == b'/';
        let attrs = &text[name_start + name_len..gt];
        if closing {
            // Stray end tags of known elements vanish; unknown ones are text.
            return (TRANSPARENT.contains(&name) || DROPPED.contains(&name))
                .then(|| (open_end, String::new()));
        }
        let static_name = *DROPPED
            .iter()
            .chain(TRANSPARENT)
            .find(|known| **known == name)?;
        if self_closing {
            let replacement = match static_name {
                "br" => self.marker(INLINE, "<br>".into()),
                "hr" => self.marker(BLOCK, "<hr>".into()),
                "ref" => self.reference(attrs, None, depth),
                _ => String::new(),
            };
            return Some((open_end, replacement));
        }
        match static_name {
            "br" => return Some((open_end, self.marker(INLINE, "<br>".into()))),
            "hr" => return Some((open_end, self.marker(BLOCK, "<hr>".into()))),
            _ => {}
        }
        let end_tag = match static_name {
            "nowiki" => "</nowiki",
            "pre" => "</pre",
            "ref" => "</ref",
            "references" => "</references",
            "math" => "</math",
            "chem" => "</chem",
            "ce" => "</ce",
            "source" => "</source",
            "syntaxhighlight" => "</syntaxhighlight",
            name if DROPPED.contains(&name) => {
                return Some(self.skip_to(finder, lower, open_end, &format!("</{name}")));
            }
            name if SIMPLE_INLINE.contains(&name) => {
                return Some(self.simple_inline(text, lower, name, open_end));
            }
            _ => return Some((open_end, String::new())),
        };
        let Some(close) = finder.find(lower, open_end, end_tag) else {
            // Unclosed: the start tag alone vanishes.
            return Some((open_end, String::new()));
        };
        let content = &text[open_end..close];
        let end = lower[close..]
            .find('>')
            .map_or(text.len(), |gt| close + gt + 1);
        let replacement = match static_name {
            "nowiki" => self.marker(INLINE, escape(content)),
            "pre" => self.marker(BLOCK, format!("<pre>{}</pre>", escape(content))),
            "source" | "syntaxhighlight" => self.marker(
                BLOCK,
                format!(
                    "<pre class=\"code\">{}</pre>",
                    escape(content.trim_matches('\n'))
                ),
            ),
            "math" | "chem" | "ce" => self.marker(
                INLINE,
                format!("<code class=\"math\">{}</code>", escape(content.trim())),
            ),
            "ref" => self.reference(attrs, Some(content), depth),
            // List-defined references: their content fills named footnotes.
            _ => {
                if depth < MAX_DEPTH {
                    self.preprocess(content, depth + 1, context);
                }
                String::new()
            }
        };
        Some((end, replacement))
    }

    /// Drops everything up to the end tag `end_tag` (or the end).
    fn skip_to(
        &mut self,
        finder: &mut Finder,
        lower: &str,
        from: usize,
        end_tag: &str,
    ) -> (usize, String) {
        let end = match finder.find(lower, from, end_tag) {
            Some(close) => lower[close..]
                .find('>')
                .map_or(lower.len(), |gt| close + gt + 1),
            None => lower.len(),
        };
        (end, String::new())
    }

    /// `<sub>2</sub>` and the like: kept as the element when the content is
    /// short plain text, otherwise the tag is dropped and the content kept.
    fn simple_inline(
        &mut self,
        text: &str,
        lower: &str,
        name: &str,
        open_end: usize,
    ) -> (usize, String) {
        // Up to 300 bytes, cut back to a character boundary.
        let mut window_end = lower.len().min(open_end + 300);
        while !lower.is_char_boundary(window_end) {
            window_end -= 1;
        }
        let window = &lower[open_end..window_end];
        if let Some(close) = window.find("</")
            && window[close + 2..].starts_with(name)
        {
            let content = &text[open_end..open_end + close];
            let plain = !content.contains(['\n', '[', '{', '\'', '<', '&']);
            if plain {
                let after = open_end + close + 2 + name.len();
                if let Some(gt) = lower[after..].find('>').filter(|&gt| gt < 10) {
                    let tag = if name == "tt" || name == "samp" {
                        "code"
                    } else {
                        name
                    };
                    let html = format!("<{tag}>{}</{tag}>", escape(content));
                    return (after + gt + 1, self.marker(INLINE, html));
                }
            }
        }
        (open_end, String::new())
    }

    /// A `<ref>`: its footnote number as a mark; its content (prepared)
    /// stored for the list at the end. Named references share a number.
    fn reference(&mut self, attrs: &str, content: Option<&str>, depth: u8) -> String {
        let name = attribute(attrs, "name").filter(|n| !n.is_empty());
        let prepared = match content {
            Some(content) if depth < MAX_DEPTH && !content.trim().is_empty() => {
                Some(self.preprocess(content, depth + 1, Context::Ref))
            }
            _ => None,
        };
        let number = match name.as_ref().and_then(|n| self.ref_names.get(n)) {
            Some(&number) => {
                if let Some(prepared) = prepared
                    && self.refs[number - 1].is_empty()
                {
                    self.refs[number - 1] = prepared;
                }
                number
            }
            None => {
                self.refs.push(prepared.unwrap_or_default());
                let number = self.refs.len();
                if let Some(name) = name {
                    self.ref_names.insert(name, number);
                }
                number
            }
        };
        self.marker(
            INLINE,
            format!(
                "<sup class=\"reference\"><a id=\"cite_ref-{number}\" href=\"#cite_note-{number}\">[{number}]</a></sup>"
            ),
        )
    }

    /// A template's replacement, given what is between its braces.
    fn template(&mut self, inner: &str, depth: u8, context: Context) -> String {
        if inner.starts_with('{') || depth >= MAX_DEPTH {
            // A parameter (`{{{1}}}`), or too deep.
            return String::new();
        }
        let name_end = inner
            .find(['|', '\n', '{', '}', '['])
            .unwrap_or(inner.len());
        let name = inner[..name_end].trim().to_lowercase().replace('_', " ");
        let name = name
            .strip_prefix("template:")
            .unwrap_or(&name)
            .trim()
            .to_string();
        if name.starts_with('#') || name.contains(':') {
            // Parser functions and behaviour switches (`{{#if:}}`,
            // `{{DISPLAYTITLE:}}`).
            return String::new();
        }
        if name.starts_with("infobox") && context == Context::Top {
            let args = split_args(inner);
            let mut rows = Vec::new();
            for arg in args.iter().skip(1) {
                let (Some(key), value) = named_arg(arg) else {
                    continue;
                };
                let skip = [
                    "image",
                    "logo",
                    "caption",
                    "alt",
                    "size",
                    "map",
                    "signature",
                    "coordinates",
                    "module",
                    "embed",
                ];
                if value.is_empty() || key.is_empty() || skip.iter().any(|s| key.contains(s)) {
                    continue;
                }
                let prepared = self.preprocess(value, depth + 1, Context::Nested);
                if prepared.trim().is_empty() {
                    continue;
                }
                let mut label = key.replace('_', " ");
                if let Some(first) = label.get(..1) {
                    label = first.to_uppercase() + &label[1..];
                }
                rows.push((label, prepared));
            }
            let title = inner[..name_end].trim().to_string();
            self.infoboxes.push((title, rows));
            return String::new();
        }
        if context == Context::Ref && (name.starts_with("cite") || name == "citation") {
            return self.citation(inner);
        }
        match name.as_str() {
            // Templates that only wrap text: keep the text.
            "nowrap" | "nobr" | "small" | "smaller" | "big" | "lang" | "transl" | "em"
            | "strong" => {
                let args = split_args(inner);
                let text = args[1..]
                    .iter()
                    .rev()
                    .find(|a| named_arg(a).0.is_none())
                    .map_or("", |a| a.trim());
                self.preprocess(text, depth + 1, Context::Nested)
            }
            "convert" | "cvt" => {
                let args = split_args(inner);
                let value = args.get(1).map_or("", |a| a.trim());
                let unit = args.get(2).map_or("", |a| a.trim());
                self.preprocess(&format!("{value} {unit}"), depth + 1, Context::Nested)
            }
            _ => String::new(),
        }
    }

    /// `{{cite web|title=|url=|website=|date=}}` as a line of text.
    fn citation(&mut self, inner: &str) -> String {
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for arg in split_args(inner).into_iter().skip(1) {
            if let (Some(key), value) = named_arg(arg)
                && !value.is_empty()
            {
                fields.insert(key, value);
            }
        }
        let mut html = String::from("<cite>");
        let author = match (fields.get("last"), fields.get("first")) {
            (Some(last), Some(first)) => Some(format!("{last}, {first}")),
            (Some(last), None) => Some(last.to_string()),
            _ => fields.get("author").map(|a| a.to_string()),
        };
        if let Some(author) = author {
            html.push_str(&escape(&author));
            html.push_str(". ");
        }
        let title = escape(fields.get("title").copied().unwrap_or("(untitled)"));
        match fields.get("url").filter(|url| crate::inline::safe_url(url)) {
            Some(url) => html.push_str(&format!(
                "<a class=\"external\" rel=\"nofollow\" href=\"{}\">{title}</a>",
                escape(url)
            )),
            None => html.push_str(&format!("\u{201c}{title}\u{201d}")),
        }
        for key in [
            "website",
            "work",
            "journal",
            "newspaper",
            "publisher",
            "date",
            "year",
        ] {
            if let Some(value) = fields.get(key) {
                html.push_str(". ");
                html.push_str(&escape(value));
            }
        }
        html.push_str(".</cite>");
        self.marker(INLINE, html)
    }
}
