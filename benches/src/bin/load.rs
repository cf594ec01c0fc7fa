//! `load`: the load harness driver (run it through `benches/load`, which
//! installs wrk, oha, wasmtime and granian and builds first). Parses the
//! flags into `percore_benches::load::Options`, drops `wasmtime serve`,
//! granian or the Python servers (or the fixed-rate latency part) with a
//! note when wasmtime, granian or the Python handler (or oha) is not there,
//! runs the plan, prints the tables and whether percore met its
//! targets, and saves every sample as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use percore_benches::load::servers::{self, Paths, ServerKind};
use percore_benches::load::{self, Load, Options, cleanup, oha, pinning, report};

/// Measures native hyper, percore (core and request isolation) and `wasmtime
/// serve` with wrk, alternating servers over several rounds, and prints
/// requests/s, the ratio to native hyper, and latency percentiles; with
/// --wasi and --python, `wasi:http` and Python handlers on percore beside
/// `wasmtime serve` and granian.
#[derive(Debug, clap::Parser)]
#[command(name = "load", about)]
struct Args {
    /// One round, short measurements, fewer loads, no scaling pass, 10,000
    /// idle connections (about a minute in all).
    #[arg(long)]
    quick: bool,
    /// The same `wasi:http` component (`wasi_hello.wasm`) on percore in
    /// `core` and `request` isolation beside `wasmtime serve`: servers
    /// wasi-core,wasi-request,wasmtime-serve, loads
    /// /json@1,/json@64,/json@256,/plaintext@256x16 (a route the component
    /// does not answer is left out with a note), throughput only (each
    /// unless given). With --python: both sets in one run.
    #[arg(long)]
    wasi: bool,
    /// The Python handler (`guests/python-wiki`) on percore in `core` and
    /// `request` isolation beside its `/json` served natively by granian:
    /// servers python-core,python-request,granian, 2 workers, loads
    /// /json@1,/json@64 and the wiki index's /offsets/<random prefix> and
    /// /wiki/<random title>, throughput only (each unless given).
    #[arg(long)]
    python: bool,
    /// The parts to run, comma-separated: throughput, scaling, latency,
    /// idle [default: all four; throughput,latency,idle with --quick;
    /// scaling with --scaling].
    #[arg(long, value_name = "PART,..", value_delimiter = ',', value_parser = parse_part)]
    parts: Option<Vec<Part>>,
    /// Rounds [default: 3; 1 with --quick].
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    /// Seconds per measurement [default: 4; 2 with --quick].
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// Seconds of warm-up per route after each server start [default: 1].
    #[arg(long, value_name = "SECS")]
    warmup: Option<u64>,
    /// Throughput loads, comma-separated, each ROUTE@CONNECTIONS or
    /// ROUTE@CONNECTIONSxDEPTH (DEPTH requests pipelined per write)
    /// [default: /json@16,/json@64,/json@256,/json@512,/plaintext@256x16,
    /// /plaintext@1024x16; with --quick /json@256,/plaintext@256x16].
    #[arg(long, value_name = "LOAD,..", value_delimiter = ',', value_parser = parse_load)]
    loads: Option<Vec<Load>>,
    /// The wiki load: an index built by `percore index` (benches/load makes
    /// one under target/load/wiki); with --wiki-titles, percore serves the
    /// wiki guest on / and /wiki/<random title> is measured.
    #[arg(long, value_name = "DIR", requires = "wiki_titles")]
    wiki_index: Option<PathBuf>,
    /// Percent-encoded titles of the wiki index's dump, one per line.
    #[arg(long, value_name = "FILE", requires = "wiki_index")]
    wiki_titles: Option<PathBuf>,
    /// Connections of the wiki load.
    #[arg(long, value_name = "N", default_value_t = 64)]
    wiki_connections: u32,
    /// Run the scaling pass (only it, unless --parts says more): /json@256
    /// and /plaintext@256x16 at each worker count, comma-separated
    /// [default: 1, 2, 4, ... up to --max-workers], wrk and the server
    /// pinned to CPUs of their own where they fit.
    #[arg(long, value_name = "N,..", value_delimiter = ',', num_args = 0..=1)]
    scaling: Option<Vec<usize>>,
    /// The top of the scaling pass's default ladder [default: the CPUs this
    /// process may use (nproc)].
    #[arg(long, value_name = "N")]
    max_workers: Option<usize>,
    /// CPUs the scaling pass reserves for wrk (the last ones; one wrk
    /// thread each); 0 pins nothing [default: half the CPUs, at least 1].
    #[arg(long, value_name = "N")]
    client_cpus: Option<usize>,
    /// Route of the fixed-rate latency runs.
    #[arg(long, value_name = "PATH", default_value = "/json")]
    latency_route: String,
    /// Connections of the latency runs (when the throughput loads do not
    /// include the route at this count, or the throughput part is not run,
    /// its peak is measured first).
    #[arg(long, value_name = "N", default_value_t = 64)]
    latency_connections: u32,
    /// Fractions of each server's own peak to hold, comma-separated; 0 for
    /// no latency runs [default: 0.5,0.8; 0.5 with --quick].
    #[arg(long, value_name = "F,..", value_delimiter = ',')]
    latency_fractions: Option<Vec<f64>>,
    /// Absolute rates (req/s) to hold every server at, comma-separated, so
    /// that tails compare at the same load (after the fractions of the
    /// peak) [default: none].
    #[arg(long, value_name = "REQ/S,..", value_delimiter = ',')]
    latency_rates: Vec<f64>,
    /// Idle keep-alive connections to open, ascending, comma-separated; 0
    /// for none [default: 10000,50000; 10000 with --quick].
    #[arg(long, value_name = "N,..", value_delimiter = ',')]
    idle: Option<Vec<u32>>,
    /// Servers, comma-separated: native, core, request, wasmtime-serve
    /// (skipped with a note when wasmtime is not installed), core-nodeadline
    /// (core isolation without the deadline machinery, to measure its
    /// cost), core-metrics (with the ops listener on), wasi-core and
    /// wasi-request (`wasmtime serve`'s component on percore), python-core
    /// and python-request (the Python handler on percore; they need the
    /// wiki index), granian (its `/json` in CPython; skipped with a note when
    /// granian is not installed) [default: native,core,request,wasmtime-serve;
    /// see --wasi and --python].
    #[arg(long, value_name = "NAME,..", value_delimiter = ',', value_parser = ServerKind::parse)]
    servers: Option<Vec<ServerKind>>,
    /// Workers of every server [default: one per core; 2 with --python].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// wrk threads.
    #[arg(long, value_name = "N", default_value_t = 2)]
    wrk_threads: u32,
    /// Directory holding the release binaries [default: this binary's].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Directory of the harness's tools; wasmtime is DIR/bin/wasmtime, oha
    /// DIR/bin/oha [default: ~/.cache/percore-bench].
    #[arg(long, value_name = "DIR", env = "PERCORE_BENCH_TOOLS")]
    tools_dir: Option<PathBuf>,
    /// Directory of the repo's PyPI tools; granian is
    /// DIR/granian-VERSION [default: ~/.cache/percore-tools].
    #[arg(long, value_name = "DIR", env = "PERCORE_TOOLS")]
    python_tools: Option<PathBuf>,
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
    let (options, skipped) = options(&args)?;
    let json = args
        .json
        .clone()
        .unwrap_or_else(|| options.paths.log_dir.join("last-run.json"));
    eprintln!(
        "load: {} round(s) × {} server(s) × {} load(s), {}s each, {} workers, then scaling {}, \
         latency {}, idle {:?}; about {} min",
        options.rounds,
        options.servers.len(),
        options.loads.len(),
        options.duration.as_secs(),
        options.workers,
        options
            .scaling
            .as_ref()
            .map_or("off".to_owned(), |s| format!(
                "{:?} workers ({} CPU(s) for wrk)",
                s.workers, s.client_cpus
            )),
        options
            .latency
            .as_ref()
            .map_or("off".to_owned(), |l| format!(
                "{}@{} at {:?} of peak and {:?} req/s",
                l.load.route, l.load.connections, l.fractions, l.rates
            )),
        options
            .idle
            .as_ref()
            .map(|i| i.steps.clone())
            .unwrap_or_default(),
        options.estimate().as_secs().div_ceil(60)
    );
    let mut measured = load::run(&options)?;
    measured.notes.splice(0..0, skipped);
    if let Some(dir) = json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&json, serde_json::to_string_pretty(&measured)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let rows = report::rows(&measured.samples);
    if !rows.is_empty() {
        println!("### Throughput\n\n{}", report::markdown(&rows));
    }
    for note in &measured.notes {
        println!("{note}\n");
    }
    let against = report::baseline_markdown(&rows);
    if !against.is_empty() {
        println!("### Against the stock servers\n\n{against}");
    }
    let instantiation = report::instantiation_markdown(&rows);
    if !instantiation.is_empty() {
        println!("### What a fresh instance costs (request − core isolation)\n\n{instantiation}");
    }
    let scaling_rows = report::rows(&measured.scaling);
    let scaling = report::scaling_markdown(&scaling_rows);
    if !scaling.is_empty() {
        println!("### Scaling\n\n{scaling}");
    }
    if !rows.is_empty() {
        println!("### CPU: user vs system\n\n{}", report::cpu_markdown(&rows));
    }
    if !measured.latency.is_empty() {
        println!(
            "### Latency at a fixed rate\n\n{}",
            report::latency_markdown(&measured.latency)
        );
    }
    if !measured.idle.is_empty() {
        println!(
            "### Idle connections\n\n{}",
            report::idle_markdown(&measured.idle)
        );
    }
    println!("### Targets\n");
    for line in report::verdicts(&rows)
        .into_iter()
        .chain(report::extra_verdicts(&measured.latency, &measured.idle))
        .chain(report::noise(&rows))
        .chain(report::noise(&scaling_rows))
    {
        println!("- {line}");
    }
    eprintln!("load: measurements saved to {}", json.display());
    Ok(())
}

