//! Test guest for responses the host must refuse or bound:
//!
//! - `/?mb=N` returns a body of N MiB (default 32), past the host's
//!   response cap (16 MiB by default);
//! - `/?headers=N&value_bytes=B` returns N header fields of B bytes each;
//! - `/?status=S` answers with status S (a 1xx, or one past 599);
//! - `/ok` answers at once.

use percore_guest::{Guest, Request, Response, bytes, query_param, text};

struct Huge;

fn param(req: &Request, name: &str) -> Option<usize> {
    query_param(&req.query, name).and_then(|v| v.parse().ok())
}

impl Guest for Huge {
    fn handle(req: Request) -> Response {
        if req.path.ends_with("/ok") {
            return text(200, "text/plain", "ok");
        }
        if let Some(status) = param(&req, "status") {
            return text(status as u16, "text/plain", "a strange status");
        }
        if let Some(count) = param(&req, "headers") {
            let value = "v".repeat(param(&req, "value_bytes").unwrap_or(8));
            let mut response = text(200, "text/plain", "many headers");
            response
                .headers
                .extend((0..count).map(|i| (format!("x-h{i}"), value.clone())));
            return response;
        }
        let mb = param(&req, "mb").unwrap_or(32);
        bytes(200, "application/octet-stream", vec![b'x'; mb << 20])
    }
}

percore_guest::export_handler!(Huge);
