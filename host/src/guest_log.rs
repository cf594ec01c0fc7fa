//! Guest output: what a handler writes to its stdout and stderr becomes
//! lines of the host's log (`tracing`, target `percore::guest`), each with
//! the route's prefix, the stream, and (through [`crate::trace`]) the
//! request's trace id. A Rust guest's panic message is printed to stderr
//! before the guest traps, so it lands in the log next to the trap.
//!
//! The host links its own `wasi:cli/stdout` and `wasi:cli/stderr` (see
//! [`crate::engine`]): a store's output state is made when the guest first
//! asks for either stream, so an instance that never prints costs nothing.
//!
//! What a guest can make the host write is bounded three ways, none of
//! which waits:
//!
//! - per request: at most [`MAX_CALL_BYTES`] of lines, then one
//!   "truncated" line, and the rest of the request's output is dropped;
//! - per line: at most [`MAX_LINE_BYTES`] (a longer line is split);
//! - per route and worker: a token bucket of [`LINES_PER_SECOND`] lines a
//!   second (bursts of [`BURST_LINES`]); lines over it are dropped and
//!   counted, and the count is logged once, when the bucket next has room.
//!
//! Dropped lines are counted by reason in the route's metrics
//! ([`RouteMetrics::guest_log_dropped`]). Lines are split at `\n` (a
//! trailing `\r` is removed, blank lines are skipped); a line left
//! unfinished when the call ends (returns, traps, runs past its deadline)
//! is logged then. Control characters are escaped, so a guest cannot forge
//! or erase log lines.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime_wasi::WasiView as _;
use wasmtime_wasi::p2::bindings::cli::{stderr, stdout};
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamResult};

use crate::host_functions::HostState;
use crate::stats::{LogDrop, RouteMetrics};

/// The log target of guest output: `PERCORE_LOG=info,percore::guest=off`
/// silences it.
pub const TARGET: &str = "percore::guest";
/// Most bytes of output (lines and their ends) one request may log.
pub const MAX_CALL_BYTES: usize = 16 << 10;
/// Longest line logged as one; a longer one is split.
pub const MAX_LINE_BYTES: usize = 2 << 10;
/// Lines a second one route may log on one worker, in the long run.
pub const LINES_PER_SECOND: f64 = 100.0;
/// Lines one route may log on one worker at once, after a quiet spell.
pub const BURST_LINES: f64 = 200.0;
/// Most bytes one `write` may hand over (the permit `check-write` gives).
const WRITE_PERMIT: usize = 64 << 10;

/// A guest's output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `wasi:cli/stdout`.
    Stdout = 0,
    /// `wasi:cli/stderr`.
    Stderr = 1,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One route's guest output on one worker: its prefix, its rate limit, and
/// where drops are counted. Shared by the route's instances on the worker
/// (only that worker's thread takes its lock, so it is never contended).
pub struct RouteLog {
    /// The route prefix, in every line (and the `x-percore-route` a guest
    /// reads from its `fields`).
    pub prefix: String,
    /// The route's rate limit on this worker.
    bucket: Mutex<Bucket>,
    /// The route's metrics on this worker, when they are kept.
    metrics: Option<Arc<RouteMetrics>>,
}

/// A token bucket of lines.
struct Bucket {
    /// Lines that may be logged now.
    tokens: f64,
    /// When `tokens` was last refilled.
    refilled: Instant,
    /// Lines dropped for the rate since the last report of them.
    unreported: u64,
}

impl Bucket {
    /// Refills the bucket for the time since the last refill, then takes
    /// a token if there is one.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * LINES_PER_SECOND).min(BURST_LINES);
        self.refilled = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

impl RouteLog {
    /// The log of route `prefix` on a worker, counting drops in `metrics`.
    pub fn new(prefix: &str, metrics: Option<Arc<RouteMetrics>>) -> RouteLog {
        RouteLog {
            prefix: prefix.to_owned(),
            bucket: Mutex::new(Bucket {
                tokens: BURST_LINES,
                refilled: Instant::now(),
                unreported: 0,
            }),
            metrics,
        }
    }

    /// Whether one more line may be logged now (taking its token); first
    /// reports the lines dropped since the last report, if any.
    fn admit(&self) -> bool {
        let mut bucket = self.bucket.lock().expect("guest log bucket poisoned");
        if !bucket.take() {
            bucket.unreported += 1;
            drop(bucket);
            self.count(LogDrop::RateLimit, 1);
            return false;
        }
        let unreported = std::mem::take(&mut bucket.unreported);
        drop(bucket);
        self.report_dropped(unreported);
        true
    }

    /// Reports the lines dropped for the rate, if there are any and the
    /// bucket has room for the report.
    fn report(&self) {
        let mut bucket = self.bucket.lock().expect("guest log bucket poisoned");
        if bucket.unreported > 0 && bucket.take() {
            let unreported = std::mem::take(&mut bucket.unreported);
            drop(bucket);
            self.report_dropped(unreported);
        }
    }

