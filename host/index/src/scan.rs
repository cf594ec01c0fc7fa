//! The dump scanner: finds every `<page>` element of a MediaWiki XML export
//! and pulls out its byte range, title, namespace, page id and redirect
//! target, without parsing the rest.
//!
//! It relies on one property of XML: a `<` in character data is always
//! escaped (`&lt;`), so every raw `<` in the dump starts markup. The scanner
//! therefore hops from `<` to `<` with `memchr`, and the article text, which
//! is almost all of the bytes, is crossed in a single SIMD search. Nothing it
//! keeps is proportional to the dump; titles borrow from the mapped file
//! unless they contain entities.
//!
//! It does not own file handling, sorting or output (see `builder`), and it
//! is not a validating XML parser: it checks exactly what it needs to give
//! each page's bytes and fields, and fails with a byte offset otherwise.

use std::borrow::Cow;
use std::path::Path;

use memchr::{memchr, memmem};

use crate::IndexError;

/// What the scanner extracted from one `<page>` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScannedPage<'a> {
    /// Byte offset of the `<` of `<page>`.
    pub first: u64,
    /// Byte offset of the `>` of `</page>` (inclusive end).
    pub last: u64,
    /// The page id: the first `<id>` that is a direct child of `<page>`.
    pub id: u64,
    /// The namespace number from `<ns>`.
    pub ns: i32,
    /// The title with entities decoded.
    pub title: Cow<'a, str>,
    /// The `title` attribute of `<redirect/>`, decoded, if the page has one.
    pub redirect: Option<Cow<'a, str>>,
}

/// What the scanner learned from the `<mediawiki>` element and `<siteinfo>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SiteInfo {
    /// The export schema version, e.g. "0.11".
    pub schema: String,
    /// `(key, name)` for every `<namespace>` in `<siteinfo>`; the main
    /// namespace has an empty name.
    pub namespaces: Vec<(i32, String)>,
}

/// Iterates over the pages of a dump held in memory (normally mapped).
pub(crate) struct Scanner<'a> {
    /// The dump from offset `base` to its end.
    buf: &'a [u8],
    /// The dump offset of `buf[0]`: offsets in `buf` are local, offsets
    /// reported (pages, errors) are `base +` local.
    base: usize,
    /// The next byte to look at (local).
    pos: usize,
    /// The dump's path, for error messages.
    path: &'a Path,
    /// Set once `</mediawiki>` has been seen, or `stop` reached.
    finished: bool,
    /// For a scanner over one chunk of the dump: the (local) offset of the
    /// `<page>` that starts the next chunk. `None` scans to `</mediawiki>`.
    stop: Option<usize>,
    /// Finds the end of comments (rare; kept for speed).
    comment_end: memmem::Finder<'static>,
    /// Finds `<text` after `<revision>`.
    text_tag: memmem::Finder<'static>,
    /// Finds `<page>` or `</page>` (checks a `<revision>` skip).
    page_tag: memmem::Finder<'static>,
}

/// Schema versions whose `<page>` layout the scanner knows.
const SCHEMAS: [&str; 2] = ["0.10", "0.11"];

impl<'a> Scanner<'a> {
    /// Checks that `buf` starts like a MediaWiki export, reads `<siteinfo>`,
    /// and returns a scanner positioned before the first `<page>`.
    pub(crate) fn new(buf: &'a [u8], path: &'a Path) -> Result<(Self, SiteInfo), IndexError> {
        let mut scanner = Scanner {
            buf,
            base: 0,
            pos: 0,
            path,
            finished: false,
            stop: None,
            comment_end: memmem::Finder::new(b"-->"),
            text_tag: memmem::Finder::new(b"<text"),
            page_tag: memmem::Finder::new(b"page>"),
        };
        let site = scanner.header()?;
        Ok((scanner, site))
    }

    /// A scanner for the pages that start in `start..stop` of the dump,
    /// given `buf`, the dump from offset `start` to its end (typically a
    /// mapping of just that part). `start` is the offset of a `<page>` (or
    /// the end of the header) and `stop` that of a `<page>`, or `None` for
    /// the last chunk, which runs to `</mediawiki>`. Pages may end past
    /// `stop`.
    pub(crate) fn chunk(buf: &'a [u8], path: &'a Path, start: usize, stop: Option<usize>) -> Self {
        Scanner {
            buf,
            base: start,
            pos: 0,
            path,
            finished: false,
            stop: stop.map(|s| s - start),
            comment_end: memmem::Finder::new(b"-->"),
            text_tag: memmem::Finder::new(b"<text"),
            page_tag: memmem::Finder::new(b"page>"),
        }
    }

