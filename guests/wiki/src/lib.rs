//! The Wikipedia demo guest. Every route reads the host's shared, read-only
//! title index through the `wiki` interface; page bodies and the dump are
//! returned as `dump` ranges that the host streams from its memory map, so
//! they never pass through this guest's memory.
//!
//! - `GET /`: the search page (`index.html`; its script is `/search.js`).
//! - `GET /read/<title>`: the article rendered as HTML (see [`reader`]).
//! - `GET /random`: a redirect to a random article.
//! - `GET /search.js`: the search box's script.
//! - `GET /offsets/<prefix>?limit=&after=&ci=1`: `[[title, first, last], ...]`.
//! - `GET /wiki/<title>`: the page's `<page>` element, or 404 with suggestions.
//! - `GET|HEAD /xml`: the dump, with RFC 9110 byte ranges (single ranges;
//!   multi-range requests get the whole body with 200).

mod reader;

use percore_guest::wiki::{self, Page};
use percore_guest::{Body, DumpRange, Guest, Request, Response};
use percore_httpkit::{
    RangeOutcome, http_date, json_string, parse_range, percent_decode, query_param,
};

/// Default and largest number of titles `/offsets` returns.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 10_000;
/// Suggestions in a `/wiki/` 404.
const SUGGESTIONS: u32 = 10;

const INDEX_HTML: &str = include_str!("index.html");

struct Wiki;

impl Guest for Wiki {
    fn handle(req: Request) -> Response {
        let get = req.method == "GET";
        let head = req.method == "HEAD";
        let path = req.path.as_str();
        if !(get || head) {
            return json_error(405, "method not allowed: use GET or HEAD");
        }
        if path == "/" || path == "/index.html" {
            return reader::html(200, INDEX_HTML.into());
        }
        if path == "/search.js" {
            return response(
                200,
                "text/javascript; charset=utf-8",
                Body::Bytes(reader::SEARCH_JS.into()),
            );
        }
        if let Some(title) = path.strip_prefix("/read/") {
            return reader::read(title, &req.query);
        }
        if path == "/random" {
            return reader::random();
        }
        if path == "/xml" {
            return xml(&req);
        }
        if let Some(prefix) = path.strip_prefix("/offsets/") {
            return offsets(prefix, &req.query);
        }
        if path == "/offsets" {
            return offsets("", &req.query);
        }
        if let Some(title) = path.strip_prefix("/wiki/") {
            return page(title);
        }
        json_error(
            404,
            "not found: try /, /read/<title>, /random, /offsets/<prefix>, /wiki/<title> or /xml",
        )
    }
}

fn response(status: u16, content_type: &str, body: Body) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body,
    }
}

fn json(status: u16, body: String) -> Response {
    response(status, "application/json", Body::Bytes(body.into_bytes()))
}

fn json_error(status: u16, message: &str) -> Response {
    let mut body = String::from("{\"error\":");
    json_string(&mut body, message);
    body.push('}');
    json(status, body)
}

/// `GET /offsets/<prefix>`.
fn offsets(prefix: &str, query: &str) -> Response {
    let prefix = percent_decode(prefix, false);
    let limit = match query_param(query, "limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return json_error(400, "limit must be a number from 1 to 10000"),
        },
    };
    let after = query_param(query, "after").map(|a| percent_decode(a, true));
    let ci = matches!(query_param(query, "ci"), Some("1" | "true" | "yes"));
    match wiki::prefix(&prefix, after.as_deref(), limit, ci) {
        Ok(pages) => json(200, offsets_json(&pages)),
        Err(wiki::Error::InvalidArgument(why)) => json_error(400, &why),
    }
}

fn offsets_json(pages: &[Page]) -> String {
    let mut out = String::with_capacity(pages.len() * 48 + 2);
    out.push('[');
    for (i, page) in pages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        json_string(&mut out, &page.title);
        out.push_str(&format!(",{},{}]", page.first, page.last));
    }
    out.push(']');
    out
}

/// `GET /wiki/<title>`.
fn page(title: &str) -> Response {
    let title = percent_decode(title, false);
    if let Some(page) = wiki::lookup_normalized(&title) {
        let mut response = response(
            200,
            "application/xml; charset=utf-8",
            Body::Dump(DumpRange {
                first: page.first,
                last: page.last,
            }),
        );
        response
            .headers
            .push(("x-page-id".into(), page.id.to_string()));
        if let Some(target) = page.redirect {
            response.headers.push(("x-redirect-target".into(), target));
        }
        return response;
    }
    let spaced = title.replace('_', " ");
    let suggestions = wiki::prefix(spaced.trim(), None, SUGGESTIONS, true).unwrap_or_default();
    let mut body = String::from("{\"error\":\"no page with that title\",\"title\":");
    json_string(&mut body, &title);
    body.push_str(",\"suggestions\":[");
    for (i, page) in suggestions.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        json_string(&mut body, &page.title);
    }
    body.push_str("]}");
    json(404, body)
}

/// `GET /xml` and `HEAD /xml`.
fn xml(req: &Request) -> Response {
    let info = wiki::info();
    let range = req.headers.get("range");
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/xml; charset=utf-8".to_string(),
        ),
        ("accept-ranges".to_string(), "bytes".to_string()),
        ("last-modified".to_string(), http_date(info.last_modified)),
    ];
    let whole = || {
        if info.size == 0 {
            Body::Bytes(Vec::new())
        } else {
            Body::Dump(DumpRange {
                first: 0,
                last: info.size - 1,
            })
        }
    };
    let (status, body) = match parse_range(range.as_deref(), info.size) {
        RangeOutcome::Full => (200, whole()),
        RangeOutcome::Partial { first, last } => {
            headers.push((
                "content-range".into(),
                format!("bytes {first}-{last}/{}", info.size),
            ));
            (206, Body::Dump(DumpRange { first, last }))
        }
        RangeOutcome::Unsatisfiable => {
            headers.push(("content-range".into(), format!("bytes */{}", info.size)));
            (416, Body::Bytes(Vec::new()))
        }
    };
    Response {
        status,
        headers,
        body,
    }
}

percore_guest::export_handler!(Wiki);
