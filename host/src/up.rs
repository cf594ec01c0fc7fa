//! `percore up`: the local dev loop. [`build`] runs `cargo build --release
//! --target wasm32-wasip2` in a handler crate and finds the component it
//! built; [`Watcher`] notices when the crate's sources change; [`redeploy`]
//! rebuilds and hot-swaps the new component through the registry's deploy
//! (the path an admin API deploy takes), so the host stays up and a broken
//! build or an invalid component leaves the old version serving.
//!
//! Changes are found by polling modification times and sizes every
//! [`POLL`] rather than with OS notifications: a crate has a handful of
//! files, so a poll costs microseconds, needs no new dependency, and sees
//! every way an editor saves (in place, or a new file renamed over the old)
//! on every filesystem, network and container mounts included, where
//! inotify misses changes.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::config::RouteOptions;
use crate::registry::Registry;

/// The target handlers are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// How often [`Watcher`] looks at the sources.
pub const POLL: Duration = Duration::from_millis(500);

/// Why a crate could not be built into a component.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The directory is not a crate.
    #[error(
        "{} has no Cargo.toml: run `percore up` in a handler crate's directory (make one with `percore new NAME`)",
        .0.display()
    )]
    NotACrate(PathBuf),
    /// cargo could not be started.
    #[error("cannot run cargo ({0}): install Rust (https://rustup.rs) or put cargo on PATH")]
    NoCargo(std::io::Error),
    /// The standard library for the target is not installed.
    #[error(
        "the {TARGET} target is not installed for the toolchain of {}: run `rustup target add {TARGET}`",
        .0.display()
    )]
    TargetMissing(PathBuf),
    /// cargo failed; its output was printed as it ran (and is kept here
    /// for a caller that wants it again).
    #[error(
        "`cargo build --release --target {TARGET}` failed in {} ({status}); cargo's errors are above",
        dir.display()
    )]
    Failed {
        /// The crate.
        dir: PathBuf,
        /// cargo's exit status.
        status: std::process::ExitStatus,
        /// What cargo printed on stderr (its errors).
        output: String,
    },
    /// The build made no component (or more than one).
    #[error(
        "cargo built {found} in {}, not one component: a handler crate has `crate-type = [\"cdylib\"]` under [lib] (as `percore new` writes it)",
        dir.display()
    )]
    NoComponent {
        /// The crate.
        dir: PathBuf,
        /// What it built instead.
        found: String,
    },
}

/// A component built by [`build`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// The crate's name.
    pub name: String,
    /// The component's file.
    pub wasm: PathBuf,
}

/// Builds the crate in `dir` for [`TARGET`] in release mode and returns
/// the component it made. cargo's output is passed on to stderr as it
/// comes (and, on failure, is in the error).
pub fn build(dir: &Path) -> Result<Built, BuildError> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(BuildError::NotACrate(dir.to_path_buf()));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .current_dir(dir)
        .args(["build", "--release", "--target", TARGET])
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(BuildError::NoCargo)?;
    // stderr: cargo's progress and rendered errors, passed on line by line
    // and kept for the error; on a thread so that neither pipe fills.
    let stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut kept = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            kept.push_str(&line);
            kept.push('\n');
        }
        kept
    });
    // stdout: one JSON message per line; the artifacts of this crate.
    let stdout = child.stdout.take().expect("piped");
    let mut components = Vec::new();
    let mut others = Vec::new();
    let mut name = String::new();
    let manifest = std::path::absolute(&manifest).unwrap_or(manifest);
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact"
            || message["manifest_path"].as_str().map(Path::new) != Some(manifest.as_path())
        {
            continue;
        }
        name = message["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for file in message["filenames"].as_array().into_iter().flatten() {
            let Some(file) = file.as_str() else { continue };
            if file.ends_with(".wasm") {
                components.push(PathBuf::from(file));
            } else {
                others.push(file.to_owned());
            }
        }
    }
    let status = child.wait().map_err(BuildError::NoCargo)?;
    let output = errors.join().unwrap_or_default();
    if !status.success() {
        if target_missing(&output) {
            return Err(BuildError::TargetMissing(dir.to_path_buf()));
        }
        return Err(BuildError::Failed {
            dir: dir.to_path_buf(),
            status,
            output,
        });
    }
    match <[PathBuf; 1]>::try_from(components) {
        Ok([wasm]) => Ok(Built { name, wasm }),
        Err(components) => Err(BuildError::NoComponent {
            dir: dir.to_path_buf(),
            found: if components.is_empty() && others.is_empty() {
                "nothing".to_owned()
            } else {
                components
                    .iter()
                    .map(|p| p.display().to_string())
                    .chain(others)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        }),
    }
}

