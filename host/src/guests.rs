//! The guests embedded in the `percore` binary, built from `guests/` by
//! `host/build.rs`: the TechEmpower guest and the wiki guest that
//! `percore demo` serves. (Test guests live in `percore-test-guests`.)

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
