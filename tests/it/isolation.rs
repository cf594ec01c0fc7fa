//! Guests cannot hurt the host or each other: a trap, a panic or a malformed
//! response gives 500 and the next request succeeds; a global counter shows
//! what survives between requests in each isolation mode; a guest that tries
//! to reach files, environment variables or sockets gets nothing.

use percore::config::Isolation;

use crate::support::TestHost;

#[test]
fn failures_give_500_and_the_next_request_succeeds() {
    for isolation in [Isolation::Request, Isolation::Core] {
        let host = TestHost::guest("test-trap", 1, isolation);
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
    let host = TestHost::guest("test-counter", 2, Isolation::Request);
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
    let host = TestHost::guest("test-counter", 1, Isolation::Core);
    let mut client = host.client();
    for expected in 1..=20 {
        assert_eq!(client.get("/").text(), expected.to_string());
    }
    drop(client);
    host.shutdown();

    // Two workers: no counter can exceed the requests served in all, and the
    // counters of both workers together account for every request.
    let host = TestHost::guest("test-counter", 2, Isolation::Core);
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
fn a_trap_in_core_isolation_discards_the_instance() {
    let host = TestHost::guest("test-counter", 1, Isolation::Core);
    let mut client = host.client();
    assert_eq!(client.get("/").text(), "1");
    assert_eq!(client.get("/").text(), "2");
    drop(client);
    host.shutdown();

    let host = TestHost::guest("test-trap", 1, Isolation::Core);
    assert_eq!(host.get("/panic").status, 500);
    assert_eq!(host.get("/ok").status, 200);
}

#[test]
fn guests_have_no_ambient_authority() {
    // SAFETY of the test's claim: the host process has this variable; the
    // guest must not see it.
    let host = TestHost::guest("test-escape", 1, Isolation::Request);
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
