//! The wasmtime side of the host, built once per process: the [`Engine`]
//! (pooling allocator with copy-on-write memory images, epoch interruption),
//! the [`Linker`] with WASI and the `wiki` host functions, the epoch ticker
//! thread, the pool of low-priority threads that compile, and
//! [`HostEngine::compile`], which turns component bytes into a
//! ready-to-instantiate [`CompiledComponent`] (compile once,
//! `instantiate_pre` once).
//!
//! Two engines: percore-world and wasi:http 0.2 components compile for one
//! with concurrency support off (`Config::concurrency_support(false)`:
//! wasmtime's component-model-async, compiled in for wasi:http 0.3, would
//! otherwise make every call of every route about twice as dear), and
//! wasi:http 0.3 (p3) components for a second one with it on, built when
//! the first p3 component is compiled (a host without p3 routes never
//! builds it, nor reserves its pool's address space). Which one a
//! component needs is read from its exports before it is compiled
//! ([`detect_world`]).
//!
//! The shape of one store (how many core instances, tables and memories a
//! component may have) is set here once, in [`MAX_CORE_INSTANCES`],
//! [`MAX_TABLES`] and [`MAX_MEMORIES`], for both the pooling allocator and
//! every store's limiter ([`crate::budget::GuestLimiter`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::bindings::{self, HandlerPre};
use crate::compiler::{ChildCompiler, ChildError, ChildSettings};
use crate::host_functions::HostState;

/// How often the epoch advances. A running handler checks its deadline (and
/// yields to the other connections of its core) once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The version of wasmtime this binary is built with (the workspace pins
/// it; a unit test checks that the two agree). Shown in `/metrics`.
pub const WASMTIME_VERSION: &str = "49.0.5";

/// The WIT interface that reaches the shared index.
pub const WIKI_INTERFACE: &str = "percore:host/wiki";

/// Why a component cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The bytes are not a WebAssembly component (or do not compile).
    #[error("{name} is not a valid WebAssembly component: {detail}")]
    Invalid {
        /// The component's name (file or route).
        name: String,
        /// wasmtime's explanation.
        detail: String,
    },
    /// The bytes are not WebAssembly at all (a native binary, an archive,
    /// text...).
    #[error(
        "{name} is not a valid WebAssembly component: it is {what}. A handler is a component built for the wasm32-wasip2 target: `cargo build --release --target wasm32-wasip2` in a crate made by `percore new`, then deploy target/wasm32-wasip2/release/NAME.wasm"
    )]
    NotWasm {
        /// The component's name.
        name: String,
        /// What the bytes look like.
        what: &'static str,
    },
    /// The component is a core module, not a component.
    #[error(
        "{name} is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule {
        /// The component's name.
        name: String,
    },
    /// The component exports none of the worlds percore serves.
    #[error(
        "{name} exports neither percore's `handle` (world percore:host/handler), `wasi:http/incoming-handler` 0.2 (world wasi:http/proxy) nor `{P3_HANDLER}` (world wasi:http/service); it exports {exports}"
    )]
    UnknownWorld {
        /// The component's name.
        name: String,
        /// What it exports.
        exports: String,
    },
    /// The component exports a world percore serves, but does not fit it
    /// (an import the host does not provide, a wrong signature).
    #[error("{name} does not fit the {world} world: {detail}")]
    WrongWorld {
        /// The component's name.
        name: String,
        /// The world its exports name.
        world: World,
        /// Which import or export is wrong.
        detail: String,
    },
    /// Compiling the component would exceed the compile budget (or the
    /// compiler process failed).
    #[error("{name} was not compiled: {detail}")]
    Budget {
        /// The component's name.
        name: String,
        /// Which budget, and what to do.
        detail: String,
    },
    /// The component imports `wiki` but the host has no index.
    #[error(
        "{name} imports {WIKI_INTERFACE}, but this host has no index: start it with `--index DIR` (build one with `percore index DUMP.xml --out DIR`)"
    )]
    NeedsIndex {
        /// The component's name.
        name: String,
    },
}

/// Most core instances one component may create (a Rust guest has a
/// handful: its own module, the WASI adapter, shims).
pub const MAX_CORE_INSTANCES: u32 = 16;
/// Most tables one component may create.
pub const MAX_TABLES: u32 = 16;
/// Most linear memories one component may create.
pub const MAX_MEMORIES: u32 = 4;

/// The nice value (Linux: per thread) of the threads that compile: the
/// engine's compile pool, and the admin runtime's blocking pool that
/// drives it. Raising it needs no privilege; workers stay at the default 0.
pub const COMPILE_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`COMPILE_NICE`] (Linux only;
/// elsewhere, and when the OS refuses, compiles run at normal priority).
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), COMPILE_NICE) {
            tracing::debug!("cannot lower the priority of a compile thread: {e}");
        }
    }
}

