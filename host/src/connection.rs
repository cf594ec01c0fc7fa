//! One client connection: hyper's HTTP/1.1 state machine over the socket,
//! the batching of its writes (the responses to pipelined requests go out
//! in one write), the write-stall watchdog, graceful shutdown (an idle
//! connection closes at once; one whose request is waiting is answered
//! first, with `Connection: close`), and the answer to a connection over
//! the limit. The connection holds its
//! worker's permit until it ends.
//!
//! What a stalled client can hold: hyper reads at most one request head
//! ahead (`http.max_header_bytes`), a request body is read up to the
//! route's `max_request_body_bytes` and only while it makes progress
//! (`http.request_body_timeout_ms`), and a response is held (at most the
//! route's `max_response_bytes`, plus [`COALESCE`] bytes of batched
//! output) only while the client accepts bytes
//! (`http.response_write_timeout_ms`); then the connection is closed and
//! all of it freed.
//!
//! What an idle keep-alive connection holds: its task (this module's
//! future, with hyper's connection state in it), hyper's read buffer and
//! header write buffer, the header read timer (`http.header_read_timeout_ms`
//! closes a connection that sends no request), and the 16 bytes of a
//! [`RequestSlot`] that stand for a request future. A request's future
//! (the whole of [`http::serve`]'s state, a few KB) and the connection's
//! output buffer are the worker's ([`Shared`]), lent to the connection
//! only while it answers a request.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, watch};

use crate::config::HttpConfig;
use crate::error::RequestError;
use crate::http;
use crate::worker::WorkerContext;

/// Refuses a connection beyond the worker's limit of `limit`: a
/// best-effort 503 (the socket is non-blocking; a client that does not
/// read gets nothing), then close.
pub fn refuse(stream: &tokio::net::TcpStream, limit: usize) {
    let error = RequestError::TooManyConnections { limit };
    let _ = stream.try_write(&error.wire_response());
    tracing::debug!("{error}");
}

/// Serves one connection until the client closes it, an error ends it, or
/// the host shuts down; `permit` is released when it returns.
pub async fn serve<F: Future<Output = Answer>>(
    stream: tokio::net::TcpStream,
    permit: OwnedSemaphorePermit,
    context: Rc<WorkerContext>,
    shared: Rc<Shared<F>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _permit = permit;
    let _open = context.counters.connection();
    let http = &context.http;
    // Shared by hyper's IO handle and this task: the task writes what hyper
    // left in the socket's output at the end of each poll.
    let socket = Rc::new(RefCell::new(Connection {
        stream,
        out: Vec::new(),
        blocked: false,
        shared: shared.clone(),
    }));
    let service = {
        let context = context.clone();
        let shared = shared.clone();
        service_fn(move |req| RequestSlot::start(&shared, context.clone(), req))
    };
    let conn = shared
        .builder
        .serve_connection(TokioIo::new(Io(socket.clone())), service);
    drop(shared);
    tokio::pin!(conn);
    // Poll the connection, then write what it left in the output: the
    // responses to every request it could answer in this poll, in one
    // write. On shutdown, hyper finishes the request in flight and closes.
    let stop = shutdown.wait_for(|stop| *stop);
    tokio::pin!(stop);
    let mut stopping = false;
    let write_timeout = http.response_write_timeout();
    // Armed while the client accepts no bytes; fires after `write_timeout`.
    let mut stall: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    let result = std::future::poll_fn(|cx| {
        if !stopping && stop.as_mut().poll(cx).is_ready() {
            stopping = true;
            // From now on every response closes its connection. A request
            // already waiting in the socket (a connection just accepted,
            // or a client that sent as the host stopped) is answered
            // first; an idle connection is closed at once.
            context.draining.set(true);
            if !socket.borrow().has_input() {
                conn.as_mut().graceful_shutdown();
            }
        }
        let result = conn.as_mut().poll(cx);
        let mut socket = socket.borrow_mut();
        // A write error ends the connection at hyper's next read or write.
        let _ = socket.poll_drain(cx);
        if result.is_pending() {
            if !socket.blocked {
                stall = None;
            } else {
                let timer =
                    stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(write_timeout)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(Ended::Stalled));
                }
            }
        }
        result.map_err(Ended::Http)
    })
    .await;
    // The last responses (say, to a `Connection: close` request) may still
    // be waiting for a slow client; give it as long as a stalled write.
    if !matches!(result, Err(Ended::Stalled)) {
        let _ = tokio::time::timeout(
            write_timeout,
            std::future::poll_fn(|cx| socket.borrow_mut().poll_drain(cx)),
        )
        .await;
    }
    match result {
        Ok(()) => {}
        // A request hyper could not parse has had hyper's automatic answer
        // (400, 414 or 431), its only one; the connection closes now.
        Err(Ended::Http(e)) => tracing::debug!("connection ended with an error: {e}"),
        Err(Ended::Stalled) => tracing::debug!(
            "closed a connection whose client accepted no bytes for {write_timeout:?}"
        ),
    }
}

