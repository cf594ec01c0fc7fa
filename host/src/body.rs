//! The response body: bytes a guest returned (or an error message), a
//! range of the shared dump streamed straight from its memory map in
//! slices, with the range checks that keep it inside the dump, or the body
//! a `wasi:http/proxy` (0.2) or `wasi:http/service` (0.3, [`P3Body`])
//! guest writes while it is sent, cut off at the route's
//! `max_response_bytes`. The dump's pages are read ahead off the
//! worker thread when they are not in memory, and released from the host's
//! mapping once sent.
//!
//! Also the request body a `wasi:http/proxy` guest reads
//! ([`RequestBody`]): hyper's, streamed as it arrives, ended past the
//! route's `max_request_body_bytes` or when it stalls.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::bindings::DumpRange;
use crate::host_functions::WorkerIndex;
use crate::stats::RouteMetrics;

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
        /// The route's metrics on this worker (bytes sent), when kept.
        metrics: Option<Arc<RouteMetrics>>,
    },
    /// What a `wasi:http/proxy` guest writes, as it writes it.
    WasiHttp {
        /// The guest's body.
        body: HyperOutgoingBody,
        /// Bytes it may still send (the route's `max_response_bytes`, less
        /// its header fields).
        remaining: u64,
    },
    /// What a `wasi:http/service` (0.3) guest writes, as it writes it.
    WasiHttpP3 {
        /// The guest's body.
        body: P3Body,
        /// Bytes it may still send (as for [`ResponseBody::WasiHttp`]).
        remaining: u64,
    },
}

/// A wasi:http 0.3 guest's response body, as its call hands it over
/// ([`crate::pool::InstancePool::call_wasi_http_p3`]). The guest writes it
/// through its store's event loop, which the call keeps running until this
/// body says it was read to its end (or was dropped before: the client
/// left, or the body ran over the route's limit). The body of a response
/// to `HEAD`, which hyper drops unread, goes back to the call instead,
/// which reads it to its end there: the guest writes it as for a `GET`,
/// and its instance is reused as after a `GET`.
pub struct P3Body {
    /// The stream from the guest.
    body: wasmtime_wasi_http::WasiBody,
    /// Sent (`None`) once the body was read to its end, or with the body
    /// when a `HEAD` response's is dropped before; dropped unsent when any
    /// other body is dropped before (the call then drops the instance).
    done: Option<tokio::sync::oneshot::Sender<Option<wasmtime_wasi_http::WasiBody>>>,
    /// The body of a response to `HEAD`.
    head: bool,
    /// Set by the call when it failed (a trap, its deadline) before the
    /// body ended: the stream then ends early, which must reach the
    /// client as an error (a cut connection), not as a complete body.
    failed: Arc<AtomicBool>,
}

impl P3Body {
    /// The body `body` of a call that signals `done` when it was read to
    /// its end (or hands it back there, for a response to `HEAD`), and
    /// sets `failed` when the call failed.
    pub fn new(
        body: wasmtime_wasi_http::WasiBody,
        done: tokio::sync::oneshot::Sender<Option<wasmtime_wasi_http::WasiBody>>,
        failed: Arc<AtomicBool>,
        head: bool,
    ) -> Self {
        P3Body {
            body,
            done: Some(done),
            head,
            failed,
        }
    }

    fn finished(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(None);
        }
    }
}

/// hyper may drop a body without polling its end once it says it is at
/// its end (`is_end_stream`): that counts as read to its end. It drops a
/// `HEAD` response's body unread: that one goes back to the call.
impl Drop for P3Body {
    fn drop(&mut self) {
        if self.failed.load(Ordering::Relaxed) {
            return;
        }
        if self.body.is_end_stream() {
            self.finished();
        } else if self.head
            && let Some(done) = self.done.take()
        {
            let _ = done.send(Some(std::mem::take(&mut self.body)));
        }
    }
}

