//! Builds the guests under `guests/` (a Cargo workspace of its own) for
//! `wasm32-wasip2`, from a build script: the `percore` crate builds the
//! guests it embeds, the `percore-test-guests` crate every guest. The
//! `wasm32-wasip2` target is added with `rustup` when it is missing, so
//! plain `cargo` commands work on a machine that has only rustup.
//!
//! The guests are built by a nested `cargo build` into
//! `<target>/wasm-guests`, shared by every profile (and by clippy) so that
//! they are compiled once.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target the guests are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The guest workspace: the `guests/` directory of the repository that
/// holds the calling package's directory `manifest_dir` (`host/` or
/// `tests/guests/`), found by walking up to the directory with `wit/`.
pub fn guests_dir(manifest_dir: &Path) -> PathBuf {
    manifest_dir
        .ancestors()
        .find(|dir| dir.join("wit").is_dir() && dir.join("guests/Cargo.toml").is_file())
        .expect("the repository root (with wit/ and guests/) is above the package")
        .join("guests")
}

/// Where the guests are built: `<target>/wasm-guests`, from the build
/// script's `OUT_DIR` (`<target>/[<triple>/]<profile>/build/<pkg>-<hash>/out`).
pub fn target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .expect("OUT_DIR is deep inside the target directory")
        .join("wasm-guests")
}

/// The guest crates: every directory under `guests` whose `Cargo.toml`
/// builds a `cdylib` (the shared `sdk` and `httpkit` crates do not), by
/// crate name, sorted.
pub fn members(guests: &Path) -> Vec<String> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir(guests).expect("read guests/") {
        let dir = entry.expect("read guests/ entry").path();
        let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        if text.contains("cdylib") {
            members.push(dir.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    members.sort();
    members
}

/// Builds `packages` of the guest workspace `guests` (all of them when
/// empty) into `target_dir`, after making sure the target is installed, and
/// returns the directory that holds the `.wasm` files. Asks cargo to run
/// the build script again when the guests or the WIT change.
pub fn build(guests: &Path, target_dir: &Path, packages: &[&str]) -> PathBuf {
    println!("cargo:rerun-if-changed={}", guests.display());
    if let Some(root) = guests.parent() {
        println!("cargo:rerun-if-changed={}", root.join("wit").display());
    }
    ensure_target();
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(guests)
        .args(["build", "--release", "--target", TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    if packages.is_empty() {
        cmd.arg("--workspace");
    }
    for package in packages {
        cmd.args(["-p", package]);
    }
    // Nothing of the outer build may leak into the guest build: not its
    // flags, not clippy's wrapper, not its target directory.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        let outer = (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_MAKEFLAGS")
            || key.starts_with("RUSTC")
            || key.starts_with("RUSTFLAGS")
            || key.starts_with("RUSTDOC");
        if outer {
            cmd.env_remove(key.as_ref());
        }
    }
    let status = cmd.status().expect("run cargo to build the guests");
    assert!(
        status.success(),
        "building the guests under {} failed (see the errors above)",
        guests.display()
    );
    target_dir.join(TARGET).join("release")
}

/// WASI's WIT packages (`cli.wit`, `http.wit`, ...): the `wit/deps`
/// directory of the `wasmtime-wasi-http` crate that the package in
/// `manifest_dir` builds with, found with `cargo metadata` (so the versions
/// are the ones percore links), with its files sorted by name. The same
/// files `guests/wit-deps.sh` copies; `percore new` writes them into the
/// Python and JavaScript handler crates it creates.
pub fn wasi_wit_files(manifest_dir: &Path) -> Vec<PathBuf> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(manifest_dir)
        .args(["metadata", "--format-version", "1", "--locked"]);
    if let Ok(target) = env::var("TARGET") {
        cmd.args(["--filter-platform", &target]);
    }
    let output = cmd.output().expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed in {}: {}",
        manifest_dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata = String::from_utf8_lossy(&output.stdout);
    // Every package's "manifest_path"; the JSON escapes nothing in a path
    // that holds no quote or backslash, which the wanted one does not.
    let deps = metadata
        .split("\"manifest_path\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|manifest| {
            Path::new(manifest)
                .parent()
                .unwrap_or(Path::new(""))
                .to_path_buf()
        })
        .find(|dir| {
            dir.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("wasmtime-wasi-http") || n == "wasi-http"
            }) && dir.join("wit/deps/http.wit").is_file()
        })
        .expect("the sources of wasmtime-wasi-http (with wit/deps) are in cargo metadata")
        .join("wit/deps");
    println!("cargo:rerun-if-changed={}", deps.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&deps)
        .expect("read wasmtime-wasi-http's wit/deps")
        .map(|entry| entry.expect("read wit/deps entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "wit"))
        .collect();
    files.sort();
    files
}

/// The `.wasm` file of guest `name` in `release` (as [`build`] returned),
/// which must exist.
pub fn wasm_file(release: &Path, name: &str) -> PathBuf {
    let file = release.join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        file.exists(),
        "guest {name} was built but {} is missing",
        file.display()
    );
    file
}

/// The name of a Rust constant for guest `name` (`test-loop` → `TEST_LOOP`).
pub fn const_name(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

/// Installs the wasm target through rustup when the toolchain lacks it.
fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.as_deref().is_some_and(Path::exists) {
        return;
    }
    println!(
        "cargo:warning=installing the {TARGET} target with rustup (needed to build the guests)"
    );
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", TARGET]);
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        cmd.args(["--toolchain", &toolchain]);
    }
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("the {TARGET} target is missing and `rustup` could not be run ({e}); install it with `rustup target add {TARGET}`")
    });
    assert!(
        status.success(),
        "`rustup target add {TARGET}` failed; run it by hand and build again"
    );
}
