//! Test guest for deploys: every response names the version that served
//! it, in its body and in an `x-version` header. The version is the marker
//! below; tests make distinct versions of the component by replacing its
//! 16 `A`s in the `.wasm` bytes with another 16 bytes (same length, so the
//! component stays valid). `?ms=N` sleeps N milliseconds first, so that a
//! request can still be running when a new version is deployed.

use percore_guest::{Guest, Request, Response, query_param, text};

/// The version marker. Read through `black_box` so that the compiler keeps
/// it as one string in the data section.
static VERSION: &str = "version:AAAAAAAAAAAAAAAA";

struct Version;

impl Guest for Version {
    fn handle(req: Request) -> Response {
        if let Some(ms) = query_param(&req.query, "ms").and_then(|v| v.parse::<u64>().ok()) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let version = std::hint::black_box(VERSION);
        let mut response = text(200, "text/plain", version);
        response
            .headers
            .push(("x-version".to_string(), version.to_string()));
        response
    }
}

percore_guest::export_handler!(Version);