    fn report_dropped(&self, lines: u64) {
        if lines > 0 {
            tracing::warn!(
                target: TARGET,
                route = %self.prefix,
                "{lines} lines of guest output were dropped: over the limit of {LINES_PER_SECOND} lines a second per route and worker"
            );
        }
    }

    fn count(&self, why: LogDrop, lines: u64) {
        if let Some(metrics) = &self.metrics {
            metrics.guest_log_dropped[why as usize].add(lines);
        }
    }
}

/// One instance's stdout and stderr (a field of its [`HostState`]): the
/// route's log, and the output of the call in progress, made when the
/// guest first asks for a stream.
pub struct GuestOutput {
    route: Arc<RouteLog>,
    call: Option<Arc<Mutex<CallOutput>>>,
}

impl GuestOutput {
    /// The output of an instance of the route logged by `route`.
    pub fn new(route: Arc<RouteLog>) -> GuestOutput {
        GuestOutput { route, call: None }
    }

    /// The route's prefix.
    pub fn prefix(&self) -> &str {
        &self.route.prefix
    }

    /// A handle on `stream`, for the guest's resource table.
    fn stream(&mut self, stream: Stream) -> GuestStream {
        let call = self.call.get_or_insert_with(|| {
            Arc::new(Mutex::new(CallOutput {
                route: self.route.clone(),
                partial: [Vec::new(), Vec::new()],
                bytes: 0,
                truncated: false,
            }))
        });
        GuestStream {
            call: call.clone(),
            stream,
        }
    }

    /// Ends the call in progress: logs its unfinished lines and resets its
    /// budget for the next call.
    pub fn end_call(&mut self) {
        if let Some(call) = &self.call {
            call.lock().expect("guest output poisoned").end();
        }
    }
}

/// The output of the call in progress of one instance.
struct CallOutput {
    route: Arc<RouteLog>,
    /// The unfinished line of each stream (at most [`MAX_LINE_BYTES`]).
    partial: [Vec<u8>; 2],
    /// Bytes logged in this call.
    bytes: usize,
    /// Whether this call's output went past [`MAX_CALL_BYTES`].
    truncated: bool,
}

impl CallOutput {
    /// Takes `bytes` written to `stream`, logging each line it completes.
    fn write(&mut self, stream: Stream, mut bytes: &[u8]) {
        if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
            return;
        }
        while !bytes.is_empty() {
            if self.truncated {
                let lines = bytes.iter().filter(|&&b| b == b'\n').count();
                self.route.count(LogDrop::Truncated, lines as u64);
                return;
            }
            let partial = &mut self.partial[stream as usize];
            let room = MAX_LINE_BYTES - partial.len();
            let window = &bytes[..bytes.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    partial.extend_from_slice(&window[..end]);
                    bytes = &bytes[end + 1..];
                }
                None => {
                    partial.extend_from_slice(window);
                    bytes = &bytes[window.len()..];
                    if window.len() < room {
                        // The line goes on in a later write.
                        return;
                    }
                }
            }
            self.line(stream);
        }
    }

    /// Logs the line `stream` holds, within the call's and the route's
    /// limits, and empties it.
    fn line(&mut self, stream: Stream) {
        let line = &self.partial[stream as usize];
        if line.is_empty() || line == b"\r" {
            // A blank line (a panic message starts with one) says nothing.
            self.partial[stream as usize].clear();
            return;
        }
        let cost = line.len() + 1;
        if self.bytes + cost > MAX_CALL_BYTES {
            self.truncated = true;
            self.route.count(LogDrop::Truncated, 1);
            if self.route.admit() {
                tracing::warn!(
                    target: TARGET,
                    route = %self.route.prefix,
                    "guest output truncated: the request wrote more than {MAX_CALL_BYTES} bytes; the rest of its output is dropped"
                );
            }
        } else {
            self.bytes += cost;
            if self.route.admit() {
                tracing::info!(
                    target: TARGET,
                    route = %self.route.prefix,
                    stream = %stream.as_str(),
                    "{}",
                    clean(line)
                );
            }
        }
        self.partial[stream as usize].clear();
    }

    /// Logs the unfinished lines and resets the budget.
    fn end(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if !self.partial[stream as usize].is_empty() {
                if self.truncated {
                    self.route.count(LogDrop::Truncated, 1);
                    self.partial[stream as usize].clear();
                } else {
                    self.line(stream);
                }
            }
        }
        self.bytes = 0;
        self.truncated = false;
        self.route.report();
    }
}

impl Drop for CallOutput {
    /// An instance dropped mid-call (past its deadline) still logs what it
    /// wrote.
    fn drop(&mut self) {
        self.end();
    }
}

