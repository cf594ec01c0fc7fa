//! The host's configuration: one struct, [`Config`], onto which both the
//! `percore serve` flags and the TOML config file (`--config percore.toml`)
//! map. Flags override the file. Every field documents its unit and default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How much state a handler instance may carry from one request to the next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Every request gets a fresh instance: nothing a handler writes survives
    /// its request. The default.
    #[default]
    Request,
    /// Each worker (core) reuses its instance across requests, for speed; an
    /// instance that trapped is discarded. Workers never share instances.
    Core,
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Isolation::Request => "request",
            Isolation::Core => "core",
        })
    }
}

/// Limits applied to every call of a handler. Set globally (`[limits]` in the
/// config file) and overridable per route.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock deadline for one handler call, in milliseconds; past it the
    /// call is interrupted and the client gets 504. Default: 10 000 (10 s).
    pub deadline_ms: u64,
    /// Largest linear memory one instance may grow to, in bytes; a `memory.grow`
    /// beyond it fails inside the guest. Default: 64 MiB.
    pub max_memory_bytes: u64,
    /// Largest request body passed to a handler, in bytes; larger bodies get
    /// 413. Default: 1 MiB.
    pub max_request_body_bytes: u64,
    /// Largest response body a handler may return from its memory, in bytes;
    /// larger ones get 500. (Bodies streamed from the shared dump are not
    /// counted.) Default: 16 MiB.
    pub max_response_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline_ms: 10_000,
            max_memory_bytes: 64 << 20,
            max_request_body_bytes: 1 << 20,
            max_response_bytes: 16 << 20,
        }
    }
}

impl Limits {
    /// The deadline as a [`Duration`].
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

/// Per-route overrides of [`Limits`]; `None` keeps the global value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitOverrides {
    /// Overrides [`Limits::deadline_ms`].
    pub deadline_ms: Option<u64>,
    /// Overrides [`Limits::max_memory_bytes`].
    pub max_memory_bytes: Option<u64>,
    /// Overrides [`Limits::max_request_body_bytes`].
    pub max_request_body_bytes: Option<u64>,
    /// Overrides [`Limits::max_response_bytes`].
    pub max_response_bytes: Option<u64>,
}

impl LimitOverrides {
    /// The global `limits` with these overrides applied.
    pub fn apply(&self, limits: &Limits) -> Limits {
        Limits {
            deadline_ms: self.deadline_ms.unwrap_or(limits.deadline_ms),
            max_memory_bytes: self.max_memory_bytes.unwrap_or(limits.max_memory_bytes),
            max_request_body_bytes: self
                .max_request_body_bytes
                .unwrap_or(limits.max_request_body_bytes),
            max_response_bytes: self.max_response_bytes.unwrap_or(limits.max_response_bytes),
        }
    }
}

/// Where a route's component comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A `.wasm` file on disk.
    File(PathBuf),
    /// A component built into the `percore` binary (the demo guests).
    Embedded {
        /// A name for logs.
        name: &'static str,
        /// The component's bytes.
        bytes: &'static [u8],
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Embedded { name, .. } => write!(f, "<built-in {name}>"),
        }
    }
}

/// One route: requests whose path starts with `prefix` (at a segment
/// boundary) go to the component. The longest matching prefix wins.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix, starting with `/`, e.g. `/api` (matches `/api` and
    /// `/api/...`, not `/apix`). `/` matches every path.
    pub prefix: String,
    /// The component serving the route.
    #[serde(rename = "wasm", deserialize_with = "deserialize_source")]
    pub source: Source,
    /// Isolation for this route; default: the global `isolation`.
    #[serde(default)]
    pub isolation: Option<Isolation>,
    /// Limits for this route; default: the global `[limits]`.
    #[serde(default)]
    pub limits: LimitOverrides,
}

fn deserialize_source<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Source, D::Error> {
    PathBuf::deserialize(d).map(Source::File)
}

