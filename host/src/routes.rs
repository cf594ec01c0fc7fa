//! The route table: the shared, immutable [`RouteTable`] that every worker
//! serves from, and each worker's [`LocalRoutes`] snapshot of it. The
//! [`Registry`](crate::registry::Registry) builds the routes and publishes
//! the tables; this module only carries them to the workers.
//!
//! Publishing a new table (hot deploy) swaps an `Arc` under a mutex and bumps
//! a generation counter. On the request path a worker only reads that
//! counter (one uncontended atomic load of a cache line nobody writes while
//! the table is unchanged) and, when it moved, takes a new snapshot. Each
//! worker wraps every route in its own `Rc<LocalRoute>` that owns the
//! worker's instance pool, so requests clone no shared reference counts and
//! requests that started on an old version finish on it.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::budget::WorkerBudget;
use crate::config::{Isolation, Limits, Origins};
use crate::engine::CompiledComponent;
use crate::host_functions::WorkerIndex;
use crate::pool::InstancePool;
use crate::router::Router;
use crate::stats::{RouteRecorder, WorkerCounters};
use percore_index::TitleIndex;

/// One route of the table: a prefix served by one version of a component.
pub struct Route {
    /// The path prefix.
    pub prefix: String,
    /// The compiled component.
    pub component: Arc<CompiledComponent>,
    /// How requests are isolated from each other.
    pub isolation: Isolation,
    /// Limits of every call.
    pub limits: Limits,
    /// A number unique to this route version within the process; workers
    /// use it to keep their warm instances across table changes that do not
    /// touch this route.
    pub version: u64,
    /// The origins its `wasi:http` guests may send requests to (the
    /// `allow_outbound` option); `None`: no outgoing requests.
    pub allow_outbound: Option<Arc<Origins>>,
}

impl Route {
    /// A new version of route `prefix`: `component` with these settings,
    /// under a [`Route::version`] no other route of the process has. The
    /// registry ([`crate::registry::Registry`]) is the only caller in the
    /// host. A component whose instances answer one request each
    /// ([`CompiledComponent::one_request_per_instance`]) is served in
    /// `request` isolation, with a warning, when `core` is asked: a reused
    /// instance would hold every later request until its deadline.
    pub fn new(
        prefix: &str,
        component: Arc<CompiledComponent>,
        isolation: Isolation,
        limits: Limits,
    ) -> Route {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let isolation = match (&component.one_request_per_instance, isolation) {
            (Some(tool), Isolation::Core) => {
                tracing::warn!(
                    route = prefix,
                    component = component.name,
                    "served in request isolation, not core: an instance of a component built by {tool} answers only its first request"
                );
                Isolation::Request
            }
            _ => isolation,
        };
        Route {
            prefix: prefix.to_owned(),
            component,
            isolation,
            limits,
            version: NEXT.fetch_add(1, Ordering::Relaxed),
            allow_outbound: None,
        }
    }

    /// This route, its guests allowed to send requests to `origins` (none
    /// when `None` or empty).
    pub fn allowing_outbound(mut self, origins: Option<&Origins>) -> Route {
        self.allow_outbound = origins
            .filter(|origins| !origins.0.is_empty())
            .map(|origins| Arc::new(origins.clone()));
        self
    }
}

/// An immutable route table.
#[derive(Default)]
pub struct RouteTable {
    /// Prefix → route.
    pub router: Router<Arc<Route>>,
}

/// The current route table, shared by every worker.
pub struct SharedRoutes {
    /// Bumped after every publish; workers compare it with their snapshot's.
    generation: AtomicU64,
    /// The current table. Locked only to publish and to take a snapshot.
    table: Mutex<Arc<RouteTable>>,
}

impl SharedRoutes {
    /// Shares `table` as the current table.
    pub fn new(table: RouteTable) -> Self {
        SharedRoutes {
            generation: AtomicU64::new(0),
            table: Mutex::new(Arc::new(table)),
        }
    }

