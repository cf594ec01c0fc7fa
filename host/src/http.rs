//! The HTTP hop, request and response mapping only: routes a hyper
//! request, turns it into the guest's request (borrowing hyper's parsed
//! parts; a percore guest gets the whole body, a `wasi:http` guest reads
//! it as it arrives), calls the route's instance pool, and turns the guest's
//! [`Response`] (or a [`RequestError`]) into a hyper response with
//! `Server` (hyper adds `Date` and `Content-Length`). The wire protocol is
//! hyper's and the connection's ([`crate::connection`]); the body is
//! [`crate::body`]'s.

use std::convert::Infallible;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{HeaderMap, StatusCode};

use crate::bindings::{self, Response};
use crate::body::{RequestBody, ResponseBody, check_dump_range};
use crate::engine::World;
use crate::error::RequestError;
use crate::host_functions::WorkerIndex;
use crate::pool::GuestRequest;
use crate::routes::LocalRoute;
use crate::trace::{self, InTrace};
use crate::worker::WorkerContext;
use crate::{access_log, stats};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The value of the `Server` header on every response.
pub const SERVER: HeaderValue = HeaderValue::from_static("percore");

/// The request header field that tells a handler the prefix of the route
/// that matched (`/hello`). The host's, never the client's: a percore
/// guest's `fields` answer it from the route, a `wasi:http` guest's request
/// has it replaced.
pub const X_PERCORE_ROUTE: HeaderName = HeaderName::from_static("x-percore-route");
/// The request header field that tells a handler the path below its route
/// prefix (`/a/b` for `/hello/a/b` on `/hello`; `/` for the prefix itself),
/// still percent-encoded, without the query. The host's, as
/// [`X_PERCORE_ROUTE`].
pub const X_PERCORE_PATH_INFO: HeaderName = HeaderName::from_static("x-percore-path-info");

/// A response as sent to the client.
pub type HttpResponse = hyper::Response<ResponseBody>;

/// Serves one request on a worker: its trace context, the call, and what
/// is recorded about it (metrics, the access log); while the host drains,
/// the response closes the connection.
pub async fn serve(
    context: Rc<WorkerContext>,
    mut req: hyper::Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    let _active = context.counters.request();
    let trace_id = trace::take_or_make(req.headers_mut());
    let started = context.timed().then(Instant::now);
    let method = req.method().clone();
    let path = context
        .access_log
        .as_ref()
        .map(|_| req.uri().path().to_owned());
    let mut routed = None;
    let result = InTrace::new(trace_id, handle(&context, req, &mut routed)).await;
    let mut response = match result {
        Ok(response) => response,
        // Logged with the request's trace id.
        Err(error) => trace::in_trace(trace_id, || error_response(error)),
    };
    if context.draining.get() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(started) = started {
        let duration = started.elapsed();
        let status = response.status().as_u16();
        let route: Option<&LocalRoute> = routed.as_deref();
        let recorder = match route {
            Some(route) => route.recorder.as_ref(),
            None => context.unrouted.as_ref(),
        };
        if let Some(recorder) = recorder {
            recorder.request(stats::method_index(&method), status, duration);
        }
        if let (Some(log), Some(path)) = (&context.access_log, &path) {
            log.record(&access_log::Entry {
                trace_id,
                method: method.as_str(),
                path,
                route: route.map(|r| r.route.prefix.as_str()),
                status,
                duration,
            });
        }
    }
    Ok(response)
}

/// The methods a route may see; what `OPTIONS *` answers with.
const ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");

