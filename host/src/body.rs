//! The response body: bytes a guest returned (or an error message), a
//! range of the shared dump streamed straight from its memory map in
//! slices, with the range checks that keep it inside the dump, or the body
//! a `wasi:http/proxy` (0.2) or `wasi:http/service` (0.3, [`P3Body`])
//! guest writes while it is sent, cut off at the route's
//! `max_response_bytes`. The dump's pages are read ahead off the
//! worker thread when they are not in memory, and released from the host's
//! mapping once sent.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

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
/// left, or the body ran over the route's limit).
pub struct P3Body {
    /// The stream from the guest.
    body: wasmtime_wasi_http::WasiBody,
    /// Sent once the body was read to its end; dropped unsent when the
    /// body is dropped before (the call then drops the instance).
    done: Option<tokio::sync::oneshot::Sender<()>>,
    /// Set by the call when it failed (a trap, its deadline) before the
    /// body ended: the stream then ends early, which must reach the
    /// client as an error (a cut connection), not as a complete body.
    failed: Arc<AtomicBool>,
}

impl P3Body {
    /// The body `body` of a call that signals `done` when it was read to
    /// its end, and sets `failed` when the call failed.
    pub fn new(
        body: wasmtime_wasi_http::WasiBody,
        done: tokio::sync::oneshot::Sender<()>,
        failed: Arc<AtomicBool>,
    ) -> Self {
        P3Body {
            body,
            done: Some(done),
            failed,
        }
    }

    fn finished(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

/// hyper may drop a body without polling its end once it says it is at
/// its end (`is_end_stream`): that counts as read to its end.
impl Drop for P3Body {
    fn drop(&mut self) {
        if self.body.is_end_stream() && !self.failed.load(Ordering::Relaxed) {
            self.finished();
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
                    Some(Ok(frame)) => {
                        let len = frame.data_ref().map_or(0, |data| data.len() as u64);
                        if len > *remaining {
                            *remaining = 0;
                            Some(Err(BodyError::TooLarge))
                        } else {
                            *remaining -= len;
                            Some(Ok(frame))
                        }
                    }
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
                    Some(Ok(frame)) => {
                        let len = frame.data_ref().map_or(0, |data| data.len() as u64);
                        if len > *remaining {
                            *remaining = 0;
                            Some(Err(BodyError::TooLarge))
                        } else {
                            *remaining -= len;
                            Some(Ok(frame))
                        }
                    }
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
