//! The ops listener and what operators rely on: `/livez`, `/readyz` and
//! `/metrics` (counts that add up to the requests sent, under load),
//! draining (readiness 503, `Connection: close`), connections queued at
//! shutdown answered, SIGTERM under load losing no request, `traceparent`
//! kept or made and its trace id in the log, and the access log.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use percore::config::{Isolation, RouteConfig};

use crate::guests;
use crate::support::{Client, Response, TestHost, config, spawn_binary_logged, wait_until};

/// A host serving `hello` at `/hello` and `test-trap` at `/trap`, with the
/// ops listener on.
fn ops_host(workers: usize, tweak: impl FnOnce(&mut percore::config::Config)) -> TestHost {
    let mut config = config(
        vec![
            RouteConfig::file("/hello", guests::HELLO).with_isolation(Isolation::Core),
            RouteConfig::file("/trap", guests::TEST_TRAP),
        ],
        workers,
        Isolation::Request,
    );
    config.ops = Some("127.0.0.1:0".parse().unwrap());
    tweak(&mut config);
    TestHost::start(config)
}

fn ops_get(host: &TestHost, path: &str) -> Response {
    Client::connect(host.server().ops_addr().expect("ops listener on")).get(path)
}

/// The samples of a Prometheus text exposition: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').expect("sample has a value");
            (key.to_owned(), value.parse().expect("numeric sample"))
        })
        .collect()
}

fn metric(samples: &HashMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key}; have {:#?}", samples.keys()))
}

