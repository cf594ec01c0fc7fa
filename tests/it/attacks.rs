//! Security, round 2: what an attack on the host found, one test per
//! finding, each failing without its fix. Hostile clients (stalled bodies,
//! clients that stop reading, bytes that are not HTTP, CONNECT and
//! `OPTIONS *`), hostile handlers (too many response headers, 1xx
//! statuses, a route that holds every instance, memory and host-resource
//! bombs), and hostile or mistaken admin input (compile bombs, compiles
//! that block other changes, corrupt route tables, strange prefixes).

use std::io::Read as _;
use std::path::Path;

use percore::admin::AdminToken;
use percore::admin::client::AdminClient;
use percore::config::{Config, Isolation, RouteConfig, RouteOptions};

use crate::guests;
use crate::support::{Client, TestHost, closed_by_host, config, refused, wait_until};

/// A one-worker host with `guest` at `/` and `tweak` applied.
fn host(guest: &str, tweak: impl FnOnce(&mut Config)) -> TestHost {
    let mut cfg = config(vec![RouteConfig::file("/", guest)], 1, Isolation::Request);
    tweak(&mut cfg);
    TestHost::start(cfg)
}

#[test]
fn a_stalled_request_body_gets_408_and_the_connection_is_closed() {
    let host = host(guests::HELLO, |c| c.http.request_body_timeout_ms = 300);
    let mut client = host.client();
    // One byte short of what it declares, then nothing.
    client.send(b"POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
    client.send(&[b'x'; 999]);
    let response = client.read_response(false);
    assert_eq!(response.status, 408);
    assert_eq!(response.header("server"), Some("percore"));
    assert_eq!(response.header("connection"), Some("close"));
    assert!(closed_by_host(&mut client), "the connection stayed open");
    wait_until("the connection is gone", || {
        host.server().stats().open_connections() == 0
    });
    assert_eq!(host.get("/json").status, 200);
}

#[test]
fn a_client_that_stops_reading_is_disconnected_and_its_response_freed() {
    let host = host(guests::TEST_HUGE, |c| {
        c.http.response_write_timeout_ms = 300;
        c.limits.max_response_bytes = 48 << 20;
    });
    // A client with a small receive buffer (set before it connects, so the
    // kernel cannot grow it), asking for far more than the sockets' buffers
    // hold, then reading nothing.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&host.addr.into()).unwrap();
    let mut client = Client::from_stream(socket.into());
    client.send(&Client::get_request("/?mb=40"));
    wait_until("the host serves the connection", || {
        host.server().stats().open_connections() == 1
    });
    wait_until("the host closes the stalled connection", || {
        host.server().stats().open_connections() == 0
    });
    // What the client can still read is cut short.
    let mut received = Vec::new();
    let _ = client.stream().read_to_end(&mut received);
    assert!(
        received.len() < 40 << 20,
        "the whole response arrived ({} bytes)",
        received.len()
    );
    assert_eq!(host.get("/ok").status, 200);
}

#[test]
fn bytes_that_are_not_http_get_exactly_one_response() {
    let host = host(guests::HELLO, |_| {});
    for garbage in [
        &b"\x16\x03\x01garbage that is not HTTP\r\n\r\n"[..],
        b"GET /json HTTP/1.1\r\nBad Header\r\n\r\n",
    ] {
        let mut client = host.client();
        client.send(garbage);
        assert_eq!(client.read_response(false).status, 400);
        let mut rest = Vec::new();
        let _ = client.stream().read_to_end(&mut rest);
        assert!(
            rest.is_empty(),
            "a second response followed: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    assert_eq!(host.get("/json").status, 200);
}

#[test]
fn connect_and_options_star_are_answered_by_the_host() {
    let host = host(guests::HELLO, |_| {});
    let mut client = host.client();
    client.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    let response = client.read_response(false);
    assert_eq!(response.status, 501);
    assert_eq!(response.header("server"), Some("percore"));

    let mut client = host.client();
    client.send(b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
    let response = client.read_response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("0"));
    assert!(
        response.header("allow").is_some_and(|a| a.contains("GET")),
        "{:?}",
        response.headers
    );
    // The same connection goes on.
    assert_eq!(client.get("/json").status, 200);
}

#[test]
fn a_handler_cannot_send_too_many_or_too_large_headers_or_an_interim_status() {
    let host = host(guests::TEST_HUGE, |_| {});
    let mut client = host.client();
    for (path, why) in [
        // Past hyper's header map: it used to panic the request task.
        ("/?headers=40000", "40,000 headers"),
        ("/?headers=101", "past max_response_headers"),
        // 800 headers of 60 KB: a 48 MB head past the 16 MiB limit.
        ("/?headers=90&value_bytes=200000", "18 MB of headers"),
        ("/?status=101", "101 Switching Protocols"),
        ("/?status=100", "100 Continue"),
        ("/?status=199", "an interim status"),
        ("/?status=600", "a status past 599"),
    ] {
        let response = client.get(path);
        assert_eq!(response.status, 500, "{why}");
        assert_eq!(response.header("server"), Some("percore"), "{why}");
        // Pipelined requests behind it are not lost.
        assert_eq!(client.get("/ok").status, 200, "after {why}");
    }
    // Its content-type and 99 more: 100, the default limit.
    assert_eq!(client.get("/?headers=99").status, 200);
    assert_eq!(client.get("/?status=299").status, 299);
}

#[test]
fn a_route_that_holds_its_instances_cannot_starve_another() {
    let mut cfg = config(
        vec![
            RouteConfig::file("/slow", guests::TEST_SLOW),
            RouteConfig::file("/json", guests::HELLO),
        ],
        1,
        Isolation::Request,
    );
    cfg.max_instances = 16;
    // The sleepers are still in their guests when the test ends.
    cfg.http.shutdown_grace_ms = 100;
    let host = TestHost::start(cfg);
    // Far more sleeping requests than there are instances.
    let mut sleepers: Vec<Client> = (0..40)
        .map(|_| {
            let mut client = host.client();
            client.send(&Client::get_request("/slow?ms=20000"));
            client
        })
        .collect();
    wait_until(
        "the slow route holds its share and is refused the rest",
        || {
            let mut answered = 0;
            for sleeper in &mut sleepers {
                answered += usize::from(sleeper.has_data());
            }
            answered >= 40 - 12
        },
    );
    for sleeper in &mut sleepers {
        if sleeper.has_data() {
            assert_eq!(sleeper.read_response(false).status, 503);
        }
    }
    // The neighbour route is served throughout.
    for _ in 0..20 {
        assert_eq!(host.get("/json").status, 200);
    }
    let mut neighbours: Vec<Client> = (0..4).map(|_| host.client()).collect();
    for client in &mut neighbours {
        assert_eq!(client.get("/json").status, 200);
    }
    drop(sleepers);
}

#[test]
fn guest_memory_is_bounded_as_a_whole() {
    let host = host(guests::TEST_MEMORY, |c| {
        c.max_guest_memory_bytes = Some(48 << 20);
        c.limits.max_memory_bytes = 32 << 20;
    });
    // Three guests that each hold 20 MiB for a while: only two fit.
    let mut holders: Vec<Client> = (0..3)
        .map(|_| {
            let mut client = host.client();
            client.send(&Client::get_request("/hold?mb=20&ms=3000"));
            client
        })
        .collect();
    let statuses: Vec<u16> = holders
        .iter_mut()
        .map(|c| c.read_response(false).status)
        .collect();
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let refused = statuses.iter().filter(|&&s| s == 500 || s == 503).count();
    assert_eq!((ok, refused), (2, 1), "{statuses:?}");
    // The budget is given back.
    assert_eq!(host.get("/hold?mb=20&ms=1").status, 200);
}

#[test]
fn an_instance_cannot_pile_up_host_resources() {
    let host = host(guests::TEST_MEMORY, |c| c.limits.max_host_resources = 1000);
    assert_eq!(host.get("/pollables?n=500").status, 200);
    let response = host.get("/pollables?n=99000");
    assert_eq!(response.status, 500);
    assert_eq!(host.get("/ok").status, 200);
}

const TOKEN: &str = "attack-token-0123456789abcdef";

/// A host with the admin API and a state directory under `dir`, that
/// compiles uploads in child processes of the real binary.
fn admin_host(dir: &Path, tweak: impl FnOnce(&mut Config)) -> (TestHost, AdminClient) {
    let token_file = dir.join("admin.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut cfg = Config {
        admin: Some("127.0.0.1:0".parse().unwrap()),
        admin_token_file: Some(token_file),
        state: Some(dir.join("state")),
        ..config(Vec::new(), 1, Isolation::Request)
    };
    tweak(&mut cfg);
    let host = TestHost::start_with_compiler(cfg);
    let addr = host.server().admin_addr().unwrap();
    let admin = AdminClient::at(addr, Some(AdminToken::new(TOKEN).unwrap()));
    (host, admin)
}

/// A valid component whose one function nests `depth` blocks: cheap to
/// send, expensive to compile (Cranelift's time grows with the square of
/// the depth).
fn compile_bomb(depth: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn section(id: u8, content: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(content.len(), out);
        out.extend_from_slice(content);
    }
    let mut body = vec![0u8]; // no locals
    for _ in 0..depth {
        body.extend_from_slice(&[0x02, 0x40]); // block
    }
    body.resize(body.len() + depth + 1, 0x0b); // end, ..., end of function
    let mut code = vec![1u8];
    leb(body.len(), &mut code);
    code.extend_from_slice(&body);
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut module); // type: [] -> []
    section(3, &[1, 0], &mut module); // one function of that type
    section(10, &code, &mut module);
    let mut component = b"\0asm\x0d\0\x01\0".to_vec();
    section(1, &module, &mut component); // the core module
    section(2, &[1, 0, 0, 0], &mut component); // instantiated
    component
}

#[test]
fn compile_bombs_are_refused_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    for (memory, timeout_ms, what) in [
        (32 << 20, 120_000, "bytes of memory"),
        (2 << 30, 1_500, "ms"),
    ] {
        let (host, admin) = admin_host(dir.path(), |c| {
            c.compile_memory_bytes = memory;
            c.compile_timeout_ms = timeout_ms;
        });
        let (status, message) =
            refused(admin.deploy("/bomb", &compile_bomb(100_000), &RouteOptions::default()));
        assert_eq!(status, 400, "{message}");
        assert!(
            message.contains("compile budget") && message.contains(what),
            "{message}"
        );
        assert_eq!(host.get("/bomb").status, 404);
        // A real component still deploys, compiled the same way.
        let bytes = std::fs::read(guests::TEST_VERSION).unwrap();
        admin
            .deploy("/v", &bytes, &RouteOptions::default())
            .expect("a normal component compiles within the budget");
        assert_eq!(host.get("/v").status, 200);
        host.shutdown();
    }
}

#[test]
fn a_slow_compile_does_not_hold_up_rollback_undeploy_or_listing() {
    let dir = tempfile::tempdir().unwrap();
    let (host, admin) = admin_host(dir.path(), |c| c.compile_timeout_ms = 120_000);
    let version = std::fs::read(guests::TEST_VERSION).unwrap();
    let other = std::fs::read(guests::HELLO).unwrap();
    admin
        .deploy("/a", &version, &RouteOptions::default())
        .unwrap();
    admin
        .deploy("/a", &other, &RouteOptions::default())
        .unwrap();
    admin
        .deploy("/b", &other, &RouteOptions::default())
        .unwrap();
    let slow = {
        let admin = admin.clone();
        std::thread::spawn(move || {
            admin.deploy("/c", &compile_bomb(60_000), &RouteOptions::default())
        })
    };
    wait_until("the slow compile has started", || {
        host.server().registry().compiles_in_progress() == 1
    });
    admin.rollback("/a").unwrap();
    admin.undeploy("/b").unwrap();
    assert_eq!(admin.routes().unwrap().routes.len(), 1);
    assert!(
        !slow.is_finished(),
        "the changes waited for the compile to finish"
    );
    assert_eq!(host.get("/a").status, 200);
    assert_eq!(host.get("/b").status, 404);
    // The bomb is no handler: refused once compiled.
    let (status, _) = refused(slow.join().unwrap());
    assert_eq!(status, 400);
}

#[test]
fn a_route_table_with_an_invalid_prefix_is_named_and_the_host_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (host, admin) = admin_host(dir.path(), |_| {});
    let bytes = std::fs::read(guests::TEST_VERSION).unwrap();
    let good = admin
        .deploy("/good", &bytes, &RouteOptions::default())
        .unwrap();
    host.shutdown();
    let table = dir.path().join("state/routes.json");
    let text = std::fs::read_to_string(&table).unwrap();
    let hash = &good.version.hash;
    let record = format!(r#"{{"hash": "{hash}", "size": 1, "deployed_at": 1}}"#);
    let text = text.replacen(
        r#""routes": ["#,
        &format!(
            r#""routes": [{{"prefix": "no-slash", "current": {record}, "history": []}},
                          {{"prefix": "/x", "current": {{"hash": "../../etc/passwd", "size": 1, "deployed_at": 1}}, "history": []}},"#
        ),
        1,
    );
    std::fs::write(&table, text).unwrap();
    let (host, admin) = admin_host(dir.path(), |_| {});
    let list = admin.routes().unwrap();
    assert_eq!(list.routes.len(), 1, "{list:?}");
    assert_eq!(list.routes[0].prefix, "/good");
    assert_eq!(list.restore_errors.len(), 2, "{:?}", list.restore_errors);
    assert!(
        list.restore_errors
            .iter()
            .all(|e| e.contains("routes.json")),
        "{:?}",
        list.restore_errors
    );
    assert_eq!(host.get("/good").status, 200);
}

#[test]
fn strange_prefixes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_host, admin) = admin_host(dir.path(), |_| {});
    let bytes = std::fs::read(guests::TEST_VERSION).unwrap();
    let long = format!("/{}", "a".repeat(60_000));
    for prefix in ["/..%2F..%2Fetc", "/a//b", "/%00", "/a/../b", long.as_str()] {
        let (status, message) = refused(admin.deploy(prefix, &bytes, &RouteOptions::default()));
        assert!(
            status == 400 || status == 431,
            "{prefix:.40}: {status} {message}"
        );
    }
    assert!(admin.routes().unwrap().routes.is_empty());
}
