//! percore's integration tests: one binary that starts the real host on
//! `127.0.0.1:0` and talks HTTP/1.1 to it over TCP.
//!
//! # Contents
//!
//! - [`support`]: starting a host, a raw HTTP/1.1 client, guest paths.
//! - [`techempower`]: `/json` and `/plaintext` bodies and headers, `Date`,
//!   pipelining, 404, 400.
//! - [`isolation`]: traps give 500 and the next request succeeds; a global
//!   counter in `request` and `core` isolation; no ambient authority.
//! - [`lifecycle`]: config errors at start, graceful shutdown, SIGTERM.
//! - [`wiki`]: the Wikipedia demo guest over the shipped sample dump:
//!   `/offsets`, `/wiki`, `/xml` with ranges, the refusal of a `wiki`
//!   guest by a host without an index, and flat host memory while clients
//!   stream a 256 MiB generated dump.
//! - [`browser`]: headless Chromium types into the search page.
//! - [`deploy`]: the admin API and CLI: deploy, call, redeploy, roll back,
//!   undeploy; tokens; invalid and oversized uploads; restart from the state
//!   directory without recompiling; corrupt state; redeploys under load;
//!   `percore new` builds and deploys.
//! - [`hostile`]: loops, memory bombs, stack overflows, huge responses, slow
//!   and idle clients, connection limits; every guest has a test.
//! - [`chaos`]: healthy traffic stays whole while hostile requests run.

mod browser;
mod chaos;
mod deploy;
mod hostile;
mod isolation;
mod lifecycle;
mod support;
mod techempower;
mod wiki;
