//! From measurements to tables: groups the rounds of each (server, load,
//! workers), takes medians, divides by native hyper's median for the same
//! load, and renders Markdown that pastes into `benches/RESULTS.md`
//! (throughput, scaling, CPU split, fixed-rate latency, idle connections),
//! with a line per target saying whether percore met it.

use std::fmt::Write as _;

use super::pinning::Pinning;
use super::servers::{CpuTime, ServerKind};
use super::{IdleSample, LatencySample, Load, Sample};

/// One line of the table: every round of one server on one load.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The server.
    pub kind: ServerKind,
    /// The load.
    pub load: Load,
    /// Server workers.
    pub workers: usize,
    /// Requests/s of every round, ascending.
    pub rps: Vec<f64>,
    /// Median requests/s over the rounds.
    pub median_rps: f64,
    /// `median_rps` over native hyper's for the same load and workers.
    pub ratio: Option<f64>,
    /// Median over rounds of the p50 latency, microseconds.
    pub p50_us: f64,
    /// Median over rounds of the p99 latency, microseconds.
    pub p99_us: f64,
    /// Failed requests summed over rounds.
    pub errors: u64,
    /// Median server CPU use per second of load (1.0 = one core busy).
    pub cpu: CpuTime,
    /// Median server CPU time per completed request, microseconds: the
    /// cost of a request, less sensitive to a busy machine than req/s.
    pub cpu_per_request_us: f64,
    /// Median wrk CPU use per second of load.
    pub wrk_cpu: f64,
    /// Largest CPU use per second by anything else during a round: noise.
    pub other_cpu: f64,
    /// Largest resident memory seen after a round, KiB.
    pub rss_kib: u64,
    /// Where the server and wrk ran (the first round's).
    pub pinning: Pinning,
}

impl Row {
    /// wrk's CPU time per completed request, microseconds (its CPU per
    /// second of load over the median req/s); 0 when nothing completed.
    pub fn wrk_cpu_per_request_us(&self) -> f64 {
        if self.median_rps > 0.0 {
            self.wrk_cpu * 1e6 / self.median_rps
        } else {
            0.0
        }
    }
}

/// Groups samples into rows, in the order loads and servers first appear.
pub fn rows(samples: &[Sample]) -> Vec<Row> {
    let mut keys: Vec<(Load, usize, ServerKind)> = Vec::new();
    for s in samples {
        let key = (s.load.clone(), s.workers, s.kind);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    // Loads in first-seen order, then servers in table order.
    let load_order = |load: &Load, workers: usize| {
        keys.iter()
            .position(|(l, w, _)| l == load && *w == workers)
            .unwrap_or(usize::MAX)
    };
    let mut sorted = keys.clone();
    sorted.sort_by_key(|(load, workers, kind)| (load_order(load, *workers), *kind));
    let mut rows: Vec<Row> = sorted
        .into_iter()
        .map(|(load, workers, kind)| {
            let mine: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.kind == kind && s.workers == workers && s.load == load)
                .collect();
            let mut rps: Vec<f64> = mine.iter().map(|s| s.wrk.requests_per_sec).collect();
            rps.sort_by(f64::total_cmp);
            let per_sec = |s: &Sample, f: fn(&CpuTime) -> f64| f(&s.cpu) / s.seconds.max(1e-9);
            Row {
                kind,
                workers,
                median_rps: median(&rps),
                rps,
                ratio: None,
                p50_us: median_of(&mine, |s| s.wrk.p50_us()),
                p99_us: median_of(&mine, |s| s.wrk.p99_us()),
                errors: mine.iter().map(|s| s.wrk.errors()).sum(),
                cpu: CpuTime {
                    user: median_of(&mine, |s| per_sec(s, |c| c.user)),
                    system: median_of(&mine, |s| per_sec(s, |c| c.system)),
                },
                cpu_per_request_us: median_of(&mine, |s| {
                    (s.cpu.user + s.cpu.system) * 1e6 / (s.wrk.requests.max(1) as f64)
                }),
                wrk_cpu: median_of(&mine, |s| {
                    (s.wrk_cpu.user + s.wrk_cpu.system) / s.seconds.max(1e-9)
                }),
                other_cpu: mine
                    .iter()
                    .map(|s| s.other_cpu / s.seconds.max(1e-9))
                    .fold(0.0, f64::max),
                rss_kib: mine.iter().map(|s| s.rss_kib).max().unwrap_or(0),
                pinning: mine.first().map(|s| s.pinning.clone()).unwrap_or_default(),
                load,
            }
        })
        .collect();
    let natives: Vec<(Load, usize, f64)> = rows
        .iter()
        .filter(|r| r.kind == ServerKind::Native)
        .map(|r| (r.load.clone(), r.workers, r.median_rps))
        .collect();
    for row in &mut rows {
        row.ratio = natives
            .iter()
            .find(|(load, workers, _)| *load == row.load && *workers == row.workers)
            .filter(|(_, _, native)| *native > 0.0)
            .map(|(_, _, native)| row.median_rps / native);
    }
    rows
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn median_of(samples: &[&Sample], f: impl Fn(&Sample) -> f64) -> f64 {
    median(&samples.iter().map(|s| f(s)).collect::<Vec<_>>())
}

/// The table in Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| server | workers | route | conns | depth | req/s (median) | × native | req/s per round | p50 | p99 | errors | server CPU usr+sys | server CPU/req | wrk CPU | other CPU | RSS |\n\
         | --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows {
        let ratio = r.ratio.map_or("–".to_owned(), |x| format!("{x:.2}×"));
        let rounds: Vec<String> = r.rps.iter().map(|x| format!("{:.0}", x)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.0}%+{:.0}% | {:.1} µs | {:.0}% | {:.0}% | {:.0} MiB |",
            r.kind.label(),
            r.workers,
            r.load.route,
            r.load.connections,
            r.load.depth,
            r.median_rps,
            ratio,
            rounds.join(" / "),
            latency(r.p50_us),
            latency(r.p99_us),
            r.errors,
            r.cpu.user * 100.0,
            r.cpu.system * 100.0,
            r.cpu_per_request_us,
            r.wrk_cpu * 100.0,
            r.other_cpu * 100.0,
            r.rss_kib as f64 / 1024.0,
        );
    }
    out
}

