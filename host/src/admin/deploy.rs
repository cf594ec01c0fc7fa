//! [`Deployments`]: the host's route table as a set of versioned routes
//! that can change while the host serves.
//!
//! Every change (deploy, rollback, undeploy) validates and compiles first,
//! then writes the state directory, then publishes a new
//! [`RouteTable`](crate::routes::RouteTable); a change that fails at any step
//! leaves the serving table as it was. Routes the change does not touch keep
//! their [`Route`] (and so their version and the workers' warm instances).
//!
//! Compiling is slow, so every method here blocks; the admin API calls them
//! on tokio's blocking pool, never on a worker thread.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use super::store::{PersistedRoute, PersistedTable, StateStore, VersionRecord, unix_now};
use crate::config::{Config, Isolation, LimitOverrides, Limits};
use crate::engine::{CacheStats, CompileError, Handler, HostEngine};
use crate::router::Router;
use crate::routes::{self, Route, RouteTable, SharedRoutes};

/// Earlier versions remembered per route (for rollback).
pub const MAX_HISTORY: usize = 10;

/// Why a change was refused. [`DeployError::status`] is the HTTP status the
/// admin API answers with.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The upload is not a component percore can serve.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The request is malformed (bad prefix, bad option).
    #[error("{0}")]
    BadRequest(String),
    /// No such route.
    #[error("no route {prefix} is deployed; `percore routes` lists the routes")]
    NoRoute {
        /// The prefix asked for.
        prefix: String,
    },
    /// Rollback of a route without an earlier version.
    #[error("route {prefix} has no earlier version to roll back to")]
    NoHistory {
        /// The route.
        prefix: String,
    },
    /// The state directory could not be read or written; nothing changed.
    #[error("{0}; nothing was changed")]
    Store(#[from] super::store::StoreError),
}

impl DeployError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            DeployError::Compile(_) | DeployError::BadRequest(_) => 400,
            DeployError::NoRoute { .. } => 404,
            DeployError::NoHistory { .. } => 409,
            DeployError::Store(_) => 500,
        }
    }
}

/// What a deploy asks for besides the component.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeployOptions {
    /// Isolation of the route; `None` follows the host default.
    pub isolation: Option<Isolation>,
    /// Limits of the route; unset ones follow the host defaults.
    pub limits: LimitOverrides,
}

/// One version of a route, as the admin API reports it.
#[derive(Clone, Debug, Serialize)]
pub struct VersionInfo {
    /// SHA-256 of the component, lower-case hex.
    pub hash: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// When it was deployed, in seconds since the Unix epoch.
    pub deployed_at: u64,
}

/// A route, as the admin API reports it.
#[derive(Clone, Debug, Serialize)]
pub struct RouteInfo {
    /// The path prefix.
    pub prefix: String,
    /// The serving version.
    pub version: VersionInfo,
    /// Its isolation (after defaults).
    pub isolation: Isolation,
    /// Its limits (after defaults).
    pub limits: Limits,
    /// Earlier versions, newest first; rollback returns to the first.
    pub history: Vec<VersionInfo>,
}

/// A version of a route in memory: its record and, once compiled, its
/// handler.
#[derive(Clone)]
struct Version {
    record: VersionRecord,
    handler: Option<Arc<Handler>>,
}

/// A route in memory.
#[derive(Clone)]
struct RouteState {
    /// The serving route (the one published to the workers).
    route: Arc<Route>,
    /// The serving version's record.
    current: VersionRecord,
    /// Earlier versions, oldest first.
    history: Vec<Version>,
}

/// The host's routes, their versions, and the state directory behind them.
pub struct Deployments {
    engine: Arc<HostEngine>,
    routes: Arc<SharedRoutes>,
    store: Option<StateStore>,
    /// Host-wide defaults, applied to each version's overrides.
    isolation: Isolation,
    limits: Limits,
    /// Held for the whole of a change (compile included), so that changes
    /// apply one at a time.
    changes: Mutex<()>,
    /// The routes; locked briefly to read or swap.
    state: Mutex<BTreeMap<String, RouteState>>,
    /// What could not be restored from the state directory at start.
    restore_errors: Vec<String>,
}

