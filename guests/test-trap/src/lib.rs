//! Test guest that misbehaves on request: `/panic` panics, `/unreachable`
//! executes `unreachable`, `/bad-status` returns status 1000 and
//! `/bad-header` a header name with a space. Any other path answers 200
//! `ok`, so tests can show that the next request after a failure succeeds.

use percore_guest::{Body, Guest, Request, Response, text};

struct Trap;

impl Guest for Trap {
    fn handle(req: Request) -> Response {
        match req.path.rsplit('/').next().unwrap_or("") {
            "panic" => panic!("test-trap was asked to panic"),
            "unreachable" => core::arch::wasm32::unreachable(),
            "bad-status" => Response {
                status: 1000,
                headers: vec![],
                body: Body::Bytes(b"bad".to_vec()),
            },
            "bad-header" => Response {
                status: 200,
                headers: vec![("bad name".into(), "x".into())],
                body: Body::Bytes(b"bad".to_vec()),
            },
            _ => text(200, "text/plain", "ok"),
        }
    }
}

percore_guest::export_handler!(Trap);
