//! Where a handler is mounted: `x-percore-route` (the matched prefix) and
//! `x-percore-path-info` (the path below it) in the request's header
//! fields, for both worlds, under two different prefixes each; a client's
//! own values of them are never what the handler sees.

use percore::config::{Isolation, RouteConfig};

use crate::guests;
use crate::support::{Client, TestHost, config};

fn host() -> TestHost {
    TestHost::start(config(
        vec![
            RouteConfig::file("/a", guests::TEST_FIELDS),
            RouteConfig::file("/b/c", guests::TEST_FIELDS),
            RouteConfig::file("/w1", guests::TEST_WASI_HTTP),
            RouteConfig::file("/w2/x", guests::TEST_WASI_HTTP),
        ],
        1,
        Isolation::Core,
    ))
}

/// GET `path` with the client's own (spoofed) mount fields.
fn spoofed_get(client: &mut Client, path: &str) -> String {
    client.send(
        format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nx-percore-route: /evil\r\nX-Percore-Path-Info: /evil\r\nx-percore-route: /evil2\r\n\r\n"
        )
        .as_bytes(),
    );
    let response = client.read_response(false);
    assert_eq!(response.status, 200, "{path}");
    response.text()
}

#[test]
fn a_percore_handler_reads_where_it_is_mounted() {
    let host = host();
    let mut client = host.client();
    for (path, route, info) in [
        ("/a/get", "/a", "/get"),
        ("/a/deep/er/get?x=1", "/a", "/deep/er/get"),
        ("/b/c/get", "/b/c", "/get"),
        ("/b/c/d%20e/get", "/b/c", "/d%20e/get"),
    ] {
        let sep = if path.contains('?') { '&' } else { '?' };
        let get =
            |client: &mut Client, name: &str| client.get(&format!("{path}{sep}name={name}")).text();
        assert_eq!(get(&mut client, "x-percore-route"), route, "{path}");
        // Names match regardless of case.
        assert_eq!(get(&mut client, "X-Percore-Path-Info"), info, "{path}");
        // The client's values are replaced, not added to.
        let spoofed = spoofed_get(&mut client, &format!("{path}{sep}name=x-percore-route"));
        assert_eq!(spoofed, route, "{path}");
    }
    let all = spoofed_get(&mut client, "/b/c/all?name=x-percore-route");
    assert_eq!(all, "/b/c");
    let entries = spoofed_get(&mut client, "/a/x/entries");
    assert!(entries.contains("x-percore-route: /a\n"), "{entries}");
    assert!(
        entries.contains("x-percore-path-info: /x/entries\n"),
        "{entries}"
    );
    assert!(!entries.contains("/evil"), "{entries}");
}

#[test]
fn a_wasi_http_handler_reads_where_it_is_mounted() {
    let host = host();
    let mut client = host.client();
    for (path, expected) in [
        ("/w1/mount", "route=/w1 path-info=/mount"),
        ("/w1/deep/mount?q=1", "route=/w1 path-info=/deep/mount"),
        ("/w2/x/mount", "route=/w2/x path-info=/mount"),
        ("/w2/x/y/mount", "route=/w2/x path-info=/y/mount"),
    ] {
        assert_eq!(client.get(path).text(), expected, "{path}");
        assert_eq!(spoofed_get(&mut client, path), expected, "{path}");
    }
}