/// What a request future gives hyper: the response (errors are responses).
pub type Answer = Result<http::HttpResponse, std::convert::Infallible>;

/// Free request-future boxes, and free output buffers, that a worker
/// keeps for its next requests: enough for what a core has in flight at
/// once in any ordinary load, so that no request allocates one; past it,
/// what a request gives back is freed.
const KEPT: usize = 64;

/// What the connections of one worker share: hyper's connection settings
/// (with its timer), and the memory a connection needs only while it is
/// busy, kept here in between so that an idle keep-alive connection holds
/// none of it and a request allocates none of it.
///
/// hyper's HTTP/1 dispatcher keeps, for every connection, a box the size of
/// its service's future (`Box::pin(None)`, allocated with the connection
/// and kept while it is idle). [`http::serve`]'s future is a few KB (the
/// whole request's state), so the service's future is a [`RequestSlot`]
/// instead: two pointers, with [`http::serve`]'s future in a box taken
/// from here when the request starts and handed back when it ends. The
/// output of a connection ([`COALESCE`]) is taken from here at its first
/// write and handed back once it is on the socket.
pub struct Shared<F> {
    /// hyper's settings, from the `[http]` configuration.
    builder: http1::Builder,
    /// Makes a request's future ([`http::serve`]).
    make: fn(Rc<WorkerContext>, hyper::Request<hyper::body::Incoming>) -> F,
    /// Empty request-future boxes, at most [`KEPT`].
    futures: RefCell<Vec<Pin<Box<Option<F>>>>>,
    /// Empty output buffers (of at most [`COALESCE`] bytes), at most
    /// [`KEPT`].
    outputs: RefCell<Vec<Vec<u8>>>,
}

impl<F: Future<Output = Answer>> Shared<F> {
    /// What the connections of a worker limited by `http` share; their
    /// requests are `make`'s futures.
    pub fn new(
        http: &HttpConfig,
        make: fn(Rc<WorkerContext>, hyper::Request<hyper::body::Incoming>) -> F,
    ) -> Self {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .keep_alive(true)
            // Not `pipeline_flush`: it makes hyper copy every body into its
            // own buffer (its "flatten" strategy), however large, with no
            // bound (a whole dump: +600 MB/s of RSS). `Io` coalesces the
            // responses of pipelined requests into one write instead.
            .pipeline_flush(false)
            .max_headers(http.max_headers)
            .max_buf_size(http.max_header_bytes.max(8192))
            .header_read_timeout(Duration::from_millis(http.header_read_timeout_ms));
        Shared {
            builder,
            make,
            futures: RefCell::new(Vec::new()),
            outputs: RefCell::new(Vec::new()),
        }
    }
}

/// One request's future, in a box of its worker's [`Shared`] that
/// goes back there when the request is answered or dropped.
struct RequestSlot<F> {
    /// `None` once the future has finished.
    slot: Option<Pin<Box<Option<F>>>>,
    shared: Rc<Shared<F>>,
}

impl<F: Future<Output = Answer>> RequestSlot<F> {
    /// Starts `req` in a free box (or a new one when none is free).
    fn start(
        shared: &Rc<Shared<F>>,
        context: Rc<WorkerContext>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Self {
        let future = (shared.make)(context, req);
        let mut slot = shared
            .futures
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Box::pin(None));
        slot.set(Some(future));
        RequestSlot {
            slot: Some(slot),
            shared: shared.clone(),
        }
    }
}

impl<F: Future<Output = Answer>> Future for RequestSlot<F> {
    type Output = Answer;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Answer> {
        // Unpin: the future itself is pinned in its box.
        let this = self.get_mut();
        let Some(future) = this
            .slot
            .as_mut()
            .and_then(|slot| slot.as_mut().as_pin_mut())
        else {
            panic!("a request future polled after it finished");
        };
        let answer = std::task::ready!(future.poll(cx));
        this.finish();
        Poll::Ready(answer)
    }
}

impl<F> RequestSlot<F> {
    /// Drops the future and hands its box back.
    fn finish(&mut self) {
        if let Some(mut slot) = self.slot.take() {
            // Dropped before the free list is borrowed: a drop that ran
            // code of this worker could not find it borrowed.
            slot.set(None);
            let mut free = self.shared.futures.borrow_mut();
            if free.len() < KEPT {
                free.push(slot);
            }
        }
    }
}

impl<F> Drop for RequestSlot<F> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Why a connection ended before the client closed it.
enum Ended {
    /// hyper's error (a request it could not parse, a read timeout...).
    Http(hyper::Error),
    /// The client accepted no bytes for `http.response_write_timeout_ms`.
    Stalled,
}

