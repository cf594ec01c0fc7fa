//! HTML output helpers: escaping text and attributes, the `/read/` URL of a
//! title, and [`check_well_formed`], the balanced-tags check that the unit
//! tests and the fuzz target hold every rendered page to.

/// Appends `s` to `out` with `&`, `<`, `>`, `"` and `'` escaped, so that it
/// is inert both as text and inside a quoted attribute value.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// `s` escaped as by [`escape_into`].
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

/// A title as MediaWiki spells it in URLs: surrounding spaces trimmed,
/// spaces as underscores, the first letter upper-cased.
pub fn url_title(title: &str) -> String {
    let trimmed = title.trim_matches(|c: char| c == ' ' || c == '_');
    let mut out = String::with_capacity(trimmed.len());
    let mut chars = trimmed.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
    }
    for c in chars {
        out.push(if c == ' ' { '_' } else { c });
    }
    out
}

/// The path of the rendered article `title`: `/read/` and the title as in
/// [`url_title`], percent-encoded (every byte but unreserved characters and
/// a few that are safe in a path segment). The result holds no character
/// that needs HTML escaping.
pub fn read_path(title: &str) -> String {
    let mut out = String::from("/read/");
    for b in url_title(title).bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$()*,;:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An `id` for a heading (and the fragment that links to it): the heading's
/// text with spaces as underscores, escaped for an attribute.
pub fn anchor(text: &str) -> String {
    escape(text.trim().replace(' ', "_").as_str())
}

/// Elements that have no end tag.
const VOID: &[&str] = &["br", "hr", "img", "meta", "link", "input", "wbr"];

/// The attributes the renderer writes.
const ATTRIBUTES: &[&str] = &["href", "id", "class", "title", "rel", "colspan", "rowspan"];

/// Where the renderer's links may point.
const HREF_STARTS: &[&str] = &[
    "/read/", "#", "http://", "https://", "ftp://", "ftps://", "mailto:", "//",
];

/// Checks that a fragment from [`crate::render`] is well formed the way
/// the renderer promises: every start tag is closed in order (void elements
/// excepted), every `<` starts a tag, attributes are the renderer's own
/// (no `on*` handlers, no `style`) with double-quoted values, links point
/// only to `/read/`, `#`, `http(s)`, `ftp` or `mailto` URLs, and no
/// `script` element appears. Returns the first problem, with its offset.
pub fn check_well_formed(html: &str) -> Result<(), String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = html;
    let mut offset = 0;
    while let Some(at) = rest.find('<') {
        let tag_start = offset + at;
        let after = &rest[at + 1..];
        let Some(end) = after.find('>') else {
            return Err(format!("unterminated tag at byte {tag_start}"));
        };
        let tag = &after[..end];
        if tag.contains('<') {
            return Err(format!("'<' inside a tag at byte {tag_start}"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name => {}
                open => {
                    return Err(format!("</{name}> at byte {tag_start} closes {open:?}"));
                }
            }
        } else {
            let (name, mut attrs) = tag.split_once(' ').unwrap_or((tag, ""));
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("bad tag <{tag}> at byte {tag_start}"));
            }
            if name.eq_ignore_ascii_case("script") {
                return Err(format!("a script element at byte {tag_start}"));
            }
            while !attrs.is_empty() {
                let bad = || format!("bad attributes in <{tag}> at byte {tag_start}");
                let (attr, value_and_rest) = attrs.split_once("=\"").ok_or_else(bad)?;
                let (value, after_value) = value_and_rest.split_once('"').ok_or_else(bad)?;
                if !ATTRIBUTES.contains(&attr) {
                    return Err(bad());
                }
                // Schemes are case-insensitive (`HTTP://` is http).
                let lower = value.to_ascii_lowercase();
                if attr == "href" && !HREF_STARTS.iter().any(|s| lower.starts_with(s)) {
                    return Err(format!("a link to {value:?} at byte {tag_start}"));
                }
                attrs = after_value.strip_prefix(' ').unwrap_or(after_value);
                if !after_value.is_empty() && !after_value.starts_with(' ') {
                    return Err(bad());
                }
            }
            if !VOID.contains(&name) {
                stack.push(name);
            }
        }
        offset = tag_start + 1 + end + 1;
        rest = &html[offset..];
    }
    match stack.last() {
        None => Ok(()),
        Some(open) => Err(format!("<{open}> is never closed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_paths() {
        assert_eq!(
            escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
        assert_eq!(read_path("foo bar"), "/read/Foo_bar");
        assert_eq!(read_path("AC/DC"), "/read/AC%2FDC");
        assert_eq!(read_path("\"><script>"), "/read/%22%3E%3Cscript%3E");
        assert_eq!(read_path("Łódź"), "/read/%C5%81%C3%B3d%C5%BA");
        assert_eq!(anchor(" Early life "), "Early_life");
    }

    #[test]
    fn the_checker_finds_problems() {
        assert!(check_well_formed("<p>a<br>b</p>").is_ok());
        assert!(check_well_formed("<p><b>a</p></b>").is_err());
        assert!(check_well_formed("<p>").is_err());
        assert!(check_well_formed("<script>x</script>").is_err());
        assert!(check_well_formed("<a href=\"javascript:x\">x</a>").is_err());
        assert!(check_well_formed("<img src=x onerror=y>").is_err());
        assert!(check_well_formed("<a href=\"/read/X\" title=\"Sean onion\">x</a>").is_ok());
        assert!(check_well_formed("<a href=\"/read/X\" onclick=\"y\">x</a>").is_err());
        assert!(check_well_formed("<p style=\"x\">x</p>").is_err());
        assert!(check_well_formed("<a href=\"HTTP://x\">x</a>").is_ok());
        assert!(check_well_formed("<a href=\"JavaScript:x\">x</a>").is_err());
        assert!(check_well_formed("a < b").is_err());
    }
}
