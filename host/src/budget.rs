//! What one worker's instances may take, so that no route and no guest can
//! take everything: its share of the host's instances, divided fairly
//! among its routes ([`WorkerBudget`]), and its share of the host's guest
//! memory, charged as instances grow ([`GuestLimiter`]). Each worker keeps
//! its own budget, so nothing here is shared across cores.
//!
//! Fairness: every route of the current table is guaranteed
//! [`WorkerBudget::guarantee`] instances on each worker (half the worker's
//! share divided by the number of routes); a route may use more only from
//! the part of the worker's share that no other route's unused guarantee
//! covers. A route that holds many slow requests is then refused (503)
//! before it can take the instances another route is guaranteed.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::{MAX_CORE_INSTANCES, MAX_MEMORIES, MAX_TABLES};
use crate::stats::WorkerCounters;

/// Instances one route version holds on one worker, and the requests
/// waiting for one of them to be free (`core` isolation).
#[derive(Debug, Default)]
pub struct RouteUsage {
    in_use: Cell<u32>,
    /// Requests waiting in [`RouteUsage::wait_for_free`].
    waiters: Cell<u32>,
    /// Woken when an instance is given back or dropped while requests wait.
    freed: tokio::sync::Notify,
}

impl RouteUsage {
    /// Instances the route version holds on this worker.
    pub fn in_use(&self) -> u32 {
        self.in_use.get()
    }

    /// Waits until an instance of the route is given back or dropped (or a
    /// spurious wake: the caller looks again), or `deadline` passes
    /// (`false`).
    pub async fn wait_for_free(&self, deadline: std::time::Instant) -> bool {
        self.waiters.set(self.waiters.get() + 1);
        let woke = tokio::time::timeout_at(deadline.into(), self.freed.notified()).await;
        self.waiters.set(self.waiters.get() - 1);
        woke.is_ok()
    }

    /// Wakes one request waiting for an instance, if any waits (costs
    /// nothing otherwise).
    pub fn wake_one(&self) {
        if self.waiters.get() > 0 {
            self.freed.notify_one();
        }
    }
}

/// One worker's share of the host's instances and guest memory.
#[derive(Debug)]
pub struct WorkerBudget {
    /// This worker's share of `max_instances`.
    capacity: u32,
    /// Instances alive on this worker, every route together.
    in_use: Cell<u32>,
    /// The usage of every route of the worker's current table.
    routes: RefCell<Vec<Rc<RouteUsage>>>,
    /// This worker's share of `max_guest_memory_bytes`.
    memory: Arc<MemoryBudget>,
    /// The worker's counters, when it reports them (instances created).
    counters: Option<Arc<WorkerCounters>>,
}

impl WorkerBudget {
    /// A budget of `instances` instances and `memory_bytes` bytes of guest
    /// memory.
    pub fn new(instances: u32, memory_bytes: u64) -> WorkerBudget {
        WorkerBudget {
            capacity: instances.max(1),
            in_use: Cell::new(0),
            routes: RefCell::new(Vec::new()),
            memory: Arc::new(MemoryBudget {
                limit: memory_bytes,
                used: AtomicU64::new(0),
            }),
            counters: None,
        }
    }

    /// The same budget, counting the instances it admits in `counters`.
    pub fn counting_in(mut self, counters: Arc<WorkerCounters>) -> WorkerBudget {
        self.counters = Some(counters);
        self
    }

    /// Makes `routes` the routes that share this budget (the worker's new
    /// table). Instances of routes no longer in the table still count
    /// until they end, but have no guarantee.
    pub fn set_routes(&self, routes: Vec<Rc<RouteUsage>>) {
        *self.routes.borrow_mut() = routes;
    }

    /// Instances every route of the current table is guaranteed.
    pub fn guarantee(&self) -> u32 {
        let routes = self.routes.borrow().len().max(1) as u32;
        (self.capacity / 2 / routes).max(1)
    }

