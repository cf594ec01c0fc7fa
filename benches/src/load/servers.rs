//! The servers under test: how each one is started, how the harness knows
//! it is ready (it answers a real HTTP request with 200), what it costs
//! (CPU time and memory from `/proc`, summed over the server's process
//! tree: granian forks its workers), and how it is stopped. To compare
//! another server, add a [`ServerKind`] and its command line.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use super::cleanup::Guarded;
use super::wrk::WikiScript;

/// How long a server may take to answer its first request (percore
/// compiles the guest with Cranelift before it listens).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The same for the Python component (about 20 MB): 10 to 25 s to compile
/// on a quiet 2-core machine, more while others build; later starts take it
/// from the compile cache in the state directory.
const PYTHON_READY_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A server the harness can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ServerKind {
    /// Native hyper, the baseline (`native-hyper`).
    Native,
    /// percore with `--isolation core`: instances reused per worker.
    PercoreCore,
    /// percore with `--isolation request`: a fresh instance per request.
    PercoreRequest,
    /// `wasmtime serve` running the same responses as a `wasi:http/proxy`
    /// component (`wasi_hello.wasm`): the stock way to serve HTTP from
    /// wasmtime, at the wasmtime version percore embeds.
    WasmtimeServe,
    /// percore core isolation with the deadline machinery switched off
    /// (the bench-only `percore-nodeadline` binary), to measure what
    /// deadlines cost.
    PercoreCoreNoDeadlines,
    /// percore core isolation with the ops listener on (`--ops`), so that
    /// every request is timed and counted: what metrics cost.
    PercoreCoreMetrics,
    /// percore serving `wasmtime serve`'s component (`wasi_hello.wasm`, a
    /// standard `wasi:http/proxy` component) in `core` isolation: the same
    /// `.wasm` on both hosts.
    WasiCore,
    /// The same in `request` isolation: a fresh instance per request, as
    /// `wasmtime serve` does.
    WasiRequest,
    /// percore serving the Python handler (`guests/python-wiki`, built with
    /// componentize-py) on `/` over the wiki index, `core` isolation.
    PythonCore,
    /// The same in `request` isolation.
    PythonRequest,
    /// granian serving `benches/granian_json.py` (the Python handler's
    /// `/json`, natively in CPython): the Python baseline.
    Granian,
}

impl ServerKind {
    /// Every kind, in table order.
    pub const ALL: [ServerKind; 11] = [
        ServerKind::Native,
        ServerKind::PercoreCore,
        ServerKind::PercoreRequest,
        ServerKind::WasmtimeServe,
        ServerKind::PercoreCoreNoDeadlines,
        ServerKind::PercoreCoreMetrics,
        ServerKind::WasiCore,
        ServerKind::WasiRequest,
        ServerKind::PythonCore,
        ServerKind::PythonRequest,
        ServerKind::Granian,
    ];

