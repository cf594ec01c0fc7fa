//! Fuzzes the wiki guest's wikitext renderer: any text renders without a
//! panic, to HTML whose tags balance and whose links and attributes are the
//! renderer's own (`check_well_formed`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use percore_wikitext::{html::check_well_formed, render};

fuzz_target!(|input: &str| {
    let rendered = render(input, &mut |title: &str| title.len() % 3 != 0);
    if let Err(problem) = check_well_formed(&rendered.html) {
        panic!("{problem}\ninput: {input:?}\noutput: {}", rendered.html);
    }
});
