//! Builds every guest under `guests/` for `wasm32-wasip2` and writes
//! `$OUT_DIR/guests.rs`: the path of each guest's component, and
//! `for_each_guest!`, which lets a test binary declare one constant per
//! guest (so that an unused guest is a dead-code error there).

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let guests = percore_guest_build::guests_dir(&manifest_dir);
    let release =
        percore_guest_build::build(&guests, &percore_guest_build::target_dir(&out_dir), &[]);
    let mut all = String::from(
        "/// Every guest, as `(crate name, path of its .wasm file)`.\npub const ALL: &[(&str, &str)] = &[\n",
    );
    let mut each = String::from(
        "/// Calls `$mac!(CONST_NAME, \"crate-name\", \"path/of/it.wasm\");` once per guest.\n#[macro_export]\nmacro_rules! for_each_guest {\n    ($mac:ident) => {\n",
    );
    for name in percore_guest_build::members(&guests) {
        let file = percore_guest_build::wasm_file(&release, &name);
        let path = file.display().to_string();
        let konst = percore_guest_build::const_name(&name);
        writeln!(all, "    ({name:?}, {path:?}),").unwrap();
        writeln!(each, "        $mac!({konst}, {name:?}, {path:?});").unwrap();
    }
    all.push_str("];\n");
    each.push_str("    };\n}\n");
    std::fs::write(out_dir.join("guests.rs"), format!("{all}\n{each}")).expect("write guests.rs");
}
