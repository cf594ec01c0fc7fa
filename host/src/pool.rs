//! A worker's instances of one route version, and the call into the guest.
//!
//! In `request` isolation every call gets a fresh store and instance (cheap:
//! the pooling allocator hands out a pre-reserved slot whose memory is a
//! copy-on-write image of the component's initial heap). In `core`
//! isolation the worker keeps its instances and reuses them; one that failed
//! is dropped. An instance never leaves the worker that created it.
//!
//! A request's header fields are lent to the instance for its call (the
//! `fields` resource, [`crate::host_functions::Fields`]); one that still holds them
//! when the call returns is dropped too. What a call writes to stdout and
//! stderr is logged as it goes, and its unfinished lines when it ends
//! ([`crate::guest_log`]).
//!
//! Every call runs under a deadline: the engine's epoch ticks every few
//! milliseconds, and at each tick the running guest yields to the worker's
//! other connections and is interrupted once its deadline has passed. A
//! percore-world call reads no clock to set its deadline ([`Deadline`]).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use hyper::HeaderMap;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p2::bindings::Proxy;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p3::bindings::Service;

use crate::bindings::{Handler as HandlerBindings, Request, Response};
use crate::body::{Fault, P3Body, RequestBody};
use crate::budget::{InstanceSlot, RouteUsage, WorkerBudget};
use crate::config::Isolation;
use crate::engine::ComponentPre;
use crate::error::RequestError;
use crate::guest_log::RouteLog;
use crate::host_functions::{HostState, WorkerIndex};
use crate::routes::Route;
use crate::stats::{Discard, RouteMetrics};

/// Most instances a worker holds for one `core` route, busy or idle.
/// Usually one is enough; more are only created while a call is suspended
/// (at a deadline check, or a `wasi:http` call while its body is sent) and
/// another request for the same route arrives. Past this, a request waits
/// for one of them (until its deadline: then 503) rather than pay for an
/// instantiation that `core` isolation exists to avoid.
const MAX_CORE_INSTANCES: u32 = 4;

/// When a call must end.
///
/// A percore-world call that finishes before the next epoch tick (almost
/// all of them: a tick is [`crate::engine::EPOCH_TICK`]) never needs its
/// deadline as a time, so it does not read the clock for it: its deadline
/// starts as the route's time limit ([`Deadline::Within`]) and is fixed
/// ([`Deadline::fix`]) when something first needs it: the first epoch tick
/// the call sees, the first time the call waits (for an instance, or in a
/// host call), whichever comes first. Both happen within one tick of the
/// call's start (a tick that passed during the call has run the epoch
/// callback), so the deadline is the limit counted from the call's start,
/// up to one tick later. (`clock_gettime` for every call was 1.5% of the
/// server's CPU on pipelined `/plaintext`, half of it this; see
/// benches/RESULTS.md, "A cheaper call".)
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// A time.
    At(Instant),
    /// This long from when it is fixed.
    Within(Duration),
}

impl Deadline {
    /// The deadline as a time, fixing it now if it was a time limit.
    pub(crate) fn fix(&mut self) -> Instant {
        match *self {
            Deadline::At(at) => at,
            Deadline::Within(limit) => {
                let at = Instant::now() + limit;
                *self = Deadline::At(at);
                at
            }
        }
    }
}

/// A request as the pool takes it: the guest's request, borrowing from
/// hyper's, but with the header fields by value: the pool lends them to the
/// instance it picks, as a `fields` resource, without copying them.
pub struct GuestRequest<'a> {
    /// The method, as sent.
    pub method: &'a str,
    /// The path, as sent.
    pub path: &'a str,
    /// The path and query again: the instance keeps a clone (a handle on
    /// hyper's buffer, not a copy) for its call, for `x-percore-path-info`.
    pub path_and_query: Option<&'a hyper::http::uri::PathAndQuery>,
    /// The query string without `?`; empty when there is none.
    pub query: &'a str,
    /// The header fields.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: &'a [u8],
}

/// The exports of a live instance, by world.
enum Bindings {
    /// percore's own world: `handle`.
    Percore(HandlerBindings),
    /// `wasi:http/proxy`: `wasi:http/incoming-handler.handle`.
    WasiHttp(Proxy),
    /// `wasi:http/service` (0.3): `wasi:http/handler.handle`.
    WasiHttpP3(Service),
}

