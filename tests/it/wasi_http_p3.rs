//! wasi:http 0.3 (p3) components (`wasi:http/service`, exporting
//! `wasi:http/handler@0.3.0`) on percore routes, beside a percore-world
//! route and a wasi:http 0.2 one: answers in both isolations, instance
//! reuse in `core` isolation, the request body read from its stream, a
//! body streamed while the guest writes it, the deadline (504), a trap
//! (500), an error code, a body past the route's limit, the world each
//! route reports, and the second engine: built only for p3 components,
//! with concurrency support, while the engine of the other routes keeps it
//! off.

use percore::config::{Config, Isolation, RouteConfig};
use percore::engine::World;

use crate::guests;
use crate::support::{Client, TestHost, config};

fn host(tweak: impl FnOnce(&mut Config)) -> TestHost {
    let mut cfg = config(
        vec![
            RouteConfig::file("/p3", guests::TEST_WASI_HTTP_P3),
            RouteConfig::file("/p2", guests::TEST_WASI_HTTP),
            RouteConfig::file("/percore", guests::HELLO),
        ],
        1,
        Isolation::Request,
    );
    tweak(&mut cfg);
    TestHost::start(cfg)
}

#[test]
fn a_p3_component_serves_beside_a_percore_and_a_p2_one() {
    for isolation in [Isolation::Request, Isolation::Core] {
        let host = host(|c| c.isolation = isolation);
        let mut client = host.client();
        // Pipelined, alternating the three kinds.
        let mut pipelined = Vec::new();
        for path in ["/p3/", "/percore/json", "/p2/echo", "/p3/hello"] {
            pipelined.extend(Client::get_request(path));
        }
        client.send(&pipelined);
        let hello = client.read_response(false);
        assert_eq!(hello.status, 200, "{isolation}");
        assert_eq!(hello.text(), "Hello, World!");
        assert_eq!(hello.header("content-type"), Some("text/plain"));
        assert_eq!(hello.header("server"), Some("percore"));
        assert!(hello.header("date").is_some());
        let json = client.read_response(false);
        assert_eq!(json.text(), r#"{"message":"Hello, World!"}"#);
        let p2 = client.read_response(false);
        assert!(p2.text().starts_with("GET /p2/echo"), "{}", p2.text());
        assert_eq!(client.read_response(false).text(), "Hello, World!");
        // One instance per request in `request` isolation; in `core`
        // isolation an instance counts every request it serves. (A p3
        // instance is given back by its call's task once its body was
        // sent: the pipelined `/p3/hello` may find it not yet back, and
        // get a second instance, so the first count is 2 or more.)
        let counts: Vec<String> = (0..3).map(|_| client.get("/p3/count").text()).collect();
        match isolation {
            Isolation::Request => assert_eq!(counts, ["1", "1", "1"]),
            Isolation::Core => {
                let first: u64 = counts[0].parse().unwrap();
                assert!(first >= 2, "{counts:?}");
                assert_eq!(counts, [first, first + 1, first + 2].map(|n| n.to_string()));
            }
        }
    }
}

#[test]
fn a_core_p3_instance_is_replaced_after_max_reuse() {
    let host = host(|c| {
        c.isolation = Isolation::Core;
        c.limits.max_requests_per_instance = 2;
    });
    let counts: Vec<String> = (0..5).map(|_| host.get("/p3/count").text()).collect();
    assert_eq!(counts, ["1", "2", "1", "2", "1"]);
}

#[test]
fn a_head_request_gives_its_core_p3_instance_back() {
    // hyper sends a `HEAD` response's head only and drops its body unread;
    // the guest writes it all the same (and traps if the host stops
    // reading it): the instance must be reused as after a `GET`.
    // A `HEAD`'s call ends a little after its head reached the client, so
    // the next request may find the instance still busy and get another:
    // counted here as instances created (a few at most, against one per
    // request when each `HEAD` cost its instance) and as instances
    // discarded (none; route metrics need the ops listener).
    let host = host(|c| {
        c.isolation = Isolation::Core;
        c.ops = Some("127.0.0.1:0".parse().unwrap());
    });
    let mut client = host.client();
    for _ in 0..5 {
        client.send(b"HEAD /p3/count HTTP/1.1\r\nHost: test\r\n\r\n");
        let response = client.read_response(true);
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "");
    }
    assert_eq!(client.get("/p3/count").status, 200);
    let created = host.server().stats().instances_created();
    assert!(created <= 3, "{created} instances for 6 requests");
    let routes = host.server().stats().routes();
    let route = routes.iter().find(|r| r.prefix == "/p3").unwrap();
    assert_eq!(
        route.discarded.iter().sum::<u64>(),
        0,
        "{:?}",
        route.discarded
    );
}

