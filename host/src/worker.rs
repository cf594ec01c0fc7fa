//! A worker: one OS thread with its own single-threaded tokio runtime, its
//! own `SO_REUSEPORT` listener (the kernel spreads connections across the
//! workers' listeners), and its own instances. Nothing on the request path
//! is shared with another worker except read-only data.
//!
//! The accept loop and every connection watch the shutdown signal: on
//! shutdown the worker stops accepting, lets each connection finish the
//! request in flight (hyper's graceful shutdown), and exits when they are
//! done or the grace period has passed.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
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
    // hyper closes the connection on a request it cannot parse without
    // sending the 400 (or 431) it prepares. A duplicate of the socket (one
    // `dup` per connection, no reactor registration) lets us send it.
    let spare = socket2::SockRef::from(&stream).try_clone().ok();
    let service = service_fn(move |req| http::serve(routes.clone(), req));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        // Not `pipeline_flush`: with it hyper keeps polling a streamed body
        // regardless of its write buffer and copies a whole dump into memory
        // (measured: +600 MB/s of RSS while streaming /xml). Pipelined
        // requests are still answered in order, one write each.
        .pipeline_flush(false)
        .max_headers(http.max_headers)
        .max_buf_size(http.max_header_bytes.max(8192))
        .header_read_timeout(Duration::from_millis(http.header_read_timeout_ms));
    let conn = builder.serve_connection(TokioIo::new(NoShutdown(stream)), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("connection ended with an error: {e}");
                if (e.is_parse() || e.is_parse_too_large())
                    && let Some(spare) = spare
                {
                    http::reject_unparsable(spare, e.is_parse_too_large());
                }
            }
        }
        _ = shutdown.wait_for(|stop| *stop) => {
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                tracing::debug!("connection ended with an error during shutdown: {e}");
            }
        }
    }
}

/// A TCP stream whose `shutdown` does nothing; closing the socket on drop
/// sends the FIN instead. hyper shuts the write side down before reporting
/// a parse error, which would leave no way to send the client its 400.
struct NoShutdown(tokio::net::TcpStream);

impl tokio::io::AsyncRead for NoShutdown {
    #[inline]
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for NoShutdown {
    #[inline]
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    #[inline]
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    #[inline]
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
