//! Standard `wasi:http/proxy` components (wasi:http 0.2) on percore routes,
//! beside percore's own world: the TechEmpower responses of `wasi-hello`
//! (the guest the load harness runs under `wasmtime serve`), a request
//! body read as it arrives and a response body streamed while the guest
//! writes it, trailers both ways, 413 past the route's body limit, a guest
//! that leaves the body unread, the route's limits and deadline, outgoing
//! HTTP denied except to the origins of `allow_outbound` (against a server
//! on loopback), and a component of neither world refused with what it
//! exports; a restart that serves the Python handler from the compile
//! cache; the Python and JavaScript
//! wiki handlers (`guests/python-wiki`, `guests/js-wiki`), built from
//! source, answering byte for byte as the Rust wiki guest beside them, and
//! `percore demo --python`.

use std::path::PathBuf;

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
    // One whose `content-length` promises more than that is refused
    // before anything is sent.
    let too_long = host.get("/t/stream?kib=4096&length=1");
    assert_eq!(too_long.status, 500, "{}", too_long.text());
    assert_eq!(host.get("/t/stream?kib=64&length=1").body.len(), 64 << 10);
    assert_eq!(host.get("/t/echo").status, 200);
}

/// Reads from `client` until `needle` has arrived (failing at the
/// client's read timeout); returns everything read.
fn read_until(client: &mut Client, needle: &[u8]) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    while !received.windows(needle.len()).any(|w| w == needle) {
        let n = std::io::Read::read(client.stream(), &mut chunk).expect("read from the host");
        assert!(
            n > 0,
            "the host closed the connection; got {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&chunk[..n]);
    }
    received
}

#[test]
fn a_wasi_http_guest_reads_the_request_body_as_it_arrives() {
    for isolation in [Isolation::Request, Isolation::Core] {
        let host = host(|c| c.isolation = isolation);
        let mut client = host.client();
        // The first chunk only: the guest echoes it before the rest is
        // sent. A host that waited for the whole body would answer nothing
        // (and the read would time out).
        client.send(
            b"POST /t/stream-echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst.\r\n",
        );
        let head = read_until(&mut client, b"first.");
        assert!(head.starts_with(b"HTTP/1.1 200"), "{isolation}");
        client.send(b"7\r\nsecond.\r\n0\r\n\r\n");
        let rest = read_until(&mut client, b"0\r\n\r\n");
        assert!(
            rest.windows(7).any(|w| w == b"second."),
            "{isolation}: {}",
            String::from_utf8_lossy(&rest)
        );
        // The connection serves the next request.
        assert_eq!(client.get("/t/echo").status, 200, "{isolation}");
        host.shutdown();
    }
}

#[test]
fn a_wasi_http_request_body_past_the_limit_is_413() {
    let host = host(|c| c.limits.max_request_body_bytes = 1024);
    // A declared length past the limit: refused before the guest runs.
    let mut client = host.client();
    client.send(b"POST /t/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n");
    assert_eq!(client.read_response(false).status, 413);
    // A chunked body that grows past it while the guest reads, before it
    // answers: the host answers 413 instead of the guest.
    let chunk = format!("3e8\r\n{}\r\n", "y".repeat(1000));
    let mut request =
        b"POST /t/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        request.extend_from_slice(chunk.as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let mut client = host.client();
    client.send(&request);
    let response = client.read_response(false);
    assert_eq!(response.status, 413, "{}", response.text());
    // A guest that answered before the body went past the limit: its
    // answer stands, and its read of the rest fails (so it echoes at most
    // the limit).
    let mut client = host.client();
    client.send(
        &[
            b"POST /t/stream-echo".as_slice(),
            &request[b"POST /t/echo".len()..],
        ]
        .concat(),
    );
    let response = client.read_response(false);
    assert_eq!(response.status, 200);
    assert!(response.body.len() <= 1024, "{}", response.body.len());
    // Within the limit, all of it arrives.
    let mut client = host.client();
    client.send(b"POST /t/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(
        client.read_response(false).text(),
        "POST /t/echo x-test= body=abc"
    );
    assert_eq!(host.get("/t/echo").status, 200);
}

