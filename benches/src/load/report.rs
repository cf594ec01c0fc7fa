//! From samples to the table: groups the rounds of each (server, load,
//! workers), takes medians, divides by native hyper's median for the same
//! load, and renders Markdown that pastes into `benches/RESULTS.md`.

use std::fmt::Write as _;

use super::servers::{CpuTime, ServerKind};
use super::{Load, Sample};

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

/// Lines saying whether percore reached the targets (core ≥ 0.8×,
/// request ≥ 0.5× native hyper).
pub fn verdicts(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter_map(|r| {
            let target = match r.kind {
                ServerKind::Native => return None,
                ServerKind::PercoreCore => 0.8,
                ServerKind::PercoreRequest => 0.5,
                ServerKind::PercoreCoreNoDeadlines => return None,
            };
            let ratio = r.ratio?;
            Some(format!(
                "{} {} c{} d{} w{}: {ratio:.2}× native (target {target}×: {})",
                r.kind.label(),
                r.load.route,
                r.load.connections,
                r.load.depth,
                r.workers,
                if ratio >= target { "met" } else { "MISSED" }
            ))
        })
        .collect()
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
                "warning: {} {} c{} d{}: other processes used up to {:.0}% of a core meanwhile; \
                 rerun on a quiet machine before trusting this row",
                r.kind.label(),
                r.load.route,
                r.load.connections,
                r.load.depth,
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
                latency_us: [100.0 * rps / 1000.0, 0.0, 0.0, 1000.0],
                ..WrkResult::default()
            },
            cpu: CpuTime {
                user: 12.0,
                system: 6.0,
            },
            wrk_cpu: CpuTime::default(),
            other_cpu: 0.0,
            rss_kib: 2048,
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
            ["percore core /plaintext c256 d1 w2: 0.73× native (target 0.8×: MISSED)"]
        );
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
}