/// Routes and answers one request; `routed` is set to the route that
/// matched.
async fn handle(
    context: &WorkerContext,
    req: hyper::Request<Incoming>,
    routed: &mut Option<Rc<LocalRoute>>,
) -> Result<HttpResponse, RequestError> {
    // What the WIT promises a guest: a method it can answer and a path that
    // starts with `/`. CONNECT (authority-form) and `OPTIONS *`
    // (asterisk-form) are the host's to answer.
    if req.method() == hyper::Method::CONNECT {
        return Err(RequestError::MethodNotImplemented {
            method: req.method().to_string(),
        });
    }
    if !req.uri().path().starts_with('/') {
        if req.method() == hyper::Method::OPTIONS && req.uri().path() == "*" {
            return Ok(server_options());
        }
        return Err(RequestError::BadTarget {
            target: req.uri().to_string(),
        });
    }
    let routes = &context.routes;
    let local = {
        let table = routes.table();
        match table.router.route(req.uri().path()) {
            Some(local) => local.clone(),
            None => {
                return Err(RequestError::NoRoute {
                    path: req.uri().path().to_owned(),
                });
            }
        }
    };
    *routed = Some(local.clone());
    let (mut parts, body) = req.into_parts();
    match local.route.component.world {
        World::Percore => {
            let body = read_body(
                &local,
                &parts.headers,
                body,
                context.http.request_body_timeout(),
            )
            .await?;
            // The guest request borrows from hyper's, and its header fields
            // move into the instance's store: nothing is copied per field.
            let guest_request = GuestRequest {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                path_and_query: parts.uri.path_and_query(),
                query: parts.uri.query().unwrap_or_default(),
                headers: parts.headers,
                body: &body,
            };
            let called = local.recorder.as_ref().map(|_| Instant::now());
            let response = local.pool.call(guest_request).await;
            observe_call(&local, called);
            into_http(&local, routes.index(), response?)
        }
        World::WasiHttp | World::WasiHttpP3 => {
            // The body is the guest's to read as it arrives (0.2 and 0.3
            // alike): only a length declared past the route's limit is
            // refused before the call.
            check_declared_length(&local, &parts.headers)?;
            set_mount_headers(&mut parts.headers, &local.route.prefix, parts.uri.path());
            let limit = local.route.limits.max_request_body_bytes;
            let body = RequestBody::new(body, limit, context.http.request_body_timeout());
            let request = hyper::Request::from_parts(parts, body);
            // Boxed: kept out of the percore world's request future, which
            // every connection holds (see `InstancePool::call`).
            let called = local.recorder.as_ref().map(|_| Instant::now());
            if local.route.component.world == World::WasiHttp {
                let response = Box::pin(local.pool.call_wasi_http(request)).await;
                observe_call(&local, called);
                return wasi_into_http(&local, response?);
            }
            let response = Box::pin(local.pool.call_wasi_http_p3(request)).await;
            observe_call(&local, called);
            let (mut parts, body) = response?.into_parts();
            let remaining = wasi_head(&local.route, &mut parts)?;
            Ok(hyper::Response::from_parts(
                parts,
                ResponseBody::WasiHttpP3 { body, remaining },
            ))
        }
    }
}

/// Records a guest call's duration in the route's metrics, when they are
/// kept (`called` is `None` otherwise).
fn observe_call(local: &LocalRoute, called: Option<Instant>) {
    if let (Some(recorder), Some(called)) = (&local.recorder, called) {
        recorder.metrics.guest_calls.observe(called.elapsed());
    }
}

/// Sets `x-percore-route` and `x-percore-path-info` on a `wasi:http`
/// guest's request, replacing any the client sent.
fn set_mount_headers(headers: &mut HeaderMap, prefix: &str, path: &str) {
    for (name, value) in [
        (X_PERCORE_ROUTE, prefix),
        (X_PERCORE_PATH_INFO, crate::router::path_info(prefix, path)),
    ] {
        // Both come from a parsed request line or a validated prefix, so
        // they are valid values; one that were not is left out, never
        // the client's.
        match HeaderValue::from_str(value) {
            Ok(value) => {
                headers.insert(name, value);
            }
            Err(_) => {
                headers.remove(name);
            }
        }
    }
}

