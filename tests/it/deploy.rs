//! Deploying to a running host through the admin API (over real HTTP, with
//! the same client `percore deploy` uses, and through the binary itself):
//! versions, rollback, undeploy, tokens, refused uploads, restart from the
//! state directory, redeploys under load. (`percore new` is in `new`.)
//!
//! Versions are made from the `test-version` guest by rewriting the 16-byte
//! marker it answers with, so every response names the version that served
//! it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use percore::admin::AdminToken;
use percore::admin::client::AdminClient;
use percore::config::{Config, Isolation, RouteOptions};
use percore::registry::RouteInfo;

use crate::guests;
use crate::support::{Client, TestHost, config, refused, wait_until};

pub(crate) const TOKEN: &str = "test-token-0123456789abcdef";
const MARKER: &[u8] = b"AAAAAAAAAAAAAAAA";

/// A fresh directory for one test, removed when it is dropped.
pub(crate) fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("percore-it-deploy-{name}-"))
        .tempdir()
        .unwrap()
}

/// A host with no routes, the admin API on loopback (token in a file under
/// `dir`), and `dir/state` as its state directory.
pub(crate) fn admin_config(dir: &Path) -> Config {
    let token_file = dir.join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    Config {
        admin: Some("127.0.0.1:0".parse().unwrap()),
        admin_token_file: Some(token_file),
        state: Some(dir.join("state")),
        max_upload_bytes: 2 << 20,
        ..config(Vec::new(), 2, Isolation::Request)
    }
}

pub(crate) fn admin(host: &TestHost) -> AdminClient {
    admin_with(host, Some(TOKEN))
}

fn admin_with(host: &TestHost, token: Option<&str>) -> AdminClient {
    let addr = host.server().admin_addr().expect("the admin API is on");
    AdminClient::at(addr, token.map(|t| AdminToken::new(t).unwrap()))
}

/// The `test-version` component answering `version:<tag>` (16 bytes).
pub(crate) fn version(tag: &str) -> Vec<u8> {
    assert_eq!(tag.len(), 16, "tags are 16 bytes");
    let mut bytes = std::fs::read(guests::TEST_VERSION).unwrap();
    let at = bytes
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .expect("test-version carries its marker");
    bytes[at..at + 16].copy_from_slice(tag.as_bytes());
    bytes
}

/// The version serving `path`, checking that body and header agree.
pub(crate) fn serving(host: &TestHost, path: &str) -> String {
    let response = host.get(path);
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let body = response.text();
    assert_eq!(response.header("x-version"), Some(body.as_str()));
    body.strip_prefix("version:").expect("a version").to_owned()
}

fn deploy(host: &TestHost, prefix: &str, wasm: &[u8]) -> RouteInfo {
    admin(host)
        .deploy(prefix, wasm, &RouteOptions::default())
        .unwrap_or_else(|e| panic!("deploy to {prefix}: {e}"))
}

#[test]
fn deploy_call_redeploy_roll_back_undeploy() {
    let dir = temp_dir("cycle");
    let dir = dir.path();
    let host = TestHost::start(admin_config(dir));
    let (a, b) = (version("aaaaaaaaaaaaaaaa"), version("bbbbbbbbbbbbbbbb"));

    assert_eq!(host.get("/v").status, 404);
    let info = deploy(&host, "/v", &a);
    assert_eq!(info.prefix, "/v");
    assert_eq!(info.version.size, a.len() as u64);
    assert_eq!(info.version.hash.len(), 64);
    assert_eq!(serving(&host, "/v"), "aaaaaaaaaaaaaaaa");
    assert_eq!(serving(&host, "/v/deeper"), "aaaaaaaaaaaaaaaa");

    // A request in flight when B is deployed finishes on A.
    let mut slow = host.client();
    slow.send(&Client::get_request("/v?ms=600"));
    wait_until("the request reaches the guest", || {
        host.server().stats().active_requests() == 1
    });
    let info = admin(&host)
        .deploy(
            "/v",
            &b,
            &RouteOptions {
                isolation: Some(Isolation::Core),
                ..RouteOptions::default()
            },
        )
        .unwrap();
    assert_eq!(info.isolation, Isolation::Core);
    assert_eq!(serving(&host, "/v"), "bbbbbbbbbbbbbbbb");
    assert_eq!(slow.read_response(false).text(), "version:aaaaaaaaaaaaaaaa");

    let listed = admin(&host).routes().unwrap();
    let route = &listed.routes[0];
    assert_eq!(route.prefix, "/v");
    assert_eq!(route.version.hash, info.version.hash);
    assert_eq!(route.history.len(), 1);
    assert_ne!(route.history[0].hash, route.version.hash);

    let back = admin(&host).rollback("/v").unwrap();
    assert_eq!(back.isolation, Isolation::Request);
    assert_eq!(serving(&host, "/v"), "aaaaaaaaaaaaaaaa");
    // B is kept: a second rollback undoes the first, B's isolation too.
    assert_eq!(back.history.len(), 1);
    assert_eq!(back.history[0].hash, info.version.hash);
    let again = admin(&host).rollback("/v").unwrap();
    assert_eq!(again.isolation, Isolation::Core);
    assert_eq!(serving(&host, "/v"), "bbbbbbbbbbbbbbbb");
    deploy(&host, "/w", &a);
    let (status, message) = refused(admin(&host).rollback("/w"));
    assert_eq!(status, 409);
    assert!(message.contains("no earlier version"), "{message}");
    admin(&host).undeploy("/w").unwrap();

    admin(&host).undeploy("/v").unwrap();
    assert_eq!(host.get("/v").status, 404);
    let (status, message) = refused(admin(&host).undeploy("/v"));
    assert_eq!(status, 404);
    assert!(message.contains("no route /v"), "{message}");
    let (status, _) = refused(admin(&host).call("GET", "/v1/nothing", &[]));
    assert_eq!(status, 404);
    host.shutdown();
}