/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Whether handler calls run under deadlines (epoch interruption and a
    /// timer). Always on in the `percore` binary: neither a flag nor the
    /// config file can switch it off. Only a program that embeds the
    /// library can (the load harness's `percore-nodeadline`, which measures
    /// what deadlines cost).
    pub deadlines: bool,
    /// Largest linear memory any instance may have, in bytes (the pooling
    /// allocator reserves slots of this size; routes may set lower caps).
    pub max_memory_bytes: u64,
    /// Most instances alive at once across all workers.
    pub max_instances: u32,
    /// Whether the host has a title index: components that import `wiki`
    /// are refused without one.
    pub has_index: bool,
    /// Directory of wasmtime's cache of compiled components (machine code
    /// keyed by a hash of the component and the compiler settings), so that
    /// a restart serves without recompiling. Default: none (no cache).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Where untrusted components (uploads) compile: in a child process
    /// within a budget, or, when `None`, in this process (a program that
    /// embeds the library and has no `percore` binary to run).
    pub child_compiler: Option<ChildCompiler>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            deadlines: true,
            max_memory_bytes: 64 << 20,
            max_instances: 1000,
            has_index: false,
            cache_dir: None,
            child_compiler: None,
        }
    }
}

impl EngineOptions {
    /// The options a host configured by `config` needs: memory slots as
    /// large as the largest route asks for, the index and the cache in the
    /// state directory when there are.
    pub fn for_config(config: &crate::config::Config) -> EngineOptions {
        let max_memory_bytes = config
            .routes
            .iter()
            .map(|r| r.options.limits(&config.limits).max_memory_bytes)
            .chain([config.limits.max_memory_bytes])
            .max()
            .unwrap_or_default();
        EngineOptions {
            deadlines: true,
            max_memory_bytes,
            max_instances: config.max_instances.max(1),
            has_index: config.index.is_some(),
            cache_dir: config
                .state
                .as_deref()
                .map(crate::registry::store::cache_dir),
            child_compiler: None,
        }
    }
}

/// The export of a wasi:http 0.3 (p3) handler, as the linked
/// wasmtime-wasi-http names it: that version exactly (0.3 release
/// candidates, `0.3.0-rc-...`, are other packages and do not link).
pub const P3_HANDLER: &str = "wasi:http/handler@0.3.0";

/// The world a component serves, told apart by its exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum World {
    /// percore's own `percore:host/handler`: exports `handle`.
    #[serde(rename = "percore:host/handler")]
    Percore,
    /// The standard `wasi:http/proxy` of wasi:http 0.2 (any 0.2.x, linked
    /// by semver): exports `wasi:http/incoming-handler`.
    #[serde(rename = "wasi:http/proxy@0.2")]
    WasiHttp,
    /// The standard `wasi:http/service` of wasi:http 0.3 (p3): exports
    /// `wasi:http/handler@0.3...` ([`P3_HANDLER`] is the version that
    /// links). Served by the engine with concurrency support.
    #[serde(rename = "wasi:http/service@0.3")]
    WasiHttpP3,
}

impl World {
    /// The world whose export is among `exports`, if any: the one place
    /// that decides (by export, as `wasmtime serve` does).
    pub fn of_exports(exports: &[String]) -> Option<World> {
        if exports.iter().any(|e| e == "handle") {
            Some(World::Percore)
        } else if exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2."))
        {
            Some(World::WasiHttp)
        } else if exports
            .iter()
            .any(|e| e.starts_with("wasi:http/handler@0.3"))
        {
            Some(World::WasiHttpP3)
        } else {
            None
        }
    }

    /// Whether components of this world need the engine with concurrency
    /// support (component-model-async).
    pub fn needs_concurrency(self) -> bool {
        self == World::WasiHttpP3
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            World::Percore => "percore:host/handler",
            World::WasiHttp => "wasi:http/proxy@0.2",
            World::WasiHttpP3 => "wasi:http/service@0.3",
        })
    }
}

/// What a component's top level says of it, read from its bytes without
/// compiling it: what it exports and which tools made it. Nested modules
/// and components are skipped, not parsed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TopLevel {
    /// The names it exports.
    pub exports: Vec<String>,
    /// The `processed-by` entries of its own `producers` section: (tool,
    /// version), as `wit-component` and the language tools record them.
    pub processed_by: Vec<(String, String)>,
}

impl TopLevel {
    /// Reads the top level of the component `bytes`.
    pub fn read(bytes: &[u8]) -> Result<TopLevel, String> {
        use wasmparser::{Chunk, KnownCustom, Parser, Payload};
        let mut parser = Parser::new(0);
        let mut at = 0usize;
        let mut top = TopLevel::default();
        loop {
            let rest = bytes.get(at..).ok_or("a section runs past the end")?;
            let (consumed, payload) = match parser.parse(rest, true).map_err(|e| e.to_string())? {
                Chunk::Parsed { consumed, payload } => (consumed, payload),
                Chunk::NeedMoreData(_) => return Err("the component is truncated".into()),
            };
            at += consumed;
            match payload {
                // The nested module's or component's bytes follow its section
                // header; the outer parser goes on after them.
                Payload::ModuleSection {
                    unchecked_range, ..
                }
                | Payload::ComponentSection {
                    unchecked_range, ..
                } => {
                    at = usize::try_from(unchecked_range.end)
                        .ok()
                        .filter(|&end| end <= bytes.len())
                        .ok_or("a nested module runs past the end")?;
                }
                Payload::ComponentExportSection(reader) => {
                    for export in reader {
                        let name = export.map_err(|e| e.to_string())?.name.name;
                        top.exports.push(name.to_owned());
                    }
                }
                // Only what it says is kept: a malformed `producers`
                // section is no reason to refuse a component.
                Payload::CustomSection(section) => {
                    if let KnownCustom::Producers(fields) = section.as_known() {
                        for field in fields.into_iter().flatten() {
                            if field.name == "processed-by" {
                                top.processed_by
                                    .extend(field.values.into_iter().flatten().map(|value| {
                                        (value.name.to_owned(), value.version.to_owned())
                                    }));
                            }
                        }
                    }
                }
                Payload::End(_) => return Ok(top),
                _ => {}
            }
        }
    }