    /// The name in the table and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Native => "native",
            ServerKind::PercoreCore => "core",
            ServerKind::PercoreRequest => "request",
            ServerKind::WasmtimeServe => "wasmtime-serve",
            ServerKind::PercoreCoreNoDeadlines => "core-nodeadline",
            ServerKind::PercoreCoreMetrics => "core-metrics",
            ServerKind::WasiCore => "wasi-core",
            ServerKind::WasiRequest => "wasi-request",
            ServerKind::PythonCore => "python-core",
            ServerKind::PythonRequest => "python-request",
            ServerKind::Granian => "granian",
        }
    }

    /// Whether it serves the wiki load of `mode` (`wiki`, `read` or
    /// `offsets`, see [`wiki_mode`](super::wiki_mode)): percore's Rust wiki
    /// guest serves all three, the Python handler `wiki` and `offsets`.
    pub fn serves_wiki(self, mode: &str) -> bool {
        match self {
            ServerKind::PercoreCore
            | ServerKind::PercoreRequest
            | ServerKind::PercoreCoreNoDeadlines
            | ServerKind::PercoreCoreMetrics => true,
            ServerKind::PythonCore | ServerKind::PythonRequest => mode != "read",
            _ => false,
        }
    }

    /// Whether it runs the Python handler component.
    pub fn is_python(self) -> bool {
        matches!(self, ServerKind::PythonCore | ServerKind::PythonRequest)
    }

    /// Whether it serves only some of the plain routes (`/json` always): a
    /// route it does not answer with 200 (the Python handler has no
    /// `/plaintext`; a `wasi:http` guest may have none) is left out of its
    /// loads with a note instead of failing the run. The TechEmpower guest's
    /// servers must answer every route.
    pub fn answers_some_routes(self) -> bool {
        matches!(
            self,
            ServerKind::WasmtimeServe
                | ServerKind::WasiCore
                | ServerKind::WasiRequest
                | ServerKind::PythonCore
                | ServerKind::PythonRequest
                | ServerKind::Granian
        )
    }

    /// The route whose 200 says the server is ready: `/json`, which every
    /// server answers, for those that answer only some routes.
    pub fn ready_path(self) -> &'static str {
        if self.answers_some_routes() {
            "/json"
        } else {
            "/plaintext"
        }
    }

    /// The server it is compared with, and the target ratio of its req/s to
    /// that one's on `/json` (the `wasi:http` issue's targets: the same
    /// `.wasm` on percore ≥ 8× `wasmtime serve` in core isolation, ≥ 3× in
    /// request isolation; the Python handler on percore ≥ 0.5× granian).
    /// `None` as the target: the ratio is shown, with no target.
    pub fn baseline(self) -> Option<(ServerKind, Option<f64>)> {
        match self {
            ServerKind::WasiCore => Some((ServerKind::WasmtimeServe, Some(8.0))),
            ServerKind::WasiRequest => Some((ServerKind::WasmtimeServe, Some(3.0))),
            ServerKind::PythonCore => Some((ServerKind::Granian, Some(0.5))),
            ServerKind::PythonRequest => Some((ServerKind::Granian, None)),
            _ => None,
        }
    }

    /// The same component in `core` isolation, for a `request` isolation
    /// server: the difference between the two is what a fresh instance
    /// costs.
    pub fn core_twin(self) -> Option<ServerKind> {
        match self {
            ServerKind::PercoreRequest => Some(ServerKind::PercoreCore),
            ServerKind::WasiRequest => Some(ServerKind::WasiCore),
            ServerKind::PythonRequest => Some(ServerKind::PythonCore),
            _ => None,
        }
    }

    /// The label in the table.
    pub fn label(self) -> &'static str {
        match self {
            ServerKind::Native => "native hyper",
            ServerKind::PercoreCore => "percore core",
            ServerKind::PercoreRequest => "percore request",
            ServerKind::WasmtimeServe => "wasmtime serve",
            ServerKind::PercoreCoreNoDeadlines => "percore core, no deadlines",
            ServerKind::PercoreCoreMetrics => "percore core, metrics on",
            ServerKind::WasiCore => "percore core, wasi:http",
            ServerKind::WasiRequest => "percore request, wasi:http",
            ServerKind::PythonCore => "percore core, Python",
            ServerKind::PythonRequest => "percore request, Python",
            ServerKind::Granian => "granian, Python",
        }
    }

    /// Parses a `--servers` item.
    pub fn parse(name: &str) -> Result<Self, String> {
        ServerKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = ServerKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown server {name:?}: use {}", names.join(", "))
            })
    }

    /// The command that starts this server on `addr` with `workers`
    /// workers. `wasmtime serve` has no such flag: it runs a multi-threaded
    /// tokio runtime, which takes its worker thread count from
    /// `TOKIO_WORKER_THREADS` (one per core when unset).
    ///
    /// # Panics
    ///
    /// For [`ServerKind::WasmtimeServe`] when `paths.wasmtime` is `None`,
    /// for [`ServerKind::Granian`] when `paths.granian` is `None`, and for
    /// the Python kinds when `paths.wiki` is `None`: the driver drops those
    /// servers before it starts anything.
    pub fn command(self, paths: &Paths, addr: SocketAddr, workers: usize) -> Command {
        let percore_with = |binary: &Path, isolation: &str| {
            let mut cmd = Command::new(binary);
            cmd.arg("serve")
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--workers")
                .arg(workers.to_string())
                .arg("--isolation")
                .arg(isolation)
                // Nothing balances load over these hosts: stop at once
                // instead of serving on for the default drain delay (5 s).
                .arg("--drain-delay-ms")
                .arg("0")
                .env("PERCORE_LOG", "warn");
            cmd
        };
        // The wiki guest on `/` over the shared index, the TechEmpower
        // guest on its two routes; or the TechEmpower guest alone on `/`.
        let techempower = |cmd: &mut Command| match &paths.wiki {
            Some(wiki) => {
                cmd.arg("--index")
                    .arg(&wiki.index)
                    .arg("--route")
                    .arg(format!("/={}", wiki.guest.display()));
                for route in ["/json", "/plaintext"] {
                    cmd.arg("--route")
                        .arg(format!("{route}={}", paths.guest.display()));
                }
            }
            None => {
                cmd.arg("--route")
                    .arg(format!("/={}", paths.guest.display()));
            }
        };
        let percore = |isolation: &str| {
            let mut cmd = percore_with(&paths.percore, isolation);
            techempower(&mut cmd);
            cmd
        };
        let wasi_http = |isolation: &str| {
            let mut cmd = percore_with(&paths.percore, isolation);
            cmd.arg("--route")
                .arg(format!("/={}", paths.wasi_guest.display()));
            cmd
        };
        let python = |isolation: &str| {
            let wiki = paths
                .wiki
                .as_ref()
                .expect("the driver drops the Python servers without the wiki index");
            let mut cmd = percore_with(&paths.percore, isolation);
            // The handler imports `percore:host/wiki`: it needs the index.
            // The state directory keeps the compiled component, so that
            // only the first start of a run (or none) compiles it.
            cmd.arg("--index")
                .arg(&wiki.index)
                .arg("--route")
                .arg(format!("/={}", paths.python_guest.display()))
                .arg("--state")
                .arg(paths.log_dir.join(format!("state-{}", self.name())));
            cmd
        };
        match self {
            ServerKind::Native => {
                let mut cmd = Command::new(&paths.native);
                cmd.arg("--listen")
                    .arg(addr.to_string())
                    .arg("--workers")
                    .arg(workers.to_string());
                cmd
            }
            ServerKind::PercoreCore => percore("core"),
            ServerKind::PercoreRequest => percore("request"),
            ServerKind::WasmtimeServe => {
                let wasmtime = paths
                    .wasmtime
                    .as_ref()
                    .expect("the driver drops wasmtime serve when wasmtime is missing");
                let mut cmd = Command::new(wasmtime);
                // The pooling allocator is what wasmtime's docs recommend
                // for serving and what `serve` picks by itself when the
                // address space allows; asking for it makes a run that
                // cannot have it fail instead of quietly measuring mmap.
                // `-S cli=y`: Rust's std imports `wasi:cli/environment` and
                // more beyond the proxy world, so the guest needs the WASI
                // CLI interfaces, which percore links for its guests too.
                cmd.arg("serve")
                    .arg("-O")
                    .arg("pooling-allocator=y")
                    .arg("-S")
                    .arg("cli=y")
                    // Its default of 1000 open connections would refuse
                    // the /plaintext@1024 load's last ones and the idle
                    // connections; percore's default is 100,000.
                    .arg("--max-concurrent-connections")
                    .arg("100000")
                    .arg("--addr")
                    .arg(addr.to_string())
                    .arg(&paths.wasi_guest)
                    .env("TOKIO_WORKER_THREADS", workers.to_string());
                cmd
            }
            ServerKind::PercoreCoreNoDeadlines => {
                let mut cmd = percore_with(&paths.percore_nodeadline, "core");
                techempower(&mut cmd);
                cmd
            }
            ServerKind::PercoreCoreMetrics => {
                let mut cmd = percore("core");
                // A free loopback port; nothing scrapes it during the run.
                cmd.arg("--ops").arg("127.0.0.1:0");
                cmd
            }
            ServerKind::WasiCore => wasi_http("core"),
            ServerKind::WasiRequest => wasi_http("request"),
            ServerKind::PythonCore => python("core"),
            ServerKind::PythonRequest => python("request"),
            ServerKind::Granian => {
                let granian = paths
                    .granian
                    .as_ref()
                    .expect("the driver drops granian when it is not installed");
                let mut cmd = Command::new(&paths.python3);
                // granian's defaults (RSGI, its own interface; one runtime
                // thread per worker; the event loop it picks), but for the
                // worker count, HTTP/1 only (all the harness speaks; `auto`
                // would look for an HTTP/2 preface on every connection)
                // and no websockets (nothing here upgrades).
                cmd.arg("-m")
                    .arg("granian")
                    .arg("--interface")
                    .arg("rsgi")
                    .arg("--workers")
                    .arg(workers.to_string())
                    .arg("--http")
                    .arg("1")
                    .arg("--no-ws")
                    .arg("--log-level")
                    .arg("warning")
                    .arg("--host")
                    .arg(addr.ip().to_string())
                    .arg("--port")
                    .arg(addr.port().to_string())
                    .arg(format!("{}:app", paths.granian_app.display()))
                    .env("PYTHONPATH", granian);
                cmd
            }
        }
    }

    /// How long it may take to answer its first request.
    fn ready_timeout(self) -> Duration {
        if self.is_python() {
            PYTHON_READY_TIMEOUT
        } else {
            READY_TIMEOUT
        }
    }
}

