//! The reader routes: `/read/<title>` renders a page's wikitext as an
//! article (following one redirect), `/random` picks an article, and
//! `/search.js` is the search box shared by every page. Rendering itself is
//! `percore-wikitext`'s; this module reads the page from the dump and asks
//! the index whether linked titles exist.

use percore_guest::wiki::{self, Page};
use percore_guest::{Body, DumpRange, Response};
use percore_httpkit::{percent_decode, query_param};
use percore_wikitext::html::{escape, read_path};
use percore_wikitext::{article_page, message_page, render, xml};

/// The search box's script, loaded by every HTML page.
pub const SEARCH_JS: &str = include_str!("search.js");

/// The policy sent with every HTML page: scripts only from this origin
/// (`/search.js`), so markup that slipped through escaping could not run.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Most bytes one `wiki.read` returns.
const READ_CHUNK: u64 = 1 << 20;

/// Largest page read (bigger ones get a short page instead of a trap).
const MAX_PAGE_BYTES: u64 = 8 << 20;

/// Suggestions on the page for a missing title.
const SUGGESTIONS: u32 = 10;

/// An HTML response with the page's security headers.
pub fn html(status: u16, body: String) -> Response {
    Response {
        status,
        headers: vec![
            ("content-type".into(), "text/html; charset=utf-8".into()),
            ("content-security-policy".into(), CSP.into()),
            ("x-content-type-options".into(), "nosniff".into()),
        ],
        body: Body::Bytes(body.into_bytes()),
    }
}

