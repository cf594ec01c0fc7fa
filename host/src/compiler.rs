//! Compiling untrusted components (admin uploads) within a budget: in a
//! child process (`percore __compile`, the same binary) whose data segment
//! is capped at `compile_memory_bytes` and which is killed after
//! `compile_timeout_ms`. A component crafted to make Cranelift take
//! gigabytes or minutes (a "compile bomb": deeply nested blocks, huge
//! functions) is refused with a clear error, and whatever memory its
//! compile took is the child's, returned to the system when it exits. The
//! host only loads the finished machine code.
//!
//! The child builds an engine with the host's code-generation settings
//! (on-demand allocation: it instantiates nothing), compiles through the
//! host's compile cache when there is one, and writes one byte (1 when the
//! cache answered) and the serialised component to stdout. Errors go to
//! stderr, with exit code [`EXIT_INVALID`] for a component wasmtime
//! refuses.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The hidden subcommand of `percore` that compiles one component.
pub const SUBCOMMAND: &str = "__compile";

/// The child's exit code for a component wasmtime refuses to compile.
pub const EXIT_INVALID: u8 = 2;

/// Where and within what budget untrusted components compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildCompiler {
    /// The `percore` binary (it has the [`SUBCOMMAND`]).
    pub program: PathBuf,
    /// Most memory (data segment: heap and private mappings) the child may
    /// use, in bytes.
    pub memory_bytes: u64,
    /// Longest the child may take.
    pub timeout: Duration,
}

/// What the child needs to build an engine that generates the same code as
/// the host's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildSettings {
    /// [`crate::engine::EngineOptions::deadlines`].
    pub deadlines: bool,
    /// Whether the component is for the engine with concurrency support
    /// (a wasi:http 0.3 component; see [`crate::engine::codegen_config`]).
    #[serde(default)]
    pub concurrency: bool,
    /// The host's compile cache, when it has one.
    pub cache_dir: Option<PathBuf>,
}

/// Why the child did not produce a component.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// wasmtime refused the component (its message).
    #[error("{0}")]
    Invalid(String),
    /// The compile needed more memory than the budget.
    #[error(
        "compiling it needs more than this host's compile budget of {limit} bytes of memory (compile_memory_bytes); split or simplify its largest functions"
    )]
    Memory {
        /// The budget.
        limit: u64,
    },
    /// The compile took longer than the budget.
    #[error(
        "compiling it took longer than this host's compile budget of {} ms (compile_timeout_ms); split or simplify its largest functions",
        limit.as_millis()
    )]
    Timeout {
        /// The budget.
        limit: Duration,
    },
    /// The child could not be run or failed in another way.
    #[error("the compiler process {} failed: {detail}", program.display())]
    Failed {
        /// The program.
        program: PathBuf,
        /// What happened.
        detail: String,
    },
}

/// A component compiled by the child: its serialised form and whether the
/// cache answered.
pub struct ChildOutput {
    /// `Component::serialize` bytes, for `Component::deserialize` with an
    /// engine of the same settings.
    pub serialized: Vec<u8>,
    /// Whether the child found it in the compile cache.
    pub cache_hit: bool,
}

