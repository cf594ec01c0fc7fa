//! Criterion benchmarks of one guest call with no HTTP and no sockets: what
//! a request costs inside wasmtime, per isolation mode. This is the floor
//! under percore's per-request CPU that no change to the host's HTTP path
//! can remove.
//!
//! ```text
//! cargo bench -p percore-benches --bench guest_call
//! ```
//!
//! - `core`: `handle` on the worker's reused instance (what `--isolation
//!   core` does per request): lending the header fields to the instance as
//!   a `fields` resource, lowering the rest of the request record into
//!   guest memory (one `realloc` call into the guest per string and list),
//!   the call on a fiber, the guest's own code, lifting the response, and
//!   `post-return`.
//! - `request`: a fresh store and instance per call, then its teardown
//!   (what `--isolation request` does per request).
//! - `native`: the same response built by Rust code in the host: the
//!   baseline in the same run (a native hyper server's handler).
//!
//! The request is the one wrk sends to `/plaintext` (and `/json`): `GET`,
//! one `host` header, no body. The hello guest answers it. Two more `core`
//! cases show what request headers cost: the same request with no headers,
//! and with the eight headers a browser sends. Every case clones a header
//! map, as hyper makes one per request; the clones are measured on their
//! own to subtract.

#![expect(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use percore::bindings::{Body, Response};
use percore::budget::WorkerBudget;
use percore::engine::{EngineOptions, HostEngine};
use percore::pool::{GuestRequest, InstancePool};
use percore::routes::Route;
use percore::{Isolation, Limits};

/// The header wrk sends.
const WRK: &[(&str, &str)] = &[("host", "127.0.0.1:8080")];

/// The headers a browser sends with a page request.
const BROWSER: &[(&str, &str)] = &[
    ("host", "127.0.0.1:8080"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0",
    ),
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("accept-language", "en-US,en;q=0.5"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("connection", "keep-alive"),
    ("upgrade-insecure-requests", "1"),
    ("priority", "u=0, i"),
];

/// `headers` as hyper parses them.
fn header_map(headers: &[(&str, &str)]) -> HeaderMap {
    headers
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_bytes(name.as_bytes()).expect("a valid name"),
                HeaderValue::from_str(value).expect("a valid value"),
            )
        })
        .collect()
}

/// A `GET path` request with `headers` and no body.
fn request<'a>(path: &'a str, headers: HeaderMap) -> GuestRequest<'a> {
    GuestRequest {
        method: "GET",
        path,
        path_and_query: None,
        query: "",
        headers,
        body: &[],
    }
}

/// A pool of the hello guest on one (benchmark) worker.
fn pool(engine: &HostEngine, isolation: Isolation) -> InstancePool {
    let component = engine
        .compile("hello", percore::guests::HELLO)
        .expect("hello compiles");
    let route = Arc::new(Route::new("/", component, isolation, Limits::default()));
    // A budget as large as the pooling allocator's.
    let budget = std::rc::Rc::new(WorkerBudget::new(1000, u64::MAX));
    InstancePool::new(route, None, budget, None)
}

/// What a native handler does for `/plaintext`: the response the guest
/// builds, built in the host.
fn native(req: &GuestRequest<'_>) -> Response {
    let body = if req.path.ends_with("/plaintext") {
        b"Hello, World!".to_vec()
    } else {
        Vec::new()
    };
    Response {
        status: 200,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: Body::Bytes(body),
    }
}

fn guest_call(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let engine = HostEngine::new(EngineOptions::default()).expect("the engine");
    let mut group = c.benchmark_group("guest_call");
    group.measurement_time(Duration::from_secs(4));
    let cases = [
        ("/plaintext", WRK, Isolation::Core, ""),
        ("/plaintext", WRK, Isolation::Request, ""),
        ("/json", WRK, Isolation::Core, ""),
        ("/json", WRK, Isolation::Request, ""),
        ("/plaintext", &[][..], Isolation::Core, ", no headers"),
        (
            "/plaintext",
            BROWSER,
            Isolation::Core,
            ", 8 browser headers",
        ),
    ];
    // Every case clones its header map (hyper's parse makes a new one for
    // every request); this is what that costs.
    let wrk = header_map(WRK);
    group.bench_function("clone of wrk's header map", |b| {
        b.iter(|| black_box(wrk.clone()))
    });
    let browser = header_map(BROWSER);
    group.bench_function("clone of a browser's header map", |b| {
        b.iter(|| black_box(browser.clone()))
    });
    for path in ["/plaintext", "/json"] {
        group.bench_function(format!("native {path}"), |b| {
            b.iter(|| black_box(native(black_box(&request(path, wrk.clone())))))
        });
    }
    for (path, headers, isolation, what) in cases {
        let pool = pool(&engine, isolation);
        let headers = header_map(headers);
        group.bench_function(format!("{isolation} {path}{what}"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let response = pool
                            .call(request(path, headers.clone()))
                            .await
                            .expect("hello answers");
                        assert_eq!(response.status, 200);
                        black_box(response);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, guest_call);
criterion_main!(benches);