/// Why a response body ended early; hyper then closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// A `wasi:http` guest's body failed (it trapped, ran past its
    /// deadline, or reported an error).
    #[error("the handler's body failed: {0}")]
    Guest(String),
    /// A `wasi:http` guest wrote more than its route allows.
    #[error("the handler's body exceeded the route's max_response_bytes")]
    TooLarge,
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
            ResponseBody::WasiHttp { remaining, .. } => f
                .debug_struct("WasiHttp")
                .field("remaining", remaining)
                .finish(),
            ResponseBody::WasiHttpP3 { remaining, .. } => f
                .debug_struct("WasiHttpP3")
                .field("remaining", remaining)
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
    /// A body of `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        ResponseBody::Full((!bytes.is_empty()).then_some(bytes))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ResponseBody::WasiHttp { body, remaining } => {
                let frame = std::task::ready!(Pin::new(body).poll_frame(cx));
                Poll::Ready(match frame {
                    None => None,
                    Some(Err(e)) => Some(Err(BodyError::Guest(format!("{e:?}")))),
                    Some(Ok(frame)) => Some(within(frame, remaining)),
                })
            }
            ResponseBody::WasiHttpP3 { body, remaining } => {
                let frame = std::task::ready!(Pin::new(&mut body.body).poll_frame(cx));
                Poll::Ready(match frame {
                    None if body.failed.load(Ordering::Relaxed) => Some(Err(BodyError::Guest(
                        "the handler failed before it finished its body".into(),
                    ))),
                    None => {
                        body.finished();
                        None
                    }
                    Some(Err(e)) => Some(Err(BodyError::Guest(format!("{e:?}")))),
                    Some(Ok(frame)) => Some(within(frame, remaining)),
                })
            }
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Dump {
                index,
                next,
                end,
                prefetch,
                metrics,
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
                if let Some(metrics) = metrics {
                    metrics.dump_bytes.add(stop - *next);
                }
                *next = stop;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_owner(slice)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::WasiHttp { body, .. } => body.is_end_stream(),
            ResponseBody::WasiHttpP3 { body, .. } => body.body.is_end_stream(),
            ResponseBody::Full(bytes) => bytes.is_none(),
            ResponseBody::Dump { next, end, .. } => next >= end,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::WasiHttp { body, .. } => body.size_hint(),
            ResponseBody::WasiHttpP3 { body, .. } => body.body.size_hint(),
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::Dump { next, end, .. } => SizeHint::with_exact(end.saturating_sub(*next)),
        }
    }
}

impl ResponseBody {
    /// The bytes `range` of the dump of `index`, streamed; the range must
    /// have passed [`check_dump_range`].
    pub fn dump(
        index: &WorkerIndex,
        range: &DumpRange,
        metrics: Option<Arc<RouteMetrics>>,
    ) -> Self {
        ResponseBody::Dump {
            index: index.clone(),
            next: range.first,
            end: range.last + 1,
            prefetch: None,
            metrics,
        }
    }
}

/// Checks that `range` lies inside a dump of `size` bytes; the error says
/// which bytes exist.
pub fn check_dump_range(range: &DumpRange, size: u64) -> Result<(), String> {
    if range.first > range.last || range.last >= size {
        return Err(format!(
            "dump range {}-{} is outside the dump (bytes 0-{})",
            range.first,
            range.last,
            size.saturating_sub(1)
        ));
    }
    Ok(())
}

/// A request body as a `wasi:http/proxy` guest reads it: hyper's
/// [`Incoming`], frame by frame as the client sends it (trailers
/// included), never buffered here. Past the route's
/// `max_request_body_bytes` the guest's read fails with
/// `HTTP-request-body-size`; after `timeout` without a byte it fails with
/// `connection-read-timeout`. Either is recorded in its [`BodyFault`], so
/// that the host answers 413 or 408 itself when the guest had not answered
/// yet.
pub struct RequestBody {
    /// What hyper reads; `None` for a request without a body, and once the
    /// body failed (dropping it lets hyper drain or close the connection).
    incoming: Option<Incoming>,
    /// Bytes received so far.
    received: u64,
    /// The route's `max_request_body_bytes`.
    limit: u64,
    /// Longest wait for the next frame.
    timeout: Duration,
    /// Armed at the first wait, reset at every frame.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Shared with the call; `None` for a request without a body.
    fault: Option<Arc<BodyFault>>,
}