    /// Why an instance of this component answers only its first request,
    /// when the tool that built it says so: componentize-js (its engine,
    /// StarlingMonkey, keeps one `FetchEvent`, whose `respondWith` throws
    /// from the second request on: "FetchEvent#respondWith can't be
    /// called twice on the same event", and the call never answers). Such
    /// a component is served in `request` isolation whatever its route
    /// asks ([`crate::routes::Route::new`]).
    pub fn one_request_per_instance(&self) -> Option<String> {
        self.processed_by
            .iter()
            .find(|(tool, _)| tool == "ComponentizeJS")
            .map(|(_, version)| format!("componentize-js {version}"))
    }
}

/// The world the component `bytes` (called `name` in errors) serves, by
/// its exports, before it is compiled: what picks its engine. `percore
/// check` and the registry's compiles share it.
pub fn detect_world(name: &str, bytes: &[u8]) -> Result<World, CompileError> {
    check_kind(name, bytes)?;
    world_of(name, TopLevel::read(bytes))
}

/// The world of the component `name` whose top level reads as `top`.
fn world_of(name: &str, top: Result<TopLevel, String>) -> Result<World, CompileError> {
    let exports = top
        .map_err(|detail| CompileError::Invalid {
            name: name.into(),
            detail,
        })?
        .exports;
    World::of_exports(&exports).ok_or_else(|| CompileError::UnknownWorld {
        name: name.into(),
        exports: if exports.is_empty() {
            "nothing".into()
        } else {
            exports.join(", ")
        },
    })
}

/// What the bytes of a component to compile say before it is compiled.
struct ToCompile {
    /// The world whose engine compiles it.
    world: World,
    /// The refusal to give once it compiled. A component whose world
    /// cannot be told (it exports none, or its exports cannot be read) is
    /// compiled all the same, on the first engine, so that one that is
    /// also invalid, or too dear to compile, is refused for that first
    /// (wasmtime's message, the compile budget), as before there were two
    /// engines; then for its world.
    refusal: Option<CompileError>,
    /// [`TopLevel::one_request_per_instance`].
    one_request_per_instance: Option<String>,
}

/// Reads the top level of `bytes` once: its world and what its producers
/// say.
fn to_compile(name: &str, bytes: &[u8]) -> Result<ToCompile, CompileError> {
    check_kind(name, bytes)?;
    let top = TopLevel::read(bytes);
    let one_request_per_instance = top
        .as_ref()
        .ok()
        .and_then(TopLevel::one_request_per_instance);
    let (world, refusal) = match world_of(name, top) {
        Ok(world) => (world, None),
        Err(refusal) => (World::Percore, Some(refusal)),
    };
    Ok(ToCompile {
        world,
        refusal,
        one_request_per_instance,
    })
}

/// A component pre-linked against the host's imports, for its world.
pub enum ComponentPre {
    /// percore's own world.
    Percore(HandlerPre<HostState>),
    /// `wasi:http/proxy` 0.2.
    WasiHttp(ProxyPre<HostState>),
    /// `wasi:http/service` 0.3, on the engine with concurrency support.
    WasiHttpP3(ServicePre<HostState>),
}

impl ComponentPre {
    /// The engine it was linked with.
    pub fn engine(&self) -> &Engine {
        match self {
            ComponentPre::Percore(pre) => pre.engine(),
            ComponentPre::WasiHttp(pre) => pre.engine(),
            ComponentPre::WasiHttpP3(pre) => pre.engine(),
        }
    }

    /// The compiled component (its imports and exports: `percore check`).
    pub fn component(&self) -> &Component {
        match self {
            ComponentPre::Percore(pre) => pre.instance_pre().component(),
            ComponentPre::WasiHttp(pre) => pre.instance_pre().component(),
            ComponentPre::WasiHttpP3(pre) => pre.instance_pre().component(),
        }
    }
}

