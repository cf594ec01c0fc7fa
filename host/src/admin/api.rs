//! The admin API's HTTP side. Every request needs
//! `Authorization: Bearer <token>`; without it the answer is 401 and nothing
//! else happens (the body is not even read).
//!
//! | request | does | answer |
//! | --- | --- | --- |
//! | `GET /v1/routes` | list the routes | `{"routes": [route...], "restore_errors": [...], "cache": {"hits", "misses"} or null}` |
//! | `GET /v1/routes/PREFIX` | one route | `route` |
//! | `PUT /v1/routes/PREFIX?OPTIONS` | deploy the body (a `.wasm` component) to `/PREFIX` | `route` |
//! | `PUT /v1/routes/PREFIX?OPTIONS` with `Content-Type: application/json` and `{"component": "oci://..."}` | pull the component from its registry and deploy it | `route` |
//! | `POST /v1/rollback/PREFIX` | serve the previous version again (the one that served before the current one) | `route` |
//! | `POST /v1/rollback/PREFIX?to=HASH` | serve the version of the route's history whose SHA-256 starts with `HASH` (back or forward) | `route` |
//! | `DELETE /v1/routes/PREFIX` | remove the route | `route` (as it was) |
//!
//! `PREFIX` is the route without its leading `/` (`/v1/routes/` is the route
//! `/`). `OPTIONS`: `isolation=request|core`, `deadline_ms`,
//! `max_memory_bytes`, `max_request_body_bytes`, `max_response_bytes`.
//! The query holds only route options; what to deploy is the body: the
//! component's bytes, or (as JSON, [`DeployRequest`]) an `oci://`
//! reference that the host pulls with its own credentials into its state
//! directory, a tag resolved to a digest now. A
//! `route` is `{"prefix", "version": {"hash", "size", "deployed_at",
//! "oci": {"reference", "digest"} (pulled versions only), "options":
//! {...} (as deployed)}, "isolation", "limits": {...}, "history":
//! [version...]}` (history: the version that served last first), and
//! `"unchanged": true` in the answer to a deploy of the version already
//! serving. Errors are `{"error": "what went wrong and what to do"}` with
//! 400 (invalid upload, option or reference; an artifact that is not a
//! component or is not in the registry), 401, 404 (no such route or version),
//! 405, 409 (nothing to roll back to), 413 (upload over `max_upload_bytes`), 500, or 502 (the
//! registry cannot be reached, refuses our credentials, or sends bytes
//! that do not match their digest).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::AdminToken;
use crate::config::RouteOptions;
use crate::registry::{Registry, RegistryError};

/// The JSON body of a deploy by reference (`Content-Type:
/// application/json`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// `oci://REGISTRY/REPO:TAG` or `oci://REGISTRY/REPO@sha256:...`.
    pub component: String,
}

/// The query of `POST /v1/rollback/PREFIX`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackQuery {
    /// The version to serve (the start of its SHA-256, at least 4 hex
    /// digits); without it, the one that served last before the current.
    to: Option<String>,
}

/// The admin API's state.
pub struct AdminApi {
    token: AdminToken,
    registry: Arc<Registry>,
    max_upload_bytes: u64,
}

/// An admin response.
pub type AdminResponse = hyper::Response<Full<Bytes>>;

/// A failed admin request: status and message.
#[derive(Debug)]
struct Failure(StatusCode, String);

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        let status = StatusCode::from_u16(e.status()).expect("valid status");
        if status.is_server_error() {
            tracing::error!("admin: {e}");
        }
        Failure(status, e.to_string())
    }
}

impl AdminApi {
    /// The API for `registry`, guarded by `token`.
    pub fn new(token: AdminToken, registry: Arc<Registry>, max_upload_bytes: u64) -> Self {
        AdminApi {
            token,
            registry,
            max_upload_bytes,
        }
    }

