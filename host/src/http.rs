//! The HTTP hop: turns a hyper request into the guest's [`Request`], routes
//! it, calls the route's instance pool, and turns the guest's [`Response`]
//! (or a [`RequestError`]) into a hyper response with `Server`, `Date` and
//! `Content-Length`. hyper owns the wire protocol: keep-alive, pipelining,
//! and 400/431 for requests it cannot parse.

use std::convert::Infallible;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{HeaderMap, StatusCode};

use crate::bindings::{self, Response};
use crate::error::RequestError;
use crate::pool::GuestRequest;
use crate::routes::{LocalRoute, LocalRoutes};
use crate::state::WorkerIndex;

/// The value of the `Server` header on every response.
pub const SERVER: HeaderValue = HeaderValue::from_static("percore");

/// Bytes of the dump streamed per frame: large enough for few wake-ups,
/// small enough that a slow client pins little of the mapping at a time.
const DUMP_CHUNK: u64 = 256 << 10;

/// A response body: bytes the guest returned (or an error message), or a
/// range of the shared dump streamed straight from its memory map.
pub enum ResponseBody {
    /// A body held in memory; `None` once sent.
    Full(Option<Bytes>),
    /// A range of the dump still to send: bytes `next..end`.
    Dump {
        /// The worker's handle on the index whose dump is sent.
        index: WorkerIndex,
        /// The next byte to send.
        next: u64,
        /// One past the last byte to send.
        end: u64,
        /// The read that is bringing the next chunk into memory, off the
        /// worker thread, when it was not resident.
        prefetch: Option<tokio::task::JoinHandle<()>>,
    },
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseBody::Full(b) => f
                .debug_tuple("Full")
                .field(&b.as_ref().map(Bytes::len))
                .finish(),
            ResponseBody::Dump { next, end, .. } => f
                .debug_struct("Dump")
                .field("next", next)
                .field("end", end)
                .finish(),
        }
    }
}

/// A slice of the memory-mapped dump that keeps the mapping alive; handed
/// to hyper as `Bytes` without copying.
struct DumpSlice {
    index: WorkerIndex,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for DumpSlice {
    fn as_ref(&self) -> &[u8] {
        &self.index.dump_bytes()[self.start..self.end]
    }
}

/// Slices at least this long are released from the host's mapping once
/// sent; smaller ones (single pages) are not worth a system call, and their
/// neighbours are likely to be read again soon.
const RELEASE_AT: usize = 64 << 10;

/// Once hyper has written a large slice, its pages need not stay mapped into
/// the host: releasing them keeps the host's resident memory flat however
/// much of the dump it streams (the kernel's page cache keeps the bytes).
impl Drop for DumpSlice {
    fn drop(&mut self) {
        if self.end - self.start >= RELEASE_AT {
            self.index
                .release_dump_range(self.start as u64..self.end as u64);
        }
    }
}

impl ResponseBody {
    fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        ResponseBody::Full((!bytes.is_empty()).then_some(bytes))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Dump {
                index,
                next,
                end,
                prefetch,
            } => {
                if *next >= *end {
                    return Poll::Ready(None);
                }
                let stop = (*next + DUMP_CHUNK).min(*end);
                // A chunk that is not in memory would make hyper's write
                // fault it in from the disk on this worker thread, stalling
                // every other connection of the core meanwhile: read it on
                // tokio's blocking pool first, then send it.
                match prefetch {
                    Some(read) => {
                        // The read only touches pages; if it panicked, the
                        // write below faults in whatever it missed.
                        let _ = std::task::ready!(Pin::new(read).poll(cx));
                        *prefetch = None;
                    }
                    None if !index.dump_range_resident(*next..stop) => {
                        let (reader, range) = (Arc::clone(index), *next..stop);
                        let mut read = tokio::task::spawn_blocking(move || {
                            reader.prefetch_dump_range(range);
                        });
                        if Pin::new(&mut read).poll(cx).is_pending() {
                            *prefetch = Some(read);
                            return Poll::Pending;
                        }
                    }
                    None => {}
                }
                let slice = DumpSlice {
                    index: index.clone(),
                    start: *next as usize,
                    end: stop as usize,
                };
                *next = stop;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_owner(slice)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(bytes) => bytes.is_none(),
            ResponseBody::Dump { next, end, .. } => next >= end,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::Dump { next, end, .. } => SizeHint::with_exact(end.saturating_sub(*next)),
        }
    }
}

/// A response as sent to the client.
pub type HttpResponse = hyper::Response<ResponseBody>;

/// Serves one request on a worker.
pub async fn serve(
    routes: Rc<LocalRoutes>,
    req: hyper::Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    Ok(handle(&routes, req).await.unwrap_or_else(error_response))
}

async fn handle(
    routes: &LocalRoutes,
    req: hyper::Request<Incoming>,
) -> Result<HttpResponse, RequestError> {
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
    let (parts, body) = req.into_parts();
    let body = read_body(&local, &parts.headers, body).await?;
    // The guest request borrows from hyper's, and its header fields move
    // into the instance's store: nothing is copied per field.
    let guest_request = GuestRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        headers: parts.headers,
        body: &body,
    };
    let response = local.pool.call(guest_request).await?;
    into_http(&local, routes.index(), response)
}

/// Reads the whole request body, up to the route's limit.
async fn read_body(
    local: &LocalRoute,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Bytes, RequestError> {
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let limit = local.route.limits.max_request_body_bytes;
    let too_large = || RequestError::BodyTooLarge {
        route: local.route.prefix.clone(),
        limit,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, limit as usize);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(RequestError::BadBody(e.to_string())),
    }
}

/// Headers the host sets itself; a guest's values for them are dropped.
fn is_host_header(name: &HeaderName) -> bool {
    name == header::SERVER
        || name == header::DATE
        || name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::CONNECTION
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
    let status = StatusCode::from_u16(response.status).map_err(|_| {
        bad(format!(
            "status {} is not a valid HTTP status",
            response.status
        ))
    })?;
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
        bindings::Body::Bytes(bytes) => {
            if bytes.len() as u64 > route.limits.max_response_bytes {
                return Err(bad(format!(
                    "body of {} bytes exceeds the route's {}-byte limit",
                    bytes.len(),
                    route.limits.max_response_bytes
                )));
            }
            ResponseBody::full(bytes)
        }
        bindings::Body::Dump(range) => {
            let index = index
                .ok_or_else(|| bad("a dump-range body needs a host started with --index".into()))?;
            crate::state::check_dump_range(&range, index.dump_len()).map_err(bad)?;
            ResponseBody::Dump {
                index: index.clone(),
                next: range.first,
                end: range.last + 1,
                prefetch: None,
            }
        }
    };
    Ok(builder
        .body(body)
        .expect("status and headers were validated"))
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
    response
}

/// Answers a request hyper could not parse (400, or 431 when its head was
/// too large) on the connection's socket, then shuts its write side. The
/// socket is non-blocking; a client that does not read gets nothing.
pub fn reject_unparsable(stream: &tokio::net::TcpStream, too_large: bool) {
    let response: &[u8] = if too_large {
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nserver: percore\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 32\r\nconnection: close\r\n\r\nrequest header fields too large\n"
    } else {
        b"HTTP/1.1 400 Bad Request\r\nserver: percore\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 12\r\nconnection: close\r\n\r\nbad request\n"
    };
    let _ = stream.try_write(response);
    let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write);
}
