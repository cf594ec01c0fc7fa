//! Fuzzes title handling: percent-decoding (both modes) and MediaWiki
//! normalisation must not panic, and normalisation must be idempotent and
//! leave no underscores or surrounding spaces.

#![no_main]

use libfuzzer_sys::fuzz_target;
use percore_httpkit::percent_decode;
use percore_index::normalize_title;

fuzz_target!(|raw: &str| {
    for plus in [false, true] {
        let decoded = percent_decode(raw, plus);
        let once = normalize_title(&decoded).into_owned();
        let twice = normalize_title(&once).into_owned();
        assert_eq!(once, twice, "normalisation is not idempotent for {decoded:?}");
        assert!(!once.contains('_'), "{once:?}");
        assert_eq!(once.trim(), once, "{once:?}");
    }
});