/// Writes up to this many bytes are held in the connection's output until
/// its task has done all it can in one poll (more than 16 pipelined
/// TechEmpower responses); larger writes go straight to the socket, so a
/// body streamed from the dump is never copied.
const COALESCE: usize = 16 << 10;

/// A connection's socket and the small writes not yet sent on it. Shared
/// by hyper's handle ([`Io`]) and the connection's task, on one thread,
/// one at a time: the `RefCell` is never contended.
struct Connection<F> {
    stream: tokio::net::TcpStream,
    /// Bytes hyper wrote that are not on the socket yet (at most
    /// [`COALESCE`]), in a buffer of the worker's [`Shared`] while there
    /// are any; empty, with no capacity, otherwise.
    out: Vec<u8>,
    /// Whether the last write found the socket full: the client is not
    /// reading (what the write-stall watchdog watches).
    blocked: bool,
    /// Where `out` comes from and goes back to.
    shared: Rc<Shared<F>>,
}

impl<F> Connection<F> {
    /// Whether the client has sent bytes that nobody has read yet. Asks
    /// the socket itself: tokio's readiness of a connection accepted a
    /// moment ago is not known until the reactor runs.
    fn has_input(&self) -> bool {
        let mut byte = [std::mem::MaybeUninit::uninit()];
        matches!(socket2::SockRef::from(&self.stream).peek(&mut byte), Ok(n) if n > 0)
    }

    /// Writes all of `out` to the socket, or registers for writability.
    fn poll_drain(&mut self, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.out.is_empty() {
            if self.stream.poll_write_ready(cx)?.is_pending() {
                self.blocked = true;
                return Poll::Pending;
            }
            match self.stream.try_write(&self.out) {
                Ok(n) => {
                    self.blocked = false;
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    self.out.clear();
                    return Poll::Ready(Err(e));
                }
            }
        }
        // An idle keep-alive connection keeps no buffer: the worker keeps
        // it for the next connection's output (unless a large write made it
        // large).
        if self.out.capacity() > 0 {
            let out = std::mem::take(&mut self.out);
            let mut free = self.shared.outputs.borrow_mut();
            if out.capacity() <= COALESCE && free.len() < KEPT {
                free.push(out);
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `bufs` into the output if they fit; otherwise sends the output
    /// and then `bufs` themselves.
    fn poll_write_all(
        &mut self,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if self.out.len() + len > COALESCE {
            std::task::ready!(self.poll_drain(cx))?;
        }
        if len <= COALESCE {
            if self.out.capacity() == 0 {
                self.out = self.shared.outputs.borrow_mut().pop().unwrap_or_default();
            }
            for buf in bufs {
                self.out.extend_from_slice(buf);
            }
            return Poll::Ready(Ok(len));
        }
        let written = tokio::io::AsyncWrite::poll_write_vectored(
            std::pin::Pin::new(&mut self.stream),
            cx,
            bufs,
        );
        self.blocked = written.is_pending();
        written
    }
}

/// hyper's handle on a connection: reads from the socket, and writes into
/// the connection's output (sent when the task's poll ends; see
/// [`COALESCE`]). Its `shutdown` does nothing: closing the socket on drop
/// sends the FIN instead, after the task has written what is left.
struct Io<F>(Rc<RefCell<Connection<F>>>);

impl<F> tokio::io::AsyncRead for Io<F> {
    #[inline]
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        tokio::io::AsyncRead::poll_read(
            std::pin::Pin::new(&mut self.0.borrow_mut().stream),
            cx,
            buf,
        )
    }
}

impl<F> tokio::io::AsyncWrite for Io<F> {
    #[inline]
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0
            .borrow_mut()
            .poll_write_all(cx, &[std::io::IoSlice::new(buf)])
    }

    #[inline]
    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.0.borrow_mut().poll_write_all(cx, bufs)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Done: what is in the output is written when the task's poll ends,
    /// after every response the connection's buffered requests produce.
    #[inline]
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a function of five arguments returns.
    fn future_size<A, B, C, D, E, F: Future>(_: fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// The size of a connection's task for the request futures `make`
    /// returns.
    fn connection_size<F: Future<Output = Answer>>(
        _make: fn(Rc<WorkerContext>, hyper::Request<hyper::body::Incoming>) -> F,
    ) -> usize {
        future_size(serve::<F>)
    }

    /// What every idle connection holds for its request future: two
    /// pointers, whatever the size of [`http::serve`]'s.
    #[test]
    fn a_connection_holds_two_pointers_for_its_request() {
        let slot = std::mem::size_of::<Option<RequestSlot<std::future::Ready<Answer>>>>();
        assert_eq!(slot, 2 * std::mem::size_of::<usize>());
        let size = connection_size(http::serve);
        eprintln!("connection task future: {size} bytes");
        assert!(size <= 2 << 10, "the connection future is {size} bytes");
    }
}
