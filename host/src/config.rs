//! The host's configuration: one struct, [`Config`], onto which both the
//! `percore serve` flags and the TOML config file (`--config percore.toml`)
//! map. Flags override the file. Every field documents its unit and default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::oci::{InsecureRegistry, OciReference};

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
    /// Largest response a handler may return from its memory, in bytes:
    /// its body plus its header names and values; larger ones get 500.
    /// (Bodies streamed from the shared dump are not counted.) Default:
    /// 16 MiB.
    pub max_response_bytes: u64,
    /// Most header fields in a handler's response; more get 500. Default:
    /// 100.
    pub max_response_headers: u64,
    /// Most entries (streams, pollables, other WASI handles) one instance
    /// may hold in the host at once; past it the call that would make one
    /// fails inside the guest. Default: 1024.
    pub max_host_resources: u64,
    /// In `core` isolation, how many requests one instance serves before it
    /// is discarded and the next request gets a fresh one; 0 means no
    /// limit. Bounds how long state a guest keeps between requests can
    /// live. Default: 0.
    pub max_requests_per_instance: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline_ms: 10_000,
            max_memory_bytes: 64 << 20,
            max_request_body_bytes: 1 << 20,
            max_response_bytes: 16 << 20,
            max_response_headers: 100,
            max_host_resources: 1024,
            max_requests_per_instance: 0,
        }
    }
}

impl Limits {
    /// The deadline as a [`Duration`].
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

/// The options of one route: its isolation and its limits, each unset one
/// following the host's default. This is the one type every way of giving
/// route options parses into: the `[[route]]` tables of the config file,
/// the options of `--route`, the flags of `percore deploy`, the admin API's
/// query string, and the state directory's route table. The keys are
/// spelled in snake_case everywhere; the kebab-case spelling `--route`
/// used to take (`deadline-ms`) is accepted as an alias.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct RouteOptions {
    /// Isolation of the route [default: the host's].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    /// Overrides [`Limits::deadline_ms`]: per-request deadline, in
    /// milliseconds [default: the host's].
    #[arg(long, value_name = "MS")]
    #[serde(alias = "deadline-ms", skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Overrides [`Limits::max_memory_bytes`]: linear memory cap per
    /// instance, in bytes [default: the host's].
    #[arg(long, value_name = "BYTES")]
    #[serde(alias = "max-memory-bytes", skip_serializing_if = "Option::is_none")]
    pub max_memory_bytes: Option<u64>,
    /// Overrides [`Limits::max_request_body_bytes`]: request body cap, in
    /// bytes [default: the host's].
    #[arg(long, value_name = "BYTES")]
    #[serde(
        alias = "max-request-body-bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_request_body_bytes: Option<u64>,
    /// Overrides [`Limits::max_response_bytes`]: response body cap, in
    /// bytes [default: the host's].
    #[arg(long, value_name = "BYTES")]
    #[serde(alias = "max-response-bytes", skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    /// Overrides [`Limits::max_response_headers`]: most header fields in a
    /// response [default: the host's].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_response_headers: Option<u64>,
    /// Overrides [`Limits::max_host_resources`]: most host resources one
    /// instance holds [default: the host's].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_host_resources: Option<u64>,
    /// Overrides [`Limits::max_requests_per_instance`]: requests one `core`
    /// instance serves before it is replaced, 0 for no limit [default: the
    /// host's]. Also spelt `max_reuse` (`--max-reuse`), the name `wasi:http`
    /// hosts use for it.
    #[arg(long, value_name = "N", visible_alias = "max-reuse")]
    #[serde(
        alias = "max_reuse",
        alias = "max-reuse",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_requests_per_instance: Option<u64>,
    /// Origins the route's `wasi:http` guests may send requests to, as
    /// `http://HOST:PORT` (or `https://`), separated by spaces or `;` (a
    /// list in TOML); a request to any other origin fails with the
    /// `wasi:http` error `HTTP-request-denied` [default: none, so no
    /// outgoing requests].
    #[arg(long, value_name = "ORIGINS")]
    #[serde(alias = "allow-outbound", skip_serializing_if = "Option::is_none")]
    pub allow_outbound: Option<Origins>,
}