/// Lines saying whether percore reached the performance issues' targets:
/// against native hyper, core ≥ 0.95× unpipelined and ≥ 0.8× pipelined,
/// request ≥ 0.7× unpipelined and ≥ 0.3× pipelined (issue 14); core ≥ 8×
/// and request ≥ 5×
/// `wasmtime serve` (each for the same load and workers, when measured);
/// core with metrics on ≥ 0.98× core with them off (the operations
/// issue's target); and each server with a [`ServerKind::baseline`]
/// target against that server on the `/json` throughput loads (16
/// connections or more: fewer measure latency).
pub fn verdicts(rows: &[Row]) -> Vec<String> {
    let mut lines = Vec::new();
    for r in rows {
        if let Some((base, target)) = r.kind.baseline() {
            let base_row = row_of_kind(rows, base, r);
            let ratio = base_row
                .map(|b| b.median_rps)
                .filter(|&b| b > 0.0)
                .map(|b| r.median_rps / b);
            if let (Some(ratio), Some(target)) = (ratio, target)
                && r.load.route == "/json"
                && r.load.connections >= 16
            {
                let cpu = base_row
                    .and_then(|b| cpu_ratio(r, b))
                    .map_or(String::new(), |x| {
                        format!("; by server CPU per request: {x:.2}×")
                    });
                lines.push(format!(
                    "{} {} c{} d{} w{}: {ratio:.2}× {} (target {target}×: {}{cpu})",
                    r.kind.label(),
                    r.load.route,
                    r.load.connections,
                    r.load.depth,
                    r.workers,
                    base.label(),
                    if ratio >= target { "met" } else { "MISSED" }
                ));
            }
            continue;
        }
        let (vs_native, vs_wasmtime) = match r.kind {
            ServerKind::PercoreCore => (if r.load.depth > 1 { 0.8 } else { 0.95 }, 8.0),
            ServerKind::PercoreRequest => (if r.load.depth > 1 { 0.3 } else { 0.7 }, 5.0),
            ServerKind::PercoreCoreMetrics => {
                if let Some(off) =
                    median_of_kind(rows, ServerKind::PercoreCore, r).filter(|&base| base > 0.0)
                {
                    let ratio = r.median_rps / off;
                    lines.push(format!(
                        "{} {} c{} d{} w{}: {ratio:.3}× metrics off (target 0.98×: {})",
                        r.kind.label(),
                        r.load.route,
                        r.load.connections,
                        r.load.depth,
                        r.workers,
                        if ratio >= 0.98 { "met" } else { "MISSED" }
                    ));
                }
                continue;
            }
            ServerKind::Native
            | ServerKind::WasmtimeServe
            | ServerKind::PercoreCoreNoDeadlines
            | ServerKind::WasiCore
            | ServerKind::WasiRequest
            | ServerKind::PythonCore
            | ServerKind::PythonRequest
            | ServerKind::Granian => {
                continue;
            }
        };
        let ratio_to_wasmtime = median_of_kind(rows, ServerKind::WasmtimeServe, r)
            .filter(|&base| base > 0.0)
            .map(|base| r.median_rps / base);
        for (ratio, target, against) in [
            (r.ratio, vs_native, "native"),
            (ratio_to_wasmtime, vs_wasmtime, "wasmtime serve"),
        ] {
            let Some(ratio) = ratio else { continue };
            lines.push(format!(
                "{} {} c{} d{} w{}: {ratio:.2}× {against} (target {target}×: {})",
                r.kind.label(),
                r.load.route,
                r.load.connections,
                r.load.depth,
                r.workers,
                if ratio >= target { "met" } else { "MISSED" }
            ));
        }
    }
    lines
}

