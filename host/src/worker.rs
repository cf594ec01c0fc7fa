//! A worker: one OS thread with its own single-threaded tokio runtime, its
//! own `SO_REUSEPORT` listener (the kernel spreads connections across the
//! workers' listeners), and its own instances. Nothing on the request path
//! is shared with another worker except read-only data.
//!
//! Back-pressure: each connection holds a permit of the worker's
//! semaphore (its share of `http.max_connections`) until it ends; a
//! connection accepted with no permit left is answered 503 and closed
//! ([`connection::refuse`]). Serving the connection itself is
//! [`crate::connection`]'s.
//!
//! Stopping has two steps. On drain (SIGTERM) every response the worker
//! makes carries `Connection: close`, so that clients move to other hosts
//! while load balancers take this one out. On shutdown the worker accepts
//! what the kernel has queued on its listener (closing a listener resets
//! the connections in its queue), closes it, lets each connection finish
//! the request in flight (hyper's graceful shutdown; the connections just
//! taken from the queue are served one request), and exits when they are
//! done or the grace period has passed.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::access_log::{self, WorkerLog};
use crate::budget::WorkerBudget;
use crate::config::HttpConfig;
use crate::routes::{LocalRoutes, SharedRoutes};
use crate::stats::{RouteRecorder, WorkerCounters};
use crate::{connection, http};

/// What every connection of a worker shares (through an `Rc`: only this
/// worker's thread touches it).
pub struct WorkerContext {
    /// The worker's view of the route table.
    pub routes: LocalRoutes,
    /// Client limits.
    pub http: HttpConfig,
    /// The worker's own counters.
    pub counters: Arc<WorkerCounters>,
    /// Metrics of the requests that matched no route, when kept.
    pub unrouted: Option<RouteRecorder>,
    /// The worker's access log buffer, when the log is on.
    pub access_log: Option<WorkerLog>,
    /// Whether the host drains: responses carry `Connection: close`.
    pub draining: Cell<bool>,
}

impl WorkerContext {
    /// Whether requests are timed (for metrics or the access log).
    pub fn timed(&self) -> bool {
        self.unrouted.is_some() || self.access_log.is_some()
    }
}

/// Binds `count` listening sockets to `addr` with `SO_REUSEPORT`, one per
/// worker, so that the kernel spreads connections across them.
///
/// `SO_REUSEPORT` would also let this host join another process's
/// listener on the same port (same user, the option set on both) and split
/// its traffic silently. So a fixed port is first bound by a probe socket
/// without the option: if anything listens there, that bind fails with the
/// error a port clash gives (`Address already in use`), and nothing is
/// shared. With port 0 the first socket gets a fresh port from the kernel
/// and the others join it.
pub fn bind_listeners(
    addr: SocketAddr,
    count: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    if addr.port() != 0 {
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        probe.bind(&addr.into())?;
        // Dropped unlistened: it only proves that the port is free.
    }
    let first = bind_reuseport(addr)?;
    let local_addr = first.local_addr()?;
    let mut listeners = Vec::with_capacity(count.max(1));
    listeners.push(first);
    for _ in 1..count {
        listeners.push(bind_reuseport(local_addr)?);
    }
    Ok(listeners)
}

/// Binds one listening socket with `SO_REUSEPORT`.
fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Closes `listener`, returning the connections in its accept queue
/// (which closing it would reset). It asks the socket itself: tokio's
/// accept would wait for the reactor to report the queue readable, and
/// the worker does not run the reactor again before it closes.
fn take_queued(listener: TcpListener) -> Vec<tokio::net::TcpStream> {
    let listener = match listener.into_std() {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!("cannot take the queued connections: {e}");
            return Vec::new();
        }
    };
    let mut queued = Vec::new();
    while let Ok((stream, _peer)) = listener.accept() {
        let stream = stream
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpStream::from_std(stream));
        match stream {
            Ok(stream) => queued.push(stream),
            Err(e) => tracing::warn!("cannot serve a queued connection: {e}"),
        }
    }
    queued
}