impl RouteOptions {
    /// The host's default `limits` with these overrides applied.
    pub fn limits(&self, defaults: &Limits) -> Limits {
        Limits {
            deadline_ms: self.deadline_ms.unwrap_or(defaults.deadline_ms),
            max_memory_bytes: self.max_memory_bytes.unwrap_or(defaults.max_memory_bytes),
            max_request_body_bytes: self
                .max_request_body_bytes
                .unwrap_or(defaults.max_request_body_bytes),
            max_response_bytes: self
                .max_response_bytes
                .unwrap_or(defaults.max_response_bytes),
            max_response_headers: self
                .max_response_headers
                .unwrap_or(defaults.max_response_headers),
            max_host_resources: self
                .max_host_resources
                .unwrap_or(defaults.max_host_resources),
            max_requests_per_instance: self
                .max_requests_per_instance
                .unwrap_or(defaults.max_requests_per_instance),
        }
    }

    /// Parses options in the form of a URL query string
    /// (`isolation=core&deadline_ms=50`): the admin API's query. The error
    /// names the option at fault.
    pub fn from_query(query: &str) -> Result<RouteOptions, String> {
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                format!("{inner}")
            } else {
                format!("option {path}: {inner}")
            }
        })
    }

    /// The options as a URL query string (without `?`; empty when none is
    /// set): the inverse of [`RouteOptions::from_query`].
    pub fn to_query(&self) -> String {
        serde_urlencoded::to_string(self).expect("route options serialise to a query")
    }

    /// Fills the options unset here from `older` (the config file's
    /// `limits = {...}` table, or an older state directory's record).
    fn fill_from(&mut self, older: RouteOptions) {
        let RouteOptions {
            isolation,
            deadline_ms,
            max_memory_bytes,
            max_request_body_bytes,
            max_response_bytes,
            max_response_headers,
            max_host_resources,
            max_requests_per_instance,
            allow_outbound,
        } = older;
        self.isolation = self.isolation.or(isolation);
        self.deadline_ms = self.deadline_ms.or(deadline_ms);
        self.max_memory_bytes = self.max_memory_bytes.or(max_memory_bytes);
        self.max_request_body_bytes = self.max_request_body_bytes.or(max_request_body_bytes);
        self.max_response_bytes = self.max_response_bytes.or(max_response_bytes);
        self.max_response_headers = self.max_response_headers.or(max_response_headers);
        self.max_host_resources = self.max_host_resources.or(max_host_resources);
        self.max_requests_per_instance =
            self.max_requests_per_instance.or(max_requests_per_instance);
        self.allow_outbound = self.allow_outbound.take().or(allow_outbound);
    }
}

/// The scheme of an [`Origin`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginScheme {
    /// `http://`, port 80 unless given.
    Http,
    /// `https://`, port 443 unless given.
    Https,
}

/// One origin a route may send requests to: scheme, host and port, all
/// three compared exactly (the host without regard to ASCII case).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The scheme.
    pub scheme: OriginScheme,
    /// The host name or address, lower-case; an IPv6 address in brackets.
    pub host: String,
    /// The port (the scheme's default when the origin named none).
    pub port: u16,
}

impl Origin {
    /// Whether a request to `uri` goes to this origin.
    pub fn matches(&self, uri: &hyper::Uri) -> bool {
        let scheme = match uri.scheme_str() {
            Some("http") => OriginScheme::Http,
            Some("https") => OriginScheme::Https,
            _ => return false,
        };
        let Some(authority) = uri.authority() else {
            return false;
        };
        let port = authority.port_u16().unwrap_or(match scheme {
            OriginScheme::Http => 80,
            OriginScheme::Https => 443,
        });
        scheme == self.scheme
            && port == self.port
            && authority.host().eq_ignore_ascii_case(&self.host)
    }
}

impl std::str::FromStr for Origin {
    type Err = String;