#[test]
fn calls_without_the_right_token_change_nothing() {
    let dir = temp_dir("token");
    let dir = dir.path();
    let host = TestHost::start(admin_config(dir));
    let (a, b) = (version("aaaaaaaaaaaaaaaa"), version("bbbbbbbbbbbbbbbb"));
    deploy(&host, "/v", &a);
    deploy(&host, "/v", &b);
    let before = admin(&host).routes().unwrap();

    for token in [None, Some("wrong-token-0123456789abcdef")] {
        let client = admin_with(&host, token);
        let expect = if token.is_none() {
            "missing admin token"
        } else {
            "wrong admin token"
        };
        for result in [
            client.deploy("/v", &a, &RouteOptions::default()),
            client.deploy("/w", &a, &RouteOptions::default()),
            client.rollback("/v"),
            client.undeploy("/v"),
            client.routes().map(|list| list.routes[0].clone()),
        ] {
            let (status, message) = refused(result);
            assert_eq!(status, 401);
            assert!(message.contains(expect), "{message}");
        }
    }
    assert_eq!(admin(&host).routes().unwrap(), before);
    assert_eq!(serving(&host, "/v"), "bbbbbbbbbbbbbbbb");
    assert_eq!(host.get("/w").status, 404);
    host.shutdown();
}

#[test]
fn invalid_uploads_are_refused_and_the_old_version_keeps_serving() {
    let dir = temp_dir("invalid");
    let dir = dir.path();
    let host = TestHost::start(admin_config(dir));
    deploy(&host, "/v", &version("aaaaaaaaaaaaaaaa"));
    let before = admin(&host).routes().unwrap().routes.clone();

    let mut random = vec![0u8; 4096];
    let mut x: u32 = 0x1234_5678;
    for byte in &mut random {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *byte = x as u8;
    }
    let oversized = {
        let mut bytes = version("cccccccccccccccc");
        bytes.resize(3 << 20, 0);
        bytes
    };
    // A native shared library: an x86-64 ELF header (what `cargo build`
    // without `--target wasm32-wasip2` makes of a cdylib).
    let elf = {
        let mut bytes = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0\x3e\0".to_vec();
        bytes.resize(4096, 0);
        bytes
    };
    let cases: [(&str, Vec<u8>, u16, &[&str]); 7] = [
        (
            "random bytes",
            random,
            400,
            &["is not a valid WebAssembly component"],
        ),
        (
            "an ELF file",
            elf,
            400,
            &["it is an ELF file", "wasm32-wasip2"],
        ),
        (
            "a core module",
            b"\0asm\x01\0\0\0".to_vec(),
            400,
            &["core WebAssembly module, not a component", "wasm32-wasip2"],
        ),
        (
            "a component for another world",
            std::fs::read(guests::TEST_OTHERWORLD).unwrap(),
            400,
            &[
                "exports neither percore's `handle`",
                "wasi:http/incoming-handler",
                "it exports run",
            ],
        ),
        (
            "a component with an unknown import",
            std::fs::read(guests::TEST_BADIMPORT).unwrap(),
            400,
            &[
                "does not fit the percore:host/handler world",
                "test:bad/secrets",
            ],
        ),
        (
            "an oversized file",
            oversized,
            413,
            &["larger than this host's limit of 2097152 bytes"],
        ),
        ("an empty upload", Vec::new(), 400, &["the upload is empty"]),
    ];
    for (what, bytes, expect_status, expect_message) in cases {
        let (status, message) =
            refused(admin(&host).deploy("/v", &bytes, &RouteOptions::default()));
        assert_eq!(status, expect_status, "{what}: {message}");
        for part in expect_message {
            assert!(message.contains(part), "{what}: {message:?} lacks {part:?}");
        }
        assert!(
            !message.contains("0x61"),
            "{what}: wasmtime's byte array: {message}"
        );
        assert_eq!(serving(&host, "/v"), "aaaaaaaaaaaaaaaa", "after {what}");
        assert_eq!(
            admin(&host).routes().unwrap().routes,
            before,
            "after {what}"
        );
    }
    let (status, message) = refused(admin(&host).call(
        "PUT",
        "/v1/routes/v?isolation=sometimes",
        &version("dddddddddddddddd"),
    ));
    assert_eq!(status, 400);
    assert!(
        message.contains("isolation") && message.contains("expected `request` or `core`"),
        "{message}"
    );
    let (status, message) = refused(admin(&host).call(
        "PUT",
        "/v1/routes/v?max_memory_bytes=1099511627776",
        &version("dddddddddddddddd"),
    ));
    assert_eq!(status, 400);
    assert!(message.contains("above this host's ceiling"), "{message}");
    assert_eq!(admin(&host).routes().unwrap().routes, before);
    host.shutdown();
}

