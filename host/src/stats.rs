//! Counters of what the workers are doing, kept so that nothing on the
//! request path is shared across cores: each worker writes only its own
//! [`WorkerCounters`] (on a cache line of its own), and a reader sums them
//! ([`HostStats`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One worker's counters. Only that worker writes them (relaxed, on a
/// cache line no other core writes); anyone may read them.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerCounters {
    /// Requests read and not yet answered (their response head not yet
    /// made).
    active_requests: AtomicU64,
    /// Client connections being served.
    open_connections: AtomicU64,
    /// Handler instances created since the start (every route).
    instances_created: AtomicU64,
}

impl WorkerCounters {
    /// Counts a request as active until the guard is dropped.
    pub fn request(&self) -> Active<'_> {
        Active::new(&self.active_requests)
    }

    /// Counts a connection as open until the guard is dropped.
    pub fn connection(&self) -> Active<'_> {
        Active::new(&self.open_connections)
    }

    /// Counts a handler instance created.
    pub fn instance_created(&self) {
        self.instances_created.fetch_add(1, Ordering::Relaxed);
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

/// Every worker's counters.
#[derive(Debug)]
pub struct HostStats {
    workers: Box<[Arc<WorkerCounters>]>,
}

impl HostStats {
    /// Counters for `workers` workers, all zero.
    pub fn new(workers: usize) -> HostStats {
        HostStats {
            workers: (0..workers).map(|_| Arc::default()).collect(),
        }
    }

    /// Worker `id`'s counters, for it to write.
    pub fn worker(&self, id: usize) -> Arc<WorkerCounters> {
        self.workers[id].clone()
    }

    /// Requests being answered right now, on every worker.
    pub fn active_requests(&self) -> u64 {
        self.sum(|w| &w.active_requests)
    }

    /// Client connections open right now, on every worker.
    pub fn open_connections(&self) -> u64 {
        self.sum(|w| &w.open_connections)
    }

    /// Handler instances created since the start, on every worker (in
    /// `request` isolation one per request; in `core` isolation one per
    /// worker and route, plus one after each discarded instance).
    pub fn instances_created(&self) -> u64 {
        self.sum(|w| &w.instances_created)
    }

    fn sum(&self, gauge: impl Fn(&WorkerCounters) -> &AtomicU64) -> u64 {
        self.workers
            .iter()
            .map(|w| gauge(w).load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_requests_add_up() {
        let stats = HostStats::new(2);
        let (a, b) = (stats.worker(0), stats.worker(1));
        let one = a.request();
        let two = b.request();
        assert_eq!(stats.active_requests(), 2);
        drop(one);
        assert_eq!(stats.active_requests(), 1);
        drop(two);
        assert_eq!(stats.active_requests(), 0);
    }
}