    fn from_str(text: &str) -> Result<Origin, String> {
        let bad = |why: &str| format!("origin {text:?} {why}; write it as http://HOST:PORT");
        let uri: hyper::Uri = text.parse().map_err(|_| bad("is not a URL"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => OriginScheme::Http,
            Some("https") => OriginScheme::Https,
            Some(_) => return Err(bad("has a scheme other than http or https")),
            None => return Err(bad("has no scheme")),
        };
        let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("has a user name"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("has a path: an origin is only a scheme, host and port"));
        }
        if authority.host().is_empty() {
            return Err(bad("has no host"));
        }
        // `Authority::port` is `None` for a port that is not a u16 too.
        let written_port = authority
            .as_str()
            .rsplit_once(':')
            .filter(|(_, port)| !port.contains(']'));
        if written_port.is_some() && authority.port_u16().is_none() {
            return Err(bad("has a port that is not a number from 0 to 65535"));
        }
        let port = authority.port_u16().unwrap_or(match scheme {
            OriginScheme::Http => 80,
            OriginScheme::Https => 443,
        });
        Ok(Origin {
            scheme,
            host: authority.host().to_ascii_lowercase(),
            port,
        })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            OriginScheme::Http => "http",
            OriginScheme::Https => "https",
        };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// The origins of a route's `allow_outbound` option. Written as one
/// string (origins separated by spaces or `;`) in flags and queries, and
/// as a string or a list of strings in TOML and JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origins(pub Vec<Origin>);

impl Origins {
    /// Whether a request to `uri` goes to one of these origins.
    pub fn allows(&self, uri: &hyper::Uri) -> bool {
        self.0.iter().any(|origin| origin.matches(uri))
    }
}

impl std::str::FromStr for Origins {
    type Err = String;

    fn from_str(text: &str) -> Result<Origins, String> {
        text.split(|c: char| c == ';' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Origins)
    }
}

impl std::fmt::Display for Origins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, origin) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{origin}")?;
        }
        Ok(())
    }
}

impl Serialize for Origins {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Origins {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Origins, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Origins;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("origins such as \"http://127.0.0.1:8080\", in a string or a list")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Origins, E> {
                text.parse().map_err(E::custom)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Origins, A::Error> {
                let mut origins = Vec::new();
                while let Some(text) = seq.next_element::<String>()? {
                    let more: Origins = text.parse().map_err(serde::de::Error::custom)?;
                    origins.extend(more.0);
                }
                Ok(Origins(origins))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Route options as older files spell them: the options at the top level
/// and, from before they were one type, limits in a nested `limits` table.
/// Read by the config file's `[[route]]` tables and the state directory's
/// route records; written as plain [`RouteOptions`].
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LegacyOptions {
    /// The options at the top level.
    #[serde(flatten)]
    options: RouteOptions,
    /// `limits = { deadline_ms = 100 }`, the older spelling.
    limits: Option<RouteOptions>,
}

impl LegacyOptions {
    /// The options, the nested table's filling what the top level leaves
    /// unset.
    pub(crate) fn into_options(self) -> RouteOptions {
        let mut options = self.options;
        if let Some(older) = self.limits {
            options.fill_from(older);
        }
        options
    }
}

/// Where a route's component comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A `.wasm` file on disk.
    File(PathBuf),
    /// A wasm artifact in an OCI registry, `oci://REGISTRY/REPO:TAG` or
    /// `oci://REGISTRY/REPO@sha256:...`, pulled into the state directory
    /// (see [`crate::oci`]).
    Oci(OciReference),
    /// A component built into the `percore` binary (the demo guests).
    Embedded {
        /// A name for logs.
        name: &'static str,
        /// The component's bytes.
        bytes: &'static [u8],
    },
}

impl Source {
    /// Parses where a component is, as every place that names one takes
    /// it (`--route`, `[[route]]`'s `wasm`, `percore deploy`): an
    /// `oci://` reference, else a file path.
    pub fn parse(text: &str) -> Result<Source, String> {
        if text.starts_with(crate::oci::SCHEME) {
            OciReference::parse(text)
                .map(Source::Oci)
                .map_err(|e| e.to_string())
        } else {
            Ok(Source::File(text.into()))
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Oci(reference) => write!(f, "{reference}"),
            Source::Embedded { name, .. } => write!(f, "<built-in {name}>"),
        }
    }
}

/// One route: requests whose path starts with `prefix` (at a segment
/// boundary) go to the component. The longest matching prefix wins.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawRoute")]
pub struct RouteConfig {
    /// Path prefix, starting with `/`, e.g. `/api` (matches `/api` and
    /// `/api/...`, not `/apix`). `/` matches every path.
    pub prefix: String,
    /// The component serving the route.
    pub source: Source,
    /// Isolation and limits of this route; unset ones follow the host's.
    pub options: RouteOptions,
}

/// A `[[route]]` table as written in the config file.
#[derive(Deserialize)]
struct RawRoute {
    prefix: String,
    /// A file, or an `oci://` reference.
    wasm: String,
    #[serde(flatten)]
    options: RouteOptions,
    /// `limits = { deadline_ms = 100 }`, the older spelling.
    limits: Option<RouteOptions>,
    /// Whatever else the table holds: refused, naming the keys.
    #[serde(flatten)]
    unknown: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

impl TryFrom<RawRoute> for RouteConfig {
    type Error = String;

