//! The open-loop latency client: HTTP/1.1 GETs sent at a fixed total rate
//! over keep-alive connections, with coordinated-omission correction,
//! reported as latency percentiles from an HDR histogram.
//!
//! It owns the schedule (when each request is meant to go out), the client
//! threads (one epoll loop each, over its share of the connections), the
//! response framing (status line, headers, `Content-Length` body) and the
//! merge of the per-thread histograms. It does not warm the server up or
//! pick the rates: the caller does (`load::LatencyPlan`). Its response-head
//! parser, [`parse_head`], also serves `load::idle`.
//!
//! # Why open loop, and the correction
//!
//! A closed-loop client (wrk) sends the next request when the previous
//! response arrives, so a server that stalls also stalls the client, and the
//! requests that would have been sent during the stall are never measured.
//! Here every connection has its own evenly spaced intended send times
//! (interval = connections / rate, connections staggered so that the total
//! is a smooth stream). A connection has at most one request in flight; when
//! its next intended time passes while a response is outstanding, that
//! request goes out as soon as the response arrives, and its latency is still
//! measured from its **intended** time. This is the correction of wrk2 and
//! `oha --latency-correction`.
//!
//! # Timing
//!
//! No tokio here: its timer has 1 ms granularity and would add up to 1 ms to
//! every latency. Each thread sleeps in `epoll_wait` on its sockets and on a
//! `timerfd` armed (absolute, `CLOCK_MONOTONIC`, nanoseconds) for the next
//! intended send time, with the thread's timer slack set to 1 ns. The timerfd
//! rather than `epoll_wait`'s own timeout: rustix calls `epoll_pwait2`
//! (nanosecond timeouts) only with its `linux_5_11` feature, which would be
//! unified into the host's rustix too; without it the timeout is rounded up
//! to whole milliseconds.
//!
//! # End of a run
//!
//! Nothing is scheduled at or after `duration`. Then the client waits at most
//! [`DRAIN`] for the responses still outstanding, and still sends the
//! requests whose intended time fell inside the run but that a slow server
//! held back (so their latencies are recorded too). Whatever is still
//! outstanding or unsent after that counts as an error.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Display;
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::num::NonZeroU64;
use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use rustix::buffer::spare_capacity;
use rustix::event::epoll;
use rustix::fd::OwnedFd;
use rustix::io::Errno;
use rustix::time::{
    ClockId, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec,
};
use serde::Serialize;

/// How long after the run the client still waits for outstanding responses
/// (and sends requests a slow server held back) before counting them as
/// errors.
pub const DRAIN: Duration = Duration::from_secs(2);

/// Bound on opening (or reopening) one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Between opening the connections and the first intended send time: lets
/// every thread start and register its sockets.
const START_DELAY: Duration = Duration::from_millis(20);

/// Per-connection read buffer: holds a response head (which must fit), then
/// serves as scratch space for the body, which is counted and discarded.
const READ_BUFFER: usize = 16 * 1024;

/// Response headers parsed at most.
const MAX_HEADERS: usize = 32;

/// Highest latency the histogram tells apart (ns); longer ones are recorded
/// as this. An hour.
const HIGHEST_NS: u64 = 3_600_000_000_000;

/// Epoll token of a thread's timerfd (connections use their index).
const TIMER: u64 = u64::MAX;

/// Epoll events read per wait.
const EVENTS: usize = 256;

/// One open-loop measurement.
#[derive(Clone, Debug)]
pub struct OpenLoopRun {
    /// The server, e.g. `127.0.0.1:40000`.
    pub addr: SocketAddr,
    /// Path requested, e.g. `/plaintext`.
    pub path: String,
    /// Total intended request rate over all connections, requests/s.
    pub rate: f64,
    /// Keep-alive connections, each with at most one request in flight.
    pub connections: u32,
    /// Client threads (one epoll loop each); at most `connections`.
    pub threads: u32,
    /// How long requests are scheduled; the run takes up to [`DRAIN`] more.
    pub duration: Duration,
}

