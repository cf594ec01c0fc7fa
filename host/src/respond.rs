//! `percore:http-wiki/respond` (wit/http-wiki/world.wit): a `wasi:http`
//! 0.2 handler's whole response (status, header fields, body) in one host
//! call, instead of the `fields`, `outgoing-response`, `outgoing-body` and
//! `output-stream` resources and the dozen calls that `wasi:http/types`
//! takes. It is what granian's `response_bytes` is to a Python handler
//! there: in componentize-py every resource a handler receives costs a
//! Python object with a finalizer (benches/RESULTS.md, "The Python
//! handler's `/json`, profiled").
//!
//! The response goes where `response-outparam.set` would send it, checked
//! as `wasi:http/types` checks it (the status as `set-status-code` does,
//! the fields as `fields.from-list` does, with the same forbidden fields),
//! and then as every `wasi:http` response is (`crate::http`: the route's
//! header and size limits, the host's own fields).

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::FieldMap;
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::types::{HostOutgoingResponse, HostResponseOutparam};

use crate::host_functions::HostState;

/// The interface, as a component imports it.
pub const RESPOND_INTERFACE: &str = "percore:http-wiki/respond@0.2.0";

/// Most bytes of header fields one response may hold before the route's
/// own limits are applied: wasmtime-wasi-http's default for a `fields`.
const FIELD_SIZE_LIMIT: usize = 128 * 1024;

/// Adds `respond` to `linker` (after `wasi:http`, whose
/// `response-outparam` it takes).
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    type Params = (
        Resource<HostResponseOutparam>,
        u16,
        Vec<(String, Vec<u8>)>,
        Vec<u8>,
    );
    linker.instance(RESPOND_INTERFACE)?.func_wrap(
        "respond",
        |mut store, (out, status, fields, body): Params| {
            let http = store.data_mut().http();
            let outparam = http.table.delete(out)?;
            let response = response(http.hooks, status, fields, body);
            let answer = match &response {
                Ok(_) => Ok(()),
                Err(why) => Err(why.clone()),
            };
            (outparam.send)(response.map_err(|why| ErrorCode::InternalError(Some(why))));
            Ok((answer,))
        },
    )?;
    Ok(())
}

/// The response `respond` sends, or why it cannot be sent.
fn response(
    hooks: &mut dyn wasmtime_wasi_http::WasiHttpHooks,
    status: u16,
    fields: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
) -> Result<hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>, String> {
    let status = hyper::StatusCode::from_u16(status)
        .map_err(|_| format!("{status} is not an HTTP status code"))?;
    let mut headers = FieldMap::new_mutable(FIELD_SIZE_LIMIT);
    for (name, value) in fields {
        headers
            .append(hooks, name.clone(), value)
            .map_err(|e| format!("the header field {name:?}: {e}"))?;
    }
    let length = body.len().to_string();
    match headers.get(hyper::header::CONTENT_LENGTH) {
        Some(given) if given.as_bytes() != length.as_bytes() => {
            return Err(format!(
                "the content-length {given:?} is not the body's {length} bytes"
            ));
        }
        Some(_) => {}
        None => {
            headers
                .append(hooks, "content-length".to_owned(), length.into_bytes())
                .map_err(|e| format!("the content-length: {e}"))?;
        }
    }
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    HostOutgoingResponse {
        status,
        headers,
        body: Some(body),
    }
    .try_into()
    .map_err(|e: hyper::http::Error| format!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hooks of a handler without outgoing requests: wasi:http's
    /// default forbidden fields.
    struct Hooks;
    impl wasmtime_wasi_http::WasiHttpHooks for Hooks {}

    fn answer(
        status: u16,
        fields: &[(&str, &[u8])],
        body: &[u8],
    ) -> Result<hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>, String> {
        let fields = fields
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_vec()))
            .collect();
        response(&mut Hooks, status, fields, body.to_vec())
    }

    #[test]
    fn a_response_gets_its_length() {
        let response = answer(201, &[("content-type", b"application/json")], b"{}").unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()["content-length"], "2");
        // A length that is the body's stays, once.
        let given = answer(200, &[("content-length", b"5")], b"hello").unwrap();
        assert_eq!(given.headers().get_all("content-length").iter().count(), 1);
    }

    #[test]
    fn what_wasi_http_refuses_is_refused_with_why() {
        let refused = |status, fields: &[(&str, &[u8])], body: &[u8]| {
            answer(status, fields, body).expect_err("refused")
        };
        assert!(refused(42, &[], b"").contains("42 is not an HTTP status"));
        assert!(refused(200, &[("bad name", b"x")], b"").contains("\"bad name\""));
        assert!(refused(200, &[("x", b"a\nb")], b"").contains("\"x\""));
        // A hop-by-hop field, as `fields.from-list` forbids it.
        assert!(refused(200, &[("connection", b"close")], b"").contains("\"connection\""));
        let wrong = refused(200, &[("content-length", b"9")], b"hello");
        assert!(wrong.contains("not the body's 5 bytes"), "{wrong}");
    }
}
