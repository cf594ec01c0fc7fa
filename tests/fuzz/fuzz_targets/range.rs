//! Fuzzes the HTTP `Range` parser of the wiki guest: any header value and
//! dump size; a partial range must lie inside the representation.

#![no_main]

use libfuzzer_sys::fuzz_target;
use percore_httpkit::{RangeOutcome, parse_range};

fuzz_target!(|input: (&str, u64)| {
    let (header, size) = input;
    match parse_range(Some(header), size) {
        RangeOutcome::Partial { first, last } => {
            assert!(first <= last, "{header:?} on {size}: {first}-{last}");
            assert!(last < size, "{header:?} on {size}: {first}-{last}");
        }
        RangeOutcome::Full | RangeOutcome::Unsatisfiable => {}
    }
});
