//! A percore handler: percore calls `handle` once per HTTP request routed
//! to it. The `percore-guest` SDK (in `sdk/`) has a router, query, HTML,
//! JSON and wiki helpers; `wit/handler.wit` is everything a request and a
//! response carry.

use percore_guest::{Guest, Request, Response};

struct Handler;

impl Guest for Handler {
    fn handle(req: Request) -> Response {
        let name = env!("CARGO_PKG_NAME");
        let body = format!("Hello from {name}! You asked for {} {}\n", req.method, req.path);
        Response::text(200, body)
    }
}

percore_guest::export_handler!(Handler);
