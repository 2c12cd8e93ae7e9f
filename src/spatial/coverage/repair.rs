//! Repair proposals: the smallest changes that turn an almost-tiling into an exact one.
//!
//! ## Method
//! Only what the validator would flag is touched; a vertex whose every edge cancels
//! against a neighbour (or the parent) never moves, so edges outside a problem stay
//! bit-for-bit the same.
//! 1. **Snap.** Loose vertices (ends of edges that do not cancel) within the snap
//!    distance of a vertex of another grid or of the parent take that vertex's exact
//!    position (parent and settled vertices first, so grids snap onto them). Then each
//!    loose vertex lying within the snap distance of another grid's edge is inserted
//!    into that edge: a boundary that matched up to digitising noise now matches
//!    vertex for vertex.
//! 2. **Make valid.** A self-intersecting grid becomes the region its rings enclose
//!    (non-zero winding), keeping its id.
//! 3. **Clip.** What spills outside the parent is cut off.
//! 4. **Overlaps.** Each piece two grids share goes to the one with the longer border
//!    with the piece (the border with the rest of that grid), as GEOS's
//!    CoverageCleaner does; the other loses it.
//! 5. **Gaps.** Each gap whose mean width (2·area/perimeter, the validator's measure) is
//!    under the limit joins the neighbour with the longest border along it; wider gaps
//!    stay, and stay reported.
//! 6. **Snap again**, so the vertices the polygon operations created are shared by
//!    both sides.
//!
//! The polygon operations run on an integer grid (see `overlay`); their output is
//! snapped back to the exact input vertices, so a boundary taken from a neighbour is
//! that neighbour's boundary to the bit.

use super::overlay;
use super::validity;
use super::{GridIndex, PARENT};
use crate::spatial::geom;
use crate::spatial::loops::{self, EdgeBag};
use crate::spatial::measure::{self, LocalScale};
use geo_types::{Coord, LineString, MultiPolygon, Polygon};
use rstar::{AABB, RTree, primitives::GeomWithData};
use rustc_hash::{FxHashMap, FxHashSet};

/// The snap distance after polygon operations, metres.
const RESNAP_M: f64 = 0.001;

/// How far a repair may go; distances in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RepairOptions {
    /// Vertices and edges closer than this are made to coincide. Default 0.5 m.
    pub snap_m: f64,
    /// Gaps narrower than this (mean width) are given to a neighbour; wider ones stay.
    /// Default 1 m, the validator's sliver width.
    pub max_gap_width_m: f64,
    /// The grids must cover the parent (comprehensive layer): fill gaps. Dedicated
    /// grids may leave gaps. Default true.
    pub require_cover: bool,
    /// Stop resolving overlaps and gaps at this instant and return what is done
    /// (marked incomplete): a service bounds how long one request may hold it.
    pub deadline: Option<std::time::Instant>,
}

impl RepairOptions {
    fn out_of_time(&self) -> bool {
        self.deadline
            .is_some_and(|d| std::time::Instant::now() >= d)
    }
}

impl Default for RepairOptions {
    fn default() -> Self {
        RepairOptions {
            snap_m: 0.5,
            max_gap_width_m: 1.0,
            require_cover: true,
            deadline: None,
        }
    }
}

/// One thing the repair did to a grid. Grid numbers index the repaired slice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Vertices moved onto, or inserted to match, a neighbour's or the parent's.
    Snapped { vertices: usize },
    /// A self-intersecting geometry was replaced by the region its rings enclose.
    MadeValid,
    /// Area outside the parent was cut off.
    Clipped { m2: f64 },
    /// An overlap went to the other grid.
    GaveOverlap { to: u32, m2: f64 },
    /// An overlap was kept from the other grid.
    KeptOverlap { from: u32, m2: f64 },
    /// A gap narrower than the limit was added to this grid.
    FilledGap { m2: f64 },
}

/// What a repair proposes for one grid.
#[derive(Debug, Clone, PartialEq)]
pub struct GridRepair {
    /// The proposed geometry (the input's when nothing changed).
    pub after: MultiPolygon<f64>,
    /// Whether `after` differs from the input at all.
    pub changed: bool,
    pub area_before_m2: f64,
    pub area_after_m2: f64,
    /// Area that moved between this grid and each neighbour: (neighbour, m²) with a
    /// positive figure for area this grid received, negative for area it gave.
    pub exchanged: Vec<(u32, f64)>,
    /// Area gained from gaps (covered by no grid before).
    pub from_gaps_m2: f64,
    /// Area lost to nobody (spill outside the parent, or slivers dropped by snapping).
    pub dropped_m2: f64,
    pub actions: Vec<Action>,
}

/// Repairs proposed for a set of grids, one per grid in input order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Repair {
    pub grids: Vec<GridRepair>,
    /// Gaps left because they are wider than the limit or touch no grid (m² each).
    pub gaps_left: Vec<f64>,
    /// The deadline passed before every problem was looked at.
    pub incomplete: bool,
}

impl Repair {
    /// How many grids the repair changes.
    pub fn changed(&self) -> usize {
        self.grids.iter().filter(|g| g.changed).count()
    }

    /// The repaired geometries, in input order.
    pub fn geometries(&self) -> Vec<MultiPolygon<f64>> {
        self.grids.iter().map(|g| g.after.clone()).collect()
    }
}