#[test]
fn a_p3_guest_reads_the_request_body_and_streams_its_own() {
    for isolation in [Isolation::Request, Isolation::Core] {
        let host = host(|c| c.isolation = isolation);
        let mut client = host.client();
        client.send(b"POST /p3/echo?q=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
        let echo = client.read_response(false);
        assert_eq!(echo.status, 200, "{isolation}");
        assert_eq!(echo.text(), "POST /p3/echo body=hello");
        // 4 MiB, written by a guest task after `handle` returned: sent
        // while the guest writes it, through the store's event loop.
        let stream = client.get("/p3/stream?kib=4096");
        assert_eq!(stream.status, 200);
        assert_eq!(stream.body.len(), 4 << 20);
        assert!(stream.body.iter().all(|&b| b == b'x'));
        assert_eq!(client.get("/p3/echo").text(), "GET /p3/echo body=");
    }
}

#[test]
fn a_p3_guest_is_held_to_its_routes_limits() {
    for isolation in [Isolation::Request, Isolation::Core] {
        let host = host(|c| {
            c.isolation = isolation;
            c.limits.deadline_ms = 300;
            c.limits.max_response_bytes = 1 << 20;
            c.limits.max_memory_bytes = 32 << 20;
        });
        for (path, status) in [
            // A loop without host calls: only the epoch interrupt stops it.
            ("/p3/loop", 504),
            ("/p3/trap", 500),
            ("/p3/error", 500),
            // Memory past the route's cap: the guest's allocation fails.
            ("/p3/memory?mib=64", 500),
        ] {
            let mut client = host.client();
            assert_eq!(client.get(path).status, status, "{path} ({isolation})");
            // The host, and the other routes, keep serving.
            assert_eq!(client.get("/p3/").text(), "Hello, World!", "after {path}");
            assert_eq!(client.get("/percore/json").status, 200, "after {path}");
            assert_eq!(client.get("/p2/echo").status, 200, "after {path}");
        }
        assert_eq!(host.get("/p3/memory?mib=8").text(), "held 8 MiB");
        // A guest that traps while it writes its body (the head is out):
        // the chunked body gets no last chunk, so no client takes the
        // part for the whole.
        let mut client = host.client();
        client.send(&Client::get_request("/p3/unfinished"));
        let mut received = Vec::new();
        let _ = std::io::Read::read_to_end(client.stream(), &mut received);
        let text = String::from_utf8_lossy(&received);
        assert!(
            text.is_empty() || (text.starts_with("HTTP/1.1 200") && !text.ends_with("0\r\n\r\n")),
            "{isolation}: {text}"
        );
        // A body past max_response_bytes is cut off: the head went out,
        // the connection closes before the body is complete.
        let mut client = host.client();
        client.send(&Client::get_request("/p3/stream?kib=4096"));
        let mut received = Vec::new();
        let _ = std::io::Read::read_to_end(client.stream(), &mut received);
        assert!(
            received.len() < (4 << 20) && received.starts_with(b"HTTP/1.1 200"),
            "{} bytes",
            received.len()
        );
        assert_eq!(host.get("/p3/").text(), "Hello, World!");
    }
}

#[test]
fn a_p3_route_reports_its_world() {
    let host = host(|_| {});
    let list = host.server().registry().list();
    let world = |prefix: &str| {
        list.routes
            .iter()
            .find(|r| r.prefix == prefix)
            .map(|r| r.world)
    };
    assert_eq!(world("/p3"), Some(World::WasiHttpP3));
    assert_eq!(world("/p2"), Some(World::WasiHttp));
    assert_eq!(world("/percore"), Some(World::Percore));
    let p3 = list.routes.iter().find(|r| r.prefix == "/p3").unwrap();
    let json = serde_json::to_value(p3).unwrap();
    assert_eq!(json["world"], "wasi:http/service@0.3", "{json}");
}

/// The engine of percore-world and p2 routes has concurrency support off
/// (wasmtime is built with component-model-async, which would turn it on
/// and make every call dearer); the engine of p3 routes is built only when
/// a p3 component is compiled, with it on.
#[test]
fn the_p3_engine_exists_only_for_p3_routes() {
    let without = TestHost::start(config(
        vec![
            RouteConfig::file("/p2", guests::TEST_WASI_HTTP),
            RouteConfig::file("/percore", guests::HELLO),
        ],
        1,
        Isolation::Core,
    ));
    let engine = without.server().engine();
    assert!(!engine.engine().get_concurrency_support());
    assert!(engine.p3_engine().is_none());
    assert_eq!(without.get("/percore/json").status, 200);
    assert!(engine.p3_engine().is_none());

    let with = host(|_| {});
    let engine = with.server().engine();
    assert!(!engine.engine().get_concurrency_support());
    let p3 = engine.p3_engine().expect("a p3 route builds the p3 engine");
    assert!(p3.get_concurrency_support());
    assert_eq!(with.get("/p3/").status, 200);
}

/// A p3 component deployed through the admin API, compiled in the
/// compiler process for the p3 engine, which the host builds then; after
/// a restart from the state directory it serves again.
#[test]
fn a_p3_component_deployed_at_runtime_builds_the_p3_engine() {
    let dir = crate::deploy::temp_dir("p3");
    let host = TestHost::start_with_compiler(crate::deploy::admin_config(dir.path()));
    let admin = crate::deploy::admin(&host);
    let options = percore::RouteOptions::default();
    let hello = std::fs::read(guests::HELLO).unwrap();
    admin.deploy("/percore", &hello, &options).unwrap();
    assert!(host.server().engine().p3_engine().is_none());
    let p3 = std::fs::read(guests::TEST_WASI_HTTP_P3).unwrap();
    let info = admin.deploy("/p3", &p3, &options).unwrap();
    assert_eq!(info.world, World::WasiHttpP3);
    assert!(host.server().engine().p3_engine().is_some());
    assert_eq!(host.get("/p3/").text(), "Hello, World!");
    assert_eq!(host.get("/percore/json").status, 200);
    host.shutdown();

    let host = TestHost::start_with_compiler(crate::deploy::admin_config(dir.path()));
    assert_eq!(host.get("/p3/").text(), "Hello, World!");
    assert!(!host.server().engine().engine().get_concurrency_support());
}

#[test]
fn a_reused_p3_instance_holds_no_resources_from_earlier_requests() {
    // One worker, core isolation, and a resource table capped at 64
    // entries: an instance whose table kept anything per request (a
    // request, its fields, a body stream, a future) would fail long
    // before 10,000 requests.
    let host = host(|c| {
        c.isolation = Isolation::Core;
        c.limits.max_host_resources = 64;
    });
    let mut client = host.client();
    const REQUESTS: usize = 10_000;
    let batch: Vec<u8> = (0..100)
        .flat_map(|_| Client::get_request("/p3/echo"))
        .collect();
    for _ in 0..REQUESTS / 100 {
        client.send(&batch);
        for _ in 0..100 {
            let response = client.read_response(false);
            assert_eq!(response.status, 200, "{}", response.text());
        }
    }
    // Served by a handful of instances (one is given back once its body
    // was read and its tasks exited, so a pipelined request now and then
    // finds it busy and gets another, kept idle too).
    let created = host.server().stats().instances_created();
    assert!(
        (1..=20).contains(&created),
        "{created} instances for {REQUESTS} requests"
    );
    let count: u64 = client.get("/p3/count").text().parse().unwrap();
    assert!(count > 1, "{count}");
}
