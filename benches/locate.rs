//! Point location throughput, one thread, on synthetic partitions of 1k, 10k and 100k
//! grids (~120 vertices each), 100 000 random points over the bounding box.
//!
//! * `polygon_at`: the grid only (the dispatch hot path), points one by one;
//! * `polygon_at_many`: the same as a batch, visited in raster order;
//! * `locate_flags`: grid + near_boundary/neighbour + nearest grid when outside;
//! * `locate_flags_many`: the same as a batch (`locate_many`, memory fetched ahead);
//! * `locate_full`: the above + the exact distance to the grid's boundary;
//! * `rstar_geo_contains` (10k only): the off-the-shelf georust baseline, an R-tree of
//!   envelopes and `geo::Contains` on the candidates, for a ratio in the same run.
//!
//! `cargo bench --bench locate`; medians are what the criterion report calls "time".

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use geo::Contains;
use rstar::{AABB, RTree, primitives::GeomWithData};
use std::hint::black_box;
use wangge::spatial::{LocateOptions, Partition};

const POINTS: usize = 100_000;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("locate");
    group.sample_size(20);
    group.throughput(Throughput::Elements(POINTS as u64));
    for n in [1_000usize, 10_000, 100_000] {
        let (parent, cells) = common::partition(n);
        let points = common::random_points(&parent, POINTS, 7);
        let t = std::time::Instant::now();
        let part = Partition::build(&cells);
        eprintln!(
            "{n} grids: {:.1} vertices/grid, built in {:.0} ms, index {:.1} MB, {:?}",
            common::mean_vertices(&cells),
            t.elapsed().as_secs_f64() * 1e3,
            part.heap_bytes() as f64 / 1e6,
            part.raster_stats()
        );
        group.bench_with_input(BenchmarkId::new("polygon_at", n), &points, |b, pts| {
            b.iter(|| {
                let mut hits = 0u32;
                for &p in pts {
                    hits += part.polygon_at(p).is_some() as u32;
                }
                black_box(hits)
            })
        });
        group.bench_with_input(BenchmarkId::new("polygon_at_many", n), &points, |b, pts| {
            let mut out = Vec::new();
            b.iter(|| {
                part.polygon_at_many(pts, &mut out);
                black_box(out.len())
            })
        });
        let flags = LocateOptions {
            boundary_distance: false,
            ..LocateOptions::default()
        };
        group.bench_with_input(BenchmarkId::new("locate_flags", n), &points, |b, pts| {
            b.iter(|| {
                let mut near = 0u32;
                for &p in pts {
                    near += part.locate(p, &flags).near_boundary as u32;
                }
                black_box(near)
            })
        });
        group.bench_with_input(
            BenchmarkId::new("locate_flags_many", n),
            &points,
            |b, pts| {
                let mut out = Vec::new();
                b.iter(|| {
                    part.locate_many(pts, &flags, &mut out);
                    black_box(out.len())
                })
            },
        );
        let full = LocateOptions::default();
        group.bench_with_input(BenchmarkId::new("locate_full", n), &points, |b, pts| {
            b.iter(|| {
                let mut d = 0.0;
                for &p in pts {
                    d += part.locate(p, &full).boundary_distance_m.unwrap_or(0.0);
                }
                black_box(d)
            })
        });
        if n == 10_000 {
            let polys: Vec<geo_types::MultiPolygon<f64>> = cells.clone();
            let tree = RTree::bulk_load(
                polys
                    .iter()
                    .enumerate()
                    .map(|(i, mp)| {
                        let r = wangge::spatial::geom::bounds(mp).expect("bounds");
                        GeomWithData::new(
                            rstar::primitives::Rectangle::from_corners(
                                [r.min().x, r.min().y],
                                [r.max().x, r.max().y],
                            ),
                            i,
                        )
                    })
                    .collect(),
            );
            group.bench_with_input(
                BenchmarkId::new("rstar_geo_contains", n),
                &points,
                |b, pts| {
                    b.iter(|| {
                        let mut hits = 0u32;
                        for &p in pts {
                            let pt = geo_types::Point(p);
                            let found = tree
                                .locate_in_envelope_intersecting(&AABB::from_point([p.x, p.y]))
                                .find(|c| polys[c.data].contains(&pt));
                            hits += found.is_some() as u32;
                        }
                        black_box(hits)
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