/// Proposes repairs that make `grids` tile `parent` (or, without one, not overlap and
/// leave no narrow holes).
///
/// ```
/// use geo_types::{polygon, MultiPolygon};
/// use wangge::spatial::coverage::{validate, ValidateOptions};
/// use wangge::spatial::coverage::repair::{repair, RepairOptions};
/// // The east grid's west edge is drawn 10 cm too far west: an overlap sliver.
/// let west = MultiPolygon(vec![polygon![(x: 118.0, y: 37.0), (x: 118.01, y: 37.0), (x: 118.01, y: 37.01), (x: 118.0, y: 37.01)]]);
/// let east = MultiPolygon(vec![polygon![(x: 118.009999, y: 37.0), (x: 118.02, y: 37.0), (x: 118.02, y: 37.01), (x: 118.009999, y: 37.01)]]);
/// let fixed = repair(&[west, east], None, &RepairOptions::default());
/// assert_eq!(fixed.changed(), 1, "one side snaps onto the other");
/// let report = validate(&fixed.geometries(), &["W", "E"], None, &ValidateOptions::default());
/// assert!(report.problems.is_empty(), "{:?}", report.problems);
/// ```
pub fn repair(
    grids: &[MultiPolygon<f64>],
    parent: Option<&MultiPolygon<f64>>,
    options: &RepairOptions,
) -> Repair {
    let n = grids.len();
    let Some(scale) = scale_of(grids, parent) else {
        return Repair::default();
    };
    let cover_parent = parent.filter(|_| options.require_cover);
    // A group validation finds nothing wrong with is left alone, to the last bit.
    if defects(grids, parent, options.require_cover).2 == 0 {
        return Repair {
            grids: account(grids, grids.to_vec()),
            gaps_left: Vec::new(),
            incomplete: false,
        };
    }
    let mut work: Vec<MultiPolygon<f64>> = grids.iter().map(tidy).collect();
    let mut actions: Vec<Vec<Action>> = vec![Vec::new(); n];

    // 1. Snap.
    let snapped = snap(&mut work, cover_parent, parent, scale, options.snap_m);

    // 2. Make valid.
    for (i, g) in work.iter_mut().enumerate() {
        if validity::check(g).is_some() {
            let valid = snap_back(&overlay::simplify(g), &[&*g], scale);
            if !valid.0.is_empty() {
                *g = valid;
                actions[i].push(Action::MadeValid);
            }
        }
    }

    // 3. Clip to the parent.
    if let Some(p) = parent {
        for (i, g) in work.iter_mut().enumerate() {
            let spill = measure::local_area_m2(&overlay::difference(g, p));
            if spill > 0.0 {
                let inside = snap_back(&overlay::intersection(g, p), &[&*g, p], scale);
                if !inside.0.is_empty() {
                    *g = inside;
                    actions[i].push(Action::Clipped { m2: spill });
                }
            }
        }
    }

    // 4-6. Overlaps, gaps, and snapping what the operations created. Snapping can
    // fold a ring or open a speck of overlap elsewhere, so this repeats (a few times
    // at most) while anything is left that a round can fix.
    let mut gaps_left = Vec::new();
    let mut resnapped = vec![0; n];
    for _round in 0..4 {
        let before = work.clone();
        if options.out_of_time() {
            break;
        }
        resolve_overlaps(&mut work, cover_parent, scale, options, &mut actions);
        if options.require_cover {
            gaps_left = fill_gaps(&mut work, parent, scale, options, &mut actions);
        }
        for (i, g) in work.iter_mut().enumerate() {
            if validity::check(g).is_some() {
                let valid = snap_back(&overlay::simplify(g), &[&*g], scale);
                if !valid.0.is_empty() {
                    *g = valid;
                    if !actions[i].contains(&Action::MadeValid) {
                        actions[i].push(Action::MadeValid);
                    }
                }
            }
        }
        // The operations' new vertices lie on their partner's edges to within their
        // rounding: a millimetre joins them without moving anything visibly.
        let again = snap(
            &mut work,
            cover_parent,
            parent,
            scale,
            RESNAP_M.min(options.snap_m),
        );
        for (total, k) in resnapped.iter_mut().zip(again) {
            *total += k;
        }
        let invalid = work.iter().any(|g| validity::check(g).is_some());
        if work == before || (!invalid && loose_vertices(&work, cover_parent).is_empty()) {
            break;
        }
    }
    for i in 0..n {
        let moved = snapped[i] + resnapped[i];
        if moved > 0 {
            actions[i].insert(0, Action::Snapped { vertices: moved });
        }
    }

    // A repair never deletes a grid: one that folded to nothing keeps its input.
    for (g, input) in work.iter_mut().zip(grids) {
        if g.0.is_empty() {
            *g = input.clone();
        }
    }
    let mut out = account(grids, work);
    for (g, a) in out.iter_mut().zip(actions) {
        if g.changed {
            g.actions = a;
        }
    }
    Repair {
        grids: out,
        gaps_left,
        incomplete: options.out_of_time(),
    }
}

/// The local scale at the middle of everything, or `None` when there is nothing.
fn scale_of(grids: &[MultiPolygon<f64>], parent: Option<&MultiPolygon<f64>>) -> Option<LocalScale> {
    let b = geom::bounds_of(
        grids
            .iter()
            .chain(parent)
            .flat_map(|g| geom::rings(g).flat_map(|r| r.0.iter().copied())),
    )?;
    Some(LocalScale::at(b.center().y))
}