/// Whether cargo's `output` says the target's standard library is not
/// installed.
fn target_missing(output: &str) -> bool {
    output.contains("target may not be installed")
        || output.contains("can't find crate for `core`")
        || output.contains("can't find crate for `std`")
}

/// Watches a crate's sources: `src/` and `wit/` (every file under them),
/// `Cargo.toml`, `Cargo.lock` and `build.rs`.
pub struct Watcher {
    dir: PathBuf,
    seen: Vec<(PathBuf, Option<SystemTime>, u64)>,
}

impl Watcher {
    /// Starts watching `dir`: what is there now is the baseline.
    pub fn new(dir: &Path) -> Watcher {
        Watcher {
            dir: dir.to_path_buf(),
            seen: fingerprint(dir),
        }
    }

    /// Whether a source changed (a file added, removed, written) since the
    /// last call (or [`Watcher::new`]).
    pub fn changed(&mut self) -> bool {
        let now = fingerprint(&self.dir);
        if now == self.seen {
            return false;
        }
        self.seen = now;
        true
    }
}

/// The sources of the crate in `dir`, each with its modification time and
/// size, in a stable order.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut files = Vec::new();
    for file in ["Cargo.toml", "Cargo.lock", "build.rs"] {
        files.push(dir.join(file));
    }
    let mut dirs = vec![dir.join("src"), dir.join("wit")];
    while let Some(next) = dirs.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => dirs.push(entry.path()),
                Ok(_) => files.push(entry.path()),
                Err(_) => {}
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let meta = std::fs::metadata(&path).ok()?;
            Some((path, meta.modified().ok(), meta.len()))
        })
        .collect()
}

/// Rebuilds the crate in `dir` and deploys its component to `prefix`
/// through `registry`. Any failure (the build, reading the component, the
/// deploy: an invalid component) is logged and leaves the serving version
/// as it was.
pub fn redeploy(dir: &Path, registry: &Registry, prefix: &str, options: &RouteOptions) {
    tracing::info!(crate_dir = %dir.display(), "a source changed: rebuilding");
    let built = match build(dir) {
        Ok(built) => built,
        Err(e) => {
            tracing::error!("{e}; the previous version keeps serving {prefix}");
            return;
        }
    };
    let bytes = match crate::registry::read_component_file(&built.wasm) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(
                "cannot read {}: {e}; the previous version keeps serving {prefix}",
                built.wasm.display()
            );
            return;
        }
    };
    match registry.deploy(prefix, &bytes, options.clone()) {
        Ok(info) if info.unchanged => {
            tracing::info!(route = prefix, "rebuilt: the component is unchanged");
        }
        Ok(info) => tracing::info!(
            route = prefix,
            hash = %info.version.hash,
            size = info.version.size,
            "rebuilt and deployed: the new version serves"
        ),
        Err(e) => tracing::error!("{e}; the previous version keeps serving {prefix}"),
    }
}

/// Polls `dir` every [`POLL`] and [`redeploy`]s on every change, until
/// `stop` is set. `watcher` holds the baseline (taken before the first
/// build, so that an edit made during it is not missed).
pub fn watch(
    mut watcher: Watcher,
    registry: &Registry,
    prefix: &str,
    options: &RouteOptions,
    stop: &std::sync::atomic::AtomicBool,
) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(POLL);
        if watcher.changed() {
            redeploy(&watcher.dir, registry, prefix, options);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watcher_sees_edits_additions_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        std::fs::create_dir_all(dir.join("src/bin")).unwrap();
        std::fs::write(dir.join("Cargo.toml"), "[package]\n").unwrap();
        std::fs::write(dir.join("src/lib.rs"), "// one\n").unwrap();
        let mut watcher = Watcher::new(dir);
        assert!(!watcher.changed());
        std::fs::write(dir.join("src/lib.rs"), "// two, longer\n").unwrap();
        assert!(watcher.changed());
        assert!(!watcher.changed());
        std::fs::write(dir.join("src/bin/x.rs"), "").unwrap();
        assert!(watcher.changed());
        std::fs::remove_file(dir.join("src/bin/x.rs")).unwrap();
        assert!(watcher.changed());
        // Files outside the sources do not count.
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        assert!(!watcher.changed());
    }

    #[test]
    fn not_a_crate_and_a_missing_target_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = build(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("has no Cargo.toml") && err.contains("percore new"),
            "{err}"
        );
        assert!(target_missing(
            "error[E0463]: can't find crate for `core`\n  = note: the `wasm32-wasip2` target may not be installed"
        ));
        assert!(!target_missing("error[E0308]: mismatched types"));
        let err = BuildError::TargetMissing(dir.path().into()).to_string();
        assert!(err.contains("rustup target add wasm32-wasip2"), "{err}");
    }
}
