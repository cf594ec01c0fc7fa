//! Test guest that never returns: an infinite loop with no calls. Only the
//! host's deadline (epoch interruption) can stop it; `/ok` answers at once so
//! tests can show the instance and the worker recover.

use percore_guest::{Guest, Request, Response, text};

struct Loop;

impl Guest for Loop {
    fn handle(req: Request) -> Response {
        if req.path.ends_with("/ok") {
            return text(200, "text/plain", "ok");
        }
        let mut x: u64 = 1;
        loop {
            // Keep the loop from being optimised away.
            x = core::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

percore_guest::export_handler!(Loop);