/// Degrees spanned by `m` metres along each axis.
fn degrees(scale: LocalScale, m: f64) -> [f64; 2] {
    [m / scale.x, m / scale.y]
}

// ---- rings -------------------------------------------------------------------

/// Drops repeated vertices, spikes (`a b a`) and rings left without area; drops
/// polygons whose shell went.
fn tidy(mp: &MultiPolygon<f64>) -> MultiPolygon<f64> {
    let ring = |r: &LineString<f64>| -> Option<LineString<f64>> {
        let open = &r.0[..r.0.len().saturating_sub(1)];
        let mut v: Vec<Coord<f64>> = Vec::with_capacity(open.len());
        for &c in open {
            push_vertex(&mut v, c);
        }
        // Close the loop: the end may repeat or fold back onto the start.
        loop {
            let k = v.len();
            if k >= 2 && v[k - 1] == v[0] {
                v.pop();
            } else if k >= 3 && v[k - 2] == v[0] {
                v.pop();
                v.remove(0);
            } else if k >= 3 && v[k - 1] == v[1] {
                v.remove(0);
            } else {
                break;
            }
        }
        // A ring whose vertices all lie on one line has collapsed; a ring of zero
        // signed area may still enclose something (a bow tie) and is kept.
        let flat = (2..v.len()).all(|i| geom::orient(v[0], v[1], v[i]) == 0.0);
        if v.len() < 3 || flat {
            return None;
        }
        let first = v[0];
        v.push(first);
        Some(LineString(v))
    };
    let mut out = MultiPolygon(
        mp.0.iter()
            .filter_map(|p| {
                let shell = ring(p.exterior())?;
                Some(Polygon::new(
                    shell,
                    p.interiors().iter().filter_map(ring).collect(),
                ))
            })
            .collect(),
    );
    geom::normalise_orientation(&mut out);
    out
}

/// Appends `c`, dropping it when it repeats the last vertex and folding back spikes.
fn push_vertex(v: &mut Vec<Coord<f64>>, c: Coord<f64>) {
    if v.last() == Some(&c) {
        return;
    }
    if v.len() >= 2 && v[v.len() - 2] == c {
        v.pop();
        return;
    }
    v.push(c);
}

fn edges_of(mp: &MultiPolygon<f64>) -> impl Iterator<Item = (Coord<f64>, Coord<f64>)> + '_ {
    geom::rings(mp).flat_map(|r| r.0.windows(2).map(|w| (w[0], w[1])))
}

/// An edge `a → b` as the keys of its ends, in its direction.
type DirectedEdge = ((u64, u64), (u64, u64));

/// The endpoints of edges that cancel against nothing.
fn loose_vertices(
    work: &[MultiPolygon<f64>],
    cover_parent: Option<&MultiPolygon<f64>>,
) -> FxHashSet<(u64, u64)> {
    loose_edges(work, cover_parent)
        .into_iter()
        .flat_map(|(a, b)| [a, b])
        .collect()
}

/// The edges that cancel against nothing, as the keys of their ends.
fn loose_edges(
    work: &[MultiPolygon<f64>],
    cover_parent: Option<&MultiPolygon<f64>>,
) -> FxHashSet<DirectedEdge> {
    let mut bag = EdgeBag::default();
    for i in loops::spatial_order(work) {
        bag.add_rings(&work[i]);
    }
    if let Some(p) = cover_parent {
        bag.add_rings(&super::reversed(p));
    }
    bag.remainder()
        .into_iter()
        .map(|(a, b)| (loops::key(a), loops::key(b)))
        .collect()
}

/// Per grid, the share of its edges (in millionths) that already match a neighbour or
/// the parent: where two grids disagree, the one that agrees with the rest is likelier
/// right, so its vertices are the ones others snap to.
fn settled_shares(work: &[MultiPolygon<f64>], loose: &FxHashSet<DirectedEdge>) -> Vec<u64> {
    work.iter()
        .map(|g| {
            let (mut all, mut settled) = (0u64, 0u64);
            for (a, b) in edges_of(g) {
                all += 1;
                if !loose.contains(&(loops::key(a), loops::key(b))) {
                    settled += 1;
                }
            }
            settled * 1_000_000 / all.max(1)
        })
        .collect()
}

// ---- 1. snapping ---------------------------------------------------------------

struct Node {
    at: Coord<f64>,
    /// Grids (or `PARENT`) with a vertex here.
    owners: Vec<u32>,
    /// A settled vertex (every edge cancels) or the parent's: it never moves.
    fixed: bool,
}

type Point = GeomWithData<[f64; 2], usize>;