/// A live instance: its store, the bindings to its exports, and its place
/// in the worker's budget.
struct Live {
    store: Store<HostState>,
    bindings: Bindings,
    /// Requests it has served (for `max_requests_per_instance`).
    served: u64,
    /// Given back to the worker's budget when the instance is dropped.
    _slot: InstanceSlot,
}

/// One worker's instances of one route version.
pub struct InstancePool {
    route: Arc<Route>,
    /// This worker's handle on the index, for components that import `wiki`.
    index: Option<WorkerIndex>,
    /// Idle instances (only in `core` isolation).
    idle: RefCell<Vec<Live>>,
    /// The worker's instance and memory budget, shared by its routes.
    budget: Rc<WorkerBudget>,
    /// What this route holds of it.
    usage: Rc<RouteUsage>,
    /// The route's metrics on this worker, when they are kept.
    metrics: Option<Arc<RouteMetrics>>,
    /// Where the route's guest output goes on this worker (its rate limit).
    log: Arc<RouteLog>,
}

impl InstancePool {
    /// An empty pool for `route` on a worker with `budget`.
    pub fn new(
        route: Arc<Route>,
        index: Option<&WorkerIndex>,
        budget: Rc<WorkerBudget>,
        metrics: Option<Arc<RouteMetrics>>,
    ) -> Self {
        let index = index.filter(|_| route.component.imports_wiki).cloned();
        let log = Arc::new(RouteLog::new(&route.prefix, metrics.clone()));
        InstancePool {
            log,
            route,
            index,
            idle: RefCell::new(Vec::new()),
            budget,
            usage: Rc::default(),
            metrics,
        }
    }

    /// Counts an instance dropped for `reason`.
    fn discard(&self, reason: Discard) {
        if let Some(metrics) = &self.metrics {
            metrics.discarded(reason);
        }
    }

    /// The error for a call of `live` that failed with `e` (its instance is
    /// dropped), counted by reason; what the guest printed before it failed
    /// (a panic message) is logged first.
    fn failed(&self, live: &mut Live, e: wasmtime::Error) -> RequestError {
        live.store.data_mut().output.end_call();
        let error = self.classify(e);
        self.discard(match error {
            RequestError::Deadline { .. } => Discard::Deadline,
            _ if live.store.data().limits.refused_growth() => Discard::Memory,
            _ => Discard::Trap,
        });
        error
    }

    /// What this route holds of its worker's budget.
    pub fn usage(&self) -> &Rc<RouteUsage> {
        &self.usage
    }

