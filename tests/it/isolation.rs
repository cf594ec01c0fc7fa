//! Guests cannot hurt the host or each other: a trap, a panic or a malformed
//! response gives 500 and the next request succeeds; a global counter shows
//! what survives between requests in each isolation mode; a request's
//! header fields reach the guest on demand and do not outlive its call; a
//! guest that tries to reach files, environment variables or sockets gets
//! nothing.

use percore::config::Isolation;

use crate::guests;
use crate::support::{Client, Response, TestHost};

#[test]
fn failures_give_500_and_the_next_request_succeeds() {
    for isolation in [Isolation::Request, Isolation::Core] {
        let host = TestHost::guest(guests::TEST_TRAP, 1, isolation);
        let mut client = host.client();
        for failure in ["/panic", "/unreachable", "/bad-status", "/bad-header"] {
            let response = client.get(failure);
            assert_eq!(response.status, 500, "{failure} in {isolation} isolation");
            assert!(!response.body.is_empty());
            assert_eq!(response.header("server"), Some("percore"));
            let next = client.get("/fine");
            assert_eq!(next.status, 200, "after {failure} in {isolation} isolation");
            assert_eq!(next.text(), "ok");
        }
    }
}

#[test]
fn request_isolation_gives_every_request_a_fresh_instance() {
    let host = TestHost::guest(guests::TEST_COUNTER, 2, Isolation::Request);
    let mut client = host.client();
    for _ in 0..20 {
        assert_eq!(client.get("/").text(), "1");
    }
    for _ in 0..10 {
        assert_eq!(host.get("/").text(), "1");
    }
}

#[test]
fn core_isolation_reuses_one_instance_per_worker() {
    // One worker: the counter counts exactly the requests it served.
    let host = TestHost::guest(guests::TEST_COUNTER, 1, Isolation::Core);
    let mut client = host.client();
    for expected in 1..=20 {
        assert_eq!(client.get("/").text(), expected.to_string());
    }
    drop(client);
    host.shutdown();

    // Two workers: no counter can exceed the requests served in all, and the
    // counters of both workers together account for every request.
    let host = TestHost::guest(guests::TEST_COUNTER, 2, Isolation::Core);
    let mut seen = Vec::new();
    for _ in 0..40 {
        let n: u64 = host.get("/").text().parse().unwrap();
        seen.push(n);
    }
    let max = *seen.iter().max().unwrap();
    assert!(max <= 40, "a counter reached {max} after 40 requests");
    assert!(max > 1, "core isolation never reused an instance: {seen:?}");
    // Each counter value is reached once per worker at most: values seen
    // twice mean two instances, never more than the two workers.
    for n in 1..=max {
        let times = seen.iter().filter(|&&v| v == n).count();
        assert!(
            times <= 2,
            "counter value {n} seen {times} times with 2 workers"
        );
    }
}

#[test]
fn a_core_instance_is_replaced_after_max_requests_per_instance() {
    let mut cfg = crate::support::config(
        vec![percore::config::RouteConfig::file(
            "/",
            guests::TEST_COUNTER,
        )],
        1,
        Isolation::Core,
    );
    cfg.limits.max_requests_per_instance = 3;
    let host = TestHost::start(cfg);
    let mut client = host.client();
    let counts: Vec<String> = (0..7).map(|_| client.get("/").text()).collect();
    assert_eq!(counts, ["1", "2", "3", "1", "2", "3", "1"]);
}

#[test]
fn a_trap_in_core_isolation_discards_the_instance() {
    let host = TestHost::guest(guests::TEST_COUNTER, 1, Isolation::Core);
    let mut client = host.client();
    assert_eq!(client.get("/").text(), "1");
    assert_eq!(client.get("/").text(), "2");
    drop(client);
    host.shutdown();

    let host = TestHost::guest(guests::TEST_TRAP, 1, Isolation::Core);
    assert_eq!(host.get("/panic").status, 500);
    assert_eq!(host.get("/ok").status, 200);
}

/// Sends `GET path` with extra header lines and reads the response.
fn get_with(client: &mut Client, path: &str, headers: &[u8]) -> Response {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n").into_bytes();
    request.extend_from_slice(headers);
    request.extend_from_slice(b"\r\n");
    client.send(&request);
    client.read_response(false)
}

#[test]
fn header_fields_reach_the_guest_on_demand() {
    for isolation in [Isolation::Request, Isolation::Core] {
        let host = TestHost::guest(guests::TEST_FIELDS, 1, isolation);
        let mut client = host.client();
        // With a traceparent of its own, the host adds none (see `ops`).
        let headers: &[u8] =
            b"X-Token: abc\r\nAccept: text/html\r\nAccept: */*\r\nX-Bin: a\xffb\r\n\
            traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n";
        // Names match regardless of case.
        let token = get_with(&mut client, "/get?name=X-TOKEN", headers);
        assert_eq!(token.text(), "abc", "{isolation} isolation");
        let missing = get_with(&mut client, "/get?name=x-missing", headers);
        assert_eq!(missing.text(), "(none)");
        let all = get_with(&mut client, "/all?name=accept", headers);
        assert_eq!(all.text(), "text/html\n*/*");
        // A value that is not UTF-8 arrives with U+FFFD for the bad byte.
        let binary = get_with(&mut client, "/get?name=x-bin", headers);
        assert_eq!(binary.text(), "a\u{fffd}b");
        let entries = get_with(&mut client, "/entries", headers);
        assert_eq!(
            entries.text(),
            "host: test\nx-token: abc\naccept: text/html\naccept: */*\nx-bin: a\u{fffd}b\n\
             traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n\
             x-percore-route: /\nx-percore-path-info: /entries\n"
        );
    }
}

#[test]
fn a_guest_that_keeps_a_requests_fields_loses_its_instance() {
    let host = TestHost::guest(guests::TEST_FIELDS, 1, Isolation::Core);
    let mut client = host.client();
    assert_eq!(client.get("/").text(), "calls 1, kept 0");
    assert_eq!(client.get("/").text(), "calls 2, kept 0");
    // The guest stores the fields in a global and answers normally...
    let keep = client.get("/keep");
    assert_eq!((keep.status, keep.text().as_str()), (200, "kept"));
    // ...but its instance is gone: the next request meets a fresh one.
    assert_eq!(client.get("/").text(), "calls 1, kept 0");
    assert_eq!(client.get("/").text(), "calls 2, kept 0");
}

#[test]
fn guests_have_no_ambient_authority() {
    // SAFETY of the test's claim: the host process has this variable; the
    // guest must not see it.
    let host = TestHost::guest(guests::TEST_ESCAPE, 1, Isolation::Request);
    let response = host.get("/");
    assert_eq!(response.status, 200);
    let report = response.text();
    assert!(
        report.lines().count() >= 10,
        "escape report incomplete:\n{report}"
    );
    for line in report.lines() {
        assert!(
            !line.contains("GOT"),
            "guest escaped its sandbox: {line}\n{report}"
        );
    }
    assert!(
        std::env::var("PATH").is_ok(),
        "the test process itself has PATH"
    );
}
