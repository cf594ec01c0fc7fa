//! The load harness: measures native hyper and percore (in both isolation
//! modes) under the same wrk loads, alternating servers, and reports medians
//! over rounds with the ratio to native hyper.
//!
//! A run is `rounds × servers × loads`. In each round every server is
//! started once on a free loopback port, warmed up on each route, measured
//! on every load, and stopped; the order of the servers rotates from round
//! to round (A B C, B C A, C A B) so that a noisy neighbour or a thermal
//! drift does not always hit the same server. Growing the harness means
//! adding a [`ServerKind`](servers::ServerKind), a [`Load`], or a column to
//! [`report`]; the plan and the cleanup stay as they are.

pub mod cleanup;
pub mod report;
pub mod servers;
pub mod wrk;

use std::time::{Duration, Instant};

use serde::Serialize;

use servers::{CpuTime, Paths, RunningServer, ServerKind};
use wrk::{WrkResult, WrkRun};

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
    /// The loads, in table order.
    pub loads: Vec<Load>,
    /// wrk threads. Default 2.
    pub wrk_threads: u32,
    /// Binaries and files.
    pub paths: Paths,
}

impl Options {
    /// About how long the run takes.
    pub fn estimate(&self) -> Duration {
        let routes = self.routes().len() as u32;
        let per_start = Duration::from_secs(2) + self.warmup * routes;
        let per_round =
            (per_start + self.duration * self.loads.len() as u32) * self.servers.len() as u32;
        per_round * self.rounds as u32
    }

    /// The distinct routes of the loads, in order.
    pub fn routes(&self) -> Vec<&str> {
        let mut routes: Vec<&str> = Vec::new();
        for load in &self.loads {
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
    /// Path requested, e.g. `/plaintext`.
    pub route: String,
    /// Open connections.
    pub connections: u32,
    /// Requests per write (1: no pipelining).
    pub depth: u32,
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
}

/// Runs the whole plan, reporting progress on stderr, and returns every
/// sample.
pub fn run(options: &Options) -> anyhow::Result<Vec<Sample>> {
    options.paths.check()?;
    let mut samples = Vec::new();
    let started = Instant::now();
    for round in 0..options.rounds {
        let mut order = options.servers.clone();
        let len = order.len().max(1);
        order.rotate_left(round % len);
        for kind in order {
            let tag = format!("round{round}");
            let server = RunningServer::start(
                kind,
                &options.paths,
                options.workers,
                options.routes().first().copied().unwrap_or("/"),
                &tag,
            )?;
            for route in options.routes() {
                server.check(route)?;
                if !options.warmup.is_zero() {
                    let conns = options.loads.iter().find(|l| l.route == route);
                    let warm = WrkRun {
                        url: format!("http://{}{route}", server.addr),
                        threads: options.wrk_threads,
                        connections: conns.map_or(64, |l| l.connections),
                        duration: options.warmup,
                        depth: 1,
                        pipeline_script: options.paths.pipeline_script.clone(),
                    };
                    warm.run()?;
                }
            }
            for load in &options.loads {
                let sample = measure(options, &server, load, round)?;
                eprintln!(
                    "[{:>4.0}s] round {}/{} {:<16} {:<10} c{:<4} d{:<2}: {:>9.0} req/s  p50 {:>9}  p99 {:>9}  errors {}",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    options.rounds,
                    kind.label(),
                    load.route,
                    load.connections,
                    load.depth,
                    sample.wrk.requests_per_sec,
                    report::latency(sample.wrk.p50_us()),
                    report::latency(sample.wrk.p99_us()),
                    sample.wrk.errors(),
                );
                samples.push(sample);
            }
            server.stop()?;
        }
    }
    Ok(samples)
}

fn measure(
    options: &Options,
    server: &RunningServer,
    load: &Load,
    round: usize,
) -> anyhow::Result<Sample> {
    let run = WrkRun {
        url: format!("http://{}{}", server.addr, load.route),
        threads: options.wrk_threads,
        connections: load.connections,
        duration: options.duration,
        depth: load.depth,
        pipeline_script: options.paths.pipeline_script.clone(),
    };
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
        workers: options.workers,
        load: load.clone(),
        round,
        seconds,
        wrk,
        cpu,
        wrk_cpu,
        other_cpu,
        rss_kib: server.rss_kib()?,
    })
}