/// What an open-loop run measured. Latencies are from each request's
/// intended send time to the end of its response, over the successful (2xx)
/// responses.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyResult {
    /// The rate asked for, requests/s.
    pub target_rate: f64,
    /// Successful responses per second of `duration` (those completed while
    /// draining included): below `target_rate` when the server fell behind.
    pub achieved_rate: f64,
    /// Successful (2xx) responses: the histogram's count.
    pub requests: u64,
    /// Non-2xx responses, requests lost to a connection error or close,
    /// requests that could not be sent (the connection would not reopen),
    /// and requests still outstanding or unsent when [`DRAIN`] ran out.
    pub errors: u64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Highest latency, µs.
    pub max_us: f64,
}

impl OpenLoopRun {
    /// Opens the connections, runs the schedule for `duration` (plus at most
    /// [`DRAIN`]), and returns the merged percentiles. Fails when a
    /// connection cannot be opened at the start, or when not one request
    /// succeeded.
    pub fn run(&self) -> anyhow::Result<LatencyResult> {
        anyhow::ensure!(
            self.rate.is_finite() && self.rate > 0.0,
            "open-loop rate must be a positive number of requests/s, got {}",
            self.rate
        );
        anyhow::ensure!(
            self.connections > 0,
            "open-loop client needs at least one connection"
        );
        anyhow::ensure!(
            !self.duration.is_zero(),
            "open-loop duration must not be zero"
        );
        let connections = self.connections as usize;
        let threads = self.threads.clamp(1, self.connections) as usize;
        let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", self.path, self.addr);
        let request = request.as_bytes();

        let mut streams: Vec<Vec<TcpStream>> = (0..threads).map(|_| Vec::new()).collect();
        for conn in 0..connections {
            let stream = connect(self.addr).with_context(|| {
                format!(
                    "opening connection {conn} of {connections} to {} for the open-loop client",
                    self.addr
                )
            })?;
            streams[conn % threads].push(stream);
        }
        let start_ns = now_ns() + nanos(START_DELAY);
        let end_ns = start_ns + nanos(self.duration);

        let tallies = std::thread::scope(|scope| {
            let mut handles = Vec::with_capacity(threads);
            for (thread, streams) in streams.into_iter().enumerate() {
                let schedule = Schedule::new(
                    start_ns,
                    self.rate,
                    connections,
                    thread,
                    threads,
                    streams.len(),
                );
                let worker = Worker::new(self.addr, request, schedule, end_ns, streams)
                    .context("setting up an open-loop client thread")?;
                let handle = std::thread::Builder::new()
                    .name(format!("openloop-{thread}"))
                    .spawn_scoped(scope, move || worker.run())
                    .context("spawning an open-loop client thread")?;
                handles.push(handle);
            }
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .map_err(|_| anyhow::anyhow!("an open-loop client thread panicked"))?
                })
                .collect::<anyhow::Result<Vec<Tally>>>()
        })?;

        let mut histogram = new_histogram()?;
        let (mut requests, mut errors, mut first_error) = (0, 0, None);
        for tally in tallies {
            histogram
                .add(&tally.histogram)
                .context("merging the open-loop latency histograms")?;
            requests += tally.requests;
            errors += tally.errors;
            first_error = first_error.or(tally.first_error);
        }
        if requests == 0 && errors > 0 {
            anyhow::bail!(
                "no request to http://{}{} succeeded in {:?} at {} req/s ({errors} errors; the first: {})",
                self.addr,
                self.path,
                self.duration,
                self.rate,
                first_error.as_deref().unwrap_or("unknown"),
            );
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Ok(LatencyResult {
            target_rate: self.rate,
            achieved_rate: requests as f64 / self.duration.as_secs_f64(),
            requests,
            errors,
            p50_us: us(histogram.value_at_quantile(0.5)),
            p90_us: us(histogram.value_at_quantile(0.9)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            p999_us: us(histogram.value_at_quantile(0.999)),
            max_us: us(histogram.max()),
        })
    }
}