    /// Splits the rest of the dump into chunks of about `size` bytes that
    /// each start at a `<page>` (which never occurs escaped, in text): the
    /// start offsets, beginning with the current position.
    pub(crate) fn chunk_starts(&self, size: usize) -> Vec<usize> {
        let finder = memmem::Finder::new(b"<page>");
        let mut starts = vec![self.pos];
        let mut at = self.pos + size;
        while at < self.buf.len() {
            let Some(found) = finder.find(&self.buf[at..]) else {
                break;
            };
            starts.push(at + found);
            at += found + size;
        }
        starts
    }

    /// How far the scanner has got, in bytes.
    pub(crate) fn position(&self) -> u64 {
        (self.base + self.pos) as u64
    }

    /// The next page, or `None` after `</mediawiki>`.
    pub(crate) fn next_page(&mut self) -> Result<Option<ScannedPage<'a>>, IndexError> {
        let buf = self.buf;
        while !self.finished {
            let Some(found) = memchr(b'<', &buf[self.pos..]) else {
                return Err(self.truncated(buf.len(), "the file ends without </mediawiki>".into()));
            };
            let at = self.pos + found;
            if self.stop.is_some_and(|stop| at >= stop) {
                self.finished = true;
                break;
            }
            let rest = &buf[at..];
            if rest.starts_with(b"<page>") {
                return self.page(at).map(Some);
            } else if rest.starts_with(b"</mediawiki>") {
                self.finished = true;
                self.pos = at + b"</mediawiki>".len();
                if let Some(junk) = buf[self.pos..]
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                {
                    return Err(self.malformed(
                        self.pos + junk,
                        "there is content after </mediawiki> (two dumps concatenated?)".into(),
                    ));
                }
            } else if rest.starts_with(b"<siteinfo>") {
                self.skip_past(at, b"</siteinfo>", "<siteinfo>")?;
            } else if rest.starts_with(b"<!--") {
                self.skip_past(at, b"-->", "<!--")?;
            } else if rest.starts_with(b"<page ") {
                return Err(self.malformed(at, "<page> elements have no attributes".into()));
            } else {
                return Err(self.malformed(
                    at,
                    format!("unexpected {} outside a <page>", snippet(rest, 24)),
                ));
            }
        }
        Ok(None)
    }

    /// Reads everything before the first page: optional BOM, XML
    /// declaration and comments, `<mediawiki ...>`, and `<siteinfo>`.
    fn header(&mut self) -> Result<SiteInfo, IndexError> {
        let buf = self.buf;
        if buf.is_empty() {
            return Err(IndexError::EmptyDump {
                path: self.path.into(),
            });
        }
        if buf.starts_with(&[0xFF, 0xFE]) || buf.starts_with(&[0xFE, 0xFF]) {
            return Err(IndexError::Utf16 {
                path: self.path.into(),
                offset: 0,
            });
        }
        for (magic, format, command) in [
            (&b"BZh"[..], "bzip2", "bunzip2 -k"),
            (&[0x1F, 0x8B][..], "gzip", "gunzip -k"),
            (&[0x28, 0xB5, 0x2F, 0xFD][..], "zstd", "zstd -d"),
            (&[0xFD, b'7', b'z', b'X', b'Z', 0][..], "xz", "unxz -k"),
            (&[b'7', b'z', 0xBC, 0xAF, 0x27, 0x1C][..], "7z", "7z x"),
        ] {
            if buf.starts_with(magic) {
                return Err(IndexError::Compressed {
                    path: self.path.into(),
                    format,
                    command,
                });
            }
        }
        if let Some(nul) = buf[..buf.len().min(64)].iter().position(|&b| b == 0) {
            return Err(IndexError::Utf16 {
                path: self.path.into(),
                offset: nul as u64,
            });
        }
        self.pos = if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
            3
        } else {
            0
        };
        // Prolog: whitespace, `<?xml ...?>`, comments.
        let start = loop {
            self.skip_whitespace();
            let rest = &buf[self.pos..];
            if rest.starts_with(b"<?") {
                self.skip_past(self.pos, b"?>", "<?xml")?;
            } else if rest.starts_with(b"<!--") {
                self.skip_past(self.pos, b"-->", "<!--")?;
            } else if rest.starts_with(b"<mediawiki")
                && rest
                    .get(10)
                    .is_some_and(|b| b.is_ascii_whitespace() || *b == b'>')
            {
                break self.pos;
            } else {
                return Err(IndexError::NotAnExport {
                    path: self.path.into(),
                    offset: self.pos as u64,
                    expected: "<mediawiki xmlns=\"http://www.mediawiki.org/xml/export-0.11/\" ...>",
                    found: snippet(rest, 40),
                });
            }
        };
        let end = tag_end(buf, start + 10).ok_or_else(|| {
            self.truncated(
                buf.len(),
                format!("the <mediawiki> tag at byte {start} is never closed"),
            )
        })?;
        let tag = &buf[start..end];
        let schema = attribute(tag, b"version")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .or_else(|| {
                let ns = attribute(tag, b"xmlns")?;
                let at = memmem::find(ns, b"export-")? + 7;
                let version = ns[at..].split(|&b| b == b'/').next()?;
                Some(String::from_utf8_lossy(version).into_owned())
            })
            .unwrap_or_default();
        if !SCHEMAS.contains(&schema.as_str()) {
            return Err(IndexError::UnsupportedSchema {
                path: self.path.into(),
                offset: start as u64,
                version: if schema.is_empty() {
                    "(none given)".into()
                } else {
                    schema
                },
            });
        }
        self.pos = end + 1;
        let mut site = SiteInfo {
            schema,
            namespaces: Vec::new(),
        };
        self.skip_whitespace();
        if buf[self.pos..].starts_with(b"<siteinfo>") {
            let open = self.pos;
            let close = self.skip_past(open, b"</siteinfo>", "<siteinfo>")?;
            site.namespaces = namespaces(&buf[open..close]);
        }
        Ok(site)
    }

    /// Scans the `<page>` element that starts at `first`.
    ///
    /// Hops from `<` to `<`. An element whose next `<` is its own end tag
    /// is a leaf (`<title>`, `<text>`, `<sha1>` …) and costs one hop; a
    /// `<revision>` jumps straight to its `<text`, skipping the contributor
    /// and timestamp tags, unless that would skip a `<page>` or `</page>`.
    fn page(&mut self, first: usize) -> Result<ScannedPage<'a>, IndexError> {
        let buf = self.buf;
        let base = self.base;
        let at = first + base;
        let mut i = first + b"<page>".len();
        // A `<` already found, to start the next hop from.
        let mut next_lt = None;
        // Elements open inside this page, counting the page itself.
        let mut depth = 1usize;
        let mut title = None;
        let mut ns = None;
        let mut id = None;
        let mut redirect = None;
        let unclosed =
            |this: &Self| this.truncated(first, format!("the <page> at byte {at} is never closed"));
        let nested = |this: &Self, lt: usize| {
            this.truncated(
                first,
                format!(
                    "the <page> at byte {at} is not closed before the <page> at byte {}",
                    base + lt
                ),
            )
        };
        let last = loop {
            let lt = match next_lt.take() {
                Some(lt) => lt,
                None => i + memchr(b'<', &buf[i..]).ok_or_else(|| unclosed(self))?,
            };
            match buf.get(lt + 1) {
                None => return Err(unclosed(self)),
                Some(b'/') => {
                    let gt = memchr(b'>', &buf[lt..])
                        .map(|n| lt + n)
                        .ok_or_else(|| unclosed(self))?;
                    depth -= 1;
                    if depth == 0 {
                        if &buf[lt + 2..gt] != b"page" {
                            return Err(self.malformed(
                                lt,
                                format!(
                                    "{} closes the <page> at byte {at}",
                                    snippet(&buf[lt..], 16)
                                ),
                            ));
                        }
                        break gt;
                    }
                    i = gt + 1;
                }
                Some(b'!') => {
                    i = if buf[lt..].starts_with(b"<![CDATA[") {
                        self.skip_past(lt, b"]]>", "<![CDATA[")?
                    } else {
                        self.skip_past(lt, b"-->", "<!--")?
                    };
                }
                Some(b'?') => i = self.skip_past(lt, b"?>", "<?")?,
                Some(_) => {
                    let name_end = lt
                        + 1
                        + buf[lt + 1..]
                            .iter()
                            .position(|&b| matches!(b, b'>' | b'/' | b' ' | b'\t' | b'\n' | b'\r'))
                            .ok_or_else(|| unclosed(self))?;
                    let name = &buf[lt + 1..name_end];
                    let gt = if buf[name_end] == b'>' {
                        name_end
                    } else {
                        tag_end(buf, name_end).ok_or_else(|| unclosed(self))?
                    };
                    let empty = buf[gt - 1] == b'/';
                    i = gt + 1;
                    match name {
                        b"page" => return Err(nested(self, lt)),
                        b"redirect" if depth == 1 => {
                            let tag = &buf[lt..gt];
                            let value = attribute(tag, b"title").ok_or_else(|| {
                                self.malformed(lt, "<redirect> has no title attribute".into())
                            })?;
                            let at = value.as_ptr() as usize - buf.as_ptr() as usize;
                            redirect = Some(at..at + value.len());
                        }
                        b"revision" if !empty => {
                            depth += 1;
                            if let Some(text) = self.text_tag.find(&buf[i..])
                                && self.page_tag.find(&buf[i..i + text]).is_none()
                            {
                                next_lt = Some(i + text);
                            }
                            continue;
                        }
                        _ => {}
                    }
                    if empty {
                        continue;
                    }
                    // The next `<`: this element's end tag (a leaf), or a child.
                    let close = i + memchr(b'<', &buf[i..]).ok_or_else(|| unclosed(self))?;
                    let end = close + 2 + name.len();
                    let is_end_tag = buf.get(close + 1) == Some(&b'/')
                        && buf.get(close + 2..end) == Some(name)
                        && buf.get(end) == Some(&b'>');
                    if !is_end_tag {
                        depth += 1;
                        next_lt = Some(close);
                        continue;
                    }
                    let content = i..close;
                    i = end + 1;
                    if depth == 1 {
                        match name {
                            b"title" if title.is_none() => title = Some(content),
                            b"ns" if ns.is_none() => {
                                ns = Some(self.number::<i32>(content, "<ns>")?);
                            }
                            b"id" if id.is_none() => {
                                id = Some(self.number::<u64>(content, "<id>")?);
                            }
                            _ => {}
                        }
                    }
                }
            }
        };
        self.pos = last + 1;
        let missing =
            |what: &str| self.malformed(first, format!("the <page> at byte {at} has no {what}"));
        let title = title.ok_or_else(|| missing("<title>"))?;
        let title = self.unescape(title)?;
        let redirect = redirect.map(|r| self.unescape(r)).transpose()?;
        Ok(ScannedPage {
            first: (base + first) as u64,
            last: (base + last) as u64,
            id: id.ok_or_else(|| missing("<id>"))?,
            ns: ns.ok_or_else(|| missing("<ns>"))?,
            title,
            redirect,
        })
    }

    /// Parses a decimal number in `range` (surrounding whitespace allowed).
    fn number<T: std::str::FromStr>(
        &self,
        range: std::ops::Range<usize>,
        what: &str,
    ) -> Result<T, IndexError> {
        let start = range.start;
        std::str::from_utf8(&self.buf[range])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| self.malformed(start, format!("{what} is not a number")))
    }

    /// Decodes the UTF-8 and entities of a title or attribute value.
    fn unescape(&self, range: std::ops::Range<usize>) -> Result<Cow<'a, str>, IndexError> {
        let raw = &self.buf[range.clone()];
        let text = std::str::from_utf8(raw).map_err(|e| {
            self.malformed(
                range.start + e.valid_up_to(),
                "a title is not valid UTF-8".into(),
            )
        })?;
        if let Some(nul) = memchr(0, raw) {
            return Err(self.malformed(range.start + nul, "a title contains a NUL byte".into()));
        }
        unescape(text).map_err(|at| {
            self.malformed(
                range.start + at,
                format!("unknown or invalid entity {}", snippet(&raw[at..], 12)),
            )
        })
    }

    /// Skips whitespace at the current position.
    fn skip_whitespace(&mut self) {
        while self.buf.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    /// Moves past the first `end` after `from` (where `what` opened) and
    /// returns the offset just after it.
    fn skip_past(&mut self, from: usize, end: &[u8], what: &str) -> Result<usize, IndexError> {
        let found = if end == b"-->" {
            self.comment_end.find(&self.buf[from..])
        } else {
            memmem::find(&self.buf[from..], end)
        };
        match found {
            Some(n) => {
                self.pos = from + n + end.len();
                Ok(self.pos)
            }
            None => Err(self.truncated(
                from,
                format!("the {what} at byte {} is never closed", self.base + from),
            )),
        }
    }

    fn truncated(&self, offset: usize, what: String) -> IndexError {
        IndexError::Truncated {
            path: self.path.into(),
            offset: (self.base + offset) as u64,
            len: (self.base + self.buf.len()) as u64,
            what,
        }
    }

    fn malformed(&self, offset: usize, what: String) -> IndexError {
        IndexError::Malformed {
            path: self.path.into(),
            offset: (self.base + offset) as u64,
            what,
        }
    }
}

