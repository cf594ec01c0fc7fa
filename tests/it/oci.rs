//! Handlers from an OCI registry, against a real one on loopback: Debian's
//! `docker-registry` (the CNCF Distribution registry), started per test on
//! a free port with its own storage, and killed when the test ends.
//! Interoperability runs both ways with the ORAS Python client (PyPI's
//! `oras`, driven by `tests/oras/oras.sh`): what `percore push` pushes,
//! oras pulls byte for byte; what oras pushes, percore serves.
//!
//! Without `docker-registry` or the ORAS client these tests skip with a
//! printed reason locally and fail when `CI` is set (`.ci/run` installs
//! both, so CI always runs them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use percore::admin::client::AdminClient;
use percore::config::{Config, RouteConfig, RouteOptions, Source};
use percore::oci::OciReference;
use percore::registry::RouteInfo;

use crate::deploy::{admin, admin_config, percore, serving, temp_dir, version};
use crate::support::{ChildGuard, TestHost, refused, spawn_binary_with_env};

const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// The ORAS wrapper script (installs the client on first use).
fn oras_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oras/oras.sh")
}

/// A `docker-registry` serving plain HTTP on a free loopback port, with
/// its storage in a temporary directory; killed on drop.
struct LoopbackRegistry {
    child: Option<ChildGuard>,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl LoopbackRegistry {
    /// Starts one, or says why these tests cannot run (`None` after
    /// printing the reason; a failure under `CI`). With `htpasswd` (a
    /// line of an htpasswd file), it asks for HTTP Basic credentials.
    fn start(test: &str, htpasswd: Option<&str>) -> Option<LoopbackRegistry> {
        if let Err(reason) = tools() {
            assert!(
                std::env::var_os("CI").is_none(),
                "the OCI registry tests cannot run in CI: {reason}"
            );
            eprintln!("SKIPPED {test}: {reason}");
            return None;
        }
        let dir = temp_dir("registry");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let config = dir.path().join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some(line) = htpasswd {
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{line}\n")).unwrap();
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: percore-test\n    path: {}\n",
                file.display()
            ));
        }
        std::fs::write(&config, yaml).unwrap();
        let child = Command::new(DOCKER_REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let registry = LoopbackRegistry {
            child: Some(ChildGuard(child)),
            addr,
            _dir: dir,
        };
        let started = Instant::now();
        while !registry.answers() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "docker-registry did not answer on {addr} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }

    /// Whether `GET /v2/` answers (200, or 401 when it asks for
    /// credentials).
    fn answers(&self) -> bool {
        use std::io::{Read as _, Write as _};
        let Ok(mut stream) = std::net::TcpStream::connect(self.addr) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let request = format!(
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let mut answer = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && (answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 401"))
    }

    /// `HOST:PORT`.
    fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Kills the registry (its storage stays until drop).
    fn stop(&mut self) {
        drop(self.child.take());
        assert!(!self.answers(), "the registry is down");
    }
}

/// Whether `docker-registry` and the ORAS client are here.
fn tools() -> Result<(), String> {
    if !Path::new(DOCKER_REGISTRY).exists() {
        return Err(format!(
            "{DOCKER_REGISTRY} is missing (apt-get install docker-registry)"
        ));
    }
    let install = Command::new("bash")
        .arg(oras_script())
        .arg("--install")
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    if !install.status.success() {
        return Err(format!(
            "the ORAS Python client could not be installed: {}",
            String::from_utf8_lossy(&install.stderr).trim()
        ));
    }
    Ok(())
}

/// Runs the ORAS client (`push REF FILE` or `pull REF DIR`); its stdout.
fn oras(args: &[&str]) -> String {
    let output = Command::new("bash")
        .arg(oras_script())
        .args(args)
        .output()
        .expect("run oras.sh");
    assert!(
        output.status.success(),
        "oras {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `percore push FILE REF [--insecure-registry HOST]`: success, stdout,
/// stderr.
fn percore_push(file: &Path, reference: &str, insecure: Option<&str>) -> (bool, String, String) {
    percore_push_with_env(file, reference, insecure, &[])
}

/// [`percore_push`] with `env` added to its environment (and no Docker
/// config file but the one `env` names).
fn percore_push_with_env(
    file: &Path,
    reference: &str,
    insecure: Option<&str>,
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_percore-under-test"));
    command
        .arg("push")
        .arg(file)
        .arg(reference)
        .env_remove("PERCORE_REGISTRY_USERNAME")
        .env_remove("PERCORE_REGISTRY_PASSWORD")
        .env("DOCKER_CONFIG", "/nonexistent")
        .envs(env.iter().copied());
    if let Some(host) = insecure {
        command.args(["--insecure-registry", host]);
    }
    let output = command.output().expect("run percore push");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A host with the admin API, a state directory under `dir`, and plain
/// HTTP allowed to `registry`.
fn host_config(dir: &Path, registry: &str) -> Config {
    Config {
        insecure_registries: vec![registry.parse().unwrap()],
        ..admin_config(dir)
    }
}

/// The routes as listed, for "nothing changed" checks.
fn routes(admin: &AdminClient) -> Vec<RouteInfo> {
    admin.routes().unwrap().routes
}

fn oci_route(prefix: &str, reference: &str) -> RouteConfig {
    RouteConfig {
        prefix: prefix.into(),
        source: Source::Oci(OciReference::parse(reference).unwrap()),
        options: RouteOptions::default(),
    }
}

#[test]
fn push_pull_serve_refuse_and_restart_without_the_registry() {
    let Some(mut registry) = LoopbackRegistry::start("the OCI registry test", None) else {
        return;
    };
    let reg = registry.host();
    let dir = temp_dir("oci");
    let dir = dir.path();

    // `percore push` pushes a component and prints its digest.
    let ours = dir.join("hello.wasm");
    std::fs::write(&ours, version("pushedbypercore1")).unwrap();
    let tagged = format!("{reg}/percore/hello:v1");
    let (ok, out, err) = percore_push(&ours, &tagged, Some(&reg));
    assert!(ok, "{out}{err}");
    let pushed = out.trim().to_owned();
    assert!(
        percore::oci::sha256_of_digest(&pushed).is_some(),
        "the digest is printed: {out:?}"
    );
    assert!(
        err.contains(&format!("oci://{reg}/percore/hello@{pushed}")),
        "{err}"
    );
    // Plain HTTP only when a flag says so.
    let (ok, _, err) = percore_push(&ours, &tagged, None);
    assert!(!ok && err.contains("--insecure-registry"), "{err}");
    // Only components are pushed.
    let text = dir.join("notes.wasm");
    std::fs::write(&text, "hello, registry\n").unwrap();
    let (ok, _, err) = percore_push(&text, &format!("{reg}/percore/notes:1"), Some(&reg));
    assert!(
        !ok && err.contains("not a valid WebAssembly component"),
        "{err}"
    );

    // oras pulls what percore pushed, byte for byte.
    let pulled = dir.join("pulled");
    std::fs::create_dir(&pulled).unwrap();
    let files = oras(&[
        "pull",
        &format!("{reg}/percore/hello@{pushed}"),
        pulled.to_str().unwrap(),
    ]);
    let file = files.lines().next().expect("oras pulled a file");
    assert!(file.ends_with("hello.wasm"), "{files}");
    assert_eq!(std::fs::read(file).unwrap(), std::fs::read(&ours).unwrap());

    // percore serves what oras pushed.
    let theirs = dir.join("theirs.wasm");
    std::fs::write(&theirs, version("pushedbyoras0002")).unwrap();
    let theirs_digest = oras(&[
        "push",
        &format!("{reg}/oras/hello:v2"),
        theirs.to_str().unwrap(),
    ])
    .trim()
    .to_owned();
    let bad = dir.join("bad.wasm");
    std::fs::write(&bad, "this layer is not a component\n").unwrap();
    oras(&["push", &format!("{reg}/oras/bad:1"), bad.to_str().unwrap()]);

    let host = TestHost::start(host_config(dir, &reg));
    let api = admin(&host);
    let url = format!("http://{}", host.server().admin_addr().unwrap());

    // A tag, through the admin API: resolved to the digest, recorded.
    let by_tag = format!("oci://{reg}/percore/hello:v1");
    let info = api
        .deploy_reference("/p", &by_tag, &RouteOptions::default())
        .unwrap();
    let origin = info.version.oci.as_ref().expect("the origin is recorded");
    assert_eq!(
        (origin.reference.as_str(), origin.digest.as_str()),
        (by_tag.as_str(), pushed.as_str())
    );
    // The component is stored under its own hash, the layer's digest.
    assert_eq!(
        info.version.hash,
        percore::engine::sha256_hex(&std::fs::read(&ours).unwrap())
    );
    assert_eq!(serving(&host, "/p"), "pushedbypercore1");

    // oras's artifact, through `percore deploy`.
    let theirs_ref = format!("oci://{reg}/oras/hello:v2");
    let (ok, out) = percore(&["deploy", "/o", &theirs_ref, "--admin", &url]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("from {theirs_ref} ({theirs_digest})")),
        "{out}"
    );
    assert_eq!(serving(&host, "/o"), "pushedbyoras0002");

    // Each failure is named, and changes nothing.
    let before = routes(&api);
    let refuse = |reference: String, status: u16, says: &str| {
        let (got, message) =
            refused(api.deploy_reference("/p", &reference, &RouteOptions::default()));
        assert_eq!(got, status, "{reference}: {message}");
        assert!(
            message.contains(says) && message.contains(&reference),
            "{reference}: {message}"
        );
        assert_eq!(routes(&api), before, "{reference} changed the routes");
        assert_eq!(serving(&host, "/p"), "pushedbypercore1");
    };
    let wrong = format!("sha256:{}", "0".repeat(64));
    refuse(
        format!("oci://{reg}/percore/hello@{wrong}"),
        400,
        "is not in the registry",
    );
    refuse(
        format!("oci://{reg}/oras/bad:1"),
        400,
        "not a valid WebAssembly component",
    );
    refuse(
        format!("oci://{reg}/percore/hello"),
        400,
        "is not in the registry",
    );
    refuse(
        format!("{reg}/percore/hello:v1"),
        400,
        "not a component reference",
    );
    registry.stop();
    refuse(by_tag.clone(), 502, "cannot reach the registry");

    // A digest pulled once is deployed from the state directory.
    let pinned = format!("oci://{reg}/percore/hello@{pushed}");
    let info = api
        .deploy_reference("/q", &pinned, &RouteOptions::default())
        .unwrap();
    assert_eq!(info.version.oci.unwrap().digest, pushed);
    assert_eq!(serving(&host, "/q"), "pushedbypercore1");
    host.shutdown();

    // A restart with the registry gone: configured routes by digest and by
    // tag (the digest it last resolved to) and the deployed routes serve
    // from the state directory.
    let config = Config {
        routes: vec![
            oci_route("/c", &format!("oci://{reg}/oras/hello@{theirs_digest}")),
            oci_route("/p", &by_tag),
        ],
        ..host_config(dir, &reg)
    };
    let host = TestHost::start(config);
    assert_eq!(serving(&host, "/c"), "pushedbyoras0002");
    assert_eq!(serving(&host, "/p"), "pushedbypercore1");
    assert_eq!(serving(&host, "/o"), "pushedbyoras0002");
    assert_eq!(serving(&host, "/q"), "pushedbypercore1");
    let p = admin(&host).route("/p").unwrap();
    assert_eq!(p.version.oci.unwrap().digest, pushed);
    host.shutdown();

    // A configured tag never resolved before cannot start without its
    // registry, and says why.
    let config = Config {
        routes: vec![oci_route("/n", &format!("oci://{reg}/percore/hello:v9"))],
        ..host_config(dir, &reg)
    };
    let err = match percore::Server::new(config).start() {
        Ok(_) => panic!("a host started with an unreachable tag"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("cannot reach the registry") && err.contains("hello:v9"),
        "{err}"
    );
}

/// The user of the registry that asks for credentials, and the bcrypt
/// hash of [`PASSWORD`] in its htpasswd file.
const USER: &str = "percore";
const PASSWORD: &str = "registry-secret-42";
const HTPASSWD: &str = "percore:$2b$04$eSEGjd816yLW0dkFkZdgleo9pXJLdUNsnO.CrHyVZJxKbNcRPyD.6";

#[test]
fn credentials_from_the_environment_and_the_docker_config_file() {
    let Some(registry) =
        LoopbackRegistry::start("the OCI registry credentials test", Some(HTPASSWD))
    else {
        return;
    };
    let reg = registry.host();
    let dir = temp_dir("oci-auth");
    let dir = dir.path();
    let wasm = dir.join("private.wasm");
    std::fs::write(&wasm, version("privatecomponent")).unwrap();
    let reference = format!("{reg}/private/hello:1");

    // Without credentials the registry refuses, and the error says how to
    // give them.
    let (ok, _, err) = percore_push(&wasm, &reference, Some(&reg));
    assert!(
        !ok && err.contains("refused access") && err.contains("PERCORE_REGISTRY_USERNAME"),
        "{err}"
    );
    // From the environment.
    let env = [
        ("PERCORE_REGISTRY_USERNAME", USER),
        ("PERCORE_REGISTRY_PASSWORD", PASSWORD),
    ];
    let (ok, out, err) = percore_push_with_env(&wasm, &reference, Some(&reg), &env);
    assert!(ok, "{out}{err}");
    let digest = out.trim().to_owned();

    // From the Docker config file, as `docker login` writes it: a host
    // pulls the route at start.
    let docker = dir.join("docker");
    std::fs::create_dir(&docker).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths": {{"{reg}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    let route = format!("/private=oci://{reg}/private/hello@{digest}");
    let state = dir.join("state");
    let (_host, addr) = spawn_binary_with_env(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--state",
            state.to_str().unwrap(),
            "--insecure-registry",
            &reg,
            "--route",
            &route,
        ],
        &[("DOCKER_CONFIG", docker.to_str().unwrap())],
    );
    let response = crate::support::Client::connect(addr).get("/private");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "version:privatecomponent");
}