/// Snaps loose vertices onto nearby vertices, then into nearby edges. Returns, per
/// grid, how many vertices moved or were inserted.
fn snap(
    work: &mut [MultiPolygon<f64>],
    cover_parent: Option<&MultiPolygon<f64>>,
    parent: Option<&MultiPolygon<f64>>,
    scale: LocalScale,
    snap_m: f64,
) -> Vec<usize> {
    let mut counts = vec![0; work.len()];
    if snap_m <= 0.0 {
        return counts;
    }
    let loose_edges = loose_edges(work, cover_parent);
    if loose_edges.is_empty() {
        return counts;
    }
    let settled = settled_shares(work, &loose_edges);
    let loose: FxHashSet<(u64, u64)> = loose_edges.iter().flat_map(|&(a, b)| [a, b]).collect();

    // Vertex onto vertex.
    let mut nodes: Vec<Node> = Vec::new();
    let mut at_key: FxHashMap<(u64, u64), usize> = FxHashMap::default();
    let mut add = |c: Coord<f64>, owner: u32, nodes: &mut Vec<Node>| {
        let k = loops::key(c);
        let i = *at_key.entry(k).or_insert_with(|| {
            nodes.push(Node {
                at: c,
                owners: Vec::new(),
                fixed: !loose.contains(&k),
            });
            nodes.len() - 1
        });
        if owner == PARENT {
            nodes[i].fixed = true;
        }
        if !nodes[i].owners.contains(&owner) {
            nodes[i].owners.push(owner);
        }
    };
    if let Some(p) = parent {
        for (a, _) in edges_of(p) {
            add(a, PARENT, &mut nodes);
        }
    }
    for (g, mp) in work.iter().enumerate() {
        for (a, _) in edges_of(mp) {
            add(a, g as u32, &mut nodes);
        }
    }
    let tree: RTree<Point> = RTree::bulk_load(
        nodes
            .iter()
            .enumerate()
            .map(|(i, n)| Point::new([n.at.x, n.at.y], i))
            .collect(),
    );
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_by_key(|&i| {
        let n = &nodes[i];
        (
            !n.owners.contains(&PARENT),
            !n.fixed,
            std::cmp::Reverse(n.owners.len()),
            std::cmp::Reverse(
                n.owners
                    .iter()
                    .filter(|&&o| o != PARENT)
                    .map(|&o| settled[o as usize])
                    .max()
                    .unwrap_or(0),
            ),
            loops::key(n.at),
        )
    });
    let [dx, dy] = degrees(scale, snap_m);
    let mut target: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut moves: FxHashMap<(u64, u64), Coord<f64>> = FxHashMap::default();
    for &i in &order {
        if target[i].is_some() {
            continue;
        }
        target[i] = Some(i);
        let centre = nodes[i].at;
        let mut cluster: Vec<u32> = nodes[i].owners.clone();
        let env = AABB::from_corners(
            [centre.x - dx, centre.y - dy],
            [centre.x + dx, centre.y + dy],
        );
        let mut near: Vec<(f64, usize)> = tree
            .locate_in_envelope(&env)
            .map(|p| p.data)
            .filter(|&j| j != i && target[j].is_none() && !nodes[j].fixed)
            .map(|j| (scale.distance(centre, nodes[j].at), j))
            .filter(|&(d, _)| d <= snap_m)
            .collect();
        near.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (_, j) in near {
            // Never fold two vertices of one grid together: that would cut it.
            if nodes[j].owners.iter().any(|o| cluster.contains(o)) {
                continue;
            }
            target[j] = Some(i);
            cluster.extend(nodes[j].owners.iter().copied());
            moves.insert(loops::key(nodes[j].at), centre);
            for &o in &nodes[j].owners {
                if o != PARENT {
                    counts[o as usize] += 1;
                }
            }
        }
    }
    if !moves.is_empty() {
        for mp in work.iter_mut() {
            let moved = map_vertices(mp, |c| moves.get(&loops::key(c)).copied().unwrap_or(c));
            *mp = tidy(&moved);
        }
    }

    // Vertex into edge: every loose vertex (and every parent vertex) near another
    // grid's edge becomes a vertex of that edge.
    let loose = loose_vertices(work, cover_parent);
    let mut points: Vec<(Coord<f64>, Vec<u32>)> = Vec::new();
    let mut owners_at: FxHashMap<(u64, u64), usize> = FxHashMap::default();
    let mut note = |c: Coord<f64>, owner: u32| {
        let i = *owners_at.entry(loops::key(c)).or_insert_with(|| {
            points.push((c, Vec::new()));
            points.len() - 1
        });
        if !points[i].1.contains(&owner) {
            points[i].1.push(owner);
        }
    };
    for (g, mp) in work.iter().enumerate() {
        for (a, _) in edges_of(mp) {
            if loose.contains(&loops::key(a)) {
                note(a, g as u32);
            }
        }
    }
    if let Some(p) = parent {
        for (a, _) in edges_of(p) {
            note(a, PARENT);
        }
    }
    if points.is_empty() {
        return counts;
    }
    let tree: RTree<Point> = RTree::bulk_load(
        points
            .iter()
            .enumerate()
            .map(|(i, (c, _))| Point::new([c.x, c.y], i))
            .collect(),
    );
    let tol2 = snap_m * snap_m;
    for (g, mp) in work.iter_mut().enumerate() {
        let mut inserted = 0;
        let rebuilt = map_rings(mp, |ring| {
            let mut v: Vec<Coord<f64>> = Vec::with_capacity(ring.len());
            for w in ring.windows(2) {
                let (a, b) = (w[0], w[1]);
                push_vertex(&mut v, a);
                let env = AABB::from_corners(
                    [a.x.min(b.x) - dx, a.y.min(b.y) - dy],
                    [a.x.max(b.x) + dx, a.y.max(b.y) + dy],
                );
                let mut on: Vec<(f64, Coord<f64>)> = tree
                    .locate_in_envelope(&env)
                    .filter_map(|p| {
                        let (c, owners) = &points[p.data];
                        let c = *c;
                        if c == a || c == b || owners.contains(&(g as u32)) {
                            return None;
                        }
                        let t = along(a, b, c, scale);
                        (t > 0.0 && t < 1.0 && scale.segment_distance2(c, a, b) <= tol2)
                            .then_some((t, c))
                    })
                    .collect();
                on.sort_by(|x, y| x.0.total_cmp(&y.0));
                for (_, c) in on {
                    inserted += 1;
                    push_vertex(&mut v, c);
                }
            }
            if let Some(&last) = ring.last() {
                push_vertex(&mut v, last);
            }
            v
        });
        if inserted > 0 {
            *mp = tidy(&rebuilt);
            counts[g] += inserted;
        }
    }
    counts
}

