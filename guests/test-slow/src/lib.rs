//! Test guest that sleeps `?ms=N` milliseconds (default 500) through the
//! WASI monotonic clock, then answers `slept N ms`. The host suspends the
//! call while it sleeps, so the worker keeps serving other connections; the
//! tests use it for in-flight requests during shutdown and for deadlines.

use std::time::Duration;

use percore_guest::{Guest, Request, Response, query_param, text};

struct Slow;

impl Guest for Slow {
    fn handle(req: Request) -> Response {
        let ms = query_param(&req.query, "ms")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(500);
        std::thread::sleep(Duration::from_millis(ms));
        text(200, "text/plain", &format!("slept {ms} ms"))
    }
}

percore_guest::export_handler!(Slow);
