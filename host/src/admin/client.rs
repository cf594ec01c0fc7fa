//! A small blocking client of the admin API, used by `percore deploy`,
//! `routes`, `rollback` and `undeploy` (and by the integration tests). One
//! request per connection; uploads announce themselves with
//! `Expect: 100-continue`, so a refused upload (401, 413) is answered before
//! its bytes are sent.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{API_HEADER, AdminToken};
use crate::config::RouteOptions;
use crate::registry::{RouteInfo, RouteList};

/// How long the client waits for the host; compiles of large components
/// take seconds.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The admin API could not be reached.
    #[error(
        "cannot reach the admin API at {addr}: {error} (is the host running with --admin {addr}?)"
    )]
    Connect {
        /// The address.
        addr: String,
        /// The error: part of the message, not a source, so that a report
        /// of the error chain does not print it twice.
        error: std::io::Error,
    },
    /// Something answered that is not a percore admin API (say, the
    /// host's application port).
    #[error(
        "{addr} is not a percore admin API (it answered HTTP {status} without the `{API_HEADER}` header): give the address the host's admin API listens on (its --admin, e.g. 127.0.0.1:9090) with --admin or PERCORE_ADMIN, not its --listen address"
    )]
    NotAdmin {
        /// The address.
        addr: String,
        /// The status it answered with.
        status: u16,
    },
    /// The connection failed mid-request, or the answer was not HTTP.
    #[error("talking to the admin API at {addr} failed: {detail}")]
    Protocol {
        /// The address.
        addr: String,
        /// What went wrong.
        detail: String,
    },
    /// The host's answer is not the record expected.
    #[error("the admin API at {addr} answered with an unexpected body: {detail}")]
    Unexpected {
        /// The address.
        addr: String,
        /// What did not parse.
        detail: String,
    },
    /// The host refused the request.
    #[error("{message} (HTTP {status})")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The host's explanation.
        message: String,
    },
}

/// A client of one host's admin API.
#[derive(Clone, Debug)]
pub struct AdminClient {
    addr: String,
    token: Option<AdminToken>,
}

/// A raw answer: status and JSON body.
#[derive(Clone, Debug)]
pub struct AdminAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body (`null` when the body was not JSON).
    pub body: serde_json::Value,
}

impl AdminClient {
    /// A client of the admin API at `url` (`http://HOST:PORT`, or
    /// `HOST:PORT`), sending `token` (none: the request is unauthenticated,
    /// for tests).
    pub fn new(url: &str, token: Option<AdminToken>) -> AdminClient {
        let addr = url
            .strip_prefix("http://")
            .unwrap_or(url)
            .trim_end_matches('/')
            .to_owned();
        AdminClient { addr, token }
    }

    /// A client of the admin API listening on `addr`.
    pub fn at(addr: SocketAddr, token: Option<AdminToken>) -> AdminClient {
        AdminClient::new(&addr.to_string(), token)
    }

    /// `GET /v1/routes`.
    pub fn routes(&self) -> Result<RouteList, ClientError> {
        self.call_typed("GET", "/v1/routes", &[])
    }

    /// `GET /v1/routes/PREFIX`.
    pub fn route(&self, prefix: &str) -> Result<RouteInfo, ClientError> {
        self.call_typed("GET", &route_path("/v1/routes", prefix), &[])
    }

    /// `PUT /v1/routes/PREFIX?OPTIONS` with the component's bytes.
    pub fn deploy(
        &self,
        prefix: &str,
        wasm: &[u8],
        options: &RouteOptions,
    ) -> Result<RouteInfo, ClientError> {
        let path = deploy_path(prefix, options);
        self.call_typed("PUT", &path, wasm)
    }

    /// `PUT /v1/routes/PREFIX?OPTIONS` with `{"component": REFERENCE}`:
    /// the host pulls the component from its registry.
    pub fn deploy_reference(
        &self,
        prefix: &str,
        reference: &str,
        options: &RouteOptions,
    ) -> Result<RouteInfo, ClientError> {
        let path = deploy_path(prefix, options);
        let body = serde_json::to_vec(&super::api::DeployRequest {
            component: reference.to_owned(),
        })
        .expect("a deploy request serialises");
        let value = self.call_with("PUT", &path, &body, "application/json")?;
        serde_json::from_value(value).map_err(|e| ClientError::Unexpected {
            addr: self.addr.clone(),
            detail: e.to_string(),
        })
    }

    /// `POST /v1/rollback/PREFIX`.
    pub fn rollback(&self, prefix: &str) -> Result<RouteInfo, ClientError> {
        self.rollback_to(prefix, None)
    }