/// How many times `r`'s server CPU per request `base`'s is: the ratio of
/// the servers' costs, without the load client's share of the machine
/// (on cores it shares with the servers, the client's CPU per request
/// bounds the throughput ratio). `None` when either was not measured.
fn cpu_ratio(r: &Row, base: &Row) -> Option<f64> {
    (r.cpu_per_request_us > 0.0 && base.cpu_per_request_us > 0.0)
        .then(|| base.cpu_per_request_us / r.cpu_per_request_us)
}

/// `kind`'s row for the same load and workers as `like`.
fn row_of_kind<'a>(rows: &'a [Row], kind: ServerKind, like: &Row) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.kind == kind && r.load == like.load && r.workers == like.workers)
}

/// The median req/s of `kind`'s row for the same load and workers as `like`.
fn median_of_kind(rows: &[Row], kind: ServerKind, like: &Row) -> Option<f64> {
    row_of_kind(rows, kind, like).map(|r| r.median_rps)
}

/// Each server that has a [`ServerKind::baseline`] against that server on
/// the same load and workers: req/s, the ratio, and CPU per request. Empty
/// when no such pair was measured.
pub fn baseline_markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        let Some((base_kind, target)) = r.kind.baseline() else {
            continue;
        };
        let Some(base) = row_of_kind(rows, base_kind, r) else {
            continue;
        };
        if out.is_empty() {
            out.push_str(
                "| server | against | workers | route | conns | depth | req/s | its req/s | ratio | target | CPU/req | its CPU/req | CPU ratio | wrk CPU/req | its wrk CPU/req | p50 | its p50 |\n\
                 | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            );
        }
        let ratio = if base.median_rps > 0.0 {
            format!("{:.2}×", r.median_rps / base.median_rps)
        } else {
            "–".to_owned()
        };
        let target = match target {
            Some(t) if r.load.route == "/json" && r.load.connections >= 16 => format!("≥ {t}×"),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {ratio} | {target} | {:.1} µs | {:.1} µs | {} | {:.1} µs | {:.1} µs | {} | {} |",
            r.kind.label(),
            base.kind.label(),
            r.workers,
            r.load.route,
            r.load.connections,
            r.load.depth,
            r.median_rps,
            base.median_rps,
            r.cpu_per_request_us,
            base.cpu_per_request_us,
            cpu_ratio(r, base).map_or("–".to_owned(), |x| format!("{x:.2}×")),
            r.wrk_cpu_per_request_us(),
            base.wrk_cpu_per_request_us(),
            latency(r.p50_us),
            latency(base.p50_us),
        );
    }
    out
}

