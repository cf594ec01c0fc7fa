//! The load harness: measures native hyper, percore (in both isolation
//! modes) and `wasmtime serve` under the same loads, alternating servers,
//! and reports medians over rounds with the ratio to native hyper; then,
//! per server, tail latency at fixed fractions of its own peak rate (with
//! oha, [`oha`]), memory per idle connection, and throughput over worker
//! counts with the server and wrk pinned to their own CPUs (scaling).
//!
//! A run has four parts, each optional ([`Options`]): `rounds × servers ×
//! loads` of wrk (throughput), then one scaling pass per worker count, then
//! one pass per server for latency and idle connections. In each round
//! every server is started once on a free loopback port, warmed up on each
//! route, measured on every load, and stopped; the order of the servers rotates from round to round
//! (A B C, B C A, C A B) so that a noisy neighbour or a thermal drift does
//! not always hit the same server. Growing the harness means adding a
//! [`ServerKind`](servers::ServerKind), a [`Load`], or a column to
//! [`report`]; the plan and the cleanup stay as they are.

pub mod cleanup;
pub mod idle;
pub mod oha;
pub mod pinning;
pub mod report;
pub mod servers;
pub mod wrk;

use std::time::{Duration, Instant};

use serde::Serialize;

use idle::IdleStep;
use oha::{LatencyResult, OhaRun};
use pinning::Pinning;
use servers::{CpuTime, Paths, RunningServer, ServerKind};
use wrk::{WikiScript, WrkResult, WrkRun};

/// The route of the wiki load: `/wiki/<title>` with a title drawn at random
/// for every request (by `benches/wiki.lua`) from the sample titles.
pub const WIKI_ROUTE: &str = "/wiki/<random title>";

/// The reader's load: `/read/<title>`, the same random titles rendered to
/// HTML by the wiki guest (measured beside [`WIKI_ROUTE`]).
pub const READ_ROUTE: &str = "/read/<random title>";

/// The title index's load: `/offsets/<prefix>?limit=20`, a prefix of three
/// characters of a random sample title for every request (the Python
/// handler's loads, with [`WIKI_ROUTE`]).
pub const OFFSETS_ROUTE: &str = "/offsets/<random prefix>";

/// The `WIKI_MODE` of `benches/wiki.lua` for a route of the wiki guest
/// (`wiki`, `read` or `offsets`); `None` for every other route.
pub fn wiki_mode(route: &str) -> Option<&'static str> {
    match route {
        WIKI_ROUTE => Some("wiki"),
        READ_ROUTE => Some("read"),
        OFFSETS_ROUTE => Some("offsets"),
        _ => None,
    }
}

/// What to run. Every field's default is the one `benches/load` uses.
#[derive(Clone, Debug)]
pub struct Options {
    /// Rounds; each server is measured once per load per round. Default 3.
    pub rounds: usize,
    /// Length of one measurement. Default 10 s.
    pub duration: Duration,
    /// Load on each route before measuring, per server start. Default 2 s.
    pub warmup: Duration,
    /// The servers, in table order. Default: native, core, request.
    pub servers: Vec<ServerKind>,
    /// Server workers (`--workers` of both servers). Default: `nproc`.
    pub workers: usize,
    /// The throughput loads, in table order; empty: no throughput part.
    pub loads: Vec<Load>,
    /// Throughput over worker counts, if wanted.
    pub scaling: Option<ScalingPlan>,
    /// Tail latency at fixed rates, if wanted.
    pub latency: Option<LatencyPlan>,
    /// Memory per idle connection, if wanted.
    pub idle: Option<IdlePlan>,
    /// wrk threads. Default 2.
    pub wrk_threads: u32,
    /// Binaries and files.
    pub paths: Paths,
}

