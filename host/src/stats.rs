//! What the workers are doing, kept so that nothing on the request path is
//! shared across cores: each worker writes only its own
//! [`WorkerCounters`] and its own [`RouteMetrics`] per route (each on cache
//! lines of its own, written by that worker's thread alone), and a reader
//! sums them ([`HostStats`], the ops listener's `/metrics`).
//!
//! A worker's counters are [`Counter`]s: one writer, so an increment is a
//! plain load and store (no locked instruction), and any thread may read
//! them. The duration histograms have fixed buckets
//! ([`DURATION_BUCKETS_NS`]). A route's request series (one per method and
//! status) are created on first use; the worker finds them through its own
//! cache ([`RouteRecorder`]), so the lock that publishes a new series to
//! the reader is taken once per series, not per request.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A counter with one writer (its worker's thread) and any number of
/// readers: the writer's increment is a load and a store, never a locked
/// read-modify-write.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker's thread calls it.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// The value now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the duration histograms' buckets, in nanoseconds: from
/// 100 µs (a guest call here takes 1-10 µs) to 10 s (the default
/// deadline); the last bucket, past them all, is `+Inf`.
pub const DURATION_BUCKETS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A duration histogram with the fixed buckets [`DURATION_BUCKETS_NS`],
/// written by one worker.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [Counter; DURATION_BUCKETS_NS.len() + 1],
    /// Sum of the observations, in nanoseconds.
    sum_ns: Counter,
}

impl Histogram {
    /// Records one duration.
    #[inline]
    pub fn observe(&self, duration: Duration) {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let bucket = DURATION_BUCKETS_NS.partition_point(|&bound| bound < ns);
        self.buckets[bucket].add(1);
        self.sum_ns.add(ns);
    }

    /// Adds this histogram's values to `into`.
    pub fn add_to(&self, into: &mut HistogramSnapshot) {
        for (sum, bucket) in into.buckets.iter_mut().zip(&self.buckets) {
            *sum += bucket.get();
        }
        into.sum_ns += self.sum_ns.get();
    }
}

/// A histogram's values, summed over workers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    pub buckets: [u64; DURATION_BUCKETS_NS.len() + 1],
    /// Sum of the observations, in nanoseconds.
    pub sum_ns: u64,
}

impl HistogramSnapshot {
    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// Why a worker dropped a handler instance before its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// The guest trapped (a panic, an invalid operation, a failed host
    /// call).
    Trap,
    /// The call ran past its deadline.
    Deadline,
    /// The guest trapped after a memory growth was refused (its route's
    /// `max_memory_bytes` or the worker's guest-memory budget).
    Memory,
    /// The instance served `max_requests_per_instance` requests.
    ReuseLimit,
    /// The guest kept a request's resources past its call.
    KeptResources,
}

impl Discard {
    /// Every reason, in the order of [`Discard::label`]'s values.
    pub const ALL: [Discard; 5] = [
        Discard::Trap,
        Discard::Deadline,
        Discard::Memory,
        Discard::ReuseLimit,
        Discard::KeptResources,
    ];

    /// The reason as a metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Discard::Trap => "trap",
            Discard::Deadline => "deadline",
            Discard::Memory => "memory",
            Discard::ReuseLimit => "reuse_limit",
            Discard::KeptResources => "kept_resources",
        }
    }
}

/// Why lines of guest output were not logged (see [`crate::guest_log`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDrop {
    /// Over the route's lines a second on the worker.
    RateLimit,
    /// Past the request's bytes of output.
    Truncated,
}

impl LogDrop {
    /// Every reason, in the order of [`LogDrop::label`]'s values.
    pub const ALL: [LogDrop; 2] = [LogDrop::RateLimit, LogDrop::Truncated];

    /// The reason as a metric label value.
    pub fn label(self) -> &'static str {
        match self {
            LogDrop::RateLimit => "rate_limit",
            LogDrop::Truncated => "truncated",
        }
    }
}

/// The request methods a series is kept for; any other is `_OTHER` (the
/// OpenTelemetry convention, which keeps a hostile client from creating
/// series without bound).
pub const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "_OTHER",
];

