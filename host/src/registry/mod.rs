//! The route registry: the one owner of the host's routes. [`Registry`]
//! opens the state directory, compiles the configured and the recorded
//! components (each distinct component once), builds every [`Route`]
//! (in [`Registry::route`], the only place one is made), publishes route
//! tables to the workers, and applies changes (deploy, rollback, undeploy)
//! while the host serves.
//!
//! Every change validates and compiles first, then writes the state
//! directory, then publishes a new [`RouteTable`]; a change that fails at
//! any step leaves the serving table as it was. Routes a change does not
//! touch keep their [`Route`] (and so their version and the workers' warm
//! instances).
//!
//! Compiling is slow, so the methods that compile block; the admin API
//! calls them on its blocking pool, never on a worker thread. A compile
//! holds no lock: only the short commit of a change does, so a rollback,
//! an undeploy or a listing never waits for another route's compile.
//!
//! | module | owns |
//! | --- | --- |
//! | this one | [`Registry`]: versions, validation, atomic switch, rollback |
//! | [`store`] | the state directory: components, pulled manifests, route table, compile cache |
//!
//! Components named by an `oci://` reference are pulled here, through
//! [`crate::oci`], once per digest: a digest whose manifest and layer are
//! in the state directory is served from there without asking the
//! registry. A tag is resolved to a digest when the route is deployed,
//! and the digest is recorded with the version ([`store::OciOrigin`]).

pub mod store;

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, Isolation, Limits, Origins, RouteOptions, Source};
use crate::engine::{CacheStats, CompileError, CompiledComponent, HostEngine, World, sha256_hex};
use crate::oci::{OciError, OciReference, RegistryClient};
use crate::router::Router;
use crate::routes::{Route, RouteTable, SharedRoutes};
use store::{
    OciOrigin, PersistedRoute, PersistedTable, StateStore, StoreError, VersionRecord, unix_now,
};

/// Earlier versions remembered per route (for rollback).
pub const MAX_HISTORY: usize = 10;

/// Why the registry could not open, or refused a change.
/// [`RegistryError::status`] is the HTTP status the admin API answers with.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The configured routes are not usable (a prefix given twice...).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A configured component could not be read.
    #[error("cannot read {} for route {prefix}: {error}", path.display())]
    Read {
        /// The route.
        prefix: String,
        /// The file.
        path: std::path::PathBuf,
        /// The OS error (in the message, not a source, so that it is
        /// printed once).
        error: std::io::Error,
    },
    /// The component is not one percore can serve.
    #[error("route {prefix}: {source}")]
    Compile {
        /// The route.
        prefix: String,
        /// Why.
        source: CompileError,
    },
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
    /// Rollback to a version that is not in the route's history.
    #[error(
        "route {prefix} has no version {hash} in its history (it has {known}); `percore routes` lists each route's versions"
    )]
    NoVersion {
        /// The route.
        prefix: String,
        /// The hash (or its start) asked for.
        hash: String,
        /// The versions it has, short hashes.
        known: String,
    },
    /// The state directory could not be read or written; nothing changed.
    #[error("{0}; nothing was changed")]
    Store(#[from] StoreError),
    /// The component could not be pulled from its registry; nothing
    /// changed.
    #[error("route {prefix}: {source}; nothing was changed")]
    Oci {
        /// The route.
        prefix: String,
        /// Why.
        source: OciError,
    },
}

impl RegistryError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            RegistryError::Compile { .. }
            | RegistryError::BadRequest(_)
            | RegistryError::Config(_) => 400,
            RegistryError::NoRoute { .. } | RegistryError::NoVersion { .. } => 404,
            RegistryError::NoHistory { .. } => 409,
            RegistryError::Store(_) | RegistryError::Read { .. } => 500,
            RegistryError::Oci { source, .. } => match source {
                OciError::BadReference { .. }
                | OciError::BadRegistryHost { .. }
                | OciError::NotFound { .. }
                | OciError::NotWasm { .. }
                | OciError::TooLarge { .. } => 400,
                OciError::Unreachable { .. }
                | OciError::Unauthorized { .. }
                | OciError::DigestMismatch { .. }
                | OciError::Registry { .. } => 502,
            },
        }
    }
}