/// Throughput over worker counts, each server and wrk pinned to CPUs of
/// their own where they fit ([`pinning::plan`]).
#[derive(Clone, Debug)]
pub struct ScalingPlan {
    /// Worker counts, in order (e.g. 1, 2, 4, ... nproc).
    pub workers: Vec<usize>,
    /// The loads measured at each count.
    pub loads: Vec<Load>,
    /// The CPUs to split (this process's, from `sched_getaffinity`).
    pub cpus: Vec<usize>,
    /// CPUs reserved for wrk (one wrk thread each), the last of `cpus`; 0:
    /// nothing is pinned.
    pub client_cpus: usize,
}

/// Tail latency at fixed fractions of each server's own peak.
#[derive(Clone, Debug)]
pub struct LatencyPlan {
    /// The route and connections; the peak is the server's median req/s on
    /// this load (unpipelined) from the throughput rounds.
    pub load: Load,
    /// Fractions of the peak, e.g. 0.5 and 0.8.
    pub fractions: Vec<f64>,
    /// Absolute rates (req/s) every server is held at, so that their tails
    /// compare at the same load rather than at each one's own half-peak.
    pub rates: Vec<f64>,
    /// Length of each fixed-rate run.
    pub duration: Duration,
    /// oha's threads.
    pub threads: u32,
}

/// Idle keep-alive connections.
#[derive(Clone, Debug)]
pub struct IdlePlan {
    /// Connection counts, ascending (e.g. 10,000 and 50,000).
    pub steps: Vec<u32>,
    /// Fresh requests timed while they are all open.
    pub probes: u32,
    /// The route each connection requests once.
    pub route: String,
}

impl Options {
    /// About how long the run takes.
    pub fn estimate(&self) -> Duration {
        let routes = self.routes().len() as u32;
        let servers = self.servers.len() as u32;
        let per_start = Duration::from_secs(2) + self.warmup * routes;
        let per_round = (per_start + self.duration * self.loads.len() as u32) * servers;
        let scaling = self.scaling.as_ref().map_or(Duration::ZERO, |s| {
            (per_start + self.duration * s.loads.len() as u32) * servers * s.workers.len() as u32
        });
        let latency = self.latency.as_ref().map_or(Duration::ZERO, |l| {
            (per_start + l.duration * (l.fractions.len() + l.rates.len()) as u32) * servers
        });
        let idle = self.idle.as_ref().map_or(Duration::ZERO, |i| {
            // About 10 s per 50,000 connections, opened and closed.
            Duration::from_secs(2 + u64::from(i.steps.iter().max().copied().unwrap_or(0)) / 5000)
                * servers
        });
        let rounds = if self.loads.is_empty() {
            0
        } else {
            self.rounds
        };
        per_round * rounds as u32 + scaling + latency + idle
    }

    /// The distinct routes of the loads, in order.
    pub fn routes(&self) -> Vec<&str> {
        let mut routes: Vec<&str> = Vec::new();
        let scaling = self.scaling.iter().flat_map(|s| &s.loads);
        let latency = self.latency.iter().map(|l| &l.load);
        for load in self.loads.iter().chain(scaling).chain(latency) {
            if !routes.contains(&load.route.as_str()) {
                routes.push(&load.route);
            }
        }
        routes
    }
}

/// One kind of load: which route, how many connections, how deep the
/// pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Load {
    /// Path requested, e.g. `/plaintext`, or [`WIKI_ROUTE`], [`READ_ROUTE`]
    /// or [`OFFSETS_ROUTE`].
    pub route: String,
    /// Open connections.
    pub connections: u32,
    /// Requests per write (1: no pipelining).
    pub depth: u32,
}

impl Load {
    /// Whether `kind` serves this load (only percore serves the wiki; a
    /// server that answers only some plain routes is probed at start, see
    /// [`ServerKind::answers_some_routes`]).
    pub fn served_by(&self, kind: ServerKind) -> bool {
        wiki_mode(&self.route).is_none_or(|mode| kind.serves_wiki(mode))
    }
}