/// Where the binaries and files the harness uses are.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The `native-hyper` binary.
    pub native: PathBuf,
    /// The `percore` binary.
    pub percore: PathBuf,
    /// `percore serve` without deadlines (`percore-nodeadline`).
    pub percore_nodeadline: PathBuf,
    /// The TechEmpower guest (`hello.wasm`).
    pub guest: PathBuf,
    /// The `wasmtime` CLI for [`ServerKind::WasmtimeServe`]
    /// (`TOOLS/bin/wasmtime`, installed by `benches/load`); `None` when it
    /// is not installed.
    pub wasmtime: Option<PathBuf>,
    /// The same responses as a `wasi:http/proxy` component
    /// (`wasi_hello.wasm`, from `guests/wasi-hello`), for `wasmtime serve`
    /// and percore's `wasi-core` and `wasi-request`.
    pub wasi_guest: PathBuf,
    /// The Python handler component (`guests/python-wiki/build.sh` builds
    /// it; `benches/load` into `target/load/python_wiki.wasm`).
    pub python_guest: PathBuf,
    /// The Python interpreter granian runs in (`python3`).
    pub python3: PathBuf,
    /// granian's install (`$PERCORE_TOOLS/granian-VERSION`, put there by
    /// `benches/load` with `guests/pip-tool.sh`), the `PYTHONPATH` of
    /// [`ServerKind::Granian`]; `None` when it is not installed.
    pub granian: Option<PathBuf>,
    /// granian's app (`benches/granian_json.py`).
    pub granian_app: PathBuf,
    /// The fixed-rate latency client (`TOOLS/bin/oha`, installed by
    /// `benches/load`; checked with [`oha::ready`](super::oha::ready)).
    pub oha: PathBuf,
    /// wrk's pipelining script (`benches/pipeline.lua`).
    pub pipeline_script: PathBuf,
    /// Where server logs go (one file per start).
    pub log_dir: PathBuf,
    /// The wiki load's files, when it is measured.
    pub wiki: Option<WikiFiles>,
}

