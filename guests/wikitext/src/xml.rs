//! The page text inside a dump's `<page>` element: [`page_text`] finds the
//! `<text>` element and decodes its XML escapes.

/// The wikitext of a `<page>` element (as bytes of the dump): the content of
/// its `<text>` element with XML character references decoded. `None` when
/// the element has no `<text>`; an empty string for `<text/>`. Bytes that
/// are not UTF-8 become U+FFFD.
pub fn page_text(page: &[u8]) -> Option<String> {
    let page = String::from_utf8_lossy(page);
    let open = page.find("<text")?;
    let after = &page[open + 5..];
    // `<text` must be the whole name (not `<textfoo`).
    if !after.starts_with([' ', '>', '/', '\t', '\n', '\r']) {
        return None;
    }
    let close = after.find('>')?;
    if after[..close].ends_with('/') {
        return Some(String::new());
    }
    let body = &after[close + 1..];
    let end = body.find("</text>").unwrap_or(body.len());
    Some(decode_entities(&body[..end]))
}

/// Decodes XML's five named references and numeric ones; anything else
/// (including a malformed reference) is kept as written.
pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest
            .get(1..rest.len().min(12))
            .and_then(|window| window.find(';').map(|semi| &window[..semi]))
            .and_then(|name| Some((name.len(), reference(name)?)));
        match decoded {
            Some((len, c)) => {
                out.push(c);
                rest = &rest[len + 2..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character an XML (or common HTML) reference names, without `&;`.
pub(crate) fn reference(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).filter(|&c| c != '\0');
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_element_is_found_and_decoded() {
        let page = b"<page><title>A</title><revision><text bytes=\"9\" xml:space=\"preserve\">a &lt;b&gt; &amp;amp; &#039;c&#x27; &bogus; &</text></revision></page>";
        assert_eq!(page_text(page).unwrap(), "a <b> &amp; 'c' &bogus; &");
        assert_eq!(page_text(b"<page><text/></page>").unwrap(), "");
        assert_eq!(page_text(b"<page><title>x</title></page>"), None);
        assert_eq!(
            decode_entities("&#0; &#xD800; &#99999999999;"),
            "&#0; &#xD800; &#99999999999;"
        );
    }
}