/// One measurement: a server under a load in a round.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// The server.
    pub kind: ServerKind,
    /// Its workers.
    pub workers: usize,
    /// The load.
    pub load: Load,
    /// The round (from 0).
    pub round: usize,
    /// Wall-clock seconds the measurement took (for CPU per second).
    pub seconds: f64,
    /// What wrk measured.
    pub wrk: WrkResult,
    /// Server CPU time spent during the measurement.
    pub cpu: CpuTime,
    /// wrk's CPU time.
    pub wrk_cpu: CpuTime,
    /// CPU seconds the rest of the machine used meanwhile (other builds,
    /// the harness itself): above a few percent of `seconds`, the
    /// measurement was disturbed.
    pub other_cpu: f64,
    /// Server resident memory right after it, KiB.
    pub rss_kib: u64,
    /// Where the server and wrk ran (the scaling pass pins them).
    pub pinning: Pinning,
}

/// One fixed-rate run: a server at a fraction of its peak.
#[derive(Clone, Debug, Serialize)]
pub struct LatencySample {
    /// The server.
    pub kind: ServerKind,
    /// Its workers.
    pub workers: usize,
    /// Route and connections.
    pub load: Load,
    /// The fraction of `peak` asked for.
    pub fraction: f64,
    /// The absolute rate asked for, when the run was one of
    /// [`LatencyPlan::rates`] (then `fraction` is that rate over `peak`);
    /// `None` for a fraction of the server's own peak.
    pub fixed_rate: Option<f64>,
    /// The server's median req/s on `load` in the throughput rounds.
    pub peak: f64,
    /// What oha measured.
    pub result: LatencyResult,
    /// Server CPU time during the run.
    pub cpu: CpuTime,
}

/// One step of the idle-connection measurement of a server.
#[derive(Clone, Debug, Serialize)]
pub struct IdleSample {
    /// The server.
    pub kind: ServerKind,
    /// Its workers.
    pub workers: usize,
    /// What was measured.
    pub step: IdleStep,
}

/// Everything a run measured (saved as JSON).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measurements {
    /// Throughput under wrk (the rounds).
    pub samples: Vec<Sample>,
    /// Throughput under wrk over worker counts (the scaling pass).
    pub scaling: Vec<Sample>,
    /// Fixed-rate latency.
    pub latency: Vec<LatencySample>,
    /// Idle connections.
    pub idle: Vec<IdleSample>,
    /// Notes for the reader (servers skipped, settings).
    pub notes: Vec<String>,
}

