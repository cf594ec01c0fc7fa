//! The TechEmpower guest: `/json` serialises `{"message":"Hello, World!"}`
//! per request, `/plaintext` returns `Hello, World!`, anything else is 404.
//! It matches on the end of the path so that it can be mounted under any
//! route prefix.

use percore_guest::{Guest, Request, Response, bytes, text};
use serde::Serialize;

/// The TechEmpower JSON message, serialised afresh for every request as the
/// benchmark's rules require.
#[derive(Serialize)]
struct Message {
    message: &'static str,
}

struct Hello;

impl Guest for Hello {
    fn handle(req: Request) -> Response {
        let path = req.path.as_str();
        if path.ends_with("/json") {
            let body = serde_json::to_vec(&Message {
                message: "Hello, World!",
            })
            .expect("serialising a static message cannot fail");
            bytes(200, "application/json", body)
        } else if path.ends_with("/plaintext") {
            text(200, "text/plain", "Hello, World!")
        } else {
            text(
                404,
                "text/plain; charset=utf-8",
                "not found: try /json or /plaintext\n",
            )
        }
    }
}

percore_guest::export_handler!(Hello);