#[test]
fn admin_client_errors_say_what_to_do() {
    let dir = temp_dir("client-errors");
    let dir = dir.path();
    let host = TestHost::start(admin_config(dir));
    // The application port is not the admin API.
    let token = AdminToken::new(TOKEN).unwrap();
    let err = AdminClient::at(host.addr, Some(token.clone()))
        .routes()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is not a percore admin API") && err.contains("--admin"),
        "{err}"
    );
    // A refused connection is reported once.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let err = AdminClient::at(closed, Some(token)).routes().unwrap_err();
    // The whole chain, as the CLI prints it.
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    assert_eq!(text.matches("refused").count(), 1, "{text}");
    // The CLI without a token asks for the host's, not a new one.
    let (ok, text) = {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_percore-under-test"))
            .args(["routes", "--admin"])
            .arg(host.server().admin_addr().unwrap().to_string())
            .env_remove("PERCORE_ADMIN_TOKEN")
            .output()
            .expect("run percore");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    assert!(!ok);
    assert!(
        text.contains("the host's token") && !text.contains("/dev/urandom"),
        "{text}"
    );
    host.shutdown();
}

#[test]
fn restart_restores_routes_without_recompiling() {
    let dir = temp_dir("restart");
    let dir = dir.path();
    let first = TestHost::start(admin_config(dir));
    deploy(&first, "/a", &version("aaaaaaaaaaaaaaaa"));
    deploy(&first, "/b", &version("bbbbbbbbbbbbbbbb"));
    admin(&first)
        .deploy(
            "/b",
            &version("cccccccccccccccc"),
            &RouteOptions {
                isolation: Some(Isolation::Core),
                ..RouteOptions::default()
            },
        )
        .unwrap();
    let stats = first.server().registry().list().cache.expect("a cache");
    assert_eq!(stats.misses, 3, "three versions compiled: {stats:?}");
    let listed = admin(&first).routes().unwrap().routes;
    first.shutdown();
    let cached = count_files(&dir.join("state/cache"));
    assert!(cached >= 3, "{cached} files in the cache");

    let second = TestHost::start(admin_config(dir));
    let answer = admin(&second).routes().unwrap();
    assert_eq!(
        answer.routes, listed,
        "the same routes, versions and history"
    );
    assert_eq!(answer.restore_errors.len(), 0);
    assert_eq!(serving(&second, "/a"), "aaaaaaaaaaaaaaaa");
    assert_eq!(serving(&second, "/b"), "cccccccccccccccc");
    // Rolling back to a version compiled by the first host is a cache hit too.
    admin(&second).rollback("/b").unwrap();
    assert_eq!(serving(&second, "/b"), "bbbbbbbbbbbbbbbb");
    let stats = second.server().registry().list().cache.unwrap();
    assert_eq!(stats.misses, 0, "nothing recompiled: {stats:?}");
    assert_eq!(stats.hits, 3, "{stats:?}");
    assert_eq!(answer.cache.unwrap().misses, 0);
    second.shutdown();
    assert_eq!(count_files(&dir.join("state/cache")), cached);
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                count_files(&entry.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn corrupt_state_is_named_and_the_rest_restored() {
    let dir = temp_dir("corrupt");
    let dir = dir.path();
    let first = TestHost::start(admin_config(dir));
    let a = deploy(&first, "/a", &version("aaaaaaaaaaaaaaaa"));
    deploy(&first, "/b", &version("bbbbbbbbbbbbbbbb"));
    first.shutdown();

    // A component goes missing: /a is reported, /b restored.
    let hash = &a.version.hash;
    let component = dir.join(format!("state/components/{hash}.wasm"));
    std::fs::remove_file(&component).unwrap();
    let second = TestHost::start(admin_config(dir));
    let errors = admin(&second).routes().unwrap().restore_errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let error = &errors[0];
    assert!(
        error.contains("/a") && error.contains(&component.display().to_string()),
        "{error}"
    );
    assert_eq!(second.get("/a").status, 404);
    assert_eq!(serving(&second, "/b"), "bbbbbbbbbbbbbbbb");
    second.shutdown();

    // The route table is garbage: the host starts, names it, keeps it.
    let table = dir.join("state/routes.json");
    std::fs::write(&table, b"{\"format\": 1, \"routes\": [oops").unwrap();
    let third = TestHost::start(admin_config(dir));
    let answer = admin(&third).routes().unwrap();
    let error = answer.restore_errors[0].clone();
    assert!(
        error.contains(&table.display().to_string()) && error.contains("corrupt"),
        "{error}"
    );
    assert_eq!(answer.routes.len(), 0);
    let kept = std::fs::read_dir(dir.join("state")).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("routes.json.corrupt-")
    });
    assert!(kept, "the corrupt table was kept aside");
    deploy(&third, "/c", &version("cccccccccccccccc"));
    assert_eq!(serving(&third, "/c"), "cccccccccccccccc");
    third.shutdown();
}