/// Parses a `--loads` item: `ROUTE@CONNECTIONS` or
/// `ROUTE@CONNECTIONSxDEPTH`.
fn parse_load(item: &str) -> Result<Load, String> {
    let (route, rest) = item
        .split_once('@')
        .ok_or_else(|| format!("{item:?}: write ROUTE@CONNECTIONS[xDEPTH], e.g. /json@256"))?;
    if !route.starts_with('/') {
        return Err(format!("{item:?}: the route must start with /"));
    }
    let (connections, depth) = rest.split_once('x').unwrap_or((rest, "1"));
    let number = |text: &str, what: &str| -> Result<u32, String> {
        text.parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{item:?}: {what} must be a number above 0"))
    };
    Ok(Load {
        route: route.to_owned(),
        connections: number(connections, "connections")?,
        depth: number(depth, "depth")?,
    })
}

/// A part of a run (`--parts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// wrk rounds over the loads.
    Throughput,
    /// wrk over worker counts, pinned.
    Scaling,
    /// oha at fixed fractions of the peak.
    Latency,
    /// Idle keep-alive connections.
    Idle,
}

impl Part {
    const ALL: [Part; 4] = [Part::Throughput, Part::Scaling, Part::Latency, Part::Idle];
}

/// Parses a `--parts` item.
fn parse_part(name: &str) -> Result<Part, String> {
    match name {
        "throughput" => Ok(Part::Throughput),
        "scaling" => Ok(Part::Scaling),
        "latency" => Ok(Part::Latency),
        "idle" => Ok(Part::Idle),
        _ => Err(format!(
            "unknown part {name:?}: use throughput, scaling, latency or idle"
        )),
    }
}

