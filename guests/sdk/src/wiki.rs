//! The shared, read-only Wikipedia index (the WIT `wiki` interface, all of
//! whose calls and types are re-exported here), and two helpers on top:
//! [`titles`] and [`page_text`]. A handler that calls any of them can only
//! be deployed on a host started with `--index`.

pub use crate::bindings::percore::host::wiki::*;

/// The most titles one [`prefix`] call returns (the `wiki` interface's cap).
pub const MAX_TITLES: u32 = 10_000;

/// Up to `limit` pages whose titles start with `prefix` (byte for byte), in
/// title order. `limit` is clamped to 1..=[`MAX_TITLES`]. For the next ones,
/// or to ignore case, call [`prefix`] itself.
pub fn titles(prefix: &str, limit: u32) -> Vec<Page> {
    self::prefix(prefix, None, limit.clamp(1, MAX_TITLES), false).unwrap_or_default()
}

/// A page and its whole wikitext, from [`page_text`].
#[derive(Debug, Clone)]
pub struct Article {
    /// The page: title, id, namespace, redirect target, byte range.
    pub page: Page,
    /// The wikitext of its last revision, XML entities decoded.
    pub text: String,
}

/// The page `title` (found as by [`lookup_normalized`]: `rust_(film)`
/// finds `Rust (film)`) and its whole decoded wikitext, in as many [`text`]
/// calls as it takes (one per MiB). `None` when there is no such page, or
/// when its text does not decode (a damaged dump).
pub fn page_text(title: &str) -> Option<Article> {
    let first = text(title, 0).ok()??;
    let mut article = Article {
        text: first.text,
        page: first.page,
    };
    while (article.text.len() as u64) < first.size {
        let next = text(title, article.text.len() as u64).ok()??;
        if next.text.is_empty() {
            break;
        }
        article.text.push_str(&next.text);
    }
    Some(article)
}
