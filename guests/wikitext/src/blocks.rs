//! The line pass: headings (with ids and the table of contents),
//! paragraphs, `*` `#` `;` `:` lists (nested, mixed), `{| |}` tables (with
//! captions, header cells and nested tables), lines that start with a space
//! as preformatted text, `----` rules, and the block markers of the first
//! pass. Also the infobox, a table of the kept key/value rows.

use crate::html::escape;
use crate::{BLOCK, END, MAX_DEPTH, MAX_HTML_BYTES, Renderer, TocMode};

/// What a list prefix character opens: the list element and the item.
fn list_kind(c: u8) -> (&'static str, &'static str) {
    match c {
        b'*' => ("ul", "li"),
        b'#' => ("ol", "li"),
        b';' => ("dl", "dt"),
        _ => ("dl", "dd"),
    }
}

/// The `:` that ends a `;term` on its line, outside links and URLs.
fn term_split(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    for i in 0..b.len() {
        match b[i] {
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && !text[i + 1..].starts_with("//") => return Some(i),
            _ => {}
        }
    }
    None
}

/// The heading in a line (`== Text ==`): level and text.
fn heading(line: &str) -> Option<(u8, &str)> {
    let line = line.trim_end();
    let open = line.bytes().take_while(|&b| b == b'=').count();
    let close = line.bytes().rev().take_while(|&b| b == b'=').count();
    if open == 0 || close == 0 || line.len() < open + close + 1 {
        return None;
    }
    let level = open.min(close).min(6);
    let text = &line[level..line.len() - level];
    (!text.trim().is_empty()).then(|| (u8::try_from(level.max(2)).unwrap_or(2), text.trim()))
}

/// A table cell's content without its attributes (`style=".." | text`);
/// and its `colspan`/`rowspan`, when plain numbers.
fn cell_parts(cell: &str) -> (&str, String) {
    let b = cell.as_bytes();
    let mut depth = 0usize;
    for i in 0..b.len() {
        match b[i] {
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b'|' if depth == 0 => {
                let attrs = &cell[..i];
                let mut spans = String::new();
                for name in ["colspan", "rowspan"] {
                    if let Some(at) = attrs.to_ascii_lowercase().find(name) {
                        let digits: String = attrs[at + name.len()..]
                            .trim_start_matches(['=', ' ', '"', '\''])
                            .chars()
                            .take_while(char::is_ascii_digit)
                            .take(3)
                            .collect();
                        if let Ok(n @ 2..=100) = digits.parse::<u32>() {
                            spans.push_str(&format!(" {name}=\"{n}\""));
                        }
                    }
                }
                return (cell[i + 1..].trim_start(), spans);
            }
            _ => {}
        }
    }
    (cell.trim_start(), String::new())
}

/// Open lists: for each level, its list element and its open item.
type Lists = Vec<(&'static str, &'static str)>;