    /// Answers one request.
    async fn answer(self: Arc<Self>, req: hyper::Request<Incoming>) -> AdminResponse {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let result = self.dispatch(req).await;
        match result {
            Ok(json) => respond(StatusCode::OK, json),
            Err(Failure(status, message)) => {
                tracing::info!(%method, %path, status = status.as_u16(), "admin: {message}");
                let mut response = respond(status, serde_json::json!({ "error": message }));
                if status == StatusCode::UNAUTHORIZED {
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"percore admin\""),
                    );
                }
                response
            }
        }
    }

    async fn dispatch(
        self: &Arc<Self>,
        req: hyper::Request<Incoming>,
    ) -> Result<serde_json::Value, Failure> {
        self.authorize(&req)?;
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        if path == "/v1/routes" {
            return match method {
                Method::GET => {
                    let registry = self.registry.clone();
                    json(blocking(move || Ok(registry.list())).await?)
                }
                _ => Err(not_allowed(&method, &path, "GET")),
            };
        }
        if let Some(rest) = path.strip_prefix("/v1/routes/") {
            let prefix = crate::router::normalize_prefix(&format!("/{rest}")).to_owned();
            let registry = self.registry.clone();
            return match method {
                Method::GET => json(blocking(move || Ok(registry.get(&prefix)?)).await?),
                Method::DELETE => json(blocking(move || Ok(registry.undeploy(&prefix)?)).await?),
                Method::PUT => {
                    let options = RouteOptions::from_query(req.uri().query().unwrap_or_default())
                        .map_err(|e| Failure(StatusCode::BAD_REQUEST, e))?;
                    let by_reference = req
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.trim().starts_with("application/json"));
                    let body = self.read_upload(req).await?;
                    if by_reference {
                        let request: DeployRequest =
                            serde_json::from_slice(&body).map_err(|e| {
                                Failure(
                                    StatusCode::BAD_REQUEST,
                                    format!(
                                        "a JSON deploy body is {{\"component\": \"oci://REGISTRY/REPO:TAG\"}} ({e}); to upload a component, send its bytes as application/wasm"
                                    ),
                                )
                            })?;
                        json(
                            blocking(move || {
                                Ok(registry.deploy_oci(&prefix, &request.component, options)?)
                            })
                            .await?,
                        )
                    } else {
                        json(blocking(move || Ok(registry.deploy(&prefix, &body, options)?)).await?)
                    }
                }
                _ => Err(not_allowed(&method, &path, "GET, PUT or DELETE")),
            };
        }
        if let Some(rest) = path.strip_prefix("/v1/rollback/") {
            let prefix = crate::router::normalize_prefix(&format!("/{rest}")).to_owned();
            let registry = self.registry.clone();
            return match method {
                Method::POST => {
                    let query: RollbackQuery =
                        serde_urlencoded::from_str(req.uri().query().unwrap_or_default())
                            .map_err(|e| {
                                Failure(
                                    StatusCode::BAD_REQUEST,
                                    format!(
                                        "a rollback takes at most ?to=HASH (a version of the route's history) ({e})"
                                    ),
                                )
                            })?;
                    json(
                        blocking(move || Ok(registry.rollback(&prefix, query.to.as_deref())?))
                            .await?,
                    )
                }
                _ => Err(not_allowed(&method, &path, "POST")),
            };
        }
        Err(Failure(
            StatusCode::NOT_FOUND,
            format!(
                "no admin endpoint {path}: use GET /v1/routes, PUT|GET|DELETE /v1/routes/PREFIX or POST /v1/rollback/PREFIX"
            ),
        ))
    }

    fn authorize(&self, req: &hyper::Request<Incoming>) -> Result<(), Failure> {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => Err(Failure(
                StatusCode::UNAUTHORIZED,
                "missing admin token: send `Authorization: Bearer TOKEN` with the token the host was started with (its --admin-token-file or PERCORE_ADMIN_TOKEN)".into(),
            )),
            Some(token) if self.token.matches(token.trim()) => Ok(()),
            Some(_) => Err(Failure(
                StatusCode::UNAUTHORIZED,
                "wrong admin token: use the token the host was started with (its --admin-token-file or PERCORE_ADMIN_TOKEN)".into(),
            )),
        }
    }

    /// Reads the upload, up to `max_upload_bytes`.
    async fn read_upload(&self, req: hyper::Request<Incoming>) -> Result<Vec<u8>, Failure> {
        let limit = self.max_upload_bytes;
        let too_large = |size: Option<u64>| {
            Failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the upload{} is larger than this host's limit of {limit} bytes (max_upload_bytes); shrink the component (build with --release, strip debug info) or raise the limit",
                    size.map(|s| format!(" of {s} bytes")).unwrap_or_default()
                ),
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(too_large(declared));
        }
        let limited = http_body_util::Limited::new(req.into_body(), limit as usize);
        match limited.collect().await {
            Ok(body) => {
                let body = body.to_bytes();
                if body.is_empty() {
                    return Err(Failure(
                        StatusCode::BAD_REQUEST,
                        "the upload is empty: send the component's .wasm bytes as the request body"
                            .into(),
                    ));
                }
                Ok(body.into())
            }
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(None)),
            Err(e) => Err(Failure(
                StatusCode::BAD_REQUEST,
                format!("reading the upload failed: {e}"),
            )),
        }
    }
}

impl crate::side_listener::Handler for AdminApi {
    fn handle(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
    ) -> impl Future<Output = AdminResponse> + Send {
        self.answer(req)
    }
}

/// Runs `work` (which may compile) on the blocking pool, off the admin
/// thread and far from the workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the admin operation failed: {e}"),
        )
    })?
}

fn json(value: impl Serialize) -> Result<serde_json::Value, Failure> {
    Ok(serde_json::to_value(value).expect("admin answers serialise"))
}

fn not_allowed(method: &Method, path: &str, allowed: &str) -> Failure {
    Failure(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {path}; use {allowed}"),
    )
}

fn respond(status: StatusCode, body: serde_json::Value) -> AdminResponse {
    let mut text = serde_json::to_vec_pretty(&body).expect("JSON serialises");
    text.push(b'\n');
    let mut response = hyper::Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::HeaderName::from_static(super::API_HEADER),
        HeaderValue::from_static("admin"),
    );
    response
}