/// A compiled, linked component, ready to instantiate on any worker.
pub struct CompiledComponent {
    /// Name for logs (file path or built-in name).
    pub name: String,
    /// The component pre-linked against the host's imports.
    pub pre: ComponentPre,
    /// The world it serves.
    pub world: World,
    /// Size of the component in bytes.
    pub size: usize,
    /// SHA-256 of the component's bytes, lower-case hex: its identity in
    /// the state directory and in `percore routes`.
    pub hash: String,
    /// Whether the component imports the `wiki` interface (and so needs the
    /// index in its store).
    pub imports_wiki: bool,
    /// Whether calls run under deadlines ([`EngineOptions::deadlines`]).
    pub deadlines: bool,
    /// Why its instances answer one request each (the tool that built it),
    /// when they do ([`TopLevel::one_request_per_instance`]): its routes
    /// are then served in `request` isolation.
    pub one_request_per_instance: Option<String>,
}

/// The engines, linkers and epoch ticker, shared by every worker.
pub struct HostEngine {
    /// The engine of percore-world and wasi:http 0.2 components, without
    /// concurrency support.
    engine: Engine,
    linker: Linker<HostState>,
    options: EngineOptions,
    /// Whether the pooling allocator could be used.
    pooling: bool,
    /// The engine of wasi:http 0.3 components, with concurrency support,
    /// once the first one was compiled ([`HostEngine::p3_engine`]).
    p3: OnceLock<P3Engine>,
    /// Held while the p3 engine is built, so that it is built once.
    p3_building: Mutex<()>,
    /// The p3 engine as the epoch ticker sees it (set with `p3`).
    p3_ticked: Arc<OnceLock<Engine>>,
    ticker: Option<EpochTicker>,
    /// wasmtime's cache of compiled components, when enabled.
    cache: Option<wasmtime::Cache>,
    /// Cache hits and misses of compiles in the compiler process.
    child_cache: [std::sync::atomic::AtomicUsize; 2],
    /// The threads wasmtime compiles functions on (in parallel), at
    /// [`COMPILE_NICE`] so that the workers keep their cores. A pool of
    /// its own: the process's global rayon pool is left as it is.
    compile_pool: rayon::ThreadPool,
}

/// What the compilation cache did since the engine started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheStats {
    /// Compilations answered from the cache (no code generated).
    pub hits: usize,
    /// Compilations that generated code and stored it in the cache.
    pub misses: usize,
}

