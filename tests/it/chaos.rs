//! The chaos test: 32 connections of healthy traffic on one route while a
//! hostile client sends loops, memory bombs and traps to other routes. No
//! healthy request may fail, the host's memory stays under a bound, no file
//! descriptor leaks, and the ratio of healthy throughput to a clean run in
//! the same test is printed (not asserted: this machine is shared and noisy).
//!
//! `PERCORE_CHAOS_SECS` sets the length of the hostile phase (default 20).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use crate::support::{Client, guest, spawn_binary};

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

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
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
    let dir = std::env::temp_dir().join(format!("percore-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("percore.toml");
    std::fs::write(
        &config,
        format!(
            r#"
            listen = "127.0.0.1:0"
            workers = 2
            max_instances = 256
            [limits]
            deadline_ms = 200
            max_memory_bytes = {}
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
            guest("hello"),
            guest("test-loop"),
            guest("test-memory"),
            guest("test-trap"),
        ),
    )
    .unwrap();
    let (mut child, addr) = spawn_binary(&["serve", "--config", config.to_str().unwrap()]);
    let pid = child.0.id();
    // Warm every route up (each component gets its copy-on-write memory
    // image on first use), then count descriptors at rest.
    for (path, status) in [
        ("/healthy/plaintext", 200),
        ("/loop/", 504),
        ("/memory/", 500),
        ("/trap/panic", 500),
    ] {
        assert_eq!(
            Client::connect(addr).get(path).status,
            status,
            "warm-up {path}"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let fds_before = open_fds(pid);
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
    let chaos = healthy_load(addr, Duration::from_secs(chaos_secs), &failures);
    stop.store(true, Ordering::Relaxed);
    hostile
        .join()
        .expect("hostile client saw an unexpected status");
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
    // Every client socket of the run is closed again on the host's side.
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(pid) > fds_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let fds_after = open_fds(pid);
    assert!(child.0.try_wait().unwrap().is_none(), "the host exited");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = child.0.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        fds_after <= fds_before,
        "file descriptors leaked: {fds_before} before, {fds_after} after"
    );
    assert_eq!(exit.code(), Some(0));
}
