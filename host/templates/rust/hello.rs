//! A percore handler: percore calls `handle` once per HTTP request routed
//! to it. The `percore-guest` SDK (in `sdk/`) has a router, query, HTML,
//! JSON and wiki helpers; `wit/handler.wit` is everything a request and a
//! response carry.

use percore_guest::{Guest, Request, Response};

struct Handler;

impl Guest for Handler {
    fn handle(req: Request) -> Response {
        let (name, method, path) = (env!("CARGO_PKG_NAME"), &req.method, &req.path);
        Response::text(
            200,
            format!("Hello from {name}! You asked for {method} {path}\n"),
        )
    }
}

percore_guest::export_handler!(Handler);
