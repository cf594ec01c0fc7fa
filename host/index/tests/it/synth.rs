//! Generated dumps: many chunks, several threads, same answers as quick-xml.

use percore_index::TitleIndex;
use percore_index::synth::{SynthOptions, write_dump};

use crate::support::{assert_matches_reference, build_with, tempdir};

#[test]
fn generated_dump_in_small_chunks_matches_reference() {
    let dir = tempdir();
    let dump = dir.path().join("synth.xml");
    let opts = SynthOptions {
        pages: 3000,
        seed: 42,
        max_text: 20_000,
        ..SynthOptions::default()
    };
    let stats = write_dump(std::fs::File::create(&dump).unwrap(), &opts).unwrap();
    let bytes = std::fs::read(&dump).unwrap();

    let many = dir.path().join("many");
    let report = build_with(&dump, &many, 4, 4096);
    assert_eq!(
        (report.pages, report.redirects, report.duplicates),
        (stats.pages, stats.redirects, stats.duplicates)
    );
    let index = TitleIndex::open(&many).unwrap();
    let reference = assert_matches_reference(&index, &bytes);
    assert!(
        reference.iter().any(|p| p.title.contains('&')),
        "entity titles generated"
    );
    assert!(
        reference.iter().any(|p| !p.title.is_ascii()),
        "non-ASCII titles generated"
    );

    // One thread, one chunk: byte-identical index files.
    let one = dir.path().join("one");
    build_with(&dump, &one, 1, usize::MAX / 2);
    for file in ["pages.bin", "strings.bin", "titles.fst"] {
        let a = std::fs::read(many.join(file)).unwrap();
        let b = std::fs::read(one.join(file)).unwrap();
        assert!(a == b, "{file} differs between 4 threads and 1");
    }
}
