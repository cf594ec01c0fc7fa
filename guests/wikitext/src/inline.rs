//! The inline pass over prepared text: bold and italic (`''`, `'''`),
//! internal links (`[[Target|label]]trail`, categories collected, files and
//! interlanguage links dropped), external links (`[url label]` and bare
//! URLs, for safe schemes only), character references, and the markers
//! that the first pass left. Bold and italic close at the end of each
//! line, as in MediaWiki.

use std::collections::HashMap;

use crate::html::{anchor, escape, escape_into, read_path};
use crate::{BLOCK, END, INLINE, Renderer};

/// URL schemes that external links may use.
const SCHEMES: &[&str] = &["http://", "https://", "ftp://", "ftps://", "mailto:", "//"];

/// Namespaces that `[[Prefix:...]]` links go to (anything else that looks
/// like a language code is an interlanguage link, dropped).
const NAMESPACES: &[&str] = &[
    "talk",
    "user",
    "user talk",
    "wikipedia",
    "wp",
    "project",
    "mediawiki",
    "template",
    "help",
    "portal",
    "draft",
    "module",
    "special",
];

/// Whether `url` starts with a scheme that links may use (so never
/// `javascript:` or `data:`) and holds nothing that could end an attribute.
pub(crate) fn safe_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    SCHEMES.iter().any(|s| lower.starts_with(s))
        && url.len() > 3
        && !url
            .contains(|c: char| c.is_whitespace() || c.is_control() || "<>\"'[]{}|\\^`".contains(c))
}

/// The named character references worth decoding (others stay as text).
fn named_reference(name: &str) -> Option<char> {
    Some(match name {
        "nbsp" => '\u{a0}',
        "ndash" => '–',
        "mdash" => '—',
        "minus" => '−',
        "times" => '×',
        "hellip" => '…',
        "copy" => '©',
        "reg" => '®',
        "deg" => '°',
        "middot" => '·',
        "laquo" => '«',
        "raquo" => '»',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "thinsp" => '\u{2009}',
        "ensp" => '\u{2002}',
        "emsp" => '\u{2003}',
        "shy" => '\u{ad}',
        "prime" => '′',
        "Prime" => '″',
        "frac12" => '½',
        "pound" => '£',
        "euro" => '€',
        "sect" => '§',
        "zwj" => '\u{200d}',
        "zwnj" => '\u{200c}',
        _ => return crate::xml::reference(name),
    })
}

