//! Shared set-up: synthetic partitions of a square-ish parent with cells of a
//! realistic size (about 0.25 km² each, ~120 vertices), and random points over the
//! partition's bounding box.
// Each bench binary uses a different subset of these helpers.
#![allow(dead_code)]

use geo_types::{Coord, MultiPolygon, polygon};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wangge::spatial::synth::{SynthOptions, tile};

/// The parent rectangle for `n` cells near Binzhou, and its cells.
pub fn partition(n: usize) -> (MultiPolygon<f64>, Vec<MultiPolygon<f64>>) {
    // 0.006° × 0.0045° ≈ 530 m × 500 m per cell at 37.4°N.
    let side = (n as f64).sqrt();
    let (x0, y0) = (117.5, 37.0);
    let (x1, y1) = (x0 + 0.006 * side, y0 + 0.0045 * side);
    let parent = MultiPolygon(vec![
        polygon![(x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1)],
    ]);
    let t = tile(
        &parent,
        n,
        &SynthOptions {
            seed: 42,
            points_per_cell: 6.0,
            densify: 11,
        },
    )
    .expect("synthetic partition");
    (parent, t.cells)
}

/// `n` uniformly random points over the bounding box of `parent`.
pub fn random_points(parent: &MultiPolygon<f64>, n: usize, seed: u64) -> Vec<Coord<f64>> {
    let b = wangge::spatial::geom::bounds(parent).expect("bounds");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| Coord {
            x: rng.random_range(b.min().x..b.max().x),
            y: rng.random_range(b.min().y..b.max().y),
        })
        .collect()
}

/// Vertices per cell, on average.
pub fn mean_vertices(cells: &[MultiPolygon<f64>]) -> f64 {
    cells
        .iter()
        .map(wangge::spatial::geom::vertex_count)
        .sum::<usize>() as f64
        / cells.len() as f64
}