#[test]
fn redeploys_under_load_fail_no_request() {
    const CONNECTIONS: usize = 32;
    const REDEPLOYS: usize = 20;
    let dir = temp_dir("load");
    let dir = dir.path();
    let host = TestHost::start(admin_config(dir));
    let tags: Vec<String> = (0..=REDEPLOYS).map(|i| format!("v{i:015}")).collect();
    deploy(&host, "/v", &version(&tags[0]));

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let stop = stop.clone();
            let served = served.clone();
            let tags = tags.clone();
            let mut client = host.client();
            std::thread::spawn(move || {
                // Each connection only ever moves forward through versions.
                let mut last = 0;
                let mut seen = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let response = client.get("/v");
                    assert_eq!(
                        response.status,
                        200,
                        "{}",
                        String::from_utf8_lossy(&response.body)
                    );
                    let body = response.text();
                    assert_eq!(
                        response.header("x-version"),
                        Some(body.as_str()),
                        "mixed response"
                    );
                    let tag = body.strip_prefix("version:").expect("a version");
                    let at = tags
                        .iter()
                        .position(|t| t == tag)
                        .expect("a deployed version");
                    assert!(at >= last, "went back from {} to {}", tags[last], tag);
                    last = at;
                    seen += 1;
                    served.fetch_add(1, Ordering::Relaxed);
                }
                // Deploys are over: the next request gets the last version.
                let response = client.get("/v");
                assert_eq!(response.text(), format!("version:{}", tags[REDEPLOYS]));
                seen
            })
        })
        .collect();

    // Throughput without and with deploys, for the log (a shared machine
    // makes it no basis for an assertion).
    std::thread::sleep(Duration::from_millis(200));
    let rate = |since: std::time::Instant, from: usize| {
        (served.load(Ordering::Relaxed) - from) as f64 / since.elapsed().as_secs_f64()
    };
    let (quiet, from) = (std::time::Instant::now(), served.load(Ordering::Relaxed));
    std::thread::sleep(Duration::from_secs(1));
    let quiet_rate = rate(quiet, from);
    let (busy, from) = (std::time::Instant::now(), served.load(Ordering::Relaxed));
    let mut took = Vec::new();
    for tag in &tags[1..] {
        let started = std::time::Instant::now();
        deploy(&host, "/v", &version(tag));
        took.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let busy_rate = rate(busy, from);
    took.sort();
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for client in clients {
        total += client.join().expect("no request failed");
    }
    assert!(total >= CONNECTIONS, "only {total} responses");
    eprintln!(
        "{total} responses over {CONNECTIONS} connections across {REDEPLOYS} redeploys; \
         {quiet_rate:.0} requests/s without deploys, {busy_rate:.0} while deploying; \
         deploys took {:?} (min) {:?} (median) {:?} (max)",
        took[0],
        took[took.len() / 2],
        took[took.len() - 1]
    );
    let listed = admin(&host).routes().unwrap();
    assert_eq!(
        listed.routes[0].history.len(),
        percore::registry::MAX_HISTORY
    );
    host.shutdown();
}

