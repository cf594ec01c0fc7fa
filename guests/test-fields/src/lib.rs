//! Test guest: reads a request's header fields through the `fields`
//! resource, or keeps them past its call. Each path is matched on its last
//! segment (`/any/prefix/get`):
//!
//! - `/get?name=N`: the value of the first field `N`, or `(none)`;
//! - `/all?name=N`: every value of the fields `N`, one a line;
//! - `/entries`: every field as `name: value`, one a line;
//! - `/keep`: keeps the request's fields in a global (which the host must
//!   not allow to outlive the call's instance);
//! - anything else: how many requests this instance has served, counting
//!   this one, and how many fields it holds from earlier calls.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use percore_guest::{Fields, Guest, Request, Response, query_param, text};

static CALLS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static KEPT: RefCell<Vec<Fields>> = const { RefCell::new(Vec::new()) };
}

struct Test;

impl Guest for Test {
    fn handle(req: Request) -> Response {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        let name = query_param(&req.query, "name").unwrap_or_default();
        let body = match req.path.rsplit('/').next().unwrap_or_default() {
            "get" => req.headers.get(name).unwrap_or_else(|| "(none)".into()),
            "all" => req.headers.get_all(name).join("\n"),
            "entries" => req
                .headers
                .entries()
                .iter()
                .map(|(name, value)| format!("{name}: {value}\n"))
                .collect(),
            "keep" => {
                KEPT.with(|kept| kept.borrow_mut().push(req.headers));
                "kept".into()
            }
            _ => format!(
                "calls {calls}, kept {}",
                KEPT.with(|kept| kept.borrow().len())
            ),
        };
        text(200, "text/plain; charset=utf-8", &body)
    }
}

percore_guest::export_handler!(Test);
