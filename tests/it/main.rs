//! percore's integration tests: one binary that starts the real host on
//! `127.0.0.1:0` and talks HTTP/1.1 to it over TCP.
//!
//! # Contents
//!
//! - [`support`]: starting a host, a raw HTTP/1.1 client.
//! - [`techempower`]: `/json` and `/plaintext` bodies and headers, `Date`,
//!   pipelining, 404, 400, 413, each against both builds of the guest
//!   (`hello`, percore's world; `wasi-hello`, wasi:http).
//! - [`isolation`]: traps give 500 and the next request succeeds; a global
//!   counter in `request` and `core` isolation; no ambient authority.
//! - [`lifecycle`]: config errors at start, graceful shutdown, SIGTERM.
//! - [`wiki`]: the Wikipedia demo guest over the shipped sample dump:
//!   `/offsets`, `/wiki`, `/xml` with ranges, the refusal of a `wiki`
//!   guest by a host without an index, and flat host memory while clients
//!   stream a 256 MiB generated dump.
//! - [`reader`]: the offline reader: `/read/<title>` renders articles
//!   (infobox, tables, references, lists, redirects, hostile markup, a
//!   3 MB page), `/random`, and every article of the sample dump.
//! - [`browser`]: headless Chromium types into the search page, opens an
//!   article, follows a link, goes back and forward, and no page script runs.
//! - [`deploy`]: the admin API and CLI: deploy, call, redeploy, roll back,
//!   undeploy; tokens; invalid and oversized uploads; restart from the state
//!   directory without recompiling; corrupt state; redeploys under load;
//!   redeploying the serving version, history with options, rollback to
//!   any version, removal of components nothing refers to, state written
//!   by the previous version.
//! - [`new`]: `percore new`: each Rust template (hello, json-api,
//!   wiki-browser) and the Python and JavaScript scaffolds build as they
//!   are, deploy and answer; the release build keeps function names.
//! - [`devloop`]: `percore check` on good and bad components, `percore up`
//!   building and serving a new crate, `--watch` hot-swapping an edit and
//!   keeping the old version through a broken one.
//! - [`oci`]: handlers from an OCI registry (Debian's `docker-registry`
//!   on loopback): `percore push`, `oci://` routes by tag and digest in
//!   the admin API, the CLI and the config, interoperability both ways
//!   with the ORAS Python client, a wrong digest, a registry that is down
//!   and a layer that is not a component changing nothing, and a restart
//!   from the state directory with the registry gone.
//! - [`hostile`]: loops, memory bombs, stack overflows, huge responses, slow
//!   and idle clients, connection limits.
//! - [`chaos`]: healthy traffic stays whole while hostile requests run.
//! - [`wasi_http`]: standard `wasi:http/proxy` components on percore
//!   routes: both worlds side by side, request and response bodies
//!   streamed, trailers both ways, 413 and 408 on a streamed body, unread
//!   and kept bodies, limits, outgoing HTTP only to `allow_outbound`
//!   origins, and a Python handler (componentize-py) reading the wiki
//!   index, served from the compile cache after a restart.
//! - [`wasi_http_p3`]: wasi:http 0.3 (p3) components beside percore-world
//!   and 0.2 routes: both isolations, bodies both ways, deadline, trap,
//!   limits, and the p3 engine built only for p3 routes.
//! - [`ops`]: `/livez`, `/readyz`, `/metrics` under load, draining,
//!   connections queued at shutdown, SIGTERM under load, `traceparent`,
//!   the access log.
//! - [`guest_log`]: guest stdout and stderr in the host's log, with the
//!   route and trace id, a panic's message, truncation and rate limits.
//! - [`mount`]: `x-percore-route` and `x-percore-path-info` for both
//!   worlds under two prefixes; a client cannot spoof them.
//! - [`attacks`]: security round 2: stalled bodies, clients that stop
//!   reading, one answer to garbage, CONNECT and `OPTIONS *`, response
//!   headers and statuses, fair instance shares, the guest-memory budget,
//!   host-resource caps, compile bombs, compiles that block nothing,
//!   corrupt route tables, strange prefixes.

// Every guest has a test: [`guests`] holds one constant per guest crate,
// and a constant no test uses is a dead-code error, so the test binary does
// not build until a new guest is used by a test.
#![deny(dead_code)]

/// The path of every guest's component, one constant per guest crate
/// (`guests/test-loop` is [`guests::TEST_LOOP`]).
mod guests {
    macro_rules! guest_const {
        ($konst:ident, $name:literal, $path:literal) => {
            #[doc = concat!("The `", $name, "` guest's component.")]
            pub(crate) const $konst: &str = $path;
        };
    }
    percore_test_guests::for_each_guest!(guest_const);
}

mod attacks;
mod browser;
mod chaos;
mod deploy;
mod devloop;
mod guest_log;
mod hostile;
mod isolation;
mod lifecycle;
mod mount;
mod new;
mod oci;
mod ops;
mod reader;
mod support;
mod techempower;
mod wasi_http;
mod wasi_http_p3;
mod wiki;
