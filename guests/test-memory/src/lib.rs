//! Test guest for memory and host-resource bombs:
//!
//! - `/grow` allocates and touches memory in 1 MiB blocks until an
//!   allocation fails (the host caps linear memory), which aborts the guest;
//! - `/hold?mb=N&ms=M` allocates and touches N MiB, holds them for M ms
//!   (sleeping in the host), then answers `held N MiB`;
//! - `/pollables?n=N` makes N WASI pollables and keeps them all until it
//!   answers `made N pollables` (the host caps what one instance holds);
//! - `/ok` answers at once.

use std::time::Duration;

use percore_guest::{Guest, Request, Response, query_param, text};

struct Memory;

fn param(req: &Request, name: &str, default: u64) -> u64 {
    query_param(&req.query, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Guest for Memory {
    fn handle(req: Request) -> Response {
        if req.path.ends_with("/ok") {
            return text(200, "text/plain", "ok");
        }
        if req.path.ends_with("/hold") {
            let mb = param(&req, "mb", 16);
            let mut block = vec![0u8; (mb as usize) << 20];
            for page in block.chunks_mut(4096) {
                page[0] = 1;
            }
            std::thread::sleep(Duration::from_millis(param(&req, "ms", 500)));
            core::hint::black_box(&block);
            return text(200, "text/plain", &format!("held {mb} MiB"));
        }
        if req.path.ends_with("/pollables") {
            let n = param(&req, "n", 100_000);
            let pollables: Vec<_> = (0..n)
                .map(|_| wasi::clocks::monotonic_clock::subscribe_duration(1_000_000_000))
                .collect();
            core::hint::black_box(&pollables);
            return text(200, "text/plain", &format!("made {n} pollables"));
        }
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut block = vec![0u8; 1 << 20];
            block[4096] = 1;
            blocks.push(core::hint::black_box(block));
        }
    }
}

percore_guest::export_handler!(Memory);
