//! Guest output in the host's log: what a handler of either world prints
//! to stdout and stderr shows with its route and the request's trace id,
//! an unfinished line at the end of the call, a panic's message next to
//! the trap (the client still gets only `500 handler failed`), control
//! characters escaped; a flood is truncated per request and rate-limited
//! per route, counted in `/metrics`, and the host goes on serving.

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::guests;
use crate::support::{Client, Response, Spawned, spawn_binary_logged};

/// A host (the real binary, its log read line by line) serving `test-log`
/// at `/log`, `/rate` and `/big`, `test-trap` at `/trap` and
/// `test-wasi-http` at `/w`, on one worker, with the ops listener.
fn logging_host() -> Spawned {
    let routes = [
        format!("/log={}", guests::TEST_LOG),
        format!("/rate={}", guests::TEST_LOG),
        format!("/big={}", guests::TEST_LOG),
        format!("/trap={}", guests::TEST_TRAP),
        format!("/w={}", guests::TEST_WASI_HTTP),
    ];
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--workers", "1"];
    args.extend(["--ops", "127.0.0.1:0"]);
    for route in &routes {
        args.extend(["--route", route.as_str()]);
    }
    spawn_binary_logged(&args)
}

/// GET `path` with a `traceparent` of trace `id`.
fn traced_get(client: &mut Client, path: &str, id: &str) -> Response {
    client.send(
        format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\ntraceparent: 00-{id}-b7ad6b7169203331-01\r\n\r\n"
        )
        .as_bytes(),
    );
    client.read_response(false)
}

/// Reads log lines until one contains `needle`, returning it and the lines
/// before it; fails after 30 s without one.
fn read_until(lines: &Receiver<String>, needle: &str) -> (String, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut before = Vec::new();
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| {
                panic!("no log line with {needle:?}; the lines before: {before:#?}")
            });
        if line.contains(needle) {
            return (line, before);
        }
        before.push(line);
    }
}

/// Asserts that `line` is guest output of `route` in trace `id`.
fn assert_guest_line(line: &str, route: &str, id: &str) {
    assert!(line.contains("percore::guest"), "{line}");
    assert!(line.contains(&format!("route={route} ")), "{line}");
    assert!(line.contains(&format!("trace_id={id}")), "{line}");
}

#[test]
fn guest_output_reaches_the_log_with_its_route_and_trace_id() {
    let host = logging_host();
    let mut client = Client::connect(host.addr);

    let id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = traced_get(&mut client, "/log/print?id=p1", id);
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "printed")
    );
    let (stdout, _) = read_until(&host.lines, "test-log stdout p1");
    assert_guest_line(&stdout, "/log", id);
    assert!(stdout.contains("stream=stdout"), "{stdout}");
    let (stderr, _) = read_until(&host.lines, "test-log stderr p1");
    assert_guest_line(&stderr, "/log", id);
    assert!(stderr.contains("stream=stderr"), "{stderr}");
    // No line end: logged when the call ends.
    let (unfinished, _) = read_until(&host.lines, "test-log unfinished p1");
    assert_guest_line(&unfinished, "/log", id);

    // A panic: its message in the log, in the request's trace, before the
    // trap; the client gets no guest text.
    let id = "0af7651916cd43dd8448eb211c80319c";
    let response = traced_get(&mut client, "/trap/panic", id);
    assert_eq!(response.status, 500);
    assert_eq!(response.text(), "handler failed\n");
    let (panic, _) = read_until(&host.lines, "test-trap was asked to panic");
    assert_guest_line(&panic, "/trap", id);
    let (trap, _) = read_until(&host.lines, "handler for route /trap failed");
    assert!(trap.contains(&format!("trace_id={id}")), "{trap}");

    // A wasi:http guest's stdout.
    let id = "11111111111111111111111111111111";
    let response = traced_get(&mut client, "/w/print", id);
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "printed")
    );
    let (line, _) = read_until(&host.lines, "test-wasi-http stdout /w/print");
    assert_guest_line(&line, "/w", id);

    // Terminal escapes and a carriage return stay inside one line.
    let id = "22222222222222222222222222222222";
    assert_eq!(traced_get(&mut client, "/log/escape?id=e1", id).status, 200);
    let (line, _) = read_until(&host.lines, "forged line");
    assert_guest_line(&line, "/log", id);
    assert!(line.contains("\\u{1b}[2Je1\\u{d}forged line"), "{line}");
    assert!(!line.contains('\u{1b}'), "{line}");
}

#[test]
fn a_flood_of_guest_output_is_truncated_and_rate_limited_and_the_host_goes_on() {
    let host = logging_host();
    let mut client = Client::connect(host.addr);

    // 1000 lines of 200 bytes: the request's 16 KiB hold 81 of them.
    let id = "33333333333333333333333333333333";
    let response = traced_get(&mut client, "/big/flood?id=t&lines=1000&len=200", id);
    assert_eq!(response.status, 200);
    let (truncated, before) = read_until(&host.lines, "guest output truncated");
    assert!(truncated.contains("route=/big "), "{truncated}");
    assert!(truncated.contains(&format!("trace_id={id}")), "{truncated}");
    let logged = before.iter().filter(|l| l.contains("flood t ")).count();
    assert!(
        (1..=16384 / 201).contains(&logged),
        "{logged} lines of 200 bytes logged before the truncation"
    );
    // Nothing more of that request, up to the next request's line.
    assert_eq!(
        traced_get(&mut client, "/big/print?id=after", id).status,
        200
    );
    let (_, between) = read_until(&host.lines, "test-log stdout after");
    assert!(
        !between.iter().any(|l| l.contains("flood t ")),
        "{between:#?}"
    );

    // 1000 short lines on another route: past its burst of 200, dropped.
    let id = "44444444444444444444444444444444";
    let response = traced_get(&mut client, "/rate/flood?id=r&lines=1000&len=20", id);
    assert_eq!(response.status, 200);
    // The drop count is logged once the route may log again: print until
    // it shows (the bucket refills at 100 lines a second). Each print is
    // followed by one on `/log`, whose own bucket is full: its line marks
    // the end of what the `/rate` request logged.
    let mut logged = 0;
    let mut report = None;
    for attempt in 0..3000 {
        assert_eq!(
            traced_get(&mut client, &format!("/rate/print?id=n{attempt}"), id).status,
            200
        );
        assert_eq!(client.get(&format!("/log/print?id=m{attempt}")).status, 200);
        let (_, before) = read_until(&host.lines, &format!("test-log unfinished m{attempt}"));
        logged += before.iter().filter(|l| l.contains("flood r ")).count();
        if let Some(line) = before
            .iter()
            .find(|l| l.contains("lines of guest output were dropped"))
        {
            report = Some(line.clone());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = report.expect("the dropped lines were reported");
    assert!(report.contains("route=/rate "), "{report}");
    assert!(logged < 1000, "{logged} of 1000 flood lines were logged");

    // Counted in /metrics.
    let metrics = Client::connect(host.ops_addr()).get("/metrics").text();
    let sample = |route: &str, reason: &str| -> f64 {
        let key = format!(
            "percore_guest_log_lines_dropped_total{{http_route=\"{route}\",reason=\"{reason}\"}} "
        );
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&key))
            .unwrap_or_else(|| panic!("no {key} in {metrics}"));
        line[key.len()..].parse().unwrap()
    };
    assert!(
        sample("/big", "truncated") >= (1000 - 81) as f64,
        "{metrics}"
    );
    assert!(sample("/rate", "rate_limit") >= 1.0, "{metrics}");

    // And the host goes on.
    assert_eq!(client.get("/log/quiet").text(), "quiet");
}