/// Returns the offset of the `>` that ends the tag containing `from`,
/// skipping `>` inside quoted attribute values.
fn tag_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in buf.get(from..)?.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return Some(from + i),
            None if b == b'<' => return None,
            None => {}
        }
    }
    None
}

/// The raw (still escaped) value of attribute `name` in a start tag.
fn attribute<'t>(tag: &'t [u8], name: &[u8]) -> Option<&'t [u8]> {
    let mut from = 0;
    while let Some(n) = memmem::find(&tag[from..], name) {
        let at = from + n;
        from = at + name.len();
        let before_ok = at > 0 && tag[at - 1].is_ascii_whitespace();
        let mut j = at + name.len();
        while tag.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        if !before_ok || tag.get(j) != Some(&b'=') {
            continue;
        }
        j += 1;
        while tag.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        let quote = *tag.get(j)?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let len = memchr(quote, &tag[j + 1..])?;
        return Some(&tag[j + 1..j + 1 + len]);
    }
    None
}

/// Reads `<namespace key="N" ...>Name</namespace>` entries from `<siteinfo>`.
fn namespaces(siteinfo: &[u8]) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(n) = memmem::find(&siteinfo[from..], b"<namespace ") {
        let start = from + n;
        let Some(gt) = tag_end(siteinfo, start + 1) else {
            break;
        };
        from = gt + 1;
        let tag = &siteinfo[start..gt];
        let Some(key) = attribute(tag, b"key")
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.parse().ok())
        else {
            continue;
        };
        let name = if tag.ends_with(b"/") {
            String::new()
        } else {
            let end = memchr(b'<', &siteinfo[from..]).map_or(siteinfo.len(), |e| from + e);
            let raw = String::from_utf8_lossy(&siteinfo[from..end]).into_owned();
            unescape(&raw).map(Cow::into_owned).unwrap_or(raw)
        };
        out.push((key, name));
    }
    out
}

