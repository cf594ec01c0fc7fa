//! `load`: the load harness driver (run it through `benches/load`, which
//! installs wrk and builds first). Parses the flags into
//! `percore_benches::load::Options`, runs the plan, prints the table and
//! whether percore met its targets, and saves every sample as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use percore_benches::load::servers::{Paths, ServerKind};
use percore_benches::load::{self, Load, Options, cleanup, report};

/// Measures native hyper and percore (core and request isolation) with wrk,
/// alternating servers over several rounds, and prints requests/s, the
/// ratio to native hyper, and latency percentiles.
#[derive(Debug, clap::Parser)]
#[command(name = "load", about)]
struct Args {
    /// One round with shorter measurements (about a minute in all).
    #[arg(long)]
    quick: bool,
    /// Rounds [default: 3; 1 with --quick].
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    /// Seconds per measurement [default: 10; 5 with --quick].
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// Seconds of warm-up per route after each server start [default: 2; 1 with --quick].
    #[arg(long, value_name = "SECS")]
    warmup: Option<u64>,
    /// Connection counts, comma-separated; each route is measured at each.
    #[arg(
        long,
        value_name = "N,..",
        value_delimiter = ',',
        default_value = "256"
    )]
    connections: Vec<u32>,
    /// Routes to measure, comma-separated.
    #[arg(
        long,
        value_name = "PATH,..",
        value_delimiter = ',',
        default_value = "/plaintext,/json"
    )]
    routes: Vec<String>,
    /// Also measure /plaintext with this many pipelined requests per write
    /// (TechEmpower uses 16), at each connection count.
    #[arg(long, value_name = "DEPTH")]
    pipeline: Option<u32>,
    /// Servers, comma-separated: native, core, request, core-nodeadline
    /// (core isolation without the deadline machinery, to measure its cost).
    #[arg(long, value_name = "NAME,..", value_delimiter = ',', value_parser = ServerKind::parse,
          default_value = "native,core,request")]
    servers: Vec<ServerKind>,
    /// Workers of every server [default: one per core].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// wrk threads.
    #[arg(long, value_name = "N", default_value_t = 2)]
    wrk_threads: u32,
    /// Directory holding the release binaries [default: this binary's].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Where to save every sample as JSON [default: target/load/last-run.json].
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    cleanup::on_signal_stop_all()?;
    let options = options(&args)?;
    let json = args
        .json
        .clone()
        .unwrap_or_else(|| options.paths.log_dir.join("last-run.json"));
    eprintln!(
        "load: {} round(s) × {} server(s) × {} load(s), {}s each, {} workers; about {} min",
        options.rounds,
        options.servers.len(),
        options.loads.len(),
        options.duration.as_secs(),
        options.workers,
        options.estimate().as_secs().div_ceil(60)
    );
    let samples = load::run(&options)?;
    if let Some(dir) = json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&json, serde_json::to_string_pretty(&samples)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let rows = report::rows(&samples);
    println!("{}", report::markdown(&rows));
    for line in report::verdicts(&rows)
        .into_iter()
        .chain(report::noise(&rows))
    {
        println!("{line}");
    }
    eprintln!("load: samples saved to {}", json.display());
    Ok(())
}

fn options(args: &Args) -> anyhow::Result<Options> {
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary has no directory")?
            .to_path_buf(),
    };
    let benches = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = benches.parent().unwrap_or(&benches);
    let paths = Paths::beside(&bin_dir, workspace);
    anyhow::ensure!(
        !args.connections.is_empty() && args.connections.iter().all(|&c| c > 0),
        "--connections needs at least one count above 0"
    );
    let mut loads = Vec::new();
    for &connections in &args.connections {
        for route in &args.routes {
            anyhow::ensure!(route.starts_with('/'), "route {route:?} must start with /");
            loads.push(Load {
                route: route.clone(),
                connections,
                depth: 1,
            });
        }
        if let Some(depth) = args.pipeline.filter(|&d| d > 1) {
            loads.push(Load {
                route: "/plaintext".into(),
                connections,
                depth,
            });
        }
    }
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let secs = |flag: Option<u64>, default: u64, quick: u64| {
        Duration::from_secs(flag.unwrap_or(if args.quick { quick } else { default }))
    };
    Ok(Options {
        rounds: args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1),
        duration: secs(args.duration, 10, 5).max(Duration::from_secs(1)),
        warmup: secs(args.warmup, 2, 1),
        servers: args.servers.clone(),
        workers,
        loads,
        wrk_threads: args.wrk_threads,
        paths,
    })
}
