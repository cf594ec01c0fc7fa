//! The TechEmpower guest through the real host: every verifier rule for
//! `/json` and `/plaintext`, pipelining, 404 and 400.

use std::time::Duration;

use percore::config::{Isolation, RouteConfig};

use crate::guests;
use crate::support::{Client, TestHost, config};

fn hello_host(isolation: Isolation) -> TestHost {
    TestHost::start(config(
        vec![
            RouteConfig::file("/json", guests::HELLO),
            RouteConfig::file("/plaintext", guests::HELLO),
        ],
        2,
        isolation,
    ))
}

#[test]
fn json_and_plaintext_pass_the_verifier_rules() {
    for isolation in [Isolation::Request, Isolation::Core] {
        let host = hello_host(isolation);
        let mut client = host.client();

        let json = client.get("/json");
        assert_eq!(json.status, 200);
        assert_eq!(json.header("content-type"), Some("application/json"));
        assert_eq!(json.header("server"), Some("percore"));
        assert_eq!(json.header("content-length"), Some("27"));
        assert!(json.header("date").is_some_and(|d| d.ends_with(" GMT")));
        let value: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
        assert_eq!(value, serde_json::json!({"message": "Hello, World!"}));
        assert_eq!(json.text(), r#"{"message":"Hello, World!"}"#);

        let plain = client.get("/plaintext");
        assert_eq!(plain.status, 200);
        assert_eq!(plain.header("content-type"), Some("text/plain"));
        assert_eq!(plain.header("server"), Some("percore"));
        assert_eq!(plain.header("content-length"), Some("13"));
        assert!(plain.header("date").is_some());
        assert_eq!(plain.text(), "Hello, World!");
    }
}

#[test]
fn date_header_changes_over_time() {
    let host = hello_host(Isolation::Core);
    let first = host.get("/plaintext");
    let mut later = first.clone();
    // The date has one-second resolution; allow a few refreshes.
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(200));
        later = host.get("/plaintext");
        if later.header("date") != first.header("date") {
            break;
        }
    }
    assert_ne!(first.header("date"), later.header("date"));
}

#[test]
fn sixteen_pipelined_requests_are_answered_in_order() {
    for isolation in [Isolation::Request, Isolation::Core] {
        let host = hello_host(isolation);
        let mut client = host.client();
        let paths: Vec<&str> = (0..16)
            .map(|i| if i % 3 == 0 { "/json" } else { "/plaintext" })
            .collect();
        let batch: Vec<u8> = paths.iter().flat_map(|p| Client::get_request(p)).collect();
        client.send(&batch);
        for path in paths {
            let response = client.read_response(false);
            assert_eq!(response.status, 200);
            let expected = if path == "/json" {
                r#"{"message":"Hello, World!"}"#
            } else {
                "Hello, World!"
            };
            assert_eq!(
                response.text(),
                expected,
                "response for {path} out of order"
            );
        }
    }
}

#[test]
fn unknown_path_is_404() {
    let host = hello_host(Isolation::Request);
    let response = host.get("/nothing-here");
    assert_eq!(response.status, 404);
    assert_eq!(response.header("server"), Some("percore"));
    // Prefixes match whole segments only.
    assert_eq!(host.get("/jsonx").status, 404);
    // The guest's own 404, under a route that exists.
    assert_eq!(host.get("/json/nope").status, 404);
}

#[test]
fn garbage_is_400_and_the_host_keeps_serving() {
    let host = hello_host(Isolation::Core);
    let mut client = host.client();
    client.send(b"\x16\x03\x01garbage that is not HTTP\r\n\r\n");
    let response = client.read_response(false);
    assert_eq!(response.status, 400);
    assert_eq!(host.get("/json").status, 200);
}

#[test]
fn head_and_post_reach_the_guest() {
    let host = hello_host(Isolation::Request);
    let mut client = host.client();
    client.send(b"HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = client.read_response(true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("13"));
    client.send(b"POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(client.read_response(false).status, 200);
}

#[test]
fn oversized_request_body_is_413() {
    let mut cfg = config(
        vec![RouteConfig::file("/", guests::HELLO)],
        1,
        Isolation::Core,
    );
    cfg.limits.max_request_body_bytes = 10;
    let host = TestHost::start(cfg);
    let mut client = host.client();
    client.send(b"POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!(client.read_response(false).status, 413);
    assert_eq!(host.get("/json").status, 200);
}