/// What a fresh instance costs: each `request` isolation server beside the
/// same component in `core` isolation ([`ServerKind::core_twin`]), same
/// load and workers. At one connection the difference of the p50
/// latencies is the time one request spends instantiating (and dropping)
/// its instance; under concurrency the difference of CPU per request is
/// what instantiation costs the CPU. Empty when no such pair was measured.
pub fn instantiation_markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        let Some(twin_kind) = r.kind.core_twin() else {
            continue;
        };
        let Some(twin) = row_of_kind(rows, twin_kind, r) else {
            continue;
        };
        if out.is_empty() {
            out.push_str(
                "| request isolation | core isolation | workers | route | conns | depth | p50 request | p50 core | p50 difference | CPU/req request | CPU/req core | CPU/req difference |\n\
                 | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            );
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} µs | {:.1} µs | {:.1} µs |",
            r.kind.label(),
            twin.kind.label(),
            r.workers,
            r.load.route,
            r.load.connections,
            r.load.depth,
            latency(r.p50_us),
            latency(twin.p50_us),
            signed_latency(r.p50_us - twin.p50_us),
            r.cpu_per_request_us,
            twin.cpu_per_request_us,
            r.cpu_per_request_us - twin.cpu_per_request_us,
        );
    }
    out
}

/// [`latency`] with a sign for a negative difference.
fn signed_latency(us: f64) -> String {
    if us < 0.0 {
        format!("−{}", latency(-us))
    } else {
        latency(us)
    }
}

/// Above this CPU use per second by other processes (0.1 = a tenth of a
/// core), a measurement is flagged as disturbed.
pub const NOISE_LIMIT: f64 = 0.10;

/// Warnings for rows that other processes disturbed.
pub fn noise(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.other_cpu > NOISE_LIMIT)
        .map(|r| {
            format!(
                "warning: {} {} c{} d{} w{}: other processes used up to {:.0}% of a core \
                 meanwhile; rerun on a quiet machine before trusting this row",
                r.kind.label(),
                r.load.route,
                r.load.connections,
                r.load.depth,
                r.workers,
                r.other_cpu * 100.0
            )
        })
        .collect()
}

/// A latency for humans: `812 µs`, `2.10 ms`, `1.02 s`.
pub fn latency(us: f64) -> String {
    if us < 1e3 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// The fixed-rate latency table: each server at fractions of its own peak,
/// then at the absolute rates asked for (`fixed` in the "% of peak" column).
pub fn latency_markdown(samples: &[LatencySample]) -> String {
    let mut out = String::from(
        "| server | workers | route | conns | % of peak | peak req/s | asked req/s | achieved req/s | p50 | p90 | p99 | p99.9 | max | errors | p99 × native | server CPU |\n\
         | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for s in samples {
        let native = native_p99(samples, s);
        let ratio = native.map_or("–".to_owned(), |n| format!("{:.2}×", s.result.p99_us / n));
        let seconds = s.result.requests.max(1) as f64 / s.result.achieved_rate.max(1e-9);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0}%{} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {:.0}% |",
            s.kind.label(),
            s.workers,
            s.load.route,
            s.load.connections,
            s.fraction * 100.0,
            if s.fixed_rate.is_some() {
                " (fixed)"
            } else {
                ""
            },
            s.peak,
            s.result.target_rate,
            s.result.achieved_rate,
            latency(s.result.p50_us),
            latency(s.result.p90_us),
            latency(s.result.p99_us),
            latency(s.result.p999_us),
            latency(s.result.max_us),
            s.result.errors,
            ratio,
            (s.cpu.user + s.cpu.system) * 100.0 / seconds.max(1e-9),
        );
    }
    out
}

/// Native hyper's p99 at the same route and workers as `like`, and at the
/// same fraction of its own peak, or the same absolute rate.
fn native_p99(samples: &[LatencySample], like: &LatencySample) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.kind == ServerKind::Native
                && s.workers == like.workers
                && s.load == like.load
                && match (s.fixed_rate, like.fixed_rate) {
                    (None, None) => (s.fraction - like.fraction).abs() < 1e-9,
                    (Some(a), Some(b)) => (a - b).abs() < 1e-9,
                    _ => false,
                }
        })
        .map(|s| s.result.p99_us)
        .filter(|&p| p > 0.0)
}

/// The idle-connection table.
pub fn idle_markdown(samples: &[IdleSample]) -> String {
    let mut out = String::from(
        "| server | workers | idle connections | RSS before | RSS with them open | KB per connection | closed by the server | new request p50 | new request max | failed |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for s in samples {
        let st = &s.step;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} MiB | {:.1} MiB | {:.1} | {} | {} | {} | {} |",
            s.kind.label(),
            s.workers,
            st.connections,
            st.rss_before_kib as f64 / 1024.0,
            st.rss_kib as f64 / 1024.0,
            st.bytes_per_connection / 1000.0,
            st.closed_by_server,
            latency(st.probe_p50_us),
            latency(st.probe_max_us),
            st.probe_failures,
        );
    }
    out
}