/// Runs the `percore` binary with the admin token in its environment.
pub(crate) fn percore(args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_percore-under-test"))
        .args(args)
        .env("PERCORE_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("run percore");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_cli_deploys_lists_rolls_back_and_undeploys() {
    let dir = temp_dir("cli");
    let dir = dir.path();
    let host = TestHost::start(admin_config(dir));
    let url = format!("http://{}", host.server().admin_addr().unwrap());
    let (a, b) = (dir.join("a.wasm"), dir.join("b.wasm"));
    std::fs::write(&a, version("aaaaaaaaaaaaaaaa")).unwrap();
    std::fs::write(&b, version("bbbbbbbbbbbbbbbb")).unwrap();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--admin", &url]);
        percore(&all)
    };

    let (ok, out) = run(&["deploy", "/v", a.to_str().unwrap()]);
    assert!(ok && out.contains("deployed /v"), "{out}");
    // A prefix written with a trailing slash is the same route.
    let (ok, out) = run(&["deploy", "/w/", a.to_str().unwrap()]);
    assert!(ok && out.contains("deployed /w sha256:"), "{out}");
    assert_eq!(serving(&host, "/w"), "aaaaaaaaaaaaaaaa");
    let (ok, out) = run(&["undeploy", "/w/"]);
    assert!(ok && out.contains("removed /w"), "{out}");
    let (ok, out) = run(&["deploy", "/v", b.to_str().unwrap(), "--isolation", "core"]);
    assert!(ok && out.contains("core isolation"), "{out}");
    assert_eq!(serving(&host, "/v"), "bbbbbbbbbbbbbbbb");
    let (ok, out) = run(&["routes"]);
    assert!(
        ok && out.contains("/v sha256:") && out.contains("1 earlier"),
        "{out}"
    );
    // The history is listed, newest first: what rollback returns to.
    let earlier = admin(&host).route("/v").unwrap().history[0].hash.clone();
    assert!(
        out.contains(&format!("    earlier: sha256:{}", &earlier[..16])),
        "{out}"
    );
    // A mistyped path lists the components that are there.
    let (ok, out) = run(&["deploy", "/v", dir.join("c.wasm").to_str().unwrap()]);
    assert!(
        !ok && out.contains(".wasm files in") && out.contains("a.wasm, b.wasm"),
        "{out}"
    );
    let (ok, out) = run(&["routes", "--json"]);
    assert!(ok && out.contains("\"restore_errors\""), "{out}");
    let (ok, out) = run(&["rollback", "/v"]);
    assert!(ok && out.contains("rolled back /v"), "{out}");
    assert_eq!(serving(&host, "/v"), "aaaaaaaaaaaaaaaa");
    let (ok, out) = run(&["deploy", "/v", guests::TEST_OTHERWORLD]);
    assert!(!ok && out.contains("exports neither"), "{out}");
    let (ok, out) = run(&["undeploy", "/v"]);
    assert!(ok && out.contains("removed /v"), "{out}");
    assert_eq!(host.get("/v").status, 404);
    let (ok, out) = run(&["routes"]);
    assert!(ok && out.contains("no routes"), "{out}");

    let (ok, out) = percore(&["routes", "--admin", "127.0.0.1:1"]);
    assert!(
        !ok && out.contains("cannot reach the admin API at 127.0.0.1:1"),
        "{out}"
    );
    host.shutdown();
}

#[test]
fn an_admin_api_without_a_usable_token_is_refused_at_start() {
    let dir = temp_dir("no-token");
    let dir = dir.path();
    let missing = dir.join("missing.token");
    let short = dir.join("short.token");
    std::fs::write(&short, "abc\n").unwrap();
    for (file, expect) in [
        (&missing, "cannot read the admin token file"),
        (&short, "is too short"),
    ] {
        let config = Config {
            admin_token_file: Some(file.clone()),
            ..admin_config(dir)
        };
        let err = match percore::Server::new(config).start() {
            Ok(_) => panic!("started with the token file {}", file.display()),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains(expect) && err.contains(&file.display().to_string()),
            "{err}"
        );
    }
}

