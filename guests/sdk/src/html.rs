//! HTML output: escaping text for pages and attributes, and a minimal page.

use std::fmt;

/// `s` with `&`, `<`, `>`, `"` and `'` escaped, so that it is inert as text
/// and inside a quoted attribute value. Use it in `format!`:
/// `format!("<li>{}</li>", html::escape(&page.title))`.
pub fn escape(s: &str) -> Escaped<'_> {
    Escaped(s)
}

/// What [`escape`] returns: `s`, escaped as it is written out.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// A complete HTML page: `title` (escaped here) as its `<title>` and `<h1>`,
/// then `body`, which is written as it is (escape what you put in it).
pub fn page(title: &str, body: &str) -> String {
    let title = escape(title);
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1>\n{body}\n</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#).to_string(),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("Москва").to_string(), "Москва");
        let page = page("<b>", "<p>x</p>");
        assert!(page.contains("<title>&lt;b&gt;</title>") && page.contains("<p>x</p>"));
    }
}
