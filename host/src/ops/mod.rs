//! The ops listener: `GET /livez`, `GET /readyz` and `GET /metrics`, for
//! load balancers, orchestrators and Prometheus. Unauthenticated and apart
//! from the public routes and the admin API; off unless `ops` is set. It
//! runs on a thread of its own, started before anything else, so that it
//! answers (503, "starting") while the index maps and the routes compile.
//!
//! | file | owns |
//! | --- | --- |
//! | this one | [`OpsServer`] (the listener's thread), the three endpoints |
//! | [`health`] | [`Health`]: what readiness depends on, and the drain flag |
//! | [`metrics`] | the Prometheus and OpenMetrics text encodings |

pub mod health;
pub mod metrics;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;

pub use health::Health;

use crate::engine::HostEngine;
use crate::registry::Registry;
use crate::stats::HostStats;

/// What the ops endpoints read. The registry and the engine are set once
/// they exist (the listener starts before them).
pub struct OpsState {
    /// Readiness and the drain flag.
    pub health: Arc<Health>,
    /// The workers' counters.
    pub stats: Arc<HostStats>,
    /// The routes (deploy counts, route count).
    pub registry: OnceLock<Arc<Registry>>,
    /// The engine (compile cache counts).
    pub engine: OnceLock<Arc<HostEngine>>,
}

/// The running ops listener; stopped by [`OpsServer::shutdown`] (or on
/// drop).
pub struct OpsServer {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl OpsServer {
    /// Binds `addr` and serves the ops endpoints from `state` on a thread
    /// of its own.
    pub fn start(addr: SocketAddr, state: Arc<OpsState>) -> anyhow::Result<OpsServer> {
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr} for the ops endpoints"))?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("percore-ops".into())
            .spawn(move || runtime.block_on(serve(listener, state, stop)))?;
        tracing::info!(ops = %local_addr, "ops endpoints listening (/livez, /readyz, /metrics)");
        Ok(OpsServer {
            local_addr,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The bound address (with the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the listener and joins its thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the ops thread panicked");
        }
    }
}

impl Drop for OpsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(listener: std::net::TcpListener, state: Arc<OpsState>, stop: watch::Receiver<bool>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("register the ops listener");
    let mut connections = tokio::task::JoinSet::new();
    let mut stop_accepting = stop.clone();
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop_accepting) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let state = state.clone();
                    let mut stop = stop.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(answer(&state, &req)) }
                        });
                        let conn = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(Duration::from_secs(10))
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            () = stopped(&mut stop) => {
                                conn.as_mut().graceful_shutdown();
                                let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("ops accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Completes once `stop` becomes true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// A response of the ops listener.
type OpsResponse = hyper::Response<Full<Bytes>>;

/// Answers one ops request.
fn answer(state: &OpsState, req: &hyper::Request<Incoming>) -> OpsResponse {
    let path = req.uri().path();
    if !matches!(path, "/livez" | "/readyz" | "/metrics") {
        return text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            format!("no ops endpoint {path}: use /livez, /readyz or /metrics\n"),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            format!("{} is not allowed on {path}; use GET\n", req.method()),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/livez" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
        "/readyz" => {
            let readiness = state.health.readiness(&state.stats, state.registry.get());
            let status = if readiness.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let mut body = serde_json::to_string_pretty(&readiness).expect("readiness serialises");
            body.push('\n');
            text(status, "application/json", body)
        }
        _ => {
            let format = metrics::Format::negotiate(
                req.headers()
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok()),
            );
            let body = metrics::render(state, format);
            text(StatusCode::OK, format.content_type(), body)
        }
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> OpsResponse {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