impl ChildCompiler {
    /// Compiles `bytes` in a child process within the budget.
    pub fn compile(
        &self,
        settings: &ChildSettings,
        bytes: &[u8],
    ) -> Result<ChildOutput, ChildError> {
        let failed = |detail: String| ChildError::Failed {
            program: self.program.clone(),
            detail,
        };
        let settings_json = serde_json::to_string(settings).expect("settings serialise");
        let mut child = Command::new(&self.program)
            .arg(SUBCOMMAND)
            .arg(settings_json)
            .env("PERCORE_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot start it: {e}")))?;
        let pid = rustix::process::Pid::from_child(&child);
        // The child reads its whole input before it does anything else, so
        // the limit is in place before it compiles.
        let limit = |bytes| rustix::process::Rlimit {
            current: Some(bytes),
            maximum: Some(bytes),
        };
        // Its data segment (heap and private mappings) within the budget,
        // and no core dump when it runs out.
        for (resource, bytes) in [
            (rustix::process::Resource::Data, self.memory_bytes),
            (rustix::process::Resource::Core, 0),
        ] {
            if let Err(e) = rustix::process::prlimit(Some(pid), resource, limit(bytes)) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!("cannot limit its resources: {e}")));
            }
        }
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || {
                let _ = stdin.write_all(bytes);
            });
            let out = scope.spawn(move || {
                let mut out = Vec::new();
                let _ = stdout.read_to_end(&mut out);
                out
            });
            let err = scope.spawn(move || {
                let mut err = Vec::new();
                let _ = (&mut stderr).take(64 << 10).read_to_end(&mut err);
                err
            });
            let deadline = Instant::now() + self.timeout;
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Ok(status),
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break Err(ChildError::Timeout {
                            limit: self.timeout,
                        });
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) => break Err(failed(format!("cannot wait for it: {e}"))),
                }
            };
            let _ = writer.join();
            let out = out.join().unwrap_or_default();
            let err = err.join().unwrap_or_default();
            let err = String::from_utf8_lossy(&err).trim().to_owned();
            let status = status?;
            if status.success() {
                return match out.split_first() {
                    Some((&flag, serialized)) => Ok(ChildOutput {
                        serialized: serialized.to_vec(),
                        cache_hit: flag == 1,
                    }),
                    None => Err(failed("it wrote nothing".into())),
                };
            }
            if status.code() == Some(i32::from(EXIT_INVALID)) {
                return Err(ChildError::Invalid(err));
            }
            // Out of memory: Rust's allocator aborts ("memory allocation of
            // N bytes failed"), or the kernel kills the process.
            if err.contains("memory allocation")
                || err.contains("out of memory")
                || status.code().is_none()
            {
                return Err(ChildError::Memory {
                    limit: self.memory_bytes,
                });
            }
            Err(failed(format!("{status}: {err}")))
        })
    }
}

/// The child's side: reads a component on stdin, compiles it with the
/// settings in `settings_json`, and writes the result to stdout (see the
/// module's documentation).
pub fn child_main(settings_json: &str) -> ExitCode {
    let fail = |message: String, code: u8| {
        let _ = writeln!(std::io::stderr(), "{message}");
        ExitCode::from(code)
    };
    let settings: ChildSettings = match serde_json::from_str(settings_json) {
        Ok(settings) => settings,
        Err(e) => return fail(format!("bad compiler settings: {e}"), 1),
    };
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        return fail(format!("cannot read the component: {e}"), 1);
    }
    let cache = match settings.cache_dir.as_deref().map(open_cache).transpose() {
        Ok(cache) => cache,
        Err(e) => return fail(e, 1),
    };
    let mut config = crate::engine::codegen_config(settings.deadlines, settings.concurrency);
    config.cache(cache.clone());
    let engine = match wasmtime::Engine::new(&config) {
        Ok(engine) => engine,
        Err(e) => return fail(format!("cannot build the engine: {e:#}"), 1),
    };
    let component = match wasmtime::component::Component::new(&engine, &bytes) {
        Ok(component) => component,
        Err(e) => return fail(format!("{e:#}"), EXIT_INVALID),
    };
    let serialized = match component.serialize() {
        Ok(serialized) => serialized,
        Err(e) => return fail(format!("cannot serialise the component: {e:#}"), 1),
    };
    let hit = cache.as_ref().is_some_and(|cache| cache.cache_hits() > 0);
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(&[u8::from(hit)])
        .and_then(|()| stdout.write_all(&serialized))
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("cannot write the result: {e}"), 1),
    }
}

/// wasmtime's compile cache in `dir`.
pub fn open_cache(dir: &Path) -> Result<wasmtime::Cache, String> {
    let mut config = wasmtime::CacheConfig::new();
    config.with_directory(dir);
    wasmtime::Cache::new(config).map_err(|e| {
        format!(
            "cannot use {} as the compilation cache: {e:#}",
            dir.display()
        )
    })
}