impl HostEngine {
    /// Builds the engine, preferring the pooling allocator and falling back
    /// to on-demand allocation when the machine cannot reserve its address
    /// space, and starts the epoch ticker.
    pub fn new(options: EngineOptions) -> anyhow::Result<Self> {
        let cache = options
            .cache_dir
            .as_deref()
            .map(crate::compiler::open_cache)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let configure = |pooling, concurrency| {
            let mut config = base_config(&options, pooling, concurrency);
            config.cache(cache.clone());
            config
        };
        let (engine, pooling) = build_engine(|pooling| configure(pooling, false))?;
        let linker = base_linker(&engine)?;
        let compile_pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("percore-compile-{i}"))
            .start_handler(|_| lower_priority())
            .build()?;
        let p3_ticked = Arc::new(OnceLock::new());
        let ticker = Some(EpochTicker::start(engine.clone(), p3_ticked.clone()));
        Ok(HostEngine {
            engine,
            linker,
            options,
            pooling,
            p3: OnceLock::new(),
            p3_building: Mutex::new(()),
            p3_ticked,
            ticker,
            cache,
            child_cache: Default::default(),
            compile_pool,
        })
    }

    /// The wasmtime engine of percore-world and wasi:http 0.2 components
    /// (concurrency support off).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine of wasi:http 0.3 components (concurrency support on),
    /// when one has been compiled: it is built with the first.
    pub fn p3_engine(&self) -> Option<&Engine> {
        self.p3.get().map(|p3| &p3.engine)
    }

    /// The engine and linker for components of `world`; for p3, built on
    /// first use (the same settings and limits as the other, plus
    /// concurrency support), its epoch then advanced by the same ticker.
    fn engine_for(&self, world: World) -> anyhow::Result<(&Engine, &Linker<HostState>)> {
        if !world.needs_concurrency() {
            return Ok((&self.engine, &self.linker));
        }
        let p3 = match self.p3.get() {
            Some(p3) => p3,
            None => {
                let _building = self
                    .p3_building
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match self.p3.get() {
                    Some(p3) => p3,
                    None => {
                        let p3 = P3Engine::new(&self.options, self.cache.clone())?;
                        let _ = self.p3_ticked.set(p3.engine.clone());
                        tracing::info!(
                            pooling = p3.pooling,
                            "built the engine of wasi:http 0.3 routes (concurrency support on)"
                        );
                        self.p3.get_or_init(|| p3)
                    }
                }
            }
        };
        Ok((&p3.engine, &p3.linker))
    }

    /// Whether instances come from the pooling allocator.
    pub fn is_pooling(&self) -> bool {
        self.pooling
    }

    /// What the compilation cache did so far, in this process and in the
    /// compiler processes; `None` when the engine has no cache (see
    /// [`EngineOptions::cache_dir`]).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|cache| CacheStats {
            hits: cache.cache_hits() + self.child_cache[0].load(Ordering::Relaxed),
            misses: cache.cache_misses() + self.child_cache[1].load(Ordering::Relaxed),
        })
    }

    /// The options the engine was built with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Compiles and links a component the operator gave (a configured
    /// route, or one restored from the state directory). This is slow
    /// (milliseconds to seconds) and runs once per component, never on the
    /// request path: on the compile pool, which the calling thread waits
    /// for.
    pub fn compile(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<Arc<CompiledComponent>, CompileError> {
        let mut plan = to_compile(name, bytes)?;
        let (engine, _) = self
            .engine_for(plan.world)
            .map_err(|e| self.no_engine(name, e))?;
        let component = self
            .compile_pool
            .install(|| Component::new(engine, bytes))
            .map_err(|e| CompileError::Invalid {
                name: name.into(),
                detail: format!("{e:#}"),
            })?;
        if let Some(refusal) = plan.refusal.take() {
            return Err(refusal);
        }
        self.link(name, bytes, plan, component)
    }

    /// Compiles and links a component from an untrusted source (an upload):
    /// in the compiler process, within its memory and time budget, when the
    /// engine has one ([`EngineOptions::child_compiler`]); else as
    /// [`HostEngine::compile`] does.
    pub fn compile_untrusted(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<Arc<CompiledComponent>, CompileError> {
        let Some(child) = &self.options.child_compiler else {
            return self.compile(name, bytes);
        };
        let mut plan = to_compile(name, bytes)?;
        let (engine, _) = self
            .engine_for(plan.world)
            .map_err(|e| self.no_engine(name, e))?;
        let settings = ChildSettings {
            deadlines: self.options.deadlines,
            concurrency: plan.world.needs_concurrency(),
            cache_dir: self.options.cache_dir.clone(),
        };
        let output = child.compile(&settings, bytes).map_err(|e| match e {
            ChildError::Invalid(detail) => CompileError::Invalid {
                name: name.into(),
                detail,
            },
            other => CompileError::Budget {
                name: name.into(),
                detail: other.to_string(),
            },
        })?;
        if self.cache.is_some() {
            self.child_cache[usize::from(!output.cache_hit)].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(refusal) = plan.refusal.take() {
            return Err(refusal);
        }
        #[expect(
            unsafe_code,
            reason = "loading machine code compiled by our own child process"
        )]
        // SAFETY: the bytes are what `Component::serialize` wrote in the
        // compiler process this host started from its own binary, with the
        // same code-generation settings (`codegen_config`), sent over a
        // pipe that nothing else writes; they were never on disk or the
        // network. wasmtime checks that they were made for an engine
        // compatible with this one and refuses them otherwise.
        let component =
            unsafe { Component::deserialize(engine, &output.serialized) }.map_err(|e| {
                CompileError::Invalid {
                    name: name.into(),
                    detail: format!("the compiled code could not be loaded: {e:#}"),
                }
            })?;
        self.link(name, bytes, plan, component)
    }

    /// The error for a component whose engine could not be built.
    fn no_engine(&self, name: &str, e: anyhow::Error) -> CompileError {
        CompileError::Budget {
            name: name.into(),
            detail: format!("the engine of wasi:http 0.3 routes could not be built: {e:#}"),
        }
    }

    /// Links a compiled `component` (of `bytes`, as `plan` read them)
    /// against the host's imports.
    fn link(
        &self,
        name: &str,
        bytes: &[u8],
        plan: ToCompile,
        component: Component,
    ) -> Result<Arc<CompiledComponent>, CompileError> {
        let world = plan.world;
        let (engine, linker) = self
            .engine_for(world)
            .map_err(|e| self.no_engine(name, e))?;
        let imports_wiki = component
            .component_type()
            .imports(engine)
            .any(|(import, _)| import.starts_with(WIKI_INTERFACE));
        if imports_wiki && !self.options.has_index {
            return Err(CompileError::NeedsIndex { name: name.into() });
        }
        let p3_version = (world == World::WasiHttpP3)
            .then(|| {
                component
                    .component_type()
                    .exports(engine)
                    .map(|(export, _)| export.to_owned())
                    .find(|export| export.starts_with("wasi:http/handler@"))
            })
            .flatten()
            .filter(|export| export != P3_HANDLER);
        let wrong_world = |e: wasmtime::Error| CompileError::WrongWorld {
            name: name.into(),
            world,
            detail: match &p3_version {
                Some(export) => format!(
                    "it exports {export}, but percore links {P3_HANDLER} exactly (the wasi:http 0.3 of wasmtime-wasi-http {WASMTIME_VERSION}); rebuild it against that WIT ({e:#})"
                ),
                None => format!("{e:#}"),
            },
        };
        let instance_pre = linker.instantiate_pre(&component).map_err(wrong_world)?;
        let pre = match world {
            World::Percore => {
                ComponentPre::Percore(HandlerPre::new(instance_pre).map_err(wrong_world)?)
            }
            World::WasiHttp => {
                ComponentPre::WasiHttp(ProxyPre::new(instance_pre).map_err(wrong_world)?)
            }
            World::WasiHttpP3 => {
                ComponentPre::WasiHttpP3(ServicePre::new(instance_pre).map_err(wrong_world)?)
            }
        };
        Ok(Arc::new(CompiledComponent {
            name: name.into(),
            world,
            pre,
            size: bytes.len(),
            hash: sha256_hex(bytes),
            imports_wiki,
            deadlines: self.options.deadlines,
            one_request_per_instance: plan.one_request_per_instance,
        }))
    }
}