/// What the wiki load needs: an index (built by `percore index`), the wiki
/// guest, and wrk's script with the titles it requests.
#[derive(Clone, Debug)]
pub struct WikiFiles {
    /// The index directory.
    pub index: PathBuf,
    /// `wiki.wasm`.
    pub guest: PathBuf,
    /// `benches/wiki.lua` and the titles file.
    pub script: WikiScript,
}

impl Paths {
    /// The layout of a `cargo build --release` in the workspace whose
    /// `target/release` holds `bin_dir`, with `wasmtime` from `tools_dir`
    /// (see [`default_tools_dir`]) when it is there.
    pub fn beside(bin_dir: &Path, workspace: &Path, tools_dir: &Path) -> Self {
        let target = bin_dir.parent().unwrap_or(bin_dir);
        let guests = target.join("wasm-guests/wasm32-wasip2/release");
        let wasmtime = tools_dir.join("bin/wasmtime");
        Paths {
            native: bin_dir.join("native-hyper"),
            percore: bin_dir.join("percore"),
            percore_nodeadline: bin_dir.join("percore-nodeadline"),
            guest: guests.join("hello.wasm"),
            wasmtime: wasmtime.exists().then_some(wasmtime),
            wasi_guest: guests.join("wasi_hello.wasm"),
            python_guest: target.join("load/python_wiki.wasm"),
            python3: PathBuf::from("python3"),
            granian: None,
            granian_app: workspace.join("benches/granian_json.py"),
            oha: tools_dir.join("bin/oha"),
            pipeline_script: workspace.join("benches/pipeline.lua"),
            log_dir: target.join("load"),
            wiki: None,
        }
    }

