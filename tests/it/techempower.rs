//! The TechEmpower guest through the real host, in both of its builds:
//! `hello` (percore's own world) and `wasi-hello` (a standard
//! `wasi:http/proxy` component). Every verifier rule for `/json` and
//! `/plaintext`, pipelining, 404, 400, HEAD and POST, and 413, each check
//! run against both builds.

use std::time::Duration;

use percore::config::{Isolation, RouteConfig};

use crate::guests;
use crate::support::{Client, TestHost, config};

/// The TechEmpower guest's builds, by name: percore's world and
/// `wasi:http/proxy`.
const BUILDS: [(&str, &str); 2] = [("hello", guests::HELLO), ("wasi-hello", guests::WASI_HELLO)];

fn hello_host(wasm: &str, isolation: Isolation) -> TestHost {
    TestHost::start(config(
        vec![
            RouteConfig::file("/json", wasm),
            RouteConfig::file("/plaintext", wasm),
        ],
        2,
        isolation,
    ))
}

#[test]
fn json_and_plaintext_pass_the_verifier_rules() {
    for (build, wasm) in BUILDS {
        for isolation in [Isolation::Request, Isolation::Core] {
            let host = hello_host(wasm, isolation);
            let mut client = host.client();
            let case = format!("{build} {isolation}");

            let json = client.get("/json");
            assert_eq!(json.status, 200, "{case}");
            assert_eq!(
                json.header("content-type"),
                Some("application/json"),
                "{case}"
            );
            assert_eq!(json.header("server"), Some("percore"), "{case}");
            assert_eq!(json.header("content-length"), Some("27"), "{case}");
            assert!(
                json.header("date").is_some_and(|d| d.ends_with(" GMT")),
                "{case}"
            );
            let value: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
            assert_eq!(
                value,
                serde_json::json!({"message": "Hello, World!"}),
                "{case}"
            );
            assert_eq!(json.text(), r#"{"message":"Hello, World!"}"#, "{case}");

            let plain = client.get("/plaintext");
            assert_eq!(plain.status, 200, "{case}");
            assert_eq!(plain.header("content-type"), Some("text/plain"), "{case}");
            assert_eq!(plain.header("server"), Some("percore"), "{case}");
            assert_eq!(plain.header("content-length"), Some("13"), "{case}");
            assert!(plain.header("date").is_some(), "{case}");
            assert_eq!(plain.text(), "Hello, World!", "{case}");
            // One `Server` and one `Date`: the host's, never the guest's too.
            for name in ["server", "date"] {
                let count = plain.headers.iter().filter(|(n, _)| n == name).count();
                assert_eq!(count, 1, "{case}: {name}");
            }
        }
    }
}

#[test]
fn date_header_changes_over_time() {
    for (build, wasm) in BUILDS {
        let host = hello_host(wasm, Isolation::Core);
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
        assert_ne!(first.header("date"), later.header("date"), "{build}");
    }
}

#[test]
fn sixteen_pipelined_requests_are_answered_in_order() {
    for (build, wasm) in BUILDS {
        for isolation in [Isolation::Request, Isolation::Core] {
            let host = hello_host(wasm, isolation);
            let mut client = host.client();
            let paths: Vec<&str> = (0..16)
                .map(|i| if i % 3 == 0 { "/json" } else { "/plaintext" })
                .collect();
            let batch: Vec<u8> = paths.iter().flat_map(|p| Client::get_request(p)).collect();
            client.send(&batch);
            for path in paths {
                let response = client.read_response(false);
                assert_eq!(response.status, 200, "{build} {isolation}");
                let expected = if path == "/json" {
                    r#"{"message":"Hello, World!"}"#
                } else {
                    "Hello, World!"
                };
                assert_eq!(
                    response.text(),
                    expected,
                    "{build} {isolation}: response for {path} out of order"
                );
            }
        }
    }
}

#[test]
fn unknown_path_is_404() {
    for (build, wasm) in BUILDS {
        let host = hello_host(wasm, Isolation::Request);
        let response = host.get("/nothing-here");
        assert_eq!(response.status, 404, "{build}");
        assert_eq!(response.header("server"), Some("percore"), "{build}");
        // Prefixes match whole segments only.
        assert_eq!(host.get("/jsonx").status, 404, "{build}");
        // The guest's own 404, under a route that exists.
        let own = host.get("/json/nope");
        assert_eq!(own.status, 404, "{build}");
        assert_eq!(own.header("server"), Some("percore"), "{build}");
    }
}

#[test]
fn garbage_is_400_and_the_host_keeps_serving() {
    for (build, wasm) in BUILDS {
        let host = hello_host(wasm, Isolation::Core);
        let mut client = host.client();
        client.send(b"\x16\x03\x01garbage that is not HTTP\r\n\r\n");
        let response = client.read_response(false);
        assert_eq!(response.status, 400, "{build}");
        assert_eq!(host.get("/json").status, 200, "{build}");
    }
}

#[test]
fn head_and_post_reach_the_guest() {
    for (build, wasm) in BUILDS {
        let host = hello_host(wasm, Isolation::Request);
        let mut client = host.client();
        client.send(b"HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
        let head = client.read_response(true);
        assert_eq!(head.status, 200, "{build}");
        assert_eq!(head.header("content-length"), Some("13"), "{build}");
        client.send(b"POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(client.read_response(false).status, 200, "{build}");
        // The connection is still in step after both.
        assert_eq!(client.get("/plaintext").text(), "Hello, World!", "{build}");
    }
}

#[test]
fn oversized_request_body_is_413() {
    for (build, wasm) in BUILDS {
        let mut cfg = config(vec![RouteConfig::file("/", wasm)], 1, Isolation::Core);
        cfg.limits.max_request_body_bytes = 10;
        let host = TestHost::start(cfg);
        let mut client = host.client();
        client.send(b"POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world");
        assert_eq!(client.read_response(false).status, 413, "{build}");
        assert_eq!(host.get("/json").status, 200, "{build}");
    }
}
