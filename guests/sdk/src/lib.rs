//! `percore-guest`: the SDK for percore handlers. It holds the bindings to
//! percore's `handler` world (`wit/handler.wit`), generated once, and what a
//! handler needs around them, kept small because it is compiled into every
//! handler (its only dependencies are `wit-bindgen` and `percore-httpkit`):
//!
//! - [`Router`]: routes by method and path pattern (`/page/{title}`,
//!   `/files/{path...}`), with 404 and 405 answers, matched below the
//!   route prefix the handler is mounted at;
//! - [`Request`] helpers: decoded query values ([`Request::query_value`],
//!   [`Request::query_or`]) and header fields ([`Request::header`]);
//! - [`Response`] constructors: [`Response::text`], [`Response::html`],
//!   [`Response::json`], [`Response::redirect`], [`Response::not_found`];
//! - [`html`]: escaping and a minimal page; [`url`]: percent-decoding and
//!   -encoding; [`json`]: JSON output without serde ([`json!`]);
//! - [`wiki`]: the shared Wikipedia index, with [`wiki::titles`] and
//!   [`wiki::page_text`] on top of the raw calls.
//!
//! A handler implements [`Guest`] and exports it with [`export_handler!`]:
//!
//! ```ignore
//! use percore_guest::{Guest, Params, Request, Response, Router};
//!
//! struct Hello;
//!
//! impl Guest for Hello {
//!     fn handle(req: Request) -> Response {
//!         Router::new().get("/hello/{name}", hello).handle(&req)
//!     }
//! }
//!
//! fn hello(_req: &Request, params: &Params) -> Response {
//!     Response::text(200, format!("Hello, {}!\n", params.get("name")))
//! }
//!
//! percore_guest::export_handler!(Hello);
//! ```
//!
//! This crate is also what `percore new` writes into a new handler crate
//! (its `sdk/` directory), so that the crate builds offline.

#![deny(missing_docs)]

pub mod html;
pub mod json;
mod router;
pub mod url;
pub mod wiki;

/// The generated bindings. They live in a module of their own because the
/// exported macro cannot be generated at the crate root.
#[allow(missing_docs, clippy::too_many_arguments, reason = "generated code")]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "percore:host/handler",
        pub_export_macro: true,
        export_macro_name: "export_handler",
        default_bindings_module: "percore_guest::bindings",
    });
}

pub use bindings::percore::host::types::{Body, DumpRange, Fields};
pub use bindings::{Guest, Request, Response, export_handler};
pub use percore_httpkit::{RangeOutcome, parse_range};
pub use router::{PATH_INFO_HEADER, Params, ROUTE_HEADER, Router};

impl Request {
    /// The first value of the header field `name` (any case), if any.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name)
    }

    /// The value of query parameter `name`, percent-decoded (`+` is a
    /// space); `Some("")` for `?name` or `?name=`.
    pub fn query_value(&self, name: &str) -> Option<String> {
        query_param(&self.query, name).map(url::decode_query)
    }

    /// Query parameter `name` parsed as a `T` (a number, a `bool`...), or
    /// `default` when it is absent or does not parse:
    /// `req.query_or("limit", 20)`.
    pub fn query_or<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        self.query_value(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    }
}

impl Response {
    /// A response with `status`, a `content-type` header and `body`.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        bytes(status, content_type, body.into())
    }

    /// A plain-text response (`text/plain; charset=utf-8`).
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body.into())
    }

    /// An HTML response (`text/html; charset=utf-8`); see [`html::page`].
    pub fn html(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/html; charset=utf-8", body.into())
    }

    /// A JSON response (`application/json`) of `value`: anything
    /// [`json::ToJson`], such as a [`json!`] object, a string, a number, a
    /// `Vec` or a [`wiki::Page`].
    pub fn json(status: u16, value: &impl json::ToJson) -> Response {
        Response::new(status, "application/json", json::to_string(value))
    }

    /// A `302 Found` to `location` (a path such as `/page/Rust`, or a URL).
    pub fn redirect(location: &str) -> Response {
        Response::text(302, format!("see {location}\n")).with_header("location", location)
    }

    /// `404 Not Found` with a short plain-text body.
    pub fn not_found() -> Response {
        Response::text(404, "not found\n")
    }

    /// The response with one more header field.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A response with the given status, one `content-type` header and `body`.
pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Response {
    Response {
        status,
        headers: vec![("content-type".to_string(), content_type.to_string())],
        body: Body::Bytes(body),
    }
}

/// A response with the given status, one `content-type` header and a text body.
pub fn text(status: u16, content_type: &str, body: &str) -> Response {
    bytes(status, content_type, body.as_bytes().to_vec())
}

/// The value of query parameter `name`, still percent-encoded
/// ([`Request::query_value`] decodes it).
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    percore_httpkit::query_param(query, name)
}