/// Matches `[[` with `]]` within each line in one stack pass.
fn link_pairs(text: &str) -> HashMap<usize, usize> {
    let b = text.as_bytes();
    let mut pairs = HashMap::new();
    let mut stack = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1).copied()) {
            (b'\n', _) => stack.clear(),
            (b'[', Some(b'[')) => {
                stack.push(i);
                i += 2;
                continue;
            }
            (b']', Some(b']')) => {
                if let Some(start) = stack.pop() {
                    pairs.insert(start, i + 2);
                }
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    pairs
}

/// Bold and italic state of a line.
#[derive(Default)]
struct Emphasis {
    /// Open elements, innermost last: `b` or `i`.
    open: Vec<&'static str>,
}

impl Emphasis {
    fn toggle(&mut self, out: &mut String, tag: &'static str) {
        match self.open.iter().rposition(|t| *t == tag) {
            Some(at) => {
                let reopen: Vec<_> = self.open.drain(at..).collect();
                for t in reopen.iter().rev() {
                    out.push_str(&format!("</{t}>"));
                }
                for t in &reopen[1..] {
                    out.push_str(&format!("<{t}>"));
                    self.open.push(t);
                }
            }
            None => {
                out.push_str(&format!("<{tag}>"));
                self.open.push(tag);
            }
        }
    }

    fn close_all(&mut self, out: &mut String) {
        while let Some(t) = self.open.pop() {
            out.push_str(&format!("</{t}>"));
        }
    }
}

impl Renderer<'_> {
    /// Renders prepared text as inline HTML. Without `links`, link markup
    /// shows its label only (inside another link's label).
    pub(crate) fn inline(&mut self, text: &str, links: bool) -> String {
        let pairs = link_pairs(text);
        let b = text.as_bytes();
        let mut out = String::with_capacity(text.len() + text.len() / 4);
        let mut emphasis = Emphasis::default();
        // The first `]` or newline after some position, memoised for
        // external links.
        let mut next_bracket: Option<(usize, Option<usize>)> = None;
        let mut external_count = 0;
        let mut i = 0;
        while i < b.len() {
            if self.emitted + out.len() > crate::MAX_HTML_BYTES {
                self.truncated = true;
                break;
            }
            let c = b[i];
            match c {
                b'\'' if b.get(i + 1) == Some(&b'\'') => {
                    let run = b[i..].iter().take_while(|&&x| x == b'\'').count();
                    let (literal, marks) = match run {
                        2 => (0, 2),
                        3 => (0, 3),
                        4 => (1, 3),
                        _ => (run - 5, 5),
                    };
                    for _ in 0..literal {
                        out.push_str("&#39;");
                    }
                    match marks {
                        2 => emphasis.toggle(&mut out, "i"),
                        3 => emphasis.toggle(&mut out, "b"),
                        _ => {
                            // Close the inner one first when both are open.
                            let first = match emphasis.open.as_slice() {
                                [.., "i"] if emphasis.open.contains(&"b") => "i",
                                _ => "b",
                            };
                            emphasis.toggle(&mut out, first);
                            emphasis.toggle(&mut out, if first == "b" { "i" } else { "b" });
                        }
                    }
                    i += run;
                }
                b'[' if b.get(i + 1) == Some(&b'[') && pairs.contains_key(&i) => {
                    let end = pairs[&i];
                    let trail = text[end..]
                        .bytes()
                        .take_while(|b| b.is_ascii_lowercase())
                        .count();
                    let html =
                        self.internal_link(&text[i + 2..end - 2], &text[end..end + trail], links);
                    match html {
                        Some(html) => {
                            out.push_str(&html);
                            i = end + trail;
                        }
                        None => {
                            out.push_str("[[");
                            i += 2;
                        }
                    }
                }
                b'[' => {
                    // The first `]` or newline after `i` (`None`: neither).
                    let hit = match next_bracket {
                        Some((from, hit)) if from <= i && hit.is_none_or(|h| h > i) => hit,
                        _ => {
                            let hit = text[i..].find([']', '\n']).map(|at| i + at);
                            next_bracket = Some((i, hit));
                            hit
                        }
                    };
                    let close = hit.filter(|&h| b[h] == b']');
                    let inner = close.map(|close| &text[i + 1..close]);
                    let (url, label) = match inner {
                        Some(inner) => inner.split_once(' ').unwrap_or((inner, "")),
                        None => ("", ""),
                    };
                    if let Some(close) = close
                        && safe_url(url)
                    {
                        let label = if label.trim().is_empty() {
                            external_count += 1;
                            format!("[{external_count}]")
                        } else {
                            self.inline(label, false)
                        };
                        out.push_str(&format!(
                            "<a class=\"external\" rel=\"nofollow\" href=\"{}\">{label}</a>",
                            escape(url)
                        ));
                        i = close + 1;
                    } else {
                        out.push('[');
                        i += 1;
                    }
                }
                b'h' | b'f' | b'H' | b'F'
                    if links
                        && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
                        && ["http://", "https://", "ftp://"].iter().any(|s| {
                            text[i..]
                                .get(..s.len())
                                .is_some_and(|p| p.eq_ignore_ascii_case(s))
                        }) =>
                {
                    let len = text[i..]
                        .find(|c: char| {
                            c.is_whitespace()
                                || c.is_control()
                                || "<>\"'[]{}|\\^`".contains(c)
                                || c == INLINE
                                || c == BLOCK
                        })
                        .unwrap_or(text.len() - i);
                    let url =
                        text[i..i + len].trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
                    if safe_url(url) {
                        let url = escape(url);
                        out.push_str(&format!(
                            "<a class=\"external\" rel=\"nofollow\" href=\"{url}\">{url}</a>"
                        ));
                        i += url_len(text, i, len);
                    } else {
                        out.push(char::from(c));
                        i += 1;
                    }
                }
                b'&' => {
                    let name = text[i + 1..]
                        .get(..text.len().min(i + 12) - (i + 1))
                        .and_then(|w| w.find(';').map(|semi| &w[..semi]));
                    match name.and_then(|n| Some((n.len(), named_reference(n)?))) {
                        Some((len, decoded)) => {
                            let mut buf = [0; 4];
                            escape_into(&mut out, decoded.encode_utf8(&mut buf));
                            i += len + 2;
                        }
                        None => {
                            out.push_str("&amp;");
                            i += 1;
                        }
                    }
                }
                b'\n' => {
                    emphasis.close_all(&mut out);
                    out.push('\n');
                    i += 1;
                }
                _ if text[i..].starts_with([INLINE, BLOCK]) => {
                    let start = i + INLINE.len_utf8();
                    let end = text[start..].find(END).map_or(text.len(), |e| start + e);
                    if let Some(frag) = text[start..end]
                        .parse::<usize>()
                        .ok()
                        .and_then(|n| self.frags.get(n))
                    {
                        out.push_str(frag);
                    }
                    i = (end + END.len_utf8()).min(text.len());
                }
                _ => {
                    let len = text[i..].chars().next().map_or(1, char::len_utf8);
                    escape_into(&mut out, &text[i..i + len]);
                    i += len;
                }
            }
        }
        emphasis.close_all(&mut out);
        // The output, and about the tags a block puts around it.
        self.emitted += out.len() + 40;
        out
    }

    /// An internal link's HTML (`inner` is what is between the brackets,
    /// `trail` the letters after them); `None` when it is not a link.
    fn internal_link(&mut self, inner: &str, trail: &str, links: bool) -> Option<String> {
        let (target, label) = match inner.split_once('|') {
            Some((target, label)) => (target.trim(), Some(label)),
            None => (inner.trim(), None),
        };
        if target.is_empty()
            || target.contains(['<', '>', '[', ']', '{', '}', '\n', INLINE, BLOCK, END])
        {
            return None;
        }
        let (colon, target) = match target.strip_prefix(':') {
            Some(rest) => (true, rest.trim()),
            None => (false, target),
        };
        if let Some((prefix, rest)) = target.split_once(':') {
            let namespace = prefix.trim().to_lowercase();
            match namespace.as_str() {
                "category" if !colon => {
                    let name = rest.trim().to_string();
                    if !name.is_empty() && self.category_set.insert(name.clone()) {
                        self.categories.push(name);
                    }
                    return Some(String::new());
                }
                "file" | "image" | "media" if !colon => return Some(String::new()),
                ns if !NAMESPACES.contains(&ns)
                    && !colon
                    && (2..=12).contains(&prefix.len())
                    && prefix.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') =>
                {
                    // An interlanguage (`[[de:Tokio]]`) or interwiki
                    // (`[[wikt:word|word]]`) link: not in this dump, so its
                    // label, when it has one, is plain text.
                    return Some(match label {
                        Some(label) if !label.trim().is_empty() => {
                            let mut html = self.inline(label, false);
                            escape_into(&mut html, trail);
                            html
                        }
                        _ => String::new(),
                    });
                }
                _ => {}
            }
        }
        let label = match label {
            Some(label) if !label.trim().is_empty() => label,
            _ => target,
        };
        let mut label_html = self.inline(label, false);
        escape_into(&mut label_html, trail);
        if !links {
            return Some(label_html);
        }
        Some(self.link_html(target, &label_html))
    }

    /// `<a>` to the article `target` (which may end in `#fragment`), with
    /// `label_html` inside; styled as missing when the dump lacks it.
    pub(crate) fn link_html(&mut self, target: &str, label_html: &str) -> String {
        let (page, fragment) = match target.split_once('#') {
            Some((page, fragment)) => (page.trim(), Some(fragment)),
            None => (target, None),
        };
        let fragment = fragment
            .map(|f| format!("#{}", anchor(f)))
            .unwrap_or_default();
        if page.is_empty() {
            return format!("<a href=\"{fragment}\">{label_html}</a>");
        }
        let path = read_path(page);
        if self.title_exists(page) {
            format!("<a href=\"{path}{fragment}\">{label_html}</a>")
        } else {
            format!(
                "<a class=\"new\" title=\"{} (page does not exist)\" href=\"{path}{fragment}\">{label_html}</a>",
                escape(page)
            )
        }
    }
}

/// How many bytes a bare URL of `len` candidate bytes at `at` takes once
/// trailing punctuation is left out.
fn url_len(text: &str, at: usize, len: usize) -> usize {
    text[at..at + len]
        .trim_end_matches(['.', ',', ';', ':', '!', '?', ')'])
        .len()
}
