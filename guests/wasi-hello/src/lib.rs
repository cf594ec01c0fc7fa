//! The TechEmpower guest as a standard `wasi:http/proxy` component: `/json`
//! serialises `{"message":"Hello, World!"}` per request, `/plaintext`
//! returns `Hello, World!`, anything else is 404, exactly like `hello`
//! (percore's own handler world). percore serves it on any route (the
//! TechEmpower tests run against both builds, in both isolations), and the
//! load harness runs the same `.wasm` under `wasmtime serve`.

use serde::Serialize;
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The TechEmpower JSON message, serialised afresh for every request as the
/// benchmark's rules require.
#[derive(Serialize)]
struct Message {
    message: &'static str,
}

struct WasiHello;

impl Guest for WasiHello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let path = target.split('?').next().unwrap_or_default();
        let (status, content_type, body) = respond(path);
        // `wasmtime serve` adds `date` but no `server`, which TechEmpower
        // requires and the other servers send.
        let headers = Fields::from_list(&[
            ("server".into(), b"wasmtime-serve".to_vec()),
            ("content-type".into(), content_type.as_bytes().to_vec()),
            ("content-length".into(), body.len().to_string().into_bytes()),
        ])
        .expect("static header names and values are valid");
        let response = OutgoingResponse::new(headers);
        response
            .set_status_code(status)
            .expect("200 and 404 are valid status codes");
        let outgoing = response.body().expect("a new response has a body");
        ResponseOutparam::set(out, Ok(response));
        let stream = outgoing.write().expect("the body stream is taken once");
        // Every body here is far below the 4096 bytes one call may write.
        stream
            .blocking_write_and_flush(&body)
            .expect("the client is still reading");
        drop(stream);
        OutgoingBody::finish(outgoing, None).expect("no trailers, length matches");
    }
}

/// Status, content type and body for `path`; it matches on the end of the
/// path, like `hello`.
fn respond(path: &str) -> (u16, &'static str, Vec<u8>) {
    if path.ends_with("/json") {
        let body = serde_json::to_vec(&Message {
            message: "Hello, World!",
        })
        .expect("serialising a static message cannot fail");
        (200, "application/json", body)
    } else if path.ends_with("/plaintext") {
        (200, "text/plain", b"Hello, World!".to_vec())
    } else {
        (
            404,
            "text/plain; charset=utf-8",
            b"not found: try /json or /plaintext\n".to_vec(),
        )
    }
}

wasi::http::proxy::export!(WasiHello);
