//! Starting and stopping the host. [`Server::start`] reads top to bottom
//! as the host comes up: the ops endpoints (first, so that `/readyz`
//! answers "starting" meanwhile), the access log, the index, the engine,
//! the registry (which compiles every route and publishes the first route
//! table), the admin API, the listeners, the workers. [`RunningServer`]
//! reports the bound addresses, drains ([`RunningServer::drain`]) and shuts
//! down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::admin::{AdminServer, AdminToken};
use crate::config::Config;
use crate::engine::{EngineOptions, HostEngine};
use crate::ops::{Health, OpsServer, OpsState};
use crate::registry::Registry;
use crate::routes::SharedRoutes;
use crate::stats::HostStats;
use crate::worker::{self, WorkerSetup};

/// A host about to start.
pub struct Server {
    config: Config,
    engine: EngineOptions,
}

impl Server {
    /// A server for `config`.
    pub fn new(config: Config) -> Self {
        let engine = EngineOptions::for_config(&config);
        Server { config, engine }
    }

    /// Runs handler calls without deadlines: no epoch interruption, no
    /// timer. For benchmarks that measure what deadlines cost (the load
    /// harness's `percore-nodeadline`); no flag or config key of the
    /// `percore` binary reaches it.
    pub fn without_deadlines(mut self) -> Self {
        self.engine.deadlines = false;
        self
    }

    /// Compiles uploads in child processes running `program` (the `percore`
    /// binary, which has the compiler subcommand), within the config's
    /// `compile_memory_bytes` and `compile_timeout_ms`. Without it uploads
    /// compile in this process, with no budget.
    pub fn with_compiler(mut self, program: std::path::PathBuf) -> Self {
        self.engine.child_compiler = Some(crate::compiler::ChildCompiler {
            program,
            memory_bytes: self.config.compile_memory_bytes,
            timeout: std::time::Duration::from_millis(self.config.compile_timeout_ms),
        });
        self
    }