/// The scaling pass: the worker counts (`--scaling`, else 1, 2, 4, ... up
/// to `--max-workers`), the CPUs to split between server and wrk, and notes
/// on what could not be pinned.
fn scaling_plan(args: &Args) -> anyhow::Result<(load::ScalingPlan, Vec<String>)> {
    let mut notes = Vec::new();
    let cpus = pinning::allowed_cpus();
    let nproc = if cpus.is_empty() {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cpus.len()
    };
    let workers = match &args.scaling {
        Some(counts) if !counts.is_empty() => {
            anyhow::ensure!(
                counts.iter().all(|&w| w > 0),
                "--scaling worker counts must be above 0 (leave the pass out with --parts)"
            );
            counts.clone()
        }
        _ => pinning::doubling(args.max_workers.unwrap_or(nproc)),
    };
    let mut client_cpus = args.client_cpus.unwrap_or((nproc / 2).max(1));
    if client_cpus > 0 && cpus.len() < 2 {
        notes.push(format!(
            "scaling: nothing pinned: {} CPU(s) known to this process",
            cpus.len()
        ));
        client_cpus = 0;
    } else if client_cpus > 0 && !pinning::taskset_available() {
        notes.push("scaling: nothing pinned: taskset (util-linux) is not installed".to_owned());
        client_cpus = 0;
    }
    let loads = ["/json@256", "/plaintext@256x16"]
        .into_iter()
        .map(parse_load)
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::msg)?;
    Ok((
        load::ScalingPlan {
            workers,
            loads,
            cpus,
            client_cpus,
        },
        notes,
    ))
}

