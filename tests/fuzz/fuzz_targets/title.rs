//! Fuzzes title handling: percent-decoding (both modes) and MediaWiki
//! normalisation must not panic, and normalisation must be idempotent and
//! leave no underscores or surrounding spaces. (Its first run found a title
//! of one newline kept as is: correct, the invariant said "no surrounding
//! whitespace" where normalisation only trims spaces; see FINDINGS.md.)

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
        // Spaces only: MediaWiki rejects titles with other whitespace
        // (newlines, tabs) instead of trimming it, and so does a lookup.
        assert_eq!(once.trim_matches(' '), once, "{once:?}");
    }
});