/// Decodes XML entities: the five predefined ones and numeric character
/// references. On failure returns the byte offset of the bad `&`.
pub(crate) fn unescape(text: &str) -> Result<Cow<'_, str>, usize> {
    let Some(first) = memchr(b'&', text.as_bytes()) else {
        return Ok(Cow::Borrowed(text));
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..first]);
    let mut rest = first;
    loop {
        let amp = rest;
        let semi = memchr(b';', &text.as_bytes()[amp..])
            .filter(|&n| n <= 12)
            .ok_or(amp)?
            + amp;
        let name = &text[amp + 1..semi];
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) =
                    name.strip_prefix("#x").or_else(|| name.strip_prefix("#X"))
                {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.filter(|&c| c != 0)
                    .and_then(char::from_u32)
                    .ok_or(amp)?
            }
        };
        out.push(c);
        let next = semi + 1;
        match memchr(b'&', &text.as_bytes()[next..]) {
            Some(n) => {
                out.push_str(&text[next..next + n]);
                rest = next + n;
            }
            None => {
                out.push_str(&text[next..]);
                return Ok(Cow::Owned(out));
            }
        }
    }
}

/// The decoded content of the last `<text>` element in a `<page>` element.
pub(crate) fn page_text(page: &[u8]) -> Option<Cow<'_, str>> {
    let open = memmem::rfind(page, b"<text")?;
    let gt = tag_end(page, open + 5)?;
    if page[gt - 1] == b'/' {
        return Some(Cow::Borrowed(""));
    }
    let close = gt + 1 + memchr(b'<', &page[gt + 1..])?;
    if !page[close..].starts_with(b"</text>") {
        return None;
    }
    let text = std::str::from_utf8(&page[gt + 1..close]).ok()?;
    unescape(text).ok()
}