#[test]
fn a_wasi_http_request_body_that_stalls_is_408() {
    let host = host(|c| c.http.request_body_timeout_ms = 300);
    // 3 of the 10 bytes promised, then nothing: the guest's read fails
    // before it answers, so the host answers 408 and closes.
    let mut client = host.client();
    client.send(b"POST /t/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let response = client.read_response(false);
    assert_eq!(response.status, 408, "{}", response.text());
    assert!(crate::support::closed_by_host(&mut client));
    assert_eq!(host.get("/t/echo").status, 200);
}

#[test]
fn a_body_the_guest_does_not_read_does_not_stall_the_connection() {
    for isolation in [Isolation::Request, Isolation::Core] {
        let host = host(|c| c.isolation = isolation);
        for size in [10, 200_000] {
            let mut client = host.client();
            let mut request =
                format!("POST /t/ignore HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n")
                    .into_bytes();
            request.resize(request.len() + size, b'z');
            // The next request on the same connection, pipelined.
            request.extend(Client::get_request("/t/echo"));
            client.send(&request);
            let ignored = client.read_response(false);
            assert_eq!(ignored.text(), "ignored", "{isolation} {size}");
            // hyper skips what is left of the body, or closes the
            // connection when it cannot at once; either way the
            // connection is not left waiting.
            match client.next_response_or_close() {
                Some(next) => assert_eq!(next.status, 200, "{isolation} {size}"),
                None => assert!(
                    size > 10,
                    "{isolation}: a 10-byte body closed the connection"
                ),
            }
        }
        host.shutdown();
    }
}

#[test]
fn an_instance_that_keeps_the_request_body_is_dropped() {
    let host = host(|c| {
        c.isolation = Isolation::Core;
        c.ops = Some("127.0.0.1:0".parse().unwrap());
    });
    let kept = || {
        let routes = host.server().stats().routes();
        let route = routes.iter().find(|r| r.prefix == "/t").unwrap();
        let at = percore::stats::Discard::ALL
            .iter()
            .position(|&d| d == percore::stats::Discard::KeptResources)
            .unwrap();
        route.discarded[at]
    };
    let mut client = host.client();
    client.send(b"POST /t/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(client.read_response(false).status, 200);
    client.send(b"POST /t/keep-body HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(client.read_response(false).text(), "kept");
    crate::support::wait_until("the instance that kept the body is dropped", || kept() == 1);
    // Only the one that kept it.
    assert_eq!(client.get("/t/echo").status, 200);
    assert_eq!(kept(), 1);
    host.shutdown();
}

#[test]
fn trailers_pass_both_ways() {
    let host = host(|_| {});
    // The guest's trailers reach a client that accepts them (`TE:
    // trailers`), after a chunked body.
    let mut client = host.client();
    client.send(b"GET /t/trailers HTTP/1.1\r\nHost: t\r\nTE: trailers\r\n\r\n");
    let response = client.read_response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.text(), "abc");
    assert_eq!(
        response.trailers,
        vec![("x-checksum".to_string(), "42".to_string())]
    );
    // The request's trailers reach the guest.
    client.send(
        b"POST /t/request-trailers HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-sum: 7\r\n\r\n",
    );
    let response = client.read_response(false);
    assert_eq!(response.text(), "body=hello trailers=x-sum:7");
    client.send(b"POST /t/request-trailers HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(client.read_response(false).text(), "body=hi trailers=none");
}

/// A server on loopback that answers every request with `hello from
/// PORT` and counts the connections it accepted.
struct Upstream {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Upstream {
    fn start() -> Upstream {
        use std::io::{BufRead as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                let body = format!("hello from {port}");
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Upstream { port, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn outgoing_http_goes_only_to_the_allowed_origins() {
    let allowed = Upstream::start();
    let other = Upstream::start();
    let route = RouteConfig::parse_flag(&format!(
        "/out={},allow_outbound=http://127.0.0.1:{}",
        guests::TEST_WASI_HTTP,
        allowed.port
    ))
    .unwrap();
    let host = host(|c| c.routes.push(route));
    let fetch = |prefix: &str, url: &str| host.get(&format!("{prefix}/outgoing?url={url}")).text();
    let denied = "refused: ErrorCode::HttpRequestDenied";
    // By default a route sends nothing, not even to the allowed server.
    let url = format!("http://127.0.0.1:{}/x", allowed.port);
    assert_eq!(fetch("/t", &url), denied);
    assert_eq!(fetch("/t", "http://127.0.0.1:9/"), denied);
    assert_eq!(allowed.accepted(), 0);
    // With the option, the allowed origin is reached.
    assert_eq!(
        fetch("/out", &url),
        format!("sent: 200 hello from {}", allowed.port)
    );
    assert_eq!(allowed.accepted(), 1);
    // Another port, scheme or host of the same machine is not.
    let other_url = format!("http://127.0.0.1:{}/x", other.port);
    assert_eq!(fetch("/out", &other_url), denied);
    assert_eq!(
        fetch("/out", &format!("https://127.0.0.1:{}/x", allowed.port)),
        denied
    );
    assert_eq!(
        fetch("/out", &format!("http://localhost:{}/x", allowed.port)),
        denied
    );
    assert_eq!(other.accepted(), 0);
    assert_eq!(allowed.accepted(), 1);
    // The routes listing shows the option.
    let list = host.server().registry().list();
    let out = list.routes.iter().find(|r| r.prefix == "/out").unwrap();
    assert_eq!(
        out.allow_outbound.as_ref().map(ToString::to_string),
        Some(format!("http://127.0.0.1:{}", allowed.port))
    );
    let t = list.routes.iter().find(|r| r.prefix == "/t").unwrap();
    assert_eq!(t.allow_outbound, None);
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

/// Whether this run is CI's: `CI` set, to anything but `false` or `0`.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The first tool that `guests/NAME/build.sh` needs and this machine
/// lacks: python3 with pip for Python, node and npm for JavaScript.
pub(crate) fn missing_tool(name: &str) -> Option<&'static str> {
    let probes: &[(&'static str, &str, &[&str])] = match name {
        "python-wiki" => &[
            ("python3", "python3", &["--version"]),
            (
                "pip (python3 -m pip)",
                "python3",
                &["-m", "pip", "--version"],
            ),
        ],
        "js-wiki" => &[
            ("node", "node", &["--version"]),
            ("npm", "npm", &["--version"]),
        ],
        other => panic!("no tools known for {other}"),
    };
    probes.iter().find_map(|&(tool, program, args)| {
        let works = std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        (!works).then_some(tool)
    })
}

/// The handler `guests/NAME` of another language, built once per test
/// binary by its `build.sh` (which installs the language's tool from its
/// registry into the tools cache). `None`, after saying so on stderr,
/// when a tool the build needs is missing here and this is not CI; under
/// CI a missing tool fails the test, and so does a failed build anywhere.
fn script_guest(name: &'static str) -> Option<std::path::PathBuf> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Built = HashMap<&'static str, Result<std::path::PathBuf, String>>;
    static BUILT: OnceLock<Mutex<Built>> = OnceLock::new();
    if let Some(tool) = missing_tool(name) {
        assert!(
            !in_ci(),
            "the {name} handler cannot be built in CI: {tool} is missing"
        );
        eprintln!("SKIPPED the {name} handler test: {tool} is missing (CI installs it)");
        return None;
    }
    let mut built = BUILT.get_or_init(Mutex::default).lock().unwrap();
    let result = built.entry(name).or_insert_with(|| {
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
    });
    match result {
        Ok(wasm) => Some(wasm.clone()),
        Err(why) => panic!("building the {name} handler: {why}"),
    }
}

/// What a request answered, as compared: the status, the headers the Rust
/// wiki guest sets, and the body.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, Option<String>)>,
    body: Vec<u8>,
}

/// `METHOD path` on a new connection to `host`.
fn ask(host: &TestHost, method: &str, path: &str) -> Answer {
    let mut client = host.client();
    client.send(
        format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    );
    let response = client.read_response(method == "HEAD");
    let headers = [
        "content-type",
        "content-length",
        "x-page-id",
        "x-redirect-target",
    ]
    .into_iter()
    .map(|name| (name, response.header(name).map(str::to_owned)))
    .collect();
    Answer {
        status: response.status,
        headers,
        body: response.body,
    }
}

/// Asks `host` each request of `requests` as the demo's Rust side, at
/// `/`, and as the handler under test, at `/h`; the two must answer alike
/// byte for byte. Returns the Rust side's answers.
fn same_answers(host: &TestHost, who: &str, requests: &[(&str, &str)]) -> Vec<Answer> {
    requests
        .iter()
        .map(|&(method, path)| {
            let rust = ask(host, method, path);
            let handler = ask(host, method, &format!("/h{path}"));
            assert!(
                handler == rust,
                "{who}: {method} {path} answered\n{:?} {:?}\n{}\nwhere the Rust guest answered\n{:?} {:?}\n{}",
                handler.status,
                handler.headers,
                String::from_utf8_lossy(&handler.body),
                rust.status,
                rust.headers,
                String::from_utf8_lossy(&rust.body),
            );
            rust
        })
        .collect()
}

/// A host with the demo's routes (the TechEmpower guest on `/json`, the
/// Rust wiki guest on `/`) and the handler `wasm` on `/h`, over `index`.
fn beside_the_demo(wasm: &std::path::Path, isolation: Isolation, index: PathBuf) -> TestHost {
    let mut cfg = percore::cli::demo_config(
        "127.0.0.1:0".parse().unwrap(),
        Some(2),
        isolation,
        index,
        None,
    );
    cfg.max_instances = 64;
    cfg.routes.push(RouteConfig::file("/h", wasm));
    TestHost::start(cfg)
}

/// `/offsets` requests: prefixes with many, few and no titles, percent-
/// encoded and non-ASCII ones, invalid UTF-8 and escapes, case-insensitive
/// ones, pagination, the empty prefix, and good and bad limits.
const OFFSETS: &[&str] = &[
    "/offsets/Python",
    "/offsets/Py?limit=3",
    "/offsets/Zzzzzz-no-such-title",
    "/offsets/AT%26",
    "/offsets/%D0%9C%D0%BE%D1%81%D0%BA",
    "/offsets/%E6%9D%B1%E4%BA%AC",
    "/offsets/%D0%AF%D1%8F",
    "/offsets/at%26t?ci=1",
    "/offsets/PYTHON?ci=yes&limit=2",
    "/offsets/PYTHON?ci=0",
    "/offsets/?limit=7&after=Python+language",
    "/offsets/O?after=O%27Reilly&limit=5",
    "/offsets",
    "/offsets/",
    "/offsets/?limit=10000",
    "/offsets/a/b",
    "/offsets/%ff%F0%9F%98",
    "/offsets/%zz%4",
    "/offsets/A?limit=0",
    "/offsets/A?limit=10001",
    "/offsets/A?limit=x",
    "/offsets/A?limit=-1",
    "/offsets/A?limit=+5",
    "/offsets/A?limit=",
    "/offsets/A?limit",
    "/offsets/A?limit=99999999999999999999",
];

/// `/wiki` requests: pages found by normalised titles, percent-encoded and
/// non-ASCII ones, a redirect, and titles that are missing (some with
/// suggestions, some with characters JSON escapes).
const PAGES: &[&str] = &[
    "/wiki/AT%26T",
    "/wiki/python_(programming_language)",
    "/wiki/Python_language",
    "/wiki/%D0%9C%D0%BE%D1%81%D0%BA%D0%B2%D0%B0",
    "/wiki/Talk:%D0%9C%D0%BE%D1%81%D0%BA%D0%B2%D0%B0",
    "/wiki/O%27Reilly",
    "/wiki/Unix",
    "/wiki/Pytho",
    "/wiki/No_such_page_here",
    "/wiki/",
    "/wiki/_%20python%20_%C2%A0",
    "/wiki/a%22b%5Cc%09d%01%0C%7F%E2%80%A8%F0%9F%A6%80",
    "/wiki/%ff",
];

/// Serves `name` beside the demo's Rust side in `request` and `core`
/// isolation over the sample index; every request of `requests` must be
/// answered alike. `served_in`: the isolation its route reports when
/// `core` is asked (`request` for a handler whose instances answer one
/// request each).
fn answers_as_the_rust_guest(
    name: &'static str,
    served_in: Isolation,
    requests: &[(&str, &str)],
) -> Option<Vec<Answer>> {
    let wasm = script_guest(name)?;
    let mut answers = None;
    for (isolation, served) in [
        (Isolation::Request, Isolation::Request),
        (Isolation::Core, served_in),
    ] {
        let host = beside_the_demo(&wasm, isolation, crate::wiki::sample_index());
        answers = Some(same_answers(
            &host,
            &format!("{name} {isolation}"),
            requests,
        ));
        // The route is the handler's, in the other world.
        let list = host.server().registry().list();
        let route = list.routes.iter().find(|r| r.prefix == "/h").unwrap();
        assert_eq!(route.world, World::WasiHttp);
        assert_eq!(route.isolation, served, "{name} asked for {isolation}");
    }
    answers
}

#[test]
fn a_python_handler_answers_as_the_rust_wiki_guest() {
    let mut requests = vec![("GET", "/json"), ("POST", "/offsets/Py")];
    requests.extend(OFFSETS.iter().map(|&path| ("GET", path)));
    requests.extend(PAGES.iter().map(|&path| ("GET", path)));
    requests.push(("HEAD", "/wiki/AT%26T"));
    let Some(answers) = answers_as_the_rust_guest("python-wiki", Isolation::Core, &requests) else {
        return;
    };
    // The requests cover what they claim to: found pages, a redirect,
    // missing pages with suggestions, empty and full title lists, errors.
    let answer = |path: &str| &answers[requests.iter().position(|r| r.1 == path).unwrap()];
    let header = |path: &str, name: &str| {
        answer(path)
            .headers
            .iter()
            .find(|h| h.0 == name)
            .and_then(|h| h.1.clone())
    };
    assert_eq!(answer("/json").body, br#"{"message":"Hello, World!"}"#);
    assert_eq!(answer("/wiki/AT%26T").status, 200);
    assert_eq!(
        header("/wiki/Python_language", "x-redirect-target").as_deref(),
        Some("Python (programming language)")
    );
    assert_eq!(answer("/wiki/Pytho").status, 404);
    assert!(String::from_utf8_lossy(&answer("/wiki/Pytho").body).contains("Python ("));
    assert_eq!(answer("/offsets/Zzzzzz-no-such-title").body, b"[]");
    assert!(answer("/offsets/%D0%9C%D0%BE%D1%81%D0%BA").body.len() > 2);
    assert_eq!(answer("/offsets/A?limit=0").status, 400);
    assert_eq!(answer("/offsets/A?limit=+5").status, 200);
    assert_eq!(answers[1].status, 405);
}

#[test]
fn a_python_handler_streams_a_page_larger_than_one_read() {
    let Some(wasm) = script_guest("python-wiki") else {
        return;
    };
    // One page of 3 MiB: more than the 1 MiB one `read` returns, so the
    // handler must read it in pieces.
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("big.xml");
    let text: String = (0..3 << 20)
        .map(|i: u32| char::from(b'a' + (i % 26) as u8))
        .collect();
    std::fs::write(
        &dump,
        format!(
            "<mediawiki xmlns=\"http://www.mediawiki.org/xml/export-0.11/\" version=\"0.11\">\n  <page>\n    <title>Big</title>\n    <ns>0</ns>\n    <id>7</id>\n    <revision>\n      <id>1</id>\n      <text xml:space=\"preserve\">{text}</text>\n    </revision>\n  </page>\n</mediawiki>\n"
        ),
    )
    .unwrap();
    let index = dir.path().join("big.index");
    percore_index::build_index(&dump, &index, Default::default()).unwrap();
    let host = beside_the_demo(&wasm, Isolation::Request, index);
    let answers = same_answers(&host, "python-wiki", &[("GET", "/wiki/Big")]);
    assert_eq!(answers[0].status, 200);
    assert!(answers[0].body.len() > 3 << 20);
}

#[test]
fn a_restart_serves_the_python_handler_without_compiling_it_again() {
    // A Python component is about 20 MB and takes seconds to compile: the
    // state directory's compile cache holds its machine code, so a
    // restarted host loads it instead.
    let Some(wasm) = script_guest("python-wiki") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut cfg = config(vec![RouteConfig::file("/h", &wasm)], 1, Isolation::Request);
        cfg.index = Some(crate::wiki::sample_index());
        cfg.state = Some(dir.path().join("state"));
        TestHost::start(cfg)
    };
    let first = start();
    let stats = first.server().registry().list().cache.expect("a cache");
    assert_eq!(
        (stats.hits, stats.misses),
        (0, 1),
        "compiled once: {stats:?}"
    );
    assert_eq!(
        first.get("/h/json").text(),
        r#"{"message":"Hello, World!"}"#
    );
    first.shutdown();
    let second = start();
    let stats = second.server().registry().list().cache.expect("a cache");
    assert_eq!(
        (stats.hits, stats.misses),
        (1, 0),
        "loaded from the cache, not compiled: {stats:?}"
    );
    assert_eq!(
        second.get("/h/json").text(),
        r#"{"message":"Hello, World!"}"#
    );
    assert_eq!(second.get("/h/offsets/Python").status, 200);
    second.shutdown();
}

#[test]
fn a_javascript_handler_answers_as_the_rust_wiki_guest() {
    // StarlingMonkey, componentize-js's engine, answers one request per
    // instance (as `wasmtime serve` assumes of wasi:http 0.2 components): a
    // reused instance would never answer its second. The host knows such a
    // component by its `producers` section and serves it in `request`
    // isolation when `core` is asked; every request below is answered in
    // both.
    let mut requests = vec![("GET", "/json"), ("POST", "/offsets/Py")];
    requests.extend(OFFSETS.iter().map(|&path| ("GET", path)));
    let Some(answers) = answers_as_the_rust_guest("js-wiki", Isolation::Request, &requests) else {
        return;
    };
    assert_eq!(answers[0].body, br#"{"message":"Hello, World!"}"#);
    assert!(answers.iter().any(|a| a.body == b"[]"));
}

#[test]
fn percore_demo_serves_the_python_handler() {
    use std::io::BufRead as _;
    if script_guest("python-wiki").is_none() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut child = crate::support::ChildGuard(
        std::process::Command::new(env!("CARGO_BIN_EXE_percore-under-test"))
            .args([
                "demo",
                "--python",
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "1",
            ])
            .arg("--data")
            .arg(data.path())
            .env("PERCORE_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start percore demo"),
    );
    // The startup line names each route's component and world. Stderr is
    // drained on a thread so that the demo never blocks on a full pipe.
    let stderr = child.0.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let line = loop {
        // Building the handler and compiling it take a while on a slow
        // machine; a demo that stops early ends the wait at once.
        match lines_rx.recv_timeout(std::time::Duration::from_secs(300)) {
            Ok(line) if line.contains("percore serving") => break line,
            Ok(line) => seen.push(line),
            Err(e) => panic!(
                "percore demo --python did not start ({e}):\n{}",
                seen.join("\n")
            ),
        }
    };
    let python = data.path().join("python-wiki.wasm");
    // A line while the Python component compiles (its route, file and
    // size), and one when it is ready, with how long it took.
    let compiling = seen.iter().any(|l| {
        l.contains("compiling")
            && l.contains("route=\"/offsets\"")
            && l.contains("python-wiki.wasm")
            && l.contains("bytes=")
    });
    let ready = seen
        .iter()
        .any(|l| l.contains("ready: compiled in") && l.contains("python-wiki.wasm"));
    assert!(compiling && ready, "{}", seen.join("\n"));
    for prefix in ["/offsets", "/wiki"] {
        assert!(
            line.contains(&format!(
                "{prefix} -> {} (wasi:http/proxy@0.2",
                python.display()
            )),
            "{line}"
        );
    }
    let at = line.find("listen=").unwrap() + "listen=".len();
    let addr: std::net::SocketAddr = line[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let demo = crate::support::Client::connect(addr).get("/offsets/Python");
    assert_eq!(demo.status, 200);
    let titles: Vec<(String, u64, u64)> = serde_json::from_slice(&demo.body).unwrap();
    assert!(
        titles
            .iter()
            .any(|t| t.0 == "Python (programming language)")
    );
    // The search page is still the Rust guest's.
    let page = crate::support::Client::connect(addr).get("/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("/offsets/"));
}

#[test]
fn hostile_wasi_http_guests_lose_their_instance_and_nothing_else() {
    for isolation in [Isolation::Request, Isolation::Core] {
        let host = host(|c| {
            c.isolation = isolation;
            c.limits.deadline_ms = 300;
            c.limits.max_memory_bytes = 32 << 20;
        });
        for (path, status) in [
            // A loop without host calls: only the epoch interrupt stops it.
            ("/t/loop", 504),
            // Memory past the route's cap: the guest's allocation fails.
            ("/t/memory?mib=64", 500),
            ("/t/trap", 500),
        ] {
            let mut client = host.client();
            assert_eq!(client.get(path).status, status, "{isolation} {path}");
            // Neither the connection nor the route is lost.
            assert_eq!(
                client.get("/t/echo").status,
                200,
                "{isolation} after {path}"
            );
            assert_eq!(host.get("/te/json").status, 200, "{isolation} after {path}");
        }
        // Memory within the cap is served.
        assert_eq!(host.get("/t/memory?mib=8").text(), "held 8 MiB");
        // A body the guest did not finish (it promised 1000 bytes): the
        // connection closes before a complete response, so no client takes
        // the part for the whole. (hyper drops the connection with what it
        // had buffered: here the client gets no bytes at all.)
        let mut client = host.client();
        client.send(&Client::get_request("/t/unfinished"));
        let mut received = Vec::new();
        let _ = std::io::Read::read_to_end(client.stream(), &mut received);
        let text = String::from_utf8_lossy(&received);
        assert!(
            text.is_empty() || (text.starts_with("HTTP/1.1 200") && !text.ends_with("\r\n\r\n")),
            "{isolation}: {text}"
        );
        assert!(received.len() < 1000, "{isolation}: {text}");
        assert_eq!(host.get("/t/echo").status, 200, "{isolation}");
        host.shutdown();
    }
}

#[test]
fn a_reused_wasi_http_instance_holds_no_resources_from_earlier_requests() {
    // One worker, core isolation, and a resource table capped at 64
    // entries: an instance whose table kept anything per request (a
    // request, its fields, a body, a stream, a pollable) would fail long
    // before 10,000 requests.
    let host = host(|c| {
        c.isolation = Isolation::Core;
        c.limits.max_host_resources = 64;
    });
    let mut client = host.client();
    const REQUESTS: usize = 10_000;
    let batch: Vec<u8> = (0..100)
        .flat_map(|_| Client::get_request("/t/echo"))
        .collect();
    for _ in 0..REQUESTS / 100 {
        client.send(&batch);
        for _ in 0..100 {
            let response = client.read_response(false);
            assert_eq!(response.status, 200, "{}", response.text());
        }
    }
    // Served by a handful of instances (a wasi:http call gives its instance
    // back when its task ends, just after the response is sent, so a
    // pipelined request now and then finds it busy and gets another, which
    // is kept idle too): each served far more requests than its table could
    // hold entries if requests left any behind.
    let created = host.server().stats().instances_created();
    assert!(
        (1..=20).contains(&created),
        "{created} instances for {REQUESTS} requests"
    );
    // The instance that answers this one counts its own requests.
    let count: u64 = client.get("/t/count").text().parse().unwrap();
    assert!(count > 1, "{count}");
    host.shutdown();
}

#[test]
fn core_isolation_holds_a_few_instances_however_many_requests_wait() {
    // One worker, core isolation, 32 connections at once: a wasi:http call
    // holds its instance while its body is sent, so requests find it busy;
    // they wait for one of the route's few core instances instead of each
    // instantiating its own (what `request` isolation is for).
    let host = host(|c| c.isolation = Isolation::Core);
    std::thread::scope(|scope| {
        for _ in 0..32 {
            scope.spawn(|| {
                let mut client = host.client();
                let batch: Vec<u8> = (0..20)
                    .flat_map(|_| Client::get_request("/te/json"))
                    .collect();
                for _ in 0..5 {
                    client.send(&batch);
                    for _ in 0..20 {
                        assert_eq!(client.read_response(false).status, 200);
                    }
                }
            });
        }
    });
    let created = host.server().stats().instances_created();
    assert!(
        (1..=4).contains(&created),
        "{created} instances for 3,200 requests on one worker"
    );
    host.shutdown();
}