/// The answer to `OPTIONS *` (RFC 9110, 9.3.7): what the server supports,
/// no content.
fn server_options() -> HttpResponse {
    let mut response = hyper::Response::new(ResponseBody::full(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(header::SERVER, SERVER);
    headers.insert(header::ALLOW, ALLOW);
    response
}

/// Reads the whole request body, up to the route's limit; a body that
/// makes no progress for `timeout` ends the request (408).
async fn read_body(
    local: &LocalRoute,
    headers: &HeaderMap,
    mut body: Incoming,
    timeout: std::time::Duration,
) -> Result<Bytes, RequestError> {
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let limit = local.route.limits.max_request_body_bytes;
    let too_large = || RequestError::BodyTooLarge {
        route: local.route.prefix.clone(),
        limit,
    };
    check_declared_length(local, headers)?;
    // Most bodies arrive as one frame, handed to the guest without a copy.
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut received = 0u64;
    loop {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_elapsed) => {
                return Err(RequestError::BodyTimeout {
                    received,
                    timeout_ms: timeout.as_millis() as u64,
                });
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(RequestError::BadBody(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            received += data.len() as u64;
            if received > limit {
                return Err(too_large());
            }
            chunks.push(data);
        }
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().expect("one chunk"),
        _ => chunks.concat().into(),
    })
}

/// Refuses a request whose `Content-Length` is past the route's
/// `max_request_body_bytes` (413), before any of its body is read.
fn check_declared_length(local: &LocalRoute, headers: &HeaderMap) -> Result<(), RequestError> {
    let limit = local.route.limits.max_request_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(RequestError::BodyTooLarge {
            route: local.route.prefix.clone(),
            limit,
        });
    }
    Ok(())
}

/// Headers the host sets itself; a guest's values for them are dropped.
fn is_host_header(name: &HeaderName) -> bool {
    HOST_HEADERS.contains(name)
}

/// The header fields the host sets itself: `Server`, and what framing the
/// connection (`Date`, `Content-Length`, `Transfer-Encoding`,
/// `Connection`, `Upgrade`).
const HOST_HEADERS: [HeaderName; 6] = [
    header::SERVER,
    header::DATE,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
];

/// Whether a handler may answer with `status`: a final status (200-599).
/// 1xx statuses are interim (`100 Continue` and `101 Switching Protocols`
/// belong to the host's HTTP layer), and nothing above 599 exists.
pub fn is_handler_status(status: u16) -> bool {
    (200..=599).contains(&status)
}

/// Turns the guest's response into an HTTP response, rejecting what cannot
/// be sent.
fn into_http(
    local: &LocalRoute,
    index: Option<&WorkerIndex>,
    response: Response,
) -> Result<HttpResponse, RequestError> {
    let route = &local.route;
    let bad = |why: String| RequestError::BadResponse {
        route: route.prefix.clone(),
        why,
    };
    // Header names and values count against the response's size, as the
    // body does.
    let head_bytes = check_head(
        route,
        response.status,
        response.headers.len(),
        response
            .headers
            .iter()
            .map(|(name, value)| (name.len(), value.len())),
    )?;
    let status = StatusCode::from_u16(response.status).expect("checked: 200-599");
    let body_bytes = match &response.body {
        bindings::Body::Bytes(bytes) => bytes.len() as u64,
        bindings::Body::Dump(_) => 0,
    };
    check_fits(route, head_bytes, body_bytes)?;
    let mut builder = hyper::Response::builder().status(status);
    let headers = builder.headers_mut().expect("builder has no error yet");
    headers.reserve(response.headers.len() + 1);
    for (name, value) in response.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("header name {name:?} is not valid")))?;
        if is_host_header(&name) {
            continue;
        }
        let value = HeaderValue::try_from(value)
            .map_err(|e| bad(format!("header {name} has an invalid value: {e}")))?;
        headers.append(name, value);
    }
    headers.insert(header::SERVER, SERVER);
    let body = match response.body {
        bindings::Body::Bytes(bytes) => ResponseBody::full(bytes),
        bindings::Body::Dump(range) => {
            let index = index
                .ok_or_else(|| bad("a dump-range body needs a host started with --index".into()))?;
            check_dump_range(&range, index.dump_len()).map_err(bad)?;
            ResponseBody::dump(
                index,
                &range,
                local.recorder.as_ref().map(|r| r.metrics.clone()),
            )
        }
    };
    Ok(builder
        .body(body)
        .expect("status and headers were validated"))
}

/// Checks a handler's status and header fields against what may be sent
/// and the route's limits, and returns the bytes the header fields count
/// for against `max_response_bytes`.
fn check_head(
    route: &crate::routes::Route,
    status: u16,
    count: usize,
    lengths: impl Iterator<Item = (usize, usize)>,
) -> Result<u64, RequestError> {
    let bad = |why: String| RequestError::BadResponse {
        route: route.prefix.clone(),
        why,
    };
    let limits = &route.limits;
    if !is_handler_status(status) {
        return Err(bad(format!(
            "status {status} is not one a handler may send (200-599)"
        )));
    }
    if count as u64 > limits.max_response_headers {
        return Err(bad(format!(
            "{count} header fields exceed the route's limit of {} (max_response_headers)",
            limits.max_response_headers
        )));
    }
    let head_bytes: u64 = lengths.map(|(name, value)| (name + value + 4) as u64).sum();
    if head_bytes > limits.max_response_bytes {
        return Err(bad(format!(
            "{head_bytes} bytes of header fields exceed the route's {}-byte limit (max_response_bytes)",
            limits.max_response_bytes
        )));
    }
    Ok(head_bytes)
}