    /// `POST /v1/rollback/PREFIX?to=HASH`: serves the version `to` (the
    /// start of its SHA-256) of the route's history, or without `to` the
    /// previous version.
    pub fn rollback_to(&self, prefix: &str, to: Option<&str>) -> Result<RouteInfo, ClientError> {
        let mut path = route_path("/v1/rollback", prefix);
        if let Some(to) = to {
            path.push('?');
            path.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .append_pair("to", to)
                    .finish(),
            );
        }
        self.call_typed("POST", &path, &[])
    }

    /// `DELETE /v1/routes/PREFIX`.
    pub fn undeploy(&self, prefix: &str) -> Result<RouteInfo, ClientError> {
        self.call_typed("DELETE", &route_path("/v1/routes", prefix), &[])
    }

    /// [`AdminClient::call`], the answer read as a `T`.
    fn call_typed<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<T, ClientError> {
        let value = self.call(method, path, body)?;
        serde_json::from_value(value).map_err(|e| ClientError::Unexpected {
            addr: self.addr.clone(),
            detail: e.to_string(),
        })
    }

    /// Sends a request and turns a non-2xx answer into
    /// [`ClientError::Refused`].
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<serde_json::Value, ClientError> {
        self.call_with(method, path, body, "application/wasm")
    }

    /// [`AdminClient::call`] with a body of `content_type`.
    fn call_with(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        content_type: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let answer = self.request_with(method, path, body, content_type)?;
        if (200..300).contains(&answer.status) {
            Ok(answer.body)
        } else {
            let message = answer.body["error"]
                .as_str()
                .map_or_else(|| answer.body.to_string(), str::to_owned);
            Err(ClientError::Refused {
                status: answer.status,
                message,
            })
        }
    }

    /// Sends one request and returns the answer, whatever its status.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<AdminAnswer, ClientError> {
        self.request_with(method, path, body, "application/wasm")
    }

    /// [`AdminClient::request`] with a body of `content_type`.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        content_type: &str,
    ) -> Result<AdminAnswer, ClientError> {
        let protocol = |detail: String| ClientError::Protocol {
            addr: self.addr.clone(),
            detail,
        };
        let connect = |error| ClientError::Connect {
            addr: self.addr.clone(),
            error,
        };
        let target = self
            .addr
            .to_socket_addrs()
            .map_err(connect)?
            .next()
            .ok_or_else(|| connect(std::io::ErrorKind::NotFound.into()))?;
        let mut stream =
            TcpStream::connect_timeout(&target, Duration::from_secs(10)).map_err(connect)?;
        stream
            .set_read_timeout(Some(TIMEOUT))
            .map_err(|e| protocol(e.to_string()))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {}\r\n", token.expose()));
        }
        if !body.is_empty() {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nExpect: 100-continue\r\n"
            ));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .map_err(|e| protocol(format!("sending the request: {e}")))?;
        let mut received = Vec::new();
        if !body.is_empty() {
            // Wait for `100 Continue` (or a final answer, when the upload is
            // refused); older servers may send neither, so go ahead after
            // a second.
            stream
                .set_read_timeout(Some(Duration::from_secs(1)))
                .map_err(|e| protocol(e.to_string()))?;
            let mut go_ahead = true;
            loop {
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        received.extend_from_slice(&chunk[..n]);
                        if let Some(end) = find(&received, b"\r\n\r\n") {
                            if received.starts_with(b"HTTP/1.1 100") {
                                received.drain(..end + 4);
                            } else {
                                go_ahead = false;
                            }
                            break;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break;
                    }
                    Err(e) => return Err(protocol(format!("reading the answer: {e}"))),
                }
            }
            stream
                .set_read_timeout(Some(TIMEOUT))
                .map_err(|e| protocol(e.to_string()))?;
            if go_ahead {
                stream
                    .write_all(body)
                    .map_err(|e| protocol(format!("sending the upload: {e}")))?;
            }
        }
        stream
            .read_to_end(&mut received)
            .map_err(|e| protocol(format!("reading the answer: {e}")))?;
        let end = find(&received, b"\r\n\r\n")
            .ok_or_else(|| protocol("the answer has no complete HTTP head".into()))?;
        let head = String::from_utf8_lossy(&received[..end]);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| protocol(format!("bad status line in {head:?}")))?;
        let from_admin = head.lines().skip(1).any(|line| {
            line.split_once(':')
                .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case(API_HEADER))
        });
        if !from_admin {
            return Err(ClientError::NotAdmin {
                addr: self.addr.clone(),
                status,
            });
        }
        let body = serde_json::from_slice(&received[end + 4..]).unwrap_or(serde_json::Value::Null);
        Ok(AdminAnswer { status, body })
    }
}

/// `base` followed by the route `prefix` (`/` → `base/`).
fn route_path(base: &str, prefix: &str) -> String {
    format!("{base}/{}", prefix.trim_start_matches('/'))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `/v1/routes/PREFIX`, with `?OPTIONS` when any option is set: where a
/// deploy goes, with the bytes or with a reference.
fn deploy_path(prefix: &str, options: &RouteOptions) -> String {
    let path = route_path("/v1/routes", prefix);
    match options.to_query() {
        query if query.is_empty() => path,
        query => format!("{path}?{query}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(route_path("/v1/routes", "/"), "/v1/routes/");
        assert_eq!(route_path("/v1/routes", "/api/v1"), "/v1/routes/api/v1");
        assert_eq!(AdminClient::new("http://h:1/", None).addr, "h:1");
    }
}
