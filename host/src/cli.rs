//! The `percore` command line. Each subcommand parses its flags into the
//! library's types and calls one library function; errors are printed with
//! their full context and become exit code 1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::admin::AdminToken;
use crate::admin::client::AdminClient;
use crate::config::{Config, Isolation, RouteConfig, RouteOptions, Source};
use crate::oci::{InsecureRegistry, OciReference, RegistryClient};
use crate::registry::RouteInfo;
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
    /// Deploy a component to a route of a running host (admin API).
    Deploy(DeployArgs),
    /// List a running host's routes: the version serving each and its
    /// history.
    Routes(AdminArgs),
    /// Serve a route's previous version again, or (--to) any version of
    /// its history.
    Rollback(RollbackArgs),
    /// Remove a route from a running host.
    Undeploy(RouteArgs),
    /// Create a new handler: a Rust crate (Cargo.toml, src/lib.rs, the SDK
    /// in sdk/, wit/, README) from a template, or a Python or JavaScript
    /// project (app, build.sh, wit/, README).
    New(NewArgs),
    /// Push a component to an OCI registry as a wasm artifact and print
    /// its digest (deploy it as oci://REGISTRY/REPO@DIGEST).
    Push(PushArgs),
    /// Check, without a host, that a component would deploy: its world,
    /// its imports, and that it compiles as a deploy compiles it.
    Check(CheckArgs),
    /// Build the handler crate in the current directory for wasm32-wasip2
    /// and serve it; with --watch, rebuild and redeploy on every change.
    Up(UpArgs),
    /// Internal: compile one component read on stdin (the host runs this
    /// in a child process, within a budget; see `percore::compiler`).
    #[command(name = "__compile", hide = true)]
    Compile {
        /// The compiler settings, as JSON.
        settings: String,
    },
}

/// How the admin commands reach the host.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The host's admin API (`--admin` of `percore serve`).
    #[arg(
        long,
        value_name = "URL",
        env = "PERCORE_ADMIN",
        default_value = "http://127.0.0.1:9090"
    )]
    pub admin: String,
    /// File holding the admin token [default: $PERCORE_ADMIN_TOKEN].
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Print the host's JSON answer instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `percore undeploy`.
#[derive(Debug, Args)]
pub struct RouteArgs {
    /// The route's prefix, e.g. /api.
    pub route: String,
    /// How to reach the host.
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Flags of `percore rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The route's prefix, e.g. /api.
    pub route: String,
    /// The version to serve: the start of its SHA-256 (at least 4 hex
    /// digits, as `percore routes` lists it), back or forward [default:
    /// the version that served before the current one].
    #[arg(long, value_name = "HASH")]
    pub to: Option<String>,
    /// How to reach the host.
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Flags of `percore check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The component (a .wasm built for wasm32-wasip2).
    pub wasm: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `percore up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// A title index built by `percore index`, for handlers that import
    /// the `wiki` interface.
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The route the handler serves.
    #[arg(long, value_name = "PREFIX", default_value = "/")]
    pub route: String,
    /// Rebuild when a source changes (src/, wit/, Cargo.toml) and deploy
    /// the new component while the host keeps serving; a failed build
    /// keeps the old version serving.
    #[arg(long)]
    pub watch: bool,
    /// The route's isolation and limits.
    #[command(flatten)]
    pub options: RouteOptions,
}

/// Flags of `percore deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The route's prefix, e.g. /api (created when it does not exist).
    pub route: String,
    /// The component: a .wasm built for wasm32-wasip2, uploaded to the
    /// host; or oci://REGISTRY/REPO:TAG (or @sha256:DIGEST), which the host
    /// pulls from the registry with its own credentials.
    #[arg(value_name = "COMPONENT")]
    pub wasm: String,
    /// The route's isolation and limits.
    #[command(flatten)]
    pub options: RouteOptions,
    /// How to reach the host.
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Flags of `percore push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The component (a .wasm built for wasm32-wasip2).
    pub wasm: PathBuf,
    /// Where to push it: REGISTRY/REPO:TAG (`oci://` may be written
    /// before it). Credentials come from $PERCORE_REGISTRY_USERNAME and
    /// $PERCORE_REGISTRY_PASSWORD, else the Docker config file.
    #[arg(value_name = "REGISTRY/REPO:TAG")]
    pub reference: String,
    /// Speak plain HTTP to this registry (HOST:PORT) instead of HTTPS.
    /// Repeat for more.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<InsecureRegistry>,
}

