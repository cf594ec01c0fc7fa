//! The admin API: deploy, list, roll back and remove routes of a running
//! host, over HTTP/1.1 on a listener of its own (`--admin ADDR`), with a
//! bearer token.
//!
//! | module | owns |
//! | --- | --- |
//! | this one | [`AdminServer`] (the listener's thread) and [`AdminToken`] |
//! | [`api`] | the HTTP side: authentication, upload cap, endpoints, JSON |
//! | [`client`] | the client `percore deploy`/`routes`/`rollback`/`undeploy` use |
//!
//! The routes themselves are the [`Registry`]'s: the API only calls it.
//! The admin listener runs on its own thread and current-thread runtime;
//! changes run on that runtime's blocking pool, and compiles on the
//! engine's compile pool, both at a lower OS priority
//! ([`crate::engine::COMPILE_NICE`]) so that the workers keep their cores.
//! Nothing here runs on a worker thread.

pub mod api;
pub mod client;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use crate::registry::Registry;
use crate::side_listener::SideListener;

/// The environment variable that holds the admin token when no token file
/// is given (for the host and for the CLI).
pub const TOKEN_ENV: &str = "PERCORE_ADMIN_TOKEN";

/// The header every answer of the admin API carries (`percore-api:
/// admin`), by which the client tells the admin API from anything else
/// listening at the address it was given (the application port, say).
pub const API_HEADER: &str = "percore-api";

/// Fewest bytes an admin token may have.
pub const MIN_TOKEN_LEN: usize = 16;

/// The admin API's bearer token. Its `Debug` output never shows it, so it
/// cannot end up in a log.
#[derive(Clone)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// The host's token: read from `file` when given, else from
    /// [`TOKEN_ENV`]. Surrounding whitespace (a trailing newline) is
    /// ignored.
    pub fn load(file: Option<&Path>) -> anyhow::Result<AdminToken> {
        Self::read(file, || {
            format!(
                "the admin API needs a token: write one to a file and pass --admin-token-file FILE, or set {TOKEN_ENV} (e.g. `head -c 32 /dev/urandom | base64 > admin.token`)"
            )
        })
    }

    /// The token a client sends: the host's own, from `file` or
    /// [`TOKEN_ENV`], as [`AdminToken::load`] reads it; only the message
    /// for a missing token differs (a client must not make a new one).
    pub fn load_for_client(file: Option<&Path>) -> anyhow::Result<AdminToken> {
        Self::read(file, || {
            format!(
                "the admin API needs the host's token: pass --admin-token-file FILE with the file the host was started with, or set {TOKEN_ENV} to the token the host uses"
            )
        })
    }

    fn read(file: Option<&Path>, missing: impl FnOnce() -> String) -> anyhow::Result<AdminToken> {
        let (token, from) = match file {
            Some(file) => (
                std::fs::read_to_string(file).with_context(|| {
                    format!("cannot read the admin token file {}", file.display())
                })?,
                file.display().to_string(),
            ),
            None => match std::env::var(TOKEN_ENV) {
                Ok(token) => (token, format!("${TOKEN_ENV}")),
                Err(_) => anyhow::bail!(missing()),
            },
        };
        AdminToken::new(token.trim()).with_context(|| format!("the admin token in {from}"))
    }

    /// A token from its text, which must have at least [`MIN_TOKEN_LEN`]
    /// bytes and no whitespace or control characters.
    pub fn new(token: &str) -> anyhow::Result<AdminToken> {
        anyhow::ensure!(
            token.len() >= MIN_TOKEN_LEN,
            "is too short: use at least {MIN_TOKEN_LEN} random characters (e.g. `head -c 32 /dev/urandom | base64`)"
        );
        anyhow::ensure!(
            token.bytes().all(|b| b.is_ascii_graphic()),
            "must be printable ASCII without spaces"
        );
        Ok(AdminToken(token.to_owned()))
    }

    /// Whether `candidate` is this token, in time that does not depend on
    /// where they differ.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }

    /// The token's text (for the client's `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The running admin listener; stopped by [`AdminServer::shutdown`] (or on
/// drop).
pub struct AdminServer(SideListener);

impl AdminServer {
    /// Binds `addr` and serves the admin API for `registry` on a thread of
    /// its own.
    pub fn start(
        addr: SocketAddr,
        token: AdminToken,
        registry: Arc<Registry>,
        max_upload_bytes: u64,
    ) -> anyhow::Result<AdminServer> {
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr} for the admin API"))?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        if !local_addr.ip().is_loopback() {
            tracing::warn!(
                admin = %local_addr,
                "the admin API listens beyond loopback: anyone who can reach it and holds the token can run code on this host"
            );
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("percore-admin-compile")
            .max_blocking_threads(4)
            .on_thread_start(crate::engine::lower_priority)
            .build()?;
        let api = Arc::new(api::AdminApi::new(token, registry, max_upload_bytes));
        let listener = SideListener::start("admin", listener, runtime, api)?;
        tracing::info!(admin = %local_addr, "admin API listening");
        Ok(AdminServer(listener))
    }

    /// The bound address (with the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
    }

    /// Stops accepting, lets requests in flight finish, and joins the thread.
    pub fn shutdown(self) {
        self.0.shutdown();
    }
}

/// Parses `--admin`: `HOST:PORT`, or a bare port, which means loopback.
pub fn parse_admin_addr(value: &str) -> Result<SocketAddr, String> {
    crate::config::parse_local_addr(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(AdminToken::new("short").is_err());
        assert!(AdminToken::new("has a space in it!!").is_err());
        let token = AdminToken::new("0123456789abcdef").unwrap();
        assert!(token.matches("0123456789abcdef"));
        assert!(!token.matches("0123456789abcdeg"));
        assert!(!token.matches("0123456789abcdef0"));
        assert!(!token.matches(""));
        assert!(!format!("{token:?}").contains("0123"));
    }

    #[test]
    fn admin_addresses() {
        assert_eq!(
            parse_admin_addr("9090").unwrap(),
            "127.0.0.1:9090".parse().unwrap()
        );
        assert_eq!(
            parse_admin_addr("[::1]:1").unwrap(),
            "[::1]:1".parse().unwrap()
        );
        assert!(parse_admin_addr("localhost").is_err());
    }
}
