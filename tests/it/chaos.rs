//! The chaos test: 32 connections of healthy traffic on one route while
//! hostile clients attack the rest at once: loops, memory bombs and traps
//! on their own routes; a route whose requests sleep, flooded by more
//! connections than it has instances (a starving route); and slow clients
//! (bodies that stall, heads that never end, responses nobody reads). No
//! healthy request may fail, the host's memory stays under a bound, no file
//! descriptor leaks, and the ratio of healthy throughput to a clean run in
//! the same test is printed (not asserted: this machine is shared and noisy).
//!
//! `PERCORE_CHAOS_SECS` sets the length of the hostile phase (default 20).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use crate::guests;
use crate::support::{Client, closed_by_host, spawn_binary, wait_until};

/// Connections that keep the sleeping route busy.
const STARVING_CONNECTIONS: usize = 48;

const HEALTHY_CONNECTIONS: usize = 32;
/// Resident memory of the host process must stay below this during the run.
const RSS_BOUND_BYTES: u64 = 512 << 20;

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// What the process's descriptors point at (`socket:[...]`, files...).
fn open_fds(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .collect()
}

/// How many of `fds` are sockets, and how many are something else.
fn sockets_and_others(fds: &[String]) -> (usize, usize) {
    let sockets = fds.iter().filter(|fd| fd.starts_with("socket:")).count();
    (sockets, fds.len() - sockets)
}

