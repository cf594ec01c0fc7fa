//! The fixed-rate latency client: runs `oha` (crates.io, installed by
//! `benches/load` into the bench tools directory at [`OHA_VERSION`]) in
//! open-loop mode with coordinated-omission correction, and reads its JSON
//! summary into a [`LatencyResult`]. It owns the command line, the version
//! check and the JSON parser (pure, unit-tested against oha 1.16's output);
//! the caller picks the rates (`load::LatencyPlan`).
//!
//! # What oha does with these flags
//!
//! `oha -q RATE --latency-correction -z SECS -c CONNS -w --no-tui
//! --output-format json --stats-success-breakdown URL`: one task schedules
//! the intended send times (`i / RATE` after the start) and queues them; `-c`
//! keep-alive connections take them from the queue, one request in flight
//! each, so a stalled server does not slow the schedule down (open loop),
//! and each latency is counted from the time its request was scheduled, not
//! from when a connection became free to send it (the correction of wrk2).
//! `-w` lets the requests in flight at the end finish and count.
//!
//! Its scheduler sleeps on tokio's timer, which has a 1 ms resolution: it
//! releases the requests due in each millisecond together, and a request's
//! latency starts when the scheduler woke for it. Sub-millisecond
//! latencies are therefore those of small bursts (`RATE / 1000` requests
//! at once), the same for every server measured.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::cleanup::run_tool;

/// The oha version the harness installs and expects (`benches/load` reads
/// it from this line).
pub const OHA_VERSION: &str = "1.16.0";

/// One fixed-rate measurement.
#[derive(Clone, Debug)]
pub struct OhaRun {
    /// The oha binary.
    pub oha: PathBuf,
    /// Full URL, e.g. `http://127.0.0.1:40000/json`.
    pub url: String,
    /// Total intended request rate over all connections, requests/s.
    pub rate: f64,
    /// Keep-alive connections, each with at most one request in flight.
    pub connections: u32,
    /// oha's tokio worker threads.
    pub threads: u32,
    /// How long requests are scheduled.
    pub duration: Duration,
}

/// What a fixed-rate run measured. Latencies are from each request's
/// scheduled send time to the end of its response, over the successful
/// (2xx) responses.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyResult {
    /// The rate asked for, requests/s.
    pub target_rate: f64,
    /// Successful responses per second of the run: below `target_rate`
    /// when the server fell behind.
    pub achieved_rate: f64,
    /// Successful (2xx) responses.
    pub requests: u64,
    /// Non-2xx responses plus failed requests (connection errors,
    /// timeouts).
    pub errors: u64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 90th percentile, microseconds.
    pub p90_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile, microseconds.
    pub p999_us: f64,
    /// Slowest response, microseconds.
    pub max_us: f64,
}

impl OhaRun {
    /// The oha command line.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.oha);
        cmd.arg("-q")
            .arg(format!("{:.0}", self.rate.max(1.0)))
            .arg("--latency-correction")
            .arg("-z")
            .arg(format!("{}s", self.duration.as_secs().max(1)))
            .arg("-c")
            .arg(self.connections.max(1).to_string())
            .arg("-w")
            .arg("--worker-threads")
            .arg(self.threads.max(1).to_string())
            .arg("--no-tui")
            .arg("--output-format")
            .arg("json")
            .arg("--stats-success-breakdown")
            .arg(&self.url)
            // oha reads its thread count from here too; the flag wins, but
            // a server's setting must not leak into the client.
            .env_remove("TOKIO_WORKER_THREADS")
            .env("NO_COLOR", "true");
        cmd
    }

    /// Runs oha, killing it if it overruns its duration by 30 s, and parses
    /// its JSON.
    pub fn run(&self) -> anyhow::Result<LatencyResult> {
        let limit = self.duration + Duration::from_secs(30);
        let (stdout, stderr) =
            run_tool(&format!("oha on {}", self.url), &mut self.command(), limit)?;
        parse(&stdout, self.rate).with_context(|| format!("reading oha's JSON:\n{stdout}{stderr}"))
    }
}