#[test]
fn a_configured_route_overrides_a_deployed_one_which_stays_in_its_history() {
    let dir = temp_dir("override");
    let dir = dir.path();
    let first = TestHost::start(admin_config(dir));
    deploy(&first, "/", &version("aaaaaaaaaaaaaaaa"));
    first.shutdown();

    let b = dir.join("b.wasm");
    std::fs::write(&b, version("bbbbbbbbbbbbbbbb")).unwrap();
    let second = TestHost::start(Config {
        routes: vec![percore::config::RouteConfig::file("/", &b)],
        ..admin_config(dir)
    });
    assert_eq!(serving(&second, "/"), "bbbbbbbbbbbbbbbb");
    let route = admin(&second).route("/").unwrap();
    assert_eq!(route.history.len(), 1);
    admin(&second).rollback("/").unwrap();
    assert_eq!(serving(&second, "/anything"), "aaaaaaaaaaaaaaaa");
    second.shutdown();
}

#[test]
fn a_wasi_http_component_deploys_and_reports_its_world() {
    let dir = temp_dir("wasi-http");
    let dir = dir.path();
    let host = TestHost::start(admin_config(dir));
    let info = deploy(&host, "/te", &std::fs::read(guests::WASI_HELLO).unwrap());
    assert_eq!(info.world, percore::engine::World::WasiHttp);
    assert_eq!(host.get("/te/plaintext").text(), "Hello, World!");
    let info = deploy(&host, "/v", &version("aaaaaaaaaaaaaaaa"));
    assert_eq!(info.world, percore::engine::World::Percore);
    let (ok, out) = percore(&[
        "routes",
        "--admin",
        &format!("http://{}", host.server().admin_addr().unwrap()),
    ]);
    assert!(
        ok && out.contains("wasi:http/proxy@0.2") && out.contains("percore:host/handler"),
        "{out}"
    );
}

/// Options with only `isolation` set.
fn isolated(isolation: Isolation) -> RouteOptions {
    RouteOptions {
        isolation: Some(isolation),
        ..RouteOptions::default()
    }
}

#[test]
fn redeploying_the_serving_version_changes_nothing() {
    let dir = temp_dir("unchanged");
    let dir = dir.path();
    let host = TestHost::start(admin_config(dir));
    let a = version("aaaaaaaaaaaaaaaa");
    let first = deploy(&host, "/v", &a);
    assert!(!first.unchanged);
    let again = deploy(&host, "/v", &a);
    assert!(again.unchanged, "{again:?}");
    assert_eq!(
        again.history.len(),
        0,
        "no history entry for the same version"
    );
    assert_eq!(again.version.deployed_at, first.version.deployed_at);
    // The same file with other options is another version.
    let core = admin(&host)
        .deploy("/v", &a, &isolated(Isolation::Core))
        .unwrap();
    assert!(!core.unchanged);
    assert_eq!(core.history.len(), 1);
    assert_eq!(core.isolation, Isolation::Core);
    // Rolling back to the same file with its earlier options.
    let back = admin(&host)
        .rollback_to("/v", Some(&first.version.hash[..8]))
        .unwrap();
    assert_eq!(back.isolation, Isolation::Request);
    admin(&host).rollback("/v").unwrap();
    deploy(&host, "/w", &a);
    let (status, message) = refused(admin(&host).rollback_to("/w", Some(&first.version.hash[..8])));
    assert_eq!(status, 400);
    assert!(message.contains("serving route /w already"), "{message}");
    admin(&host).undeploy("/w").unwrap();

    // The CLI says so too.
    let file = dir.join("a.wasm");
    std::fs::write(&file, &a).unwrap();
    let url = format!("http://{}", host.server().admin_addr().unwrap());
    let (ok, out) = percore(&[
        "deploy",
        "/v",
        file.to_str().unwrap(),
        "--isolation",
        "core",
        "--admin",
        &url,
    ]);
    assert!(ok && out.contains("unchanged /v sha256:"), "{out}");
    assert_eq!(admin(&host).route("/v").unwrap().history.len(), 1);
    assert_eq!(serving(&host, "/v"), "aaaaaaaaaaaaaaaa");
    host.shutdown();
}