    /// Adds the wiki load's files: the index in `index` and the titles in
    /// `titles`, with the guest and script of this layout.
    pub fn with_wiki(mut self, workspace: &Path, index: PathBuf, titles: PathBuf) -> Self {
        let guest = self.guest.with_file_name("wiki.wasm");
        self.wiki = Some(WikiFiles {
            index,
            guest,
            script: WikiScript {
                script: workspace.join("benches/wiki.lua"),
                titles,
                mode: "wiki",
            },
        });
        self
    }

    /// Looks for granian in `python_tools` (`$PERCORE_TOOLS`, default
    /// `~/.cache/percore-tools`), at the version the harness pins.
    pub fn with_granian(mut self, python_tools: &Path) -> Self {
        let dir = python_tools.join(format!("granian-{GRANIAN_VERSION}"));
        self.granian = dir.join("granian").is_dir().then_some(dir);
        self
    }

    /// Fails, naming the build command, when a file is missing (a missing
    /// `wasmtime` is not an error: the driver drops that server instead).
    pub fn check(&self) -> anyhow::Result<()> {
        for path in [
            &self.native,
            &self.percore,
            &self.percore_nodeadline,
            &self.guest,
            &self.wasi_guest,
            &self.pipeline_script,
        ] {
            anyhow::ensure!(
                path.exists(),
                "{} is missing: build with `cargo build --release -p percore -p percore-benches` \
                 (or run benches/load, which does)",
                path.display()
            );
        }
        if let Some(wiki) = &self.wiki {
            for path in [
                &wiki.index,
                &wiki.guest,
                &wiki.script.script,
                &wiki.script.titles,
            ] {
                anyhow::ensure!(
                    path.exists(),
                    "{} is missing: benches/load generates the wiki load's dump, index and \
                     titles under target/load/wiki",
                    path.display()
                );
            }
        }
        std::fs::create_dir_all(&self.log_dir)
            .with_context(|| format!("creating {}", self.log_dir.display()))
    }
}

/// The granian version `benches/load` installs (from PyPI, with
/// `guests/pip-tool.sh`) and the harness runs.
pub const GRANIAN_VERSION: &str = "2.8.7";

/// Where the repo's PyPI tools live when `$PERCORE_TOOLS` is unset:
/// `$HOME/.cache/percore-tools` (granian is `granian-VERSION` in it).
pub fn default_python_tools_dir() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    Path::new(&home).join(".cache/percore-tools")
}

/// Whether the Python servers can run with `paths`: the Python handler is
/// built and the wiki index is there (the handler imports
/// `percore:host/wiki`). `Err` says why not.
pub fn python_ready(paths: &Paths) -> Result<(), String> {
    if !paths.python_guest.exists() {
        return Err(format!(
            "{} is missing (benches/load builds it with guests/python-wiki/build.sh, which \
             needs python3 and pip)",
            paths.python_guest.display()
        ));
    }
    if paths.wiki.is_none() {
        return Err(
            "the Python handler imports percore:host/wiki and needs the wiki index: run \
             without --no-wiki"
                .to_owned(),
        );
    }
    Ok(())
}

/// Whether [`ServerKind::Granian`] can run with `paths`.
pub fn granian_ready(paths: &Paths, python_tools: &Path) -> Result<(), String> {
    match &paths.granian {
        Some(_) => Ok(()),
        None => Err(format!(
            "granian {GRANIAN_VERSION} is not installed in {} (benches/load installs it \
             there with guests/pip-tool.sh, which needs python3 and pip)",
            python_tools
                .join(format!("granian-{GRANIAN_VERSION}"))
                .display()
        )),
    }
}

/// Where `benches/load` installs tools when `$PERCORE_BENCH_TOOLS` is
/// unset: `$HOME/.cache/percore-bench` (`wasmtime` is `bin/wasmtime` in it).
pub fn default_tools_dir() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    Path::new(&home).join(".cache/percore-bench")
}