impl Renderer<'_> {
    /// The article's lines as HTML, with the table of contents before the
    /// first heading when the page gets one.
    pub(crate) fn top_blocks(&mut self, text: &str) -> String {
        let lines: Vec<&str> = text.split('\n').collect();
        let mut first_heading = None;
        let html = self.blocks(&lines, 0, &mut first_heading);
        let wanted = match self.toc {
            TocMode::Auto => self.headings.len() >= 4,
            TocMode::Force => !self.headings.is_empty(),
            TocMode::Never => false,
        };
        match first_heading {
            Some(at) if wanted => {
                let mut with_toc = String::with_capacity(html.len() + 4096);
                with_toc.push_str(&html[..at]);
                with_toc.push_str(&self.toc_html());
                with_toc.push_str(&html[at..]);
                with_toc
            }
            _ => html,
        }
    }

    /// The table of contents: one list, numbered like Wikipedia's (1, 1.1).
    fn toc_html(&self) -> String {
        let mut html =
            String::from("<nav id=\"toc\" class=\"toc\"><h2 class=\"toc-title\">Contents</h2><ul>");
        let mut numbers: Vec<u32> = Vec::new();
        let base = self.headings.iter().map(|h| h.0).min().unwrap_or(2);
        for (level, id, text) in self.headings.iter().take(crate::MAX_TOC_ENTRIES) {
            let depth = usize::from(level - base) + 1;
            numbers.truncate(depth);
            while numbers.len() < depth {
                numbers.push(0);
            }
            if let Some(last) = numbers.last_mut() {
                *last += 1;
            }
            let number: Vec<String> = numbers.iter().map(u32::to_string).collect();
            html.push_str(&format!(
                "<li class=\"toclevel-{depth}\"><a href=\"#{id}\"><span class=\"tocnumber\">{}</span> {text}</a></li>",
                number.join(".")
            ));
        }
        html.push_str("</ul></nav>");
        html
    }

    /// Renders lines. `depth` counts enclosing tables; at depth 0 headings
    /// are recorded for the table of contents, and `first_heading` gets the
    /// byte offset of the first one.
    fn blocks(&mut self, lines: &[&str], depth: u8, first_heading: &mut Option<usize>) -> String {
        let mut out = String::new();
        let mut paragraph: Vec<&str> = Vec::new();
        let mut pre: Vec<&str> = Vec::new();
        let mut lists: Lists = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            if self.emitted > MAX_HTML_BYTES {
                self.truncated = true;
                break;
            }
            let line = lines[i];
            let trimmed = line.trim_start();
            i += 1;
            if trimmed.starts_with("{|") && depth < MAX_DEPTH {
                self.flush(&mut out, &mut paragraph, &mut pre, &mut lists);
                let end = table_end(lines, i);
                out.push_str(&self.table(&lines[i..end], depth + 1));
                i = (end + 1).min(lines.len());
                continue;
            }
            if let Some((level, text)) = heading(line) {
                self.flush(&mut out, &mut paragraph, &mut pre, &mut lists);
                let html = self.inline(text, true);
                let plain = strip_tags(&html);
                if depth == 0 {
                    let mut id = plain.trim().replace(' ', "_");
                    let same = self.heading_ids.entry(id.clone()).or_insert(0);
                    *same += 1;
                    if *same > 1 {
                        id = format!("{id}_{same}");
                    }
                    first_heading.get_or_insert(out.len());
                    out.push_str(&format!("<h{level} id=\"{id}\">{html}</h{level}>"));
                    self.headings.push((level, id, plain));
                } else {
                    out.push_str(&format!("<h{level}>{html}</h{level}>"));
                }
                continue;
            }
            if trimmed.starts_with("----") {
                self.flush(&mut out, &mut paragraph, &mut pre, &mut lists);
                out.push_str("<hr>");
                continue;
            }
            if let Some(&first) = line.as_bytes().first()
                && b"*#:;".contains(&first)
            {
                self.flush_text(&mut out, &mut paragraph, &mut pre);
                self.list_line(&mut out, &mut lists, line);
                continue;
            }
            if line.trim().is_empty() {
                self.flush(&mut out, &mut paragraph, &mut pre, &mut lists);
                continue;
            }
            if let Some(text) = line.strip_prefix(' ') {
                self.flush_paragraph(&mut out, &mut paragraph);
                self.close_lists(&mut out, &mut lists);
                pre.push(text);
                continue;
            }
            self.flush_pre(&mut out, &mut pre);
            self.close_lists(&mut out, &mut lists);
            // Block markers split the paragraph.
            let mut rest = line;
            while let Some(at) = rest.find(BLOCK) {
                paragraph.push(&rest[..at]);
                self.flush_paragraph(&mut out, &mut paragraph);
                let end = rest[at..]
                    .find(END)
                    .map_or(rest.len(), |e| at + e + END.len_utf8());
                out.push_str(&self.inline(&rest[at..end], false));
                rest = &rest[end..];
            }
            paragraph.push(rest);
        }
        self.flush(&mut out, &mut paragraph, &mut pre, &mut lists);
        out
    }

    fn flush(
        &mut self,
        out: &mut String,
        paragraph: &mut Vec<&str>,
        pre: &mut Vec<&str>,
        lists: &mut Lists,
    ) {
        self.flush_text(out, paragraph, pre);
        self.close_lists(out, lists);
    }

    fn flush_text(&mut self, out: &mut String, paragraph: &mut Vec<&str>, pre: &mut Vec<&str>) {
        self.flush_paragraph(out, paragraph);
        self.flush_pre(out, pre);
    }

    fn flush_paragraph(&mut self, out: &mut String, paragraph: &mut Vec<&str>) {
        if paragraph.iter().all(|l| l.trim().is_empty()) {
            paragraph.clear();
            return;
        }
        let html = self.inline(&paragraph.join("\n"), true);
        paragraph.clear();
        if !html.trim().is_empty() {
            out.push_str("<p>");
            out.push_str(html.trim());
            out.push_str("</p>");
        }
    }

    fn flush_pre(&mut self, out: &mut String, pre: &mut Vec<&str>) {
        if pre.is_empty() {
            return;
        }
        let html = self.inline(&pre.join("\n"), true);
        pre.clear();
        out.push_str("<pre>");
        out.push_str(&html);
        out.push_str("</pre>");
    }

    fn close_lists(&mut self, out: &mut String, lists: &mut Lists) {
        while let Some((list, item)) = lists.pop() {
            out.push_str(&format!("</{item}></{list}>"));
        }
    }

    /// One line of a list: closes and opens levels to match its prefix.
    fn list_line(&mut self, out: &mut String, lists: &mut Lists, line: &str) {
        let prefix: Vec<u8> = line
            .bytes()
            .take_while(|b| b"*#:;".contains(b))
            .take(32)
            .collect();
        let text = &line[prefix.len()..];
        let common = prefix
            .iter()
            .zip(lists.iter())
            .take_while(|(c, (list, _))| list_kind(**c).0 == *list)
            .count();
        while lists.len() > common {
            if let Some((list, item)) = lists.pop() {
                out.push_str(&format!("</{item}></{list}>"));
            }
        }
        if common == prefix.len() {
            // A sibling item at the deepest level.
            if let Some(last) = lists.last_mut() {
                out.push_str(&format!("</{}>", last.1));
                last.1 = list_kind(prefix[prefix.len() - 1]).1;
                out.push_str(&format!("<{}>", last.1));
            }
        } else {
            for &c in &prefix[common..] {
                let (list, item) = list_kind(c);
                out.push_str(&format!("<{list}><{item}>"));
                lists.push((list, item));
            }
        }
        let last_is_term = prefix.last() == Some(&b';');
        match term_split(text).filter(|_| last_is_term) {
            Some(at) => {
                out.push_str(&self.inline(text[..at].trim(), true));
                out.push_str("</dt><dd>");
                if let Some(last) = lists.last_mut() {
                    last.1 = "dd";
                }
                out.push_str(&self.inline(text[at + 1..].trim(), true));
            }
            None => out.push_str(&self.inline(text.trim(), true)),
        }
    }

    /// A table's lines (between `{|` and `|}`) as a `<table>`.
    fn table(&mut self, lines: &[&str], depth: u8) -> String {
        let mut caption = String::new();
        let mut rows: Vec<Vec<(bool, String, Vec<&str>)>> = vec![Vec::new()];
        let mut nested = 0usize;
        for line in lines {
            let t = line.trim_start();
            let row = rows.last_mut().expect("rows is never empty");
            if nested > 0 || t.starts_with("{|") {
                if row.is_empty() {
                    row.push((false, String::new(), Vec::new()));
                }
                if t.starts_with("{|") {
                    nested += 1;
                } else if t.starts_with("|}") {
                    nested -= 1;
                }
                if let Some(cell) = row.last_mut() {
                    cell.2.push(line);
                }
            } else if let Some(text) = t.strip_prefix("|+") {
                caption = self.inline(cell_parts(text).0.trim(), true);
            } else if t.starts_with("|-") {
                if !row.is_empty() {
                    rows.push(Vec::new());
                }
            } else if let Some(text) = t.strip_prefix('!') {
                for cell in text.split("!!").flat_map(|c| c.split("||")) {
                    let (content, spans) = cell_parts(cell);
                    row.push((true, spans, vec![content]));
                }
            } else if let Some(text) = t.strip_prefix('|') {
                for cell in text.split("||") {
                    let (content, spans) = cell_parts(cell);
                    row.push((false, spans, vec![content]));
                }
            } else if let Some(cell) = row.last_mut() {
                cell.2.push(line);
            }
        }
        let mut html = String::from("<table class=\"wikitable\">");
        if !caption.is_empty() {
            html.push_str(&format!("<caption>{caption}</caption>"));
        }
        html.push_str("<tbody>");
        for row in rows.into_iter().filter(|r| !r.is_empty()) {
            html.push_str("<tr>");
            for (header, spans, content) in row {
                let tag = if header { "th" } else { "td" };
                let body = self.cell(&content, depth);
                html.push_str(&format!("<{tag}{spans}>{body}</{tag}>"));
            }
            html.push_str("</tr>");
        }
        html.push_str("</tbody></table>");
        html
    }

    /// A cell's (or an infobox value's) lines: inline when one line, as
    /// blocks otherwise.
    fn cell(&mut self, lines: &[&str], depth: u8) -> String {
        let significant = lines.iter().filter(|l| !l.trim().is_empty()).count();
        if significant <= 1
            && !lines
                .iter()
                .any(|l| l.trim_start().starts_with(['*', '#', ':', ';', '{']))
        {
            let line = lines
                .iter()
                .find(|l| !l.trim().is_empty())
                .map_or("", |l| l.trim());
            return self.inline(line, true);
        }
        let mut unused = None;
        self.blocks(lines, depth, &mut unused)
    }

    /// Infobox `index` as a key/value table.
    pub(crate) fn infobox_html(&mut self, index: usize) -> String {
        let (name, rows) = std::mem::take(&mut self.infoboxes[index]);
        let mut html = String::from("<table class=\"infobox\">");
        let title = rows
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("name"))
            .map(|(_, value)| self.inline(value.trim(), false))
            .unwrap_or_else(|| escape(&name));
        html.push_str(&format!("<caption>{title}</caption><tbody>"));
        for (key, value) in rows
            .iter()
            .filter(|(key, _)| !key.eq_ignore_ascii_case("name"))
        {
            let lines: Vec<&str> = value.split('\n').collect();
            let body = self.cell(&lines, MAX_DEPTH - 1);
            html.push_str(&format!("<tr><th>{}</th><td>{body}</td></tr>", escape(key)));
        }
        html.push_str("</tbody></table>");
        html
    }
}

/// The index of the line that ends the table whose first line is before
/// `from` (its `|}`, with nested tables counted), or `lines.len()`.
fn table_end(lines: &[&str], from: usize) -> usize {
    let mut depth = 0usize;
    for (i, line) in lines.iter().enumerate().skip(from) {
        let t = line.trim_start();
        if t.starts_with("{|") {
            depth += 1;
        } else if t.starts_with("|}") {
            if depth == 0 {
                return i;
            }
            depth -= 1;
        }
    }
    lines.len()
}

/// The text of some HTML without its tags (entities stay escaped).
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}
