//! The one place where failures become HTTP status codes. Every error a
//! request can meet is a [`RequestError`] variant; [`RequestError::status`]
//! decides its status and [`RequestError::client_message`] its short body.
//! Details (trap messages, guest backtraces) go to the log, not the client.

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
            RequestError::BadBody(_) => StatusCode::BAD_REQUEST,
            RequestError::Deadline { .. } => StatusCode::GATEWAY_TIMEOUT,
            RequestError::Trap { .. } | RequestError::BadResponse { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            RequestError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The short body the client gets.
    pub fn client_message(&self) -> &'static str {
        match self {
            RequestError::NoRoute { .. } => "not found\n",
            RequestError::BodyTooLarge { .. } => "request body too large\n",
            RequestError::BadBody(_) => "bad request body\n",
            RequestError::Deadline { .. } => "handler timed out\n",
            RequestError::Trap { .. } => "handler failed\n",
            RequestError::BadResponse { .. } => "handler returned a malformed response\n",
            RequestError::Overloaded { .. } => "server busy, try again\n",
        }
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
}
