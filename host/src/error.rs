//! The one place where failures become HTTP status codes. Every error a
//! request can meet is a [`RequestError`] variant; [`RequestError::status`]
//! decides its status and [`RequestError::client_message`] its short body.
//! Details (trap messages, guest backtraces) go to the log, not the client.
//!
//! Most answers go out through hyper ([`crate::http::error_response`]);
//! the few a connection sends before hyper has it (a connection over the
//! limit) are written raw, from [`RequestError::wire_response`]. A request
//! hyper cannot parse gets hyper's own automatic answer (400, 414 or 431)
//! and nothing else, then the connection closes.

use hyper::StatusCode;

/// Why a request did not get the guest's own response.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No route matches the path.
    #[error("no route matches {path}")]
    NoRoute {
        /// The request path.
        path: String,
    },
    /// The request body is larger than the route allows.
    #[error("request body larger than {limit} bytes for route {route}")]
    BodyTooLarge {
        /// The route prefix.
        route: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// Reading the request body failed (client went away, bad chunking).
    #[error("reading the request body failed: {0}")]
    BadBody(String),
    /// The request body made no progress for `http.request_body_timeout_ms`.
    #[error("the request body stalled after {received} bytes for {timeout_ms} ms")]
    BodyTimeout {
        /// Bytes received before it stalled.
        received: u64,
        /// The timeout.
        timeout_ms: u64,
    },
    /// A method the host does not serve (CONNECT: percore is no proxy).
    #[error("{method} is not implemented by this server")]
    MethodNotImplemented {
        /// The method.
        method: String,
    },
    /// A request target that is not a path (`*` for a method other than
    /// OPTIONS, or a bare authority).
    #[error("the request target {target:?} is not a path")]
    BadTarget {
        /// The target as sent.
        target: String,
    },
    /// The handler ran past its deadline and was interrupted.
    #[error("handler for route {route} ran past its {deadline_ms} ms deadline")]
    Deadline {
        /// The route prefix.
        route: String,
        /// The deadline in milliseconds.
        deadline_ms: u64,
    },
    /// The handler trapped (panic, `unreachable`, out of memory, stack overflow...).
    #[error("handler for route {route} failed: {detail}")]
    Trap {
        /// The route prefix.
        route: String,
        /// The trap and its wasm backtrace.
        detail: String,
    },
    /// The handler returned a response the host cannot send.
    #[error("handler for route {route} returned a malformed response: {why}")]
    BadResponse {
        /// The route prefix.
        route: String,
        /// What was wrong.
        why: String,
    },
    /// The worker is at its connection limit; the connection is answered
    /// and closed before any request is read.
    #[error("refused a connection: at the limit of {limit} connections per worker")]
    TooManyConnections {
        /// This worker's share of `http.max_connections`.
        limit: usize,
    },
    /// No instance could be created (the instance pool is exhausted).
    #[error("no instance available for route {route}: {detail}")]
    Overloaded {
        /// The route prefix.
        route: String,
        /// Why instantiation failed.
        detail: String,
    },
}

impl RequestError {
    /// The status code the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::NoRoute { .. } => StatusCode::NOT_FOUND,
            RequestError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::BadBody(_) | RequestError::BadTarget { .. } => StatusCode::BAD_REQUEST,
            RequestError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            RequestError::MethodNotImplemented { .. } => StatusCode::NOT_IMPLEMENTED,
            RequestError::Deadline { .. } => StatusCode::GATEWAY_TIMEOUT,
            RequestError::Trap { .. } | RequestError::BadResponse { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            RequestError::Overloaded { .. } | RequestError::TooManyConnections { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The short body the client gets.
    pub fn client_message(&self) -> &'static str {
        match self {
            RequestError::NoRoute { .. } => "not found\n",
            RequestError::BodyTooLarge { .. } => "request body too large\n",
            RequestError::BadBody(_) => "bad request body\n",
            RequestError::BodyTimeout { .. } => "request body timed out\n",
            RequestError::MethodNotImplemented { .. } => "method not implemented\n",
            RequestError::BadTarget { .. } => "bad request target\n",
            RequestError::Deadline { .. } => "handler timed out\n",
            RequestError::Trap { .. } => "handler failed\n",
            RequestError::BadResponse { .. } => "handler returned a malformed response\n",
            RequestError::Overloaded { .. } => "server busy, try again\n",
            RequestError::TooManyConnections { .. } => "too many connections, try again\n",
        }
    }

    /// The whole answer as bytes on the wire, for a connection that hyper
    /// does not serve: status line, `Server`, `Content-Type`,
    /// `Content-Length`, `Connection: close`, and the short body.
    pub fn wire_response(&self) -> Vec<u8> {
        let status = self.status();
        let body = self.client_message();
        format!(
            "HTTP/1.1 {} {}\r\nserver: percore\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            status.as_str(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes()
    }

    /// Whether the connection is closed after this answer: when the rest
    /// of the request cannot be told apart from the next one (a body that
    /// stalled or broke off midway).
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            RequestError::BodyTimeout { .. } | RequestError::BadBody(_)
        )
    }

    /// Whether this error is the server's or the guest's fault (and so worth
    /// a warning in the log), rather than the client's.
    pub fn is_server_side(&self) -> bool {
        self.status().is_server_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let route = || "/r".to_string();
        assert_eq!(RequestError::NoRoute { path: "/x".into() }.status(), 404);
        assert_eq!(
            RequestError::BodyTooLarge {
                route: route(),
                limit: 1
            }
            .status(),
            413
        );
        assert_eq!(
            RequestError::Deadline {
                route: route(),
                deadline_ms: 1
            }
            .status(),
            504
        );
        assert_eq!(
            RequestError::Trap {
                route: route(),
                detail: String::new()
            }
            .status(),
            500
        );
        assert!(!RequestError::NoRoute { path: "/".into() }.is_server_side());
    }

    #[test]
    fn wire_responses_are_complete() {
        let wire = RequestError::TooManyConnections { limit: 1 }.wire_response();
        let text = String::from_utf8(wire).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(head.contains("server: percore"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains("connection: close"), "{head}");
    }
}