/// A line as logged: lossy UTF-8, without a trailing `\r`, with control
/// characters other than tab escaped (`\u{1b}`).
fn clean(line: &[u8]) -> Cow<'_, str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    let bad = |c: char| c.is_control() && c != '\t';
    if !text.chars().any(bad) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            let _ = write!(out, "{}", c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A guest's stdout or stderr: always ready, takes every write at once.
struct GuestStream {
    call: Arc<Mutex<CallOutput>>,
    stream: Stream,
}

impl GuestStream {
    fn take(&self, bytes: &[u8]) {
        self.call
            .lock()
            .expect("guest output poisoned")
            .write(self.stream, bytes);
    }
}

impl OutputStream for GuestStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStream {
    async fn ready(&mut self) {}
}

/// Links `wasi:cli/stdout` and `wasi:cli/stderr` to the streams above
/// (over WASI's own, which discard what they get: the linker must allow
/// shadowing).
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    stdout::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
    stderr::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
}

impl stdout::Host for HostState {
    fn get_stdout(&mut self) -> wasmtime::Result<Resource<DynOutputStream>> {
        let stream: DynOutputStream = Box::new(self.output.stream(Stream::Stdout));
        Ok(self.ctx().table.push(stream)?)
    }
}

impl stderr::Host for HostState {
    fn get_stderr(&mut self) -> wasmtime::Result<Resource<DynOutputStream>> {
        let stream: DynOutputStream = Box::new(self.output.stream(Stream::Stderr));
        Ok(self.ctx().table.push(stream)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::HostStats;

    /// A log writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    /// Runs `f` with a fresh output of route `/t` (metrics kept), and
    /// returns the log lines it made and the route's drop counts.
    fn logged(f: impl FnOnce(&mut GuestOutput)) -> (Vec<String>, [u64; 2]) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .finish();
        let recorder = HostStats::new(1, true).worker(0).recorder("/t").unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let mut output = GuestOutput::new(Arc::new(RouteLog::new(
                "/t",
                Some(recorder.metrics.clone()),
            )));
            f(&mut output);
        });
        let dropped = [
            recorder.metrics.guest_log_dropped[0].get(),
            recorder.metrics.guest_log_dropped[1].get(),
        ];
        (captured.lines(), dropped)
    }

    fn write(output: &mut GuestOutput, stream: Stream, bytes: &[u8]) {
        let mut handle = output.stream(stream);
        OutputStream::write(&mut handle, bytes::Bytes::copy_from_slice(bytes)).unwrap();
    }

    #[test]
    fn lines_are_split_cleaned_and_finished_at_the_end_of_the_call() {
        let (lines, dropped) = logged(|output| {
            write(output, Stream::Stdout, b"one\r\ntw");
            write(output, Stream::Stderr, b"err\n\n");
            write(output, Stream::Stdout, b"o\n\x1b[2Jthree");
            output.end_call();
        });
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(
            lines[0].ends_with("one route=/t stream=stdout"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with("err route=/t stream=stderr"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with("two route=/t stream=stdout"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].ends_with("\\u{1b}[2Jthree route=/t stream=stdout"),
            "{}",
            lines[3]
        );
        assert_eq!(dropped, [0, 0]);
    }

    #[test]
    fn a_long_line_is_split() {
        let (lines, _) = logged(|output| {
            write(output, Stream::Stdout, &[b'x'; MAX_LINE_BYTES + 10]);
            write(output, Stream::Stdout, b"\n");
        });
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].contains(&"x".repeat(MAX_LINE_BYTES)));
        assert!(lines[1].contains(&format!(" {} route", "x".repeat(10))));
    }

    #[test]
    fn a_call_logs_at_most_its_bytes_then_one_truncation_line() {
        let line = [b'y'; 999];
        let (lines, dropped) = logged(|output| {
            for _ in 0..2 {
                for _ in 0..(MAX_CALL_BYTES / 1000 + 10) {
                    write(output, Stream::Stdout, &line);
                    write(output, Stream::Stdout, b"\n");
                }
                output.end_call();
            }
        });
        let per_call = MAX_CALL_BYTES / 1000;
        let truncations = lines.iter().filter(|l| l.contains("truncated")).count();
        assert_eq!(truncations, 2, "one per call");
        assert_eq!(lines.len(), 2 * (per_call + 1));
        assert_eq!(dropped, [0, 2 * 10]);
    }

    #[test]
    fn a_route_logs_at_most_its_burst_then_reports_what_it_dropped() {
        let (lines, dropped) = logged(|output| {
            // Far more than the bucket refills while this loop runs.
            for i in 0..(BURST_LINES as usize + 1000) {
                write(output, Stream::Stderr, format!("{i}\n").as_bytes());
                // Each call has a budget of its own; the route's rate is
                // shared.
                output.end_call();
            }
            // Past the burst: the report waits for a token.
            std::thread::sleep(std::time::Duration::from_millis(
                (2000.0 / LINES_PER_SECOND) as u64,
            ));
            write(output, Stream::Stderr, b"later\n");
        });
        let reports: Vec<&String> = lines.iter().filter(|l| l.contains("dropped")).collect();
        assert_eq!(reports.len(), 1, "{lines:#?}");
        assert!(lines.last().unwrap().contains("later"));
        assert!((1..=1000).contains(&dropped[0]), "{dropped:?}");
        assert!(
            reports[0].contains(&format!("{} lines of guest output", dropped[0])),
            "{}",
            reports[0]
        );
    }
}
