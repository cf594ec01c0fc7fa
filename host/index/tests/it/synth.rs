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

    // One thread, one chunk, one fst shard: the same strings and the same
    // answers.
    let one = dir.path().join("one");
    build_with(&dump, &one, 1, usize::MAX / 2);
    let a = std::fs::read(many.join("strings.bin")).unwrap();
    let b = std::fs::read(one.join("strings.bin")).unwrap();
    assert!(a == b, "strings.bin differs between 4 threads and 1");
    let single = TitleIndex::open(&one).unwrap();
    assert_eq!(single.len(), index.len());
    assert_eq!(
        single.prefix("", None, usize::MAX),
        index.prefix("", None, usize::MAX)
    );
    for n in 0..index.page_count() {
        assert_eq!(single.page(n), index.page(n));
    }
}

#[test]
fn duplicates_across_fst_shards_keep_the_first_page() {
    // 300 pages sharing 7 titles: every title's group straddles shards.
    let mut xml = String::from(
        "<mediawiki xmlns=\"http://www.mediawiki.org/xml/export-0.11/\" version=\"0.11\">\n",
    );
    for n in 0..300 {
        let title = ["A", "B", "Bb", "C", "Ж", "東", "Talk:A"][n * 31 % 7];
        let ns = if title.starts_with("Talk:") { 1 } else { 0 };
        xml.push_str(&format!(
            "<page><title>{title}</title><ns>{ns}</ns><id>{n}</id><revision><id>9</id>\
             <text bytes=\"1\">x</text></revision></page>\n"
        ));
    }
    xml.push_str("</mediawiki>\n");
    let dir = tempdir();
    let dump = dir.path().join("dups.xml");
    std::fs::write(&dump, &xml).unwrap();
    for threads in [1, 2, 3, 7, 16] {
        let out = dir.path().join(format!("index-{threads}"));
        let report = build_with(&dump, &out, threads, 4096);
        assert_eq!(
            (report.titles, report.duplicates),
            (7, 293),
            "{threads} threads"
        );
        let index = TitleIndex::open(&out).unwrap();
        assert_matches_reference(&index, xml.as_bytes());
        let all: Vec<_> = index
            .prefix("", None, 100)
            .into_iter()
            .map(|p| p.title)
            .collect();
        assert_eq!(
            all,
            ["A", "B", "Bb", "C", "Talk:A", "Ж", "東"],
            "{threads} threads"
        );
        assert_eq!(index.prefix_ci("b", None, 10).len(), 2);
        assert_eq!(index.prefix("B", Some("B"), 10)[0].title, "Bb");
    }
}

#[test]
fn truncation_found_by_a_later_chunk_names_the_dump_offset() {
    let dir = tempdir();
    let opts = SynthOptions {
        pages: 500,
        seed: 3,
        max_text: 5_000,
        ..SynthOptions::default()
    };
    let mut bytes = Vec::new();
    write_dump(&mut bytes, &opts).unwrap();
    let last_page = bytes.windows(6).rposition(|w| w == b"<page>").unwrap();
    bytes.truncate(last_page + 200);
    let dump = dir.path().join("cut.xml");
    std::fs::write(&dump, &bytes).unwrap();
    let out = dir.path().join("index");
    let err = percore_index::IndexBuilder::new(&dump, &out)
        .threads(3)
        .chunk_size(8192)
        .build()
        .unwrap_err();
    assert_eq!(err.offset(), Some(last_page as u64), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("the <page> at byte {last_page} is never closed")),
        "{err}"
    );
    assert!(!out.exists());
}

/// The host sends dump ranges only once they are in memory, reading them
/// off its workers when `dump_range_resident` says no: check both halves on
/// a dump evicted from the page cache.
#[test]
fn prefetch_brings_an_evicted_dump_range_into_memory() {
    let dir = tempdir();
    let dump = dir.path().join("synth.xml");
    let opts = SynthOptions {
        pages: 2000,
        seed: 7,
        max_text: 8_000,
        ..SynthOptions::default()
    };
    write_dump(std::fs::File::create(&dump).unwrap(), &opts).unwrap();
    let out = dir.path().join("index");
    build_with(&dump, &out, 2, 1 << 20);
    let index = TitleIndex::open(&out).unwrap();
    let len = index.dump_bytes().len() as u64;
    assert!(len > 4 << 20, "the dump spans many pages");
    // Write back and drop the dump's cached pages: those `open` did not map
    // (it samples the dump) go, on ext4, xfs and btrfs; tmpfs keeps them.
    let file = std::fs::File::open(&dump).unwrap();
    file.sync_all().unwrap();
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    let whole = 0..len;
    if index.dump_range_resident(whole.clone()) {
        eprintln!(
            "note: the kernel kept the dump cached (tmpfs?); the eviction half is not checked"
        );
    } else {
        eprintln!("the evicted dump is reported as not resident");
    }
    index.prefetch_dump_range(whole.clone());
    assert!(index.dump_range_resident(whole));
    assert!(
        index.dump_range_resident(len..len),
        "an empty range is resident"
    );
    assert!(
        index.dump_range_resident(len - 1..len + 100),
        "a range past the end is clipped"
    );
    index.warm();
}
