//! The host functions: what one handler instance can reach, as the data of
//! its store ([`HostState`]). WASI is provided only as far as a Rust
//! guest's std needs it to start (clocks, random, stdio): no preopened
//! directories, no environment variables, no arguments, no sockets. A
//! guest's stdout and stderr go to the host's log ([`crate::guest_log`]).
//! The `wiki` host functions are thin adapters that reach the
//! shared index (when the host has one; this is the only module that reads
//! it for guests); the `fields` functions read the header fields of the
//! request in progress, and answer the two the host adds itself
//! (`x-percore-route`, `x-percore-path-info`) from where the route is
//! mounted. A standard `wasi:http/proxy` component gets
//! wasmtime-wasi-http's implementation of `wasi:http` over the same
//! resource table; outgoing requests are denied unless the route's
//! `allow_outbound` names their origin ([`OutgoingHttp`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use percore_index::TitleIndex;

use hyper::HeaderMap;
use hyper::header::HeaderName;
use hyper::http::uri::PathAndQuery;
use wasmtime::component::Resource;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::bindings::percore::host::{types, wiki};
use crate::budget::GuestLimiter;
use crate::config::Origins;
use crate::guest_log::{GuestOutput, RouteLog};
use crate::http::{X_PERCORE_PATH_INFO, X_PERCORE_ROUTE};
use crate::pool::Deadline;
use crate::stats::RouteMetrics;

/// A worker's handle on the shared index: an `Arc` of its own around the
/// process-wide `Arc`, so that cloning it per request touches a reference
/// count no other core writes.
pub type WorkerIndex = Arc<Arc<TitleIndex>>;

/// The data of one wasmtime `Store`: one handler instance.
pub struct HostState {
    /// WASI context with no authority: empty environment, no preopens,
    /// networking disabled.
    wasi: WasiCtx,
    /// WASI resources (streams, etc.) the guest holds.
    table: ResourceTable,
    /// Memory and shape limits of this instance, charging its worker's
    /// guest-memory budget.
    pub(crate) limits: GuestLimiter,
    /// When the current call must end; checked at every epoch tick.
    pub(crate) deadline: Deadline,
    /// The shared, read-only title index, if the host has one.
    index: Option<WorkerIndex>,
    /// The header fields of the call in progress, lent to the guest as its
    /// `fields` (handle [`FIELDS_REP`]); `None` once it dropped them, and
    /// between calls.
    fields: Option<HeaderMap>,
    /// The path and query of the call in progress, for its
    /// `x-percore-path-info` (a reference to hyper's buffer, not a copy).
    path: Option<PathAndQuery>,
    /// The guest's stdout and stderr, bound for the host's log; its route
    /// prefix is the call's `x-percore-route`.
    pub(crate) output: GuestOutput,
    /// `wasi:http`'s state, for `wasi:http/proxy` components.
    http: WasiHttpCtx,
    /// How `wasi:http` behaves here: outgoing requests only to the
    /// route's allowed origins.
    http_hooks: OutgoingHttp,
    /// The route's metrics on this worker (`wiki` calls), when kept.
    metrics: Option<Arc<RouteMetrics>>,
}

impl HostState {
    /// State for one instance with the given limits, holding at most
    /// `max_resources` host resources (WASI streams, pollables...) at once,
    /// of the route whose output `log` logs.
    pub fn new(
        limits: GuestLimiter,
        max_resources: u64,
        index: Option<WorkerIndex>,
        metrics: Option<Arc<RouteMetrics>>,
        log: Arc<RouteLog>,
    ) -> Self {
        // `WasiCtx::default()` is what `WasiCtx::builder()...build()` gives
        // with nothing configured: closed stdin, discarded stdout/stderr (the
        // linker's own `get-stdout` and `get-stderr` hand out `output`'s
        // streams instead), no preopens, environment or arguments, and TCP, UDP and name lookup
        // all disallowed (wasmtime-wasi's defaults; the `test-escape` guest
        // checks them). The builder would construct that default twice per
        // request (`build` leaves a fresh one behind), seeding two sets of
        // RNGs; this builds it once.
        let wasi = WasiCtx::default();
        let mut table = ResourceTable::new();
        table.set_max_capacity(usize::try_from(max_resources).unwrap_or(usize::MAX));
        HostState {
            wasi,
            table,
            limits,
            // Set before every call.
            deadline: Deadline::Within(Duration::ZERO),
            index,
            fields: None,
            path: None,
            output: GuestOutput::new(log),
            http: WasiHttpCtx::new(),
            http_hooks: OutgoingHttp::default(),
            metrics,
        }
    }

    /// The index, for a `wiki` call (counted).
    fn wiki(&self) -> Option<&WorkerIndex> {
        if let Some(metrics) = &self.metrics {
            metrics.wiki_calls.add(1);
        }
        self.index.as_ref()
    }
}

