//! Readiness: what `/readyz` depends on (the index mapped, every route
//! compiled, every worker accepting, not draining), set by the server as it
//! starts and stops, and read by the ops listener.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::registry::Registry;
use crate::stats::HostStats;

/// What readiness depends on.
#[derive(Debug)]
pub struct Health {
    /// Whether the host serves an index at all.
    needs_index: bool,
    /// Whether the index is mapped.
    index_mapped: AtomicBool,
    /// Whether every configured and restored route is compiled (the
    /// registry is open and has published its table).
    routes_compiled: AtomicBool,
    /// Whether the host is draining (SIGTERM): never ready again.
    draining: AtomicBool,
}

/// `/readyz`'s answer.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// Whether the host is ready for traffic.
    pub ready: bool,
    /// Why not, one line per reason; empty when ready.
    pub reasons: Vec<String>,
    /// Workers whose accept loop runs, of all workers.
    pub workers_accepting: String,
    /// Routes being served (once compiled).
    pub routes: Option<usize>,
}

impl Health {
    /// Health of a host starting now; `needs_index` when it was given one.
    pub fn starting(needs_index: bool) -> Health {
        Health {
            needs_index,
            index_mapped: AtomicBool::new(false),
            routes_compiled: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }
    }

    /// The index is mapped.
    pub fn index_mapped(&self) {
        self.index_mapped.store(true, Ordering::Release);
    }

    /// Every route is compiled and published.
    pub fn routes_compiled(&self) {
        self.routes_compiled.store(true, Ordering::Release);
    }

    /// The host drains: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the host is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Whether the host is ready, and why not.
    pub fn readiness(
        &self,
        stats: &HostStats,
        registry: Option<&std::sync::Arc<Registry>>,
    ) -> Readiness {
        let mut reasons = Vec::new();
        if self.is_draining() {
            reasons.push("draining: shutting down".to_owned());
        }
        if self.needs_index && !self.index_mapped.load(Ordering::Acquire) {
            reasons.push("starting: the index is not mapped yet".to_owned());
        }
        if !self.routes_compiled.load(Ordering::Acquire) {
            reasons.push("starting: the routes are not compiled yet".to_owned());
        }
        let (accepting, workers) = (stats.accepting_workers(), stats.workers());
        if accepting < workers && !self.is_draining() {
            reasons.push(format!(
                "starting: {accepting} of {workers} workers are accepting"
            ));
        }
        Readiness {
            ready: reasons.is_empty(),
            reasons,
            workers_accepting: format!("{accepting}/{workers}"),
            routes: registry.map(|r| r.routes().current().router.iter().count()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_mapped_compiled_accepting_and_not_draining() {
        let stats = HostStats::new(2, false);
        let health = Health::starting(true);
        let starting = health.readiness(&stats, None);
        assert!(!starting.ready);
        assert_eq!(starting.reasons.len(), 3, "{:?}", starting.reasons);
        health.index_mapped();
        health.routes_compiled();
        stats.worker(0).set_accepting(true);
        let one_worker = health.readiness(&stats, None);
        assert_eq!(
            one_worker.reasons,
            ["starting: 1 of 2 workers are accepting"]
        );
        stats.worker(1).set_accepting(true);
        assert!(health.readiness(&stats, None).ready);
        health.start_draining();
        let draining = health.readiness(&stats, None);
        assert!(!draining.ready);
        assert_eq!(draining.reasons, ["draining: shutting down"]);
    }

    #[test]
    fn a_host_without_an_index_does_not_wait_for_one() {
        let stats = HostStats::new(1, false);
        let health = Health::starting(false);
        health.routes_compiled();
        stats.worker(0).set_accepting(true);
        assert!(health.readiness(&stats, None).ready);
    }
}
