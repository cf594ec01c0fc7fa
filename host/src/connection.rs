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

use std::cell::RefCell;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, watch};

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
pub async fn serve(
    stream: tokio::net::TcpStream,
    permit: OwnedSemaphorePermit,
    context: Rc<WorkerContext>,
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
    }));
    let service = {
        let context = context.clone();
        service_fn(move |req| http::serve(context.clone(), req))
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        // Not `pipeline_flush`: it makes hyper copy every body into its own
        // buffer (its "flatten" strategy), however large, with no bound (a
        // whole dump: +600 MB/s of RSS). `Io` coalesces the responses of
        // pipelined requests into one write instead.
        .pipeline_flush(false)
        .max_headers(http.max_headers)
        .max_buf_size(http.max_header_bytes.max(8192))
        .header_read_timeout(Duration::from_millis(http.header_read_timeout_ms));
    let conn = builder.serve_connection(TokioIo::new(Io(socket.clone())), service);
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
struct Connection {
    stream: tokio::net::TcpStream,
    /// Bytes hyper wrote that are not on the socket yet (at most
    /// [`COALESCE`]).
    out: Vec<u8>,
    /// Whether the last write found the socket full: the client is not
    /// reading (what the write-stall watchdog watches).
    blocked: bool,
}

impl Connection {
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
        // An idle keep-alive connection keeps no large buffer.
        if self.out.capacity() > COALESCE {
            self.out = Vec::new();
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
struct Io(Rc<RefCell<Connection>>);

impl tokio::io::AsyncRead for Io {
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

impl tokio::io::AsyncWrite for Io {
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
