//! Hostile guests and hostile clients: every misbehaviour gets its
//! documented status and the next request on the same worker succeeds; a
//! looping handler does not stop its core; client limits hold; every test
//! guest has a test; and a chaos run keeps healthy traffic whole.

use std::io::Read;
use std::time::{Duration, Instant};

use percore::config::{Config, Isolation, RouteConfig};

use crate::support::{Client, TestHost, config, guest};

/// A one-worker host with `guest` at `/` and `tweak` applied to its config.
fn host_with(name: &str, tweak: impl FnOnce(&mut Config)) -> TestHost {
    let mut cfg = config(
        vec![RouteConfig::file("/", guest(name))],
        1,
        Isolation::Core,
    );
    tweak(&mut cfg);
    TestHost::start(cfg)
}

#[test]
fn each_misbehaviour_gets_its_status_and_the_worker_recovers() {
    // (guest, path, config, expected status)
    type Tweak = fn(&mut Config);
    let cases: [(&str, &str, Tweak, u16); 7] = [
        ("test-loop", "/spin", |c| c.limits.deadline_ms = 300, 504),
        (
            "test-slow",
            "/?ms=5000",
            |c| c.limits.deadline_ms = 300,
            504,
        ),
        (
            "test-memory",
            "/grow",
            |c| c.limits.max_memory_bytes = 16 << 20,
            500,
        ),
        ("test-stack", "/deep", |_| {}, 500),
        ("test-huge", "/?mb=20", |_| {}, 500),
        ("test-trap", "/panic", |_| {}, 500),
        ("test-trap", "/unreachable", |_| {}, 500),
    ];
    for (name, path, tweak, status) in cases {
        for isolation in [Isolation::Request, Isolation::Core] {
            let host = host_with(name, |c| {
                c.isolation = isolation;
                tweak(c);
            });
            let mut client = host.client();
            let response = client.get(path);
            assert_eq!(
                response.status, status,
                "{name}{path} in {isolation} isolation"
            );
            assert_eq!(response.header("server"), Some("percore"));
            // The same connection, the same (only) worker: it recovered.
            let ok = if name == "test-slow" { "/?ms=1" } else { "/ok" };
            let next = client.get(ok);
            assert_eq!(
                next.status, 200,
                "after {name}{path} in {isolation} isolation"
            );
            assert_eq!(host.get(ok).status, 200);
        }
    }
}

#[test]
fn a_looping_handler_does_not_stop_its_core() {
    let mut cfg = config(
        vec![
            RouteConfig::file("/loop", guest("test-loop")),
            RouteConfig::file("/json", guest("hello")),
        ],
        1,
        Isolation::Request,
    );
    // A deadline far beyond the test, so that only the yielding at epoch
    // ticks can let the other requests through; shutdown does not wait for it.
    cfg.limits.deadline_ms = 120_000;
    cfg.http.shutdown_grace_ms = 100;
    let host = TestHost::start(cfg);
    let mut looping = host.client();
    looping.send(&Client::get_request("/loop"));
    // While the loop runs on the only worker, other connections are served,
    // and the looping one has not been answered yet.
    for _ in 0..20 {
        assert_eq!(host.get("/json").status, 200);
    }
    assert!(!looping.has_data(), "the looping request was answered");
    host.shutdown();
}

#[test]
fn too_many_or_too_large_headers_get_431() {
    let host = host_with("hello", |_| {});
    let mut many = String::from("GET /json HTTP/1.1\r\nHost: t\r\n");
    for i in 0..150 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let mut client = host.client();
    client.send(many.as_bytes());
    assert_eq!(client.read_response(false).status, 431);

    let big = format!(
        "GET /json HTTP/1.1\r\nHost: t\r\nx-big: {}\r\n\r\n",
        "a".repeat(40 << 10)
    );
    let mut client = host.client();
    client.send(big.as_bytes());
    assert_eq!(client.read_response(false).status, 431);
    assert_eq!(host.get("/json").status, 200);
}

/// Reads until EOF, bounded by the client's read timeout; true if the host
/// closed the connection.
fn closed_by_host(client: &mut Client) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match client.stream().read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn slow_and_idle_clients_are_disconnected() {
    let host = host_with("hello", |c| c.http.header_read_timeout_ms = 500);
    // Slowloris: half a request head, then nothing.
    let mut slow = host.client();
    slow.send(b"GET /json HTTP/1.1\r\nHost: t\r\nX-Slow: ");
    let started = Instant::now();
    assert!(
        closed_by_host(&mut slow),
        "a slow client kept its connection"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    // Idle keep-alive: one request, then silence.
    let mut idle = host.client();
    assert_eq!(idle.get("/json").status, 200);
    assert!(
        closed_by_host(&mut idle),
        "an idle connection was kept open"
    );
    assert_eq!(host.get("/json").status, 200);
}

#[test]
fn connections_beyond_the_limit_are_refused_cleanly() {
    let host = host_with("hello", |c| c.http.max_connections = 2);
    let mut a = host.client();
    let mut b = host.client();
    assert_eq!(a.get("/json").status, 200);
    assert_eq!(b.get("/json").status, 200);
    let mut c = host.client();
    c.send(&Client::get_request("/json"));
    let refused = c.read_response(false);
    assert_eq!(refused.status, 503);
    drop(a);
    // Once a connection closes, a new one is served again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = host.client();
        d.send(&Client::get_request("/json"));
        if d.read_response(false).status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed connection slot was never reused"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(b.get("/json").status, 200);
}

#[test]
fn every_guest_has_a_test() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/it");
    let mut sources = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    for (name, _) in percore::guests::ALL {
        assert!(
            sources.contains(&format!("guest(\"{name}\")"))
                || sources.contains(&format!("(\"{name}\",")),
            "guest {name} has no integration test: add one in tests/it/"
        );
    }
}