/// When one thread's requests are meant to go out. The thread's requests,
/// over all its connections, are evenly spaced `period_ns` apart and go to
/// its connections in turn; threads are offset by a fraction of a period so
/// that together they interleave.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    /// First intended send time, ns on `CLOCK_MONOTONIC`.
    start_ns: u64,
    /// Between two of this thread's requests, ns.
    period_ns: f64,
    /// This thread's offset, in periods (`thread / threads`).
    phase: f64,
    /// This thread's connections.
    conns: usize,
}

impl Schedule {
    /// The schedule of thread `thread` of `threads`, which owns `conns` of
    /// the `total_conns` connections sharing `rate` requests/s.
    fn new(
        start_ns: u64,
        rate: f64,
        total_conns: usize,
        thread: usize,
        threads: usize,
        conns: usize,
    ) -> Self {
        let thread_rate = rate * conns as f64 / total_conns as f64;
        Schedule {
            start_ns,
            period_ns: 1e9 / thread_rate,
            phase: thread as f64 / threads as f64,
            conns,
        }
    }

    /// Intended send time (ns) of connection `conn`'s `k`-th request
    /// (from 0): one every `conns × period_ns`, i.e. every
    /// `total connections / rate` seconds.
    fn intended(&self, conn: usize, k: u64) -> u64 {
        let slot = self.phase + conn as f64 + k as f64 * self.conns as f64;
        self.start_ns + (slot * self.period_ns) as u64
    }
}

/// What one thread counted.
struct Tally {
    /// Latencies of the successful responses, ns.
    histogram: Histogram<u64>,
    /// Successful responses.
    requests: u64,
    /// See [`LatencyResult::errors`].
    errors: u64,
    /// The first error's reason, for the message when nothing succeeded.
    first_error: Option<String>,
}

/// One keep-alive connection and the request it has in flight.
struct Conn {
    /// The socket: `None` after an error or a close, reopened at the next
    /// send.
    stream: Option<TcpStream>,
    /// Index in this connection's schedule of the request in flight or, when
    /// idle, of the next one.
    k: u64,
    /// Intended send time (ns) of the request in flight; `None` when idle.
    in_flight: Option<u64>,
    /// Bytes of the request written so far: a write can be partial.
    written: usize,
    /// Whether the socket is registered for writability, which it is only
    /// while a write is partial.
    wants_out: bool,
    /// The response head as it arrives, then scratch space for the body.
    buf: Box<[u8]>,
    /// Bytes of the head in `buf` (0 while reading the body).
    filled: usize,
    /// The response's head, once parsed: the body is being read.
    head: Option<Head>,
}

/// A parsed response head, while its body is read.
#[derive(Clone, Copy, Debug)]
struct Head {
    /// The status code.
    status: u16,
    /// Body bytes still to come.
    body_left: usize,
    /// Whether the server closes the connection after this response.
    close: bool,
}

/// What a response head said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// More bytes needed.
    Partial,
    /// A complete head.
    Head {
        /// Its length in bytes; the body follows.
        len: usize,
        /// Status code.
        status: u16,
        /// Body length (`Content-Length`).
        body: usize,
        /// Whether the server closes the connection after the body.
        close: bool,
    },
}