/// Where `c` projects along `a → b`, as a fraction of the edge.
fn along(a: Coord<f64>, b: Coord<f64>, c: Coord<f64>, s: LocalScale) -> f64 {
    let (dx, dy) = ((b.x - a.x) * s.x, (b.y - a.y) * s.y);
    let len2 = dx * dx + dy * dy;
    if len2 == 0.0 {
        return 0.0;
    }
    (((c.x - a.x) * s.x) * dx + ((c.y - a.y) * s.y) * dy) / len2
}

fn map_vertices(mp: &MultiPolygon<f64>, f: impl Fn(Coord<f64>) -> Coord<f64>) -> MultiPolygon<f64> {
    map_rings(mp, |r| r.iter().map(|&c| f(c)).collect())
}

fn map_rings(
    mp: &MultiPolygon<f64>,
    mut f: impl FnMut(&[Coord<f64>]) -> Vec<Coord<f64>>,
) -> MultiPolygon<f64> {
    MultiPolygon(
        mp.0.iter()
            .map(|p| {
                let shell = LineString(f(&p.exterior().0));
                let holes = p.interiors().iter().map(|h| LineString(f(&h.0))).collect();
                Polygon::new(shell, holes)
            })
            .collect(),
    )
}

/// Puts the output of a polygon operation back on the exact vertices of its inputs:
/// every output vertex within the operation's rounding of an input vertex takes the
/// input's coordinates.
fn snap_back(
    out: &MultiPolygon<f64>,
    inputs: &[&MultiPolygon<f64>],
    scale: LocalScale,
) -> MultiPolygon<f64> {
    let vertices: Vec<[f64; 2]> = inputs
        .iter()
        .flat_map(|mp| geom::rings(mp).flat_map(|r| r.0.iter().map(|c| [c.x, c.y])))
        .collect();
    let Some(b) = geom::bounds_of(vertices.iter().map(|&[x, y]| Coord { x, y })) else {
        return out.clone();
    };
    // The operations round to about 2^-31 of the extent; allow 32 times that.
    let extent_m = (b.width() * scale.x).max(b.height() * scale.y);
    let eps_m = (extent_m * 1.5e-8).max(1e-6);
    let tree: RTree<[f64; 2]> = RTree::bulk_load(vertices);
    let back = map_vertices(out, |c| match tree.nearest_neighbor(&[c.x, c.y]) {
        Some(&[x, y]) if scale.distance(c, Coord { x, y }) <= eps_m => Coord { x, y },
        _ => c,
    });
    tidy(&back)
}

// ---- 4. overlaps -----------------------------------------------------------------

fn resolve_overlaps(
    work: &mut [MultiPolygon<f64>],
    cover_parent: Option<&MultiPolygon<f64>>,
    scale: LocalScale,
    options: &RepairOptions,
    actions: &mut [Vec<Action>],
) {
    let involved = owners_of_loose(work, cover_parent);
    if involved.is_empty() {
        return;
    }
    let all: Vec<u32> = (0..work.len() as u32).collect();
    let pairs = GridIndex::new(work, &all).pairs_with(&involved, work);
    for (i, j) in pairs {
        if options.out_of_time() {
            return;
        }
        let (a, b) = (&work[i as usize], &work[j as usize]);
        if super::same_shape(a, b) {
            // Duplicates: which one to keep is the planner's decision.
            continue;
        }
        let common = overlay::intersection(a, b);
        let (mut to_i, mut to_j) = (Vec::new(), Vec::new());
        for piece in common.0 {
            if geom::ring_twice_area(&piece.exterior().0) == 0.0 {
                continue;
            }
            let piece = MultiPolygon(vec![piece]);
            // The border a piece shares with the rest of a grid is the part of its
            // boundary that is not on that grid's boundary.
            let border_i = border_inside(&piece, a, scale);
            let border_j = border_inside(&piece, b, scale);
            if border_i >= border_j {
                to_i.push(piece.0[0].clone());
            } else {
                to_j.push(piece.0[0].clone());
            }
        }
        // The loser gives up what the winner keeps by losing the winner's whole grid,
        // not the pieces as the intersection rounded them: its new border is then the
        // winner's own edges (snapped back to their vertices), and no sliver of
        // rounding is left between the two. When both win pieces, one gives its
        // pieces first and the other loses what that one keeps.
        let (first, second) = match (to_i.is_empty(), to_j.is_empty()) {
            (true, true) => continue,
            (false, true) => ((j, i, None), None),
            (true, false) => ((i, j, None), None),
            (false, false) => ((i, j, Some(MultiPolygon(to_j))), Some((j, i))),
        };
        let (loser, winner, pieces) = first;
        lose_to(work, actions, loser, winner, pieces.as_ref(), scale);
        if let Some((loser, winner)) = second {
            lose_to(work, actions, loser, winner, None, scale);
        }
    }
}