/// One version of a route, as the admin API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// SHA-256 of the component, lower-case hex.
    pub hash: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// When it was deployed, in seconds since the Unix epoch.
    pub deployed_at: u64,
    /// The registry artifact it was pulled from (absent for files and
    /// uploads): the reference as given and the digest it resolved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciOrigin>,
    /// The isolation and limits asked for when it was deployed (unset
    /// ones follow the host's defaults): what a rollback to it restores.
    #[serde(default)]
    pub options: RouteOptions,
}

/// A route, as the admin API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInfo {
    /// The path prefix.
    pub prefix: String,
    /// The serving version.
    pub version: VersionInfo,
    /// The world its component serves (`percore:host/handler` or
    /// `wasi:http/proxy@0.2`).
    pub world: World,
    /// Its isolation (after defaults).
    pub isolation: Isolation,
    /// Its limits (after defaults).
    pub limits: Limits,
    /// The origins its guests may send requests to (`allow_outbound`);
    /// absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_outbound: Option<Origins>,
    /// The other versions, the one that served last first; a rollback
    /// without a version returns to the first.
    pub history: Vec<VersionInfo>,
    /// Set in the answer to a deploy of the very version already serving
    /// (same component, same options): nothing changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
}

/// Every route, as `GET /v1/routes` reports them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteList {
    /// The routes, by prefix.
    pub routes: Vec<RouteInfo>,
    /// What could not be restored from the state directory at start.
    pub restore_errors: Vec<String>,
    /// What the compilation cache did (`None` without a state directory).
    pub cache: Option<CacheStats>,
}

/// A version of a route in memory: its record and, once compiled, its
/// component.
#[derive(Clone)]
struct Version {
    record: VersionRecord,
    compiled: Option<Arc<CompiledComponent>>,
}

/// A route in memory.
#[derive(Clone)]
struct RouteState {
    /// The serving route (the one published to the workers).
    route: Arc<Route>,
    /// The serving version's record.
    current: VersionRecord,
    /// The other versions, oldest first by when they last served; none
    /// twice and none equal to `current` (see [`push_history`]).
    history: Vec<Version>,
}

/// The host's routes, their versions, and the state directory behind them.
pub struct Registry {
    engine: Arc<HostEngine>,
    /// The table the workers serve from; published after every change.
    routes: Arc<SharedRoutes>,
    store: Option<StateStore>,
    /// Host-wide defaults, applied to each version's options.
    isolation: Isolation,
    limits: Limits,
    /// Held while a change is committed (never while compiling), so that
    /// changes apply one at a time, each to the table the last one left.
    changes: Mutex<()>,
    /// The routes; locked briefly to read or swap.
    state: Mutex<BTreeMap<String, RouteState>>,
    /// What could not be restored from the state directory at start.
    restore_errors: Vec<String>,
    /// Deploys compiling right now.
    compiling: std::sync::atomic::AtomicUsize,
    /// Changes made since the start (for `/metrics`).
    counts: ChangeCounts,
    /// How components named `oci://...` are pulled.
    oci: RegistryClient,
}

/// A component pulled from a registry (or found in the state directory).
struct Pulled {
    /// The component.
    bytes: Vec<u8>,
    /// Its manifest, kept in the state directory once the component
    /// compiled.
    manifest: Vec<u8>,
    /// The reference and the digest it resolved to.
    origin: OciOrigin,
}

/// Changes the registry made since the start, by kind.
#[derive(Debug, Default)]
pub struct ChangeCounts {
    /// Versions deployed.
    pub deploys: std::sync::atomic::AtomicU64,
    /// Deploys refused (invalid, did not compile, over the limits).
    pub failed_deploys: std::sync::atomic::AtomicU64,
    /// Rollbacks.
    pub rollbacks: std::sync::atomic::AtomicU64,
    /// Routes removed.
    pub undeploys: std::sync::atomic::AtomicU64,
}

/// Components compiled while the registry opens, by hash, so that routes
/// serving the same component share one compilation.
type Compiled = BTreeMap<String, Arc<CompiledComponent>>;

