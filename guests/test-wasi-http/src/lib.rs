//! Test guest: a standard `wasi:http/proxy` component (wasi:http 0.2, the
//! `wasi` crate), for what percore must do with one:
//!
//! Each path is matched on its last segment (`/any/prefix/echo`):
//!
//! - `/echo`: `METHOD PATH?QUERY x-test=VALUE body=BODY`, from what it got;
//! - `/stream?kib=N`: a body of N KiB written in 64 KiB writes after the
//!   response is set (more than the host buffers: it must be sent while
//!   the guest writes); with `&length=1` it sets that `content-length`;
//! - `/outgoing?url=http://HOST:PORT/PATH`: sends a GET to the URL (or to
//!   `127.0.0.1:9` without one) and answers `sent: STATUS BODY` or
//!   `refused: ERROR`;
//! - `/stream-echo`: sets its response first, then copies the request body
//!   to the response body as it arrives, chunk by chunk;
//! - `/ignore`: answers `ignored` without reading the request body;
//! - `/keep-body`: keeps the request (and its unread body) in the
//!   instance after it answers;
//! - `/trailers`: answers `abc` with a `trailer: x-checksum` field and the
//!   trailer `x-checksum: 42`;
//! - `/request-trailers`: reads the body, then its trailers, and answers
//!   `body=BODY trailers=NAME:VALUE,...`;
//! - `/sleep?ms=N`: sleeps N ms before answering;
//! - `/trap`: panics before answering;
//! - `/no-answer`: returns without setting a response;
//! - `/count`: how many requests this instance has served, itself included
//!   (an instance that is reused counts up);
//! - `/loop`: spins forever without a host call (only the deadline's
//!   interrupt stops it);
//! - `/memory?mib=N`: grows its memory by N MiB and touches it, then
//!   answers (a bomb past the route's memory cap);
//! - `/unfinished`: sets a response with a body, writes part of it and
//!   returns without finishing it;
//! - `/print`: `test-wasi-http stdout PATH` on stdout, then answers;
//! - `/mount`: every value of its request's `x-percore-route` and
//!   `x-percore-path-info`, as `route=A,B path-info=C`;
//! - anything else: 404.

use std::cell::RefCell;

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct TestWasiHttp;

/// Requests this instance has served.
static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    /// What `/keep-body` keeps.
    static KEPT: RefCell<Vec<IncomingRequest>> = const { RefCell::new(Vec::new()) };
}

/// The value of `name` in `query`, as written.
fn text_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then_some(v)
    })
}

fn param(query: &str, name: &str) -> Option<u64> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.parse().ok()).flatten()
    })
}

/// Sets a response of `status` with `body`, written in one go.
fn answer(out: ResponseOutparam, status: u16, body: &[u8]) {
    let response = OutgoingResponse::new(Fields::new());
    response.set_status_code(status).expect("a valid status");
    let outgoing = response.body().expect("a new response has a body");
    ResponseOutparam::set(out, Ok(response));
    write_all(&outgoing, body);
    OutgoingBody::finish(outgoing, None).expect("no trailers");
}

/// Writes `bytes` to `body`, in pieces the stream accepts.
fn write_all(body: &OutgoingBody, bytes: &[u8]) {
    let stream = body.write().expect("the body stream is taken once");
    for chunk in bytes.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .expect("the client is still reading");
    }
}

/// The incoming request's body, read whole.
fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let body = request.consume().expect("the body is consumed once");
    read_all(&body)
}

/// What is left of `body`'s stream, read whole (up to an error).
fn read_all(body: &IncomingBody) -> Vec<u8> {
    let stream = body.stream().expect("the body's stream is taken once");
    let mut all = Vec::new();
    while let Ok(chunk) = stream.blocking_read(64 << 10) {
        all.extend_from_slice(&chunk);
    }
    all
}

/// Sends a GET to `url` (`http://HOST:PORT/PATH`) and says what came of
/// it.
fn fetch(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => (Scheme::Https, rest),
        Some((_, rest)) => (Scheme::Http, rest),
        None => (Scheme::Http, url),
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let outgoing = OutgoingRequest::new(Fields::new());
    let _ = outgoing.set_scheme(Some(&scheme));
    let _ = outgoing.set_authority(Some(authority));
    let _ = outgoing.set_path_with_query(Some(path));
    // Refused at once, or through the response future.
    let future = match wasi::http::outgoing_handler::handle(outgoing, None) {
        Ok(future) => future,
        Err(code) => return format!("refused: {code:?}"),
    };
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => {
            let status = response.status();
            let body = response.consume().expect("the body is consumed once");
            let text = read_all(&body);
            format!("sent: {status} {}", String::from_utf8_lossy(&text))
        }
        Some(Ok(Err(code))) => format!("refused: {code:?}"),
        other => format!("unexpected: {other:?}"),
    }
}