/// Up to `max` bytes from `bytes`, lossily decoded, for error messages.
fn snippet(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    let cut = match memchr(b'\n', cut) {
        Some(n) if n > 0 => &cut[..n],
        _ => cut,
    };
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(xml: &str) -> Result<Vec<ScannedPage<'_>>, IndexError> {
        let (mut s, _) = Scanner::new(xml.as_bytes(), Path::new("t.xml"))?;
        let mut pages = Vec::new();
        while let Some(p) = s.next_page()? {
            pages.push(p);
        }
        Ok(pages)
    }

    const HEAD: &str =
        r#"<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11">"#;

    #[test]
    fn unescapes_entities() {
        assert_eq!(unescape("AT&amp;T").unwrap(), "AT&T");
        assert_eq!(
            unescape("&quot;a&quot; &#039;b&#39; &#x41;&lt;&gt;&apos;").unwrap(),
            "\"a\" 'b' A<>'"
        );
        assert!(matches!(unescape("plain").unwrap(), Cow::Borrowed("plain")));
        assert_eq!(unescape("x &nbsp; y"), Err(2));
        assert_eq!(unescape("&#0;"), Err(0));
        assert_eq!(unescape("a & b"), Err(2));
    }

    #[test]
    fn reads_attributes() {
        let tag = br#"<redirect  title = 'A "b"' other="x"/"#;
        assert_eq!(attribute(tag, b"title"), Some(&br#"A "b""#[..]));
        assert_eq!(
            attribute(br#"<x subtitle="no" title="yes">"#, b"title"),
            Some(&b"yes"[..])
        );
        assert_eq!(attribute(b"<x>", b"title"), None);
    }

    #[test]
    fn tag_end_skips_quoted_gt() {
        let buf = br#"<redirect title="a>b" />rest"#;
        assert_eq!(tag_end(buf, 1), Some(23));
    }

    #[test]
    fn scans_a_minimal_page() {
        let xml = format!(
            "{HEAD}<page><title>A</title><ns>0</ns><id>7</id><redirect title=\"B&amp;C\" />\
             <revision><id>9</id><text bytes=\"1\">&lt;page&gt;</text></revision></page></mediawiki>"
        );
        let pages = scan(&xml).unwrap();
        assert_eq!(pages.len(), 1);
        let p = &pages[0];
        assert_eq!((p.title.as_ref(), p.id, p.ns), ("A", 7, 0));
        assert_eq!(p.redirect.as_deref(), Some("B&C"));
        assert_eq!(
            &xml[p.first as usize..=p.last as usize],
            &xml[HEAD.len()..xml.len() - 12]
        );
    }

    #[test]
    fn rejects_missing_end_and_nesting() {
        let err = scan(&format!("{HEAD}<page><title>A</title>")).unwrap_err();
        assert_eq!(err.offset(), Some(HEAD.len() as u64));
        let err = scan(&format!(
            "{HEAD}<page><title>A</title><ns>0</ns><id>1</id>\n<page>"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("not closed before"), "{err}");
        let err = scan(&format!(
            "{HEAD}<page><title>A</title><ns>0</ns><id>1</id></page>"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("without </mediawiki>"), "{err}");
    }

    #[test]
    fn reads_siteinfo_namespaces() {
        let xml = format!(
            "{HEAD}<siteinfo><namespaces><namespace key=\"0\" case=\"first-letter\" />\
             <namespace key=\"1\" case=\"first-letter\">Talk</namespace></namespaces></siteinfo></mediawiki>"
        );
        let (_, site) = Scanner::new(xml.as_bytes(), Path::new("t.xml")).unwrap();
        assert_eq!(site.schema, "0.11");
        assert_eq!(
            site.namespaces,
            vec![(0, String::new()), (1, "Talk".into())]
        );
    }
}