impl Registry {
    /// Compiles the configured routes, restores the routes recorded in
    /// `config.state`, persists the merged table, and publishes it.
    /// Configured routes override recorded ones with the same prefix; the
    /// recorded version then becomes their history.
    ///
    /// A configured route that cannot be served stops the start. A corrupt
    /// route table or a missing or corrupt recorded component does not: it
    /// is logged and reported by [`Registry::restore_errors`], and the rest
    /// is restored.
    pub fn open(config: &Config, engine: Arc<HostEngine>) -> Result<Registry, RegistryError> {
        crate::config::check_routes(&config.routes, "the configured routes")?;
        let store = match &config.state {
            Some(dir) => Some(StateStore::open(dir)?),
            None => None,
        };
        let mut registry = Registry {
            engine,
            routes: Arc::new(SharedRoutes::new(RouteTable::default())),
            store,
            isolation: config.isolation,
            limits: config.limits.clone(),
            changes: Mutex::new(()),
            state: Mutex::new(BTreeMap::new()),
            restore_errors: Vec::new(),
            compiling: Default::default(),
            counts: ChangeCounts::default(),
            oci: RegistryClient::new(config.insecure_registries.clone(), config.max_upload_bytes),
        };
        // Read once: a corrupt table is moved aside as it is read.
        let recorded = registry.store.as_ref().map(StateStore::load_table);
        let mut compiled = Compiled::new();
        let mut state = BTreeMap::new();
        let now = unix_now();
        for configured in &config.routes {
            let prefix = &configured.prefix;
            let mut pulled = None;
            let bytes = match &configured.source {
                Source::File(path) => {
                    read_component_file(path).map_err(|error| RegistryError::Read {
                        prefix: prefix.clone(),
                        path: path.clone(),
                        error,
                    })?
                }
                Source::Embedded { bytes, .. } => bytes.to_vec(),
                Source::Oci(reference) => {
                    let recorded = match &recorded {
                        Some(Ok(table)) => Some(table),
                        _ => None,
                    };
                    let fetched = registry.pull_configured(prefix, reference, recorded)?;
                    let bytes = fetched.bytes.clone();
                    pulled = Some(fetched);
                    bytes
                }
            };
            let hash = sha256_hex(&bytes);
            let component = match compiled.entry(hash.clone()) {
                Entry::Occupied(entry) => entry.get().clone(),
                Entry::Vacant(entry) => {
                    let component =
                        registry.compile(prefix, &configured.source.to_string(), &bytes)?;
                    entry.insert(component).clone()
                }
            };
            if let Some(store) = &registry.store {
                store.put_component(&bytes)?;
                if let Some(pulled) = &pulled {
                    store.put_manifest(&pulled.manifest)?;
                }
            }
            let record = VersionRecord {
                hash,
                size: bytes.len() as u64,
                deployed_at: now,
                oci: pulled.map(|p| p.origin),
                options: configured.options.clone(),
            };
            registry.check_limits(&record.options)?;
            state.insert(
                prefix.clone(),
                RouteState {
                    route: registry.route(prefix, &record, component),
                    current: record,
                    history: Vec::new(),
                },
            );
        }
        if let (Some(store), Some(recorded)) = (registry.store.clone(), recorded) {
            registry.restore(&store, recorded, &mut state, &mut compiled);
            store.save_table(&persisted(&state))?;
            // A component that was not restored may be repaired and the
            // host restarted: remove nothing then.
            if registry.restore_errors.is_empty() {
                collect_garbage(&store, &state);
            }
        }
        registry.routes.publish(table_of(&state));
        *registry.state.get_mut().expect("not shared yet") = state;
        Ok(registry)
    }