impl Deployments {
    /// Takes over the configured routes (`configured`: the router built from
    /// `config.routes`, and the bytes of each configured component),
    /// restores the routes recorded in `config.state`, persists the merged
    /// table, and shares it. Configured routes override recorded ones with
    /// the same prefix; the recorded version then becomes their history.
    ///
    /// A corrupt route table or a missing or corrupt component does not stop
    /// the start: it is logged and reported by
    /// [`Deployments::restore_errors`], and the rest is restored.
    pub fn open(
        config: &Config,
        engine: Arc<HostEngine>,
        configured: Router<Arc<Route>>,
        configured_bytes: &[Vec<u8>],
    ) -> anyhow::Result<Deployments> {
        let store = match &config.state {
            Some(dir) => Some(StateStore::open(dir)?),
            None => None,
        };
        let now = unix_now();
        let mut state = BTreeMap::new();
        for (prefix, route) in configured.iter() {
            let spec = config.routes.iter().find(|r| r.prefix == prefix);
            if let Some(store) = &store
                && let Some(bytes) = configured_bytes
                    .iter()
                    .find(|b| crate::engine::sha256_hex(b) == route.handler.hash)
            {
                store.put_component(bytes)?;
            }
            state.insert(
                prefix.to_owned(),
                RouteState {
                    route: route.clone(),
                    current: VersionRecord {
                        hash: route.handler.hash.clone(),
                        size: route.handler.size as u64,
                        deployed_at: now,
                        isolation: spec.and_then(|s| s.isolation),
                        limits: spec.map(|s| s.limits.clone()).unwrap_or_default(),
                    },
                    history: Vec::new(),
                },
            );
        }
        let mut deployments = Deployments {
            engine,
            routes: Arc::new(SharedRoutes::new(RouteTable::default())),
            store,
            isolation: config.isolation,
            limits: config.limits.clone(),
            changes: Mutex::new(()),
            state: Mutex::new(BTreeMap::new()),
            restore_errors: Vec::new(),
        };
        if let Some(store) = deployments.store.clone() {
            deployments.restore(&store, &mut state);
            store.save_table(&deployments.persisted(&state))?;
        }
        deployments.routes.publish(table_of(&state));
        *deployments.state.get_mut().expect("not shared yet") = state;
        Ok(deployments)
    }

    fn restore(&mut self, store: &StateStore, state: &mut BTreeMap<String, RouteState>) {
        let table = match store.load_table() {
            Ok(table) => table,
            Err(e) => {
                self.restore_failed(e.to_string());
                return;
            }
        };
        for persisted in table.routes {
            let prefix = persisted.prefix.clone();
            if let Some(configured) = state.get_mut(&prefix) {
                // The configured version wins; what was deployed becomes
                // its history, so a rollback returns to it.
                let mut history = persisted.history;
                if persisted.current.hash == configured.current.hash {
                    configured.current.deployed_at = persisted.current.deployed_at;
                } else {
                    history.push(persisted.current);
                }
                configured.history = history.into_iter().map(Version::unloaded).collect();
                trim(&mut configured.history);
                tracing::info!(route = %prefix, "configured route overrides the deployed one");
                continue;
            }
            let loaded = self
                .check_limits(&persisted.current.limits)
                .and_then(|()| self.load(store, &prefix, &persisted.current));
            match loaded {
                Ok(handler) => {
                    let route = self.route(&prefix, &persisted.current, handler);
                    tracing::info!(route = %prefix, hash = %persisted.current.hash, "restored");
                    state.insert(
                        prefix,
                        RouteState {
                            route,
                            current: persisted.current,
                            history: persisted
                                .history
                                .into_iter()
                                .map(Version::unloaded)
                                .collect(),
                        },
                    );
                }
                Err(e) => self.restore_failed(format!("route {prefix} was not restored: {e}")),
            }
        }
    }

