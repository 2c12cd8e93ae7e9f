//! Repairs of the real dirty files in `../shared/data/real` (Binzhou's counties
//! digitised separately, Taiwan's villages), warm and in memory, as
//! `benches/repair_compare.py` times GEOS's CoverageCleaner on the same files; a file
//! that is absent is skipped.
//!
//! `cargo bench --bench repair`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use geo_types::MultiPolygon;
use std::hint::black_box;
use wangge::io::geojson::{ReadOptions, read_grids_file};
use wangge::spatial::coverage::repair::{RepairOptions, repair};

fn bench_repair(c: &mut Criterion) {
    let real = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/real");
    let mut group = c.benchmark_group("repair");
    group.sample_size(20);
    for (name, file, id_field) in [
        (
            "binzhou_counties",
            "binzhou_counties_bound.datav.geojson",
            "adcode",
        ),
        ("taiwan_villages", "taiwan_villages.geojson", "VILLAGESN"),
    ] {
        let options = ReadOptions {
            id_field: id_field.into(),
            ..ReadOptions::default()
        };
        let Ok(grids) = read_grids_file(&real.join(file), &options) else {
            eprintln!("{name}: {file} not found under {}, skipped", real.display());
            continue;
        };
        let grids: Vec<MultiPolygon<f64>> = grids.into_iter().map(|g| g.boundary).collect();
        let fixed = repair(&grids, None, &RepairOptions::default());
        eprintln!("{name}: {} grids, {} changed", grids.len(), fixed.changed());
        group.bench_with_input(BenchmarkId::new("real", name), &grids, |b, grids| {
            b.iter(|| black_box(repair(grids, None, &RepairOptions::default()).changed()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_repair);
criterion_main!(benches);