#[test]
fn livez_and_readyz_answer_and_other_paths_are_refused() {
    let host = ops_host(2, |_| {});
    let live = ops_get(&host, "/livez");
    assert_eq!((live.status, live.text().as_str()), (200, "ok\n"));
    let ready = ops_get(&host, "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
    let body: serde_json::Value = serde_json::from_slice(&ready.body).unwrap();
    assert_eq!(body["ready"], true);
    assert_eq!(body["workers_accepting"], "2/2");
    assert_eq!(body["routes"], 2);
    assert_eq!(ops_get(&host, "/hello/json").status, 404);
    let mut client = Client::connect(host.server().ops_addr().unwrap());
    client.send(b"POST /readyz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    let refused = client.read_response(false);
    assert_eq!(refused.status, 405);
    assert_eq!(refused.header("allow"), Some("GET, HEAD"));
    // The public listener does not serve the ops endpoints.
    assert_eq!(host.get("/livez").status, 404);
}

#[test]
fn metrics_add_up_to_the_requests_sent_under_load() {
    let host = ops_host(2, |_| {});
    let addr = host.addr;
    const CLIENTS: u64 = 4;
    const EACH: u64 = 300;
    let done = Arc::new(AtomicBool::new(false));
    // Scrape while the load runs: every scrape parses, and the request
    // count never goes back.
    let scraper = {
        let done = done.clone();
        let ops = host.server().ops_addr().unwrap();
        std::thread::spawn(move || {
            let mut last = 0.0;
            let mut scrapes = 0;
            while !done.load(Ordering::Relaxed) || scrapes == 0 {
                let text = Client::connect(ops).get("/metrics").text();
                let now = samples(&text)
                    .get("http_server_request_duration_seconds_count{http_route=\"/hello\",http_request_method=\"GET\",http_response_status_code=\"200\"}")
                    .copied()
                    .unwrap_or(0.0);
                assert!(now >= last, "the request count went back: {last} -> {now}");
                last = now;
                scrapes += 1;
            }
            scrapes
        })
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                for n in 0..EACH {
                    let path = match n % 10 {
                        0 => "/nowhere",
                        1 if i == 0 => "/trap/panic",
                        _ => "/hello/json",
                    };
                    let response = client.get(path);
                    if response.header("connection") == Some("close") {
                        client = Client::connect(addr);
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    assert!(scraper.join().unwrap() >= 1);

    let response = ops_get(&host, "/metrics");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = response.text();
    let s = samples(&text);
    let not_found = CLIENTS * EACH / 10;
    let panics = EACH / 10;
    let hello = CLIENTS * EACH - not_found - panics;
    let ok = "http_server_request_duration_seconds_count{http_route=\"/hello\",http_request_method=\"GET\",http_response_status_code=\"200\"}";
    assert_eq!(metric(&s, ok), hello as f64, "{text}");
    assert_eq!(
        metric(
            &s,
            "http_server_request_duration_seconds_bucket{http_route=\"/hello\",http_request_method=\"GET\",http_response_status_code=\"200\",le=\"+Inf\"}"
        ),
        hello as f64
    );
    assert_eq!(
        metric(
            &s,
            "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_response_status_code=\"404\"}"
        ),
        not_found as f64
    );
    assert_eq!(
        metric(
            &s,
            "http_server_request_duration_seconds_count{http_route=\"/trap\",http_request_method=\"GET\",http_response_status_code=\"500\"}"
        ),
        panics as f64
    );
    assert_eq!(
        metric(
            &s,
            "percore_guest_call_duration_seconds_count{http_route=\"/hello\"}"
        ),
        hello as f64
    );
    assert_eq!(
        metric(
            &s,
            "percore_instances_discarded_total{http_route=\"/trap\",reason=\"trap\"}"
        ),
        panics as f64
    );
    // Request isolation: one instance per call; core: one per worker at
    // most (none discarded).
    assert_eq!(
        metric(&s, "percore_instances_created_total{http_route=\"/trap\"}"),
        panics as f64
    );
    assert!(metric(&s, "percore_instances_created_total{http_route=\"/hello\"}") <= 2.0);
    assert_eq!(metric(&s, "http_server_active_requests"), 0.0);
    assert_eq!(metric(&s, "percore_routes"), 2.0);
    assert_eq!(metric(&s, "percore_workers_accepting"), 2.0);
    assert!(metric(&s, "percore_connections_accepted_total") >= CLIENTS as f64);
    assert!(text.contains("percore_build_info{version=\""));
    assert!(text.contains(&format!(
        "wasmtime_version=\"{}\"",
        percore::engine::WASMTIME_VERSION
    )));
    // No raw path becomes a label.
    assert!(!text.contains("/nowhere") && !text.contains("/trap/panic"));

    // OpenMetrics by content negotiation.
    let mut client = Client::connect(host.server().ops_addr().unwrap());
    client.send(
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
    );
    let open = client.read_response(false);
    assert!(
        open.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let open = open.text();
    assert!(open.ends_with("# EOF\n"));
    assert!(open.contains("# TYPE percore_deploys counter"));
    assert!(open.contains("\npercore_deploys_total 0\n"));
}

#[test]
fn draining_turns_readiness_off_and_closes_connections_after_their_response() {
    let host = ops_host(1, |_| {});
    let mut client = Client::connect(host.addr);
    let before = client.get("/hello/plaintext");
    assert_eq!(before.header("connection"), None);
    host.server().drain();
    let ready = ops_get(&host, "/readyz");
    assert_eq!(ready.status, 503);
    let body: serde_json::Value = serde_json::from_slice(&ready.body).unwrap();
    assert_eq!(body["ready"], false);
    assert!(
        body["reasons"][0].as_str().unwrap().starts_with("draining"),
        "{body}"
    );
    // Still serving, but the connection closes after this response.
    let during = client.get("/hello/plaintext");
    assert_eq!(during.status, 200);
    assert_eq!(during.header("connection"), Some("close"));
    assert!(crate::support::closed_by_host(&mut client));
    // New connections are still accepted while draining.
    assert_eq!(host.get("/hello/plaintext").status, 200);
    assert_eq!(ops_get(&host, "/livez").status, 200);
    let s = samples(&ops_get(&host, "/metrics").text());
    assert_eq!(metric(&s, "percore_draining"), 1.0);
}

#[test]
fn connections_queued_at_shutdown_are_answered() {
    let host = ops_host(1, |_| {});
    let addr = host.addr;
    // Connections whose request is sent, most still in the listener's
    // queue when the host stops: none may be reset.
    let mut clients: Vec<Client> = (0..64).map(|_| Client::connect(addr)).collect();
    for client in &mut clients {
        client.send(&Client::get_request("/hello/plaintext"));
    }
    let server = host.into_server();
    let stopper = std::thread::spawn(move || server.shutdown());
    for client in &mut clients {
        assert_eq!(client.read_response(false).status, 200);
    }
    stopper.join().unwrap();
}

#[test]
fn a_request_keeps_its_traceparent_or_gets_one_and_the_guest_sees_it() {
    let mut config = config(
        vec![RouteConfig::file("/", guests::TEST_FIELDS)],
        1,
        Isolation::Request,
    );
    config.ops = None;
    let host = TestHost::start(config);
    let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut client = Client::connect(host.addr);
    client.send(
        format!("GET /get?name=traceparent HTTP/1.1\r\nHost: t\r\ntraceparent: {sent}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(client.read_response(false).text(), sent);
    let made = client.get("/get?name=traceparent").text();
    let parts: Vec<&str> = made.split('-').collect();
    assert_eq!(parts.len(), 4, "{made}");
    assert_eq!((parts[0], parts[1].len(), parts[2].len()), ("00", 32, 16));
    let again = client.get("/get?name=traceparent").text();
    assert_ne!(made, again, "each request gets its own trace");
}

#[test]
fn a_failed_requests_log_line_carries_its_trace_id() {
    let route = format!("/={}", guests::TEST_TRAP);
    let spawned = spawn_binary_logged(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--route",
        &route,
    ]);
    let id = "0af7651916cd43dd8448eb211c80319c";
    let mut client = Client::connect(spawned.addr);
    client.send(
        format!(
            "GET /panic HTTP/1.1\r\nHost: t\r\ntraceparent: 00-{id}-b7ad6b7169203331-01\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(client.read_response(false).status, 500);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = spawned
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a log line about the failed request");
        if line.contains("handler failed") || line.contains("trapped") || line.contains("WARN") {
            assert!(line.contains(&format!("trace_id={id}")), "{line}");
            break;
        }
    }
}

#[test]
fn the_access_log_has_a_json_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let host = ops_host(2, |config| config.access_log = Some(log.clone()));
    let mut client = Client::connect(host.addr);
    for _ in 0..50 {
        assert_eq!(client.get("/hello/json").status, 200);
    }
    assert_eq!(client.get("/nowhere?secret=1").status, 404);
    host.shutdown();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect();
    assert_eq!(lines.len(), 51);
    assert_eq!(lines[0]["route"], "/hello");
    assert_eq!(lines[0]["path"], "/hello/json");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["trace_id"].as_str().unwrap().len(), 32);
    let last = &lines[50];
    assert_eq!(
        (last["status"].as_u64(), last["route"].is_null()),
        (Some(404), true)
    );
    assert!(!text.contains("secret"), "the query is not logged");
}

#[test]
fn sigterm_under_load_fails_no_request() {
    let route = format!("/={}", guests::HELLO);
    let spawned = spawn_binary_logged(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--isolation",
        "core",
        "--ops",
        "127.0.0.1:0",
        "--drain-delay-ms",
        "1500",
        "--route",
        &route,
    ]);
    let (addr, ops) = (spawned.addr, spawned.ops_addr());
    wait_until("the host is ready", || {
        Client::connect(ops).get("/readyz").status == 200
    });
    // A load balancer's view: the host is in rotation until its readiness
    // check fails; clients send only to hosts in rotation.
    let in_rotation = Arc::new(AtomicBool::new(true));
    let checker = {
        let in_rotation = in_rotation.clone();
        std::thread::spawn(move || {
            while Client::connect(ops).get("/readyz").status == 200 {
                std::thread::sleep(Duration::from_millis(20));
            }
            in_rotation.store(false, Ordering::SeqCst);
        })
    };
    let (ok, closed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Half the clients keep their connection alive (and honour
    // `Connection: close`), half open one per request.
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (in_rotation, ok, closed) = (in_rotation.clone(), ok.clone(), closed.clone());
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                while in_rotation.load(Ordering::SeqCst) {
                    let response = client.get("/plaintext");
                    assert_eq!(response.status, 200);
                    ok.fetch_add(1, Ordering::Relaxed);
                    let close = response.header("connection") == Some("close");
                    if close {
                        closed.fetch_add(1, Ordering::Relaxed);
                    }
                    if (close || i % 2 == 1) && in_rotation.load(Ordering::SeqCst) {
                        client = Client::connect(addr);
                    }
                }
            })
        })
        .collect();
    wait_until("the load is running", || ok.load(Ordering::Relaxed) > 500);
    // SIGTERM, and wait for the exit on a thread while the load runs on.
    let mut child = spawned.child;
    let exit = std::thread::spawn(move || child.terminate());
    checker.join().unwrap();
    let failed = clients
        .into_iter()
        .map(|client| client.join())
        .filter(Result::is_err)
        .count();
    assert_eq!(failed, 0, "clients saw failed requests");
    assert!(
        closed.load(Ordering::Relaxed) > 0,
        "no response closed its connection"
    );
    let exit = exit.join().unwrap();
    assert_eq!(exit.code(), Some(0), "exit status {exit:?}");
}
