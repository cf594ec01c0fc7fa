//! Hostile guests and hostile clients: every misbehaviour gets its
//! documented status and the next request on the same worker succeeds; a
//! looping handler does not stop its core; client limits hold.

use std::time::{Duration, Instant};

use percore::config::{Config, Isolation, RouteConfig};

use crate::guests;
use crate::support::{Client, TestHost, closed_by_host, config};

/// A one-worker host with `guest` at `/` and `tweak` applied to its config.
fn host_with(guest: &str, tweak: impl FnOnce(&mut Config)) -> TestHost {
    let mut cfg = config(vec![RouteConfig::file("/", guest)], 1, Isolation::Core);
    tweak(&mut cfg);
    TestHost::start(cfg)
}

#[test]
fn each_misbehaviour_gets_its_status_and_the_worker_recovers() {
    // (guest, path, config, expected status)
    type Tweak = fn(&mut Config);
    let cases: [(&str, &str, Tweak, u16); 7] = [
        (
            guests::TEST_LOOP,
            "/spin",
            |c| c.limits.deadline_ms = 300,
            504,
        ),
        (
            guests::TEST_SLOW,
            "/?ms=5000",
            |c| c.limits.deadline_ms = 300,
            504,
        ),
        (
            guests::TEST_MEMORY,
            "/grow",
            |c| c.limits.max_memory_bytes = 16 << 20,
            500,
        ),
        (guests::TEST_STACK, "/deep", |_| {}, 500),
        (guests::TEST_HUGE, "/?mb=20", |_| {}, 500),
        (guests::TEST_TRAP, "/panic", |_| {}, 500),
        (guests::TEST_TRAP, "/unreachable", |_| {}, 500),
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
            let ok = if name == guests::TEST_SLOW {
                "/?ms=1"
            } else {
                "/ok"
            };
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
            RouteConfig::file("/loop", guests::TEST_LOOP),
            RouteConfig::file("/json", guests::HELLO),
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
    let host = host_with(guests::HELLO, |_| {});
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

#[test]
fn slow_and_idle_clients_are_disconnected() {
    let host = host_with(guests::HELLO, |c| c.http.header_read_timeout_ms = 500);
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
    let host = host_with(guests::HELLO, |c| c.http.max_connections = 2);
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
