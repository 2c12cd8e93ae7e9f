//! Coverage validation of clean synthetic partitions (1k, 10k, 100k grids, ~120
//! vertices each) against their parent, one thread: the whole `validate` call,
//! including per-grid validity, duplicate checks and edge cancellation.
//!
//! `cargo bench --bench validate`.

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wangge::spatial::coverage::{ValidateOptions, validate};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    group.sample_size(10);
    for n in [1_000usize, 10_000, 100_000] {
        let (parent, cells) = common::partition(n);
        let ids: Vec<String> = (0..cells.len()).map(|i| i.to_string()).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let vertices: usize = cells.iter().map(wangge::spatial::geom::vertex_count).sum();
        eprintln!("{n} grids: {vertices} vertices");
        let options = ValidateOptions {
            min_area_m2: 0.0,
            ..ValidateOptions::default()
        };
        let report = validate(&cells, &ids, Some(&parent), &options);
        assert!(
            report.problems.is_empty(),
            "synthetic partition must be clean"
        );
        group.throughput(Throughput::Elements(vertices as u64));
        group.bench_with_input(
            BenchmarkId::new("clean_partition", n),
            &cells,
            |b, cells| b.iter(|| black_box(validate(cells, &ids, Some(&parent), &options))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