/// Parses a response head far enough to frame the body. Chunked (or any
/// `Transfer-Encoding`) bodies are refused: the servers measured here send
/// `Content-Length`.
pub(crate) fn parse_head(bytes: &[u8]) -> Result<Parsed, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err("more than 32 response headers"),
        Err(_) => return Err("malformed response head"),
    };
    let status = response.code.unwrap_or(0);
    let mut body = None;
    let mut close = response.version == Some(0);
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).ok();
            body = Some(
                value
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or("malformed Content-Length")?,
            );
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("Transfer-Encoding (chunked) responses are not supported");
        } else if header.name.eq_ignore_ascii_case("connection") {
            let value = header.value.trim_ascii();
            close = if value.eq_ignore_ascii_case(b"close") {
                true
            } else if value.eq_ignore_ascii_case(b"keep-alive") {
                false
            } else {
                close
            };
        }
    }
    let body = match body {
        Some(body) => body,
        None if status < 200 || status == 204 || status == 304 => 0,
        None => return Err("response without Content-Length"),
    };
    Ok(Parsed::Head {
        len,
        status,
        body,
        close,
    })
}

/// One client thread: its connections, its epoll loop and its tally.
struct Worker<'a> {
    /// The server, for reopening connections.
    addr: SocketAddr,
    /// The request, built once.
    request: &'a [u8],
    /// When this thread's requests are meant to go out.
    schedule: Schedule,
    /// Nothing is scheduled at or after this (ns).
    end_ns: u64,
    /// The loop stops here at the latest (ns): `end_ns` + [`DRAIN`].
    drain_end_ns: u64,
    /// The epoll instance: every connection's socket and the timer.
    epoll: OwnedFd,
    /// Wakes the loop at the next intended send time (edge-triggered, never
    /// read: each expiry is one wake-up).
    timer: OwnedFd,
    /// The time the timer is armed for (ns), so that it is re-armed only
    /// when the next deadline changes.
    armed_ns: u64,
    /// The connections, indexed by their epoll token.
    conns: Vec<Conn>,
    /// The idle connections by their next intended send time: a connection
    /// is here exactly when it has no request in flight.
    idle: BinaryHeap<Reverse<(u64, usize)>>,
    /// Connections with a request in flight.
    outstanding: usize,
    /// Latencies of the successful responses, ns.
    histogram: Histogram<u64>,
    /// Successful responses.
    requests: u64,
    /// See [`LatencyResult::errors`].
    errors: u64,
    /// The first error's reason.
    first_error: Option<String>,
}