#[test]
fn history_records_options_and_rollback_goes_to_any_version() {
    let dir = temp_dir("history");
    let dir = dir.path();
    let host = TestHost::start(admin_config(dir));
    let client = admin(&host);
    let a = client
        .deploy(
            "/v",
            &version("aaaaaaaaaaaaaaaa"),
            &RouteOptions {
                deadline_ms: Some(1234),
                ..isolated(Isolation::Core)
            },
        )
        .unwrap();
    let b = deploy(&host, "/v", &version("bbbbbbbbbbbbbbbb"));
    let c = deploy(&host, "/v", &version("cccccccccccccccc"));
    // Newest first, each with the options a rollback restores.
    let history = &c.history;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].hash, b.version.hash);
    assert_eq!(history[0].options, RouteOptions::default());
    assert_eq!(history[1].hash, a.version.hash);
    assert_eq!(history[1].options.isolation, Some(Isolation::Core));
    assert_eq!(history[1].options.deadline_ms, Some(1234));

    // Back to the oldest, by the start of its hash: its options come back.
    let back = client
        .rollback_to("/v", Some(&a.version.hash[..12]))
        .unwrap();
    assert_eq!(back.version.hash, a.version.hash);
    assert_eq!(back.isolation, Isolation::Core);
    assert_eq!(back.limits.deadline_ms, 1234);
    assert_eq!(serving(&host, "/v"), "aaaaaaaaaaaaaaaa");
    // And forward again, to the newest.
    let forward = client
        .rollback_to("/v", Some(&format!("sha256:{}", &c.version.hash[..16])))
        .unwrap();
    assert_eq!(forward.version.hash, c.version.hash);
    assert_eq!(forward.isolation, Isolation::Request);
    assert_eq!(serving(&host, "/v"), "cccccccccccccccc");
    assert_eq!(forward.history.len(), 2, "every version once");

    // A version that is not there, and one that is not a hash.
    let (status, message) = refused(client.rollback_to("/v", Some("0123456789abcdef")));
    assert_eq!(status, 404);
    assert!(
        message.contains("no version sha256:0123456789abcdef")
            && message.contains(&a.version.hash[..16]),
        "{message}"
    );
    let (status, message) = refused(client.rollback_to("/v", Some("xyz")));
    assert_eq!(status, 400);
    assert!(message.contains("not a version"), "{message}");
    let (status, message) = refused(client.call("POST", "/v1/rollback/v?too=1", &[]));
    assert_eq!(status, 400);
    assert!(message.contains("?to=HASH"), "{message}");
    assert_eq!(serving(&host, "/v"), "cccccccccccccccc");

    // The CLI: the history with its options, and --to.
    let url = format!("http://{}", host.server().admin_addr().unwrap());
    let (ok, out) = percore(&["routes", "--admin", &url]);
    assert!(
        ok && out.contains(&format!("    earlier: sha256:{}", &a.version.hash[..16]))
            && out.contains("options isolation=core,deadline_ms=1234")
            && out.contains("the host's isolation and limits"),
        "{out}"
    );
    let (ok, out) = percore(&[
        "rollback",
        "/v",
        "--to",
        &b.version.hash[..16],
        "--admin",
        &url,
    ]);
    assert!(ok && out.contains("rolled back /v"), "{out}");
    assert_eq!(serving(&host, "/v"), "bbbbbbbbbbbbbbbb");
    host.shutdown();
}

/// The components in the state directory under `dir`, by hash.
fn stored_components(dir: &Path) -> Vec<String> {
    let mut hashes: Vec<String> = std::fs::read_dir(dir.join("state/components"))
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.trim_end_matches(".wasm").to_owned()
        })
        .collect();
    hashes.sort();
    hashes
}

#[test]
fn components_nothing_refers_to_are_removed() {
    let dir = temp_dir("gc");
    let dir = dir.path();
    let host = TestHost::start(admin_config(dir));
    let a = deploy(&host, "/v", &version("aaaaaaaaaaaaaaaa"))
        .version
        .hash;
    let b = deploy(&host, "/v", &version("bbbbbbbbbbbbbbbb"))
        .version
        .hash;
    deploy(&host, "/w", &version("aaaaaaaaaaaaaaaa"));
    let c = deploy(&host, "/x", &version("cccccccccccccccc"))
        .version
        .hash;
    let mut all = vec![a.clone(), b.clone(), c.clone()];
    all.sort();
    assert_eq!(stored_components(dir), all);
    // Rolling back keeps both versions (the history names them).
    admin(&host).rollback("/v").unwrap();
    assert_eq!(stored_components(dir), all);
    // /v's versions: B goes, A stays (the current version of /w).
    admin(&host).undeploy("/v").unwrap();
    let mut left = vec![a.clone(), c.clone()];
    left.sort();
    assert_eq!(stored_components(dir), left);
    admin(&host).undeploy("/w").unwrap();
    assert_eq!(stored_components(dir), vec![c.clone()]);
    // A history past its limit lets go of its oldest version.
    for i in 0..=percore::registry::MAX_HISTORY {
        deploy(&host, "/x", &version(&format!("v{i:015}")));
    }
    let route = admin(&host).route("/x").unwrap();
    assert_eq!(route.history.len(), percore::registry::MAX_HISTORY);
    assert!(!stored_components(dir).contains(&c));
    assert_eq!(
        stored_components(dir).len(),
        percore::registry::MAX_HISTORY + 1
    );
    host.shutdown();

    // A file nothing names (left by an older percore) goes at the next start.
    let stray = version("ssssssssssssssss");
    let stray_hash = percore::engine::sha256_hex(&stray);
    std::fs::write(
        dir.join(format!("state/components/{stray_hash}.wasm")),
        &stray,
    )
    .unwrap();
    let second = TestHost::start(admin_config(dir));
    assert!(!stored_components(dir).contains(&stray_hash));
    assert_eq!(
        stored_components(dir).len(),
        percore::registry::MAX_HISTORY + 1
    );
    second.shutdown();
}

