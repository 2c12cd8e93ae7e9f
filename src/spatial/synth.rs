//! Deterministic synthetic partitions: a parent polygon cut into cells that tile it
//! exactly, for the demo, the tests and the benches.
//!
//! ## How
//! 1. A constrained Delaunay triangulation of the parent's own vertices and edges plus
//!    random interior points (spade). Its triangles cover the parent exactly, and the
//!    parent's boundary is made of triangle edges, untouched.
//! 2. Random seeds; every triangle goes to the seed nearest its centroid (in a local
//!    metric frame), which gives Voronoi-like cells whose borders follow triangle
//!    edges. Fragments cut off from their cell join a neighbour, so every cell is one
//!    connected piece.
//! 3. Optional densification: each border between two cells gets extra vertices with a
//!    sideways wiggle. The wiggle is generated from the border's own endpoints, so both
//!    neighbours get the very same vertices, and it is bounded by half the angles of the
//!    two triangles beside the border: each border then stays inside its own "bisector
//!    triangle", and no two borders can cross.
//! 4. Cells are the union of their triangles, by cancelling shared edges.
//!
//! Same seed, same input: same output, bit for bit.

use super::geom;
use super::loops::{self, EdgeBag};
use super::pip::PolygonSet;
use geo_types::{Coord, MultiPolygon};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rstar::RTree;
use rstar::primitives::GeomWithData;
use rustc_hash::FxHashMap;
use spade::{ConstrainedDelaunayTriangulation, Point2, Triangulation};

/// Why a partition could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("the parent polygon is empty or has no area")]
    EmptyParent,
    #[error("cannot triangulate the parent: {0}")]
    Triangulation(String),
    #[error("asked for {0} cells; at least 1 is needed")]
    NoCells(usize),
    #[error(
        "the parent polygon is invalid ({reason} at {x}, {y}); fix it before cutting it into cells"
    )]
    InvalidParent {
        reason: &'static str,
        x: f64,
        y: f64,
    },
}

/// Options of [`tile`].
#[derive(Debug, Clone, Copy)]
pub struct SynthOptions {
    pub seed: u64,
    /// Interior triangulation points per cell: more gives rounder, more jagged cells.
    pub points_per_cell: f64,
    /// Extra vertices inserted on every border between two cells.
    pub densify: usize,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            seed: 1,
            points_per_cell: 6.0,
            densify: 0,
        }
    }
}

/// A generated tiling.
#[derive(Debug, Clone)]
pub struct Tiling {
    /// The cells; together they cover the parent exactly.
    pub cells: Vec<MultiPolygon<f64>>,
    /// Pairs of cells that share a border, `a < b`.
    pub adjacency: Vec<(u32, u32)>,
}

const NONE: u32 = u32::MAX;