/// Flags of `percore new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The crate's name (also its directory, unless --dir is given).
    pub name: String,
    /// The crate's own directory, created by this command and not there
    /// yet (not its parent) [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The handler's language: rust (percore's handler world, with the
    /// SDK), python (componentize-py) or js (componentize-js), both
    /// standard wasi:http handlers.
    #[arg(long, value_enum, default_value_t)]
    pub lang: crate::new::Lang,
    /// What a Rust handler starts as: hello (a line of text), json-api (a
    /// JSON API with the router), wiki-browser (a title browser over the
    /// wiki index). Python and JavaScript handlers start as hello.
    #[arg(long, value_enum, default_value_t)]
    pub template: crate::new::Template,
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
    /// A route: /PREFIX=FILE.wasm[,isolation=core|request][,deadline_ms=N]
    /// [,max_memory_bytes=N][,max_request_body_bytes=N][,max_response_bytes=N].
    /// FILE.wasm may be oci://REGISTRY/REPO:TAG or oci://REGISTRY/REPO@sha256:...
    /// (pulled into --state). Repeat for more routes; the longest matching
    /// prefix wins.
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
    /// The dump of --index, when it has moved since it was indexed (the
    /// index records its absolute path) [default: the recorded path].
    #[arg(long, value_name = "FILE", requires = "index")]
    pub dump: Option<PathBuf>,
    /// Serve the admin API (deploy, routes, rollback, undeploy) on ADDR,
    /// `HOST:PORT` or a port on loopback [default: off].
    #[arg(long, value_name = "ADDR", value_parser = crate::admin::parse_admin_addr)]
    pub admin: Option<SocketAddr>,
    /// File holding the admin API's bearer token [default:
    /// $PERCORE_ADMIN_TOKEN].
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// State directory: deployed components and routes (restored at start)
    /// and the cache of compiled components [default: none].
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Serve /livez, /readyz and /metrics (unauthenticated) on ADDR,
    /// `HOST:PORT` or a port on loopback [default: off].
    #[arg(long, value_name = "ADDR", value_parser = crate::config::parse_local_addr)]
    pub ops: Option<SocketAddr>,
    /// Append one JSON line per request to FILE (`-`: stdout) [default: off].
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// After SIGTERM, keep serving this long (readiness 503, `Connection:
    /// close` on every response) before stopping, in milliseconds [default:
    /// 5000].
    #[arg(long, value_name = "MS")]
    pub drain_delay_ms: Option<u64>,
    /// Speak plain HTTP to this registry (HOST:PORT) instead of HTTPS when
    /// pulling oci:// components. Repeat for more; adds to the config
    /// file's insecure_registries.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<InsecureRegistry>,
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
    /// Serve `/offsets` and `/wiki` with the Python handler
    /// (`guests/python-wiki`, built from this checkout by its `build.sh`,
    /// which needs python3 with pip) instead of the Rust wiki guest.
    #[arg(long)]
    pub python: bool,
}

/// Runs the command line; the `percore` binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Compile { settings } = &cli.command {
        // The compiler process: its own exit codes (see `percore::compiler`).
        return crate::compiler::child_main(settings);
    }
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sends `tracing` output to stderr, filtered by `PERCORE_LOG` (default
/// `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PERCORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .event_format(crate::trace::TraceIdFormat {
            inner: tracing_subscriber::fmt::format::Format::default(),
        })
        .try_init();
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Demo(args) => demo(args),
        Command::Index(args) => index(args),
        Command::Deploy(args) => deploy(args),
        Command::Routes(args) => routes(args),
        Command::Rollback(args) => rollback(args),
        Command::Undeploy(args) => undeploy(args),
        Command::New(args) => new(args),
        Command::Push(args) => push(args),
        Command::Check(args) => check(args),
        Command::Up(args) => up(args),
        Command::Compile { settings } => match crate::compiler::child_main(&settings) {
            code if code == ExitCode::SUCCESS => Ok(()),
            _ => anyhow::bail!("compiling the component failed (see above)"),
        },
    }
}