#[test]
fn state_written_by_the_previous_percore_still_loads() {
    let dir = temp_dir("old-state");
    let dir = dir.path();
    let components = dir.join("state/components");
    std::fs::create_dir_all(&components).unwrap();
    let mut hashes = Vec::new();
    for tag in ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"] {
        let bytes = version(tag);
        let hash = percore::engine::sha256_hex(&bytes);
        std::fs::write(components.join(format!("{hash}.wasm")), &bytes).unwrap();
        hashes.push((hash, bytes.len()));
    }
    let [(a, a_len), (b, b_len), (c, c_len)] = <[_; 3]>::try_from(hashes).unwrap();
    // As the previous version wrote it: options at the top level of a
    // record, none for a version deployed without; the same version
    // twice in the history; and one record that names no component.
    std::fs::write(
        dir.join("state/routes.json"),
        format!(
            r#"{{"format": 2, "routes": [{{"prefix": "/v",
                "current": {{"hash": "{c}", "size": {c_len}, "deployed_at": 30, "isolation": "core"}},
                "history": [
                    {{"hash": "{a}", "size": {a_len}, "deployed_at": 10}},
                    {{"hash": "not-a-hash", "size": 1, "deployed_at": 15}},
                    {{"hash": "{b}", "size": {b_len}, "deployed_at": 20, "deadline_ms": 777}},
                    {{"hash": "{a}", "size": {a_len}, "deployed_at": 10}}
                ]}}]}}"#
        ),
    )
    .unwrap();
    let host = TestHost::start(admin_config(dir));
    let answer = admin(&host).routes().unwrap();
    assert!(answer.restore_errors.is_empty(), "{answer:?}");
    let route = &answer.routes[0];
    assert_eq!(route.version.hash, c);
    assert_eq!(route.isolation, Isolation::Core);
    let history: Vec<(&str, &RouteOptions)> = route
        .history
        .iter()
        .map(|v| (v.hash.as_str(), &v.options))
        .collect();
    let b_options = RouteOptions {
        deadline_ms: Some(777),
        ..RouteOptions::default()
    };
    assert_eq!(
        history,
        vec![
            (a.as_str(), &RouteOptions::default()),
            (b.as_str(), &b_options)
        ]
    );
    assert_eq!(serving(&host, "/v"), "cccccccccccccccc");
    let back = admin(&host).rollback_to("/v", Some(&b[..8])).unwrap();
    assert_eq!(back.limits.deadline_ms, 777);
    assert_eq!(serving(&host, "/v"), "bbbbbbbbbbbbbbbb");
    // A version without options has the host's defaults.
    let back = admin(&host).rollback_to("/v", Some(&a[..8])).unwrap();
    assert_eq!(back.isolation, Isolation::Request);
    assert_eq!(serving(&host, "/v"), "aaaaaaaaaaaaaaaa");
    host.shutdown();
}

#[test]
fn routes_says_when_there_are_none() {
    let dir = temp_dir("no-routes");
    let dir = dir.path();
    let host = TestHost::start(admin_config(dir));
    let url = format!("http://{}", host.server().admin_addr().unwrap());
    let (ok, out) = percore(&["routes", "--admin", &url]);
    assert!(ok && out.starts_with("no routes: deploy one with"), "{out}");
    let (ok, out) = percore(&["routes", "--json", "--admin", &url]);
    assert!(ok, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["routes"], serde_json::json!([]), "{out}");
    host.shutdown();
}