/// Whether [`ServerKind::WasmtimeServe`] can run with `paths`: `Ok` with
/// `wasmtime --version`'s line, or why not (not installed in `tools_dir`,
/// or not the wasmtime version in `cargo_lock`, the one percore embeds).
pub fn wasmtime_serve_ready(
    paths: &Paths,
    tools_dir: &Path,
    cargo_lock: &str,
) -> Result<String, String> {
    let wanted = locked_wasmtime_version(cargo_lock).unwrap_or("?");
    let Some(wasmtime) = &paths.wasmtime else {
        return Err(format!(
            "{} is not installed (benches/load installs wasmtime-cli {wanted} there with \
             cargo install)",
            tools_dir.join("bin/wasmtime").display()
        ));
    };
    let version = wasmtime_version(wasmtime).map_err(|e| format!("{e:#}"))?;
    // `wasmtime 48.0.8`, with ` (commit date)` after it in git builds.
    if version.split_whitespace().nth(1) == Some(wanted) {
        Ok(version)
    } else {
        Err(format!(
            "{} is {version:?}, not the wasmtime {wanted} percore embeds (benches/load \
             installs that one)",
            wasmtime.display()
        ))
    }
}

/// The version of the `wasmtime` crate in a `Cargo.lock`: the version
/// percore embeds, which the `wasmtime` CLI must match.
pub fn locked_wasmtime_version(cargo_lock: &str) -> Option<&str> {
    let mut lines = cargo_lock.lines();
    lines.find(|l| *l == "name = \"wasmtime\"")?;
    lines
        .next()?
        .strip_prefix("version = \"")?
        .strip_suffix('"')
}

/// `wasmtime --version`'s line (`wasmtime 48.0.8 (...)`).
fn wasmtime_version(wasmtime: &Path) -> anyhow::Result<String> {
    let out = Command::new(wasmtime)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", wasmtime.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} --version failed ({})",
        wasmtime.display(),
        out.status
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A server started by the harness; stopped when dropped.
pub struct RunningServer {
    /// Which server.
    pub kind: ServerKind,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process.
    child: Guarded,
    /// Its stderr, for the error message when it fails.
    log: PathBuf,
}

impl RunningServer {
    /// Starts `kind` on a free loopback port, pinned to `cpus` (none: not
    /// pinned), and waits until `GET ready_path` answers 200.
    pub fn start(
        kind: ServerKind,
        paths: &Paths,
        workers: usize,
        cpus: &[usize],
        ready_path: &str,
        tag: &str,
    ) -> anyhow::Result<Self> {
        let addr = free_port()?;
        let log = paths.log_dir.join(format!("{}-{tag}.log", kind.name()));
        let stderr = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = super::pinning::pinned(kind.command(paths, addr, workers), cpus);
        cmd.stdin(Stdio::null())
            .stdout(stderr.try_clone()?)
            .stderr(stderr);
        let child = Guarded::spawn(kind.label(), &mut cmd)?;
        let mut server = RunningServer {
            kind,
            addr,
            child,
            log,
        };
        server.wait_ready(ready_path)?;
        Ok(server)
    }

    fn wait_ready(&mut self, path: &str) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "{} exited ({status}) before it was ready; its log ({}):\n{}",
                    self.kind.label(),
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
            match get(self.addr, path) {
                Ok(response) if response.starts_with("HTTP/1.1 200") => return Ok(()),
                Ok(response) => anyhow::bail!(
                    "{} answered GET {path} with {:?}, not 200",
                    self.kind.label(),
                    response.lines().next().unwrap_or("")
                ),
                Err(_) if start.elapsed() < self.kind.ready_timeout() => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => anyhow::bail!(
                    "{} did not answer on {} within {:?} ({e}); its log ({}):\n{}",
                    self.kind.label(),
                    self.addr,
                    self.kind.ready_timeout(),
                    self.log.display(),
                    log_tail(&self.log)
                ),
            }
        }
    }

    /// `GET path`, returning the whole response (status line, headers,
    /// body); fails unless the status is 200.
    pub fn check(&self, path: &str) -> anyhow::Result<String> {
        let response = get(self.addr, path)?;
        anyhow::ensure!(
            response.starts_with("HTTP/1.1 200"),
            "{} answered GET {path} with {:?}",
            self.kind.label(),
            response.lines().next().unwrap_or("")
        );
        Ok(response)
    }

    /// `GET path`: whether the server answers it with 200, and its status
    /// line when not (or why the request failed).
    pub fn answers(&self, path: &str) -> Result<(), String> {
        match get(self.addr, path) {
            Ok(response) if response.starts_with("HTTP/1.1 200") => Ok(()),
            Ok(response) => Err(response.lines().next().unwrap_or("").to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The server's CPU time so far (all threads of its process and of
    /// every process under it), from `/proc/PID/stat`.
    pub fn cpu_time(&self) -> anyhow::Result<CpuTime> {
        let mut total = CpuTime::default();
        for pid in process_tree(self.child.id()) {
            // A worker that has just exited is no longer there to read.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let cpu = CpuTime::from_proc_stat(&stat, clock_ticks())?;
            total.user += cpu.user;
            total.system += cpu.system;
        }
        Ok(total)
    }

    /// Resident memory now, in KiB, from `/proc/PID/status`: the sum over
    /// the server's processes (pages they share count once per process).
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for pid in process_tree(self.child.id()) {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                continue;
            };
            total += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .context("no VmRSS in /proc/PID/status")?;
        }
        Ok(total)
    }

    /// Stops the server (SIGTERM, then SIGKILL after a grace period).
    pub fn stop(self) -> anyhow::Result<()> {
        let status = self.child.stop(STOP_GRACE)?;
        // SIGTERM may show as a signal exit; anything else is worth a look.
        if !status.success() && status.code().is_some() {
            eprintln!(
                "load: {} exited with {status}; see {}",
                self.kind.label(),
                self.log.display()
            );
        }
        Ok(())
    }
}