    fn try_from(raw: RawRoute) -> Result<Self, String> {
        if let Some(key) = raw.unknown.keys().next() {
            return Err(format!(
                "route {}: unknown key `{key}` (a route takes prefix, wasm, and the route options: isolation, deadline_ms, max_memory_bytes, max_request_body_bytes, max_response_bytes, max_response_headers, max_host_resources, max_requests_per_instance, allow_outbound)",
                raw.prefix
            ));
        }
        let options = LegacyOptions {
            options: raw.options,
            limits: raw.limits,
        };
        let source = Source::parse(&raw.wasm).map_err(|e| format!("route {}: {e}", raw.prefix))?;
        Ok(RouteConfig {
            prefix: raw.prefix,
            source,
            options: options.into_options(),
        })
    }
}

impl RouteConfig {
    /// A route from a file, with the host's isolation and limits.
    pub fn file(prefix: impl Into<String>, wasm: impl Into<PathBuf>) -> Self {
        RouteConfig {
            prefix: prefix.into(),
            source: Source::File(wasm.into()),
            options: RouteOptions::default(),
        }
    }

    /// Sets this route's isolation.
    pub fn with_isolation(mut self, isolation: Isolation) -> Self {
        self.options.isolation = Some(isolation);
        self
    }

    /// Parses the `--route` flag: `/PREFIX=FILE.wasm[,key=value...]`, the
    /// keys those of [`RouteOptions`] (`isolation=core,deadline_ms=50`);
    /// `FILE.wasm` may be an `oci://` reference.
    pub fn parse_flag(spec: &str) -> Result<Self, String> {
        let (prefix, rest) = spec
            .split_once('=')
            .ok_or_else(|| format!("route {spec:?} is not of the form /PREFIX=FILE.wasm"))?;
        let (file, options) = rest.split_once(',').unwrap_or((rest, ""));
        if file.is_empty() {
            return Err(format!("route {spec:?} names no .wasm file"));
        }
        let options = RouteOptions::from_query(&options.replace(',', "&"))
            .map_err(|e| format!("route {spec:?}: {e}"))?;
        let prefix = crate::router::normalize_prefix(prefix);
        crate::router::validate_prefix(prefix)?;
        let source = Source::parse(file).map_err(|e| format!("route {spec:?}: {e}"))?;
        Ok(RouteConfig {
            prefix: prefix.to_owned(),
            source,
            options,
        })
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
    /// Longest a request body may make no progress, in milliseconds; then
    /// the client gets 408 and the connection is closed. Default: 30 000.
    pub request_body_timeout_ms: u64,
    /// Longest a client may accept no bytes of a response being sent, in
    /// milliseconds; then the connection is closed and what it held is
    /// freed. Default: 30 000.
    pub response_write_timeout_ms: u64,
    /// How long shutdown waits for in-flight requests, in milliseconds.
    /// Default: 30 000 (30 s).
    pub shutdown_grace_ms: u64,
    /// How long the host keeps serving after SIGTERM, in milliseconds,
    /// with `/readyz` answering 503 and every response carrying
    /// `Connection: close`, so that load balancers take it out of rotation
    /// before it stops accepting. Default: 5 000.
    pub drain_delay_ms: u64,
    /// Most open client connections, split evenly across the workers; a
    /// connection beyond it gets `503` and is closed. Default: 100 000.
    pub max_connections: usize,
}

impl HttpConfig {
    /// [`HttpConfig::request_body_timeout_ms`] as a [`Duration`].
    pub fn request_body_timeout(&self) -> Duration {
        Duration::from_millis(self.request_body_timeout_ms)
    }

