//! Standard `wasi:http/proxy` components (wasi:http 0.2) on percore routes,
//! beside percore's own world: the TechEmpower responses of `wasi-hello`
//! (the guest the load harness runs under `wasmtime serve`), a request
//! handed over whole, a body streamed while the guest writes it, the
//! route's limits and deadline, no outgoing HTTP, and a component of
//! neither world refused with what it exports.

use percore::config::{Config, Isolation, RouteConfig};
use percore::engine::World;

use crate::guests;
use crate::support::{Client, TestHost, config};

fn host(tweak: impl FnOnce(&mut Config)) -> TestHost {
    let mut cfg = config(
        vec![
            RouteConfig::file("/te", guests::WASI_HELLO),
            RouteConfig::file("/t", guests::TEST_WASI_HTTP),
            RouteConfig::file("/percore", guests::HELLO),
        ],
        1,
        Isolation::Request,
    );
    tweak(&mut cfg);
    TestHost::start(cfg)
}

#[test]
fn a_wasi_http_component_serves_beside_a_percore_one() {
    for isolation in [Isolation::Request, Isolation::Core] {
        let host = host(|c| c.isolation = isolation);
        let mut client = host.client();
        // Pipelined, alternating the two worlds.
        let mut pipelined = Vec::new();
        for path in ["/te/json", "/percore/json", "/te/plaintext", "/te/nothing"] {
            pipelined.extend(Client::get_request(path));
        }
        client.send(&pipelined);
        let json = client.read_response(false);
        assert_eq!(json.status, 200, "{isolation}");
        assert_eq!(json.text(), r#"{"message":"Hello, World!"}"#);
        assert_eq!(json.header("content-type"), Some("application/json"));
        // The host's own Server header replaces the guest's.
        assert_eq!(json.header("server"), Some("percore"));
        assert!(json.header("date").is_some());
        let native = client.read_response(false);
        assert_eq!(native.text(), json.text());
        let plaintext = client.read_response(false);
        assert_eq!(plaintext.text(), "Hello, World!");
        assert_eq!(client.read_response(false).status, 404);
    }
}

#[test]
fn a_wasi_http_guest_gets_the_whole_request_and_streams_its_body() {
    let host = host(|_| {});
    let mut client = host.client();
    client.send(
        b"POST /t/echo?q=1 HTTP/1.1\r\nHost: t\r\nX-Test: abc\r\nContent-Length: 5\r\n\r\nhello",
    );
    let echo = client.read_response(false);
    assert_eq!(echo.status, 200);
    assert_eq!(echo.text(), "POST /t/echo?q=1 x-test=abc body=hello");
    // 4 MiB: more than wasmtime-wasi-http buffers, so it must be sent while
    // the guest is still writing it.
    let stream = client.get("/t/stream?kib=4096");
    assert_eq!(stream.status, 200);
    assert_eq!(stream.body.len(), 4 << 20);
    assert!(stream.body.iter().all(|&b| b == b'x'));
    assert_eq!(client.get("/t/echo").status, 200);
}

#[test]
fn a_wasi_http_guest_is_held_to_its_routes_limits() {
    let host = host(|c| {
        c.limits.deadline_ms = 300;
        c.limits.max_response_bytes = 1 << 20;
    });
    for (path, status) in [
        ("/t/sleep?ms=5000", 504),
        ("/t/trap", 500),
        ("/t/no-answer", 500),
    ] {
        let mut client = host.client();
        assert_eq!(client.get(path).status, status, "{path}");
        assert_eq!(client.get("/t/echo").status, 200, "after {path}");
    }
    // A body past max_response_bytes is cut off: the head went out, the
    // connection closes before the body is complete.
    let mut client = host.client();
    client.send(&Client::get_request("/t/stream?kib=4096"));
    let mut received = Vec::new();
    let _ = std::io::Read::read_to_end(client.stream(), &mut received);
    assert!(
        received.len() < (4 << 20) && received.starts_with(b"HTTP/1.1 200"),
        "{} bytes",
        received.len()
    );
    assert_eq!(host.get("/t/echo").status, 200);
}

#[test]
fn a_wasi_http_guest_cannot_send_requests() {
    let host = host(|_| {});
    let response = host.get("/t/outgoing");
    assert_eq!(response.status, 200);
    assert!(
        response
            .text()
            .contains("refused: ErrorCode::HttpRequestDenied"),
        "{}",
        response.text()
    );
}

#[test]
fn each_route_reports_its_world() {
    let host = host(|_| {});
    let list = host.server().registry().list();
    let world = |prefix: &str| {
        list.routes
            .iter()
            .find(|r| r.prefix == prefix)
            .map(|r| r.world)
    };
    assert_eq!(world("/te"), Some(World::WasiHttp));
    assert_eq!(world("/percore"), Some(World::Percore));
    let json = serde_json::to_value(&list.routes[0]).unwrap();
    assert!(json["world"].is_string(), "{json}");
}

/// The handler `guests/NAME` of another language, built once per test
/// binary by its `build.sh` (which installs the language's tool from its
/// registry into the tools cache); the reason when it cannot be built
/// here.
fn script_guest(name: &'static str) -> Result<std::path::PathBuf, String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Built = HashMap<&'static str, Result<std::path::PathBuf, String>>;
    static BUILT: OnceLock<Mutex<Built>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Mutex::default).lock().unwrap();
    built
        .entry(name)
        .or_insert_with(|| {
            let script = format!("{}/../guests/{name}/build.sh", env!("CARGO_MANIFEST_DIR"));
            let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("{}.wasm", name.replace('-', "_")));
            let output = std::process::Command::new("bash")
                .arg(&script)
                .arg(&out)
                .output()
                .map_err(|e| format!("cannot run {script}: {e}"))?;
            if output.status.success() {
                Ok(out)
            } else {
                Err(format!(
                    "{script} failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                ))
            }
        })
        .clone()
}

/// Serves the wiki handler `guests/NAME` on every core in `isolations`
/// over the sample index, and checks what it answers; skips (failing under
/// `CI`) when the handler cannot be built here.
fn a_handler_reads_the_wiki_index(name: &'static str, isolations: &[Isolation], json_body: &str) {
    let wasm = match script_guest(name) {
        Ok(wasm) => wasm,
        Err(reason) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "the {name} handler cannot be built in CI: {reason}"
            );
            eprintln!("SKIPPED {name} handler test: {reason}");
            return;
        }
    };
    let index = percore_index::TitleIndex::open(&crate::wiki::sample_index()).unwrap();
    let python = index
        .lookup("Python (programming language)")
        .expect("the sample has the page");
    for &isolation in isolations {
        let mut cfg = config(vec![RouteConfig::file("/h", &wasm)], 2, isolation);
        cfg.index = Some(crate::wiki::sample_index());
        let host = TestHost::start(cfg);
        let mut client = host.client();
        let json = client.get("/h/json");
        assert_eq!(json.status, 200, "{name} {isolation}: {}", json.text());
        assert_eq!(json.text(), json_body);
        // Normalised by the host (underscores, first letter), found in the
        // shared index through percore:host/wiki.
        let page: serde_json::Value =
            serde_json::from_slice(&client.get("/h/lookup/python_(programming_language)").body)
                .unwrap();
        assert_eq!(page["title"], "Python (programming language)", "{name}");
        assert_eq!(page["first"], python.first, "{name}");
        assert_eq!(page["last"], python.last, "{name}");
        assert_eq!(client.get("/h/lookup/No_such_page_here").status, 404);
        // Every request on its own connection: both workers serve it.
        for _ in 0..10 {
            assert_eq!(host.get("/h/json").status, 200);
        }
    }
}

#[test]
fn a_python_handler_reads_the_wiki_index_on_every_core() {
    a_handler_reads_the_wiki_index(
        "python-wiki",
        &[Isolation::Request, Isolation::Core],
        r#"{"message": "Hello, World!"}"#,
    );
}

#[test]
fn a_javascript_handler_reads_the_wiki_index_on_every_core() {
    // StarlingMonkey, componentize-js's engine, answers one request per
    // instance (as `wasmtime serve` assumes of wasi:http 0.2 components): a
    // reused instance never answers its second. Such a component belongs in
    // `request` isolation.
    a_handler_reads_the_wiki_index(
        "js-wiki",
        &[Isolation::Request],
        r#"{"message":"Hello, World!"}"#,
    );
}
