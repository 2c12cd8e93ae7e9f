//! Coverage validation of clean synthetic partitions (1k, 10k, 100k grids, ~120
//! vertices each) against their parent, one thread: the whole `validate` call,
//! including per-grid validity, duplicate checks and edge cancellation.
//!
//! The `read` group parses the same partitions from GeoJSON text (as
//! `wangge validate` reads a file), measured in bytes per second.
//!
//! `cargo bench --bench validate`.

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use geo_types::MultiPolygon;
use std::hint::black_box;
use wangge::domain::{Grid, Layer};
use wangge::io::geojson::{ReadOptions, grids_to_json, read_grids};
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
        let cells: Vec<&MultiPolygon<f64>> = cells.iter().collect();
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

fn bench_read(c: &mut Criterion) {
    // As the CLI and the service run: freed pages are kept for the next read
    // instead of being faulted in and zeroed again on every iteration.
    wangge::memory::keep_freed_pages_for_reuse();
    let mut group = c.benchmark_group("read");
    group.sample_size(10);
    for n in [10_000usize, 100_000] {
        let (_, cells) = common::partition(n);
        let grids: Vec<Grid> = cells
            .into_iter()
            .enumerate()
            .map(|(i, boundary)| Grid {
                id: i.to_string(),
                name: None,
                layer: Layer::Comprehensive,
                parent: None,
                ancestors: vec![],
                boundary,
                properties: Default::default(),
            })
            .collect();
        let text = grids_to_json(&grids).to_string();
        drop(grids);
        eprintln!("{n} grids: {} MB of GeoJSON", text.len() >> 20);
        let options = ReadOptions::default();
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new("geojson", n), &text, |b, text| {
            b.iter(|| black_box(read_grids(text, &options).map(|g| g.len())))
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_read);
criterion_main!(benches);
