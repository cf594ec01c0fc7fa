//! Test guest that allocates and touches memory in 1 MiB blocks until an
//! allocation fails (the host caps linear memory), which aborts the guest.
//! `/ok` answers at once.

use percore_guest::{Guest, Request, Response, text};

struct Memory;

impl Guest for Memory {
    fn handle(req: Request) -> Response {
        if req.path.ends_with("/ok") {
            return text(200, "text/plain", "ok");
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
