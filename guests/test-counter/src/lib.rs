//! Test guest with a global counter: every request increments it and the
//! response body is its new value. In `request` isolation every request sees
//! `1`; in `core` isolation the value counts the requests one instance served.

use std::sync::atomic::{AtomicU64, Ordering};

use percore_guest::{Guest, Request, Response, text};

static COUNTER: AtomicU64 = AtomicU64::new(0);

struct Counter;

impl Guest for Counter {
    fn handle(_req: Request) -> Response {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        text(200, "text/plain", &n.to_string())
    }
}

percore_guest::export_handler!(Counter);
