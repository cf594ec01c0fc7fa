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

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};

pub use health::Health;

use crate::engine::HostEngine;
use crate::registry::Registry;
use crate::side_listener::{Handler, SideListener, SideResponse};
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
pub struct OpsServer(SideListener);

impl OpsServer {
    /// Binds `addr` and serves the ops endpoints from `state` on a thread
    /// of its own.
    pub fn start(addr: SocketAddr, state: Arc<OpsState>) -> anyhow::Result<OpsServer> {
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr} for the ops endpoints"))?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = SideListener::start("ops", listener, runtime, state)?;
        tracing::info!(ops = %listener.local_addr(), "ops endpoints listening (/livez, /readyz, /metrics)");
        Ok(OpsServer(listener))
    }

    /// The bound address (with the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
    }

    /// Stops the listener and joins its thread.
    pub fn shutdown(self) {
        self.0.shutdown();
    }
}

impl Handler for OpsState {
    fn handle(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
    ) -> impl Future<Output = OpsResponse> + Send {
        std::future::ready(answer(&self, &req))
    }
}

/// A response of the ops listener.
type OpsResponse = SideResponse;

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