    fn restore_failed(&mut self, message: String) {
        tracing::error!("{message}");
        self.restore_errors.push(message);
    }

    /// The shared route table the workers serve from.
    pub fn routes(&self) -> &Arc<SharedRoutes> {
        &self.routes
    }

    /// What could not be restored from the state directory at start, one
    /// message per problem, each naming the file involved.
    pub fn restore_errors(&self) -> &[String] {
        &self.restore_errors
    }

    /// What the compilation cache did so far (`None` without a state
    /// directory).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.engine.cache_stats()
    }

    /// The routes, by prefix.
    pub fn list(&self) -> Vec<RouteInfo> {
        self.lock_state()
            .iter()
            .map(|(prefix, route)| self.info(prefix, route))
            .collect()
    }

    /// One route.
    pub fn get(&self, prefix: &str) -> Result<RouteInfo, DeployError> {
        let state = self.lock_state();
        let route = state.get(prefix).ok_or_else(|| DeployError::NoRoute {
            prefix: prefix.into(),
        })?;
        Ok(self.info(prefix, route))
    }

    /// Validates and compiles `bytes`, stores them, and makes them the
    /// serving version of `prefix` (which need not exist yet); the previous
    /// version becomes the newest of the route's history.
    pub fn deploy(
        &self,
        prefix: &str,
        bytes: &[u8],
        options: DeployOptions,
    ) -> Result<RouteInfo, DeployError> {
        crate::router::validate_prefix(prefix).map_err(DeployError::BadRequest)?;
        self.check_limits(&options.limits)?;
        let _change = self.changes.lock().expect("deploy lock poisoned");
        let started = std::time::Instant::now();
        let handler = self
            .engine
            .compile(&format!("the upload for route {prefix}"), bytes)?;
        let compiled_in = started.elapsed();
        if let Some(store) = &self.store {
            store.put_component(bytes)?;
        }
        let record = VersionRecord {
            hash: handler.hash.clone(),
            size: bytes.len() as u64,
            deployed_at: unix_now(),
            isolation: options.isolation,
            limits: options.limits,
        };
        let mut next = self.lock_state().clone();
        let route = self.route(prefix, &record, handler);
        match next.get_mut(prefix) {
            Some(existing) => {
                let previous = Version {
                    record: std::mem::replace(&mut existing.current, record),
                    handler: Some(existing.route.handler.clone()),
                };
                existing.history.push(previous);
                trim(&mut existing.history);
                existing.route = route;
            }
            None => {
                next.insert(
                    prefix.to_owned(),
                    RouteState {
                        route,
                        current: record,
                        history: Vec::new(),
                    },
                );
            }
        }
        self.commit(next)?;
        let info = self.get(prefix)?;
        tracing::info!(
            route = prefix,
            hash = %info.version.hash,
            size = info.version.size,
            compiled_in = ?compiled_in,
            "deployed"
        );
        Ok(info)
    }

    /// Makes the newest earlier version of `prefix` serve again; the version
    /// serving until now is forgotten.
    pub fn rollback(&self, prefix: &str) -> Result<RouteInfo, DeployError> {
        let _change = self.changes.lock().expect("deploy lock poisoned");
        let mut next = self.lock_state().clone();
        let route = next.get_mut(prefix).ok_or_else(|| DeployError::NoRoute {
            prefix: prefix.into(),
        })?;
        let previous = route
            .history
            .last()
            .cloned()
            .ok_or_else(|| DeployError::NoHistory {
                prefix: prefix.into(),
            })?;
        let handler = match previous.handler {
            Some(handler) => handler,
            None => {
                let store = self
                    .store
                    .as_ref()
                    .expect("unloaded versions come from a store");
                self.load(store, prefix, &previous.record)?
            }
        };
        route.history.pop();
        route.route = self.route(prefix, &previous.record, handler);
        route.current = previous.record;
        self.commit(next)?;
        let info = self.get(prefix)?;
        tracing::info!(route = prefix, hash = %info.version.hash, "rolled back");
        Ok(info)
    }

    /// Removes `prefix` (and its history); its requests get 404 from now on.
    pub fn undeploy(&self, prefix: &str) -> Result<RouteInfo, DeployError> {
        let _change = self.changes.lock().expect("deploy lock poisoned");
        let mut next = self.lock_state().clone();
        let removed = next.remove(prefix).ok_or_else(|| DeployError::NoRoute {
            prefix: prefix.into(),
        })?;
        let info = self.info(prefix, &removed);
        self.commit(next)?;
        tracing::info!(route = prefix, "undeployed");
        Ok(info)
    }

    /// Persists `next`, then publishes it. On a write error nothing changes.
    fn commit(&self, next: BTreeMap<String, RouteState>) -> Result<(), DeployError> {
        if let Some(store) = &self.store {
            store.save_table(&self.persisted(&next))?;
        }
        let table = table_of(&next);
        *self.lock_state() = next;
        self.routes.publish(table);
        Ok(())
    }

    /// Refuses limits the engine cannot honour (the pooling allocator
    /// reserved memory slots of a fixed size at start).
    fn check_limits(&self, overrides: &LimitOverrides) -> Result<(), DeployError> {
        let asked = overrides.apply(&self.limits).max_memory_bytes;
        let ceiling = self.engine.options().max_memory_bytes;
        if asked > ceiling {
            return Err(DeployError::BadRequest(format!(
                "max_memory_bytes {asked} is above this host's ceiling of {ceiling} bytes; ask for less, or restart the host with a higher [limits] max_memory_bytes"
            )));
        }
        Ok(())
    }

    /// Reads a recorded component from the store and compiles it (a cache
    /// hit when it was compiled before with the same engine settings).
    fn load(
        &self,
        store: &StateStore,
        prefix: &str,
        record: &VersionRecord,
    ) -> Result<Arc<Handler>, DeployError> {
        let bytes = store.component(prefix, &record.hash)?;
        let name = store.component_path(&record.hash).display().to_string();
        Ok(self.engine.compile(&name, &bytes)?)
    }

    fn route(&self, prefix: &str, record: &VersionRecord, handler: Arc<Handler>) -> Arc<Route> {
        Arc::new(Route {
            prefix: prefix.to_owned(),
            handler,
            isolation: record.isolation.unwrap_or(self.isolation),
            limits: record.limits.apply(&self.limits),
            version: routes::next_version(),
        })
    }

    fn info(&self, prefix: &str, route: &RouteState) -> RouteInfo {
        RouteInfo {
            prefix: prefix.to_owned(),
            version: version_info(&route.current),
            isolation: route.route.isolation,
            limits: route.route.limits.clone(),
            history: route
                .history
                .iter()
                .rev()
                .map(|v| version_info(&v.record))
                .collect(),
        }
    }

    fn persisted(&self, state: &BTreeMap<String, RouteState>) -> PersistedTable {
        PersistedTable {
            format: super::store::FORMAT,
            routes: state
                .iter()
                .map(|(prefix, route)| PersistedRoute {
                    prefix: prefix.clone(),
                    current: route.current.clone(),
                    history: route.history.iter().map(|v| v.record.clone()).collect(),
                })
                .collect(),
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, BTreeMap<String, RouteState>> {
        self.state.lock().expect("deployments lock poisoned")
    }
}

impl Version {
    fn unloaded(record: VersionRecord) -> Version {
        Version {
            record,
            handler: None,
        }
    }
}

fn version_info(record: &VersionRecord) -> VersionInfo {
    VersionInfo {
        hash: record.hash.clone(),
        size: record.size,
        deployed_at: record.deployed_at,
    }
}

/// Keeps the newest [`MAX_HISTORY`] versions.
fn trim(history: &mut Vec<Version>) {
    let excess = history.len().saturating_sub(MAX_HISTORY);
    history.drain(..excess);
}

fn table_of(state: &BTreeMap<String, RouteState>) -> RouteTable {
    let mut router = Router::new();
    for (prefix, route) in state {
        router
            .insert(prefix, route.route.clone())
            .expect("prefixes were validated");
    }
    RouteTable { router }
}