/// `pid` and every process under it (`/proc/PID/task/TID/children`), in
/// the order found.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut found = vec![pid];
    let mut at = 0;
    while at < found.len() {
        let parent = found[at];
        at += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            found.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    found
}

/// User and system CPU time of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CpuTime {
    /// Seconds in user mode.
    pub user: f64,
    /// Seconds in the kernel.
    pub system: f64,
}

impl CpuTime {
    /// Reads fields 14 and 15 (utime, stime, in clock ticks) of a
    /// `/proc/PID/stat` line.
    pub fn from_proc_stat(stat: &str, ticks_per_sec: f64) -> anyhow::Result<Self> {
        // The command name (field 2) may hold spaces; count after its ')'.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .context("malformed /proc/PID/stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> anyhow::Result<f64> {
            let raw = fields.get(n - 3).context("short /proc/PID/stat")?;
            Ok(raw.parse::<f64>()? / ticks_per_sec)
        };
        Ok(CpuTime {
            user: field(14)?,
            system: field(15)?,
        })
    }

    /// `self - earlier`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user - earlier.user,
            system: self.system - earlier.system,
        }
    }
}

/// CPU time the whole machine spent busy so far (every CPU: user, nice,
/// system, irq, softirq, steal), in seconds, from `/proc/stat`.
pub fn machine_busy() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let cpu = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .context("no cpu line in /proc/stat")?;
    let ticks: Vec<f64> = cpu
        .split_whitespace()
        .map(|t| t.parse().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    Ok(busy / clock_ticks())
}

/// CPU time of this process's children that have exited and been waited
/// for (fields 16 and 17 of `/proc/self/stat`): after a wrk run, its share.
pub fn reaped_children_cpu() -> anyhow::Result<CpuTime> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<f64> {
        let raw = fields.get(n - 3).context("short /proc/self/stat")?;
        Ok(raw.parse::<f64>()? / clock_ticks())
    };
    Ok(CpuTime {
        user: field(16)?,
        system: field(17)?,
    })
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux in practice).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A loopback address with a port that was free a moment ago.
fn free_port() -> anyhow::Result<SocketAddr> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(probe.local_addr()?)
}

/// One `GET path` with `Connection: close`; the raw response.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// The last lines of a log file.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_time_from_proc_stat() {
        let stat =
            "4242 (percore worker) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 3 0";
        let cpu = CpuTime::from_proc_stat(stat, 100.0).unwrap();
        assert_eq!(
            cpu,
            CpuTime {
                user: 2.5,
                system: 0.75
            }
        );
    }

    #[test]
    fn finds_the_locked_wasmtime_version() {
        let lock = "[[package]]\nname = \"wasmtime-environ\"\nversion = \"1.0.0\"\n\n\
                    [[package]]\nname = \"wasmtime\"\nversion = \"48.0.8\"\n";
        assert_eq!(locked_wasmtime_version(lock), Some("48.0.8"));
        assert_eq!(
            locked_wasmtime_version("[[package]]\nname = \"hyper\"\n"),
            None
        );
    }

    #[test]
    fn server_names_round_trip() {
        for kind in ServerKind::ALL {
            assert_eq!(ServerKind::parse(kind.name()), Ok(kind));
        }
        assert!(ServerKind::parse("nginx").is_err());
    }
}