/// The configuration `percore serve` runs with: the file, then the flags.
pub fn serve_config(args: ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
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
    if let Some(dump) = args.dump {
        config.dump = Some(dump);
    }
    if let Some(index) = args.index {
        config.index = Some(index);
    }
    if let Some(admin) = args.admin {
        config.admin = Some(admin);
    }
    if let Some(file) = args.admin_token_file {
        config.admin_token_file = Some(file);
    }
    if let Some(state) = args.state {
        config.state = Some(state);
    }
    if let Some(ops) = args.ops {
        config.ops = Some(ops);
    }
    if let Some(file) = args.access_log {
        config.access_log = Some(file);
    }
    if let Some(ms) = args.drain_delay_ms {
        config.http.drain_delay_ms = ms;
    }
    for host in args.insecure_registries {
        if !config.insecure_registries.contains(&host) {
            config.insecure_registries.push(host);
        }
    }
    config.add_flag_routes(args.routes)?;
    anyhow::ensure!(
        !config.routes.is_empty() || config.state.is_some() || config.admin.is_some(),
        "no routes: give at least one --route /PREFIX=FILE.wasm (or [[route]] in --config), or --admin ADDR to deploy them later"
    );
    Ok(config)
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = serve_config(args)?;
    let signals = Signals::listen()?;
    let server = with_compiler(Server::new(config))?.start()?;
    signals.wait(server)
}

fn admin_client(args: &AdminArgs) -> anyhow::Result<AdminClient> {
    let token = AdminToken::load_for_client(args.admin_token_file.as_deref())?;
    Ok(AdminClient::new(&args.admin, Some(token)))
}

/// Prints an admin answer: `answer` as JSON with `--json`, else one line
/// per route (`verb` first: "deployed ", "removed "...).
fn print_routes(
    args: &AdminArgs,
    answer: &impl serde::Serialize,
    routes: &[RouteInfo],
    restore_errors: &[String],
    verb: &str,
) {
    if args.json {
        let json = serde_json::to_string_pretty(answer).expect("admin answers serialise");
        println!("{json}");
        return;
    }
    if routes.is_empty() && restore_errors.is_empty() {
        println!("no routes: deploy one with `percore deploy /PREFIX FILE.wasm`");
    }
    for route in routes {
        let hash = &route.version.hash;
        let verb = if route.unchanged { "unchanged " } else { verb };
        println!(
            "{verb}{} sha256:{} {} bytes, {}, deployed {}, {} isolation, {} earlier version(s)",
            route.prefix,
            &hash[..hash.len().min(16)],
            route.version.size,
            route.world,
            utc(route.version.deployed_at),
            route.isolation,
            route.history.len(),
        );
        // The history, the version that served last first: what
        // `percore rollback` returns to (any of them with --to HASH).
        for earlier in &route.history {
            println!(
                "    earlier: sha256:{} {} bytes, deployed {}, {}",
                &earlier.hash[..earlier.hash.len().min(16)],
                earlier.size,
                utc(earlier.deployed_at),
                options_text(&earlier.options),
            );
        }
        if let Some(oci) = &route.version.oci {
            println!("    from {} ({})", oci.reference, oci.digest);
        }
        if let Some(origins) = &route.allow_outbound {
            println!("    may send requests to {origins}");
        }
    }
    for error in restore_errors {
        println!("not restored: {error}");
    }
}

