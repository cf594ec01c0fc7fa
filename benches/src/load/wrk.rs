//! wrk: building its command line, running it within a time bound, and
//! parsing what it prints (requests/s, latency percentiles, errors). The
//! parser is pure and unit-tested against wrk 4.1's output.
//!
//! Pipelined loads (TechEmpower's `/plaintext`) use `benches/pipeline.lua`,
//! which sends `depth` requests in every write.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use super::cleanup::run_tool;

/// One wrk run.
#[derive(Clone, Debug)]
pub struct WrkRun {
    /// Full URL, e.g. `http://127.0.0.1:40000/plaintext`.
    pub url: String,
    /// wrk threads (`-t`).
    pub threads: u32,
    /// Open connections (`-c`); at least `threads`.
    pub connections: u32,
    /// How long to load (`-d`), whole seconds.
    pub duration: Duration,
    /// Requests per write; 1 means no pipelining.
    pub depth: u32,
    /// The Lua script that pipelines (used when `depth > 1`).
    pub pipeline_script: PathBuf,
    /// For the wiki load: `benches/wiki.lua` and the titles it draws from
    /// (the URL's path is then ignored).
    pub wiki: Option<WikiScript>,
    /// CPUs to pin wrk to (`taskset -c`); empty: not pinned.
    pub cpus: Vec<usize>,
}

/// The wiki load's wrk script and its titles.
#[derive(Clone, Debug)]
pub struct WikiScript {
    /// `benches/wiki.lua`.
    pub script: PathBuf,
    /// Percent-encoded titles, one per line.
    pub titles: PathBuf,
    /// `WIKI_MODE`: `wiki` (`/wiki/<title>`) or `read` (`/read/<title>`).
    pub mode: &'static str,
}

impl WrkRun {
    /// The wrk command line (under `taskset` when pinned).
    pub fn command(&self) -> Command {
        super::pinning::pinned(self.wrk_command(), &self.cpus)
    }

    fn wrk_command(&self) -> Command {
        let mut cmd = Command::new("wrk");
        cmd.arg(format!("-t{}", self.threads.min(self.connections).max(1)))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.duration.as_secs().max(1)))
            .arg("--latency");
        if let Some(wiki) = &self.wiki {
            cmd.arg("-s")
                .arg(&wiki.script)
                .env("WIKI_MODE", wiki.mode)
                .env("WIKI_TITLES", &wiki.titles);
        } else if self.depth > 1 {
            cmd.arg("-s").arg(&self.pipeline_script);
        }
        cmd.arg(&self.url);
        if self.depth > 1 {
            cmd.arg("--").arg(self.depth.to_string());
        }
        cmd
    }

    /// Runs wrk, killing it if it overruns its duration by 30 s, and parses
    /// its output.
    pub fn run(&self) -> anyhow::Result<WrkResult> {
        let limit = self.duration + Duration::from_secs(30);
        let (stdout, stderr) =
            run_tool(&format!("wrk on {}", self.url), &mut self.command(), limit)?;
        parse(&stdout).with_context(|| format!("reading wrk's output:\n{stdout}{stderr}"))
    }
}

/// What one wrk run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WrkResult {
    /// Completed requests per second (`Requests/sec:`).
    pub requests_per_sec: f64,
    /// Completed requests.
    pub requests: u64,
    /// Latency percentiles 50, 75, 90, 99, in microseconds.
    pub latency_us: [f64; 4],
    /// Socket errors: connect + read + write + timeout.
    pub socket_errors: u64,
    /// Responses whose status was not 2xx or 3xx.
    pub non_2xx: u64,
}

impl WrkResult {
    /// Median latency, in microseconds.
    pub fn p50_us(&self) -> f64 {
        self.latency_us[0]
    }

    /// 99th-percentile latency, in microseconds.
    pub fn p99_us(&self) -> f64 {
        self.latency_us[3]
    }

    /// Requests that failed in any way.
    pub fn errors(&self) -> u64 {
        self.socket_errors + self.non_2xx
    }
}