/// Why a streamed request body ended early, once it has, and whether the
/// body still exists; shared by the body (which the guest's store owns)
/// and the call that waits for the guest's answer.
#[derive(Debug)]
pub struct BodyFault {
    /// What went wrong, once it has.
    fault: OnceLock<Fault>,
    /// Until the body is dropped: a guest that still holds it when its
    /// call returns holds the connection's unread body.
    alive: AtomicBool,
}

impl Default for BodyFault {
    fn default() -> Self {
        BodyFault {
            fault: OnceLock::new(),
            alive: AtomicBool::new(true),
        }
    }
}

/// What went wrong with a streamed request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// More than the route's `max_request_body_bytes` arrived.
    TooLarge,
    /// The client sent nothing for the request body timeout, after
    /// `received` bytes.
    Stalled {
        /// Bytes received before it stalled.
        received: u64,
        /// The timeout, in milliseconds.
        timeout_ms: u64,
    },
}

impl BodyFault {
    /// What went wrong, if anything has yet.
    pub fn get(&self) -> Option<Fault> {
        self.fault.get().copied()
    }

    /// Whether the body has not been dropped yet.
    pub fn body_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Some(record) = &self.fault {
            record.alive.store(false, Ordering::Relaxed);
        }
    }
}

impl RequestBody {
    /// `incoming`, read up to `limit` bytes, waiting at most `timeout` for
    /// each frame.
    pub fn new(incoming: Incoming, limit: u64, timeout: Duration) -> RequestBody {
        let empty = incoming.is_end_stream();
        RequestBody {
            incoming: (!empty).then_some(incoming),
            received: 0,
            limit,
            timeout,
            timer: None,
            // Only a body that can go wrong pays for the shared record.
            fault: (!empty).then(Arc::default),
        }
    }

    /// The record of what went wrong, for the call (`None` for a request
    /// without a body).
    pub fn fault(&self) -> Option<Arc<BodyFault>> {
        self.fault.clone()
    }

    /// Ends the body with `fault`: the guest's read fails with `error`.
    fn fail(
        &mut self,
        fault: Fault,
        error: wasmtime_wasi_http::Error,
    ) -> Poll<Option<Result<Frame<Bytes>, wasmtime_wasi_http::Error>>> {
        self.incoming = None;
        self.timer = None;
        if let Some(record) = &self.fault {
            let _ = record.fault.set(fault);
        }
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(incoming) = &mut this.incoming else {
            return Poll::Ready(None);
        };
        match Pin::new(incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(timer) = &mut this.timer {
                    timer
                        .as_mut()
                        .reset(tokio::time::Instant::now() + this.timeout);
                }
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    if this.received > this.limit {
                        let received = this.received;
                        return this.fail(
                            Fault::TooLarge,
                            wasmtime_wasi_http::Error::HttpRequestBodySize(Some(received)),
                        );
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.incoming = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.incoming = None;
                this.timer = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let stalled = Fault::Stalled {
                    received: this.received,
                    timeout_ms: this.timeout.as_millis() as u64,
                };
                this.fail(stalled, wasmtime_wasi_http::Error::ConnectionReadTimeout)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

/// A frame of a guest's body, or [`BodyError::TooLarge`] once the body
/// would pass the bytes `remaining` to it (which it counts down).
fn within(frame: Frame<Bytes>, remaining: &mut u64) -> Result<Frame<Bytes>, BodyError> {
    let len = frame.data_ref().map_or(0, |data| data.len() as u64);
    if len > *remaining {
        *remaining = 0;
        Err(BodyError::TooLarge)
    } else {
        *remaining -= len;
        Ok(frame)
    }
}