/// Cuts `parent` into about `cells` cells (fewer if some seeds end up with nothing).
///
/// ```
/// use geo_types::{polygon, MultiPolygon};
/// use wangge::spatial::synth::{tile, SynthOptions};
/// use wangge::spatial::coverage::{validate, ValidateOptions};
/// let parent = MultiPolygon(vec![polygon![(x: 118.0, y: 37.0), (x: 118.1, y: 37.0), (x: 118.1, y: 37.1), (x: 118.0, y: 37.1)]]);
/// let t = tile(&parent, 20, &SynthOptions { densify: 4, ..SynthOptions::default() }).unwrap();
/// let ids: Vec<String> = (0..t.cells.len()).map(|i| i.to_string()).collect();
/// let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
/// let cells: Vec<_> = t.cells.iter().collect();
/// let report = validate(&cells, &ids, Some(&parent), &ValidateOptions { min_area_m2: 0.0, ..Default::default() });
/// assert!(report.problems.is_empty(), "{:?}", report.problems);
/// ```
pub fn tile(
    parent: &MultiPolygon<f64>,
    cells: usize,
    options: &SynthOptions,
) -> Result<Tiling, SynthError> {
    if cells == 0 {
        return Err(SynthError::NoCells(cells));
    }
    let bbox = geom::bounds(parent).ok_or(SynthError::EmptyParent)?;
    if bbox.width() <= 0.0 || bbox.height() <= 0.0 {
        return Err(SynthError::EmptyParent);
    }
    // The triangulation needs non-crossing constraint edges.
    if let Some((reason, at)) = super::coverage::validity::check(parent) {
        return Err(SynthError::InvalidParent {
            reason: reason.describe(),
            x: at.x,
            y: at.y,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let parent_set = PolygonSet::new(std::iter::once(parent));
    let coslat = bbox.center().y.to_radians().cos();
    let sample_inside = |rng: &mut ChaCha8Rng, n: usize| -> Vec<Coord<f64>> {
        let mut out = Vec::with_capacity(n);
        let mut tries = 0usize;
        while out.len() < n && tries < n * 1000 + 10_000 {
            tries += 1;
            let p = Coord {
                x: rng.random_range(bbox.min().x..bbox.max().x),
                y: rng.random_range(bbox.min().y..bbox.max().y),
            };
            if parent_set.contains(0, p) {
                out.push(p);
            }
        }
        out
    };

    // 1. Triangulation.
    let n_points = ((cells as f64) * options.points_per_cell).ceil() as usize;
    let interior = sample_inside(&mut rng, n_points);
    let mut vertices: Vec<Point2<f64>> = Vec::new();
    let mut constraints: Vec<[usize; 2]> = Vec::new();
    let mut index_of: FxHashMap<(u64, u64), usize> = FxHashMap::default();
    let mut vertex = |c: Coord<f64>, vertices: &mut Vec<Point2<f64>>| -> usize {
        *index_of.entry(loops::key(c)).or_insert_with(|| {
            vertices.push(Point2::new(c.x, c.y));
            vertices.len() - 1
        })
    };
    for ring in geom::rings(parent) {
        for w in ring.0.windows(2) {
            let (a, b) = (vertex(w[0], &mut vertices), vertex(w[1], &mut vertices));
            if a != b {
                constraints.push([a, b]);
            }
        }
    }
    for p in interior {
        vertex(p, &mut vertices);
    }
    let cdt = ConstrainedDelaunayTriangulation::<Point2<f64>>::bulk_load_cdt(vertices, constraints)
        .map_err(|e| SynthError::Triangulation(format!("{e:?}")))?;

    // Triangles as plain arrays: corners (counter-clockwise) and neighbours across the
    // edge opposite each corner... simpler: across edge (corner i → corner i+1).
    let nfaces = cdt.all_faces().len();
    let mut corners: Vec<[Coord<f64>; 3]> = vec![[Coord { x: 0.0, y: 0.0 }; 3]; nfaces];
    let mut across: Vec<[u32; 3]> = vec![[NONE; 3]; nfaces];
    let mut inside = vec![false; nfaces];
    for face in cdt.inner_faces() {
        let f = face.fix().index();
        let edges = face.adjacent_edges();
        for (i, e) in edges.iter().enumerate() {
            let p = e.from().position();
            corners[f][i] = Coord { x: p.x, y: p.y };
            across[f][i] = e
                .rev()
                .face()
                .as_inner()
                .map(|g| g.fix().index() as u32)
                .unwrap_or(NONE);
        }
        let c = corners[f];
        let centroid = Coord {
            x: (c[0].x + c[1].x + c[2].x) / 3.0,
            y: (c[0].y + c[1].y + c[2].y) / 3.0,
        };
        inside[f] = parent_set.contains(0, centroid);
    }

    // 2. Seeds and labels.
    let seeds = sample_inside(&mut rng, cells);
    let tree = RTree::bulk_load(
        seeds
            .iter()
            .enumerate()
            .map(|(i, s)| GeomWithData::new([s.x * coslat, s.y], i as u32))
            .collect(),
    );
    let mut label = vec![NONE; nfaces];
    for f in 0..nfaces {
        if inside[f] {
            let c = corners[f];
            let q = [
                (c[0].x + c[1].x + c[2].x) / 3.0 * coslat,
                (c[0].y + c[1].y + c[2].y) / 3.0,
            ];
            label[f] = tree.nearest_neighbor(&q).map(|n| n.data).unwrap_or(NONE);
        }
    }
    make_groups_connected(&mut label, &across);

    // Renumber labels densely, in order of first appearance (deterministic).
    let mut dense: FxHashMap<u32, u32> = FxHashMap::default();
    for l in label.iter_mut().filter(|l| **l != NONE) {
        let n = dense.len() as u32;
        *l = *dense.entry(*l).or_insert(n);
    }
    let ncells = dense.len();

    // 3 + 4. Borders, densified, then rings per cell.
    let mut borders: Vec<Vec<(Coord<f64>, Coord<f64>)>> = vec![Vec::new(); ncells];
    let mut adjacency = Vec::new();
    for f in 0..nfaces {
        let l = label[f];
        if l == NONE {
            continue;
        }
        for i in 0..3 {
            let g = across[f][i];
            let other = if g == NONE { NONE } else { label[g as usize] };
            if other == l {
                continue;
            }
            let (a, b) = (corners[f][i], corners[f][(i + 1) % 3]);
            if other == NONE || options.densify == 0 {
                borders[l as usize].push((a, b));
            } else {
                let poly = wiggle(a, b, &corners[f], &corners[g as usize], options);
                borders[l as usize].extend(poly.windows(2).map(|w| (w[0], w[1])));
            }
            if other != NONE && l < other {
                adjacency.push((l, other));
            }
        }
    }
    adjacency.sort_unstable();
    adjacency.dedup();
    let cells = borders
        .into_iter()
        .map(|edges| {
            let mut mp = loops::rings_to_multipolygon(loops::assemble_rings(&edges));
            geom::normalise_orientation(&mut mp);
            mp
        })
        .collect();
    Ok(Tiling { cells, adjacency })
}

/// Relabels the nodes of a graph (triangles, cells…) so that every label forms one
/// connected piece: smaller pieces join the label they border most; a piece with no
/// other neighbour gets a label of its own. `NONE` (`u32::MAX`) marks unlabelled nodes.
pub fn make_groups_connected<N: AsRef<[u32]>>(label: &mut [u32], across: &[N]) {
    let mut next_label = label
        .iter()
        .filter(|&&l| l != NONE)
        .max()
        .map_or(0, |m| m + 1);
    for _round in 0..8 {
        // Components by flood fill.
        let mut comp = vec![NONE; label.len()];
        let mut comps: Vec<(u32, Vec<u32>)> = Vec::new();
        for start in 0..label.len() {
            if label[start] == NONE || comp[start] != NONE {
                continue;
            }
            let id = comps.len() as u32;
            let mut members = vec![start as u32];
            comp[start] = id;
            let mut i = 0;
            while i < members.len() {
                let f = members[i] as usize;
                for &g in across[f].as_ref() {
                    if g != NONE && comp[g as usize] == NONE && label[g as usize] == label[start] {
                        comp[g as usize] = id;
                        members.push(g);
                    }
                }
                i += 1;
            }
            comps.push((label[start], members));
        }
        // Largest component per label keeps it.
        let mut largest: FxHashMap<u32, usize> = FxHashMap::default();
        for (ci, (l, m)) in comps.iter().enumerate() {
            let e = largest.entry(*l).or_insert(ci);
            if comps[*e].1.len() < m.len() {
                *e = ci;
            }
        }
        let mut changed = false;
        for (ci, (l, members)) in comps.iter().enumerate() {
            if largest.get(l) == Some(&ci) {
                continue;
            }
            let mut votes: FxHashMap<u32, usize> = FxHashMap::default();
            for &f in members {
                for &g in across[f as usize].as_ref() {
                    if g != NONE && label[g as usize] != *l && label[g as usize] != NONE {
                        *votes.entry(label[g as usize]).or_insert(0) += 1;
                    }
                }
            }
            let target = votes
                .into_iter()
                .max_by_key(|&(lab, n)| (n, std::cmp::Reverse(lab)))
                .map(|(lab, _)| lab)
                .unwrap_or_else(|| {
                    next_label += 1;
                    next_label - 1
                });
            for &f in members {
                label[f as usize] = target;
            }
            changed = true;
        }
        if !changed {
            break;
        }
    }
}

/// The densified border from `a` to `b` (inclusive), identical (reversed) when asked
/// from the other side. `t1` and `t2` are the triangles on either side.
fn wiggle(
    a: Coord<f64>,
    b: Coord<f64>,
    t1: &[Coord<f64>; 3],
    t2: &[Coord<f64>; 3],
    options: &SynthOptions,
) -> Vec<Coord<f64>> {
    let flip = loops::key(a) > loops::key(b);
    let (u, v) = if flip { (b, a) } else { (a, b) };
    let d = v - u;
    let len = (d.x * d.x + d.y * d.y).sqrt();
    let normal = Coord {
        x: -d.y / len,
        y: d.x / len,
    };
    // Half-angle bound at both ends, in both triangles.
    let mut tan_half = f64::INFINITY;
    for t in [t1, t2] {
        let third = t.iter().copied().find(|&c| c != u && c != v).unwrap_or(u);
        for (p, q) in [(u, v), (v, u)] {
            let (e1, e2) = (q - p, third - p);
            let ang = (e1.x * e2.y - e1.y * e2.x)
                .abs()
                .atan2(e1.x * e2.x + e1.y * e2.y);
            tan_half = tan_half.min((ang / 2.0).tan());
        }
    }
    let amp = 0.9 * len * tan_half / std::f64::consts::PI;
    let (ku, kv) = (loops::key(u), loops::key(v));
    let mut rng = ChaCha8Rng::seed_from_u64(
        options.seed
            ^ ku.0.rotate_left(7)
            ^ ku.1.rotate_left(19)
            ^ kv.0.rotate_left(31)
            ^ kv.1.rotate_left(43),
    );
    let k = options.densify;
    let mut pts = Vec::with_capacity(k + 2);
    pts.push(u);
    for i in 1..=k {
        let t = i as f64 / (k + 1) as f64;
        let off = amp * (std::f64::consts::PI * t).sin() * rng.random_range(-1.0..1.0);
        pts.push(Coord {
            x: u.x + t * d.x + off * normal.x,
            y: u.y + t * d.y + off * normal.y,
        });
    }
    pts.push(v);
    if flip {
        pts.reverse();
    }
    pts
}

/// The union of cells that share edges exactly (a community from its grids…).
pub fn union_of(cells: &[&MultiPolygon<f64>]) -> MultiPolygon<f64> {
    let mut bag = EdgeBag::default();
    for c in cells {
        bag.add_rings(c);
    }
    let mut mp = loops::rings_to_multipolygon(loops::assemble_rings(&bag.remainder()));
    geom::normalise_orientation(&mut mp);
    mp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::coverage::{ValidateOptions, validate};
    use geo_types::polygon;

    fn square() -> MultiPolygon<f64> {
        MultiPolygon(vec![
            polygon![(x: 118.0, y: 37.0), (x: 118.2, y: 37.0), (x: 118.2, y: 37.15), (x: 118.0, y: 37.15)],
        ])
    }

    fn clean(cells: &[MultiPolygon<f64>], parent: &MultiPolygon<f64>) {
        let ids: Vec<String> = (0..cells.len()).map(|i| i.to_string()).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let cells: Vec<&MultiPolygon<f64>> = cells.iter().collect();
        let r = validate(
            &cells,
            &ids,
            Some(parent),
            &ValidateOptions {
                min_area_m2: 0.0,
                ..Default::default()
            },
        );
        assert!(
            r.problems.is_empty(),
            "{:#?}",
            &r.problems[..r.problems.len().min(3)]
        );
    }

    #[test]
    fn an_invalid_parent_is_refused_not_triangulated() {
        let bow = MultiPolygon(vec![
            polygon![(x: 0., y: 0.), (x: 2., y: 2.), (x: 2., y: 0.), (x: 0., y: 2.)],
        ]);
        let e = tile(&bow, 5, &SynthOptions::default()).unwrap_err();
        assert!(e.to_string().contains("ring self-intersection"), "{e}");
    }

    #[test]
    fn the_same_seed_gives_the_same_cells() {
        let o = SynthOptions {
            densify: 3,
            ..Default::default()
        };
        let a = tile(&square(), 50, &o).unwrap();
        let b = tile(&square(), 50, &o).unwrap();
        assert_eq!(a.cells, b.cells);
    }

    #[test]
    fn densified_cells_tile_the_parent_exactly() {
        let t = tile(
            &square(),
            200,
            &SynthOptions {
                densify: 8,
                seed: 7,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(t.cells.len() > 150);
        clean(&t.cells, &square());
    }

    #[test]
    fn the_union_of_all_cells_is_the_parent() {
        let t = tile(&square(), 30, &SynthOptions::default()).unwrap();
        let refs: Vec<&MultiPolygon<f64>> = t.cells.iter().collect();
        let u = union_of(&refs);
        assert_eq!(u.0.len(), 1);
        let area = |m: &MultiPolygon<f64>| geom::ring_twice_area(&m.0[0].exterior().0);
        assert!((area(&u) - area(&square())).abs() < 1e-12);
    }
}