/// `wasi:http` without ambient authority: a guest may build outgoing
/// requests, but `outgoing-handler.handle` sends one only to an origin of
/// its route's `allow_outbound` (scheme, host and port all equal), with
/// wasmtime-wasi-http's own client and timeouts no longer than what is
/// left of the call's deadline; any other fails with
/// `HTTP-request-denied`, as the guest may open no socket.
#[derive(Default)]
pub struct OutgoingHttp {
    /// The origins the route allows; `None`: none.
    allowed: Option<Arc<Origins>>,
    /// When the call in progress must end.
    deadline: Option<Instant>,
}

impl HostState {
    /// Lets the instance send requests to `allowed` during a call that
    /// ends at `deadline` (the route's `allow_outbound`; `None`: no
    /// requests). The origins are kept for the instance's life.
    pub(crate) fn allow_outbound(&mut self, allowed: Option<&Arc<Origins>>, deadline: Instant) {
        let hooks = &mut self.http_hooks;
        if hooks.allowed.is_none() {
            hooks.allowed = allowed.cloned();
        }
        hooks.deadline = Some(deadline);
    }
}

/// What `send_request` returns: the response and the connection's task.
type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                hyper::Response<wasmtime_wasi_http::WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutgoingHttp {
    fn send_request(
        &mut self,
        request: hyper::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        let allowed = self
            .allowed
            .as_ref()
            .is_some_and(|origins| origins.allows(request.uri()));
        let Some(deadline) = self.deadline.filter(|_| allowed) else {
            return Box::new(std::future::ready(Err(
                wasmtime_wasi_http::p2::bindings::http::types::ErrorCode::HttpRequestDenied.into(),
            )));
        };
        // No wait may outlast the call: each of the guest's timeouts is cut
        // to what is left of its deadline (wasmtime-wasi-http's default for
        // an unset one is 600 s).
        let left = deadline.saturating_duration_since(Instant::now());
        let cut = |asked: Option<Duration>| Some(asked.map_or(left, |asked| asked.min(left)));
        let asked = options.unwrap_or_default();
        let options = wasmtime_wasi_http::RequestOptions {
            connect_timeout: cut(asked.connect_timeout),
            first_byte_timeout: cut(asked.first_byte_timeout),
            between_bytes_timeout: cut(asked.between_bytes_timeout),
        };
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, connection) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(connection) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A request's header fields as a guest sees them: the WIT `fields`
/// resource. Only its handle exists: the fields themselves are hyper's
/// parsed map, moved into the instance's [`HostState`] for one call, never
/// copied whole. A guest copies out only what it asks for.
pub enum Fields {}

/// The handle of a call's `fields`. A store runs one call at a time, so one
/// number is enough, and lending costs no allocation or table entry. Every
/// `Resource<Fields>` a guest can pass back is this one (the host makes no
/// other), so the methods below need not look at it.
const FIELDS_REP: u32 = 0;

impl HostState {
    /// Lends `headers` to the guest for one call, for a request to `path`.
    pub(crate) fn lend_fields(
        &mut self,
        headers: HeaderMap,
        path: Option<PathAndQuery>,
    ) -> Resource<Fields> {
        self.fields = Some(headers);
        self.path = path;
        Resource::new_own(FIELDS_REP)
    }

    /// Ends the loan of the call's fields: whether the guest still held
    /// them (a well-behaved guest drops them before it returns).
    pub(crate) fn reclaim_fields(&mut self) -> bool {
        self.path = None;
        self.fields.take().is_some()
    }

    /// The value of `name` when it is a field the host answers itself
    /// (where the route is mounted), whatever the client sent under it;
    /// `None` for any other name.
    fn mount_field(&self, name: &str) -> Option<Option<String>> {
        let prefix = self.output.prefix();
        if name.eq_ignore_ascii_case(X_PERCORE_ROUTE.as_str()) {
            Some(self.fields.as_ref().map(|_| prefix.to_owned()))
        } else if name.eq_ignore_ascii_case(X_PERCORE_PATH_INFO.as_str()) {
            let path = self.path.as_ref().map_or("/", PathAndQuery::path);
            Some(
                self.fields
                    .as_ref()
                    .map(|_| crate::router::path_info(prefix, path).to_owned()),
            )
        } else {
            None
        }
    }
}

/// Whether `name` is one of the fields the host answers itself.
fn is_mount_field(name: &HeaderName) -> bool {
    name == X_PERCORE_ROUTE || name == X_PERCORE_PATH_INFO
}

/// A header value as the guest gets it: as sent when it is UTF-8, else
/// with U+FFFD in place of the bad bytes.
fn value_string(value: &hyper::header::HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

impl types::HostFields for HostState {
    fn get(&mut self, _: Resource<Fields>, name: String) -> Option<String> {
        if let Some(value) = self.mount_field(&name) {
            return value;
        }
        self.fields.as_ref()?.get(name.as_str()).map(value_string)
    }

    fn get_all(&mut self, _: Resource<Fields>, name: String) -> Vec<String> {
        if let Some(value) = self.mount_field(&name) {
            return value.into_iter().collect();
        }
        self.fields.as_ref().map_or_else(Vec::new, |map| {
            map.get_all(name.as_str())
                .iter()
                .map(value_string)
                .collect()
        })
    }

    fn entries(&mut self, _: Resource<Fields>) -> Vec<(String, String)> {
        let Some(map) = self.fields.as_ref() else {
            return Vec::new();
        };
        let mut entries: Vec<(String, String)> = map
            .iter()
            .filter(|(name, _)| !is_mount_field(name))
            .map(|(name, value)| (name.as_str().to_owned(), value_string(value)))
            .collect();
        for name in [&X_PERCORE_ROUTE, &X_PERCORE_PATH_INFO] {
            if let Some(Some(value)) = self.mount_field(name.as_str()) {
                entries.push((name.as_str().to_owned(), value));
            }
        }
        entries
    }

    fn drop(&mut self, _: Resource<Fields>) -> wasmtime::Result<()> {
        self.fields = None;
        self.path = None;
        Ok(())
    }
}

impl types::Host for HostState {}

/// Most titles one `prefix` call returns.
pub const MAX_PREFIX_RESULTS: u32 = 10_000;
/// Most bytes of titles and redirect targets one `prefix` call returns.
pub const MAX_PREFIX_BYTES: usize = 4 << 20;
/// Most bytes one `read` call returns, and most bytes of text one `text`
/// call returns.
pub const MAX_READ_BYTES: u64 = 1 << 20;

fn invalid(why: impl Into<String>) -> wiki::Error {
    wiki::Error::InvalidArgument(why.into())
}

fn to_wit(page: percore_index::Page) -> wiki::Page {
    wiki::Page {
        title: page.title,
        first: page.first,
        last: page.last,
        id: page.id,
        namespace: page.namespace,
        redirect: page.redirect,
    }
}

/// The `wiki` host functions: thin adapters over [`TitleIndex`] that cap
/// result sizes. Without an index every call finds nothing; a guest that
/// imports `wiki` is refused at start on such a host, so that is only a
/// second line of defence.
impl wiki::Host for HostState {
    fn lookup(&mut self, title: String) -> Option<wiki::Page> {
        self.wiki()?.lookup(&title).map(to_wit)
    }

    fn lookup_normalized(&mut self, title: String) -> Option<wiki::Page> {
        self.wiki()?.lookup_normalized(&title).map(to_wit)
    }

    fn prefix(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
        case_insensitive: bool,
    ) -> Result<Vec<wiki::Page>, wiki::Error> {
        let index = self
            .wiki()
            .ok_or_else(|| invalid("this host has no index"))?;
        if limit == 0 || limit > MAX_PREFIX_RESULTS {
            return Err(invalid(format!(
                "limit must be between 1 and {MAX_PREFIX_RESULTS}, got {limit}"
            )));
        }
        let pages = if case_insensitive {
            index.prefix_ci(&prefix, after.as_deref(), limit as usize)
        } else {
            index.prefix(&prefix, after.as_deref(), limit as usize)
        };
        let mut bytes = 0;
        Ok(pages
            .into_iter()
            .take_while(|page| {
                bytes += page.title.len() + page.redirect.as_ref().map_or(0, String::len) + 48;
                bytes <= MAX_PREFIX_BYTES
            })
            .map(to_wit)
            .collect())
    }

    fn text(&mut self, title: String, offset: u64) -> Result<Option<wiki::PageText>, wiki::Error> {
        let index = self
            .wiki()
            .ok_or_else(|| invalid("this host has no index"))?;
        let Some(page) = index.lookup_normalized(&title) else {
            return Ok(None);
        };
        let (text, size) = index
            .page_text_window(&page, offset, MAX_READ_BYTES as usize)
            .map_err(|e| invalid(format!("the text of {:?}: {e}", page.title)))?
            .ok_or_else(|| {
                invalid(format!(
                    "the text of {:?} (bytes {}-{} of the dump) is not UTF-8 with well-formed XML entities; read its bytes with `read`",
                    page.title, page.first, page.last
                ))
            })?;
        Ok(Some(wiki::PageText {
            page: to_wit(page),
            text,
            size,
        }))
    }

    fn info(&mut self) -> wiki::DumpInfo {
        match &self.index {
            Some(index) => wiki::DumpInfo {
                size: index.dump_len(),
                last_modified: index
                    .dump_modified()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            },
            None => wiki::DumpInfo {
                size: 0,
                last_modified: 0,
            },
        }
    }

    fn read(&mut self, range: types::DumpRange) -> Result<Vec<u8>, wiki::Error> {
        let index = self
            .wiki()
            .ok_or_else(|| invalid("this host has no index"))?;
        crate::body::check_dump_range(&range, index.dump_len()).map_err(invalid)?;
        if range.last - range.first + 1 > MAX_READ_BYTES {
            return Err(invalid(format!(
                "range {}-{} is larger than {MAX_READ_BYTES} bytes; return it as a dump body instead",
                range.first, range.last
            )));
        }
        Ok(index.dump_bytes()[range.first as usize..=range.last as usize].to_vec())
    }
}