impl<'a> Worker<'a> {
    /// Registers `streams` (already open) and the timer with a new epoll
    /// instance.
    fn new(
        addr: SocketAddr,
        request: &'a [u8],
        schedule: Schedule,
        end_ns: u64,
        streams: Vec<TcpStream>,
    ) -> anyhow::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).context("epoll_create")?;
        let timer = rustix::time::timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
        )
        .context("timerfd_create")?;
        epoll::add(
            &epoll,
            &timer,
            epoll::EventData::new_u64(TIMER),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )
        .context("registering the timerfd with epoll")?;
        let mut conns = Vec::with_capacity(streams.len());
        let mut idle = BinaryHeap::with_capacity(streams.len());
        for (index, stream) in streams.into_iter().enumerate() {
            watch(&epoll, &stream, index).context("registering a connection")?;
            conns.push(Conn {
                stream: Some(stream),
                k: 0,
                in_flight: None,
                written: 0,
                wants_out: false,
                buf: vec![0; READ_BUFFER].into_boxed_slice(),
                filled: 0,
                head: None,
            });
            idle.push(Reverse((schedule.intended(index, 0), index)));
        }
        Ok(Worker {
            addr,
            request,
            schedule,
            end_ns,
            drain_end_ns: end_ns + nanos(DRAIN),
            epoll,
            timer,
            armed_ns: 0,
            conns,
            idle,
            outstanding: 0,
            histogram: new_histogram()?,
            requests: 0,
            errors: 0,
            first_error: None,
        })
    }

    /// The loop: send what is due, sleep until the next intended send time
    /// or a socket event, handle the events; until the run and the drain are
    /// over.
    fn run(mut self) -> anyhow::Result<Tally> {
        // Best effort: with the default 50 µs of slack the kernel may fire
        // the timer that much late, which would show in every latency. The
        // prctl cannot fail for a valid value; if it did, the run is only a
        // little less precise.
        let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(1));
        let mut events: Vec<epoll::Event> = Vec::with_capacity(EVENTS);
        loop {
            let now = now_ns();
            self.send_due(now);
            let next = self
                .idle
                .peek()
                .map(|&Reverse((at, _))| at)
                .filter(|&at| at < self.end_ns);
            if now >= self.drain_end_ns
                || (now >= self.end_ns && self.outstanding == 0 && next.is_none())
            {
                break;
            }
            let deadline = match next {
                Some(at) => at,
                None if now < self.end_ns => self.end_ns,
                None => self.drain_end_ns,
            };
            if deadline <= now {
                continue;
            }
            self.arm(deadline)?;
            match epoll::wait(&self.epoll, spare_capacity(&mut events), None) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e).context("epoll_wait"),
            }
            for event in events.drain(..) {
                let (token, flags) = (event.data.u64(), event.flags);
                if token != TIMER {
                    self.on_event(token as usize, flags);
                }
            }
        }
        self.finish();
        Ok(Tally {
            histogram: self.histogram,
            requests: self.requests,
            errors: self.errors,
            first_error: self.first_error,
        })
    }

    /// Sends every idle connection's request whose intended time is at or
    /// before `now` (and before the end of the run).
    fn send_due(&mut self, now: u64) {
        while let Some(&Reverse((at, index))) = self.idle.peek() {
            if at > now || at >= self.end_ns {
                break;
            }
            self.idle.pop();
            self.send(index, at);
        }
    }

    /// Sends connection `index`'s next request, intended at `intended`,
    /// reopening the connection first if it was closed.
    fn send(&mut self, index: usize, intended: u64) {
        if self.conns[index].stream.is_none() {
            let opened = connect(self.addr).and_then(|stream| {
                watch(&self.epoll, &stream, index)?;
                Ok(stream)
            });
            match opened {
                Ok(stream) => self.conns[index].stream = Some(stream),
                Err(e) => {
                    let addr = self.addr;
                    self.error(format_args!("reconnecting to {addr}: {e}"));
                    let conn = &mut self.conns[index];
                    conn.k += 1;
                    let next = self.schedule.intended(index, conn.k);
                    self.idle.push(Reverse((next, index)));
                    return;
                }
            }
        }
        let conn = &mut self.conns[index];
        conn.in_flight = Some(intended);
        conn.written = 0;
        self.outstanding += 1;
        self.flush(index);
    }

    /// Writes what is left of connection `index`'s request, registering for
    /// writability while the socket's buffer is full.
    fn flush(&mut self, index: usize) {
        let request = self.request;
        let conn = &mut self.conns[index];
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        let failure = loop {
            if conn.written == request.len() {
                break None;
            }
            match stream.write(&request[conn.written..]) {
                Ok(0) => break Some(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => conn.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) => break Some(e),
            }
        };
        if let Some(e) = failure {
            return self.fail(index, format_args!("writing a request: {e}"));
        }
        let wants_out = conn.written < request.len();
        if wants_out != conn.wants_out {
            conn.wants_out = wants_out;
            if let Err(e) = watch_out(&self.epoll, stream, index, wants_out) {
                self.fail(index, format_args!("epoll_ctl: {e}"));
            }
        }
    }

    /// Handles an epoll event on connection `index`.
    fn on_event(&mut self, index: usize, flags: epoll::EventFlags) {
        if self.conns[index].stream.is_none() {
            return;
        }
        if flags.contains(epoll::EventFlags::OUT) && self.conns[index].wants_out {
            self.flush(index);
        }
        let readable = epoll::EventFlags::IN
            | epoll::EventFlags::ERR
            | epoll::EventFlags::HUP
            | epoll::EventFlags::RDHUP;
        if flags.intersects(readable) {
            self.read(index);
        }
    }

    /// Reads from connection `index` and advances its response. One read per
    /// event unless it filled the buffer: the sockets are level-triggered,
    /// so bytes left behind raise another event.
    fn read(&mut self, index: usize) {
        loop {
            let conn = &mut self.conns[index];
            let Some(stream) = conn.stream.as_mut() else {
                return;
            };
            if conn.filled == conn.buf.len() {
                return self.fail(index, "a response head larger than 16 KiB");
            }
            let n = match stream.read(&mut conn.buf[conn.filled..]) {
                Ok(0) => return self.fail(index, "the server closed the connection"),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => return self.fail(index, format_args!("reading a response: {e}")),
            };
            let filled_buffer = conn.filled + n == conn.buf.len();
            if !self.absorb(index, n) || !filled_buffer {
                return;
            }
        }
    }

    /// Takes in `n` bytes just read into connection `index`'s buffer.
    /// Returns whether the connection is still open.
    fn absorb(&mut self, index: usize, n: usize) -> bool {
        let conn = &mut self.conns[index];
        if conn.in_flight.is_none() {
            self.fail(index, "bytes from the server with no request in flight");
            return false;
        }
        let head = match &mut conn.head {
            Some(head) => {
                if n > head.body_left {
                    self.fail(index, "more body bytes than the Content-Length");
                    return false;
                }
                head.body_left -= n;
                *head
            }
            None => {
                conn.filled += n;
                let (len, status, body, close) = match parse_head(&conn.buf[..conn.filled]) {
                    Ok(Parsed::Partial) => return true,
                    Ok(Parsed::Head {
                        len,
                        status,
                        body,
                        close,
                    }) => (len, status, body, close),
                    Err(why) => {
                        self.fail(index, why);
                        return false;
                    }
                };
                let body_read = conn.filled - len;
                if body_read > body {
                    self.fail(index, "more body bytes than the Content-Length");
                    return false;
                }
                conn.filled = 0;
                *conn.head.insert(Head {
                    status,
                    body_left: body - body_read,
                    close,
                })
            }
        };
        if head.body_left > 0 {
            return true;
        }
        self.complete(index, head)
    }

    /// Records connection `index`'s complete response and makes the
    /// connection idle. Returns whether it is still open.
    fn complete(&mut self, index: usize, head: Head) -> bool {
        let now = now_ns();
        let conn = &mut self.conns[index];
        let intended = conn.in_flight.take().unwrap_or(now);
        conn.head = None;
        conn.k += 1;
        self.outstanding -= 1;
        let next = self.schedule.intended(index, conn.k);
        self.idle.push(Reverse((next, index)));
        if (200..300).contains(&head.status) {
            self.histogram
                .saturating_record(now.saturating_sub(intended).max(1));
            self.requests += 1;
        } else {
            self.error(format_args!("status {}", head.status));
        }
        if head.close {
            self.close(index);
            return false;
        }
        true
    }

    /// Drops connection `index` after an error or a close; a request in
    /// flight on it is lost and counted as an error. The connection reopens
    /// at its next send.
    fn fail(&mut self, index: usize, why: impl Display) {
        self.close(index);
        let conn = &mut self.conns[index];
        if conn.in_flight.take().is_some() {
            conn.k += 1;
            self.outstanding -= 1;
            let next = self.schedule.intended(index, conn.k);
            self.idle.push(Reverse((next, index)));
            self.error(why);
        }
    }

    /// Closes connection `index`'s socket and forgets its partial response.
    fn close(&mut self, index: usize) {
        let conn = &mut self.conns[index];
        if let Some(stream) = conn.stream.take() {
            // Closing the socket removes it from the epoll set anyway.
            let _ = epoll::delete(&self.epoll, &stream);
        }
        conn.written = 0;
        conn.wants_out = false;
        conn.filled = 0;
        conn.head = None;
    }

    /// Counts an error, keeping the first one's reason.
    fn error(&mut self, why: impl Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(why.to_string());
        }
    }

    /// After the drain: counts the requests still outstanding, and those
    /// scheduled inside the run but never sent, as errors.
    fn finish(&mut self) {
        let mut lost = 0;
        for (index, conn) in self.conns.iter_mut().enumerate() {
            if conn.in_flight.take().is_some() {
                lost += 1;
                conn.k += 1;
            }
            while self.schedule.intended(index, conn.k) < self.end_ns {
                lost += 1;
                conn.k += 1;
            }
        }
        for _ in 0..lost {
            self.error(format_args!(
                "no response within {DRAIN:?} after the run (the server fell behind the rate)"
            ));
        }
    }

    /// Arms the timer for `at_ns` (absolute, `CLOCK_MONOTONIC`) unless it
    /// already is.
    fn arm(&mut self, at_ns: u64) -> anyhow::Result<()> {
        if at_ns == self.armed_ns {
            return Ok(());
        }
        let spec = Itimerspec {
            it_interval: timespec(0),
            it_value: timespec(at_ns),
        };
        rustix::time::timerfd_settime(&self.timer, TimerfdTimerFlags::ABSTIME, &spec)
            .context("timerfd_settime")?;
        self.armed_ns = at_ns;
        Ok(())
    }
}