/// The TCP connections the process holds open (its sockets that are in
/// `/proc/PID/net/tcp` and not listening).
fn client_sockets(pid: u32) -> usize {
    let inodes: std::collections::HashSet<String> = open_fds(pid)
        .iter()
        .filter_map(|fd| {
            fd.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    std::fs::read_to_string(format!("/proc/{pid}/net/tcp"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // st 0A is LISTEN; the inode is the tenth field.
            fields.len() > 9 && fields[3] != "0A" && inodes.contains(fields[9])
        })
        .count()
}

/// Runs healthy load for `duration`; returns (ok, failed) counts.
fn healthy_load(addr: SocketAddr, duration: Duration, failures: &Arc<AtomicU64>) -> u64 {
    let ok = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + duration;
    let threads: Vec<_> = (0..HEALTHY_CONNECTIONS)
        .map(|_| {
            let ok = ok.clone();
            let failures = failures.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                while Instant::now() < stop_at {
                    let response = client.get("/healthy/plaintext");
                    if response.status == 200 && response.body == b"Hello, World!" {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join()
            .expect("a healthy client panicked (a request failed at the socket)");
    }
    ok.load(Ordering::Relaxed)
}

#[test]
fn healthy_traffic_survives_hostile_guests() {
    let chaos_secs: u64 = std::env::var("PERCORE_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    // The real binary, so that its memory and descriptors are its own.
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let config = dir.join("percore.toml");
    std::fs::write(
        &config,
        format!(
            r#"
            listen = "127.0.0.1:0"
            workers = 2
            max_instances = 48
            [limits]
            deadline_ms = 200
            max_memory_bytes = {}
            [http]
            header_read_timeout_ms = 1000
            request_body_timeout_ms = 500
            response_write_timeout_ms = 500
            [[route]]
            prefix = "/slow"
            wasm = "{}"
            deadline_ms = 10000
            [[route]]
            prefix = "/big"
            wasm = "{}"
            [[route]]
            prefix = "/healthy"
            wasm = "{}"
            isolation = "core"
            [[route]]
            prefix = "/loop"
            wasm = "{}"
            [[route]]
            prefix = "/memory"
            wasm = "{}"
            [[route]]
            prefix = "/trap"
            wasm = "{}"
            "#,
            32 << 20,
            guests::TEST_SLOW,
            guests::TEST_HUGE,
            guests::HELLO,
            guests::TEST_LOOP,
            guests::TEST_MEMORY,
            guests::TEST_TRAP,
        ),
    )
    .unwrap();
    let (mut child, addr) = spawn_binary(&["serve", "--config", config.to_str().unwrap()]);
    let pid = child.0.id();
    // Warm every route up (each component gets its copy-on-write memory
    // image on first use), then count the descriptors that are not
    // sockets.
    for (path, status) in [
        ("/healthy/plaintext", 200),
        ("/loop/", 504),
        ("/memory/", 500),
        ("/trap/panic", 500),
        ("/slow/?ms=1", 200),
        ("/big/ok", 200),
    ] {
        assert_eq!(
            Client::connect(addr).get(path).status,
            status,
            "warm-up {path}"
        );
    }
    let (_, others_before) = sockets_and_others(&open_fds(pid));
    let failures = Arc::new(AtomicU64::new(0));

    // A clean run first, for the ratio.
    let clean_secs = 5;
    let clean = healthy_load(addr, Duration::from_secs(clean_secs), &failures);
    let clean_rate = clean as f64 / clean_secs as f64;

    // Then the same load beside a stream of hostile requests.
    let stop = Arc::new(AtomicBool::new(false));
    let hostile_counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let max_rss = Arc::new(AtomicU64::new(rss_bytes(pid)));
    let hostile = {
        let (addr, stop, counts, max_rss) =
            (addr, stop.clone(), hostile_counts.clone(), max_rss.clone());
        std::thread::spawn(move || {
            // A memory bomb is stopped by the memory cap (500), or by the
            // 200 ms deadline (504) when the two cores are so busy (healthy
            // load, loops beside it, other tests) that it cannot reach the
            // cap in time: either way it is stopped and the host goes on.
            let routes: [(&str, &[u16]); 3] = [
                ("/loop/", &[504]),
                ("/memory/", &[500, 504]),
                ("/trap/panic", &[500]),
            ];
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (path, expected) = routes[i % routes.len()];
                let mut client = Client::connect(addr);
                let response = client.get(path);
                assert!(
                    expected.contains(&response.status),
                    "hostile {path}: status {}, expected one of {expected:?}",
                    response.status
                );
                counts[i % routes.len()].fetch_add(1, Ordering::Relaxed);
                max_rss.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                i += 1;
            }
        })
    };
    let starving = starve(addr, &stop);
    let slow_clients = slow_clients(addr, &stop);
    let chaos = healthy_load(addr, Duration::from_secs(chaos_secs), &failures);
    stop.store(true, Ordering::Relaxed);
    hostile
        .join()
        .expect("hostile client saw an unexpected status");
    let (slept, refused) = starving
        .join()
        .expect("a sleeping request got an unexpected status");
    let [stalled_bodies, endless_heads, unread] = slow_clients
        .join()
        .expect("a slow client was not answered as expected");
    println!(
        "chaos: the starving route answered {slept} and refused {refused} (503); slow clients: {stalled_bodies} stalled bodies (408), {endless_heads} endless heads, {unread} unread responses"
    );
    assert!(
        slept > 0 && refused > 0,
        "the sleeping route was not flooded past its share"
    );
    assert!(stalled_bodies > 0 && endless_heads > 0 && unread > 0);
    let chaos_rate = chaos as f64 / chaos_secs as f64;
    max_rss.fetch_max(rss_bytes(pid), Ordering::Relaxed);

    let [loops, bombs, traps] = &*hostile_counts;
    println!(
        "chaos: clean {clean_rate:.0} req/s, under attack {chaos_rate:.0} req/s, ratio {:.2}; hostile requests: {} loops, {} memory bombs, {} traps; peak RSS {} MiB",
        chaos_rate / clean_rate,
        loops.load(Ordering::Relaxed),
        bombs.load(Ordering::Relaxed),
        traps.load(Ordering::Relaxed),
        max_rss.load(Ordering::Relaxed) >> 20
    );
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "healthy requests failed"
    );
    assert!(chaos > 0 && clean > 0);
    assert!(loops.load(Ordering::Relaxed) > 0 && bombs.load(Ordering::Relaxed) > 0);
    assert!(
        max_rss.load(Ordering::Relaxed) < RSS_BOUND_BYTES,
        "RSS reached {} MiB",
        max_rss.load(Ordering::Relaxed) >> 20
    );
    // Every client socket of the run is closed again on the host's side,
    // and nothing else was left open.
    wait_until("the host has closed every client socket", || {
        client_sockets(pid) == 0
    });
    let fds_after = open_fds(pid);
    let (_, others_after) = sockets_and_others(&fds_after);
    assert!(child.0.try_wait().unwrap().is_none(), "the host exited");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = child.0.wait().unwrap();
    assert!(
        others_after <= others_before,
        "file descriptors leaked: {others_before} before, {others_after} after: {fds_after:?}"
    );
    assert_eq!(exit.code(), Some(0));
}

/// Keeps [`STARVING_CONNECTIONS`] connections asking the sleeping route for
/// 2 s sleeps until `stop`: more than its share of instances, so some are
/// refused (503). Returns (answered, refused).
fn starve(addr: SocketAddr, stop: &Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, u64)> {
    let stop = stop.clone();
    std::thread::spawn(move || {
        let threads: Vec<_> = (0..STARVING_CONNECTIONS)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let (mut slept, mut refused) = (0, 0);
                    while !stop.load(Ordering::Relaxed) {
                        let mut client = Client::connect(addr);
                        match client.get("/slow/?ms=2000").status {
                            200 => slept += 1,
                            503 => refused += 1,
                            other => panic!("the sleeping route answered {other}"),
                        }
                    }
                    (slept, refused)
                })
            })
            .collect();
        threads.into_iter().fold((0, 0), |(s, r), t| {
            let (slept, refused) = t.join().expect("a starving client failed");
            (s + slept, r + refused)
        })
    })
}

