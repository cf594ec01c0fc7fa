//! Test guest that returns a body of `?mb=N` MiB (default 32), past the
//! host's response cap (16 MiB by default). `/ok` answers at once.

use percore_guest::{Guest, Request, Response, bytes, query_param, text};

struct Huge;

impl Guest for Huge {
    fn handle(req: Request) -> Response {
        if req.path.ends_with("/ok") {
            return text(200, "text/plain", "ok");
        }
        let mb = query_param(&req.query, "mb")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(32);
        bytes(200, "application/octet-stream", vec![b'x'; mb << 20])
    }
}

percore_guest::export_handler!(Huge);
