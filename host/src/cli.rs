//! The `percore` command line. Each subcommand parses its flags into the
//! library's types and calls one library function; errors are printed with
//! their full context and become exit code 1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Isolation, RouteConfig, Source};
use crate::server::{RunningServer, Server};

/// percore: a per-core WebAssembly handler host.
#[derive(Debug, Parser)]
#[command(name = "percore", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve handlers over HTTP, one worker per core.
    Serve(ServeArgs),
    /// Index a sample (or your) Wikipedia dump and serve the demo guests on
    /// 127.0.0.1:8080, printing the URLs to try.
    Demo(DemoArgs),
    /// Build the title index of a MediaWiki XML dump.
    Index(IndexArgs),
}

/// Flags of `percore index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// The uncompressed MediaWiki XML export (`pages-articles.xml`).
    pub dump: PathBuf,
    /// Directory to write the index to (replaced atomically when complete).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Flags of `percore serve`; each overrides the config file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file (see the README for its keys).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// A route: /PREFIX=FILE.wasm[,isolation=core|request][,deadline-ms=N]
    /// [,max-memory-bytes=N][,max-request-body-bytes=N][,max-response-bytes=N].
    /// Repeat for more routes; the longest matching prefix wins.
    #[arg(long = "route", value_name = "SPEC", value_parser = RouteConfig::parse_flag)]
    pub routes: Vec<RouteConfig>,
    /// Number of workers [default: one per core].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Default isolation of routes [default: request].
    #[arg(long, value_enum)]
    pub isolation: Option<Isolation>,
    /// Per-request deadline of every route, in milliseconds [default: 10000].
    #[arg(long, value_name = "MS")]
    pub deadline_ms: Option<u64>,
    /// A title index built by `percore index`, shared read-only by every
    /// worker through the `wiki` interface.
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
}

/// Flags of `percore demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Number of workers [default: one per core].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Isolation of the demo routes.
    #[arg(long, value_enum, default_value_t = Isolation::Request)]
    pub isolation: Isolation,
    /// A MediaWiki XML dump to serve instead of the built-in sample.
    #[arg(long, value_name = "FILE")]
    pub dump: Option<PathBuf>,
    /// Where the demo keeps the sample dump and the indexes it builds
    /// [default: percore-demo in the system's temporary directory].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// Runs the command line; the `percore` binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PERCORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Demo(args) => demo(args),
        Command::Index(args) => index(args),
    }
}

/// The configuration `percore serve` runs with: the file, then the flags.
pub fn serve_config(args: ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path).map_err(anyhow::Error::msg)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(workers) = args.workers {
        anyhow::ensure!(workers > 0, "--workers must be at least 1");
        config.workers = Some(workers);
    }
    if let Some(isolation) = args.isolation {
        config.isolation = isolation;
    }
    if let Some(ms) = args.deadline_ms {
        config.limits.deadline_ms = ms;
    }
    if let Some(index) = args.index {
        config.index = Some(index);
    }
    for route in args.routes {
        config.set_route(route);
    }
    anyhow::ensure!(
        !config.routes.is_empty(),
        "no routes: give at least one --route /PREFIX=FILE.wasm (or [[route]] in --config)"
    );
    Ok(config)
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = serve_config(args)?;
    let server = Server::new(config).start()?;
    wait_for_signal(server)
}

fn index(args: IndexArgs) -> anyhow::Result<()> {
    let report = percore_index::build_index(
        &args.dump,
        &args.out,
        percore_index::BuildOptions {
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        },
    )?;
    println!("{report}");
    Ok(())
}

/// The sample dump shipped with the repo (a few hundred pages that exercise
/// the tricky cases of real dumps).
const SAMPLE_DUMP: &[u8] = include_bytes!("../index/testdata/sample.xml");

/// Returns the index directory for `dump` under `data`, building the index
/// unless a valid one for this very dump is already there.
pub fn demo_index(dump: &std::path::Path, data: &std::path::Path) -> anyhow::Result<PathBuf> {
    let stem = dump
        .file_stem()
        .map_or_else(|| "dump".into(), |s| s.to_string_lossy().into_owned());
    let dir = data.join(format!("{stem}.index"));
    match percore_index::TitleIndex::open_with_dump(&dir, dump) {
        Ok(_) => tracing::info!(index = %dir.display(), "reusing the index"),
        Err(_) => {
            println!("indexing {} into {} ...", dump.display(), dir.display());
            index(IndexArgs {
                dump: dump.to_path_buf(),
                out: dir.clone(),
            })?;
        }
    }
    Ok(dir)
}

/// The demo's configuration: the TechEmpower guest on `/json` and
/// `/plaintext`, the wiki guest on everything else.
pub fn demo_config(
    listen: SocketAddr,
    workers: Option<usize>,
    isolation: Isolation,
    index: PathBuf,
) -> Config {
    let route = |prefix: &str, name: &'static str, bytes: &'static [u8]| RouteConfig {
        prefix: prefix.into(),
        source: Source::Embedded { name, bytes },
        isolation: Some(isolation),
        limits: Default::default(),
    };
    Config {
        listen,
        workers,
        isolation,
        routes: vec![
            route("/json", "hello", crate::guests::HELLO),
            route("/plaintext", "hello", crate::guests::HELLO),
            route("/", "wiki", crate::guests::WIKI),
        ],
        index: Some(index),
        ..Config::default()
    }
}

fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("percore-demo"));
    std::fs::create_dir_all(&data)
        .with_context(|| format!("cannot create the demo directory {}", data.display()))?;
    let dump = match &args.dump {
        Some(dump) => std::path::absolute(dump)?,
        None => {
            let path = data.join("sample.xml");
            if std::fs::read(&path).ok().as_deref() != Some(SAMPLE_DUMP) {
                std::fs::write(&path, SAMPLE_DUMP)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            path
        }
    };
    let index = demo_index(&dump, &data)?;
    let config = demo_config(args.listen, args.workers, args.isolation, index);
    let server = Server::new(config).start().context(
        "starting the demo (is something else listening on that address? try --listen 127.0.0.1:0)",
    )?;
    let base = format!("http://{}", server.local_addr());
    println!("percore demo is serving {} on {base}", dump.display());
    println!("  Search page:           {base}/");
    println!("  Titles by prefix:      {base}/offsets/Py");
    println!("  A page:                {base}/wiki/Python_(programming_language)");
    println!("  The dump (ranges too): {base}/xml");
    println!("  TechEmpower JSON:      {base}/json");
    println!("  TechEmpower plaintext: {base}/plaintext");
    println!("Press Ctrl-C to stop.");
    wait_for_signal(server)
}

/// Blocks until SIGINT or SIGTERM, then shuts the server down gracefully.
fn wait_for_signal(server: RunningServer) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    })?;
    tracing::info!("shutting down: finishing in-flight requests");
    server.shutdown();
    Ok(())
}