impl RouteConfig {
    /// A route from a file, with global isolation and limits.
    pub fn file(prefix: impl Into<String>, wasm: impl Into<PathBuf>) -> Self {
        RouteConfig {
            prefix: prefix.into(),
            source: Source::File(wasm.into()),
            isolation: None,
            limits: LimitOverrides::default(),
        }
    }

    /// Sets this route's isolation.
    pub fn with_isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = Some(isolation);
        self
    }

    /// Parses the `--route` flag: `/PREFIX=FILE.wasm[,key=value...]` where the
    /// keys are `isolation` (`request`|`core`), `deadline-ms`,
    /// `max-memory-bytes`, `max-request-body-bytes` and `max-response-bytes`.
    pub fn parse_flag(spec: &str) -> Result<Self, String> {
        let (prefix, rest) = spec
            .split_once('=')
            .ok_or_else(|| format!("route {spec:?} is not of the form /PREFIX=FILE.wasm"))?;
        let mut parts = rest.split(',');
        let file = parts.next().unwrap_or_default();
        if file.is_empty() {
            return Err(format!("route {spec:?} names no .wasm file"));
        }
        let mut route = RouteConfig::file(prefix, file);
        for option in parts {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| format!("route option {option:?} is not key=value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("route option {key} needs a number, got {value:?}"))
            };
            match key {
                "isolation" => {
                    route.isolation = Some(match value {
                        "request" => Isolation::Request,
                        "core" => Isolation::Core,
                        _ => {
                            return Err(format!(
                                "isolation must be request or core, got {value:?}"
                            ));
                        }
                    })
                }
                "deadline-ms" => route.limits.deadline_ms = Some(number()?),
                "max-memory-bytes" => route.limits.max_memory_bytes = Some(number()?),
                "max-request-body-bytes" => route.limits.max_request_body_bytes = Some(number()?),
                "max-response-bytes" => route.limits.max_response_bytes = Some(number()?),
                _ => return Err(format!("unknown route option {key:?}")),
            }
        }
        crate::router::validate_prefix(&route.prefix)?;
        Ok(route)
    }
}

/// Limits on clients, applied by the HTTP layer of every worker.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Most header fields in one request; more get 431. Default: 100.
    pub max_headers: usize,
    /// Largest request head (request line and headers), in bytes; larger get
    /// 431. Default: 16 KiB.
    pub max_header_bytes: usize,
    /// Time a client has to send a complete request head, in milliseconds;
    /// also bounds how long an idle keep-alive connection is kept. Default:
    /// 30 000 (30 s).
    pub header_read_timeout_ms: u64,
    /// How long shutdown waits for in-flight requests, in milliseconds.
    /// Default: 30 000 (30 s).
    pub shutdown_grace_ms: u64,
    /// Most open client connections, split evenly across the workers; a
    /// connection beyond it gets `503` and is closed. Default: 100 000.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_headers: 100,
            max_header_bytes: 16 << 10,
            header_read_timeout_ms: 30_000,
            shutdown_grace_ms: 30_000,
            max_connections: 100_000,
        }
    }
}

