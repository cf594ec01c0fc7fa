//! The wasmtime side of the host, built once per process: the [`Engine`]
//! (pooling allocator with copy-on-write memory images, epoch interruption),
//! the [`Linker`] with WASI and the `wiki` host functions, the epoch ticker
//! thread, and [`HostEngine::compile`], which turns component bytes into a
//! ready-to-instantiate [`Handler`] (compile once, `instantiate_pre` once).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use percore_index::TitleIndex;

use crate::bindings::{self, HandlerPre};
use crate::state::HostState;

/// How often the epoch advances. A running handler checks its deadline (and
/// yields to the other connections of its core) once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

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
    /// The component is a core module, not a component.
    #[error(
        "{name} is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule {
        /// The component's name.
        name: String,
    },
    /// The component does not fit percore's handler world.
    #[error("{name} does not fit percore's handler world: {detail}")]
    WrongWorld {
        /// The component's name.
        name: String,
        /// Which import or export is wrong.
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

/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Whether handler calls run under deadlines (epoch interruption and a
    /// timer). Always on in production; the load harness switches it off
    /// with `PERCORE_BENCH_NO_DEADLINES=1` to measure what deadlines cost.
    pub deadlines: bool,
    /// Largest linear memory any instance may have, in bytes (the pooling
    /// allocator reserves slots of this size; routes may set lower caps).
    pub max_memory_bytes: u64,
    /// Most instances alive at once across all workers.
    pub max_instances: u32,
    /// The shared title index, if the host has one.
    pub index: Option<Arc<TitleIndex>>,
    /// Directory of wasmtime's cache of compiled components (machine code
    /// keyed by a hash of the component and the compiler settings), so that
    /// a restart serves without recompiling. Default: none (no cache).
    pub cache_dir: Option<std::path::PathBuf>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            deadlines: std::env::var_os("PERCORE_BENCH_NO_DEADLINES").is_none(),
            max_memory_bytes: 64 << 20,
            max_instances: 1000,
            index: None,
            cache_dir: None,
        }
    }
}

/// A compiled, linked component, ready to instantiate on any worker.
pub struct Handler {
    /// Name for logs (file path or built-in name).
    pub name: String,
    /// The component pre-linked against the host's imports.
    pub pre: HandlerPre<HostState>,
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
}

/// The engine, linker and epoch ticker, shared by every worker.
pub struct HostEngine {
    engine: Engine,
    linker: Linker<HostState>,
    options: EngineOptions,
    /// Whether the pooling allocator could be used.
    pooling: bool,
    ticker: Option<EpochTicker>,
    /// wasmtime's cache of compiled components, when enabled.
    cache: Option<wasmtime::Cache>,
}

/// What the compilation cache did since the engine started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
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
        let cache = match &options.cache_dir {
            Some(dir) => {
                let mut cache = wasmtime::CacheConfig::new();
                cache.with_directory(dir);
                Some(wasmtime::Cache::new(cache).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot use {} as the compilation cache: {e:#}",
                        dir.display()
                    )
                })?)
            }
            None => None,
        };
        let configure = |pooling| {
            let mut config = base_config(&options, pooling);
            config.cache(cache.clone());
            config
        };
        let (engine, pooling) = match Engine::new(&configure(true)) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::warn!(
                    "pooling instance allocator unavailable ({e:#}); falling back to on-demand allocation"
                );
                (Engine::new(&configure(false))?, false)
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::Handler::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        let ticker = Some(EpochTicker::start(engine.clone()));
        Ok(HostEngine {
            engine,
            linker,
            options,
            pooling,
            ticker,
            cache,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether instances come from the pooling allocator.
    pub fn is_pooling(&self) -> bool {
        self.pooling
    }

    /// The shared title index, if the host has one.
    pub fn index(&self) -> Option<&Arc<TitleIndex>> {
        self.options.index.as_ref()
    }

    /// What the compilation cache did so far; `None` when the engine has no
    /// cache (see [`EngineOptions::cache_dir`]).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|cache| CacheStats {
            hits: cache.cache_hits(),
            misses: cache.cache_misses(),
        })
    }

    /// The options the engine was built with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Compiles and links a component. This is slow (milliseconds to
    /// seconds) and runs once per component, never on the request path.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<Arc<Handler>, CompileError> {
        if is_core_module(bytes) {
            return Err(CompileError::CoreModule { name: name.into() });
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| CompileError::Invalid {
            name: name.into(),
            detail: format!("{e:#}"),
        })?;
        let imports_wiki = component
            .component_type()
            .imports(&self.engine)
            .any(|(import, _)| import.starts_with(WIKI_INTERFACE));
        if imports_wiki && self.options.index.is_none() {
            return Err(CompileError::NeedsIndex { name: name.into() });
        }
        let wrong_world = |e: wasmtime::Error| CompileError::WrongWorld {
            name: name.into(),
            detail: format!("{e:#}"),
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        let pre = HandlerPre::new(instance_pre).map_err(wrong_world)?;
        Ok(Arc::new(Handler {
            name: name.into(),
            pre,
            size: bytes.len(),
            hash: sha256_hex(bytes),
            imports_wiki,
            deadlines: self.options.deadlines,
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

/// Whether `bytes` start like a core module (version 1) rather than a
/// component.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

fn base_config(options: &EngineOptions, pooling: bool) -> Config {
    let mut config = Config::new();
    config
        .epoch_interruption(options.deadlines)
        .memory_init_cow(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed)
        .max_wasm_stack(1 << 20)
        .async_stack_size(2 << 20);
    if pooling {
        let instances = options.max_instances;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(instances)
            .total_core_instances(instances * 8)
            .total_memories(instances)
            .total_tables(instances * 8)
            .total_stacks(instances)
            .max_memory_size(options.max_memory_bytes as usize)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_core_instances_per_component(16)
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

/// A thread that advances the engine's epoch every [`EPOCH_TICK`]; stopped
/// and joined on drop.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("percore-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
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