    /// Takes one instance for the route whose usage is `route`, if its
    /// share allows; the slot is given back when dropped.
    pub fn try_acquire(self: &Rc<Self>, route: &Rc<RouteUsage>) -> Result<InstanceSlot, Refusal> {
        let in_use = self.in_use.get();
        if in_use >= self.capacity {
            return Err(Refusal::WorkerFull {
                capacity: self.capacity,
            });
        }
        let guarantee = self.guarantee();
        let mine = route.in_use.get();
        if mine >= guarantee {
            // Beyond its guarantee a route borrows only what no other
            // route's unused guarantee covers.
            let reserved: u32 = self
                .routes
                .borrow()
                .iter()
                .filter(|other| !Rc::ptr_eq(other, route))
                .map(|other| guarantee.saturating_sub(other.in_use.get()))
                .sum();
            if in_use + reserved >= self.capacity {
                return Err(Refusal::RouteShare {
                    in_use: mine,
                    capacity: self.capacity,
                });
            }
        }
        self.in_use.set(in_use + 1);
        route.in_use.set(mine + 1);
        if let Some(counters) = &self.counters {
            counters.instance_created();
        }
        Ok(InstanceSlot {
            budget: self.clone(),
            route: route.clone(),
        })
    }

    /// A limiter for one new instance whose memory may grow to
    /// `max_memory_bytes`, charging this worker's memory budget.
    pub fn limiter(&self, max_memory_bytes: u64) -> GuestLimiter {
        GuestLimiter {
            max_memory_bytes,
            budget: self.memory.clone(),
            charged: 0,
            refused: false,
        }
    }

    /// Bytes of guest memory this worker's instances hold.
    pub fn memory_in_use(&self) -> u64 {
        self.memory.used.load(Ordering::Relaxed)
    }
}

/// Why no instance could be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every instance of this worker's share is in use.
    WorkerFull {
        /// The worker's share of `max_instances`.
        capacity: u32,
    },
    /// The route holds its fair share; the rest is guaranteed to others.
    RouteShare {
        /// Instances the route holds on this worker.
        in_use: u32,
        /// The worker's share of `max_instances`.
        capacity: u32,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::WorkerFull { capacity } => write!(
                f,
                "all {capacity} instances of this worker are in use (max_instances)"
            ),
            Refusal::RouteShare { in_use, capacity } => write!(
                f,
                "the route holds {in_use} of this worker's {capacity} instances, its fair share; the rest is kept for the other routes"
            ),
        }
    }
}

/// One instance's place in its worker's budget, given back on drop.
#[derive(Debug)]
pub struct InstanceSlot {
    budget: Rc<WorkerBudget>,
    route: Rc<RouteUsage>,
}

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        self.budget.in_use.set(self.budget.in_use.get() - 1);
        self.route.in_use.set(self.route.in_use.get() - 1);
        self.route.wake_one();
    }
}

/// A worker's share of the host's guest memory. Only that worker's
/// instances charge it (the atomic is never contended: a store's data must
/// be `Send`, so a `Cell` cannot be used).
#[derive(Debug)]
struct MemoryBudget {
    /// Bytes the worker's instances may hold together.
    limit: u64,
    /// Bytes they hold now.
    used: AtomicU64,
}

/// The `ResourceLimiter` of one instance: its own memory cap, its worker's
/// memory budget, and the shape of a store (how many instances, tables and
/// memories a component may create, the same as the pooling allocator's).
/// Gives back what it charged when the instance is dropped.
#[derive(Debug)]
pub struct GuestLimiter {
    /// The route's `max_memory_bytes`.
    max_memory_bytes: u64,
    budget: Arc<MemoryBudget>,
    /// Bytes this instance charged to the budget.
    charged: u64,
    /// Whether a memory growth was refused (what made a later trap a
    /// memory discard).
    refused: bool,
}