    /// Calls the guest's `handle` with `req`.
    ///
    /// The deadline is enforced twice: the epoch callback interrupts guest
    /// code that runs past it, and a timer drops the call when the guest is
    /// waiting in a host call (a sleep) instead. The timer is only created
    /// when the call does not finish in its first poll, so the calls that
    /// do (almost all of them) never build, register or drop one, nor read
    /// the clock ([`Deadline`]).
    ///
    /// This future is part of every connection's memory: hyper keeps a box
    /// the size of the request's future for each connection, idle or not.
    /// So what only some calls need (an instantiation, the timer) is boxed
    /// where it is needed, and the call is pinned once (see
    /// `http::tests::a_connection_holds_a_small_request_future`).
    pub async fn call(&self, req: GuestRequest<'_>) -> Result<Response, RequestError> {
        let limit = self.route.limits.deadline();
        let mut call = std::pin::pin!(self.call_until(req, Deadline::Within(limit)));
        if !self.route.component.deadlines {
            return call.await;
        }
        if let Poll::Ready(result) = poll_once(call.as_mut()).await {
            return result;
        }
        // The call waits for the first time: within one epoch tick of its
        // start, or at the tick that fixed the instance's deadline a moment
        // ago (see `Deadline`).
        let deadline = Instant::now() + limit;
        let mut timer = Box::pin(tokio::time::sleep_until(deadline.into()));
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = call.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            // Past the deadline the call future is dropped mid-call, and its
            // instance with it.
            timer.as_mut().poll(cx).map(|()| {
                self.discard(Discard::Deadline);
                Err(self.deadline_passed())
            })
        })
        .await
    }

    async fn call_until(
        &self,
        req: GuestRequest<'_>,
        deadline: Deadline,
    ) -> Result<Response, RequestError> {
        let mut live = self.take(deadline).await?;
        let Bindings::Percore(bindings) = &live.bindings else {
            return Err(self.not_this_world());
        };
        let request = Request {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: live
                .store
                .data_mut()
                .lend_fields(req.headers, req.path_and_query.cloned()),
            body: req.body,
        };
        let result = bindings.call_handle(&mut live.store, request).await;
        // A guest that kept the request's fields past the call loses its
        // instance: a worker's instance holds no request's state.
        let kept = live.store.data_mut().reclaim_fields();
        if kept && result.is_ok() {
            self.discard(Discard::KeptResources);
            tracing::debug!(
                route = %self.route.prefix,
                "the guest kept a request's header fields after its call; discarding its instance"
            );
        }
        match result {
            Ok(response) => {
                if !kept {
                    self.give_back(live);
                }
                Ok(response)
            }
            // The instance is dropped here: after a trap its state is suspect.
            Err(e) => Err(self.failed(&mut live, e)),
        }
    }

    /// Calls a `wasi:http/proxy` guest's `incoming-handler.handle` with
    /// `req`, and returns its response as soon as the guest has set it:
    /// the call goes on in a task of the worker's own (the guest reads the
    /// request body as it arrives and writes the response body while
    /// hyper sends it), under the route's deadline, and gives the instance
    /// back when it ends.
    ///
    /// When the request body went past the route's limit (or stalled)
    /// before the guest set its response, the client gets 413 (or 408)
    /// instead of it; a response set before that is sent, and the
    /// connection closes after it unless hyper can skip the rest of the
    /// body. An instance that keeps the request body past its call is
    /// dropped (it would hold the connection's unread body).
    pub async fn call_wasi_http(
        self: &Rc<Self>,
        req: hyper::Request<RequestBody>,
    ) -> Result<hyper::Response<HyperOutgoingBody>, RequestError> {
        let deadline = Instant::now() + self.route.limits.deadline();
        let mut live = self.take(Deadline::At(deadline)).await?;
        if !matches!(live.bindings, Bindings::WasiHttp(_)) {
            return Err(self.not_this_world());
        }
        let fault = req.body().fault();
        let kept_body = fault.clone();
        live.store
            .data_mut()
            .allow_outbound(self.route.allow_outbound.as_ref(), deadline);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let mut http = live.store.data_mut().http();
        let bad = |e: wasmtime::Error| RequestError::BadBody(format!("{e:#}"));
        let request = http.new_incoming_request(Scheme::Http, req).map_err(bad)?;
        // The answer goes with what had gone wrong with the body when the
        // guest set it (the rest of the body may fail while it is sent).
        let fault_then = fault.clone();
        let out = http
            .new_response_outparam_from_callback(move |response| {
                let _ = sender.send((response, fault_then.and_then(|f| f.get())));
            })
            .map_err(bad)?;
        let pool = self.clone();
        let call = async move {
            let Bindings::WasiHttp(proxy) = &live.bindings else {
                unreachable!("checked above");
            };
            let result = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut live.store, request, out)
                .await;
            match result {
                // The guest still holds the request body (in its table):
                // the instance goes, and the body with it.
                Ok(()) if kept_body.is_some_and(|body| body.body_alive()) => {
                    pool.discard(Discard::KeptResources);
                    Ok(())
                }
                Ok(()) => {
                    pool.give_back(live);
                    Ok(())
                }
                Err(e) => Err(pool.failed(&mut live, e)),
            }
        };
        // Polled here first: most guests set their response and write and
        // finish its body within that poll, and their call then costs
        // neither a task nor a deadline timer. One that is not done goes on
        // in a task of its own, under a timer for the rest of its deadline
        // (the epoch interrupt covered the first poll). Either way it
        // carries the request's trace id, for the lines logged meanwhile
        // (its output among them).
        let mut call = Box::pin(crate::trace::InTrace::inherit(call));
        let end = match poll_once(call.as_mut()).await {
            Poll::Ready(result) => CallEnd::Done(result),
            Poll::Pending => {
                let pool = self.clone();
                CallEnd::Running(tokio::task::spawn_local(async move {
                    if !pool.route.component.deadlines {
                        return call.await;
                    }
                    match tokio::time::timeout_at(deadline.into(), call).await {
                        Ok(result) => result,
                        Err(_elapsed) => {
                            pool.discard(Discard::Deadline);
                            Err(pool.deadline_passed())
                        }
                    }
                }))
            }
        };
        let answer = receiver.await;
        // A body past the limit (or stalled) before the guest answered, or
        // in a call that never answered: the host answers for it, whatever
        // the guest made of the failed read.
        let fault = match &answer {
            Ok((_, fault_then)) => *fault_then,
            Err(_) => fault.and_then(|fault| fault.get()),
        };
        if let Some(fault) = fault {
            return Err(self.body_fault(fault));
        }
        self.wasi_answer(answer.map(|(response, _)| response), end)
            .await
    }

    /// What the client of a `wasi:http` call (0.2 or 0.3) gets: the
    /// response the guest set, or, when it set none, why: the error code it
    /// answered with, or how its call (`task`) ended (a trap, the deadline,
    /// or a return without answering).
    async fn wasi_answer<R>(
        &self,
        answer: Result<Result<R, impl std::fmt::Debug>, tokio::sync::oneshot::error::RecvError>,
        call: CallEnd,
    ) -> Result<R, RequestError> {
        match answer {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(RequestError::BadResponse {
                route: self.route.prefix.clone(),
                why: format!("the handler answered with the error {code:?}"),
            }),
            Err(_) => Err(match call.ended().await {
                Ok(Err(e)) => e,
                Ok(Ok(())) => RequestError::BadResponse {
                    route: self.route.prefix.clone(),
                    why: "the handler returned without setting a response".into(),
                },
                Err(e) => RequestError::Trap {
                    route: self.route.prefix.clone(),
                    detail: format!("the handler's task failed: {e}"),
                },
            }),
        }
    }

    /// The error for a streamed request body that failed with `fault`.
    fn body_fault(&self, fault: Fault) -> RequestError {
        match fault {
            Fault::TooLarge => RequestError::BodyTooLarge {
                route: self.route.prefix.clone(),
                limit: self.route.limits.max_request_body_bytes,
            },
            Fault::Stalled {
                received,
                timeout_ms,
            } => RequestError::BodyTimeout {
                received,
                timeout_ms,
            },
        }
    }

    /// Calls a `wasi:http/service` (0.3) guest's `wasi:http/handler.handle`
    /// with `req`, and returns its response as soon as the guest has
    /// returned it, as [`InstancePool::call_wasi_http`] does for 0.2: the
    /// call goes on in a task of the worker's own, inside the store's
    /// event loop (`run_concurrent`), which moves the body from the guest
    /// while hyper sends it. Under the route's deadline, as a whole, from
    /// outside the event loop (a guest that loops holds the loop). The
    /// instance is given back once the body was read to its end (by hyper,
    /// or by the call for a `HEAD` request, whose body hyper does not send)
    /// and the guest's tasks have all exited (also after an error code); it is
    /// dropped after a trap, the deadline, or a body not read to its end
    /// (counted as kept resources: the guest may still be writing it).
    pub async fn call_wasi_http_p3(
        self: &Rc<Self>,
        req: hyper::Request<RequestBody>,
    ) -> Result<hyper::Response<P3Body>, RequestError> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let deadline = Instant::now() + self.route.limits.deadline();
        let mut live = self.take(Deadline::At(deadline)).await?;
        if !matches!(live.bindings, Bindings::WasiHttpP3(_)) {
            return Err(self.not_this_world());
        }
        live.store
            .data_mut()
            .allow_outbound(self.route.allow_outbound.as_ref(), deadline);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let head = req.method() == hyper::Method::HEAD;
        let (request, request_io) =
            wasmtime_wasi_http::p3::Request::from_http(live.store.data_mut().http().hooks, req);
        let failed = Arc::new(AtomicBool::new(false));
        let body_failed = failed.clone();
        let pool = self.clone();
        let call = async move {
            let Live {
                store, bindings, ..
            } = &mut live;
            let Bindings::WasiHttpP3(service) = bindings else {
                unreachable!("checked above");
            };
            let outcome = store
                .run_concurrent(async move |accessor| -> wasmtime::Result<bool> {
                    let (done, read) = tokio::sync::oneshot::channel();
                    match service.handle(accessor, request).await? {
                        // Answered with an error code: no body to send.
                        Err(code) => {
                            let _ = sender.send(Err(code));
                            let _ = done.send(None);
                        }
                        Ok(response) => {
                            let response = accessor.with(|mut store| {
                                response.into_http_with_getter(
                                    &mut store,
                                    request_io,
                                    <HostState as wasmtime_wasi_http::WasiHttpView>::http,
                                )
                            })?;
                            let response =
                                response.map(|body| P3Body::new(body, done, body_failed, head));
                            if sender.send(Ok(response)).is_err() {
                                return Ok(false);
                            }
                        }
                    }
                    // The body comes from the guest through this loop.
                    match read.await {
                        Err(_) => return Ok(false),
                        Ok(None) => {}
                        // A response to `HEAD`: hyper sent its head only;
                        // the guest's body is read here, as a `GET`'s would
                        // have been sent, and dropped.
                        Ok(Some(mut body)) => {
                            use http_body_util::BodyExt as _;
                            while let Some(frame) = body.frame().await {
                                if frame.is_err() {
                                    return Ok(false);
                                }
                            }
                        }
                    }
                    // The guest may go on after it answered (a task that
                    // wrote the body, then exits): the instance is reused
                    // only once it is idle.
                    std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx)).await;
                    Ok(true)
                })
                .await
                .and_then(|outcome| outcome);
            match outcome {
                Ok(true) => {
                    pool.give_back(live);
                    Ok(())
                }
                // A body not read to its end: the instance may still be
                // writing it; it is dropped.
                Ok(false) => {
                    pool.discard(Discard::KeptResources);
                    Ok(())
                }
                Err(e) => Err(pool.failed(&mut live, e)),
            }
        };
        let pool = self.clone();
        let task = tokio::task::spawn_local(async move {
            let result = if pool.route.component.deadlines {
                match tokio::time::timeout_at(deadline.into(), call).await {
                    Ok(result) => result,
                    Err(_elapsed) => {
                        pool.discard(Discard::Deadline);
                        Err(pool.deadline_passed())
                    }
                }
            } else {
                call.await
            };
            if result.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            result
        });
        self.wasi_answer(receiver.await, CallEnd::Running(task))
            .await
    }

    /// An instance for a call that must end by `deadline`: this worker's
    /// idle one in `core` isolation, else a new one.
    async fn take(&self, mut deadline: Deadline) -> Result<Live, RequestError> {
        if self.route.isolation == Isolation::Core {
            loop {
                if let Some(mut live) = self.idle.borrow_mut().pop() {
                    live.store.data_mut().deadline = deadline;
                    if self.route.component.deadlines {
                        live.store.set_epoch_deadline(1);
                    }
                    return Ok(live);
                }
                if self.usage.in_use() < MAX_CORE_INSTANCES {
                    break;
                }
                // Boxed: kept out of every call's future (see `call`).
                if !Box::pin(self.usage.wait_for_free(deadline.fix())).await {
                    return Err(RequestError::Overloaded {
                        route: self.route.prefix.clone(),
                        detail: format!(
                            "its {MAX_CORE_INSTANCES} core instances on this worker stayed busy until the request's deadline"
                        ),
                    });
                }
            }
        }
        // Boxed: an instantiation's future is large, and it would
        // otherwise be part of every call's (see `call`).
        Box::pin(self.instantiate(deadline)).await
    }

    /// Takes back an instance whose call succeeded: kept for the next call
    /// in `core` isolation (until `max_requests_per_instance`), else
    /// dropped.
    fn give_back(&self, mut live: Live) {
        live.store.data_mut().output.end_call();
        live.served += 1;
        let limit = self.route.limits.max_requests_per_instance;
        let worn_out = limit != 0 && live.served >= limit;
        if worn_out {
            self.discard(Discard::ReuseLimit);
        }
        if self.route.isolation == Isolation::Core && !worn_out {
            self.idle.borrow_mut().push(live);
            self.usage.wake_one();
        }
    }

    /// The error for a call of the other world's kind (a bug in the HTTP
    /// hop: it picks the call by the route's world).
    fn not_this_world(&self) -> RequestError {
        RequestError::BadResponse {
            route: self.route.prefix.clone(),
            why: format!(
                "the route serves a {} component, called as another world's",
                self.route.component.world
            ),
        }
    }

    async fn instantiate(&self, deadline: Deadline) -> Result<Live, RequestError> {
        let slot =
            self.budget
                .try_acquire(&self.usage)
                .map_err(|refusal| RequestError::Overloaded {
                    route: self.route.prefix.clone(),
                    detail: refusal.to_string(),
                })?;
        let pre = &self.route.component.pre;
        let limits = &self.route.limits;
        let mut state = HostState::new(
            self.budget.limiter(limits.max_memory_bytes),
            limits.max_host_resources,
            self.index.clone(),
            self.metrics.clone(),
            self.log.clone(),
        );
        state.deadline = deadline;
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        if self.route.component.deadlines {
            self.arm_deadline(&mut store);
        }
        let bindings = match pre {
            ComponentPre::Percore(pre) => pre
                .instantiate_async(&mut store)
                .await
                .map(Bindings::Percore),
            ComponentPre::WasiHttp(pre) => pre
                .instantiate_async(&mut store)
                .await
                .map(Bindings::WasiHttp),
            ComponentPre::WasiHttpP3(pre) => pre
                .instantiate_async(&mut store)
                .await
                .map(Bindings::WasiHttpP3),
        };
        match bindings {
            Ok(bindings) => {
                if let Some(metrics) = &self.metrics {
                    metrics.instances_created.add(1);
                }
                Ok(Live {
                    store,
                    bindings,
                    served: 0,
                    _slot: slot,
                })
            }
            Err(e) if e.downcast_ref::<Trap>().is_some() => {
                self.discard(Discard::Trap);
                Err(self.classify(e))
            }
            Err(e) => Err(RequestError::Overloaded {
                route: self.route.prefix.clone(),
                detail: format!("{e:#}"),
            }),
        }
    }

    /// Interrupts the store's guest code at the first epoch tick past its
    /// deadline, and yields to the worker's other connections at every tick
    /// before it.
    fn arm_deadline(&self, store: &mut Store<HostState>) {
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut cx| {
            if Instant::now() >= cx.data_mut().deadline.fix() {
                Ok(UpdateDeadline::Interrupt)
            } else {
                // tokio's yield_now lets the worker poll its sockets before
                // the guest runs again (a plain wake would be re-polled
                // before the I/O driver, starving other connections).
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
    }

    fn classify(&self, e: wasmtime::Error) -> RequestError {
        if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            self.deadline_passed()
        } else {
            RequestError::Trap {
                route: self.route.prefix.clone(),
                detail: format!("{e:?}"),
            }
        }
    }

    /// The error for a call that ran past its deadline, however it was
    /// stopped (the epoch interrupt, or a timer while it waited).
    fn deadline_passed(&self) -> RequestError {
        RequestError::Deadline {
            route: self.route.prefix.clone(),
            deadline_ms: self.route.limits.deadline_ms,
        }
    }
}