    /// [`HttpConfig::response_write_timeout_ms`] as a [`Duration`].
    pub fn response_write_timeout(&self) -> Duration {
        Duration::from_millis(self.response_write_timeout_ms)
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_headers: 100,
            max_header_bytes: 16 << 10,
            header_read_timeout_ms: 30_000,
            request_body_timeout_ms: 30_000,
            response_write_timeout_ms: 30_000,
            shutdown_grace_ms: 30_000,
            drain_delay_ms: 5_000,
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
    /// The dump the index was built from, when it has moved since: the
    /// index records the dump's absolute path and reads it from there by
    /// default. It must be the same file (its size and fingerprint are
    /// checked). Default: the recorded path.
    pub dump: Option<PathBuf>,
    /// Most handler instances alive at once across all workers; the pooling
    /// allocator reserves address space (not memory) for this many up front.
    /// Each worker gets an equal share, which its routes share fairly (see
    /// the README's security section); requests beyond a route's share get
    /// 503. Default: 1000.
    pub max_instances: u32,
    /// Most linear memory all instances together may hold, in bytes, split
    /// evenly across the workers; an instance that would grow past its
    /// worker's share fails to grow (a trap in the guest, 500), one that
    /// cannot even start gets 503. Default: half of the machine's memory
    /// (of its cgroup's limit, when that is lower).
    pub max_guest_memory_bytes: Option<u64>,
    /// Most memory one compile of an uploaded component may use, in bytes:
    /// uploads compile in a child process with this limit, and one that
    /// needs more is refused. Default: 2 GiB.
    pub compile_memory_bytes: u64,
    /// Longest one compile of an uploaded component may take, in
    /// milliseconds; one that takes longer is stopped and refused. Default:
    /// 60 000.
    pub compile_timeout_ms: u64,
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
    /// 413. Also the largest component pulled from a registry. Default:
    /// 64 MiB.
    pub max_upload_bytes: u64,
    /// Address of the ops endpoints (`/livez`, `/readyz`, `/metrics`;
    /// unauthenticated): `HOST:PORT`, or a port on loopback. Per-route
    /// metrics are kept only when it is set. Default: none.
    #[serde(deserialize_with = "local_addr_option")]
    pub ops: Option<SocketAddr>,
    /// File the access log (one JSON line per request) is appended to; `-`
    /// for stdout. Default: none (no access log).
    pub access_log: Option<PathBuf>,
    /// Registries spoken to over plain HTTP instead of HTTPS, each `HOST`
    /// or `HOST:PORT` (`--insecure-registry`). Default: none.
    pub insecure_registries: Vec<InsecureRegistry>,
}

/// Parses a listening address: `HOST:PORT`, or a bare port, which means
/// loopback (`--admin`, `--ops`, the `ops` key).
pub fn parse_local_addr(value: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = value.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    value.parse().map_err(|_| {
        format!("{value:?} is not an address: give HOST:PORT (e.g. 127.0.0.1:9090) or a port")
    })
}

/// Reads an address key given as `"HOST:PORT"`, `"PORT"` or `PORT`.
fn local_addr_option<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Addr {
        Port(u16),
        Text(String),
    }
    match Addr::deserialize(deserializer)? {
        Addr::Port(port) => Ok(Some(SocketAddr::from(([127, 0, 0, 1], port)))),
        Addr::Text(text) => parse_local_addr(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
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
            dump: None,
            max_instances: 1000,
            max_guest_memory_bytes: None,
            compile_memory_bytes: 2 << 30,
            compile_timeout_ms: 60_000,
            admin: None,
            admin_token_file: None,
            state: None,
            max_upload_bytes: 64 << 20,
            ops: None,
            access_log: None,
            insecure_registries: Vec::new(),
        }
    }
}

/// Why a configuration cannot be used. Every message names the file or
/// flag involved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown or mistyped keys.
    #[error("config file {} is invalid: {detail}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation, with the line.
        detail: String,
    },
    /// A route's prefix is not a valid prefix.
    #[error("{origin}: {detail}")]
    BadPrefix {
        /// Where the route was given (the config file, or `--route`).
        origin: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Two routes have the same prefix.
    #[error(
        "{origin}: route {prefix} is given twice; give each prefix once (a --route flag replaces a route of the config file with the same prefix)"
    )]
    DuplicatePrefix {
        /// Where the routes were given.
        origin: String,
        /// The prefix.
        prefix: String,
    },
}

impl Config {
    /// Reads a TOML config file. Relative `wasm` and `index` paths are taken
    /// relative to the file's directory. A file that gives a prefix twice is
    /// refused.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let origin = format!("config file {}", path.display());
        for route in &mut config.routes {
            route.prefix = crate::router::normalize_prefix(&route.prefix).to_owned();
        }
        check_routes(&config.routes, &origin)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for route in &mut config.routes {
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

    /// Adds the routes of `--route` flags: each replaces a route of the
    /// config file with the same prefix. Flags that give a prefix twice
    /// are refused.
    pub fn add_flag_routes(&mut self, routes: Vec<RouteConfig>) -> Result<(), ConfigError> {
        check_routes(&routes, "--route")?;
        for route in routes {
            self.routes.retain(|r| r.prefix != route.prefix);
            self.routes.push(route);
        }
        Ok(())
    }

    /// The number of workers to start.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

/// Checks that every prefix of `routes` is valid and given once.
pub fn check_routes(routes: &[RouteConfig], origin: &str) -> Result<(), ConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    for route in routes {
        crate::router::validate_prefix(&route.prefix).map_err(|detail| ConfigError::BadPrefix {
            origin: origin.to_owned(),
            detail,
        })?;
        if !seen.insert(route.prefix.as_str()) {
            return Err(ConfigError::DuplicatePrefix {
                origin: origin.to_owned(),
                prefix: route.prefix.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_flag_with_options() {
        let r = RouteConfig::parse_flag("/api=h.wasm,isolation=core,deadline_ms=50").unwrap();
        assert_eq!(r.prefix, "/api");
        assert_eq!(r.source, Source::File("h.wasm".into()));
        assert_eq!(r.options.isolation, Some(Isolation::Core));
        assert_eq!(r.options.deadline_ms, Some(50));
        // The older kebab-case spelling still works.
        let old = RouteConfig::parse_flag("/api=h.wasm,isolation=core,deadline-ms=50").unwrap();
        assert_eq!(old, r);
        assert_eq!(
            RouteConfig::parse_flag("/=h.wasm").unwrap().options,
            RouteOptions::default()
        );
        assert_eq!(
            RouteConfig::parse_flag("/page/=h.wasm").unwrap().prefix,
            "/page"
        );
        assert_eq!(
            RouteConfig::parse_flag("/a=h.wasm,max-reuse=100")
                .unwrap()
                .options
                .max_requests_per_instance,
            Some(100)
        );
        let oci = RouteConfig::parse_flag("/o=oci://127.0.0.1:5000/h:1,isolation=core").unwrap();
        assert_eq!(oci.source.to_string(), "oci://127.0.0.1:5000/h:1");
        assert!(matches!(oci.source, Source::Oci(_)));
        let err = RouteConfig::parse_flag("/o=oci://h:1").unwrap_err();
        assert!(err.contains("oci://REGISTRY"), "{err}");
        assert!(RouteConfig::parse_flag("/api").is_err());
        assert!(RouteConfig::parse_flag("api=h.wasm").is_err());
        assert!(RouteConfig::parse_flag("/a=h.wasm,isolation=none").is_err());
        let err = RouteConfig::parse_flag("/a=h.wasm,colour=red").unwrap_err();
        assert!(err.contains("colour"), "{err}");
        let err = RouteConfig::parse_flag("/a=h.wasm,deadline_ms=soon").unwrap_err();
        assert!(err.contains("deadline_ms"), "{err}");
    }

    #[test]
    fn options_round_trip_through_a_query() {
        let options = RouteOptions {
            isolation: Some(Isolation::Core),
            deadline_ms: Some(50),
            max_response_bytes: Some(7),
            ..RouteOptions::default()
        };
        let query = options.to_query();
        assert_eq!(query, "isolation=core&deadline_ms=50&max_response_bytes=7");
        assert_eq!(RouteOptions::from_query(&query).unwrap(), options);
        assert_eq!(RouteOptions::default().to_query(), "");
        assert_eq!(
            RouteOptions::from_query("").unwrap(),
            RouteOptions::default()
        );
        let err = RouteOptions::from_query("isolation=none").unwrap_err();
        assert!(err.contains("isolation"), "{err}");
        let err = RouteOptions::from_query("colour=red").unwrap_err();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn allow_outbound_is_parsed_in_every_form() {
        let uri = |text: &str| text.parse::<hyper::Uri>().unwrap();
        // The `--route` flag and the admin query: one string.
        let flag = RouteConfig::parse_flag(
            "/a=h.wasm,allow_outbound=http://127.0.0.1:8080;HTTPS://Example.org",
        )
        .unwrap();
        let origins = flag.options.allow_outbound.clone().unwrap();
        assert_eq!(
            origins.to_string(),
            "http://127.0.0.1:8080 https://example.org:443"
        );
        assert!(origins.allows(&uri("http://127.0.0.1:8080/x?y")));
        assert!(origins.allows(&uri("https://EXAMPLE.org/")));
        assert!(origins.allows(&uri("https://example.org:443/")));
        assert!(!origins.allows(&uri("http://127.0.0.1:8081/")));
        assert!(!origins.allows(&uri("https://127.0.0.1:8080/")));
        assert!(!origins.allows(&uri("http://example.org/")));
        assert!(!origins.allows(&uri("http://localhost:8080/")));
        assert!(!origins.allows(&uri("/relative")));
        let query = flag.options.to_query();
        assert_eq!(RouteOptions::from_query(&query).unwrap(), flag.options);
        let spaced = RouteOptions::from_query(
            "allow-outbound=http%3A%2F%2F127.0.0.1%3A8080+https%3A%2F%2Fexample.org",
        )
        .unwrap();
        assert_eq!(spaced.allow_outbound, Some(origins.clone()));
        // TOML: a list (or a string).
        let route: RouteConfig = toml::from_str(
            r#"
            prefix = "/a"
            wasm = "h.wasm"
            allow_outbound = ["http://127.0.0.1:8080", "https://example.org"]
            "#,
        )
        .unwrap();
        assert_eq!(route.options.allow_outbound, Some(origins.clone()));
        // JSON (the state directory's records) round trips.
        let json = serde_json::to_string(&flag.options).unwrap();
        let back: RouteOptions = serde_json::from_str(&json).unwrap();
        assert_eq!(back, flag.options);
        // What is not an origin is refused, naming it.
        for bad in [
            "ftp://127.0.0.1:21",
            "127.0.0.1:8080",
            "http://127.0.0.1:8080/path",
            "http://user@127.0.0.1:8080",
            "http://127.0.0.1:99999",
        ] {
            let err = RouteOptions::from_query(&format!(
                "allow_outbound={}",
                form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>()
            ))
            .unwrap_err();
            assert!(err.contains("allow_outbound"), "{bad}: {err}");
        }
    }

    fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("percore.toml");
        std::fs::write(&file, text).unwrap();
        (dir, file)
    }

    #[test]
    fn toml_file() {
        let (dir, file) = write_config(
            r#"
            listen = "127.0.0.1:9000"
            workers = 3
            isolation = "core"
            insecure_registries = ["127.0.0.1:5000"]
            [limits]
            deadline_ms = 250
            [[route]]
            prefix = "/"
            wasm = "hello.wasm"
            [[route]]
            prefix = "/slow"
            wasm = "/abs/slow.wasm"
            isolation = "request"
            deadline_ms = 5000
            [[route]]
            prefix = "/old"
            wasm = "old.wasm"
            limits = { deadline_ms = 7 }
            [[route]]
            prefix = "/oci"
            wasm = "oci://127.0.0.1:5000/hello@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
            "#,
        );
        let c = Config::from_file(&file).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.worker_count(), 3);
        assert_eq!(c.isolation, Isolation::Core);
        assert_eq!(c.limits.deadline_ms, 250);
        assert_eq!(
            c.routes[0].source,
            Source::File(dir.path().join("hello.wasm"))
        );
        assert_eq!(c.routes[1].options.limits(&c.limits).deadline_ms, 5000);
        assert_eq!(c.routes[1].options.isolation, Some(Isolation::Request));
        assert_eq!(c.routes[2].options.deadline_ms, Some(7));
        assert!(matches!(&c.routes[3].source, Source::Oci(r) if r.registry() == "127.0.0.1:5000"));
        assert_eq!(c.insecure_registries[0].to_string(), "127.0.0.1:5000");
        std::fs::write(&file, "listen = 5").unwrap();
        let err = Config::from_file(&file).unwrap_err().to_string();
        assert!(err.contains("percore.toml"), "{err}");
    }

    #[test]
    fn config_errors_name_what_is_wrong() {
        let (_dir, file) = write_config(
            "[[route]]\nprefix = \"/a\"\nwasm = \"a.wasm\"\n[[route]]\nprefix = \"/a\"\nwasm = \"b.wasm\"\n",
        );
        let err = Config::from_file(&file).unwrap_err();
        assert!(matches!(err, ConfigError::DuplicatePrefix { .. }), "{err}");
        assert!(err.to_string().contains("route /a is given twice"), "{err}");

        let (_dir, file) =
            write_config("[[route]]\nprefix = \"/a\"\nwasm = \"a.wasm\"\ncolour = 1\n");
        let err = Config::from_file(&file).unwrap_err().to_string();
        assert!(err.contains("unknown key `colour`"), "{err}");

        let (_dir, file) = write_config("[[route]]\nprefix = \"a\"\nwasm = \"a.wasm\"\n");
        let err = Config::from_file(&file).unwrap_err().to_string();
        assert!(err.contains("must start with '/'"), "{err}");

        let mut config = Config::default();
        let twice = vec![RouteConfig::file("/x", "a"), RouteConfig::file("/x", "b")];
        assert!(config.add_flag_routes(twice).is_err());
        config.routes = vec![RouteConfig::file("/x", "file")];
        config
            .add_flag_routes(vec![RouteConfig::file("/x", "flag")])
            .unwrap();
        assert_eq!(config.routes, vec![RouteConfig::file("/x", "flag")]);
    }

    /// The configs shipped for Kubernetes (`deploy/k8s`) parse, and pin
    /// every handler by digest (a new version is a new digest, so a new
    /// ConfigMap and a rolling update).
    #[test]
    fn the_shipped_kubernetes_configs_parse_and_pin_digests() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s");
        for file in ["base/percore.toml", "overlays/example/percore.toml"] {
            let path = deploy.join(file);
            let config = Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(config.ops.is_some(), "{file}: the probes need ops");
            assert!(!config.routes.is_empty(), "{file}: no route");
            for route in &config.routes {
                assert!(
                    matches!(&route.source, Source::Oci(_))
                        && route.source.to_string().contains("@sha256:"),
                    "{file}: route {} is not an OCI digest: {}",
                    route.prefix,
                    route.source
                );
            }
        }
    }
}