/// `method`'s index in [`METHODS`].
pub fn method_index(method: &hyper::Method) -> u8 {
    match *method {
        hyper::Method::GET => 0,
        hyper::Method::HEAD => 1,
        hyper::Method::POST => 2,
        hyper::Method::PUT => 3,
        hyper::Method::DELETE => 4,
        hyper::Method::PATCH => 5,
        hyper::Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The requests of one route, method and status on one worker.
#[derive(Debug)]
pub struct RequestSeries {
    /// Index in [`METHODS`].
    pub method: u8,
    /// The response's status code.
    pub status: u16,
    /// Time from the request head read to the response head made.
    pub duration: Histogram,
}

/// One route's metrics on one worker, kept by route prefix across deploys
/// (so its counters never go back). Written by that worker alone.
#[derive(Debug)]
#[repr(align(128))]
pub struct RouteMetrics {
    /// The route prefix (the `http_route` label); empty for requests that
    /// matched no route.
    pub prefix: String,
    /// Handler instances created.
    pub instances_created: Counter,
    /// Instances dropped before their time, by [`Discard`] reason.
    discarded: [Counter; Discard::ALL.len()],
    /// Guest calls, from taking an instance to the guest's response head.
    pub guest_calls: Histogram,
    /// Calls of the `wiki` interface.
    pub wiki_calls: Counter,
    /// Bytes of the dump sent as response bodies.
    pub dump_bytes: Counter,
    /// Lines of guest output not logged, by [`LogDrop`] reason.
    pub guest_log_dropped: [Counter; LogDrop::ALL.len()],
    /// Request series, by method and status; the lock is taken when the
    /// worker meets a new pair and when a reader sums them.
    series: Mutex<Vec<Arc<RequestSeries>>>,
}

impl RouteMetrics {
    fn new(prefix: &str) -> RouteMetrics {
        RouteMetrics {
            prefix: prefix.to_owned(),
            instances_created: Counter::default(),
            discarded: Default::default(),
            guest_calls: Histogram::default(),
            wiki_calls: Counter::default(),
            dump_bytes: Counter::default(),
            guest_log_dropped: Default::default(),
            series: Mutex::new(Vec::new()),
        }
    }

    /// Counts an instance dropped for `reason`.
    pub fn discarded(&self, reason: Discard) {
        self.discarded[reason as usize].add(1);
    }

    /// Instances dropped for `reason`.
    pub fn discarded_count(&self, reason: Discard) -> u64 {
        self.discarded[reason as usize].get()
    }

    /// The request series, for a reader.
    pub fn series(&self) -> Vec<Arc<RequestSeries>> {
        self.series.lock().expect("series lock poisoned").clone()
    }

    fn series_for(&self, method: u8, status: u16) -> Arc<RequestSeries> {
        let mut series = self.series.lock().expect("series lock poisoned");
        if let Some(found) = series
            .iter()
            .find(|s| s.method == method && s.status == status)
        {
            return found.clone();
        }
        let new = Arc::new(RequestSeries {
            method,
            status,
            duration: Histogram::default(),
        });
        series.push(new.clone());
        new
    }
}

/// A worker's handle on one route's [`RouteMetrics`], with its own cache of
/// the route's request series (only this worker's thread uses it).
#[derive(Debug)]
pub struct RouteRecorder {
    /// The route's metrics on this worker.
    pub metrics: Arc<RouteMetrics>,
    cache: RefCell<Vec<Arc<RequestSeries>>>,
}

impl RouteRecorder {
    /// A recorder writing into `metrics`.
    pub fn new(metrics: Arc<RouteMetrics>) -> RouteRecorder {
        RouteRecorder {
            metrics,
            cache: RefCell::new(Vec::new()),
        }
    }

    /// Records a request answered with `status` after `duration`.
    #[inline]
    pub fn request(&self, method: u8, status: u16, duration: Duration) {
        let mut cache = self.cache.borrow_mut();
        let series = match cache
            .iter()
            .find(|s| s.status == status && s.method == method)
        {
            Some(series) => series,
            None => {
                cache.push(self.metrics.series_for(method, status));
                cache.last().expect("just pushed")
            }
        };
        series.duration.observe(duration);
    }
}

/// One worker's counters. Only that worker writes them; anyone may read
/// them.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerCounters {
    /// Requests read and not yet answered (their response head not yet
    /// made).
    active_requests: AtomicU64,
    /// Client connections being served.
    open_connections: AtomicU64,
    /// Client connections accepted since the start.
    connections_accepted: Counter,
    /// Connections refused for the worker's connection limit.
    connections_refused: Counter,
    /// Handler instances created since the start (every route).
    instances_created: Counter,
    /// Whether the worker's accept loop runs (readiness).
    accepting: AtomicBool,
    /// Whether per-route metrics are kept (the ops listener is on).
    metrics: bool,
    /// Per-route metrics, by prefix, kept across deploys; locked when the
    /// worker takes a new route table and when a reader sums them.
    routes: Mutex<Vec<Arc<RouteMetrics>>>,
}

impl WorkerCounters {
    /// Counts a request as active until the guard is dropped.
    pub fn request(&self) -> Active<'_> {
        Active::new(&self.active_requests)
    }

    /// Counts a connection as open until the guard is dropped.
    pub fn connection(&self) -> Active<'_> {
        self.connections_accepted.add(1);
        Active::new(&self.open_connections)
    }

    /// Counts a connection refused for the connection limit.
    pub fn connection_refused(&self) {
        self.connections_refused.add(1);
    }

    /// Counts a handler instance created.
    pub fn instance_created(&self) {
        self.instances_created.add(1);
    }

    /// Marks the worker's accept loop as running (or not).
    pub fn set_accepting(&self, accepting: bool) {
        self.accepting.store(accepting, Ordering::Release);
    }

    /// A recorder for route `prefix` on this worker (empty: requests that
    /// matched no route), or `None` when metrics are off.
    pub fn recorder(&self, prefix: &str) -> Option<RouteRecorder> {
        if !self.metrics {
            return None;
        }
        let mut routes = self.routes.lock().expect("route metrics lock poisoned");
        let metrics = match routes.iter().find(|r| r.prefix == prefix) {
            Some(found) => found.clone(),
            None => {
                let new = Arc::new(RouteMetrics::new(prefix));
                routes.push(new.clone());
                new
            }
        };
        Some(RouteRecorder::new(metrics))
    }
}