/// Opens a keep-alive connection: `TCP_NODELAY`, nonblocking.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// Adds connection `index`'s socket to the epoll set: level-triggered, for
/// reading and the peer's close.
fn watch(epoll: &OwnedFd, stream: &TcpStream, index: usize) -> io::Result<()> {
    let data = epoll::EventData::new_u64(index as u64);
    epoll::add(
        epoll,
        stream,
        data,
        epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
    )?;
    Ok(())
}

/// Watches connection `index`'s socket for writability too, or no longer.
fn watch_out(epoll: &OwnedFd, stream: &TcpStream, index: usize, out: bool) -> io::Result<()> {
    let mut flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
    if out {
        flags |= epoll::EventFlags::OUT;
    }
    epoll::modify(
        epoll,
        stream,
        epoll::EventData::new_u64(index as u64),
        flags,
    )?;
    Ok(())
}

/// A latency histogram: 1 ns to an hour, 3 significant digits.
fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, HIGHEST_NS, 3).context("creating a latency histogram")
}

/// Now on `CLOCK_MONOTONIC`, ns (the clock the timerfd uses).
fn now_ns() -> u64 {
    let now = rustix::time::clock_gettime(ClockId::Monotonic);
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// `ns` as a `Timespec`.
fn timespec(ns: u64) -> Timespec {
    Timespec {
        tv_sec: (ns / 1_000_000_000) as _,
        tv_nsec: (ns % 1_000_000_000) as _,
    }
}

/// A duration in ns, saturating.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;
    use std::time::Duration;

    use super::{OpenLoopRun, Parsed, Schedule, parse_head};

    /// A thread-per-connection HTTP/1.1 server on `127.0.0.1:0` that answers
    /// every request with `status`, after `delay`; stopped on drop.
    struct TestServer {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
    }

    impl TestServer {
        fn start(status: &'static str, delay: Duration) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let stopped = stop.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopped.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        thread::spawn(move || answer(stream, status, delay));
                    }
                }
            });
            TestServer { addr, stop }
        }

        fn run(&self, rate: f64, connections: u32, duration: Duration) -> OpenLoopRun {
            OpenLoopRun {
                addr: self.addr,
                path: "/plaintext".into(),
                rate,
                connections,
                threads: 2,
                duration,
            }
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            // Wakes the accept loop so that it sees the flag.
            let _ = TcpStream::connect(self.addr);
        }
    }

    /// Answers each request on `stream`: the head and the body in separate
    /// writes, so that the client sees them in separate reads.
    fn answer(mut stream: TcpStream, status: &str, delay: Duration) {
        stream.set_nodelay(true).unwrap();
        let head = format!("HTTP/1.1 {status}\r\nContent-Length: 13\r\nServer: test\r\n\r\n");
        let mut pending = Vec::new();
        let mut chunk = [0; 1024];
        loop {
            while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let request = String::from_utf8_lossy(&pending[..end]).into_owned();
                assert!(request.starts_with("GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:"));
                pending.drain(..end + 4);
                thread::sleep(delay);
                let sent = stream
                    .write_all(head.as_bytes())
                    .and_then(|()| stream.write_all(b"Hello, World!"));
                if sent.is_err() {
                    return;
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            }
        }
    }

    #[test]
    fn sends_at_the_rate_asked() {
        let server = TestServer::start("200 OK", Duration::ZERO);
        let result = server.run(2000.0, 4, Duration::from_secs(1)).run().unwrap();
        eprintln!("{result:?}");
        assert!(
            (1500..2500).contains(&result.requests),
            "requests: {result:?}"
        );
        assert_eq!(result.errors, 0, "{result:?}");
        assert!(result.p50_us > 0.0, "{result:?}");
        assert!(result.p50_us <= result.p99_us && result.p99_us <= result.max_us);
    }

    #[test]
    fn a_slow_server_is_measured_from_the_intended_send_times() {
        // Every response takes 50 ms, but the one connection is meant to send
        // every 10 ms: request n goes out about 40 n ms late. A closed-loop
        // client would report about 50 ms for all of them.
        let server = TestServer::start("200 OK", Duration::from_millis(50));
        let result = server.run(100.0, 1, Duration::from_secs(1)).run().unwrap();
        eprintln!("{result:?}");
        assert!(result.p99_us > 200_000.0, "{result:?}");
        assert!(result.achieved_rate < 100.0, "{result:?}");
    }

    #[test]
    fn no_successful_response_is_an_error() {
        let server = TestServer::start("404 Not Found", Duration::ZERO);
        let err = server
            .run(200.0, 2, Duration::from_millis(200))
            .run()
            .unwrap_err();
        assert!(format!("{err:#}").contains("status 404"), "{err:#}");
    }

    #[test]
    fn a_dead_server_is_an_error() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let run = OpenLoopRun {
            addr,
            path: "/".into(),
            rate: 100.0,
            connections: 2,
            threads: 1,
            duration: Duration::from_millis(100),
        };
        assert!(run.run().is_err());
    }

    #[test]
    fn connections_are_evenly_spaced_and_threads_interleave() {
        // 1000 req/s over 4 connections in 2 threads: each connection every
        // 4 ms, the four together every 1 ms.
        let a = Schedule::new(0, 1000.0, 4, 0, 2, 2);
        let b = Schedule::new(0, 1000.0, 4, 1, 2, 2);
        let mut times: Vec<u64> = (0..3)
            .flat_map(|k| {
                [
                    a.intended(0, k),
                    a.intended(1, k),
                    b.intended(0, k),
                    b.intended(1, k),
                ]
            })
            .collect();
        assert_eq!(a.intended(1, 1) - a.intended(1, 0), 4_000_000);
        times.sort_unstable();
        let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g == 1_000_000), "{gaps:?}");
    }

    #[test]
    fn response_heads() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\nHello";
        assert_eq!(
            parse_head(ok),
            Ok(Parsed::Head {
                len: 39,
                status: 200,
                body: 13,
                close: false
            })
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nConte"), Ok(Parsed::Partial));
        let close = b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            parse_head(close),
            Ok(Parsed::Head {
                status: 503,
                close: true,
                ..
            })
        ));
        let no_content = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert!(matches!(
            parse_head(no_content),
            Ok(Parsed::Head { body: 0, .. })
        ));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(parse_head(chunked).is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }
}