/// Runs the whole plan, reporting progress on stderr, and returns every
/// measurement.
pub fn run(options: &Options) -> anyhow::Result<Measurements> {
    options.paths.check()?;
    let mut out = Measurements::default();
    let mut idle_steps = Vec::new();
    if let Some(idle) = &options.idle {
        // Children inherit the limit: raise it before starting any server.
        let most = idle.steps.iter().copied().max().unwrap_or(0);
        let limit = idle::raise_fd_limit(u64::from(most + idle::FD_MARGIN));
        let (steps, note) = idle::fit_steps(&idle.steps, limit);
        if let Some(note) = note {
            eprintln!("load: {note}");
            out.notes.push(note);
        }
        idle_steps = steps;
    }
    let started = Instant::now();
    let progress = |what: &str| {
        eprintln!("[{:>4.0}s] {what}", started.elapsed().as_secs_f64());
    };
    for round in 0..options.rounds {
        let mut order = options.servers.clone();
        let len = order.len().max(1);
        order.rotate_left(round % len);
        if options.loads.is_empty() {
            break;
        }
        let unpinned = Pinning::default();
        for kind in order {
            let tag = format!("round{round}");
            let server = start_warm(options, kind, options.workers, &unpinned, &tag, &mut out)?;
            for load in options.loads.iter().filter(|l| server.serves(l)) {
                let sample = measure(options, &server, load, round, options.workers, &unpinned)?;
                progress(&sample_line(&sample, options.rounds));
                out.samples.push(sample);
            }
            server.stop()?;
        }
    }
    if let Some(plan) = &options.scaling {
        for (i, &workers) in plan.workers.iter().enumerate() {
            let pin = pinning::plan(&plan.cpus, workers, plan.client_cpus);
            progress(&format!("scaling: {workers} worker(s), {pin}"));
            let mut order = options.servers.clone();
            let len = order.len().max(1);
            order.rotate_left(i % len);
            for kind in order {
                let server = start_warm(
                    options,
                    kind,
                    workers,
                    &pin,
                    &format!("w{workers}"),
                    &mut out,
                )?;
                for load in plan.loads.iter().filter(|l| server.serves(l)) {
                    let sample = measure(options, &server, load, 0, workers, &pin)?;
                    progress(&sample_line(&sample, 1));
                    out.scaling.push(sample);
                }
                server.stop()?;
            }
        }
    }
    if options.latency.is_none() && options.idle.is_none() {
        return Ok(out);
    }
    for &kind in &options.servers {
        let unpinned = Pinning::default();
        let server = start_warm(
            options,
            kind,
            options.workers,
            &unpinned,
            "latency",
            &mut out,
        )?;
        if let Some(plan) = &options.latency {
            let mut peak = peak_of(&out.samples, kind, options.workers, &plan.load);
            if peak <= 0.0 {
                // Not among the throughput loads: measure the peak now.
                let sample = measure(options, &server, &plan.load, 0, options.workers, &unpinned)?;
                progress(&sample_line(&sample, 1));
                peak = sample.wrk.requests_per_sec;
            }
            let asked = plan
                .fractions
                .iter()
                .map(|&f| (f, None))
                .chain(plan.rates.iter().map(|&r| (r / peak.max(1.0), Some(r))));
            for (fraction, fixed_rate) in asked {
                let run = OhaRun {
                    oha: options.paths.oha.clone(),
                    url: format!("http://{}{}", server.addr, plan.load.route),
                    rate: fixed_rate.unwrap_or(peak * fraction).max(1.0),
                    connections: plan.load.connections,
                    threads: plan.threads,
                    duration: plan.duration,
                };
                let cpu_before = server.cpu_time()?;
                let result = match run.run() {
                    Ok(result) => result,
                    Err(e) => {
                        // One server failing oha is a finding, not
                        // a reason to lose the rest of the run.
                        let note = format!(
                            "{}: the fixed-rate run at {:.0}% of peak failed: {e:#}",
                            kind.label(),
                            fraction * 100.0
                        );
                        progress(&note);
                        out.notes.push(note);
                        continue;
                    }
                };
                let cpu = server.cpu_time()?.since(cpu_before);
                progress(&format!(
                    "latency {:<16} {:>3.0}% of {:>7.0} req/s: achieved {:>7.0}, p50 {}, p99 {}, p99.9 {}, errors {}",
                    kind.label(),
                    fraction * 100.0,
                    peak,
                    result.achieved_rate,
                    report::latency(result.p50_us),
                    report::latency(result.p99_us),
                    report::latency(result.p999_us),
                    result.errors
                ));
                out.latency.push(LatencySample {
                    kind,
                    workers: options.workers,
                    load: plan.load.clone(),
                    fraction,
                    fixed_rate,
                    peak,
                    result,
                    cpu,
                });
            }
        }
        if let Some(plan) = &options.idle {
            // A server without the plan's route (the Python ones have no
            // `/plaintext`) is asked for its ready route instead.
            let route = if server.answers(&plan.route).is_ok() {
                plan.route.as_str()
            } else {
                kind.ready_path()
            };
            let measured = idle::measure(server.addr, route, &idle_steps, plan.probes, &|| {
                server.rss_kib()
            });
            let steps = measured.unwrap_or_else(|e| {
                let note = format!("{}: the idle-connection run failed: {e:#}", kind.label());
                progress(&note);
                out.notes.push(note);
                Vec::new()
            });
            for step in steps {
                progress(&format!(
                    "idle    {:<16} {:>6} connections: RSS {:.1} MiB → {:.1} MiB, {:.1} KB each, {} closed by the server, probe p50 {} max {}",
                    kind.label(),
                    step.connections,
                    step.rss_before_kib as f64 / 1024.0,
                    step.rss_kib as f64 / 1024.0,
                    step.bytes_per_connection / 1000.0,
                    step.closed_by_server,
                    report::latency(step.probe_p50_us),
                    report::latency(step.probe_max_us),
                ));
                out.idle.push(IdleSample {
                    kind,
                    workers: options.workers,
                    step,
                });
            }
        }
        server.stop()?;
    }
    Ok(out)
}

