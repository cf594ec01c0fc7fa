//! Starting and stopping: invalid components are refused at start with a
//! message naming them, shutdown lets an in-flight request finish, and the
//! binary exits 0 on SIGTERM; a second host on a port in use is refused.

use percore::Server;
use percore::config::{Isolation, RouteConfig};

use crate::guests;
use crate::support::{Client, TestHost, config, spawn_binary, wait_until};

#[test]
fn invalid_components_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let random = dir.join("random.wasm");
    std::fs::write(&random, b"this is not wasm at all").unwrap();
    let core = dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let missing = dir.join("missing.wasm");

    for (file, expect) in [
        (&random, "random.wasm is not a valid WebAssembly component"),
        (&core, "core WebAssembly module, not a component"),
        (&missing, "missing.wasm"),
    ] {
        let cfg = config(vec![RouteConfig::file("/", file)], 1, Isolation::Request);
        let err = match Server::new(cfg).start() {
            Ok(_) => panic!("{} was accepted", file.display()),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(expect), "error for {}: {err}", file.display());
        if file == &missing {
            // A missing file's error lists the components that are there.
            assert!(
                err.contains(".wasm files in") && err.contains("core.wasm, random.wasm"),
                "{err}"
            );
            assert_eq!(
                err.to_lowercase().matches("no such file").count(),
                1,
                "{err}"
            );
        }
    }
}

#[test]
fn a_second_host_on_a_port_in_use_is_refused() {
    let first = TestHost::guest(guests::HELLO, 2, Isolation::Core);
    // A second host on the first one's port would join its SO_REUSEPORT
    // group and take half of its connections; it must be refused instead.
    let mut cfg = config(
        vec![RouteConfig::file("/", guests::HELLO)],
        2,
        Isolation::Core,
    );
    cfg.listen = first.addr;
    let err = match Server::new(cfg).start() {
        Ok(second) => {
            second.shutdown();
            panic!("a second host started on {}", first.addr)
        }
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains(&format!("cannot listen on {}", first.addr)) && err.contains("in use"),
        "{err}"
    );
    // The same for a port that a plain listener holds.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = config(
        vec![RouteConfig::file("/", guests::HELLO)],
        1,
        Isolation::Core,
    );
    cfg.listen = plain.local_addr().unwrap();
    assert!(Server::new(cfg).start().is_err());
    // The first host still answers every request itself.
    for _ in 0..20 {
        assert_eq!(first.client().get("/plaintext").status, 200);
    }
}

#[test]
fn shutdown_finishes_an_in_flight_request() {
    let host = TestHost::guest(guests::TEST_SLOW, 1, Isolation::Request);
    let addr = host.addr;
    let mut client = Client::connect(addr);
    client.send(&Client::get_request("/?ms=700"));
    // Once the request is in the guest, shut down while it sleeps.
    wait_until("the request reaches the guest", || {
        host.server().stats().active_requests() == 1
    });
    let server = host.into_server();
    let stopper = std::thread::spawn(move || server.shutdown());
    let response = client.read_response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "slept 700 ms");
    stopper.join().unwrap();
    // The listener is gone.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn sigterm_stops_the_binary_with_exit_code_0() {
    let route = format!("/={}", guests::HELLO);
    let (mut child, addr) = spawn_binary(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--route",
        &route,
    ]);
    let mut client = Client::connect(addr);
    assert_eq!(client.get("/plaintext").status, 200);
    let exit = child.terminate();
    assert_eq!(exit.code(), Some(0), "exit status {exit:?}");
}
