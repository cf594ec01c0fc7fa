//! Test guest: exports percore's `handle` but also imports
//! `test:bad/secrets`, which no percore host provides; the host must refuse
//! it and name that import.

#![expect(
    clippy::too_many_arguments,
    reason = "the generated bindings of the wiki interface"
)]

wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package test:bad;
        interface secrets { get: func() -> string; }
        world bad {
            include percore:host/handler@0.2.0;
            import secrets;
        }
    ",
    world: "test:bad/bad",
    generate_all,
});

use percore::host::types::Body;

struct Bad;

impl Guest for Bad {
    fn handle(_req: Request) -> Response {
        // Calling the import keeps it in the component.
        let secret = test::bad::secrets::get();
        Response {
            status: 200,
            headers: Vec::new(),
            body: Body::Bytes(secret.into_bytes()),
        }
    }
}

export!(Bad);