/// The median req/s of `kind` on `load` (unpipelined) in the throughput
/// rounds; 0 when it was not measured.
fn peak_of(samples: &[Sample], kind: ServerKind, workers: usize, load: &Load) -> f64 {
    let rps: Vec<f64> = samples
        .iter()
        .filter(|s| s.kind == kind && s.workers == workers && s.load == *load)
        .map(|s| s.wrk.requests_per_sec)
        .collect();
    report::median(&rps)
}

/// A server started for a part of the run, with the plain routes it turned
/// out not to answer (see [`ServerKind::answers_some_routes`]).
struct WarmServer {
    server: RunningServer,
    unanswered: Vec<String>,
}

impl WarmServer {
    /// Whether it serves `load`.
    fn serves(&self, load: &Load) -> bool {
        load.served_by(self.server.kind) && !self.unanswered.contains(&load.route)
    }

    fn stop(self) -> anyhow::Result<()> {
        self.server.stop()
    }
}

impl std::ops::Deref for WarmServer {
    type Target = RunningServer;

    fn deref(&self) -> &RunningServer {
        &self.server
    }
}

/// The body every server's `/json` must answer with, byte for byte.
pub const JSON_BODY: &str = r#"{"message":"Hello, World!"}"#;

/// Starts `kind` with `workers` workers, checks every route it serves (and
/// that its `/json` body is [`JSON_BODY`]) and warms each one up. A route
/// that a server answering only some routes does not answer is left out,
/// with a note in `out` (once per server and route).
fn start_warm(
    options: &Options,
    kind: ServerKind,
    workers: usize,
    pin: &Pinning,
    tag: &str,
    out: &mut Measurements,
) -> anyhow::Result<WarmServer> {
    let server = RunningServer::start(
        kind,
        &options.paths,
        workers,
        &pin.server,
        kind.ready_path(),
        tag,
    )?;
    let mut unanswered = Vec::new();
    for route in options.routes() {
        let load = options
            .loads
            .iter()
            .chain(options.scaling.iter().flat_map(|s| &s.loads))
            .find(|l| l.route == route);
        if load.is_some_and(|l| !l.served_by(kind)) {
            continue;
        }
        if wiki_mode(route).is_none() {
            if kind.answers_some_routes() {
                if let Err(status) = server.answers(route) {
                    let note = format!(
                        "{} does not answer {route} ({status}): left out of its {route} loads",
                        kind.label()
                    );
                    if !out.notes.contains(&note) {
                        eprintln!("load: {note}");
                        out.notes.push(note);
                    }
                    unanswered.push(route.to_owned());
                    continue;
                }
            } else {
                server.check(route)?;
            }
            if route == "/json" {
                let body = body_of(&server.check(route)?);
                anyhow::ensure!(
                    body == JSON_BODY,
                    "{} answered GET /json with {body:?}, not {JSON_BODY:?}: the servers must \
                     answer with the same bytes",
                    kind.label()
                );
            }
        }
        if !options.warmup.is_zero() {
            let mut warm = wrk_run(
                options,
                &server,
                load.map_or(64, |l| l.connections),
                route,
                1,
                pin,
            );
            warm.duration = options.warmup;
            warm.run()?;
        }
    }
    Ok(WarmServer { server, unanswered })
}

/// The body of a whole HTTP/1.1 response (read to the end of a
/// `Connection: close`), de-chunked when it was sent chunked.
pub fn body_of(response: &str) -> String {
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        return String::new();
    };
    let chunked = head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if !chunked {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = size.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size, 16) else {
            break;
        };
        let (Some(chunk), Some(next)) = (after.get(..size), after.get(size..)) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.push_str(chunk);
        rest = next.strip_prefix("\r\n").unwrap_or(next);
    }
    out
}