/// Something counted while it lasts (a request, a connection); see
/// [`WorkerCounters::request`].
#[derive(Debug)]
pub struct Active<'a>(&'a AtomicU64);

impl<'a> Active<'a> {
    fn new(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Active(gauge)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One route's metrics summed over the workers.
#[derive(Debug, Default, Clone)]
pub struct RouteSnapshot {
    /// The route prefix; empty for requests that matched no route.
    pub prefix: String,
    /// Handler instances created.
    pub instances_created: u64,
    /// Instances discarded, by reason (in the order of [`Discard::ALL`]).
    pub discarded: [u64; Discard::ALL.len()],
    /// Guest call durations.
    pub guest_calls: HistogramSnapshot,
    /// Calls of the `wiki` interface.
    pub wiki_calls: u64,
    /// Bytes of the dump sent.
    pub dump_bytes: u64,
    /// Lines of guest output not logged, by reason (in the order of
    /// [`LogDrop::ALL`]).
    pub guest_log_dropped: [u64; LogDrop::ALL.len()],
    /// Request durations by method (index in [`METHODS`]) and status.
    pub requests: Vec<(u8, u16, HistogramSnapshot)>,
}

/// Every worker's counters.
#[derive(Debug)]
pub struct HostStats {
    workers: Box<[Arc<WorkerCounters>]>,
}

impl HostStats {
    /// Counters for `workers` workers, all zero; with `metrics`, the
    /// workers also keep per-route metrics (what `/metrics` shows).
    pub fn new(workers: usize, metrics: bool) -> HostStats {
        HostStats {
            workers: (0..workers)
                .map(|_| {
                    Arc::new(WorkerCounters {
                        metrics,
                        ..WorkerCounters::default()
                    })
                })
                .collect(),
        }
    }

    /// Worker `id`'s counters, for it to write.
    pub fn worker(&self, id: usize) -> Arc<WorkerCounters> {
        self.workers[id].clone()
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Workers whose accept loop runs.
    pub fn accepting_workers(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| w.accepting.load(Ordering::Acquire))
            .count()
    }

    /// Requests being answered right now, on every worker.
    pub fn active_requests(&self) -> u64 {
        self.sum(|w| w.active_requests.load(Ordering::Relaxed))
    }

    /// Client connections open right now, on every worker.
    pub fn open_connections(&self) -> u64 {
        self.sum(|w| w.open_connections.load(Ordering::Relaxed))
    }

    /// Client connections accepted since the start.
    pub fn connections_accepted(&self) -> u64 {
        self.sum(|w| w.connections_accepted.get())
    }

    /// Client connections refused for the connection limit since the start.
    pub fn connections_refused(&self) -> u64 {
        self.sum(|w| w.connections_refused.get())
    }

    /// Handler instances created since the start, on every worker (in
    /// `request` isolation one per request; in `core` isolation one per
    /// worker and route, plus one after each discarded instance).
    pub fn instances_created(&self) -> u64 {
        self.sum(|w| w.instances_created.get())
    }

    /// Every route's metrics, summed over the workers, sorted by prefix.
    pub fn routes(&self) -> Vec<RouteSnapshot> {
        let mut out: Vec<RouteSnapshot> = Vec::new();
        for worker in self.workers.iter() {
            let routes = worker
                .routes
                .lock()
                .expect("route metrics lock poisoned")
                .clone();
            for route in routes {
                let at = match out.iter().position(|r| r.prefix == route.prefix) {
                    Some(at) => at,
                    None => {
                        out.push(RouteSnapshot {
                            prefix: route.prefix.clone(),
                            ..RouteSnapshot::default()
                        });
                        out.len() - 1
                    }
                };
                let sum = &mut out[at];
                sum.instances_created += route.instances_created.get();
                for (total, reason) in sum.discarded.iter_mut().zip(Discard::ALL) {
                    *total += route.discarded_count(reason);
                }
                route.guest_calls.add_to(&mut sum.guest_calls);
                sum.wiki_calls += route.wiki_calls.get();
                sum.dump_bytes += route.dump_bytes.get();
                for (total, dropped) in sum
                    .guest_log_dropped
                    .iter_mut()
                    .zip(&route.guest_log_dropped)
                {
                    *total += dropped.get();
                }
                for series in route.series() {
                    let at = match sum
                        .requests
                        .iter()
                        .position(|(m, s, _)| *m == series.method && *s == series.status)
                    {
                        Some(at) => at,
                        None => {
                            sum.requests.push((
                                series.method,
                                series.status,
                                HistogramSnapshot::default(),
                            ));
                            sum.requests.len() - 1
                        }
                    };
                    series.duration.add_to(&mut sum.requests[at].2);
                }
            }
        }
        out.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        for route in &mut out {
            route.requests.sort_by_key(|(m, s, _)| (*m, *s));
        }
        out
    }

    fn sum(&self, value: impl Fn(&WorkerCounters) -> u64) -> u64 {
        self.workers.iter().map(|w| value(w)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_requests_add_up() {
        let stats = HostStats::new(2, false);
        let (a, b) = (stats.worker(0), stats.worker(1));
        let one = a.request();
        let two = b.request();
        assert_eq!(stats.active_requests(), 2);
        drop(one);
        assert_eq!(stats.active_requests(), 1);
        drop(two);
        assert_eq!(stats.active_requests(), 0);
    }

    #[test]
    fn a_duration_lands_in_the_first_bucket_that_holds_it() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100)); // on the bound: bucket 0
        h.observe(Duration::from_micros(101)); // bucket 1
        h.observe(Duration::from_secs(60)); // +Inf
        let mut snap = HistogramSnapshot::default();
        h.add_to(&mut snap);
        assert_eq!(snap.buckets[0], 1);
        assert_eq!(snap.buckets[1], 1);
        assert_eq!(snap.buckets[DURATION_BUCKETS_NS.len()], 1);
        assert_eq!(snap.count(), 3);
        assert_eq!(snap.sum_ns, 100_000 + 101_000 + 60_000_000_000);
    }

    #[test]
    fn route_metrics_are_summed_over_workers_and_kept_by_prefix() {
        let stats = HostStats::new(2, true);
        let a = stats.worker(0).recorder("/a").unwrap();
        let a_again = stats.worker(0).recorder("/a").unwrap();
        let b = stats.worker(1).recorder("/a").unwrap();
        a.request(0, 200, Duration::from_micros(5));
        a_again.request(0, 200, Duration::from_micros(5));
        b.request(0, 200, Duration::from_micros(5));
        b.request(2, 404, Duration::from_micros(5));
        b.metrics.discarded(Discard::Deadline);
        let routes = stats.routes();
        assert_eq!(routes.len(), 1);
        let route = &routes[0];
        assert_eq!(route.prefix, "/a");
        assert_eq!(route.requests.len(), 2);
        assert_eq!(route.requests[0].0, 0);
        assert_eq!(route.requests[0].2.count(), 3);
        assert_eq!(route.requests[1].1, 404);
        assert_eq!(route.discarded[Discard::Deadline as usize], 1);
    }

    #[test]
    fn without_metrics_no_recorder_is_made() {
        let stats = HostStats::new(1, false);
        assert!(stats.worker(0).recorder("/").is_none());
        assert!(stats.routes().is_empty());
    }
}
