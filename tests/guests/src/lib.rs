//! Every guest under `guests/`, built for `wasm32-wasip2` by this crate's
//! build script, by path: the test guests (`test-*`, each a deliberate
//! misbehaviour) and the demo's, for the integration tests and the benches.
//! The production library embeds only the demo's guests
//! (`percore::guests`).
//!
//! A test binary declares a constant per guest with [`for_each_guest!`]
//! and denies dead code, so that a guest no test uses fails the build:
//!
//! ```ignore
//! macro_rules! guest_const {
//!     ($konst:ident, $name:literal, $path:literal) => {
//!         pub(crate) const $konst: &str = $path;
//!     };
//! }
//! percore_test_guests::for_each_guest!(guest_const);
//! ```

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The path of the component of the guest crate `name`.
///
/// # Panics
///
/// When there is no such guest.
pub fn path(name: &str) -> &'static str {
    ALL.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, path)| *path)
        .unwrap_or_else(|| panic!("no guest called {name} under guests/"))
}