/// The wrk command for `route` (the wiki route through its script), pinned
/// to `pin.client` with one thread per CPU there.
fn wrk_run(
    options: &Options,
    server: &RunningServer,
    connections: u32,
    route: &str,
    depth: u32,
    pin: &Pinning,
) -> WrkRun {
    let mode = wiki_mode(route);
    let wiki = mode.is_some();
    let threads = match pin.client.len() {
        0 => options.wrk_threads,
        n => u32::try_from(n).unwrap_or(u32::MAX),
    };
    WrkRun {
        url: format!("http://{}{}", server.addr, if wiki { "/" } else { route }),
        threads,
        connections,
        duration: options.duration,
        depth,
        pipeline_script: options.paths.pipeline_script.clone(),
        wiki: options
            .paths
            .wiki
            .as_ref()
            .zip(mode)
            .map(|(w, mode)| WikiScript {
                mode,
                ..w.script.clone()
            }),
        cpus: pin.client.clone(),
    }
}

/// A progress line for one sample.
fn sample_line(sample: &Sample, rounds: usize) -> String {
    format!(
        "round {}/{} {:<16} w{} {:<10} c{:<4} d{:<2}: {:>9.0} req/s  p50 {:>9}  p99 {:>9}  errors {}",
        sample.round + 1,
        rounds,
        sample.kind.label(),
        sample.workers,
        sample.load.route,
        sample.load.connections,
        sample.load.depth,
        sample.wrk.requests_per_sec,
        report::latency(sample.wrk.p50_us()),
        report::latency(sample.wrk.p99_us()),
        sample.wrk.errors(),
    )
}

fn measure(
    options: &Options,
    server: &RunningServer,
    load: &Load,
    round: usize,
    workers: usize,
    pin: &Pinning,
) -> anyhow::Result<Sample> {
    let run = wrk_run(
        options,
        server,
        load.connections,
        &load.route,
        load.depth,
        pin,
    );
    let cpu_before = server.cpu_time()?;
    let wrk_before = servers::reaped_children_cpu()?;
    let machine_before = servers::machine_busy()?;
    let start = Instant::now();
    let wrk = run.run()?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = server.cpu_time()?.since(cpu_before);
    let wrk_cpu = servers::reaped_children_cpu()?.since(wrk_before);
    let machine = servers::machine_busy()? - machine_before;
    let other_cpu = (machine - cpu.user - cpu.system - wrk_cpu.user - wrk_cpu.system).max(0.0);
    Ok(Sample {
        kind: server.kind,
        workers,
        load: load.clone(),
        round,
        seconds,
        wrk,
        cpu,
        wrk_cpu,
        other_cpu,
        rss_kib: server.rss_kib()?,
        pinning: pin.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_read_plain_or_chunked() {
        let plain = "HTTP/1.1 200 OK\r\ncontent-length: 27\r\n\r\n{\"message\":\"Hello, World!\"}";
        assert_eq!(body_of(plain), JSON_BODY);
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                       b\r\n{\"message\":\r\n10\r\n\"Hello, World!\"}\r\n0\r\n\r\n";
        assert_eq!(body_of(chunked), JSON_BODY);
        assert_eq!(body_of("HTTP/1.1 200 OK\r\n"), "");
    }

    #[test]
    fn wiki_loads_go_to_the_servers_that_serve_them() {
        let load = |route: &str| Load {
            route: route.into(),
            connections: 64,
            depth: 1,
        };
        assert!(load(OFFSETS_ROUTE).served_by(ServerKind::PythonCore));
        assert!(load(WIKI_ROUTE).served_by(ServerKind::PythonRequest));
        assert!(!load(READ_ROUTE).served_by(ServerKind::PythonCore));
        assert!(load(READ_ROUTE).served_by(ServerKind::PercoreCore));
        assert!(!load(WIKI_ROUTE).served_by(ServerKind::Granian));
        assert!(!load(OFFSETS_ROUTE).served_by(ServerKind::WasiCore));
        assert!(load("/json").served_by(ServerKind::Granian));
    }
}