/// Slow clients until `stop`: request bodies that stall (408, then the
/// host closes), request heads that never end (the host closes), and
/// large responses nobody reads (held a while, then dropped). Returns how
/// many of each were sent.
fn slow_clients(addr: SocketAddr, stop: &Arc<AtomicBool>) -> std::thread::JoinHandle<[u64; 3]> {
    let stop = stop.clone();
    std::thread::spawn(move || {
        let mut counts = [0u64; 3];
        while !stop.load(Ordering::Relaxed) {
            let mut stalled: Vec<Client> = (0..4)
                .map(|_| {
                    let mut client = Client::connect(addr);
                    client.send(b"POST /healthy/json HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nonly a little");
                    client
                })
                .collect();
            let mut endless: Vec<Client> = (0..4)
                .map(|_| {
                    let mut client = Client::connect(addr);
                    client.send(b"GET /healthy/json HTTP/1.1\r\nHost: t\r\nX-Slow: ");
                    client
                })
                .collect();
            let unread: Vec<std::net::TcpStream> = (0..2)
                .map(|_| {
                    let socket =
                        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                            .unwrap();
                    socket.set_recv_buffer_size(4096).unwrap();
                    socket.connect(&addr.into()).unwrap();
                    let mut stream: std::net::TcpStream = socket.into();
                    std::io::Write::write_all(
                        &mut stream,
                        b"GET /big/?mb=8 HTTP/1.1\r\nHost: t\r\n\r\n",
                    )
                    .unwrap();
                    stream
                })
                .collect();
            for client in &mut stalled {
                assert_eq!(client.read_response(false).status, 408, "a stalled body");
                assert!(
                    closed_by_host(client),
                    "a stalled body's connection stayed open"
                );
                counts[0] += 1;
            }
            for client in &mut endless {
                assert!(
                    closed_by_host(client),
                    "an endless head's connection stayed open"
                );
                counts[1] += 1;
            }
            // The unread responses are held past the write timeout, then
            // dropped (the attacks test checks that the host closes them).
            std::thread::sleep(Duration::from_millis(600));
            counts[2] += unread.len() as u64;
        }
        counts
    })
}