impl Drop for HostEngine {
    fn drop(&mut self) {
        self.ticker.take();
    }
}

/// The SHA-256 of `bytes` in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    let digest = sha2::Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Refuses bytes that are not a component before wasmtime sees them, with
/// a message that says what they are instead (wasmtime's own would be a
/// byte array: `bad magic number - expected=[0x0, 0x61, ...`). Cheap: it
/// reads the header only (`percore push` checks files with it; the host
/// validates fully when it compiles).
pub fn check_kind(name: &str, bytes: &[u8]) -> Result<(), CompileError> {
    if is_core_module(bytes) {
        return Err(CompileError::CoreModule { name: name.into() });
    }
    match sniff_not_wasm(bytes) {
        Some(what) => Err(CompileError::NotWasm {
            name: name.into(),
            what,
        }),
        None => Ok(()),
    }
}

/// Whether `bytes` start like a core module (version 1) rather than a
/// component.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

/// What `bytes` are when they are not WebAssembly (no `\0asm` magic);
/// `None` when they are (valid or not: wasmtime says what is wrong).
fn sniff_not_wasm(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\0asm") {
        return None;
    }
    let what = match bytes {
        [] => "an empty file",
        [0x7f, b'E', b'L', b'F', ..] => {
            "an ELF file (a native executable or shared library, not WebAssembly)"
        }
        [0xcf, 0xfa, 0xed, 0xfe, ..]
        | [0xfe, 0xed, 0xfa, 0xcf, ..]
        | [0xca, 0xfe, 0xba, 0xbe, ..] => "a Mach-O file (a native macOS binary, not WebAssembly)",
        [b'M', b'Z', ..] => "a Windows executable or DLL (not WebAssembly)",
        [0x1f, 0x8b, ..] => "a gzip archive (unpack it first)",
        [b'P', b'K', 3, 4, ..] => "a zip archive (unpack it first)",
        [b'#', b'!', ..] => "a script (a text file starting with #!)",
        _ if bytes
            .iter()
            .take(512)
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) =>
        {
            "a text file (WebAssembly text, `.wat`, must be compiled to a binary component)"
        }
        _ => "not WebAssembly (it does not start with the `\\0asm` magic number)",
    };
    Some(what)
}

/// The settings that decide the machine code wasmtime generates, and so
/// whether compiled code can be shared: the same in the host and in the
/// compiler process ([`crate::compiler`]). `concurrency`: component-model
/// async (wasi:http 0.3 components) on; set either way, since wasmtime's
/// `component-model-async` feature would otherwise turn it on for all.
pub fn codegen_config(deadlines: bool, concurrency: bool) -> Config {
    let mut config = Config::new();
    config
        .concurrency_support(concurrency)
        .epoch_interruption(deadlines)
        .memory_init_cow(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed)
        .max_wasm_stack(1 << 20)
        .async_stack_size(2 << 20);
    config
}

/// Builds an engine from `configure(pooling)`, preferring the pooling
/// allocator and falling back to on-demand allocation when the machine
/// cannot reserve its address space; says which it got.
fn build_engine(configure: impl Fn(bool) -> Config) -> anyhow::Result<(Engine, bool)> {
    match Engine::new(&configure(true)) {
        Ok(engine) => Ok((engine, true)),
        Err(e) => {
            tracing::warn!(
                "pooling instance allocator unavailable ({e:#}); falling back to on-demand allocation"
            );
            Ok((Engine::new(&configure(false))?, false))
        }
    }
}

/// A linker with what every handler may import: the whole of WASI 0.2
/// (each interface without authority; see `host_functions`), as language
/// runtimes (Python, JavaScript) import it, `wasi:http` 0.2 with percore's
/// one-call response (`respond`), and percore's own world (`wiki`).
fn base_linker(engine: &Engine) -> anyhow::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    // The whole of WASI 0.2 (each interface without authority; see
    // `host_functions`), as language runtimes (Python, JavaScript)
    // import it, then `wasi:http` and percore's own world.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    // stdout and stderr: the host's log instead of WASI's sinks.
    linker.allow_shadowing(true);
    crate::guest_log::add_to_linker(&mut linker)?;
    linker.allow_shadowing(false);
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::respond::add_to_linker(&mut linker)?;
    bindings::Handler::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// The engine of wasi:http 0.3 components: concurrency support on, the
/// same limits and pool shape as the other engine (the worker budgets cap
/// the instances of both together).
struct P3Engine {
    engine: Engine,
    /// [`base_linker`] plus WASI 0.3 and `wasi:http` 0.3 (a p3 component
    /// built for wasm32-wasip2 imports both: Rust's std uses WASI 0.2).
    linker: Linker<HostState>,
    /// Whether the pooling allocator could be used.
    pooling: bool,
}