    /// Adds the routes recorded in `store` to `state` (see [`Registry::open`]).
    fn restore(
        &mut self,
        store: &StateStore,
        recorded: Result<PersistedTable, StoreError>,
        state: &mut BTreeMap<String, RouteState>,
        compiled: &mut Compiled,
    ) {
        let table = match recorded {
            Ok(table) => table,
            Err(e) => {
                self.restore_failed(e.to_string());
                return;
            }
        };
        for persisted in table.routes {
            let prefix = persisted.prefix.clone();
            if let Err(e) = crate::router::validate_prefix(&prefix) {
                let bad = StoreError::BadRecord {
                    path: store.table_path(),
                    detail: e,
                };
                self.restore_failed(format!("a route was not restored: {bad}"));
                continue;
            }
            if let Some(configured) = state.get_mut(&prefix) {
                // The configured version wins; what was deployed becomes
                // its history, so a rollback returns to it.
                let mut history = persisted.history;
                if same_version(&persisted.current, &configured.current) {
                    configured.current.deployed_at = persisted.current.deployed_at;
                } else {
                    history.push(persisted.current);
                }
                configured.history = restored_history(&prefix, history, &configured.current);
                tracing::info!(route = %prefix, "configured route overrides the deployed one");
                continue;
            }
            let record = &persisted.current;
            let restored = self.check_limits(&record.options).and_then(|()| {
                match compiled.get(&record.hash) {
                    Some(component) => Ok(component.clone()),
                    None => {
                        let component = self.load(store, &prefix, record)?;
                        compiled.insert(record.hash.clone(), component.clone());
                        Ok(component)
                    }
                }
            });
            match restored {
                Ok(component) => {
                    let route = self.route(&prefix, record, component);
                    tracing::info!(route = %prefix, hash = %record.hash, "restored");
                    let history = restored_history(&prefix, persisted.history, record);
                    state.insert(
                        prefix,
                        RouteState {
                            route,
                            history,
                            current: persisted.current,
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

    /// Every route, the restore errors and the compile cache's counts.
    pub fn list(&self) -> RouteList {
        let routes = self
            .lock_state()
            .iter()
            .map(|(prefix, route)| self.info(prefix, route))
            .collect();
        RouteList {
            routes,
            restore_errors: self.restore_errors.clone(),
            cache: self.engine.cache_stats(),
        }
    }

    /// How many deploys are compiling right now.
    pub fn compiles_in_progress(&self) -> usize {
        self.compiling.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One route.
    pub fn get(&self, prefix: &str) -> Result<RouteInfo, RegistryError> {
        let state = self.lock_state();
        let route = state.get(prefix).ok_or_else(|| RegistryError::NoRoute {
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
        options: RouteOptions,
    ) -> Result<RouteInfo, RegistryError> {
        self.counted(self.deploy_version(prefix, bytes, options, None))
    }

    /// Counts a deploy's `result`.
    fn counted(
        &self,
        result: Result<RouteInfo, RegistryError>,
    ) -> Result<RouteInfo, RegistryError> {
        let counter = match &result {
            Ok(_) => &self.counts.deploys,
            Err(_) => &self.counts.failed_deploys,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        result
    }

    /// Changes made since the start.
    pub fn change_counts(&self) -> &ChangeCounts {
        &self.counts
    }

    /// Pulls the component `reference` names (`oci://...`; a tag is
    /// resolved to a digest now, and the digest recorded) and deploys it
    /// as [`Registry::deploy`] does. A digest already in the state
    /// directory is not pulled again. Nothing changes when the reference
    /// is bad, the registry cannot be reached or refuses, or the
    /// component does not compile.
    pub fn deploy_oci(
        &self,
        prefix: &str,
        reference: &str,
        options: RouteOptions,
    ) -> Result<RouteInfo, RegistryError> {
        self.counted(self.pull_and_deploy(prefix, reference, options))
    }

    fn pull_and_deploy(
        &self,
        prefix: &str,
        reference: &str,
        options: RouteOptions,
    ) -> Result<RouteInfo, RegistryError> {
        crate::router::validate_prefix(prefix).map_err(RegistryError::BadRequest)?;
        self.check_limits(&options)?;
        let oci_error = |source| RegistryError::Oci {
            prefix: prefix.to_owned(),
            source,
        };
        let reference = OciReference::parse(reference).map_err(oci_error)?;
        let pulled = self.pull(&reference).map_err(oci_error)?;
        let bytes = pulled.bytes;
        let from = (pulled.origin, pulled.manifest);
        self.deploy_version(prefix, &bytes, options, Some(from))
    }

    /// Pulls `reference` for the configured route `prefix`. When the
    /// registry cannot be reached and the reference is a tag, the digest
    /// the state directory recorded for the same route and reference is
    /// used (with a warning), so that a host restarts without its
    /// registry.
    fn pull_configured(
        &self,
        prefix: &str,
        reference: &OciReference,
        recorded: Option<&PersistedTable>,
    ) -> Result<Pulled, RegistryError> {
        let oci_error = |source| RegistryError::Oci {
            prefix: prefix.to_owned(),
            source,
        };
        match self.pull(reference) {
            Ok(pulled) => Ok(pulled),
            Err(e) if e.is_unreachable() && reference.digest().is_none() => {
                let given = reference.to_string();
                let digest = recorded
                    .into_iter()
                    .flat_map(|table| &table.routes)
                    .filter(|route| route.prefix == prefix)
                    .flat_map(|route| {
                        std::iter::once(&route.current).chain(route.history.iter().rev())
                    })
                    .filter_map(|version| version.oci.as_ref())
                    .find(|origin| origin.reference == given)
                    .map(|origin| origin.digest.clone());
                let Some(digest) = digest else {
                    return Err(oci_error(e));
                };
                tracing::warn!(
                    route = prefix,
                    reference = %given,
                    %digest,
                    "the registry cannot be reached ({e}); serving the digest this tag resolved to when last deployed"
                );
                let mut pulled = self.pull(&reference.pinned(&digest)).map_err(oci_error)?;
                pulled.origin.reference = given;
                Ok(pulled)
            }
            Err(e) => Err(oci_error(e)),
        }
    }

    /// Fetches the component `reference` names: from the state directory
    /// when its digest's manifest and layer are there, else from the
    /// registry (the manifest, then the layer unless it is there).
    fn pull(&self, reference: &OciReference) -> Result<Pulled, OciError> {
        let cached_manifest = reference
            .digest()
            .and_then(crate::oci::sha256_of_digest)
            .and_then(|hex| self.store.as_ref()?.manifest(hex));
        let (manifest, digest) = match cached_manifest {
            Some(bytes) => {
                let digest = reference.digest().expect("looked up by digest").to_owned();
                (bytes, digest)
            }
            None => {
                let manifest = self.oci.manifest(reference)?;
                (manifest.bytes, manifest.digest)
            }
        };
        let layer = crate::oci::wasm_layer(reference, &manifest)?;
        let cached_layer = crate::oci::sha256_of_digest(&layer.digest)
            .and_then(|hex| self.store.as_ref()?.cached_component(hex));
        let from_cache = cached_layer.is_some();
        let bytes = match cached_layer {
            Some(bytes) => bytes,
            None => self.oci.layer(&reference.pinned(&digest), &layer)?,
        };
        tracing::info!(
            reference = %reference,
            %digest,
            bytes = bytes.len(),
            "{}",
            if from_cache { "component found in the state directory" } else { "component pulled" }
        );
        Ok(Pulled {
            bytes,
            manifest,
            origin: OciOrigin {
                reference: reference.to_string(),
                digest,
            },
        })
    }

    /// Validates, compiles and stores `bytes` (pulled from `from`, when
    /// given: its origin and manifest), and makes it the serving version
    /// of `prefix`.
    fn deploy_version(
        &self,
        prefix: &str,
        bytes: &[u8],
        options: RouteOptions,
        from: Option<(OciOrigin, Vec<u8>)>,
    ) -> Result<RouteInfo, RegistryError> {
        crate::router::validate_prefix(prefix).map_err(RegistryError::BadRequest)?;
        self.check_limits(&options)?;
        // The very version already serving (from the same place): nothing
        // to compile or record. The same bytes pulled by another reference
        // are recorded, so that the reference's digest is remembered.
        let hash = sha256_hex(bytes);
        if let Some(existing) = self.lock_state().get(prefix)
            && existing.current.hash == hash
            && existing.current.options == options
            && existing.current.oci.as_ref() == from.as_ref().map(|(origin, _)| origin)
        {
            tracing::info!(route = prefix, %hash, "unchanged: this version serves already");
            return Ok(RouteInfo {
                unchanged: true,
                ..self.info(prefix, existing)
            });
        }
        let started = std::time::Instant::now();
        self.compiling
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = match &from {
            Some((origin, _)) => format!("{} for route {prefix}", origin.reference),
            None => format!("the upload for route {prefix}"),
        };
        let compiled = self.engine.compile_untrusted(&name, bytes);
        self.compiling
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let component = compiled.map_err(|source| RegistryError::Compile {
            prefix: prefix.to_owned(),
            source,
        })?;
        let compiled_in = started.elapsed();
        let record = VersionRecord {
            hash: component.hash.clone(),
            size: bytes.len() as u64,
            deployed_at: unix_now(),
            oci: from.as_ref().map(|(origin, _)| origin.clone()),
            options,
        };
        let route = self.route(prefix, &record, component);
        let _change = self.lock_changes();
        // Written under the change lock, so that the garbage collection of
        // another change never removes a file this one is about to record.
        if let Some(store) = &self.store {
            store.put_component(bytes)?;
            if let Some((_, manifest)) = &from {
                store.put_manifest(manifest)?;
            }
        }
        let mut next = self.lock_state().clone();
        match next.get_mut(prefix) {
            Some(existing) => {
                let previous = Version {
                    record: std::mem::replace(&mut existing.current, record),
                    compiled: Some(existing.route.component.clone()),
                };
                push_history(&mut existing.history, previous, &existing.current);
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

    /// Makes a version of `prefix`'s history serve again: the one whose
    /// hash starts with `to` (the newest such), or without `to` the one
    /// that served last before the current one. The version serving until
    /// now joins the history, so a rollback can be undone, and `to` can
    /// roll forward to a newer version as well as back.
    pub fn rollback(&self, prefix: &str, to: Option<&str>) -> Result<RouteInfo, RegistryError> {
        let _change = self.lock_changes();
        let mut next = self.lock_state().clone();
        let route = next.get_mut(prefix).ok_or_else(|| RegistryError::NoRoute {
            prefix: prefix.into(),
        })?;
        let at = match to {
            None => route
                .history
                .len()
                .checked_sub(1)
                .ok_or_else(|| RegistryError::NoHistory {
                    prefix: prefix.into(),
                })?,
            Some(to) => find_version(prefix, route, to)?,
        };
        let chosen = route.history[at].clone();
        self.check_limits(&chosen.record.options)?;
        let component = match chosen.compiled {
            Some(component) => component,
            // A version restored from the state directory: compiled code is
            // in the cache, so this is a load, not a compile.
            None => match &self.store {
                Some(store) => self.load(store, prefix, &chosen.record)?,
                None => {
                    return Err(RegistryError::NoHistory {
                        prefix: prefix.into(),
                    });
                }
            },
        };
        route.history.remove(at);
        let previous = Version {
            record: std::mem::replace(&mut route.current, chosen.record),
            compiled: Some(route.route.component.clone()),
        };
        route.route = self.route(prefix, &route.current, component);
        push_history(&mut route.history, previous, &route.current);
        self.commit(next)?;
        let info = self.get(prefix)?;
        tracing::info!(route = prefix, hash = %info.version.hash, "rolled back");
        self.counts
            .rollbacks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(info)
    }

    /// Removes `prefix` (and its history); its requests get 404 from now on.
    pub fn undeploy(&self, prefix: &str) -> Result<RouteInfo, RegistryError> {
        let _change = self.lock_changes();
        let mut next = self.lock_state().clone();
        let removed = next.remove(prefix).ok_or_else(|| RegistryError::NoRoute {
            prefix: prefix.into(),
        })?;
        let info = self.info(prefix, &removed);
        self.commit(next)?;
        tracing::info!(route = prefix, "undeployed");
        self.counts
            .undeploys
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(info)
    }

    /// Persists `next`, then publishes it, then removes the components
    /// nothing refers to any more. On a write error nothing changes. The
    /// caller holds the change lock.
    fn commit(&self, next: BTreeMap<String, RouteState>) -> Result<(), RegistryError> {
        if let Some(store) = &self.store {
            store.save_table(&persisted(&next))?;
        }
        let table = table_of(&next);
        // After a restore error (a table moved aside, a route skipped), the
        // files may still be wanted by a repaired table: collect nothing
        // until a restart restores everything.
        if let Some(store) = &self.store
            && self.restore_errors.is_empty()
        {
            collect_garbage(store, &next);
        }
        *self.lock_state() = next;
        self.routes.publish(table);
        Ok(())
    }

    /// Refuses limits the engine cannot honour (the pooling allocator
    /// reserved memory slots of a fixed size at start).
    fn check_limits(&self, options: &RouteOptions) -> Result<(), RegistryError> {
        let asked = options.limits(&self.limits).max_memory_bytes;
        let ceiling = self.engine.options().max_memory_bytes;
        if asked > ceiling {
            return Err(RegistryError::BadRequest(format!(
                "max_memory_bytes {asked} is above this host's ceiling of {ceiling} bytes; ask for less, or restart the host with a higher [limits] max_memory_bytes"
            )));
        }
        Ok(())
    }

    /// Compiles the component `bytes` of route `prefix`, named `name` in
    /// errors and logs.
    fn compile(
        &self,
        prefix: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<Arc<CompiledComponent>, RegistryError> {
        // A line before and after: a large component (a Python one is
        // about 20 MB) takes seconds to compile when the cache misses.
        tracing::info!(
            route = prefix,
            component = name,
            bytes = bytes.len(),
            "compiling"
        );
        let started = std::time::Instant::now();
        let hits_before = self.engine.cache_stats().map(|stats| stats.hits);
        let component =
            self.engine
                .compile(name, bytes)
                .map_err(|source| RegistryError::Compile {
                    prefix: prefix.to_owned(),
                    source,
                })?;
        let secs = started.elapsed().as_secs_f64();
        let how = match (hits_before, self.engine.cache_stats()) {
            (Some(before), Some(after)) if after.hits > before => {
                format!("loaded from the compile cache in {secs:.1} s")
            }
            (Some(_), Some(_)) => format!("compiled in {secs:.1} s, and cached"),
            _ => format!("compiled in {secs:.1} s (no --state: compiled again at every start)"),
        };
        tracing::info!(route = prefix, component = name, "ready: {how}");
        Ok(component)
    }

    /// Reads a recorded component from the store and compiles it (a cache
    /// hit when it was compiled before with the same engine settings).
    fn load(
        &self,
        store: &StateStore,
        prefix: &str,
        record: &VersionRecord,
    ) -> Result<Arc<CompiledComponent>, RegistryError> {
        let bytes = store.component(prefix, &record.hash)?;
        let name = store.component_path(&record.hash).display().to_string();
        self.compile(prefix, &name, &bytes)
    }

    /// The one place a [`Route`] is built: `component` serving `prefix`
    /// with the options of `record` over the host's defaults.
    fn route(
        &self,
        prefix: &str,
        record: &VersionRecord,
        component: Arc<CompiledComponent>,
    ) -> Arc<Route> {
        Arc::new(
            Route::new(
                prefix,
                component,
                record.options.isolation.unwrap_or(self.isolation),
                record.options.limits(&self.limits),
            )
            .allowing_outbound(record.options.allow_outbound.as_ref()),
        )
    }

    fn info(&self, prefix: &str, route: &RouteState) -> RouteInfo {
        RouteInfo {
            prefix: prefix.to_owned(),
            version: version_info(&route.current),
            world: route.route.component.world,
            isolation: route.route.isolation,
            limits: route.route.limits.clone(),
            allow_outbound: route.route.allow_outbound.as_deref().cloned(),
            history: route
                .history
                .iter()
                .rev()
                .map(|v| version_info(&v.record))
                .collect(),
            unchanged: false,
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, BTreeMap<String, RouteState>> {
        self.state.lock().expect("registry lock poisoned")
    }

    fn lock_changes(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().expect("registry change lock poisoned")
    }
}

impl Version {
    fn unloaded(record: VersionRecord) -> Version {
        Version {
            record,
            compiled: None,
        }
    }
}

fn version_info(record: &VersionRecord) -> VersionInfo {
    VersionInfo {
        hash: record.hash.clone(),
        size: record.size,
        deployed_at: record.deployed_at,
        oci: record.oci.clone(),
        options: record.options.clone(),
    }
}

/// Whether two records are the same version: the same component with the
/// same options (when and from where it was deployed aside).
fn same_version(a: &VersionRecord, b: &VersionRecord) -> bool {
    a.hash == b.hash && a.options == b.options
}

/// Adds `version` as the newest of `history`, dropping the entries that
/// are the same version as it or as `current`, and keeping the newest
/// [`MAX_HISTORY`].
fn push_history(history: &mut Vec<Version>, version: Version, current: &VersionRecord) {
    history.retain(|v| !same_version(&v.record, &version.record));
    if !same_version(&version.record, current) {
        history.push(version);
    }
    history.retain(|v| !same_version(&v.record, current));
    let excess = history.len().saturating_sub(MAX_HISTORY);
    history.drain(..excess);
}

/// A history read back from the state directory (untrusted): a record
/// that names no component is logged and dropped, repeated versions are
/// kept once, and at most [`MAX_HISTORY`] stay. A record without options
/// (written before options were recorded, or deployed without any) has
/// the host's defaults.
fn restored_history(
    prefix: &str,
    records: Vec<VersionRecord>,
    current: &VersionRecord,
) -> Vec<Version> {
    let mut history = Vec::new();
    let mut without_options = 0;
    for record in records {
        if !store::is_sha256_hex(&record.hash) {
            tracing::warn!(
                route = prefix,
                hash = %record.hash,
                "an earlier version in the route table names no component (not a SHA-256); it is dropped from the history"
            );
            continue;
        }
        if record.options == RouteOptions::default() {
            without_options += 1;
        }
        push_history(&mut history, Version::unloaded(record), current);
    }
    if without_options > 0 {
        tracing::info!(
            route = prefix,
            "{without_options} earlier version(s) record no isolation or limits: a rollback to them uses the host's defaults"
        );
    }
    history
}

/// The index in `route`'s history of the newest version whose hash starts
/// with `to` (`sha256:` may be written before it).
fn find_version(prefix: &str, route: &RouteState, to: &str) -> Result<usize, RegistryError> {
    let to = to.trim().strip_prefix("sha256:").unwrap_or(to.trim());
    let known = || {
        let mut versions: Vec<String> = route
            .history
            .iter()
            .rev()
            .map(|v| format!("sha256:{}", &v.record.hash[..v.record.hash.len().min(16)]))
            .collect();
        versions.dedup();
        if versions.is_empty() {
            "no earlier version".to_owned()
        } else {
            versions.join(", ")
        }
    };
    if to.len() < 4 || !to.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RegistryError::BadRequest(format!(
            "{to:?} is not a version: give the start of its SHA-256 (at least 4 hex digits, as `percore routes` shows it); route {prefix} has {}",
            known()
        )));
    }
    let to = to.to_ascii_lowercase();
    let matching: Vec<usize> = (0..route.history.len())
        .filter(|&i| route.history[i].record.hash.starts_with(&to))
        .collect();
    let hashes: std::collections::BTreeSet<&str> = matching
        .iter()
        .map(|&i| route.history[i].record.hash.as_str())
        .collect();
    match (matching.last(), hashes.len()) {
        (Some(&at), 1) => Ok(at),
        (Some(_), _) => Err(RegistryError::BadRequest(format!(
            "sha256:{to} names {} versions of route {prefix}; give more of the hash",
            hashes.len()
        ))),
        (None, _) if route.current.hash.starts_with(&to) => Err(RegistryError::BadRequest(
            format!("sha256:{to} is the version serving route {prefix} already"),
        )),
        (None, _) => Err(RegistryError::NoVersion {
            prefix: prefix.into(),
            hash: format!("sha256:{to}"),
            known: known(),
        }),
    }
}

/// Removes from the state directory every component that no route's
/// version or history names (after an undeploy, a rollback, or a history
/// grown past [`MAX_HISTORY`]); never while the host has restore errors
/// (see [`Registry::commit`]). The compiled code in `cache/` is left to
/// wasmtime's cache, which evicts by size and age; pulled manifests stay
/// (a few hundred bytes each; a later deploy of the digest pulls only its
/// layer again).
fn collect_garbage(store: &StateStore, state: &BTreeMap<String, RouteState>) {
    let referenced: std::collections::BTreeSet<&str> = state
        .values()
        .flat_map(|route| {
            std::iter::once(route.current.hash.as_str())
                .chain(route.history.iter().map(|v| v.record.hash.as_str()))
        })
        .collect();
    match store.remove_components_except(&referenced) {
        Ok(removed) => {
            for hash in removed {
                tracing::info!(%hash, "component removed from the state directory: no version refers to it");
            }
        }
        Err(e) => tracing::warn!("unreferenced components were not removed: {e}"),
    }
}

/// The state as `routes.json` records it.
fn persisted(state: &BTreeMap<String, RouteState>) -> PersistedTable {
    PersistedTable {
        format: store::FORMAT,
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

/// The state as the workers serve it. Every prefix in the state was
/// validated on its way in (configured, deployed, or restored).
fn table_of(state: &BTreeMap<String, RouteState>) -> RouteTable {
    let mut router = Router::new();
    for (prefix, route) in state {
        if let Err(e) = router.insert(prefix, route.route.clone()) {
            // Unreachable by construction; never worth a panic on a worker.
            tracing::error!("route {prefix} left out of the table: {e}");
        }
    }
    RouteTable { router }
}

/// Reads a component file the user named. When there is no such file, the
/// error lists the `.wasm` files in its folder (a typo is the usual cause),
/// or says where a Rust handler's build lands when there are none.
pub fn read_component_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|error| {
        if error.kind() != std::io::ErrorKind::NotFound {
            return error;
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => std::path::Path::new("."),
        };
        let mut found: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".wasm"))
            .collect();
        found.sort();
        let listing = match found.len() {
            0 if !dir.is_dir() => format!("the folder {} does not exist either", dir.display()),
            0 => format!(
                "{} holds no .wasm file (a Rust handler's build is target/wasm32-wasip2/release/NAME.wasm in its crate)",
                dir.display()
            ),
            n => {
                let shown = found.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
                let more = if n > 10 { format!(" and {} more", n - 10) } else { String::new() };
                format!(".wasm files in {}: {shown}{more}", dir.display())
            }
        };
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no such file; {listing}"),
        )
    })
}