/// Takes `pieces` (the winner's whole grid when `None`) from the loser, its result
/// snapped back to both grids' vertices, and records the exchange; a loser that would
/// vanish keeps its grid.
fn lose_to(
    work: &mut [MultiPolygon<f64>],
    actions: &mut [Vec<Action>],
    loser: u32,
    winner: u32,
    pieces: Option<&MultiPolygon<f64>>,
    scale: LocalScale,
) {
    let (l, w) = (&work[loser as usize], &work[winner as usize]);
    let rest = snap_back(&overlay::difference(l, pieces.unwrap_or(w)), &[l, w], scale);
    if rest.0.is_empty() {
        return;
    }
    let m2 = measure::local_area_m2(l) - measure::local_area_m2(&rest);
    work[loser as usize] = rest;
    actions[loser as usize].push(Action::GaveOverlap { to: winner, m2 });
    actions[winner as usize].push(Action::KeptOverlap { from: loser, m2 });
}

/// What is left to fix, worst first: invalid grids, the area of the errors validation
/// reports (to the square centimetre), and their number. A round that trades a large
/// overlap for a speck is progress; one that breaks a grid is not.
fn defects(
    work: &[MultiPolygon<f64>],
    parent: Option<&MultiPolygon<f64>>,
    require_cover: bool,
) -> (usize, u64, usize) {
    let ids: Vec<String> = (0..work.len()).map(|i| i.to_string()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let options = super::ValidateOptions {
        min_area_m2: 0.0,
        require_cover,
        ..super::ValidateOptions::default()
    };
    let report = super::validate(work, &ids, parent, &options);
    let errors: Vec<&super::Problem> = report
        .problems
        .iter()
        .filter(|p| p.severity() == super::Severity::Error)
        .collect();
    let invalid = errors
        .iter()
        .filter(|p| p.kind == super::ProblemKind::InvalidGeometry)
        .count();
    let area: f64 = errors.iter().filter_map(|p| p.area_m2).sum();
    (invalid, (area * 1e4).round() as u64, errors.len())
}

/// Grids that own an edge cancelling against nothing.
fn owners_of_loose(
    work: &[MultiPolygon<f64>],
    cover_parent: Option<&MultiPolygon<f64>>,
) -> Vec<u32> {
    let loose = loose_vertices(work, cover_parent);
    (0..work.len() as u32)
        .filter(|&i| edges_of(&work[i as usize]).any(|(a, _)| loose.contains(&loops::key(a))))
        .collect()
}

/// Length in metres of `region`'s boundary that does not lie on `grid`'s boundary.
fn border_inside(region: &MultiPolygon<f64>, grid: &MultiPolygon<f64>, scale: LocalScale) -> f64 {
    edges_of(region)
        .filter(|&(a, b)| !on_boundary(mid(a, b), grid, scale))
        .map(|(a, b)| scale.distance(a, b))
        .sum()
}

/// Length in metres of `region`'s boundary that lies on `grid`'s boundary.
fn border_along(region: &MultiPolygon<f64>, grid: &MultiPolygon<f64>, scale: LocalScale) -> f64 {
    edges_of(region)
        .filter(|&(a, b)| on_boundary(mid(a, b), grid, scale))
        .map(|(a, b)| scale.distance(a, b))
        .sum()
}

fn mid(a: Coord<f64>, b: Coord<f64>) -> Coord<f64> {
    Coord {
        x: (a.x + b.x) / 2.0,
        y: (a.y + b.y) / 2.0,
    }
}

/// Within a millimetre of a boundary: the rounding of the polygon operations.
fn on_boundary(p: Coord<f64>, grid: &MultiPolygon<f64>, scale: LocalScale) -> bool {
    edges_of(grid).any(|(a, b)| scale.segment_distance2(p, a, b) <= 1e-6)
}

// ---- 5. gaps ---------------------------------------------------------------------

fn fill_gaps(
    work: &mut [MultiPolygon<f64>],
    parent: Option<&MultiPolygon<f64>>,
    scale: LocalScale,
    options: &RepairOptions,
    actions: &mut [Vec<Action>],
) -> Vec<f64> {
    let mut bag = EdgeBag::default();
    for i in loops::spatial_order(work) {
        bag.add_rings(&work[i]);
    }
    if let Some(p) = parent {
        bag.add_rings(&super::reversed(p));
    }
    let remainder = bag.remainder();
    if remainder.is_empty() {
        return Vec::new();
    }
    let rings = loops::assemble_rings(&remainder);
    let gaps = if parent.is_some() {
        overlay::winding_regions(&rings, false)
    } else {
        super::holes_as_polygons(&overlay::winding_regions(&rings, true))
    };
    let mut left = Vec::new();
    let all: Vec<u32> = (0..work.len() as u32).collect();
    let index = GridIndex::new(work, &all);
    for gap in gaps.0 {
        if options.out_of_time() {
            break;
        }
        let mut gap = MultiPolygon(vec![gap]);
        let area = measure::local_area_m2(&gap);
        if area <= 0.0 {
            continue;
        }
        let width = measure::mean_width_m(area, measure::local_perimeter_m(&gap));
        if width >= options.max_gap_width_m {
            left.push(area);
            continue;
        }
        let neighbours = index.touching(&gap, work);
        let mut near: Vec<&MultiPolygon<f64>> =
            neighbours.iter().map(|&j| &work[j as usize]).collect();
        near.extend(parent);
        gap = snap_back(&gap, &near, scale);
        let best = neighbours
            .iter()
            .map(|&j| (border_along(&gap, &work[j as usize], scale), j))
            .filter(|&(l, _)| l > 0.0)
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
        let Some((_, winner)) = best else {
            left.push(area);
            continue;
        };
        let w = &work[winner as usize];
        let joined = snap_back(&overlay::union(w, &gap), &[w, &gap], scale);
        if joined.0.is_empty() {
            left.push(area);
            continue;
        }
        work[winner as usize] = joined;
        actions[winner as usize].push(Action::FilledGap { m2: area });
    }
    left
}

// ---- accounting ------------------------------------------------------------------

/// Areas before and after, and what moved between which grids.
fn account(before: &[MultiPolygon<f64>], after: Vec<MultiPolygon<f64>>) -> Vec<GridRepair> {
    let all: Vec<u32> = (0..before.len() as u32).collect();
    let index = GridIndex::new(before, &all);
    let mut out = Vec::with_capacity(before.len());
    for (i, (b, a)) in before.iter().zip(after.iter()).enumerate() {
        let changed = !super::same_shape(b, a);
        let mut repair = GridRepair {
            after: a.clone(),
            changed,
            area_before_m2: measure::local_area_m2(b),
            area_after_m2: measure::local_area_m2(a),
            exchanged: Vec::new(),
            from_gaps_m2: 0.0,
            dropped_m2: 0.0,
            actions: Vec::new(),
        };
        if changed {
            let gained = overlay::difference(a, b);
            let lost = overlay::difference(b, a);
            let gained_m2 = measure::local_area_m2(&gained);
            let lost_m2 = measure::local_area_m2(&lost);
            let (mut from_others, mut to_others) = (0.0, 0.0);
            for (x, y) in index.pairs_with(&[i as u32], before) {
                let j = (if x == i as u32 { y } else { x }) as usize;
                let share = |region: &MultiPolygon<f64>, m2: f64, other: &MultiPolygon<f64>| {
                    if m2 > 0.0 {
                        measure::local_area_m2(&overlay::intersection(region, other))
                    } else {
                        0.0
                    }
                };
                // Received: new area that was the neighbour's; given: area that is
                // the neighbour's now.
                let got = share(&gained, gained_m2, &before[j]);
                let gave = share(&lost, lost_m2, &after[j]);
                from_others += got;
                to_others += gave;
                if got > 0.0 || gave > 0.0 {
                    repair.exchanged.push((j as u32, got - gave));
                }
            }
            repair.from_gaps_m2 = (gained_m2 - from_others).max(0.0);
            repair.dropped_m2 = (lost_m2 - to_others).max(0.0);
        }
        out.push(repair);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::coverage::{ProblemKind, ValidateOptions, validate};
    use crate::spatial::synth::{SynthOptions, tile};
    use geo_types::polygon;

    /// Degrees of longitude per metre near 37° N, for building cases.
    const M_LON: f64 = 1.0 / 88_900.0;

    fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> MultiPolygon<f64> {
        MultiPolygon(vec![
            polygon![(x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1)],
        ])
    }

    fn problems(
        grids: &[MultiPolygon<f64>],
        parent: Option<&MultiPolygon<f64>>,
    ) -> Vec<ProblemKind> {
        let ids: Vec<String> = (0..grids.len()).map(|i| i.to_string()).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let options = ValidateOptions {
            min_area_m2: 0.0,
            ..ValidateOptions::default()
        };
        validate(grids, &ids, parent, &options)
            .problems
            .into_iter()
            .map(|p| p.kind)
            .filter(|k| *k != ProblemKind::Disconnected)
            .collect()
    }

    fn parent_and_tiling(cells: usize) -> (MultiPolygon<f64>, Vec<MultiPolygon<f64>>) {
        let parent = rect(118.0, 37.0, 118.02, 37.015);
        let t = tile(
            &parent,
            cells,
            &SynthOptions {
                densify: 3,
                ..SynthOptions::default()
            },
        )
        .expect("a square tiles");
        (parent, t.cells)
    }

    #[test]
    fn a_clean_tiling_is_left_exactly_as_it_is() {
        let (parent, cells) = parent_and_tiling(12);
        let r = repair(&cells, Some(&parent), &RepairOptions::default());
        assert_eq!(r.changed(), 0);
        assert_eq!(r.geometries(), cells);
        assert!(r.gaps_left.is_empty());
    }

    #[test]
    fn an_overlap_goes_to_one_grid_and_the_third_grid_is_untouched() {
        // West and east overlap in a strip 3 m wide; a north grid borders both exactly.
        let west = rect(118.0, 37.0, 118.01 + 3.0 * M_LON, 37.01);
        let east = rect(118.01, 37.0, 118.02, 37.01);
        let north = MultiPolygon(vec![polygon![
            (x: 118.0, y: 37.01), (x: 118.01, y: 37.01), (x: 118.01 + 3.0 * M_LON, y: 37.01),
            (x: 118.02, y: 37.01), (x: 118.02, y: 37.02), (x: 118.0, y: 37.02)
        ]]);
        let parent = rect(118.0, 37.0, 118.02, 37.02);
        let grids = vec![west, east, north.clone()];
        assert!(problems(&grids, Some(&parent)).contains(&ProblemKind::Overlap));
        let r = repair(&grids, Some(&parent), &RepairOptions::default());
        let after = r.geometries();
        assert_eq!(problems(&after, Some(&parent)), vec![], "{after:?}");
        assert_eq!(after[2], north, "the north grid keeps every coordinate");
        let loser = r
            .grids
            .iter()
            .position(|g| {
                g.actions
                    .iter()
                    .any(|a| matches!(a, Action::GaveOverlap { .. }))
            })
            .expect("one grid gave the overlap up");
        let strip = 3.0 * 1110.0; // 3 m by 0.01° of latitude
        let moved = r.grids[loser].area_before_m2 - r.grids[loser].area_after_m2;
        assert!((moved - strip).abs() < strip * 0.02, "{moved} vs {strip}");
    }

    #[test]
    fn a_narrow_gap_is_filled_and_a_wide_one_stays() {
        let west = rect(118.0, 37.0, 118.01, 37.01);
        let east = rect(118.01 + 0.6 * M_LON, 37.0, 118.02, 37.01);
        let parent = rect(118.0, 37.0, 118.02, 37.01);
        let r = repair(
            &[west.clone(), east.clone()],
            Some(&parent),
            &RepairOptions::default(),
        );
        assert_eq!(problems(&r.geometries(), Some(&parent)), vec![]);
        assert!(r.grids.iter().any(|g| {
            g.actions
                .iter()
                .any(|a| matches!(a, Action::FilledGap { .. }))
        }));

        let far_east = rect(118.01 + 5.0 * M_LON, 37.0, 118.02, 37.01);
        let r = repair(&[west, far_east], Some(&parent), &RepairOptions::default());
        assert_eq!(r.changed(), 0);
        assert_eq!(r.gaps_left.len(), 1);
        assert_eq!(
            problems(&r.geometries(), Some(&parent)),
            vec![ProblemKind::Gap]
        );
    }

    #[test]
    fn vertices_a_few_centimetres_apart_are_snapped_together() {
        let (parent, mut cells) = parent_and_tiling(10);
        // Move one shared vertex of cell 0 by 20 cm on cell 0 only.
        let ring = &cells[0].0[0].exterior().0;
        let shared = ring
            .iter()
            .position(|c| {
                cells[1..]
                    .iter()
                    .any(|o| geom::rings(o).any(|r| r.0.contains(c)))
                    && !geom::lies_on_ring(&parent.0[0].exterior().0, *c)
            })
            .expect("cell 0 shares an inner vertex");
        let mut moved = cells[0].clone();
        moved.0[0].exterior_mut(|r| {
            let n = r.0.len() - 1;
            r.0[shared].x += 0.2 * M_LON;
            if shared == 0 {
                r.0[n] = r.0[0];
            }
        });
        cells[0] = moved;
        assert!(!problems(&cells, Some(&parent)).is_empty());
        let r = repair(&cells, Some(&parent), &RepairOptions::default());
        assert_eq!(problems(&r.geometries(), Some(&parent)), vec![]);
        assert!(r.grids[0].changed || r.grids.iter().any(|g| g.changed));
    }

    #[test]
    fn a_bow_tie_keeps_its_place_and_becomes_valid() {
        let west = rect(118.0, 37.0, 118.01, 37.01);
        // The east grid's two northern corners swapped: its ring crosses itself.
        let east = MultiPolygon(vec![polygon![
            (x: 118.01, y: 37.0), (x: 118.02, y: 37.0), (x: 118.01, y: 37.01), (x: 118.02, y: 37.01)
        ]]);
        let r = repair(&[west, east], None, &RepairOptions::default());
        let after = r.geometries();
        assert!(validity::check(&after[1]).is_none(), "{:?}", after[1]);
        assert!(
            r.grids[1].actions.contains(&Action::MadeValid),
            "{:?}",
            r.grids[1]
        );
    }

    #[test]
    fn spill_outside_the_parent_is_cut_off() {
        let parent = rect(118.0, 37.0, 118.02, 37.01);
        let west = rect(118.0, 37.0, 118.01, 37.01);
        let east = rect(118.01, 37.0, 118.02 + 4.0 * M_LON, 37.01);
        let r = repair(&[west, east], Some(&parent), &RepairOptions::default());
        assert_eq!(problems(&r.geometries(), Some(&parent)), vec![]);
        assert!(
            matches!(r.grids[1].actions[..], [.., Action::Clipped { m2 }] if (m2 - 4.0 * 1110.0).abs() < 100.0),
            "{:?}",
            r.grids[1].actions
        );
        assert!(r.grids[1].dropped_m2 > 4000.0);
    }
}