impl P3Engine {
    fn new(options: &EngineOptions, cache: Option<wasmtime::Cache>) -> anyhow::Result<Self> {
        let (engine, pooling) = build_engine(|pooling| {
            let mut config = base_config(options, pooling, true);
            config.cache(cache.clone());
            config
        })?;
        let mut linker = base_linker(&engine)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        Ok(P3Engine {
            engine,
            linker,
            pooling,
        })
    }
}

fn base_config(options: &EngineOptions, pooling: bool, concurrency: bool) -> Config {
    let mut config = codegen_config(options.deadlines, concurrency);
    if pooling {
        let instances = options.max_instances;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(8))
            .total_memories(instances)
            .total_tables(instances.saturating_mul(8))
            .total_stacks(instances)
            .max_memory_size(options.max_memory_bytes as usize)
            .max_memories_per_component(MAX_MEMORIES)
            .max_tables_per_component(MAX_TABLES)
            .max_core_instances_per_component(MAX_CORE_INSTANCES)
            // Reset only the pages an instance dirtied (Linux 6.7+, through
            // the PAGEMAP_SCAN ioctl) instead of madvise-ing whole heaps:
            // measured 51.7 -> 16.9 us of CPU per request in `request`
            // isolation (benches/RESULTS.md). Older kernels fall back to
            // memset of the first bytes below and madvise for the rest.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(64 << 10)
            .table_keep_resident(16 << 10);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// A thread that advances the engines' epochs every [`EPOCH_TICK`] (the
/// p3 engine's once it exists); stopped and joined on drop.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine, p3: Arc<OnceLock<Engine>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("percore-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                    if let Some(p3) = p3.get() {
                        p3.increment_epoch();
                    }
                }
            })
            .expect("spawn the epoch ticker thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasmtime_version_is_the_pinned_one() {
        let manifest = include_str!("../../Cargo.toml");
        assert!(
            manifest.contains(&format!("wasmtime = {{ version = \"{WASMTIME_VERSION}\"")),
            "WASMTIME_VERSION ({WASMTIME_VERSION}) is not the version the workspace pins"
        );
    }

    #[test]
    fn the_world_is_told_by_its_export() {
        let world = |exports: &[&str]| {
            World::of_exports(&exports.iter().map(|e| e.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(world(&["handle"]), Some(World::Percore));
        assert_eq!(
            world(&["wasi:http/incoming-handler@0.2.6"]),
            Some(World::WasiHttp)
        );
        assert_eq!(world(&[P3_HANDLER]), Some(World::WasiHttpP3));
        // A release candidate is told apart too, so that linking it can
        // say which version percore takes.
        assert_eq!(
            world(&["wasi:http/handler@0.3.0-rc-2026-02-09"]),
            Some(World::WasiHttpP3)
        );
        assert_eq!(world(&["wasi:cli/run@0.2.6"]), None);
        assert!(World::WasiHttpP3.needs_concurrency());
        assert!(!World::WasiHttp.needs_concurrency());
        assert!(!World::Percore.needs_concurrency());
    }

    #[test]
    fn the_top_level_is_read_without_compiling() {
        // Components with exports are the integration tests' (the test
        // guests); here the parser's edges: an empty component, and one
        // cut off inside a section.
        let empty = b"\0asm\x0d\0\x01\0";
        assert_eq!(TopLevel::read(empty), Ok(TopLevel::default()));
        assert!(TopLevel::read(b"\0asm\x0d\0\x01\0\x0b\x05").is_err());
        assert!(matches!(
            detect_world("empty.wasm", empty),
            Err(CompileError::UnknownWorld { .. })
        ));
    }

    /// A minimal component exporting an instance `export` with one
    /// function `handle: func()` (no imports): enough to be told a world
    /// by its export name and to fail linking as that world.
    fn component_exporting(export: &str) -> Vec<u8> {
        use wasm_encoder as enc;
        let mut module = enc::Module::new();
        let mut types = enc::TypeSection::new();
        types.ty().function([], []);
        let mut funcs = enc::FunctionSection::new();
        funcs.function(0);
        let mut exports = enc::ExportSection::new();
        exports.export("f", enc::ExportKind::Func, 0);
        let mut code = enc::CodeSection::new();
        let mut body = enc::Function::new([]);
        body.instructions().end();
        code.function(&body);
        module
            .section(&types)
            .section(&funcs)
            .section(&exports)
            .section(&code);

        let mut component = enc::Component::new();
        component.section(&enc::ModuleSection(&module));
        let mut instances = enc::InstanceSection::new();
        instances.instantiate(0, Vec::<(&str, enc::ModuleArg)>::new());
        component.section(&instances);
        let mut aliases = enc::ComponentAliasSection::new();
        aliases.alias(enc::Alias::CoreInstanceExport {
            instance: 0,
            kind: enc::ExportKind::Func,
            name: "f",
        });
        component.section(&aliases);
        let mut types = enc::ComponentTypeSection::new();
        types
            .function()
            .params(Vec::<(&str, enc::ComponentValType)>::new())
            .result(None);
        component.section(&types);
        let mut canon = enc::CanonicalFunctionSection::new();
        canon.lift(0, 0, []);
        component.section(&canon);
        let mut instance = enc::ComponentInstanceSection::new();
        instance.export_items([("handle", enc::ComponentExportKind::Func, 0)]);
        component.section(&instance);
        let mut exports = enc::ComponentExportSection::new();
        exports.export(export, enc::ComponentExportKind::Instance, 0, None);
        component.section(&exports);
        component.finish()
    }

    #[test]
    fn a_componentize_js_component_is_known_by_its_producers() {
        use wasm_encoder::{ComponentSection as _, ProducersField, ProducersSection};
        let plain = component_exporting("wasi:http/incoming-handler@0.2.10");
        let made_by = |tool: &str| {
            let mut bytes = plain.clone();
            let mut field = ProducersField::new();
            field
                .value("wit-component", "0.259.0")
                .value(tool, "0.23.0");
            let mut producers = ProducersSection::new();
            producers.field("processed-by", &field);
            producers.append_to_component(&mut bytes);
            TopLevel::read(&bytes).unwrap()
        };
        assert_eq!(TopLevel::read(&plain).unwrap().processed_by, []);
        assert_eq!(
            TopLevel::read(&plain).unwrap().one_request_per_instance(),
            None
        );
        // As componentize-js 0.23.0 writes it (after wit-component).
        let js = made_by("ComponentizeJS");
        assert_eq!(
            js.processed_by,
            [
                ("wit-component".to_owned(), "0.259.0".to_owned()),
                ("ComponentizeJS".to_owned(), "0.23.0".to_owned())
            ]
        );
        assert_eq!(js.exports, ["wasi:http/incoming-handler@0.2.10"]);
        assert_eq!(
            js.one_request_per_instance().as_deref(),
            Some("componentize-js 0.23.0")
        );
        assert_eq!(made_by("componentize-py").one_request_per_instance(), None);
    }

    #[test]
    fn a_p3_release_candidate_is_refused_with_the_version_percore_links() {
        let engine = HostEngine::new(EngineOptions {
            max_instances: 1,
            ..EngineOptions::default()
        })
        .unwrap();
        let rc = "wasi:http/handler@0.3.0-rc-2026-02-09";
        let bytes = component_exporting(rc);
        assert_eq!(detect_world("rc.wasm", &bytes).unwrap(), World::WasiHttpP3);
        let Err(refusal) = engine.compile("rc.wasm", &bytes) else {
            panic!("a component exporting {rc} was accepted");
        };
        let text = refusal.to_string();
        assert!(
            matches!(
                refusal,
                CompileError::WrongWorld {
                    world: World::WasiHttpP3,
                    ..
                }
            ),
            "{text}"
        );
        assert!(text.contains(&format!("it exports {rc}")), "{text}");
        assert!(
            text.contains(&format!("percore links {P3_HANDLER} exactly")),
            "{text}"
        );
        // The same component under 0.2's export name is told apart by it.
        let p2 = component_exporting("wasi:http/incoming-handler@0.2.6");
        assert_eq!(detect_world("p2.wasm", &p2).unwrap(), World::WasiHttp);
    }

    #[test]
    fn only_the_p3_engine_has_concurrency_support() {
        let engine = |concurrency| Engine::new(&codegen_config(true, concurrency)).unwrap();
        assert!(!engine(false).get_concurrency_support());
        assert!(engine(true).get_concurrency_support());
        // Unset, wasmtime's `component-model-async` feature (compiled in
        // for p3) would turn it on: why `codegen_config` always sets it.
        assert!(
            Engine::new(&Config::new())
                .unwrap()
                .get_concurrency_support()
        );
    }

    #[test]
    fn bytes_that_are_not_wasm_are_named() {
        let says = |bytes: &[u8]| sniff_not_wasm(bytes).unwrap_or("wasm");
        assert!(says(b"\x7fELF\x02\x01\x01\0").contains("ELF"));
        assert!(says(b"MZ\x90\0").contains("Windows"));
        assert!(says(b"\x1f\x8b\x08\0").contains("gzip"));
        assert!(says(b"PK\x03\x04").contains("zip"));
        assert!(says(b"(component (core module))\n").contains("text"));
        assert!(says(b"").contains("empty"));
        assert!(says(&[0xff, 0x00, 0x13]).contains("magic number"));
        assert_eq!(says(b"\0asm\x0d\0\x01\0"), "wasm");
        assert_eq!(says(b"\0asm"), "wasm");
    }

    #[test]
    fn an_elf_file_is_refused_with_what_it_is() {
        let err = check_kind("lib.so", b"\x7fELF\x02\x01\x01\0\0\0\0\0").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("lib.so is not a valid WebAssembly component: it is an ELF file"));
        assert!(text.contains("wasm32-wasip2"), "{text}");
        assert!(!text.contains("0x61"), "{text}");
        assert!(matches!(
            check_kind("m.wasm", b"\0asm\x01\0\0\0"),
            Err(CompileError::CoreModule { .. })
        ));
    }
}
