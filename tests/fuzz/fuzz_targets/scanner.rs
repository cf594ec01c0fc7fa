//! Fuzzes the dump scanner through the public API: any bytes, written to a
//! file, either index cleanly (and then every page's range holds a `<page>`
//! element) or fail with an error; never panic, never leave a partial index.

#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use percore_index::{TitleIndex, build_index};

fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("percore-fuzz-scanner-{}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let _ = std::fs::create_dir_all(&dir);
    let dump = dir.join("dump.xml");
    let out = dir.join("index");
    std::fs::write(&dump, data).unwrap();
    match build_index(&dump, &out, Default::default()) {
        Ok(_) => {
            let index = TitleIndex::open(&out).expect("a built index opens");
            for page in index.prefix("", None, 10_000) {
                let bytes = index.page_bytes(&page);
                assert!(bytes.starts_with(b"<page"), "{page:?}");
                assert!(bytes.ends_with(b"</page>"), "{page:?}");
            }
        }
        Err(_) => assert!(!out.exists(), "a failed build left an index behind"),
    }
    let _ = std::fs::remove_dir_all(&out);
});
