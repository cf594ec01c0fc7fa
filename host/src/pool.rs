//! A worker's instances of one route version, and the call into the guest.
//!
//! In `request` isolation every call gets a fresh store and instance (cheap:
//! the pooling allocator hands out a pre-reserved slot whose memory is a
//! copy-on-write image of the component's initial heap). In `core`
//! isolation the worker keeps its instances and reuses them; one that failed
//! is dropped. An instance never leaves the worker that created it.
//!
//! A request's header fields are lent to the instance for its call (the
//! `fields` resource, [`crate::state::Fields`]); one that still holds them
//! when the call returns is dropped too.
//!
//! Every call runs under a deadline: the engine's epoch ticks every few
//! milliseconds, and at each tick the running guest yields to the worker's
//! other connections and is interrupted once its deadline has passed.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use hyper::HeaderMap;
use wasmtime::{Store, StoreLimitsBuilder, Trap, UpdateDeadline};

use crate::bindings::{Handler as HandlerBindings, Request, Response};
use crate::config::Isolation;
use crate::error::RequestError;
use crate::routes::Route;
use crate::state::{HostState, WorkerIndex};

/// Most idle instances a worker keeps for one `core` route. Usually one is
/// enough; more are only created while a call is suspended at a deadline
/// check and another request for the same route arrives.
const MAX_IDLE: usize = 4;

/// A request as the pool takes it: the guest's request, borrowing from
/// hyper's, but with the header fields by value: the pool lends them to the
/// instance it picks, as a `fields` resource, without copying them.
pub struct GuestRequest<'a> {
    /// The method, as sent.
    pub method: &'a str,
    /// The path, as sent.
    pub path: &'a str,
    /// The query string without `?`; empty when there is none.
    pub query: &'a str,
    /// The header fields.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: &'a [u8],
}

/// A live instance: its store and the bindings to its exports.
struct Live {
    store: Store<HostState>,
    bindings: HandlerBindings,
}

/// One worker's instances of one route version.
pub struct InstancePool {
    route: Arc<Route>,
    /// This worker's handle on the index, for components that import `wiki`.
    index: Option<WorkerIndex>,
    /// Idle instances (only in `core` isolation).
    idle: RefCell<Vec<Live>>,
}

impl InstancePool {
    /// An empty pool for `route`.
    pub fn new(route: Arc<Route>, index: Option<&WorkerIndex>) -> Self {
        let index = index.filter(|_| route.handler.imports_wiki).cloned();
        InstancePool {
            route,
            index,
            idle: RefCell::new(Vec::new()),
        }
    }

    /// Calls the guest's `handle` with `req`.
    ///
    /// The deadline is enforced twice: the epoch callback interrupts guest
    /// code that runs past it, and a timer drops the call when the guest is
    /// waiting in a host call (a sleep) instead. The timer is only created
    /// when the call does not finish in its first poll, so the calls that
    /// do (almost all of them) never build, register or drop one.
    pub async fn call(&self, req: GuestRequest<'_>) -> Result<Response, RequestError> {
        let deadline = Instant::now() + self.route.limits.deadline();
        let call = self.call_until(req, deadline);
        if !self.route.handler.deadlines {
            return call.await;
        }
        let mut call = std::pin::pin!(call);
        if let Poll::Ready(result) = poll_once(call.as_mut()).await {
            return result;
        }
        match tokio::time::timeout_at(deadline.into(), call).await {
            Ok(result) => result,
            // The call future was dropped mid-call; its instance with it.
            Err(_elapsed) => Err(RequestError::Deadline {
                route: self.route.prefix.clone(),
                deadline_ms: self.route.limits.deadline_ms,
            }),
        }
    }

    async fn call_until(
        &self,
        req: GuestRequest<'_>,
        deadline: Instant,
    ) -> Result<Response, RequestError> {
        let reuse = self.route.isolation == Isolation::Core;
        let idle = if reuse {
            self.idle.borrow_mut().pop()
        } else {
            None
        };
        let mut live = match idle {
            Some(mut live) => {
                live.store.data_mut().deadline = deadline;
                if self.route.handler.deadlines {
                    live.store.set_epoch_deadline(1);
                }
                live
            }
            None => self.instantiate(deadline).await?,
        };
        let request = Request {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: live.store.data_mut().lend_fields(req.headers),
            body: req.body,
        };
        let result = live.bindings.call_handle(&mut live.store, request).await;
        // A guest that kept the request's fields past the call loses its
        // instance: a worker's instance holds no request's state.
        let kept = live.store.data_mut().reclaim_fields();
        if kept && result.is_ok() {
            tracing::debug!(
                route = %self.route.prefix,
                "the guest kept a request's header fields after its call; discarding its instance"
            );
        }
        match result {
            Ok(response) => {
                if reuse && !kept {
                    let mut idle = self.idle.borrow_mut();
                    if idle.len() < MAX_IDLE {
                        idle.push(live);
                    }
                }
                Ok(response)
            }
            // The instance is dropped here: after a trap its state is suspect.
            Err(e) => Err(self.classify(e)),
        }
    }

    async fn instantiate(&self, deadline: Instant) -> Result<Live, RequestError> {
        let pre = &self.route.handler.pre;
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.route.limits.max_memory_bytes as usize)
            .instances(64)
            .tables(64)
            .memories(8)
            .build();
        let mut state = HostState::new(limits, self.index.clone());
        state.deadline = deadline;
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        if self.route.handler.deadlines {
            self.arm_deadline(&mut store);
        }
        match pre.instantiate_async(&mut store).await {
            Ok(bindings) => Ok(Live { store, bindings }),
            Err(e) if e.downcast_ref::<Trap>().is_some() => Err(self.classify(e)),
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
        store.epoch_deadline_callback(|cx| {
            if Instant::now() >= cx.data().deadline {
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
        let route = self.route.prefix.clone();
        if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            RequestError::Deadline {
                route,
                deadline_ms: self.route.limits.deadline_ms,
            }
        } else {
            RequestError::Trap {
                route,
                detail: format!("{e:?}"),
            }
        }
    }
}

/// Polls `future` once, returning what that poll returned; a pending future
/// has registered the current task's waker and can be polled again.
fn poll_once<F: Future>(mut future: Pin<&mut F>) -> impl Future<Output = Poll<F::Output>> + '_ {
    std::future::poll_fn(move |cx| Poll::Ready(future.as_mut().poll(cx)))
}
