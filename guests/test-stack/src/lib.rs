//! Test guest that recurses without bound until the wasm stack overflows,
//! which traps. `/ok` answers at once.

use percore_guest::{Guest, Request, Response, text};

struct Stack;

#[inline(never)]
fn recurse(depth: u64, pad: &mut [u8; 256]) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    pad[(depth % 256) as usize] = depth as u8;
    let mut next = [0u8; 256];
    core::hint::black_box(&mut next);
    recurse(depth + 1, &mut next) + u64::from(pad[0])
}

impl Guest for Stack {
    fn handle(req: Request) -> Response {
        if req.path.ends_with("/ok") {
            return text(200, "text/plain", "ok");
        }
        let n = recurse(0, &mut [0u8; 256]);
        text(200, "text/plain", &n.to_string())
    }
}

percore_guest::export_handler!(Stack);