/// The run's options, and a note for each server or part dropped because
/// it cannot run here (for under the table).
fn options(args: &Args) -> anyhow::Result<(Options, Vec<String>)> {
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary has no directory")?
            .to_path_buf(),
    };
    let benches = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = benches.parent().unwrap_or(&benches);
    let tools_dir = args
        .tools_dir
        .clone()
        .unwrap_or_else(servers::default_tools_dir);
    let mut paths = Paths::beside(&bin_dir, workspace, &tools_dir);
    if let (Some(index), Some(titles)) = (&args.wiki_index, &args.wiki_titles) {
        paths = paths.with_wiki(workspace, index.clone(), titles.clone());
    }
    let python_tools = args
        .python_tools
        .clone()
        .unwrap_or_else(servers::default_python_tools_dir);
    paths = paths.with_granian(&python_tools);
    let mut servers = match &args.servers {
        Some(servers) => servers.clone(),
        None => {
            let mut servers = Vec::new();
            if args.wasi {
                servers.extend([
                    ServerKind::WasiCore,
                    ServerKind::WasiRequest,
                    ServerKind::WasmtimeServe,
                ]);
            }
            if args.python {
                servers.extend([
                    ServerKind::PythonCore,
                    ServerKind::PythonRequest,
                    ServerKind::Granian,
                ]);
            }
            if servers.is_empty() {
                servers = vec![
                    ServerKind::Native,
                    ServerKind::PercoreCore,
                    ServerKind::PercoreRequest,
                    ServerKind::WasmtimeServe,
                ];
            }
            servers
        }
    };
    let mut skipped = Vec::new();
    let mut skip = |servers: &mut Vec<ServerKind>, drop: &[ServerKind], reason: String| {
        if servers.iter().any(|k| drop.contains(k)) {
            let names: Vec<&str> = drop
                .iter()
                .filter(|k| servers.contains(k))
                .map(|k| k.label())
                .collect();
            let note = format!("{} skipped: {reason}", names.join(" and "));
            eprintln!("load: {note}");
            skipped.push(note);
            servers.retain(|k| !drop.contains(k));
        }
    };
    if servers.contains(&ServerKind::WasmtimeServe) {
        let lock = std::fs::read_to_string(workspace.join("Cargo.lock")).unwrap_or_default();
        match servers::wasmtime_serve_ready(&paths, &tools_dir, &lock) {
            Ok(version) => eprintln!("load: wasmtime serve is {version}"),
            Err(reason) => skip(&mut servers, &[ServerKind::WasmtimeServe], reason),
        }
    }
    if let Err(reason) = servers::python_ready(&paths) {
        skip(
            &mut servers,
            &[ServerKind::PythonCore, ServerKind::PythonRequest],
            reason,
        );
    }
    if let Err(reason) = servers::granian_ready(&paths, &python_tools) {
        skip(&mut servers, &[ServerKind::Granian], reason);
    }
    anyhow::ensure!(!servers.is_empty(), "no server left to measure");
    let quick = args.quick;
    let preset = args.wasi || args.python;
    let parts = match (&args.parts, &args.scaling) {
        (Some(parts), _) => parts.clone(),
        (None, Some(_)) => vec![Part::Scaling],
        (None, None) if preset => vec![Part::Throughput],
        (None, None) if quick => vec![Part::Throughput, Part::Latency, Part::Idle],
        (None, None) => Part::ALL.to_vec(),
    };
    let default_loads = match (args.wasi, args.python) {
        (true, _) => "/json@1,/json@64,/json@256,/plaintext@256x16",
        (false, true) => "/json@1,/json@64",
        (false, false) if quick => "/json@256,/plaintext@256x16",
        (false, false) => {
            "/json@16,/json@64,/json@256,/json@512,/plaintext@256x16,/plaintext@1024x16"
        }
    };
    let mut loads = match &args.loads {
        Some(loads) => loads.clone(),
        None => default_loads
            .split(',')
            .map(parse_load)
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)?,
    };
    if paths.wiki.is_some() {
        // Each wiki load that a server here serves; `/offsets` only beside
        // the Python handler (the default run leaves it out).
        let python = servers.iter().any(|k| k.is_python());
        for route in [load::WIKI_ROUTE, load::READ_ROUTE, load::OFFSETS_ROUTE] {
            let mode = load::wiki_mode(route).unwrap_or_default();
            if servers.iter().any(|k| k.serves_wiki(mode))
                && (route != load::OFFSETS_ROUTE || python)
            {
                loads.push(Load {
                    route: route.into(),
                    connections: args.wiki_connections.max(1),
                    depth: 1,
                });
            }
        }
    }
    if !parts.contains(&Part::Throughput) {
        loads.clear();
    }
    let workers = args.workers.unwrap_or_else(|| {
        if args.python {
            2
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    });
    let secs = |flag: Option<u64>, default: u64, quick_default: u64| {
        Duration::from_secs(flag.unwrap_or(if quick { quick_default } else { default }))
    };
    let duration = secs(args.duration, 4, 2).max(Duration::from_secs(1));
    let scaling = if parts.contains(&Part::Scaling) {
        let (plan, notes) = scaling_plan(args)?;
        for note in notes {
            eprintln!("load: {note}");
            skipped.push(note);
        }
        Some(plan)
    } else {
        None
    };
    let fractions: Vec<f64> = args
        .latency_fractions
        .clone()
        .unwrap_or_else(|| if quick { vec![0.5] } else { vec![0.5, 0.8] })
        .into_iter()
        .filter(|&f| f > 0.0)
        .collect();
    anyhow::ensure!(
        fractions.iter().all(|&f| f <= 1.5),
        "--latency-fractions are fractions of the peak, e.g. 0.5"
    );
    let rates: Vec<f64> = args
        .latency_rates
        .iter()
        .copied()
        .filter(|&r| r > 0.0)
        .collect();
    let mut latency = (parts.contains(&Part::Latency)
        && !(fractions.is_empty() && rates.is_empty()))
    .then(|| load::LatencyPlan {
        load: Load {
            route: args.latency_route.clone(),
            connections: args.latency_connections,
            depth: 1,
        },
        fractions,
        rates,
        duration: secs(args.duration, 5, 2).max(Duration::from_secs(1)),
        threads: 2,
    });
    if latency.is_some() {
        match oha::ready(&paths.oha) {
            Ok(version) => eprintln!("load: the latency client is {version}"),
            Err(reason) => {
                let note = format!("fixed-rate latency skipped: {reason}");
                eprintln!("load: {note}");
                skipped.push(note);
                latency = None;
            }
        }
    }
    let mut steps: Vec<u32> = args
        .idle
        .clone()
        .unwrap_or_else(|| {
            if quick {
                vec![10_000]
            } else {
                vec![10_000, 50_000]
            }
        })
        .into_iter()
        .filter(|&n| n > 0)
        .collect();
    steps.sort_unstable();
    let idle = (parts.contains(&Part::Idle) && !steps.is_empty()).then(|| load::IdlePlan {
        steps,
        probes: 100,
        route: "/plaintext".into(),
    });
    anyhow::ensure!(
        !loads.is_empty() || scaling.is_some() || latency.is_some() || idle.is_some(),
        "nothing to run: every part asked for is empty or skipped"
    );
    let options = Options {
        rounds: args.rounds.unwrap_or(if quick { 1 } else { 3 }).max(1),
        duration,
        warmup: secs(args.warmup, 1, 1),
        servers,
        workers,
        loads,
        scaling,
        latency,
        idle,
        wrk_threads: args.wrk_threads,
        paths,
    };
    Ok((options, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_parse() {
        assert_eq!(
            parse_load("/plaintext@256x16"),
            Ok(Load {
                route: "/plaintext".into(),
                connections: 256,
                depth: 16
            })
        );
        assert_eq!(parse_load("/json@64").unwrap().depth, 1);
        assert!(parse_load("json@64").is_err());
        assert!(parse_load("/json").is_err());
        assert!(parse_load("/json@0").is_err());
        assert!(parse_load("/json@64x").is_err());
    }

    #[test]
    fn parts_parse() {
        assert_eq!(parse_part("scaling"), Ok(Part::Scaling));
        assert!(parse_part("everything").is_err());
    }
}
