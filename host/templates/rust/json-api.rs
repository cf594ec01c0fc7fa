//! A JSON API with the SDK's router: `GET /status`, `GET /greet/{name}`
//! (`?excited=true`), `POST /echo`; any other path is 404, any other method
//! on these paths 405. Patterns match below the route prefix the handler is
//! deployed at.

use percore_guest::{Guest, Params, Request, Response, Router, json};

struct Api;

impl Guest for Api {
    fn handle(req: Request) -> Response {
        Router::new()
            .get("/status", status)
            .get("/greet/{name}", greet)
            .post("/echo", echo)
            .handle(&req)
    }
}

/// `{"name":"...","version":"0.1.0"}`: which build answers.
fn status(_req: &Request, _params: &Params) -> Response {
    let (name, version) = (env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
    Response::json(200, &json!({"name": name, "version": version}))
}

/// `/greet/Ada` gives `{"greeting":"Hello, Ada."}`; with `?excited=true`,
/// `"Hello, Ada!"`.
fn greet(req: &Request, params: &Params) -> Response {
    let mark = if req.query_or("excited", false) {
        '!'
    } else {
        '.'
    };
    let greeting = format!("Hello, {}{mark}", params.get("name"));
    Response::json(200, &json!({"greeting": greeting}))
}

/// The request body back, with its length: `{"bytes":5,"text":"hello"}`;
/// 400 when it is not UTF-8.
fn echo(req: &Request, _params: &Params) -> Response {
    match std::str::from_utf8(&req.body) {
        Ok(text) => Response::json(200, &json!({"bytes": req.body.len(), "text": text})),
        Err(_) => Response::json(400, &json!({"error": "the body is not UTF-8 text"})),
    }
}

percore_guest::export_handler!(Api);