/// Refuses a response whose header fields (`head_bytes`, as
/// [`check_head`] counts them) and body are over the route's
/// `max_response_bytes`.
fn check_fits(
    route: &crate::routes::Route,
    head_bytes: u64,
    body_bytes: u64,
) -> Result<(), RequestError> {
    let limit = route.limits.max_response_bytes;
    if head_bytes + body_bytes > limit {
        return Err(RequestError::BadResponse {
            route: route.prefix.clone(),
            why: format!(
                "{head_bytes} bytes of header fields and {body_bytes} of body exceed the route's {limit}-byte limit (max_response_bytes)"
            ),
        });
    }
    Ok(())
}

/// Turns a `wasi:http` (0.2) guest's response into an HTTP response: the
/// head as [`wasi_head`] makes it, and a body that is cut off past the
/// route's limit.
fn wasi_into_http(
    local: &LocalRoute,
    response: hyper::Response<HyperOutgoingBody>,
) -> Result<HttpResponse, RequestError> {
    let (mut parts, body) = response.into_parts();
    let remaining = wasi_head(&local.route, &mut parts)?;
    let body = ResponseBody::WasiHttp { body, remaining };
    Ok(hyper::Response::from_parts(parts, body))
}

/// Checks a `wasi:http` guest's status and header fields as a percore
/// guest's are checked, puts the host's own header fields in place, and
/// returns the bytes its body may have (`max_response_bytes` less the
/// header fields). A wasi:http guest's `Content-Length` stays:
/// wasmtime-wasi-http holds the body it writes to it, and hyper sends the
/// body with it instead of in chunks; one over what the body may have is
/// refused before anything is sent (500, as a percore guest's oversized
/// body), rather than cut off after the head (a body without a length
/// still is).
fn wasi_head(
    route: &crate::routes::Route,
    parts: &mut hyper::http::response::Parts,
) -> Result<u64, RequestError> {
    let head_bytes = check_head(
        route,
        parts.status.as_u16(),
        parts.headers.len(),
        parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().len(), value.len())),
    )?;
    for name in HOST_HEADERS
        .iter()
        .filter(|&name| name != header::CONTENT_LENGTH)
    {
        parts.headers.remove(name);
    }
    let promised = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if let Some(body_bytes) = promised {
        check_fits(route, head_bytes, body_bytes)?;
    }
    parts.headers.insert(header::SERVER, SERVER);
    Ok(route.limits.max_response_bytes - head_bytes)
}

/// The response for a request that failed before or inside the guest.
pub fn error_response(error: RequestError) -> HttpResponse {
    if error.is_server_side() {
        tracing::warn!("{error}");
    } else {
        tracing::debug!("{error}");
    }
    let mut response = hyper::Response::new(ResponseBody::full(error.client_message()));
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(header::SERVER, SERVER);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if error.closes_connection() {
        // hyper closes the connection once this response is written.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    /// The size of the future an async fn of two arguments returns.
    fn future_size<A, B, F: Future>(_: fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// hyper keeps, for every connection, a box the size of the service's
    /// future (`Box::pin(None)` in its HTTP/1 dispatcher, allocated with
    /// the connection and kept while it is idle). So this future's size is
    /// part of every idle keep-alive connection's memory: 4,616 bytes
    /// before the instantiation, the deadline timer and the wasi:http call
    /// were boxed where they are used, 2,408 after (Rust 1.96); 4,176 with
    /// wasmtime's `component-model-async` compiled in (for wasi:http 0.3):
    /// wasmtime 49's `TypedFunc::call_async` future holds its concurrent
    /// branch inline, even on an engine without concurrency support, and
    /// the percore call keeps that future inline to allocate nothing per
    /// request.
    #[test]
    fn a_connection_holds_a_small_request_future() {
        let size = future_size(super::serve);
        assert!(
            size <= 4_608,
            "the request future is {size} bytes: every connection holds that much; box what only some requests need"
        );
    }
}
