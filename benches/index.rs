//! Criterion benchmarks of the title index: open time (verified, as the
//! host opens it, and without verifying checksums, to show what
//! verification costs) and lookup latency.
//!
//! ```text
//! PERCORE_BENCH_INDEX=/path/to/index cargo bench -p percore-benches --bench index
//! cargo bench -p percore-benches --bench index      # builds a small index first
//! ```
//!
//! With `PERCORE_BENCH_INDEX` pointing at a built index directory (for
//! example the 15-million-page one from `benches/index-scale.sh`) the
//! benchmarks run against it; otherwise they generate a 200 000-page
//! synthetic dump and index it in a temporary directory. Query titles are
//! sampled from the index itself, spread evenly over the page table, so
//! lookups hit cold and warm parts of the fst alike.

#![expect(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use percore_index::synth::{SynthOptions, write_dump};
use percore_index::{BuildOptions, TitleIndex, build_index};

/// An index to benchmark, and the temp dir that holds it (if we made it).
struct Fixture {
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

fn fixture() -> Fixture {
    if let Some(dir) = std::env::var_os("PERCORE_BENCH_INDEX") {
        return Fixture {
            dir: dir.into(),
            _tmp: None,
        };
    }
    let tmp = tempfile::tempdir().expect("create temp dir");
    let dump = tmp.path().join("synth.xml");
    let opts = SynthOptions {
        pages: 200_000,
        max_text: 2_000,
        ..SynthOptions::default()
    };
    write_dump(std::fs::File::create(&dump).expect("create dump"), &opts).expect("write dump");
    let dir = tmp.path().join("index");
    build_index(&dump, &dir, BuildOptions::default()).expect("build index");
    Fixture {
        dir,
        _tmp: Some(tmp),
    }
}

/// `n` titles spread evenly over the page table.
fn sample_titles(index: &TitleIndex, n: u64) -> Vec<String> {
    let pages = index.page_count().max(1);
    (0..n)
        .filter_map(|i| index.page(i * pages / n))
        .map(|p| p.title)
        .collect()
}

fn benches(c: &mut Criterion) {
    let fixture = fixture();
    let dir: &Path = &fixture.dir;
    let index = TitleIndex::open(dir).expect("open index");
    let titles = sample_titles(&index, 1024);
    // As a link would spell them: underscores, first letter in lower case.
    let lowered: Vec<String> = titles
        .iter()
        .map(|t| {
            let mut chars = t.chars();
            let first = chars.next().map(|c| c.to_lowercase().collect::<String>());
            first.unwrap_or_default() + &chars.as_str().replace(' ', "_")
        })
        .collect();
    let prefixes: Vec<String> = titles.iter().map(|t| t.chars().take(3).collect()).collect();

    c.bench_function("index/open", |b| {
        b.iter(|| TitleIndex::open(black_box(dir)).expect("open"))
    });
    c.bench_function("index/open_unverified", |b| {
        b.iter(|| TitleIndex::open_unverified(black_box(dir)).expect("open"))
    });

    let mut i = 0;
    c.bench_function("index/lookup", |b| {
        b.iter(|| {
            i = (i + 1) % titles.len();
            black_box(index.lookup(black_box(&titles[i])))
        })
    });
    c.bench_function("index/lookup_miss", |b| {
        b.iter(|| black_box(index.lookup(black_box("No such title, surely"))))
    });
    c.bench_function("index/lookup_normalized", |b| {
        b.iter(|| {
            i = (i + 1) % lowered.len();
            black_box(index.lookup_normalized(black_box(&lowered[i])))
        })
    });
    c.bench_function("index/prefix_100", |b| {
        b.iter(|| {
            i = (i + 1) % prefixes.len();
            black_box(index.prefix(black_box(&prefixes[i]), None, 100))
        })
    });
    c.bench_function("index/prefix_ci_100", |b| {
        b.iter(|| {
            i = (i + 1) % prefixes.len();
            black_box(index.prefix_ci(black_box(&prefixes[i].to_lowercase()), None, 100))
        })
    });
    c.bench_function("index/page_bytes", |b| {
        b.iter(|| {
            i = (i + 1) % titles.len();
            let page = index.lookup(&titles[i]).expect("sampled title");
            black_box(index.page_bytes(&page).len())
        })
    });
}

criterion_group!(index_benches, benches);
criterion_main!(index_benches);