    /// Opens the index, compiles the routes, binds the listeners and starts
    /// the workers. Fails, with nothing left running, if a component is
    /// invalid or an address cannot be bound.
    pub fn start(self) -> anyhow::Result<RunningServer> {
        let Server {
            config,
            engine: engine_options,
        } = self;
        // A missing admin token is a configuration error: report it before
        // compiling anything.
        let admin_token = match config.admin {
            Some(_) => Some(AdminToken::load(config.admin_token_file.as_deref())?),
            None => None,
        };

        let workers = config.worker_count();
        let stats = Arc::new(HostStats::new(workers, config.ops.is_some()));
        let health = Arc::new(Health::starting(config.index.is_some()));
        let ops_state = Arc::new(OpsState {
            health: health.clone(),
            stats: stats.clone(),
            registry: Default::default(),
            engine: Default::default(),
        });
        let ops = match config.ops {
            Some(addr) => Some(OpsServer::start(addr, ops_state.clone())?),
            None => None,
        };
        let access_log = match &config.access_log {
            Some(path) => Some(AccessLog::open(path)?),
            None => None,
        };

        let index = match &config.index {
            Some(dir) => Some(open_index(dir, config.dump.as_deref())?),
            None => None,
        };
        health.index_mapped();

        let engine = Arc::new(HostEngine::new(engine_options)?);
        let _ = ops_state.engine.set(engine.clone());

        let registry = Arc::new(Registry::open(&config, engine.clone())?);
        let routes = registry.routes().clone();
        let _ = ops_state.registry.set(registry.clone());
        health.routes_compiled();

        let admin = match (config.admin, admin_token) {
            (Some(addr), Some(token)) => Some(AdminServer::start(
                addr,
                token,
                registry.clone(),
                config.max_upload_bytes,
            )?),
            _ => None,
        };

        let listeners = worker::bind_listeners(config.listen, workers)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listeners[0].local_addr()?;

        let guest_memory = config
            .max_guest_memory_bytes
            .unwrap_or_else(crate::budget::default_guest_memory);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (drain_tx, drain_rx) = watch::channel(false);
        let mut threads = Vec::with_capacity(workers);
        for (id, listener) in listeners.into_iter().enumerate() {
            threads.push(worker::spawn(WorkerSetup {
                id,
                listener,
                routes: routes.clone(),
                index: index.clone(),
                http: config.http.clone(),
                max_connections: config.http.max_connections.div_ceil(workers).max(1),
                counters: stats.worker(id),
                max_instances: (config.max_instances as usize / workers).max(1) as u32,
                max_guest_memory_bytes: guest_memory / workers as u64,
                drain: drain_rx.clone(),
                shutdown: shutdown_rx.clone(),
                access_log: access_log.as_ref().map(|log| log.worker(id)),
            })?);
        }

        // Serving means accepting: wait for every worker's accept loop (a
        // few milliseconds), so that `/readyz` is 200 once this returns.
        let waited = std::time::Instant::now();
        while stats.accepting_workers() < workers {
            if threads.iter().any(JoinHandle::is_finished) {
                anyhow::bail!("a worker thread ended while starting (see the log above)");
            }
            if waited.elapsed() > std::time::Duration::from_secs(30) {
                anyhow::bail!(
                    "only {} of {workers} workers started accepting within 30 s",
                    stats.accepting_workers()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }

        let table = routes.current();
        let route_list: Vec<String> = table
            .router
            .iter()
            .map(|(prefix, r)| {
                let outbound = r
                    .allow_outbound
                    .as_ref()
                    .map(|origins| format!(", may send requests to {origins}"))
                    .unwrap_or_default();
                format!(
                    "{prefix} -> {} ({}, {}{outbound})",
                    r.component.name, r.component.world, r.isolation
                )
            })
            .collect();
        tracing::info!(
            listen = %local_addr,
            workers,
            isolation = %config.isolation,
            pooling = engine.is_pooling(),
            admin = ?admin.as_ref().map(AdminServer::local_addr),
            ops = ?ops.as_ref().map(OpsServer::local_addr),
            routes = ?route_list,
            "percore serving"
        );
        Ok(RunningServer {
            local_addr,
            shutdown: shutdown_tx,
            drain: drain_tx,
            threads,
            engine,
            admin,
            ops,
            access_log,
            health,
            drain_delay: std::time::Duration::from_millis(config.http.drain_delay_ms),
            registry,
            stats,
        })
    }
}

/// Opens the title index in `dir` (with its dump at `dump` when it has
/// moved, else where the index recorded it) and starts reading its files
/// into the page cache in the background, so that the first lookups find
/// their pages there instead of faulting them in from the disk on a worker.
fn open_index(
    dir: &std::path::Path,
    dump: Option<&std::path::Path>,
) -> anyhow::Result<Arc<percore_index::TitleIndex>> {
    let started = std::time::Instant::now();
    let index = match dump {
        Some(dump) => percore_index::TitleIndex::open_with_dump(dir, dump),
        None => percore_index::TitleIndex::open(dir),
    }
    .with_context(|| format!("cannot open the index at {}", dir.display()))?;
    tracing::info!(
        index = %dir.display(),
        dump = %index.dump_path().display(),
        titles = index.len(),
        elapsed = ?started.elapsed(),
        "index opened"
    );
    let index = Arc::new(index);
    let warm = Arc::clone(&index);
    std::thread::Builder::new()
        .name("percore-index-warm".into())
        .spawn(move || warm.warm())
        .context("cannot start the index warm-up thread")?;
    Ok(index)
}

/// A started host.
pub struct RunningServer {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    /// Tells the workers that the host drains.
    drain: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    engine: Arc<HostEngine>,
    /// The admin listener, when `--admin` was given.
    admin: Option<AdminServer>,
    /// The ops listener, when `--ops` was given.
    ops: Option<OpsServer>,
    /// The access log, when it is on.
    access_log: Option<AccessLog>,
    /// Readiness (and the drain flag).
    health: Arc<Health>,
    /// How long [`RunningServer::drain`] lasts (`http.drain_delay_ms`).
    drain_delay: std::time::Duration,
    /// The routes and their versions.
    registry: Arc<Registry>,
    /// What the workers are doing.
    stats: Arc<HostStats>,
}

impl RunningServer {
    /// The address the workers listen on (with the real port when the
    /// configured port was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The shared route table the workers serve from.
    pub fn routes(&self) -> &Arc<SharedRoutes> {
        self.registry.routes()
    }

    /// The engine (for compiling new versions).
    pub fn engine(&self) -> &Arc<HostEngine> {
        &self.engine
    }

    /// What the workers are doing (active requests...).
    pub fn stats(&self) -> &HostStats {
        &self.stats
    }

    /// The admin API's address, when it is enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminServer::local_addr)
    }

    /// The routes and their versions (deploy, rollback, list; what the
    /// admin API calls).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The ops listener's address, when it is enabled.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().map(OpsServer::local_addr)
    }

    /// How long a drain lasts before the host stops accepting
    /// (`http.drain_delay_ms`).
    pub fn drain_delay(&self) -> std::time::Duration {
        self.drain_delay
    }

    /// Starts draining: `/readyz` answers 503 from now on and every
    /// response carries `Connection: close`, while the host keeps serving.
    /// Call [`RunningServer::shutdown`] after [`RunningServer::drain_delay`].
    pub fn drain(&self) {
        self.health.start_draining();
        let _ = self.drain.send(true);
        tracing::info!(
            drain_delay = ?self.drain_delay,
            "draining: not ready; responses close their connections"
        );
    }

    /// Stops accepting (admin API included), finishes in-flight requests,
    /// and waits for every worker to exit; the ops listener (`/livez`)
    /// answers until the end.
    pub fn shutdown(self) {
        self.health.start_draining();
        if let Some(admin) = self.admin {
            admin.shutdown();
        }
        let _ = self.drain.send(true);
        let _ = self.shutdown.send(true);
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
        if let Some(log) = self.access_log {
            let dropped = log.dropped_lines();
            log.close();
            if dropped > 0 {
                tracing::warn!(
                    "the access log dropped {dropped} lines: its file could not keep up"
                );
            }
        }
        if let Some(ops) = self.ops {
            ops.shutdown();
        }
        tracing::info!("percore stopped");
    }
}