/// Parses wrk's `--latency` output.
pub fn parse(output: &str) -> anyhow::Result<WrkResult> {
    let mut result = WrkResult::default();
    let mut seen_rps = false;
    let mut percentiles = 0;
    for line in output.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            result.requests_per_sec = rest
                .trim()
                .parse()
                .with_context(|| format!("bad Requests/sec line {line:?}"))?;
            seen_rps = true;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for part in rest.split(',') {
                let count = part.split_whitespace().nth(1).unwrap_or("0");
                result.socket_errors += count
                    .parse::<u64>()
                    .with_context(|| format!("bad Socket errors line {line:?}"))?;
            }
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            result.non_2xx = rest
                .trim()
                .parse()
                .with_context(|| format!("bad Non-2xx line {line:?}"))?;
        } else if line.contains(" requests in ") {
            // "1234567 requests in 10.00s, 150.70MB read"
            if let Some(n) = line.split_whitespace().next() {
                result.requests = n.parse().unwrap_or(0);
            }
        } else if let Some((pct, value)) = line.split_once('%') {
            // "50%  1.23ms" in the Latency Distribution block.
            let slot = match pct.trim() {
                "50" => 0,
                "75" => 1,
                "90" => 2,
                "99" => 3,
                _ => continue,
            };
            result.latency_us[slot] = parse_duration_us(value.trim())
                .with_context(|| format!("bad latency line {line:?}"))?;
            percentiles += 1;
        }
    }
    anyhow::ensure!(seen_rps, "no Requests/sec line");
    anyhow::ensure!(
        percentiles == 4,
        "no latency distribution (was wrk run with --latency?)"
    );
    Ok(result)
}

/// Parses a wrk duration such as `812.00us`, `1.23ms`, `2.01s` or `1.50m`
/// into microseconds.
pub fn parse_duration_us(text: &str) -> anyhow::Result<f64> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("{text:?} has no unit"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a number"))?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => anyhow::bail!("{text:?} has an unknown unit {unit:?}"),
    };
    Ok(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
Running 10s test @ http://127.0.0.1:40000/plaintext
  2 threads and 256 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.02ms  31.12ms   81.23%
    Req/Sec    61.20k     4.12k   70.01k    71.50%
  Latency Distribution
     50%    1.95ms
     75%    2.50ms
     90%  812.00us
     99%    1.02s
  1218000 requests in 10.00s, 150.70MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec: 121800.50
Transfer/sec:     15.07MB
";

    #[test]
    fn parses_wrk_output() {
        let r = parse(OUTPUT).unwrap();
        assert_eq!(r.requests_per_sec, 121800.50);
        assert_eq!(r.requests, 1218000);
        assert_eq!(r.latency_us, [1950.0, 2500.0, 812.0, 1.02e6]);
        assert_eq!(r.socket_errors, 5);
        assert_eq!(r.non_2xx, 7);
        assert_eq!(r.errors(), 12);
    }

    #[test]
    fn clean_run_has_no_errors() {
        let clean: String = OUTPUT
            .lines()
            .filter(|l| !l.contains("errors") && !l.contains("Non-2xx"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse(&clean).unwrap().errors(), 0);
    }

    #[test]
    fn refuses_output_without_latency_distribution() {
        let short = "Requests/sec: 10.0\n";
        assert!(parse(short).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_us("812.00us").unwrap(), 812.0);
        assert_eq!(parse_duration_us("1.5ms").unwrap(), 1500.0);
        assert_eq!(parse_duration_us("2.00s").unwrap(), 2e6);
        assert!(parse_duration_us("3.0").is_err());
        assert!(parse_duration_us("3.0ns").is_err());
    }

    #[test]
    fn pipelined_command_passes_depth_to_the_script() {
        let run = WrkRun {
            url: "http://127.0.0.1:1/plaintext".into(),
            threads: 2,
            connections: 256,
            duration: Duration::from_secs(5),
            depth: 16,
            pipeline_script: "benches/pipeline.lua".into(),
            wiki: None,
            cpus: Vec::new(),
        };
        let args: Vec<_> = run
            .command()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-t2",
                "-c256",
                "-d5s",
                "--latency",
                "-s",
                "benches/pipeline.lua",
                "http://127.0.0.1:1/plaintext",
                "--",
                "16"
            ]
        );
    }
}
