//! The servers under test: how each one is started, how the harness knows
//! it is ready (it answers a real HTTP request with 200), what it costs
//! (CPU time and memory from `/proc`), and how it is stopped. To compare
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
}

impl ServerKind {
    /// Every kind, in table order.
    pub const ALL: [ServerKind; 6] = [
        ServerKind::Native,
        ServerKind::PercoreCore,
        ServerKind::PercoreRequest,
        ServerKind::WasmtimeServe,
        ServerKind::PercoreCoreNoDeadlines,
        ServerKind::PercoreCoreMetrics,
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
        }
    }

    /// Whether it serves the wiki demo (only percore does).
    pub fn serves_wiki(self) -> bool {
        matches!(
            self,
            ServerKind::PercoreCore
                | ServerKind::PercoreRequest
                | ServerKind::PercoreCoreNoDeadlines
                | ServerKind::PercoreCoreMetrics
        )
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
        }
    }

    /// Parses a `--servers` item.
    pub fn parse(name: &str) -> Result<Self, String> {
        ServerKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown server {name:?}: use native, core, request, wasmtime-serve, \
                     core-nodeadline or core-metrics"
                )
            })
    }

    /// The command that starts this server on `addr` with `workers`
    /// workers. `wasmtime serve` has no such flag: it runs a multi-threaded
    /// tokio runtime, which takes its worker thread count from
    /// `TOKIO_WORKER_THREADS` (one per core when unset).
    ///
    /// # Panics
    ///
    /// For [`ServerKind::WasmtimeServe`] when `paths.wasmtime` is `None`: the
    /// driver drops that server before it starts anything.
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
                .env("PERCORE_LOG", "warn");
            match &paths.wiki {
                // The wiki guest on `/` over the shared index, the
                // TechEmpower guest on its two routes.
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
            }
            cmd
        };
        let percore = |isolation: &str| percore_with(&paths.percore, isolation);
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
            ServerKind::PercoreCoreNoDeadlines => percore_with(&paths.percore_nodeadline, "core"),
            ServerKind::PercoreCoreMetrics => {
                let mut cmd = percore("core");
                // A free loopback port; nothing scrapes it during the run.
                cmd.arg("--ops").arg("127.0.0.1:0");
                cmd
            }
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
    /// (`wasi_hello.wasm`, from `guests/wasi-hello`), for `wasmtime serve`.
    pub wasi_guest: PathBuf,
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
                Err(_) if start.elapsed() < READY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => anyhow::bail!(
                    "{} did not answer on {} within {READY_TIMEOUT:?} ({e}); its log ({}):\n{}",
                    self.kind.label(),
                    self.addr,
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

    /// The server's CPU time so far (all threads), from `/proc/PID/stat`.
    pub fn cpu_time(&self) -> anyhow::Result<CpuTime> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        CpuTime::from_proc_stat(&stat, clock_ticks())
    }

    /// Resident memory now, in KiB, from `/proc/PID/status`.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmRSS in /proc/PID/status")
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
