//! A worker: one OS thread with its own single-threaded tokio runtime, its
//! own `SO_REUSEPORT` listener (the kernel spreads connections across the
//! workers' listeners), and its own instances. Nothing on the request path
//! is shared with another worker except read-only data.
//!
//! The accept loop and every connection watch the shutdown signal: on
//! shutdown the worker stops accepting, lets each connection finish the
//! request in flight (hyper's graceful shutdown), and exits when they are
//! done or the grace period has passed.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::HttpConfig;
use crate::http;
use crate::routes::{LocalRoutes, SharedRoutes};

/// Binds a listening socket with `SO_REUSEPORT`, so that every worker can
/// bind its own socket to the same address.
pub fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// What a worker needs to run.
pub struct WorkerSetup {
    /// Worker number, for thread names and logs.
    pub id: usize,
    /// This worker's listener (already bound).
    pub listener: std::net::TcpListener,
    /// The shared route table.
    pub routes: Arc<SharedRoutes>,
    /// The shared title index, if any.
    pub index: Option<Arc<percore_index::TitleIndex>>,
    /// Client limits.
    pub http: HttpConfig,
    /// This worker's share of `http.max_connections`.
    pub max_connections: usize,
    /// Becomes `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// Starts a worker thread.
pub fn spawn(setup: WorkerSetup) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("percore-worker-{}", setup.id))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build the worker's tokio runtime");
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, run(setup));
        })
}

async fn run(setup: WorkerSetup) {
    let WorkerSetup {
        id,
        listener,
        routes,
        index,
        http,
        max_connections,
        shutdown,
    } = setup;
    let listener = TcpListener::from_std(listener).expect("register the listener with tokio");
    let routes = Rc::new(LocalRoutes::new(routes, index.as_ref()));
    let http = Rc::new(http);
    let mut connections = JoinSet::new();
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) if connections.len() >= max_connections => {
                    refuse(&stream);
                }
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn_local(serve_connection(
                        stream,
                        routes.clone(),
                        http.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors or a connection reset before
                    // accept: back off briefly instead of spinning.
                    tracing::warn!(worker = id, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let grace = Duration::from_millis(http.shutdown_grace_ms);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            worker = id,
            "{} connections still open after the {grace:?} grace period; closing them",
            connections.len()
        );
        connections.abort_all();
    }
}

/// Refuses a connection beyond the limit: a best-effort 503, then close.
fn refuse(stream: &tokio::net::TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nserver: percore\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 31\r\nconnection: close\r\n\r\ntoo many connections, try again";
    let _ = stream.try_write(BUSY);
    tracing::debug!("refused a connection: at the connection limit");
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    routes: Rc<LocalRoutes>,
    http: Rc<crate::config::HttpConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Shared by hyper's IO handle and this task: the task writes what hyper
    // left in the socket's output at the end of each poll, and sends the
    // 400 hyper prepares but does not send for a request it cannot parse.
    let socket = Rc::new(RefCell::new(Connection {
        stream,
        out: Vec::new(),
    }));
    let service = service_fn(move |req| http::serve(routes.clone(), req));
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
    let result = std::future::poll_fn(|cx| {
        if !stopping && stop.as_mut().poll(cx).is_ready() {
            stopping = true;
            conn.as_mut().graceful_shutdown();
        }
        let result = conn.as_mut().poll(cx);
        // A write error ends the connection at hyper's next read or write.
        let _ = socket.borrow_mut().poll_drain(cx);
        result
    })
    .await;
    // The last responses (say, to a `Connection: close` request) may still
    // be waiting for a slow client; give it as long as a request head.
    let grace = Duration::from_millis(http.header_read_timeout_ms);
    let _ = tokio::time::timeout(
        grace,
        std::future::poll_fn(|cx| socket.borrow_mut().poll_drain(cx)),
    )
    .await;
    if let Err(e) = result {
        tracing::debug!("connection ended with an error: {e}");
        if e.is_parse() || e.is_parse_too_large() {
            // hyper is done with the socket.
            http::reject_unparsable(&socket.borrow().stream, e.is_parse_too_large());
        }
    }
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
}

impl Connection {
    /// Writes all of `out` to the socket, or registers for writability.
    fn poll_drain(&mut self, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.out.is_empty() {
            std::task::ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(&self.out) {
                Ok(n) => {
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
        tokio::io::AsyncWrite::poll_write_vectored(std::pin::Pin::new(&mut self.stream), cx, bufs)
    }
}

/// hyper's handle on a connection: reads from the socket, and writes into
/// the connection's output (sent when the task's poll ends; see
/// [`COALESCE`]). Its `shutdown` does nothing: closing the socket on drop
/// sends the FIN instead. hyper shuts the write side down before reporting
/// a parse error, which would leave no way to send the client its 400.
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
