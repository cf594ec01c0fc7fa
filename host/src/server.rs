//! Starting and stopping the host: [`Server::start`] compiles every route's
//! component, binds one listener per worker, and starts the workers;
//! [`RunningServer`] reports the bound address and shuts down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::admin::{AdminServer, AdminToken, Deployments};
use crate::config::{Config, Source};
use crate::engine::{EngineOptions, HostEngine};
use crate::router::Router;
use crate::routes::{Route, SharedRoutes};
use crate::worker::{self, WorkerSetup};

/// A host about to start.
pub struct Server {
    config: Config,
}

impl Server {
    /// A server for `config`.
    pub fn new(config: Config) -> Self {
        Server { config }
    }

    /// Compiles the routes, binds the listeners and starts the workers.
    /// Fails, with nothing left running, if a component is invalid or the
    /// address cannot be bound.
    pub fn start(self) -> anyhow::Result<RunningServer> {
        let config = self.config;
        // A missing admin token is a configuration error: report it before
        // compiling anything.
        let admin_token = match config.admin {
            Some(_) => Some(AdminToken::load(config.admin_token_file.as_deref())?),
            None => None,
        };
        let max_memory = config
            .routes
            .iter()
            .map(|r| r.limits.apply(&config.limits).max_memory_bytes)
            .chain([config.limits.max_memory_bytes])
            .max()
            .unwrap_or_default();
        let index = match &config.index {
            Some(dir) => {
                let started = std::time::Instant::now();
                let index = percore_index::TitleIndex::open(dir)
                    .with_context(|| format!("cannot open the index at {}", dir.display()))?;
                tracing::info!(
                    index = %dir.display(),
                    dump = %index.dump_path().display(),
                    titles = index.len(),
                    elapsed = ?started.elapsed(),
                    "index opened"
                );
                let index = Arc::new(index);
                // Read the index files into the page cache in the background:
                // the first lookups then find their pages there instead of
                // faulting them in from the disk one at a time on a worker.
                let warm = Arc::clone(&index);
                std::thread::Builder::new()
                    .name("percore-index-warm".into())
                    .spawn(move || warm.warm())
                    .context("cannot start the index warm-up thread")?;
                Some(index)
            }
            None => None,
        };
        let engine = Arc::new(HostEngine::new(EngineOptions {
            max_memory_bytes: max_memory,
            index: index.clone(),
            max_instances: config.max_instances.max(1),
            cache_dir: config.state.as_deref().map(crate::admin::store::cache_dir),
            ..EngineOptions::default()
        })?);

        let mut router = Router::new();
        let mut compiled: Vec<(Vec<u8>, Arc<crate::engine::Handler>)> = Vec::new();
        for route in &config.routes {
            let bytes = match &route.source {
                Source::File(path) => std::fs::read(path).with_context(|| {
                    format!("cannot read {} for route {}", path.display(), route.prefix)
                })?,
                Source::Embedded { bytes, .. } => bytes.to_vec(),
            };
            // Routes that serve the same component share one compilation.
            let handler = match compiled.iter().find(|(b, _)| *b == bytes) {
                Some((_, handler)) => handler.clone(),
                None => {
                    let handler = engine
                        .compile(&route.source.to_string(), &bytes)
                        .with_context(|| format!("route {}", route.prefix))?;
                    compiled.push((bytes, handler.clone()));
                    handler
                }
            };
            let route = Route {
                prefix: route.prefix.clone(),
                handler,
                isolation: route.isolation.unwrap_or(config.isolation),
                limits: route.limits.apply(&config.limits),
                version: crate::routes::next_version(),
            };
            router
                .insert(&route.prefix.clone(), Arc::new(route))
                .map_err(anyhow::Error::msg)?;
        }
        // Deployments takes over the configured routes, restores the
        // deployed ones from the state directory, and shares the table.
        let configured_bytes: Vec<Vec<u8>> = compiled.into_iter().map(|(b, _)| b).collect();
        let deployments = Arc::new(Deployments::open(
            &config,
            engine.clone(),
            router,
            &configured_bytes,
        )?);
        let routes = deployments.routes().clone();
        let admin = match (config.admin, admin_token) {
            (Some(addr), Some(token)) => Some(AdminServer::start(
                addr,
                token,
                deployments.clone(),
                config.max_upload_bytes,
            )?),
            _ => None,
        };

        let workers = config.worker_count();
        let first = worker::bind_reuseport(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..workers {
            listeners.push(
                worker::bind_reuseport(local_addr)
                    .with_context(|| format!("cannot listen on {local_addr}"))?,
            );
        }

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut threads = Vec::with_capacity(workers);
        for (id, listener) in listeners.into_iter().enumerate() {
            threads.push(worker::spawn(WorkerSetup {
                id,
                listener,
                routes: routes.clone(),
                index: index.clone(),
                http: config.http.clone(),
                max_connections: config.http.max_connections.div_ceil(workers).max(1),
                shutdown: shutdown_rx.clone(),
            })?);
        }

        let table = routes.current();
        let route_list: Vec<String> = table
            .router
            .iter()
            .map(|(prefix, r)| format!("{prefix} -> {} ({})", r.handler.name, r.isolation))
            .collect();
        tracing::info!(
            listen = %local_addr,
            workers,
            isolation = %config.isolation,
            pooling = engine.is_pooling(),
            admin = ?admin.as_ref().map(AdminServer::local_addr),
            routes = ?route_list,
            "percore serving"
        );
        Ok(RunningServer {
            local_addr,
            shutdown: shutdown_tx,
            threads,
            routes,
            engine,
            admin,
            deployments,
        })
    }
}

/// A started host.
pub struct RunningServer {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    routes: Arc<SharedRoutes>,
    engine: Arc<HostEngine>,
    /// The admin listener, when `--admin` was given.
    admin: Option<AdminServer>,
    /// The versioned routes behind `routes`.
    deployments: Arc<Deployments>,
}

impl RunningServer {
    /// The address the workers listen on (with the real port when the
    /// configured port was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The shared route table (for deploys).
    pub fn routes(&self) -> &Arc<SharedRoutes> {
        &self.routes
    }

    /// The engine (for compiling new versions).
    pub fn engine(&self) -> &Arc<HostEngine> {
        &self.engine
    }

    /// The admin API's address, when it is enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminServer::local_addr)
    }

    /// The versioned routes (deploy, rollback, list; what the admin API
    /// calls).
    pub fn deployments(&self) -> &Arc<Deployments> {
        &self.deployments
    }

    /// Stops accepting (admin API included), finishes in-flight requests,
    /// and waits for every worker to exit.
    pub fn shutdown(self) {
        if let Some(admin) = self.admin {
            admin.shutdown();
        }
        let _ = self.shutdown.send(true);
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
        tracing::info!("percore stopped");
    }
}
