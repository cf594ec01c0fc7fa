//! A listener apart from the workers' (the admin API, the ops endpoints):
//! bound, served over HTTP/1.1 on a thread of its own with its own
//! current-thread runtime, and stopped gracefully. What it answers is its
//! [`Handler`]'s; nothing here runs on a worker thread.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;

/// A response of a side listener.
pub type SideResponse = hyper::Response<Full<Bytes>>;

/// What a side listener answers.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
    ) -> impl Future<Output = SideResponse> + Send;
}

/// How long a client has to send a request head, and how long a stop
/// waits for requests in flight.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A running side listener; stopped by [`SideListener::shutdown`] (or on
/// drop).
pub struct SideListener {
    name: &'static str,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl SideListener {
    /// Serves `handler` on `listener` (bound, non-blocking) on a thread
    /// named `percore-NAME`, driven by `runtime`.
    pub fn start<H: Handler>(
        name: &'static str,
        listener: std::net::TcpListener,
        runtime: tokio::runtime::Runtime,
        handler: Arc<H>,
    ) -> std::io::Result<SideListener> {
        let local_addr = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name(format!("percore-{name}"))
            .spawn(move || runtime.block_on(serve(name, listener, handler, stop)))?;
        Ok(SideListener {
            name,
            local_addr,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The bound address (with the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets requests in flight finish, and joins the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the {} thread panicked", self.name);
        }
    }
}

impl Drop for SideListener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves `handler` on `listener` until `stop` becomes true.
async fn serve<H: Handler>(
    name: &'static str,
    listener: std::net::TcpListener,
    handler: Arc<H>,
    stop: watch::Receiver<bool>,
) {
    let listener = tokio::net::TcpListener::from_std(listener)
        .unwrap_or_else(|e| panic!("register the {name} listener: {e}"));
    let mut connections = tokio::task::JoinSet::new();
    let mut stop_accepting = stop.clone();
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop_accepting) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = handler.clone();
                    let mut stop = stop.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let handler = handler.clone();
                            async move { Ok::<_, Infallible>(handler.handle(req).await) }
                        });
                        let conn = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(TIMEOUT)
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::pin!(conn);
                        tokio::select! {
                            result = conn.as_mut() => {
                                if let Err(e) = result {
                                    tracing::debug!("{name} connection ended with an error: {e}");
                                }
                            }
                            () = stopped(&mut stop) => {
                                conn.as_mut().graceful_shutdown();
                                let _ = conn.await;
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("{name} accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

/// Completes once `stop` becomes true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
