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
    /// Serve the built-in demo guests on 127.0.0.1:8080 and print the URLs to try.
    Demo(DemoArgs),
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

fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let hello = |prefix: &str| RouteConfig {
        prefix: prefix.into(),
        source: Source::Embedded {
            name: "hello",
            bytes: crate::guests::HELLO,
        },
        isolation: Some(args.isolation),
        limits: Default::default(),
    };
    let config = Config {
        listen: args.listen,
        workers: args.workers,
        isolation: args.isolation,
        routes: vec![hello("/json"), hello("/plaintext")],
        ..Config::default()
    };
    let server = Server::new(config).start().context(
        "starting the demo (is something else listening on that address? try --listen 127.0.0.1:0)",
    )?;
    let base = format!("http://{}", server.local_addr());
    println!("percore demo is serving on {base}");
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