/// Where each server's CPU time went under the unpipelined `/json` loads:
/// user space (the server's own work) against the kernel (sockets).
pub fn cpu_markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| server | workers | route | conns | CPU user | CPU system | user share |\n\
         | --- | ---: | --- | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows
        .iter()
        .filter(|r| r.load.route == "/json" && r.load.depth == 1)
    {
        let total = r.cpu.user + r.cpu.system;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0}% | {:.0}% | {:.0}% |",
            r.kind.label(),
            r.workers,
            r.load.route,
            r.load.connections,
            r.cpu.user * 100.0,
            r.cpu.system * 100.0,
            if total > 0.0 {
                r.cpu.user / total * 100.0
            } else {
                0.0
            },
        );
    }
    out
}

/// The scaling pass's table: for each load and worker count, where the
/// server and wrk ran, native hyper's req/s, and every other server's req/s
/// with its ratio to native hyper's at the same count. Empty without rows.
pub fn scaling_markdown(rows: &[Row]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut kinds: Vec<ServerKind> = rows.iter().map(|r| r.kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let others: Vec<ServerKind> = kinds
        .iter()
        .copied()
        .filter(|&k| k != ServerKind::Native)
        .collect();
    let mut out = String::from("| route | conns | depth | workers | pinned |");
    let mut rule = String::from("| --- | ---: | ---: | ---: | --- |");
    if kinds.contains(&ServerKind::Native) {
        out.push_str(" native hyper req/s |");
        rule.push_str(" ---: |");
    }
    for kind in &others {
        let _ = write!(out, " {} req/s | × native |", kind.label());
        rule.push_str(" ---: | ---: |");
    }
    let _ = writeln!(out, "\n{rule}");
    let mut seen: Vec<(&Load, usize)> = Vec::new();
    for r in rows {
        if seen.contains(&(&r.load, r.workers)) {
            continue;
        }
        seen.push((&r.load, r.workers));
        let find = |kind: ServerKind| row_of_kind(rows, kind, r);
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} |",
            r.load.route, r.load.connections, r.load.depth, r.workers, r.pinning
        );
        if kinds.contains(&ServerKind::Native) {
            let native = find(ServerKind::Native)
                .map_or("–".to_owned(), |x| format!("{:.0}", x.median_rps));
            let _ = write!(out, " {native} |");
        }
        for &kind in &others {
            match find(kind) {
                Some(x) => {
                    let ratio = x.ratio.map_or("–".to_owned(), |v| format!("{v:.2}×"));
                    let _ = write!(out, " {:.0} | {ratio} |", x.median_rps);
                }
                None => out.push_str(" – | – |"),
            }
        }
        out.push('\n');
    }
    out
}