/// A version's options as `percore routes` shows them.
fn options_text(options: &RouteOptions) -> String {
    match options.to_query() {
        query if query.is_empty() => "the host's isolation and limits".to_owned(),
        query => format!("options {}", query.replace('&', ",")),
    }
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC` (the civil
/// calendar from days, after Howard Hinnant's `civil_from_days`).
fn utc(secs: u64) -> String {
    let t = percore_httpkit::CivilTime::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let client = admin_client(&args.admin)?;
    let route = match Source::parse(&args.wasm).map_err(anyhow::Error::msg)? {
        Source::Oci(reference) => client
            .deploy_reference(&args.route, &reference.to_string(), &args.options)
            .with_context(|| format!("deploying {reference} to {}", args.route))?,
        _ => {
            let path = std::path::Path::new(&args.wasm);
            let wasm = crate::registry::read_component_file(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            client
                .deploy(&args.route, &wasm, &args.options)
                .with_context(|| format!("deploying {} to {}", path.display(), args.route))?
        }
    };
    print_routes(
        &args.admin,
        &route,
        std::slice::from_ref(&route),
        &[],
        "deployed ",
    );
    Ok(())
}

fn routes(args: AdminArgs) -> anyhow::Result<()> {
    let list = admin_client(&args)?.routes()?;
    print_routes(&args, &list, &list.routes, &list.restore_errors, "");
    Ok(())
}

fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let route = admin_client(&args.admin)?
        .rollback_to(&args.route, args.to.as_deref())
        .with_context(|| format!("rolling back {}", args.route))?;
    print_routes(
        &args.admin,
        &route,
        std::slice::from_ref(&route),
        &[],
        "rolled back ",
    );
    Ok(())
}

fn undeploy(args: RouteArgs) -> anyhow::Result<()> {
    let route = admin_client(&args.admin)?
        .undeploy(&args.route)
        .with_context(|| format!("removing {}", args.route))?;
    print_routes(
        &args.admin,
        &route,
        std::slice::from_ref(&route),
        &[],
        "removed ",
    );
    Ok(())
}

fn push(args: PushArgs) -> anyhow::Result<()> {
    let reference = OciReference::parse_bare(&args.reference)?;
    let wasm = crate::registry::read_component_file(&args.wasm)
        .with_context(|| format!("cannot read {}", args.wasm.display()))?;
    crate::engine::check_kind(&args.wasm.display().to_string(), &wasm)?;
    let client = RegistryClient::new(args.insecure_registries, u64::MAX);
    let title = args.wasm.file_name().map_or_else(
        || "component.wasm".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let digest = client
        .push(&reference, &wasm, &title)
        .with_context(|| format!("pushing {} to {reference}", args.wasm.display()))?;
    eprintln!(
        "pushed {} ({} bytes); deploy it as {}",
        args.wasm.display(),
        wasm.len(),
        reference.pinned(&digest)
    );
    println!("{digest}");
    Ok(())
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let report = crate::check::check(&args.wasm, Some(child_compiler()?))?;
    if args.json {
        let json = serde_json::to_string_pretty(&report).expect("a check report serialises");
        println!("{json}");
    } else {
        print!("{report}");
    }
    // The report first, then the error (on stderr).
    let _ = std::io::Write::flush(&mut std::io::stdout());
    match &report.error {
        None => Ok(()),
        Some(error) => Err(anyhow::anyhow!("{error}")),
    }
}

fn up(args: UpArgs) -> anyhow::Result<()> {
    let dir = std::env::current_dir().context("cannot read the current directory")?;
    let prefix = crate::router::normalize_prefix(&args.route).to_owned();
    crate::router::validate_prefix(&prefix).map_err(anyhow::Error::msg)?;
    // The baseline before the first build: an edit made during it counts.
    let watcher = crate::up::Watcher::new(&dir);
    eprintln!(
        "building {} (cargo build --release --target {}) ...",
        dir.display(),
        crate::up::TARGET
    );
    let built = crate::up::build(&dir)?;
    let config = Config {
        listen: args.listen,
        index: args.index,
        routes: vec![RouteConfig {
            prefix: prefix.clone(),
            source: Source::File(built.wasm.clone()),
            options: args.options.clone(),
        }],
        // Nothing waits on a local host: Ctrl-C stops it at once.
        http: crate::config::HttpConfig {
            drain_delay_ms: 0,
            ..Default::default()
        },
        ..Config::default()
    };
    let signals = Signals::listen()?;
    let server = with_compiler(Server::new(config))?
        .start()
        .with_context(|| format!("serving {}", built.wasm.display()))?;
    let path = prefix.trim_start_matches('/');
    println!(
        "serving {} ({}) on http://{}/{path}",
        built.name,
        built.wasm.display(),
        server.local_addr()
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if args.watch {
        println!("watching src/, wit/ and Cargo.toml: every change is rebuilt and deployed");
        let registry = server.registry().clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("percore-watch".into())
            .spawn(move || crate::up::watch(watcher, &registry, &prefix, &args.options, &stop))
            .context("cannot start the watcher thread")?;
    }
    println!("Press Ctrl-C to stop.");
    let result = signals.wait(server);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    result
}

fn new(args: NewArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    crate::new::scaffold(&dir, &args.name, args.lang, args.template)?;
    let wasm = crate::new::component_path(&args.name, args.lang);
    println!("created {} (see its README.md). Next:", dir.display());
    println!(
        "  cd {} && {}",
        dir.display(),
        crate::new::build_command(args.lang)
    );
    println!(
        "  export PERCORE_ADMIN_TOKEN=...   # the admin token the host was started with (or --admin-token-file FILE)"
    );
    println!("  percore deploy /{} {wasm}", args.name);
    Ok(())
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
/// `/plaintext`, the wiki guest on everything else; with `python` (the
/// Python handler's component, `--python`), that handler on `/offsets` and
/// `/wiki`, which leaves the Rust guest the search page and `/xml`.
pub fn demo_config(
    listen: SocketAddr,
    workers: Option<usize>,
    isolation: Isolation,
    index: PathBuf,
    python: Option<PathBuf>,
) -> Config {
    let route = |prefix: &str, source: Source| RouteConfig {
        prefix: prefix.into(),
        source,
        options: RouteOptions {
            isolation: Some(isolation),
            ..RouteOptions::default()
        },
    };
    let embedded = |name, bytes| Source::Embedded { name, bytes };
    let mut routes = vec![
        route("/json", embedded("hello", crate::guests::HELLO)),
        route("/plaintext", embedded("hello", crate::guests::HELLO)),
        route("/", embedded("wiki", crate::guests::WIKI)),
    ];
    if let Some(python) = python {
        for prefix in ["/offsets", "/wiki"] {
            routes.push(route(prefix, Source::File(python.clone())));
        }
    }
    Config {
        listen,
        workers,
        isolation,
        routes,
        index: Some(index),
        // No load balancer waits on a demo: Ctrl-C stops it at once.
        http: crate::config::HttpConfig {
            drain_delay_ms: 0,
            ..Default::default()
        },
        ..Config::default()
    }
}

/// Builds the Python wiki handler into `data` with
/// `guests/python-wiki/build.sh` of the checkout this binary was built
/// from (the script says what it lacks, e.g. python3 or pip); returns the
/// component's path.
pub fn build_python_handler(data: &std::path::Path) -> anyhow::Result<PathBuf> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests/python-wiki/build.sh");
    anyhow::ensure!(
        script.is_file(),
        "--python builds the handler from the percore sources, and {} is not there (run the demo from a checkout: cargo run -- demo --python)",
        script.display()
    );
    let out = data.join("python-wiki.wasm");
    println!("building the Python handler with {} ...", script.display());
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(&out)
        .status()
        .with_context(|| format!("cannot run bash {}", script.display()))?;
    anyhow::ensure!(
        status.success(),
        "building the Python handler failed: {} exited with {status} (see above)",
        script.display()
    );
    Ok(out)
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
    let python = if args.python {
        Some(build_python_handler(&data)?)
    } else {
        None
    };
    let config = demo_config(
        args.listen,
        args.workers,
        args.isolation,
        index,
        python.clone(),
    );
    let signals = Signals::listen()?;
    let server = with_compiler(Server::new(config))?.start().context(
        "starting the demo (is something else listening on that address? try --listen 127.0.0.1:0)",
    )?;
    let base = format!("http://{}", server.local_addr());
    println!("percore demo is serving {} on {base}", dump.display());
    if let Some(python) = &python {
        println!(
            "  /offsets and /wiki are the Python handler's ({})",
            python.display()
        );
    }
    println!("  Reader (search page):  {base}/");
    println!("  An article, rendered:  {base}/read/Python_(programming_language)");
    println!("  A random article:      {base}/random");
    println!("  Titles by prefix:      {base}/offsets/Py");
    println!("  A page:                {base}/wiki/Python_(programming_language)");
    println!("  The dump (ranges too): {base}/xml");
    println!("  TechEmpower JSON:      {base}/json");
    println!("  TechEmpower plaintext: {base}/plaintext");
    println!("Press Ctrl-C to stop.");
    signals.wait(server)
}

/// The compiler process a deploy compiles in: this very binary, within
/// the default budget.
fn child_compiler() -> anyhow::Result<crate::compiler::ChildCompiler> {
    let defaults = Config::default();
    Ok(crate::compiler::ChildCompiler {
        program: std::env::current_exe()
            .context("cannot find the percore binary to compile with")?,
        memory_bytes: defaults.compile_memory_bytes,
        timeout: std::time::Duration::from_millis(defaults.compile_timeout_ms),
    })
}

/// `server`, compiling uploads in child processes of this very binary.
fn with_compiler(server: Server) -> anyhow::Result<Server> {
    let program = std::env::current_exe()
        .context("cannot find the percore binary to compile uploads with")?;
    Ok(server.with_compiler(program))
}

/// SIGINT and SIGTERM, listened for from before the server starts: one
/// that arrives while it starts (its listeners may already be accepting)
/// stops it gracefully, where the default action would kill the process.
pub struct Signals {
    runtime: tokio::runtime::Runtime,
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts listening; a signal from now on is kept for [`Signals::wait`].
    pub fn listen() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let _in_runtime = runtime.enter();
        let interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        Ok(Signals {
            runtime,
            interrupt,
            terminate,
        })
    }

    /// Blocks until SIGINT or SIGTERM (or one that came since
    /// [`Signals::listen`]).
    pub fn next(&mut self) {
        let Signals {
            runtime,
            interrupt,
            terminate,
        } = self;
        runtime.block_on(either(interrupt, terminate));
    }

    /// Blocks until SIGINT or SIGTERM, then drains for
    /// `http.drain_delay_ms` (a second signal cuts it short) and shuts the
    /// server down gracefully.
    pub fn wait(mut self, server: RunningServer) -> anyhow::Result<()> {
        self.next();
        // Drain: not ready, connections closed after their response.
        server.drain();
        let Signals {
            runtime,
            mut interrupt,
            mut terminate,
        } = self;
        let _ = runtime.block_on(async {
            tokio::time::timeout(server.drain_delay(), either(&mut interrupt, &mut terminate)).await
        });
        tracing::info!("shutting down: finishing in-flight requests");
        server.shutdown();
        Ok(())
    }
}

/// The next of two signals.
async fn either(a: &mut tokio::signal::unix::Signal, b: &mut tokio::signal::unix::Signal) {
    tokio::select! {
        _ = a.recv() => {}
        _ = b.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_694_970), "2026-11-26 12:09:30 UTC");
    }

    #[test]
    fn serve_flags_for_deploys() {
        let cli = Cli::try_parse_from([
            "percore",
            "serve",
            "--admin",
            "9090",
            "--admin-token-file",
            "t",
            "--state",
            "s",
            "--insecure-registry",
            "127.0.0.1:5000",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let config = serve_config(args).unwrap();
        assert_eq!(config.admin, Some("127.0.0.1:9090".parse().unwrap()));
        assert_eq!(config.admin_token_file, Some(PathBuf::from("t")));
        assert_eq!(config.state, Some(PathBuf::from("s")));
        assert_eq!(config.insecure_registries[0].to_string(), "127.0.0.1:5000");
        assert!(
            Cli::try_parse_from(["percore", "serve", "--insecure-registry", "http://x"]).is_err()
        );
        assert!(Cli::try_parse_from(["percore", "serve", "--admin-token", "x"]).is_err());
    }
}