    /// Makes `table` the current table; every worker switches before its
    /// next request.
    pub fn publish(&self, table: RouteTable) {
        *self.table.lock().expect("route table lock poisoned") = Arc::new(table);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current table.
    pub fn current(&self) -> Arc<RouteTable> {
        self.table
            .lock()
            .expect("route table lock poisoned")
            .clone()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// A route as one worker sees it: the shared route plus this worker's pool.
pub struct LocalRoute {
    /// The shared route.
    pub route: Arc<Route>,
    /// This worker's instances of the route's component (shared with the
    /// tasks that finish `wasi:http` calls).
    pub pool: Rc<InstancePool>,
    /// The route's metrics on this worker, when they are kept.
    pub recorder: Option<RouteRecorder>,
}

/// One worker's snapshot of the route table.
pub struct LocalTable {
    generation: u64,
    /// Prefix → this worker's route.
    pub router: Router<Rc<LocalRoute>>,
}

/// A worker's view of the shared route table.
pub struct LocalRoutes {
    shared: Arc<SharedRoutes>,
    /// This worker's handle on the shared index.
    index: Option<WorkerIndex>,
    /// The worker's instance and memory budget, shared by its routes.
    budget: Rc<WorkerBudget>,
    /// The worker's counters, where its routes' metrics are kept.
    counters: Arc<WorkerCounters>,
    current: RefCell<Rc<LocalTable>>,
}

impl LocalRoutes {
    /// A worker-local view of `shared`, whose routes share `budget`.
    pub fn new(
        shared: Arc<SharedRoutes>,
        index: Option<&Arc<TitleIndex>>,
        budget: Rc<WorkerBudget>,
        counters: Arc<WorkerCounters>,
    ) -> Self {
        let index = index.map(|index| Arc::new(index.clone()));
        let generation = shared.generation();
        let table = build_local(
            generation,
            &shared.current(),
            None,
            index.as_ref(),
            &budget,
            &counters,
        );
        LocalRoutes {
            shared,
            index,
            budget,
            counters,
            current: RefCell::new(Rc::new(table)),
        }
    }

    /// This worker's handle on the shared index.
    pub fn index(&self) -> Option<&WorkerIndex> {
        self.index.as_ref()
    }

    /// The current table, refreshed if a new one was published.
    pub fn table(&self) -> Rc<LocalTable> {
        let generation = self.shared.generation();
        let mut current = self.current.borrow_mut();
        if current.generation != generation {
            let fresh = build_local(
                generation,
                &self.shared.current(),
                Some(&current),
                self.index.as_ref(),
                &self.budget,
                &self.counters,
            );
            *current = Rc::new(fresh);
        }
        current.clone()
    }
}

/// This worker's table for `table`: the routes of `old` whose version is
/// unchanged keep their pools (and warm instances), the others get new
/// ones; the budget is shared among exactly these routes from now on.
fn build_local(
    generation: u64,
    table: &RouteTable,
    old: Option<&LocalTable>,
    index: Option<&WorkerIndex>,
    budget: &Rc<WorkerBudget>,
    counters: &WorkerCounters,
) -> LocalTable {
    let mut router = Router::new();
    for (prefix, route) in table.router.iter() {
        let reuse = old.and_then(|old| {
            old.router
                .iter()
                .find(|(_, local)| local.route.version == route.version)
                .map(|(_, local)| local.clone())
        });
        let local = reuse.unwrap_or_else(|| {
            let recorder = counters.recorder(prefix);
            let metrics = recorder.as_ref().map(|r| r.metrics.clone());
            Rc::new(LocalRoute {
                route: route.clone(),
                pool: Rc::new(InstancePool::new(
                    route.clone(),
                    index,
                    budget.clone(),
                    metrics,
                )),
                recorder,
            })
        });
        router
            .insert(prefix, local)
            .expect("prefixes of a published table are valid");
    }
    budget.set_routes(
        router
            .iter()
            .map(|(_, local)| local.pool.usage().clone())
            .collect(),
    );
    LocalTable { generation, router }
}
