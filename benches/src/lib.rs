//! Benchmarks of percore: the library behind the `native-hyper` baseline
//! server and the `load` harness driver (both in `src/bin/`), so that the
//! binaries stay thin and the pure parts are unit-tested. The criterion
//! micro-benchmarks live beside it (`benches/index.rs`).
//!
//! # Layout
//!
//! ```text
//! benches/load (bash: installs wrk, oha and wasmtime, builds, makes the
//!               wiki data, runs target/release/load)
//!   → load (plan: throughput rounds with A/B/C/D alternation, pinned
//!           scaling, fixed-rate latency, idle connections)
//!     → load::servers (start a server on a free port, readiness, CPU, stop)
//!     → load::pinning (split the CPUs between server and wrk, taskset)
//!     → load::wrk (run wrk within a time bound, parse its output)
//!     → load::oha (run oha at a fixed rate, parse its JSON)
//!     → load::idle (idle keep-alive connections, RSS per connection)
//!     → load::report (medians over rounds, ratios, the tables, targets)
//!   load::cleanup (every child is killed on drop, error or signal)
//! native (the baseline: hyper 1 with percore's per-core worker design)
//! ```

pub mod load;
pub mod native;