/// Lines saying whether percore met the performance issue's latency and
/// memory targets: p99 at 50% of peak within 1.5× native hyper's, and no
/// more memory per idle connection than native hyper's in the same run, at
/// the largest count measured.
pub fn extra_verdicts(fixed_rate: &[LatencySample], idle: &[IdleSample]) -> Vec<String> {
    let mut lines = Vec::new();
    for s in fixed_rate.iter().filter(|s| {
        matches!(s.kind, ServerKind::PercoreCore | ServerKind::PercoreRequest)
            && s.fixed_rate.is_none()
            && (s.fraction - 0.5).abs() < 1e-9
    }) {
        if let Some(native) = native_p99(fixed_rate, s) {
            let ratio = s.result.p99_us / native;
            lines.push(format!(
                "{} {} c{} at 50% of peak: p99 {} = {ratio:.2}× native's {} (target ≤ 1.5×: {})",
                s.kind.label(),
                s.load.route,
                s.load.connections,
                latency(s.result.p99_us),
                latency(native),
                if ratio <= 1.5 { "met" } else { "MISSED" }
            ));
        }
    }
    let most = idle.iter().map(|s| s.step.connections).max().unwrap_or(0);
    let native = idle
        .iter()
        .find(|s| s.step.connections == most && s.kind == ServerKind::Native)
        .map(|s| s.step.bytes_per_connection / 1000.0);
    for s in idle.iter().filter(|s| {
        s.step.connections == most
            && matches!(s.kind, ServerKind::PercoreCore | ServerKind::PercoreRequest)
    }) {
        let kb = s.step.bytes_per_connection / 1000.0;
        let verdict = match native {
            _ if s.step.closed_by_server != 0 => "MISSED: the server closed connections".to_owned(),
            Some(native) if kb <= native => format!("met: native hyper {native:.1} KB"),
            Some(native) => format!("MISSED: native hyper {native:.1} KB"),
            None => "no native hyper run to compare with".to_owned(),
        };
        lines.push(format!(
            "{} with {} idle connections: {kb:.1} KB each (target ≤ native hyper's; {verdict})",
            s.kind.label(),
            s.step.connections,
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::wrk::WrkResult;

    fn sample(kind: ServerKind, route: &str, round: usize, rps: f64) -> Sample {
        Sample {
            kind,
            workers: 2,
            load: Load {
                route: route.into(),
                connections: 256,
                depth: 1,
            },
            round,
            seconds: 10.0,
            wrk: WrkResult {
                requests_per_sec: rps,
                requests: (rps * 10.0) as u64,
                latency_us: [100.0 * rps / 1000.0, 0.0, 0.0, 1000.0],
                ..WrkResult::default()
            },
            cpu: CpuTime {
                user: 12.0,
                system: 6.0,
            },
            wrk_cpu: CpuTime {
                user: 1.0,
                system: 1.0,
            },
            other_cpu: 0.0,
            rss_kib: 2048,
            pinning: Pinning::default(),
        }
    }

    #[test]
    fn medians_and_ratios() {
        let samples = vec![
            sample(ServerKind::PercoreCore, "/plaintext", 0, 80.0),
            sample(ServerKind::Native, "/plaintext", 0, 100.0),
            sample(ServerKind::Native, "/plaintext", 1, 120.0),
            sample(ServerKind::PercoreCore, "/plaintext", 1, 90.0),
            sample(ServerKind::Native, "/plaintext", 2, 110.0),
            sample(ServerKind::PercoreCore, "/plaintext", 2, 70.0),
            sample(ServerKind::Native, "/json", 0, 50.0),
        ];
        let rows = rows(&samples);
        let summary: Vec<_> = rows
            .iter()
            .map(|r| (r.kind, r.load.route.as_str(), r.median_rps, r.ratio))
            .collect();
        assert_eq!(
            summary,
            [
                (ServerKind::Native, "/plaintext", 110.0, Some(1.0)),
                (
                    ServerKind::PercoreCore,
                    "/plaintext",
                    80.0,
                    Some(80.0 / 110.0)
                ),
                (ServerKind::Native, "/json", 50.0, Some(1.0)),
            ]
        );
        assert_eq!(rows[0].rps, [100.0, 110.0, 120.0]);
        assert_eq!(rows[0].cpu.user, 1.2);
        let table = markdown(&rows);
        assert!(table.contains("| percore core | 2 | /plaintext | 256 | 1 | 80 | 0.73× |"));
        assert_eq!(
            verdicts(&rows),
            ["percore core /plaintext c256 d1 w2: 0.73× native (target 0.95×: MISSED)"]
        );
    }

    #[test]
    fn verdicts_against_wasmtime_serve() {
        let samples = vec![
            sample(ServerKind::Native, "/json", 0, 100.0),
            sample(ServerKind::PercoreCore, "/json", 0, 90.0),
            sample(ServerKind::PercoreRequest, "/json", 0, 40.0),
            sample(ServerKind::WasmtimeServe, "/json", 0, 10.0),
            sample(ServerKind::PercoreCore, "/plaintext", 0, 90.0),
        ];
        assert_eq!(
            verdicts(&rows(&samples)),
            [
                "percore core /json c256 d1 w2: 0.90× native (target 0.95×: MISSED)",
                "percore core /json c256 d1 w2: 9.00× wasmtime serve (target 8×: met)",
                "percore request /json c256 d1 w2: 0.40× native (target 0.7×: MISSED)",
                "percore request /json c256 d1 w2: 4.00× wasmtime serve (target 5×: MISSED)",
            ]
        );
    }

    #[test]
    fn verdicts_and_tables_against_the_stock_servers() {
        let mut samples = vec![
            sample(ServerKind::WasmtimeServe, "/json", 0, 10.0),
            sample(ServerKind::WasiCore, "/json", 0, 90.0),
            sample(ServerKind::WasiRequest, "/json", 0, 25.0),
            sample(ServerKind::Granian, "/json", 0, 100.0),
            sample(ServerKind::PythonCore, "/json", 0, 60.0),
            sample(ServerKind::PythonRequest, "/json", 0, 5.0),
            // No granian row for this load: no comparison.
            sample(ServerKind::PythonCore, "/offsets/<random prefix>", 0, 50.0),
        ];
        // One connection: a ratio in the table, no verdict.
        let mut single = sample(ServerKind::WasiCore, "/json", 0, 9.0);
        single.load.connections = 1;
        let mut base = sample(ServerKind::WasmtimeServe, "/json", 0, 3.0);
        base.load.connections = 1;
        samples.extend([single, base]);
        let rows = rows(&samples);
        assert_eq!(
            verdicts(&rows),
            [
                "percore core, wasi:http /json c256 d1 w2: 9.00× wasmtime serve (target 8×: met; by server CPU per request: 9.00×)",
                "percore request, wasi:http /json c256 d1 w2: 2.50× wasmtime serve (target 3×: MISSED; by server CPU per request: 2.50×)",
                "percore core, Python /json c256 d1 w2: 0.60× granian, Python (target 0.5×: met; by server CPU per request: 0.60×)",
            ]
        );
        let table = baseline_markdown(&rows);
        assert!(
            table.contains(
                "| percore core, wasi:http | wasmtime serve | 2 | /json | 256 | 1 | 90 | 10 | 9.00× | ≥ 8× | 20000.0 µs | 180000.0 µs | 9.00× | 2222.2 µs | 20000.0 µs |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| percore request, Python | granian, Python | 2 | /json | 256 | 1 | 5 | 100 | 0.05× | – |"),
            "{table}"
        );
        assert!(
            table.contains("| percore core, wasi:http | wasmtime serve | 2 | /json | 1 | 1 | 9 | 3 | 3.00× | – |"),
            "{table}"
        );
        assert!(!table.contains("/offsets"), "{table}");
        assert_eq!(instantiation_markdown(&rows[..1]), "");
    }

    #[test]
    fn instantiation_is_request_minus_core_isolation() {
        let one = |kind: ServerKind, p50_us: f64, requests: u64| {
            let mut s = sample(kind, "/json", 0, 1000.0);
            s.load.connections = 1;
            s.wrk.latency_us[0] = p50_us;
            // 18 s of CPU over the requests.
            s.wrk.requests = requests;
            s
        };
        let rows = rows(&[
            one(ServerKind::PythonCore, 500.0, 2_000_000),
            one(ServerKind::PythonRequest, 2500.0, 1_000_000),
            one(ServerKind::WasiRequest, 100.0, 1_000_000),
        ]);
        let costs = instantiation_markdown(&rows);
        assert!(
            costs.contains(
                "| percore request, Python | percore core, Python | 2 | /json | 1 | 1 | 2.50 ms | 500 µs | 2.00 ms | 18.0 µs | 9.0 µs | 9.0 µs |"
            ),
            "{costs}"
        );
        // No wasi-core row to pair with.
        assert!(!costs.contains("wasi:http"), "{costs}");
    }

    #[test]
    fn median_of_even_count_is_the_middle_mean() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn latencies_pick_a_unit() {
        assert_eq!(latency(812.0), "812 µs");
        assert_eq!(latency(2100.0), "2.10 ms");
        assert_eq!(latency(1.02e6), "1.02 s");
    }

    fn fixed_rate(kind: ServerKind, fraction: f64, p99_us: f64) -> LatencySample {
        LatencySample {
            kind,
            workers: 2,
            load: Load {
                route: "/json".into(),
                connections: 64,
                depth: 1,
            },
            fraction,
            fixed_rate: None,
            peak: 1000.0,
            result: crate::load::oha::LatencyResult {
                target_rate: 1000.0 * fraction,
                achieved_rate: 1000.0 * fraction,
                requests: 100,
                errors: 0,
                p50_us: 100.0,
                p90_us: 200.0,
                p99_us,
                p999_us: p99_us * 2.0,
                max_us: p99_us * 3.0,
            },
            cpu: CpuTime::default(),
        }
    }

    #[test]
    fn fixed_rates_pair_with_natives_at_the_same_rate() {
        let at = |kind, peak: f64, rate: f64, p99_us| LatencySample {
            fixed_rate: Some(rate),
            peak,
            ..fixed_rate(kind, rate / peak, p99_us)
        };
        let samples = [
            fixed_rate(ServerKind::Native, 0.5, 1000.0),
            at(ServerKind::Native, 2000.0, 400.0, 300.0),
            at(ServerKind::PercoreCore, 800.0, 400.0, 600.0),
            fixed_rate(ServerKind::PercoreCore, 0.5, 1200.0),
        ];
        assert_eq!(native_p99(&samples, &samples[2]), Some(300.0));
        assert_eq!(native_p99(&samples, &samples[3]), Some(1000.0));
        let table = latency_markdown(&samples);
        assert!(table.contains("| 50% (fixed) | 800 |"), "{table}");
        // The verdicts are about each server's own half-peak only.
        assert_eq!(extra_verdicts(&samples, &[]).len(), 1);
    }

    fn idle(kind: ServerKind, connections: u32, bytes: f64, closed: u32) -> IdleSample {
        IdleSample {
            kind,
            workers: 2,
            step: crate::load::idle::IdleStep {
                connections,
                rss_before_kib: 1000,
                rss_kib: 2000,
                bytes_per_connection: bytes,
                open_seconds: 1.0,
                probe_p50_us: 60.0,
                probe_max_us: 300.0,
                probe_failures: 0,
                closed_by_server: closed,
            },
        }
    }

    #[test]
    fn latency_and_idle_verdicts() {
        let latency = [
            fixed_rate(ServerKind::Native, 0.5, 1000.0),
            fixed_rate(ServerKind::PercoreCore, 0.5, 1500.0),
            fixed_rate(ServerKind::PercoreRequest, 0.5, 2500.0),
            fixed_rate(ServerKind::PercoreCore, 0.8, 9000.0),
        ];
        let idle = [
            idle(ServerKind::Native, 20_000, 9000.0, 0),
            idle(ServerKind::PercoreCore, 10_000, 30_000.0, 0),
            idle(ServerKind::PercoreCore, 20_000, 8_500.0, 0),
            idle(ServerKind::PercoreRequest, 20_000, 15_000.0, 3),
        ];
        assert_eq!(
            extra_verdicts(&latency, &idle),
            [
                "percore core /json c64 at 50% of peak: p99 1.50 ms = 1.50× native's 1.00 ms (target ≤ 1.5×: met)",
                "percore request /json c64 at 50% of peak: p99 2.50 ms = 2.50× native's 1.00 ms (target ≤ 1.5×: MISSED)",
                "percore core with 20000 idle connections: 8.5 KB each (target ≤ native hyper's; met: native hyper 9.0 KB)",
                "percore request with 20000 idle connections: 15.0 KB each (target ≤ native hyper's; MISSED: the server closed connections)",
            ]
        );
        let table = latency_markdown(&latency);
        assert!(
            table.contains("| percore core | 2 | /json | 64 | 80% |"),
            "{table}"
        );
        assert!(idle_markdown(&idle).contains("| percore request | 2 | 20000 |"));
    }

    #[test]
    fn scaling_table_pairs_servers_per_worker_count() {
        let mut samples = Vec::new();
        for (workers, native, core) in [(1, 100.0, 80.0), (2, 180.0, 150.0)] {
            let pin = crate::load::pinning::plan(&[0, 1], workers, 1);
            for (kind, rps) in [
                (ServerKind::Native, native),
                (ServerKind::PercoreCore, core),
            ] {
                let mut s = sample(kind, "/json", 0, rps);
                s.workers = workers;
                s.pinning = pin.clone();
                samples.push(s);
            }
        }
        let table = scaling_markdown(&rows(&samples));
        assert!(
            table.starts_with(
                "| route | conns | depth | workers | pinned | native hyper req/s | \
                 percore core req/s | × native |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| /json | 256 | 1 | 1 | server CPU 0, wrk CPU 1 | 100 | 80 | 0.80× |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| /json | 256 | 1 | 2 | server CPUs 0-1, wrk CPU 1 (shared) | 180 | 150 | 0.83× |"
            ),
            "{table}"
        );
        assert_eq!(scaling_markdown(&[]), "");
    }
}
