//! percore: a per-core WebAssembly handler host.
//!
//! Handlers are WebAssembly components that export one function, `handle`,
//! from the `percore:host/handler` world (`wit/handler.wit`). The host runs
//! one worker per core; each worker owns its wasmtime stores and instances,
//! so no lock or channel is shared across cores on the request path.
//!
//! # Layout
//!
//! The request path, hop by hop, and the file that owns each hop:
//!
//! ```text
//! worker.rs          accept: one thread, runtime and SO_REUSEPORT listener
//!                    per core; a connection permit per connection
//!   connection.rs    one connection: hyper's HTTP/1.1, write batching,
//!                    graceful shutdown, the answer to a connection over
//!                    the limit
//!     http.rs        request → guest request, guest response → response
//!       router.rs    longest prefix (pure)
//!       routes.rs    the worker's generation-checked snapshot of the table
//!         pool.rs    the route's instances on this worker, the deadline
//!         budget.rs  the worker's instances shared fairly by its routes,
//!                    and its share of guest memory
//!           bindings.rs        the WIT world (bindgen!), guest `handle`
//!             host_functions.rs  WASI without authority, `fields`, `wiki`
//!             guest_log.rs       guest stdout/stderr → the host's log,
//!                                bounded per request, rate-limited
//!             respond.rs         a wasi:http guest's whole response in
//!                                one call (`percore:http-wiki/respond`)
//!               percore-index    the shared, memory-mapped title index
//!     body.rs        the response body: guest bytes, or the dump streamed
//!                    from its mapping (range checks, read-ahead); a
//!                    wasi:http guest's request body, streamed, capped
//!     error.rs       the one place a failure becomes a status
//!   stats.rs         per-worker counters and histograms, summed when read
//!   trace.rs         the request's W3C trace context; trace ids in logs
//!   access_log.rs    per-worker buffers of JSON lines, written off-thread
//! ```
//!
//! Starting and changing it:
//!
//! ```text
//! server.rs          start, drain and stop: ops listener, access log,
//!                    index, engine, registry, admin, listeners, workers
//!   engine.rs        wasmtime engines (one more, with concurrency
//!                    support, for wasi:http 0.3), linkers, compile pool,
//!                    epoch ticker
//!   compiler.rs      uploads compiled in a child process, within a budget
//!   registry/        the one owner of routes: compiles, builds every
//!                    Route, publishes tables to the workers, deploys and
//!                    rolls back; registry/store.rs is the state directory
//!     oci.rs         `oci://` references, the wasm artifact layout,
//!                    registry credentials, pull and push (oci-client)
//!   admin/           the admin API over HTTP (api.rs), its client
//!                    (client.rs) and token
//!   ops/             /livez, /readyz (health.rs) and /metrics
//!                    (metrics.rs), on a listener of their own
//!   side_listener.rs the admin's and the ops' listener: a thread of its
//!                    own, HTTP/1.1, graceful stop
//! config.rs          one struct for flags and TOML; RouteOptions, the one
//!                    type of a route's options
//! cli.rs             the `percore` command; new.rs: `percore new` (what
//!                    it writes: host/templates, guests/sdk, wit/);
//!                    check.rs: `percore check` (a component, without a
//!                    host); up.rs: `percore up` (build a crate, serve it,
//!                    rebuild and redeploy it on every change)
//! guests.rs          the guests embedded in the binary (the demo)
//! ```

pub mod access_log;
pub mod admin;
pub mod bindings;
pub mod body;
pub mod budget;
pub mod check;
pub mod cli;
pub mod compiler;
pub mod config;
pub mod connection;
pub mod engine;
pub mod error;
pub mod guest_log;
pub mod guests;
pub mod host_functions;
pub mod http;
pub mod new;
pub mod oci;
pub mod ops;
pub mod pool;
pub mod registry;
pub mod respond;
pub mod router;
pub mod routes;
pub mod server;
pub mod side_listener;
pub mod stats;
pub mod trace;
pub mod up;
pub mod worker;

pub use config::{Config, Isolation, Limits, RouteConfig, RouteOptions};
pub use server::{RunningServer, Server};
