//! percore: a per-core WebAssembly handler host.
//!
//! Handlers are WebAssembly components that export one function, `handle`,
//! from the `percore:host/handler` world (`wit/handler.wit`). The host runs
//! one worker per core; each worker owns its wasmtime stores and instances,
//! so no lock or channel is shared across cores on the request path.
//!
//! # Layout
//!
//! The request path, hop by hop, and the module that owns each hop:
//!
//! ```text
//! accept (worker: one SO_REUSEPORT listener and one runtime per core)
//!   → HTTP/1.1 (http: hyper connection, limits, request → guest request)
//!     → router (router: longest prefix, pure)
//!       → per-core route table (routes: generation-checked local snapshot)
//!         → instance pool (pool: fresh or per-core instance, deadline)
//!           → guest `handle` (bindings: the WIT world, bindgen!)
//!             → WIT host functions (state: WASI without authority)
//! ```
//!
//! Around it: [`config`] (one struct, CLI flags and TOML map onto it),
//! [`engine`] (wasmtime engine, linker, compilation, epoch ticker),
//! [`server`] (starts the workers, shutdown), [`error`] (the one place where
//! failures become status codes), [`cli`] (the `percore` command) and
//! [`guests`] (the guests this repo builds).
//!
//! Beside the request path: [`admin`] (the admin API: deploys, rollback,
//! the state directory; it publishes new route tables that workers pick up
//! at the routes hop) and [`new`] (`percore new`: a guest crate scaffold).

pub mod admin;
pub mod bindings;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod guests;
pub mod http;
pub mod new;
pub mod pool;
pub mod router;
pub mod routes;
pub mod server;
pub mod state;
pub mod worker;

pub use config::{Config, Isolation, Limits, RouteConfig};
pub use server::{RunningServer, Server};
