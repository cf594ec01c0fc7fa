//! Test guest: a standard `wasi:http/service` component of wasi:http 0.3
//! (p3), written with wit-bindgen's async bindings, for what percore must
//! do with one. Each path is matched on its last segment
//! (`/any/prefix/echo`):
//!
//! - `/echo`: `METHOD PATH body=BODY`, from what it got (the body read
//!   from the request's stream);
//! - `/stream?kib=N`: a body of N KiB, written in 64 KiB writes by a task
//!   that goes on after `handle` returned the response (more than the
//!   host buffers: it must be sent while the guest writes);
//! - `/count`: how many requests this instance has served, itself
//!   included (an instance that is reused counts up);
//! - `/trap`: panics before answering;
//! - `/loop`: spins forever without a host call (only the deadline's
//!   interrupt stops it);
//! - `/error`: answers with an error code instead of a response;
//! - `/memory?mib=N`: grows its memory by N MiB and touches it, then
//!   answers (a bomb past the route's memory cap);
//! - `/unfinished`: answers, writes 1 KiB of the body, then traps in the
//!   task that writes it (the response is out, its body is not finished);
//! - anything else: `Hello, World!`.

mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

use bindings::exports::wasi::http::handler::Guest;
use bindings::wasi::http::types::{ErrorCode, Fields, Method, Request, Response};
use bindings::{wit_future, wit_stream};

struct TestWasiHttpP3;

bindings::export!(TestWasiHttpP3 with_types_in bindings);

/// Requests this instance has served.
static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn param(query: &str, name: &str) -> Option<u64> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.parse().ok()).flatten()
    })
}

/// The method as sent.
fn method_name(method: Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other,
    }
}

/// A response of `status` whose body, `body`, a task writes after
/// `handle` returned.
fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response {
    let headers = Fields::new();
    headers
        .set("content-type", &[content_type.as_bytes().to_vec()])
        .expect("a valid header");
    let (mut writer, reader) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(reader), trailers_rx);
    response.set_status_code(status).expect("a valid status");
    wit_bindgen::spawn_local(async move {
        let rest = writer.write_all(body).await;
        assert!(rest.is_empty(), "the host stopped reading the body");
        drop(writer);
        let _ = trailers_tx.write(Ok(None)).await;
    });
    response
}

impl Guest for TestWasiHttpP3 {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let served = SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let method = method_name(request.get_method());
        let target = request.get_path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let (path, query) = (path.to_owned(), query.to_owned());
        match path.rsplit('/').next().unwrap_or_default() {
            "echo" => {
                let (_done_tx, done_rx) = wit_future::new(|| Ok(()));
                let (body, _trailers) = Request::consume_body(request, done_rx);
                let body = body.collect().await;
                let text = format!("{method} {path} body={}", String::from_utf8_lossy(&body));
                Ok(respond(200, "text/plain", text.into_bytes()))
            }
            "stream" => {
                let kib = param(&query, "kib").unwrap_or(1);
                let headers = Fields::new();
                let (mut writer, reader) = wit_stream::new();
                let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
                let (response, _sent) = Response::new(headers, Some(reader), trailers_rx);
                wit_bindgen::spawn_local(async move {
                    let mut left = kib << 10;
                    while left > 0 {
                        let n = left.min(64 << 10);
                        let rest = writer.write_all(vec![b'x'; n as usize]).await;
                        if !rest.is_empty() {
                            return;
                        }
                        left -= n;
                    }
                    drop(writer);
                    let _ = trailers_tx.write(Ok(None)).await;
                });
                Ok(response)
            }
            "count" => Ok(respond(200, "text/plain", served.to_string().into_bytes())),
            "trap" => panic!("the test guest traps on purpose"),
            "loop" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "error" => Err(ErrorCode::InternalError(Some("asked to fail".into()))),
            "memory" => {
                let mib = param(&query, "mib").unwrap_or(256) as usize;
                let mut hog: Vec<u8> = Vec::new();
                for _ in 0..mib {
                    hog.extend(std::iter::repeat_n(1u8, 1 << 20));
                }
                let text = format!("held {} MiB", hog.len() >> 20);
                Ok(respond(200, "text/plain", text.into_bytes()))
            }
            "unfinished" => {
                let (mut writer, reader) = wit_stream::new();
                let (_trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
                let (response, _sent) = Response::new(Fields::new(), Some(reader), trailers_rx);
                wit_bindgen::spawn_local(async move {
                    let _ = writer.write_all(vec![b'x'; 1 << 10]).await;
                    panic!("the test guest traps before its body is finished");
                });
                Ok(response)
            }
            _ => Ok(respond(200, "text/plain", b"Hello, World!".to_vec())),
        }
    }
}