/// Everything `percore serve` needs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on. Default: `127.0.0.1:8080`. Port 0 picks a free
    /// port (see [`crate::RunningServer::local_addr`]).
    pub listen: SocketAddr,
    /// Number of workers, each a thread with its own runtime, listener and
    /// instances. Default: one per core.
    pub workers: Option<usize>,
    /// Default isolation of routes. Default: `request`.
    pub isolation: Isolation,
    /// The routes (`[[route]]` tables in the config file).
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// Default limits of routes.
    pub limits: Limits,
    /// Client limits.
    pub http: HttpConfig,
    /// Directory of a title index built by `percore index`, shared read-only
    /// by every worker. Default: none (guests that import `wiki` are refused).
    pub index: Option<PathBuf>,
    /// Most handler instances alive at once across all workers; the pooling
    /// allocator reserves address space (not memory) for this many up front.
    /// Requests beyond it get 503. Default: 1000.
    pub max_instances: u32,
    /// Address of the admin API (deploy, list, roll back, remove routes; see
    /// [`crate::admin`]). Default: none (no admin API). Keep it on loopback:
    /// anyone holding the token can run code on this host.
    pub admin: Option<SocketAddr>,
    /// File holding the admin API's bearer token (surrounding whitespace is
    /// ignored). Default: none, in which case the token comes from the
    /// `PERCORE_ADMIN_TOKEN` environment variable; with neither, `admin`
    /// cannot be enabled. Never taken from the command line.
    pub admin_token_file: Option<PathBuf>,
    /// State directory: deployed components (content-addressed), the route
    /// table, and the cache of compiled components. Routes found there are
    /// restored at start (configured routes override the same prefix).
    /// Default: none (deploys last until the process exits, every start
    /// compiles).
    pub state: Option<PathBuf>,
    /// Largest component the admin API accepts, in bytes; larger uploads get
    /// 413. Default: 64 MiB.
    pub max_upload_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: None,
            isolation: Isolation::default(),
            routes: Vec::new(),
            limits: Limits::default(),
            http: HttpConfig::default(),
            index: None,
            max_instances: 1000,
            admin: None,
            admin_token_file: None,
            state: None,
            max_upload_bytes: 64 << 20,
        }
    }
}

impl Config {
    /// Reads a TOML config file. Relative `wasm` and `index` paths are taken
    /// relative to the file's directory.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        let mut config: Config = toml::from_str(&text)
            .map_err(|e| format!("config file {} is invalid: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for route in &mut config.routes {
            crate::router::validate_prefix(&route.prefix)
                .map_err(|e| format!("config file {}: {e}", path.display()))?;
            if let Source::File(file) = &mut route.source
                && file.is_relative()
            {
                *file = base.join(&*file);
            }
        }
        for path in [
            &mut config.index,
            &mut config.state,
            &mut config.admin_token_file,
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        Ok(config)
    }

    /// Adds `route`, replacing a route with the same prefix.
    pub fn set_route(&mut self, route: RouteConfig) {
        self.routes.retain(|r| r.prefix != route.prefix);
        self.routes.push(route);
    }

    /// The number of workers to start.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_flag_with_options() {
        let r = RouteConfig::parse_flag("/api=h.wasm,isolation=core,deadline-ms=50").unwrap();
        assert_eq!(r.prefix, "/api");
        assert_eq!(r.source, Source::File("h.wasm".into()));
        assert_eq!(r.isolation, Some(Isolation::Core));
        assert_eq!(r.limits.deadline_ms, Some(50));
        assert!(RouteConfig::parse_flag("/api").is_err());
        assert!(RouteConfig::parse_flag("api=h.wasm").is_err());
        assert!(RouteConfig::parse_flag("/a=h.wasm,isolation=none").is_err());
        assert!(RouteConfig::parse_flag("/a=h.wasm,colour=red").is_err());
    }

    #[test]
    fn toml_file() {
        let dir = std::env::temp_dir().join(format!("percore-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("percore.toml");
        std::fs::write(
            &file,
            r#"
            listen = "127.0.0.1:9000"
            workers = 3
            isolation = "core"
            [limits]
            deadline_ms = 250
            [[route]]
            prefix = "/"
            wasm = "hello.wasm"
            [[route]]
            prefix = "/slow"
            wasm = "/abs/slow.wasm"
            isolation = "request"
            limits = { deadline_ms = 5000 }
            "#,
        )
        .unwrap();
        let c = Config::from_file(&file).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.worker_count(), 3);
        assert_eq!(c.isolation, Isolation::Core);
        assert_eq!(c.limits.deadline_ms, 250);
        assert_eq!(c.routes[0].source, Source::File(dir.join("hello.wasm")));
        assert_eq!(c.routes[1].limits.apply(&c.limits).deadline_ms, 5000);
        std::fs::write(&file, "listen = 5").unwrap();
        let err = Config::from_file(&file).unwrap_err();
        assert!(err.contains("percore.toml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
