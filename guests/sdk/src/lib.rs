//! Bindings to percore's `handler` world (`wit/handler.wit`), generated once
//! for all of the repo's guests, plus small helpers for building responses.
//!
//! A guest implements [`Guest`] and exports it with [`export_handler!`]:
//!
//! ```ignore
//! struct Hello;
//! impl percore_guest::Guest for Hello {
//!     fn handle(_req: percore_guest::Request) -> percore_guest::Response {
//!         percore_guest::text(200, "text/plain", "Hello, World!")
//!     }
//! }
//! percore_guest::export_handler!(Hello);
//! ```

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
pub use bindings::percore::host::wiki;
pub use bindings::{Guest, Request, Response, export_handler};

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

/// The value of query parameter `name`, still percent-encoded.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}