impl Guest for TestWasiHttp {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let served = SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        // The last segment: the guest serves wherever it is mounted.
        match path.rsplit('/').next().unwrap_or_default() {
            "echo" => {
                let test = request
                    .headers()
                    .get("x-test")
                    .first()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                let method = match request.method() {
                    Method::Get => "GET".to_string(),
                    Method::Post => "POST".to_string(),
                    Method::Put => "PUT".to_string(),
                    Method::Head => "HEAD".to_string(),
                    Method::Delete => "DELETE".to_string(),
                    Method::Other(other) => other,
                    other => format!("{other:?}"),
                };
                let body = read_body(&request);
                let text = format!(
                    "{method} {target} x-test={test} body={}",
                    String::from_utf8_lossy(&body)
                );
                answer(out, 200, text.as_bytes());
            }
            "stream" => {
                let kib = param(query, "kib").unwrap_or(1024) as usize;
                let headers = Fields::new();
                if param(query, "length").is_some() {
                    let length = (kib << 10).to_string().into_bytes();
                    let _ = headers.set("content-length", &[length]);
                }
                let response = OutgoingResponse::new(headers);
                let outgoing = response.body().expect("a new response has a body");
                ResponseOutparam::set(out, Ok(response));
                let piece = vec![b'x'; 64 << 10];
                let stream = outgoing.write().expect("the body stream is taken once");
                let mut left = kib << 10;
                while left > 0 {
                    let n = left.min(piece.len());
                    for chunk in piece[..n].chunks(4096) {
                        if stream.blocking_write_and_flush(chunk).is_err() {
                            return;
                        }
                    }
                    left -= n;
                }
                drop(stream);
                let _ = OutgoingBody::finish(outgoing, None);
            }
            "outgoing" => {
                let url = text_param(query, "url").unwrap_or("http://127.0.0.1:9/");
                answer(out, 200, fetch(url).as_bytes());
            }
            "stream-echo" => {
                let response = OutgoingResponse::new(Fields::new());
                let outgoing = response.body().expect("a new response has a body");
                ResponseOutparam::set(out, Ok(response));
                let writer = outgoing.write().expect("the body stream is taken once");
                let body = request.consume().expect("the body is consumed once");
                let reader = body.stream().expect("the body's stream is taken once");
                while let Ok(chunk) = reader.blocking_read(64 << 10) {
                    for piece in chunk.chunks(4096) {
                        if writer.blocking_write_and_flush(piece).is_err() {
                            return;
                        }
                    }
                }
                drop(writer);
                let _ = OutgoingBody::finish(outgoing, None);
            }
            "ignore" => answer(out, 200, b"ignored"),
            "keep-body" => {
                KEPT.with(|kept| kept.borrow_mut().push(request));
                answer(out, 200, b"kept");
            }
            "trailers" => {
                let headers = Fields::from_list(&[("trailer".into(), b"x-checksum".to_vec())])
                    .expect("a valid field");
                let response = OutgoingResponse::new(headers);
                let outgoing = response.body().expect("a new response has a body");
                ResponseOutparam::set(out, Ok(response));
                write_all(&outgoing, b"abc");
                let trailers = Fields::from_list(&[("x-checksum".into(), b"42".to_vec())])
                    .expect("a valid field");
                OutgoingBody::finish(outgoing, Some(trailers)).expect("trailers accepted");
            }
            "request-trailers" => {
                let body = request.consume().expect("the body is consumed once");
                let text = read_all(&body);
                let future = IncomingBody::finish(body);
                future.subscribe().block();
                let trailers = match future.get() {
                    Some(Ok(Ok(Some(trailers)))) => trailers
                        .entries()
                        .iter()
                        .map(|(name, value)| format!("{name}:{}", String::from_utf8_lossy(value)))
                        .collect::<Vec<_>>()
                        .join(","),
                    Some(Ok(Ok(None))) => "none".to_string(),
                    other => format!("unexpected: {other:?}"),
                };
                let text = format!(
                    "body={} trailers={trailers}",
                    String::from_utf8_lossy(&text)
                );
                answer(out, 200, text.as_bytes());
            }
            "sleep" => {
                let ms = param(query, "ms").unwrap_or(500);
                wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                answer(out, 200, format!("slept {ms} ms").as_bytes());
            }
            "trap" => panic!("the test guest panics on /trap"),
            "count" => answer(out, 200, served.to_string().as_bytes()),
            "loop" => {
                let mut x: u64 = served;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "memory" => {
                let mib = param(query, "mib").unwrap_or(256) as usize;
                let mut hog: Vec<u8> = Vec::new();
                for _ in 0..mib {
                    hog.extend(std::iter::repeat_n(1u8, 1 << 20));
                }
                answer(out, 200, format!("held {} MiB", hog.len() >> 20).as_bytes());
            }
            "unfinished" => {
                let headers = Fields::new();
                let _ = headers.set("content-length", &[b"1000".to_vec()]);
                let response = OutgoingResponse::new(headers);
                let outgoing = response.body().expect("a new response has a body");
                ResponseOutparam::set(out, Ok(response));
                let stream = outgoing.write().expect("the body stream is taken once");
                let _ = stream.blocking_write_and_flush(b"only part of it");
                // Returns with the body neither complete nor finished.
            }
            "no-answer" => drop(out),
            "print" => {
                println!("test-wasi-http stdout {path}");
                answer(out, 200, b"printed");
            }
            "mount" => {
                let headers = request.headers();
                let all = |name: &str| {
                    let values: Vec<String> = headers
                        .get(name)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .collect();
                    values.join(",")
                };
                let text = format!(
                    "route={} path-info={}",
                    all("x-percore-route"),
                    all("x-percore-path-info")
                );
                answer(out, 200, text.as_bytes());
            }
            _ => answer(out, 404, b"not found\n"),
        }
    }
}

wasi::http::proxy::export!(TestWasiHttp);