fn see_other(location: &str) -> Response {
    Response {
        status: 302,
        headers: vec![
            ("location".into(), location.into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body: Body::Bytes(Vec::new()),
    }
}

/// The `<page>` element of `page`, read in chunks of the largest size
/// `wiki.read` allows.
fn page_bytes(page: &Page) -> Option<Vec<u8>> {
    if page.last < page.first || page.last - page.first >= MAX_PAGE_BYTES {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(page.last - page.first + 1).ok()?);
    let mut first = page.first;
    while first <= page.last {
        let last = page.last.min(first + READ_CHUNK - 1);
        bytes.extend(wiki::read(DumpRange { first, last }).ok()?);
        first = last + 1;
    }
    Some(bytes)
}

/// `GET /read/<title>` (`title` still percent-encoded; the query may hold
/// `redirect=no`, or `title=` when the search form was sent without script).
pub fn read(raw_title: &str, query: &str) -> Response {
    let title = percent_decode(raw_title, false);
    if title.trim().is_empty() {
        return match query_param(query, "title").map(|t| percent_decode(t, true)) {
            Some(t) if !t.trim().is_empty() => see_other(&read_path(&t)),
            _ => see_other("/"),
        };
    }
    let Some(page) = wiki::lookup_normalized(&title) else {
        return missing(&title);
    };
    let follow = query_param(query, "redirect") != Some("no");
    let (article, redirected_from) = match page.redirect.clone() {
        Some(target) if follow => match follow_redirect(&page, &target) {
            Ok(article) => (article, Some(page.title)),
            Err(response) => return response,
        },
        Some(target) => {
            let message = format!(
                "This page is a redirect to <a href=\"{}\">{}</a>.",
                read_path(&target),
                escape(&target)
            );
            return html(200, message_page(&page.title, &message));
        }
        None => (page, None),
    };
    let Some(text) = page_bytes(&article).and_then(|bytes| xml::page_text(&bytes)) else {
        let message = "This page has no text in the dump, or is too large to read.";
        return html(200, message_page(&article.title, message));
    };
    let rendered = render(&text, &mut |t: &str| wiki::lookup_normalized(t).is_some());
    drop(text);
    let body = article_page(&article.title, redirected_from.as_deref(), &rendered.html);
    html(200, body)
}

/// The page a redirect leads to, or the page that says why it stops there:
/// its target is missing, is itself a redirect (a chain), or leads back.
fn follow_redirect(page: &Page, target: &str) -> Result<Page, Response> {
    let target_title = target.split('#').next().unwrap_or(target);
    let link = |title: &str| {
        format!(
            "<a href=\"{}?redirect=no\">{}</a>",
            read_path(title),
            escape(title)
        )
    };
    let Some(next) = wiki::lookup_normalized(target_title) else {
        let message = format!(
            "{} redirects to {}, which is not in this dump.",
            link(&page.title),
            escape(target)
        );
        return Err(html(404, message_page(&page.title, &message)));
    };
    match next.redirect.as_deref() {
        None => Ok(next),
        Some(then) => {
            let looped = next.title == page.title
                || wiki::lookup_normalized(then.split('#').next().unwrap_or(then))
                    .is_some_and(|p| p.title == page.title);
            let message = if looped {
                format!(
                    "Redirect loop: {} redirects to {}, which redirects back. Nothing to show.",
                    link(&page.title),
                    link(&next.title)
                )
            } else {
                format!(
                    "Redirect chain: {} redirects to {}, which redirects to {}. \
                     Like Wikipedia, the reader follows one redirect only.",
                    link(&page.title),
                    link(&next.title),
                    escape(then)
                )
            };
            let heading = if looped {
                "Redirect loop"
            } else {
                "Redirect chain"
            };
            Err(html(200, message_page(heading, &message)))
        }
    }
}

/// The page for a title that is not in the dump: titles that start alike.
fn missing(title: &str) -> Response {
    let spaced = title.replace('_', " ");
    let suggestions = wiki::prefix(spaced.trim(), None, SUGGESTIONS, true).unwrap_or_default();
    let mut message = format!(
        "There is no page called \u{201c}{}\u{201d} in this dump.",
        escape(title)
    );
    if !suggestions.is_empty() {
        message.push_str(" Titles that start alike:</p><ul class=\"suggestions\">");
        for page in &suggestions {
            message.push_str(&format!(
                "<li><a href=\"{}\">{}</a></li>",
                read_path(&page.title),
                escape(&page.title)
            ));
        }
        message.push_str("</ul><p class=\"message\">");
    }
    html(404, message_page("Page not found", &message))
}

/// How many random offsets `/random` tries.
const RANDOM_TRIES: usize = 8;

/// Bytes of the dump read at a time after a random offset.
const RANDOM_WINDOW: u64 = 64 << 10;

/// How far past a random offset `/random` reads for an article (a long
/// page can lie between the offset and the next `<title>`).
const RANDOM_SCAN: u64 = 16 << 20;

/// `GET /random`: a redirect to the first article (main namespace, not a
/// redirect) whose `<title>` follows a random offset of the dump, wrapping
/// at its end. (Pages after long pages are likelier; picking by offset
/// needs no list of titles.)
pub fn random() -> Response {
    let size = wiki::info().size;
    for _ in 0..RANDOM_TRIES {
        if size == 0 {
            break;
        }
        let mut first = wasi::random::random::get_random_u64() % size;
        let mut scanned = 0;
        while scanned < RANDOM_SCAN.min(size) {
            // Windows overlap by a title's length, so none is cut in two.
            let last = (first + RANDOM_WINDOW).min(size - 1);
            let Ok(bytes) = wiki::read(DumpRange { first, last }) else {
                break;
            };
            if let Some(title) = first_article(&bytes) {
                return see_other(&read_path(&title));
            }
            scanned += last - first + 1;
            first = if last + 1 >= size {
                0
            } else {
                last + 1 - 1024.min(last + 1 - first)
            };
        }
    }
    html(
        404,
        message_page("No article found", "This dump has no article to pick."),
    )
}

/// The first title in `bytes` (a window of the dump) that is an article.
fn first_article(bytes: &[u8]) -> Option<String> {
    let window = String::from_utf8_lossy(bytes);
    for part in window.split("<title>").skip(1) {
        let (title, _) = part.split_once("</title>")?;
        let title = xml::decode_entities(title);
        if let Some(page) = wiki::lookup(&title)
            && page.namespace == 0
            && page.redirect.is_none()
        {
            return Some(page.title);
        }
    }
    None
}