/// How a `wasi:http` call that answers through a channel ended, or the
/// task it goes on in.
enum CallEnd {
    /// It ended within its first poll.
    Done(Result<(), RequestError>),
    /// It goes on in this task.
    Running(tokio::task::JoinHandle<Result<(), RequestError>>),
}

impl CallEnd {
    /// How the call ended, once it has (or how its task failed).
    async fn ended(self) -> Result<Result<(), RequestError>, tokio::task::JoinError> {
        match self {
            CallEnd::Done(result) => Ok(result),
            CallEnd::Running(task) => task.await,
        }
    }
}

/// Polls `future` once, returning what that poll returned; a pending future
/// has registered the current task's waker and can be polled again.
fn poll_once<F: Future>(mut future: Pin<&mut F>) -> impl Future<Output = Poll<F::Output>> + '_ {
    std::future::poll_fn(move |cx| Poll::Ready(future.as_mut().poll(cx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_limit_is_fixed_once_from_when_it_is_first_needed() {
        let before = Instant::now();
        let mut deadline = Deadline::Within(Duration::from_secs(10));
        let at = deadline.fix();
        assert!(at >= before + Duration::from_secs(10));
        assert!(matches!(deadline, Deadline::At(fixed) if fixed == at));
        // Fixed: it no longer moves.
        assert_eq!(deadline.fix(), at);
    }
}
