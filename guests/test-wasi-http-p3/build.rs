//! Generates this guest's bindings against the wasi:http 0.3 WIT of the
//! wasmtime-wasi-http crate that percore links: found with `cargo
//! metadata` of the repository's workspace (so the version is the one in
//! its Cargo.lock, as `guests/wit-deps.sh` finds it for the Python and
//! JavaScript guests), used where it lies in cargo's sources. No copy of
//! WASI's WIT is kept in the repository. Writes `$OUT_DIR/bindings.rs`, a
//! `wit_bindgen::generate!` of `wasi:http/service` with that path.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("the guest lies in guests/ of the repository");
    let wit = wasi_http_crate(root).join("src/p3/wit");
    assert!(
        wit.join("deps/http.wit").is_file(),
        "{} has no wasi:http 0.3 WIT (is the wasmtime-wasi-http crate of {} built with `p3`?)",
        wit.display(),
        root.join("Cargo.lock").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let bindings = format!(
        "wit_bindgen::generate!({{ path: {:?}, world: \"wasi:http/service\", generate_all }});\n",
        wit.display().to_string()
    );
    std::fs::write(out.join("bindings.rs"), bindings).expect("write bindings.rs");
}

/// The source directory of the wasmtime-wasi-http crate in the Cargo.lock
/// of the workspace at `root`.
fn wasi_http_crate(root: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--locked"])
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata in {} failed (run `cargo fetch` there): {}",
        root.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata writes JSON");
    let manifest = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|package| package["name"] == "wasmtime-wasi-http")
        .and_then(|package| package["manifest_path"].as_str())
        .unwrap_or_else(|| {
            panic!(
                "wasmtime-wasi-http is not a dependency of {}",
                root.display()
            )
        });
    Path::new(manifest)
        .parent()
        .expect("a manifest lies in its crate")
        .to_owned()
}