/// The parts of oha's JSON summary the harness reads (times in seconds).
#[derive(Debug, Deserialize)]
struct Summary {
    summary: Totals,
    #[serde(rename = "latencyPercentiles")]
    latency_percentiles: Percentiles,
    /// Present with `--stats-success-breakdown`: 2xx responses only.
    #[serde(rename = "latencyPercentilesSuccessful")]
    latency_percentiles_successful: Option<Percentiles>,
    #[serde(rename = "statusCodeDistribution")]
    status_code_distribution: std::collections::BTreeMap<String, u64>,
    #[serde(rename = "errorDistribution")]
    error_distribution: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
struct Totals {
    /// Wall-clock seconds of the run.
    total: f64,
    /// The slowest response (any status), seconds; null when none came.
    slowest: Option<f64>,
}

/// oha's percentiles, seconds (null when nothing was measured).
#[derive(Debug, Deserialize)]
struct Percentiles {
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    #[serde(rename = "p99.9")]
    p999: Option<f64>,
}

/// Reads oha's `--output-format json` summary of a run at `target_rate`.
pub fn parse(json: &str, target_rate: f64) -> anyhow::Result<LatencyResult> {
    let s: Summary = serde_json::from_str(json.trim())?;
    let mut ok = 0;
    let mut not_ok = 0;
    for (status, count) in &s.status_code_distribution {
        if status.starts_with('2') {
            ok += count;
        } else {
            not_ok += count;
        }
    }
    let failed: u64 = s.error_distribution.values().sum();
    anyhow::ensure!(
        ok > 0,
        "no successful response ({not_ok} non-2xx; errors: {:?})",
        s.error_distribution
    );
    let p = s
        .latency_percentiles_successful
        .as_ref()
        .unwrap_or(&s.latency_percentiles);
    let us = |seconds: Option<f64>| seconds.unwrap_or(f64::NAN) * 1e6;
    Ok(LatencyResult {
        target_rate,
        achieved_rate: ok as f64 / s.summary.total.max(1e-9),
        requests: ok,
        errors: not_ok + failed,
        p50_us: us(p.p50),
        p90_us: us(p.p90),
        p99_us: us(p.p99),
        p999_us: us(p.p999),
        max_us: us(s.summary.slowest),
    })
}

/// `oha --version`'s line (`oha 1.16.0`), or why oha cannot be used: not
/// installed at `oha`, or not [`OHA_VERSION`].
pub fn ready(oha: &Path) -> Result<String, String> {
    if !oha.exists() {
        return Err(format!(
            "{} is not installed (benches/load installs oha {OHA_VERSION} there with cargo install)",
            oha.display()
        ));
    }
    let out = Command::new(oha)
        .arg("--version")
        .output()
        .map_err(|e| format!("running {} --version: {e}", oha.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && version.split_whitespace().nth(1) == Some(OHA_VERSION) {
        Ok(version)
    } else {
        Err(format!(
            "{} is {version:?}, not oha {OHA_VERSION} (benches/load installs that one)",
            oha.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// oha 1.16.0's JSON for `-q 2000 --latency-correction -z 2s -c 8 -w
    /// --stats-success-breakdown` (histograms trimmed).
    const OUTPUT: &str = r#"{
  "summary": {
    "successRate": 1.0,
    "total": 2.0004,
    "slowest": 0.0031,
    "fastest": 0.00005,
    "average": 0.00021,
    "requestsPerSec": 2000.1,
    "totalData": 108000,
    "sizePerRequest": 27,
    "sizePerSec": 53990.2
  },
  "metrics": {"success_rate": 1.0, "requests_per_sec": 2000.1,
    "latency_ms": {"min": 0.05, "mean": 0.21, "p50": 0.18, "p95": 0.4, "p99": 0.9, "max": 3.1}},
  "responseTimeHistogram": {"0.00005": 1},
  "latencyPercentiles": {"p10": 0.0001, "p25": 0.00012, "p50": 0.00019, "p75": 0.00025,
    "p90": 0.00031, "p95": 0.0004, "p99": 0.0009, "p99.9": 0.0025, "p99.99": 0.003},
  "firstByteHistogram": {},
  "firstBytePercentiles": {},
  "responseTimeHistogramSuccessful": {"0.00005": 1},
  "latencyPercentilesSuccessful": {"p10": 0.0001, "p25": 0.00012, "p50": 0.00018,
    "p75": 0.00025, "p90": 0.0003, "p95": 0.0004, "p99": 0.0009, "p99.9": 0.0024, "p99.99": 0.003},
  "responseTimeHistogramNotSuccessful": {},
  "latencyPercentilesNotSuccessful": {"p10": null, "p25": null, "p50": null, "p75": null,
    "p90": null, "p95": null, "p99": null, "p99.9": null, "p99.99": null},
  "rps": {"mean": 2000.0, "stddev": 10.0, "max": 2100.0, "min": 1900.0, "percentiles": {}},
  "details": {"DNSDialup": {"average": 0.0001, "fastest": 0.0001, "slowest": 0.0002},
    "DNSLookup": {"average": 0.0, "fastest": 0.0, "slowest": 0.0},
    "firstByte": {"average": 0.0002, "fastest": 0.00004, "slowest": 0.003}},
  "statusCodeDistribution": {"200": 3996, "503": 4},
  "errorDistribution": {"connection closed": 2}
}"#;

    #[test]
    fn parses_oha_json() {
        let r = parse(OUTPUT, 2000.0).unwrap();
        assert_eq!(r.requests, 3996);
        assert_eq!(r.errors, 6);
        assert_eq!(r.target_rate, 2000.0);
        assert!((r.achieved_rate - 3996.0 / 2.0004).abs() < 1e-9);
        // The 2xx-only percentiles, in microseconds.
        assert!((r.p50_us - 180.0).abs() < 1e-6);
        assert!((r.p90_us - 300.0).abs() < 1e-6);
        assert!((r.p99_us - 900.0).abs() < 1e-6);
        assert!((r.p999_us - 2400.0).abs() < 1e-6);
        assert!((r.max_us - 3100.0).abs() < 1e-6);
    }

    #[test]
    fn no_successful_response_is_an_error() {
        let none = OUTPUT.replace(r#""200": 3996, "#, "");
        assert!(parse(&none, 2000.0).is_err());
        assert!(parse("not json", 1.0).is_err());
    }

    #[test]
    fn command_asks_for_the_corrected_open_loop() {
        let run = OhaRun {
            oha: "oha".into(),
            url: "http://127.0.0.1:1/json".into(),
            rate: 1234.4,
            connections: 64,
            threads: 2,
            duration: Duration::from_secs(5),
        };
        let args: Vec<_> = run
            .command()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "-q 1234 --latency-correction -z 5s -c 64 -w --worker-threads 2 --no-tui \
             --output-format json --stats-success-breakdown http://127.0.0.1:1/json"
        );
    }
}
