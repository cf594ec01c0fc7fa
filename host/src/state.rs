//! Per-store host state: what one handler instance can reach. WASI is
//! provided only as far as a Rust guest's std needs it to start (clocks,
//! random, stdio sinks): no preopened directories, no environment variables,
//! no arguments, no sockets. The `wiki` host functions are thin adapters that
//! reach the shared index (when the host has one).

use std::time::Instant;

use wasmtime::StoreLimits;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::percore::host::{types, wiki};

/// The data of one wasmtime `Store`: one handler instance.
pub struct HostState {
    /// WASI context with no authority: empty environment, no preopens,
    /// networking disabled.
    wasi: WasiCtx,
    /// WASI resources (streams, etc.) the guest holds.
    table: ResourceTable,
    /// Memory and table limits of this instance.
    pub(crate) limits: StoreLimits,
    /// When the current call must end; checked at every epoch tick.
    pub(crate) deadline: Instant,
}

impl HostState {
    /// State for one instance with the given limits.
    pub fn new(limits: StoreLimits) -> Self {
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limits,
            deadline: Instant::now(),
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

impl types::Host for HostState {}

/// Without an index every `wiki` call fails; a guest that imports `wiki` is
/// refused at start on such a host, so these are a second line of defence.
impl wiki::Host for HostState {
    fn lookup(&mut self, _title: String) -> Option<wiki::Page> {
        None
    }

    fn lookup_normalized(&mut self, _title: String) -> Option<wiki::Page> {
        None
    }

    fn prefix(
        &mut self,
        _prefix: String,
        _after: Option<String>,
        _limit: u32,
        _case_insensitive: bool,
    ) -> Result<Vec<wiki::Page>, wiki::Error> {
        Err(wiki::Error::InvalidArgument(
            "this host has no index".into(),
        ))
    }

    fn info(&mut self) -> wiki::DumpInfo {
        wiki::DumpInfo {
            size: 0,
            last_modified: 0,
        }
    }

    fn read(&mut self, _range: types::DumpRange) -> Result<Vec<u8>, wiki::Error> {
        Err(wiki::Error::InvalidArgument(
            "this host has no index".into(),
        ))
    }
}
