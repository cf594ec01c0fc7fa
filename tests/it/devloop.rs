//! The local dev loop, through the `percore` binary: `percore check` on a
//! percore guest, a `wasi:http` guest and files that are not deployable
//! (each with what to do), and `percore up` building a crate made by
//! `percore new`, serving it, and with `--watch` hot-swapping an edit
//! while a broken edit leaves the old version serving.
//!
//! The crates build offline from the cargo cache, into one target
//! directory shared with `deploy::a_new_crate_builds_and_deploys_as_is`
//! (wit-bindgen compiles once).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::deploy::{percore, temp_dir};
use crate::guests;
use crate::support::{Client, Spawned, spawn_logged};

#[test]
fn check_reports_the_world_the_imports_and_what_to_do() {
    let (ok, out) = percore(&["check", guests::TEST_VERSION]);
    assert!(
        ok && out.contains(": deployable")
            && out.contains("world:    percore:host/handler")
            && out.contains("percore:host/types@")
            && out.contains("deploy it: percore deploy /PREFIX"),
        "{out}"
    );
    let (ok, out) = percore(&["check", guests::WASI_HELLO]);
    assert!(
        ok && out.contains("world:    wasi:http/proxy@0.2") && out.contains("wasi:http/types@"),
        "{out}"
    );
    let (ok, out) = percore(&["check", "--json", guests::WASI_HELLO]);
    assert!(ok, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["deployable"], true);
    assert_eq!(report["world"], "wasi:http/proxy@0.2");

    // An import the host cannot satisfy is named.
    let (ok, out) = percore(&["check", guests::TEST_BADIMPORT]);
    assert!(
        !ok && out.contains("NOT deployable")
            && out.contains("test:bad/secrets   <- the host cannot satisfy it")
            && out.contains("remove the code or the dependency"),
        "{out}"
    );
    // A component of another world.
    let (ok, out) = percore(&["check", guests::TEST_OTHERWORLD]);
    assert!(
        !ok && out.contains("exports neither") && out.contains("percore new NAME"),
        "{out}"
    );
    // A native binary (the percore binary itself) and a core module.
    let (ok, out) = percore(&["check", env!("CARGO_BIN_EXE_percore-under-test")]);
    assert!(
        !ok && out.contains("an ELF file") && out.contains("--target wasm32-wasip2"),
        "{out}"
    );
    let dir = temp_dir("check");
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let (ok, out) = percore(&["check", module.to_str().unwrap()]);
    assert!(
        !ok && out.contains("core WebAssembly module, not a component"),
        "{out}"
    );
    // A path that is not there lists the components beside it.
    let (ok, out) = percore(&["check", dir.path().join("modul.wasm").to_str().unwrap()]);
    assert!(!ok && out.contains("module.wasm"), "{out}");
}

/// The target directory the scaffold tests share.
fn scaffold_target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target")
}

/// `percore ARGS` run in `dir`, with cargo's variables of this test run
/// removed (the crate builds as a user's would), offline, into the shared
/// target directory.
fn percore_in(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_percore-under-test"));
    command.current_dir(dir).args(args);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" || key.starts_with("RUSTC") {
            command.env_remove(key.as_ref());
        }
    }
    command
        .env("CARGO_TARGET_DIR", scaffold_target())
        .env("CARGO_NET_OFFLINE", "true");
    command
}

/// Waits (at most `within`) for a log line of `up` containing `needle`.
fn wait_for_line(up: &Spawned, needle: &str, within: Duration) -> String {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match up.lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("percore up logged no line with {needle:?} within {within:?}"),
        }
    }
}

fn answer(addr: std::net::SocketAddr, path: &str) -> String {
    let response = Client::connect(addr).get(path);
    assert_eq!(response.status, 200, "{}", response.text());
    response.text()
}

#[test]
fn up_builds_serves_and_hot_swaps_edits() {
    let dir = temp_dir("up");
    let dir = dir.path();
    // Outside a crate: what to do.
    let output = percore_in(dir, &["up"]).output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && err.contains("has no Cargo.toml")
            && err.contains("percore new"),
        "{err}"
    );

    let (ok, out) = percore(&["new", "live", "--dir", dir.join("live").to_str().unwrap()]);
    assert!(ok, "{out}");
    let crate_dir = dir.join("live");
    let up = spawn_logged(
        percore_in(
            &crate_dir,
            &[
                "up",
                "--listen",
                "127.0.0.1:0",
                "--route",
                "/app",
                "--watch",
            ],
        ),
        // The first build compiles wit-bindgen when no other test has.
        Duration::from_secs(900),
    );
    let first = answer(up.addr, "/app/x");
    assert!(first.starts_with("Hello from live!"), "{first}");

    // An edit is rebuilt and served by the same process.
    let lib = crate_dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    assert!(
        source.contains("Hello from"),
        "the scaffold's greeting moved"
    );
    std::fs::write(&lib, source.replace("Hello from", "Edited greeting of")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        let now = answer(up.addr, "/app/x");
        if now.starts_with("Edited greeting of live!") {
            break;
        }
        assert_eq!(now, first, "neither the old nor the new answer");
        assert!(
            std::time::Instant::now() < deadline,
            "the edit was not served within 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for_line(&up, "the new version serves", Duration::from_secs(60));

    // A broken edit: the build fails, is logged, the old answer stays.
    std::fs::write(
        &lib,
        format!(
            "{}\nfn broken( {{\n",
            std::fs::read_to_string(&lib).unwrap()
        ),
    )
    .unwrap();
    let line = wait_for_line(
        &up,
        "the previous version keeps serving /app",
        Duration::from_secs(600),
    );
    assert!(
        line.contains("`cargo build --release --target wasm32-wasip2` failed")
            && line.contains("cargo's errors are above"),
        "{line}"
    );
    assert!(answer(up.addr, "/app/x").starts_with("Edited greeting of live!"));
    // One process served every version: it was never restarted.
    let mut up = up;
    assert!(
        matches!(up.child.0.try_wait(), Ok(None)),
        "percore up exited"
    );
}