impl GuestLimiter {
    /// Whether this instance was refused a memory growth.
    pub fn refused_growth(&self) -> bool {
        self.refused
    }
}

impl wasmtime::ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let (current, desired) = (current as u64, desired as u64);
        if desired > self.max_memory_bytes {
            self.refused = true;
            return Ok(false);
        }
        let more = desired.saturating_sub(current);
        let budget = &self.budget;
        let used = budget.used.load(Ordering::Relaxed);
        if used + more > budget.limit {
            tracing::debug!(
                "refused a guest memory growth of {more} bytes: the worker's guest memory budget of {} bytes is spent",
                budget.limit
            );
            self.refused = true;
            return Ok(false);
        }
        budget.used.store(used + more, Ordering::Relaxed);
        self.charged += more;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES as usize
    }

    fn tables(&self) -> usize {
        MAX_TABLES as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES as usize
    }
}

impl Drop for GuestLimiter {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.charged, Ordering::Relaxed);
    }
}

/// The machine's memory as the host may use it, in bytes: the smaller of
/// the physical memory (`MemTotal`) and the cgroup's limit (v2
/// `memory.max`, v1 `memory.limit_in_bytes`); `None` when neither can be
/// read.
pub fn machine_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map(|kib| kib * 1024);
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|file| std::fs::read_to_string(file).ok())
    .find_map(|text| text.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(total), Some(cgroup)) => Some(total.min(cgroup)),
        (total, cgroup) => total.or(cgroup),
    }
}

/// The default of `max_guest_memory_bytes`: half of [`machine_memory`]
/// (4 GiB when it cannot be read).
pub fn default_guest_memory() -> u64 {
    machine_memory().map_or(4 << 30, |bytes| bytes / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter as _;

    fn budget(instances: u32, routes: usize) -> (Rc<WorkerBudget>, Vec<Rc<RouteUsage>>) {
        let budget = Rc::new(WorkerBudget::new(instances, 1 << 30));
        let usages: Vec<_> = (0..routes)
            .map(|_| Rc::new(RouteUsage::default()))
            .collect();
        budget.set_routes(usages.clone());
        (budget, usages)
    }

    #[test]
    fn a_busy_route_cannot_take_another_routes_guarantee() {
        let (budget, routes) = budget(64, 2);
        assert_eq!(budget.guarantee(), 16);
        let mut slow = Vec::new();
        while let Ok(slot) = budget.try_acquire(&routes[0]) {
            slow.push(slot);
        }
        // It borrowed everything but the other route's guarantee.
        assert_eq!(slow.len(), 48);
        assert!(matches!(
            budget.try_acquire(&routes[0]),
            Err(Refusal::RouteShare { in_use: 48, .. })
        ));
        let neighbour: Vec<_> = (0..16)
            .map(|_| budget.try_acquire(&routes[1]).expect("guaranteed"))
            .collect();
        assert!(matches!(
            budget.try_acquire(&routes[1]),
            Err(Refusal::WorkerFull { capacity: 64 })
        ));
        drop(neighbour);
        drop(slow);
        assert_eq!(budget.in_use.get(), 0);
        assert_eq!(routes[0].in_use.get(), 0);
    }

    #[test]
    fn memory_is_charged_and_given_back() {
        let budget = WorkerBudget::new(4, 100);
        let mut a = budget.limiter(80);
        let mut b = budget.limiter(80);
        assert!(a.memory_growing(0, 60, None).unwrap());
        // Past the instance's own cap.
        assert!(!a.memory_growing(60, 90, None).unwrap());
        // Past the worker's budget.
        assert!(!b.memory_growing(0, 50, None).unwrap());
        assert!(b.memory_growing(0, 40, None).unwrap());
        assert_eq!(budget.memory_in_use(), 100);
        drop(a);
        assert_eq!(budget.memory_in_use(), 40);
        drop(b);
        assert_eq!(budget.memory_in_use(), 0);
    }
}
