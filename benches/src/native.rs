//! The native baseline: hyper 1 serving the two TechEmpower routes with no
//! WebAssembly in between, built exactly like percore's workers (one OS
//! thread per worker, each with a current-thread tokio runtime and its own
//! `SO_REUSEPORT` listener; HTTP/1.1 with keep-alive and pipeline flushing;
//! `TCP_NODELAY`). The load harness compares percore with it, so the ratio
//! it prints is the cost of running the handler in a guest, not the cost of
//! a different server design.
//!
//! It owns nothing else: no limits, no timeouts, no routing beyond two exact
//! paths.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The value of the `Server` header on every response.
pub const SERVER: HeaderValue = HeaderValue::from_static("native-hyper");

/// The TechEmpower JSON message, serialised afresh for every request as the
/// benchmark's rules require (and as percore's `hello` guest does).
#[derive(Serialize)]
struct Message {
    message: &'static str,
}

/// A running native server: its workers and the switch that stops them.
pub struct NativeServer {
    /// The address the workers listen on (with the real port when the
    /// requested one was 0).
    local_addr: SocketAddr,
    /// Set to `true` to stop accepting and close connections gracefully.
    shutdown: watch::Sender<bool>,
    /// The worker threads, joined by [`NativeServer::shutdown`].
    workers: Vec<JoinHandle<()>>,
}

impl NativeServer {
    /// Binds `workers` listeners to `listen` (all to the same port) and
    /// starts one worker thread per listener.
    pub fn start(listen: SocketAddr, workers: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(workers > 0, "--workers must be at least 1");
        // percore's own binding: the same socket options, one listener per
        // worker on one port.
        let listeners = percore::worker::bind_listeners(listen, workers)
            .with_context(|| format!("binding {listen}"))?;
        let local_addr = listeners[0].local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let workers = listeners
            .into_iter()
            .enumerate()
            .map(|(id, listener)| {
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("native-worker-{id}"))
                    .spawn(move || worker(listener, stop))
                    .context("spawning a worker thread")
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(NativeServer {
            local_addr,
            shutdown,
            workers,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets every connection finish its request in flight,
    /// and joins the workers.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}

/// One worker thread: a current-thread runtime running the accept loop.
fn worker(listener: std::net::TcpListener, stop: watch::Receiver<bool>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the worker's tokio runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, accept_loop(listener, stop));
}

async fn accept_loop(listener: std::net::TcpListener, shutdown: watch::Receiver<bool>) {
    let listener =
        tokio::net::TcpListener::from_std(listener).expect("register the listener with tokio");
    let mut connections = JoinSet::new();
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn_local(serve_connection(stream, shutdown.clone()));
                }
                Err(e) => {
                    eprintln!("native-hyper: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(stream: tokio::net::TcpStream, mut shutdown: watch::Receiver<bool>) {
    let conn = http1::Builder::new()
        .keep_alive(true)
        .pipeline_flush(true)
        .serve_connection(TokioIo::new(stream), service_fn(respond));
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.wait_for(|stop| *stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The handler: `/json`, `/plaintext`, and 404 for anything else.
async fn respond<B>(req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match req.uri().path() {
        "/json" => {
            let body = serde_json::to_vec(&Message {
                message: "Hello, World!",
            })
            .expect("serialising a static message cannot fail");
            (StatusCode::OK, "application/json", Bytes::from(body))
        }
        "/plaintext" => (
            StatusCode::OK,
            "text/plain",
            Bytes::from_static(b"Hello, World!"),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"not found: try /json or /plaintext\n"),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::SERVER, SERVER);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}