/// What a worker needs to run.
pub struct WorkerSetup {
    /// Worker number, for thread names and logs.
    pub id: usize,
    /// This worker's listener (already bound).
    pub listener: std::net::TcpListener,
    /// The shared route table.
    pub routes: Arc<SharedRoutes>,
    /// The shared title index, if any.
    pub index: Option<Arc<percore_index::TitleIndex>>,
    /// Client limits.
    pub http: HttpConfig,
    /// This worker's share of `http.max_connections`.
    pub max_connections: usize,
    /// This worker's counters.
    pub counters: Arc<WorkerCounters>,
    /// This worker's share of `max_instances`.
    pub max_instances: u32,
    /// This worker's share of `max_guest_memory_bytes`.
    pub max_guest_memory_bytes: u64,
    /// Becomes `true` when the host starts draining.
    pub drain: watch::Receiver<bool>,
    /// Becomes `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// The worker's access log buffer, when the log is on.
    pub access_log: Option<WorkerLog>,
}

/// Starts a worker thread.
pub fn spawn(setup: WorkerSetup) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("percore-worker-{}", setup.id))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build the worker's tokio runtime");
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, run(setup));
        })
}

async fn run(setup: WorkerSetup) {
    let WorkerSetup {
        id,
        listener,
        routes,
        index,
        http,
        max_connections,
        counters,
        max_instances,
        max_guest_memory_bytes,
        mut drain,
        shutdown,
        access_log,
    } = setup;
    let budget = Rc::new(
        WorkerBudget::new(max_instances, max_guest_memory_bytes).counting_in(counters.clone()),
    );
    let listener = TcpListener::from_std(listener).expect("register the listener with tokio");
    let grace = Duration::from_millis(http.shutdown_grace_ms);
    let context = Rc::new(WorkerContext {
        routes: LocalRoutes::new(routes, index.as_ref(), budget, counters.clone()),
        http,
        unrouted: counters.recorder(""),
        counters,
        access_log,
        draining: Cell::new(false),
    });
    // hyper's settings, and the memory that only busy connections need.
    let shared = Rc::new(connection::Shared::new(&context.http, http::serve));
    let mut flush = tokio::time::interval(access_log::FLUSH_INTERVAL);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // This worker's own: never touched by another core.
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut connections = JoinSet::new();
    let mut stop = shutdown.clone();
    let accept = |stream: tokio::net::TcpStream,
                  connections: &mut JoinSet<()>,
                  shutdown: watch::Receiver<bool>| {
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let _ = stream.set_nodelay(true);
                connections.spawn_local(connection::serve(
                    stream,
                    permit,
                    context.clone(),
                    shared.clone(),
                    shutdown,
                ));
            }
            Err(_) => {
                context.counters.connection_refused();
                connection::refuse(&stream, max_connections);
            }
        }
    };
    context.counters.set_accepting(true);
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            _ = drain.wait_for(|drain| *drain), if !context.draining.get() => {
                context.draining.set(true);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => accept(stream, &mut connections, shutdown.clone()),
                Err(e) => {
                    // Out of file descriptors or a connection reset before
                    // accept: back off briefly instead of spinning.
                    tracing::warn!(worker = id, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = flush.tick(), if context.access_log.is_some() => {
                if let Some(log) = &context.access_log {
                    log.flush();
                }
            }
        }
    }
    // Closing the listener resets the connections in its accept queue:
    // take them first, and serve each one request (its response says
    // `Connection: close`) under a signal that does not stop it at once.
    context.draining.set(true);
    let (_serve_one, one_request) = watch::channel(false);
    for stream in take_queued(listener) {
        accept(stream, &mut connections, one_request.clone());
    }
    context.counters.set_accepting(false);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            worker = id,
            "{} connections still open after the {grace:?} grace period; closing them",
            connections.len()
        );
        connections.abort_all();
    }
    if let Some(log) = &context.access_log {
        log.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections the kernel queued, which the reactor has not reported,
    /// are all taken before the listener closes.
    #[test]
    fn queued_connections_are_taken_before_closing() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let std_listener = bind_listeners("127.0.0.1:0".parse().unwrap(), 1)
            .unwrap()
            .remove(0);
        let addr = std_listener.local_addr().unwrap();
        runtime.block_on(async {
            let listener = TcpListener::from_std(std_listener).unwrap();
            let clients: Vec<_> = (0..16)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect();
            let queued = take_queued(listener);
            assert_eq!(queued.len(), clients.len());
        });
        // Closed: nothing listens there any more.
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}
