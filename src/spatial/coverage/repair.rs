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
//! 2. **Cut the plane** by every ring of every grid and of the parent, once (see
//!    `plane`: snap rounding on a 0.1 mm grid, exact predicates). Each face knows which
//!    grids wind around it: a self-intersecting grid covers the faces its rings
//!    enclose, so it comes out valid with its id.
//! 3. **Clip.** Faces outside the parent go to nobody.
//! 4. **Overlaps.** Each face several grids cover goes to the one with the longest
//!    border with it (the border with the rest of that grid), as GEOS's
//!    CoverageCleaner does.
//! 5. **Gaps.** Each gap (connected faces no grid covers) whose mean width
//!    (2·area/perimeter, the validator's measure) is under the limit joins the
//!    neighbour with the longest border along it; wider gaps stay, and stay reported.
//! 6. **Rebuild** each grid as the union of its faces, walking the edges of the plane:
//!    two neighbours' common boundary is the same edges, so nothing is left between
//!    them to the last bit, and no rounding happens after the cut.
//!
//! A vertex that was an input vertex keeps the input's coordinates, so an edge no
//! problem touches comes out as it went in; only crossings are new vertices.

use super::overlay;
use super::plane::{Face, OUTSIDE, Plane, Source, UNITS, Unfinished};
use super::validity;
use super::{GridIndex, PARENT};
use crate::spatial::loops::{self, EdgeBag};
use crate::spatial::measure::{self, LocalScale};
use crate::spatial::{geom, parallel};
use geo_types::{Coord, LineString, MultiPolygon, Polygon, Rect};
use rstar::{AABB, RTree, primitives::GeomWithData};
use rustc_hash::{FxHashMap, FxHashSet};

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
    /// Area that changed hands at all: gained plus lost (the symmetric difference).
    pub moved_m2: f64,
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
    /// Every grid as it is: nothing to fix, or (`incomplete`) no time to.
    fn unchanged(grids: &[MultiPolygon<f64>], incomplete: bool) -> Repair {
        Repair {
            grids: grids.iter().map(GridRepair::unchanged).collect(),
            gaps_left: Vec::new(),
            incomplete,
        }
    }

    /// Area that changed hands, over all grids (each m² counted once per grid it
    /// left or joined).
    pub fn moved_m2(&self) -> f64 {
        self.grids.iter().map(|g| g.moved_m2).sum()
    }

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
/// let fixed = fixed.geometries();
/// let report = validate(&fixed.iter().collect::<Vec<_>>(), &["W", "E"], None, &ValidateOptions::default());
/// assert!(report.problems.is_empty(), "{:?}", report.problems);
/// ```
pub fn repair(
    grids: &[MultiPolygon<f64>],
    parent: Option<&MultiPolygon<f64>>,
    options: &RepairOptions,
) -> Repair {
    // A repair of a few thousand vertices takes milliseconds, a thread tens of
    // microseconds: below that, one thread.
    let threads = parallel::build_threads(grids.iter().map(geom::vertex_count).sum());
    repair_on(grids, parent, options, threads)
}

/// [`repair`] on one thread or two. Both give the same repair.
fn repair_on(
    grids: &[MultiPolygon<f64>],
    parent: Option<&MultiPolygon<f64>>,
    options: &RepairOptions,
    threads: usize,
) -> Repair {
    let n = grids.len();
    let Some(scale) = scale_of(grids, parent) else {
        return Repair::default();
    };
    let cover_parent = parent.filter(|_| options.require_cover);
    // A group validation finds nothing wrong with is left alone, to the last bit.
    let has_errors = || {
        let grid_refs: Vec<&MultiPolygon<f64>> = grids.iter().collect();
        super::has_errors(
            &grid_refs,
            parent,
            &super::ValidateOptions {
                min_area_m2: 0.0,
                require_cover: options.require_cover,
                ..super::ValidateOptions::default()
            },
        )
    };
    let unsnapped: Vec<MultiPolygon<f64>> = grids.iter().map(tidy).collect();
    let parent = parent.map(tidy);
    let parent = parent.as_ref();

    // 1. Snap, then 2-6 on the snapped grids.
    let snapped_repair = || {
        let mut work = unsnapped.clone();
        let snapped = snap(&mut work, cover_parent, parent, scale, options.snap_m);
        let (repair, _) = settle(grids, &work, &snapped, parent, scale, options, false);
        (snapped, repair)
    };
    // Snapping is for the digitising noise it is meant for: where it shifts more than
    // the faces alone would (vertices near each other that are not the same point),
    // the repair without it is proposed instead.
    let plain_repair = || settle(grids, &unsnapped, &vec![0; n], parent, scale, options, true);
    let wants_plain =
        |snapped: &[usize], repair: &Repair| snapped.iter().any(|&k| k > 0) && !repair.incomplete;

    let (snapped, repair, plain) = if threads > 1 {
        // On two cores the plain repair runs beside the snapped one. Its plane is the
        // input's own overlay: where it shows an overlap no rounding could explain,
        // validation would report it, and is not run; what turns out not to be needed
        // is dropped.
        let ((has_errors, plain), (snapped, repair)) = parallel::join(
            2,
            || {
                let (plain, overlap) = plain_repair();
                (overlap || has_errors(), plain)
            },
            snapped_repair,
        );
        if !has_errors {
            return Repair::unchanged(grids, false);
        }
        let plain = wants_plain(&snapped, &repair).then_some(plain);
        (snapped, repair, plain)
    } else {
        if !has_errors() {
            return Repair::unchanged(grids, false);
        }
        let (snapped, repair) = snapped_repair();
        let plain = wants_plain(&snapped, &repair).then(|| plain_repair().0);
        (snapped, repair, plain)
    };
    // Both share every edge exactly. The two are measured differently (the snapped
    // grids against their input by polygon operations, the rest from the plane's
    // faces), so the plain one must move SAME_MOVE (0.1 %) plus 0.01 m² less; where
    // they move about the same, the snapped one, which bends fewer edges, is kept.
    if let Some(plain) = plain
        && !plain.incomplete
        && plain.moved_m2() < repair.moved_m2() * (1.0 - SAME_MOVE) - 0.01
    {
        return plain;
    }
    let mut repair = repair;
    exchanges_of_snapped(grids, &mut repair.grids, &snapped);
    repair
}

/// How far apart (relative) two repairs' moved areas may be and still count as the
/// same: above the disagreement of the two ways they are measured (polygon operations
/// at each ring's mean latitude, faces at their edges' mean latitude; 10⁻⁴ on the
/// Taiwan villages).
const SAME_MOVE: f64 = 1e-3;

/// Steps 2 to 6 on the (snapped) grids: the plane, its faces given out, the grids
/// rebuilt and accounted for against the input. Also, when asked to look (and
/// `work` is the input tidied, which covers what the input covers), whether the
/// plane shows an overlap validation of the input must report (see
/// [`Shares::sure_overlap`]).
fn settle(
    grids: &[MultiPolygon<f64>],
    work: &[MultiPolygon<f64>],
    snapped: &[usize],
    parent: Option<&MultiPolygon<f64>>,
    scale: LocalScale,
    options: &RepairOptions,
    look_for_overlap: bool,
) -> (Repair, bool) {
    let n = grids.len();
    // 2-5. Cut the plane by every ring and give each face to one grid.
    let Ok((plane, grid_of)) = plane_of(work, parent, options) else {
        return (Repair::unchanged(grids, true), false);
    };
    let shares = Shares::of(&plane, &grid_of, n, scale);
    let overlap = look_for_overlap && shares.sure_overlap(grids);
    let mut actions: Vec<Vec<Action>> = vec![Vec::new(); n];
    let mut owner = shares.first_owners(&mut actions);
    shares.resolve_overlaps(&mut owner, &mut actions);
    let gaps_left = if options.require_cover {
        shares.fill_gaps(&mut owner, options.max_gap_width_m, &mut actions)
    } else {
        Vec::new()
    };

    // 6. Each grid is the union of its faces, its rings walked along the edges it
    // shares with its neighbours.
    let mut rings: Vec<Vec<Vec<Coord<f64>>>> = vec![Vec::new(); n];
    for (g, ring) in plane.boundaries(&owner, NOBODY) {
        // A face that touches itself at a vertex walks through it twice: OGC wants a
        // shell and a hole touching there instead.
        loops::split_at_repeats(ring, &mut rings[g as usize]);
    }
    let mut out: Vec<MultiPolygon<f64>> = Vec::with_capacity(n);
    for (i, r) in rings.into_iter().enumerate() {
        let mp = loops::rings_to_multipolygon(r);
        // A repair never deletes a grid: one left with nothing keeps its input; and
        // one that comes out as it went in keeps the input's very rings.
        if mp.0.is_empty() || super::same_shape(&mp, &grids[i]) {
            out.push(grids[i].clone());
        } else {
            if validity::check(&work[i]).is_some() {
                actions[i].insert(0, Action::MadeValid);
            }
            out.push(mp);
        }
    }
    for (i, &moved) in snapped.iter().enumerate() {
        if moved > 0 {
            actions[i].insert(0, Action::Snapped { vertices: moved });
        }
    }
    let ledgers = shares.ledgers(&owner, n);
    let mut out = account(grids, out, ledgers, snapped);
    for (g, a) in out.iter_mut().zip(actions) {
        if g.changed {
            g.actions = a;
        }
    }
    (
        Repair {
            grids: out,
            gaps_left,
            incomplete: false,
        },
        overlap,
    )
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

/// Whether every shell runs counter-clockwise and every hole clockwise, as [`tidy`]
/// leaves them.
fn oriented(mp: &MultiPolygon<f64>) -> bool {
    mp.0.iter().all(|p| {
        geom::ring_twice_area(&p.exterior().0) > 0.0
            && p.interiors()
                .iter()
                .all(|h| geom::ring_twice_area(&h.0) < 0.0)
    })
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

/// The keys of the ends of `edges`.
fn ends_of(edges: &FxHashSet<DirectedEdge>) -> FxHashSet<(u64, u64)> {
    edges.iter().flat_map(|&(a, b)| [a, b]).collect()
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
    let unmatched = loose_edges(work, cover_parent);
    if unmatched.is_empty() {
        return counts;
    }
    let settled = settled_shares(work, &unmatched);
    let loose = ends_of(&unmatched);

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
    let [dx, dy] = degrees(scale, snap_m);
    // Vertices by cells a little larger than the snap distance: all within it of a
    // vertex lie in the cell of that vertex or the eight around it.
    // (At least 10⁻⁹ degree, so that a cell number stays far from overflowing.)
    let origin = nodes.first().map_or(Coord { x: 0.0, y: 0.0 }, |n| n.at);
    let (cell_x, cell_y) = ((dx * 1.01).max(1e-9), (dy * 1.01).max(1e-9));
    let cell_of = |c: Coord<f64>| {
        (
            ((c.x - origin.x) / cell_x).floor() as i64,
            ((c.y - origin.y) / cell_y).floor() as i64,
        )
    };
    let mut cells: FxHashMap<(i64, i64), Vec<usize>> = FxHashMap::default();
    for (i, n) in nodes.iter().enumerate() {
        cells.entry(cell_of(n.at)).or_default().push(i);
    }
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_by_cached_key(|&i| {
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
    let mut target: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut moves: FxHashMap<(u64, u64), Coord<f64>> = FxHashMap::default();
    for &i in &order {
        if target[i].is_some() {
            continue;
        }
        target[i] = Some(i);
        let centre = nodes[i].at;
        let mut cluster: Vec<u32> = nodes[i].owners.clone();
        let (cx, cy) = cell_of(centre);
        let mut near: Vec<(f64, usize)> = (cx - 1..=cx + 1)
            .flat_map(|x| (cy - 1..=cy + 1).map(move |y| (x, y)))
            .filter_map(|cell| cells.get(&cell))
            .flatten()
            .copied()
            // A vertex two grids already share is where they agree: it stays, and
            // the plane's faces settle whatever disagrees around it.
            .filter(|&j| {
                j != i && target[j].is_none() && !nodes[j].fixed && nodes[j].owners.len() == 1
            })
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
    // grid's loose edge becomes a vertex of that edge. An edge that matches its
    // neighbour's is agreed on and does not bend.
    let unmatched = loose_edges(work, cover_parent);
    let loose = ends_of(&unmatched);
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
                if !unmatched.contains(&(loops::key(a), loops::key(b))) {
                    continue;
                }
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

// ---- 2-5. faces ------------------------------------------------------------------

/// The owner of a face no grid gets: outside the parent, or a gap left open.
const NOBODY: u32 = u32::MAX;

/// The plane cut by every grid's rings and the parent's. Each polygon `k` (the grids'
/// in order, then the parent's) has its shell as source `2k` and its holes as `2k + 1`,
/// so that a face is a polygon's when its shell winds around it and its holes do not
/// (a bow tie's two lobes wind opposite ways and are both the polygon's; an island in
/// its own grid's lake is the island polygon's). Returns the plane and, per polygon,
/// its grid (`n` for the parent).
fn plane_of(
    work: &[MultiPolygon<f64>],
    parent: Option<&MultiPolygon<f64>>,
    options: &RepairOptions,
) -> Result<(Plane, Vec<u32>), Unfinished> {
    let n = work.len() as u32;
    let mut rings: Vec<(Source, &[Coord<f64>])> = Vec::new();
    let mut grid_of: Vec<u32> = Vec::new();
    let mut first_parent_source = None;
    let all = work.iter().enumerate().map(|(g, mp)| (g as u32, mp));
    for (g, mp) in all.chain(parent.map(|p| (n, p))) {
        if g == n {
            first_parent_source = Some(2 * grid_of.len() as u32);
        }
        for poly in &mp.0 {
            let k = grid_of.len() as u32;
            grid_of.push(g);
            rings.push((2 * k, &poly.exterior().0));
            for h in poly.interiors() {
                rings.push((2 * k + 1, &h.0));
            }
        }
    }
    // The parent is not the repair's to change: grids meet its edges on them.
    let fixed = |s: Source| first_parent_source.is_some_and(|p| s >= p);
    Ok((Plane::build(&rings, fixed, options.deadline)?, grid_of))
}

/// Who covers each face of the plane, and how faces border each other.
struct Shares {
    /// Per face, the grids that cover it.
    owners: Vec<Vec<u32>>,
    /// Per face, whether it lies inside the parent (every bounded face, without one).
    inside: Vec<bool>,
    area_m2: Vec<f64>,
    /// Per face, the face across each of its edges and that edge's length in metres.
    borders: Vec<Vec<(u32, f64)>>,
    /// Metres per degree in the middle of everything.
    scale: LocalScale,
}

impl Shares {
    fn of(plane: &Plane, grid_of: &[u32], n: usize, scale: LocalScale) -> Shares {
        let n = n as u32;
        // The grids (and `n`, the parent) one of whose polygons covers the face.
        let covering = |f: &Face| -> Vec<u32> {
            let mut grids: Vec<u32> = f
                .winding
                .iter()
                .filter(|&&(s, _)| s % 2 == 0 && f.winding_of(s + 1) == 0)
                .map(|&(s, _)| grid_of[(s / 2) as usize])
                .collect();
            grids.sort_unstable();
            grids.dedup();
            grids
        };
        let has_parent = grid_of.last() == Some(&n);
        let faces = plane.faces.len();
        let mut borders: Vec<Vec<(u32, f64)>> = vec![Vec::new(); faces];
        // Each face's area is taken at the mean latitude of its edges, as
        // `measure::local_area_m2` takes a ring's at the mean of its vertices.
        let mut latitude_sum = vec![(0.0f64, 0u32); faces];
        for h in (0..plane.half_edges()).step_by(2) {
            let (f1, f2) = (plane.face_left(h), plane.face_left(h ^ 1));
            let (a, b) = plane.segment(h);
            let mid = (a.y + b.y) / 2.0;
            let here = LocalScale::at(mid);
            for f in [f1, f2] {
                latitude_sum[f as usize].0 += mid;
                latitude_sum[f as usize].1 += 1;
            }
            if f1 != f2 {
                let len = here.distance(a, b);
                borders[f1 as usize].push((f2, len));
                borders[f2 as usize].push((f1, len));
            }
        }
        let mut owners = Vec::with_capacity(faces);
        let mut inside = Vec::with_capacity(faces);
        let mut area_m2 = Vec::with_capacity(faces);
        for (f, face) in plane.faces.iter().enumerate() {
            let mut grids = covering(face);
            let in_parent = grids.last() == Some(&n);
            if in_parent {
                grids.pop();
            }
            owners.push(grids);
            inside.push(f as u32 != OUTSIDE && (!has_parent || in_parent));
            let (sum, count) = latitude_sum[f];
            let s = if count == 0 {
                scale
            } else {
                LocalScale::at(sum / count as f64)
            };
            area_m2.push(plane.face_area_deg2(f as u32) * s.x * s.y);
        }
        Shares {
            owners,
            inside,
            area_m2,
            borders,
            scale,
        }
    }

    /// Whether some face two of `grids` cover is one validation of `grids` must report
    /// as an error: its overlap region holds the face, and the region's boundary runs
    /// along the two grids' boundaries, so its mean width (2·area/perimeter, what the
    /// validator measures) is at least 2·face/(both perimeters). The plane rounds to
    /// 10⁻⁹ degree and routes edges through pixels, each boundary moving at most
    /// about one unit and a half, so a face may be up to three units wider than what
    /// it stands for: where the face's width exceeds four times the polygon
    /// operations' noise (under which the validator drops a piece as made by
    /// rounding) plus sixteen units, neither computation's rounding can hide it.
    /// Where any grid's rings are not oriented as the plane orients them, nothing is
    /// judged: the validator cancels a ring against the same ring reversed.
    fn sure_overlap(&self, grids: &[MultiPolygon<f64>]) -> bool {
        // Any grid drawn against the plane's orientation may cancel another's rings
        // in validation, hiding an overlap of two grids that are oriented.
        if !grids.iter().all(oriented) {
            return false;
        }
        // Per grid, its bounds and perimeter, taken when first needed.
        let mut measured: Vec<Option<(Rect<f64>, f64)>> = vec![None; grids.len()];
        let mut measure = |g: u32| -> Option<(Rect<f64>, f64)> {
            let grid = &grids[g as usize];
            if measured[g as usize].is_none() {
                let bounds = geom::bounds_of(geom::rings(grid).flat_map(|r| r.0.iter().copied()))?;
                measured[g as usize] = Some((bounds, measure::local_perimeter_m(grid)));
            }
            measured[g as usize]
        };
        for (f, owners) in self.owners.iter().enumerate() {
            let &[g, h, ..] = owners.as_slice() else {
                continue;
            };
            if f as u32 == OUTSIDE {
                continue;
            }
            let (Some((bg, pg)), Some((bh, ph))) = (measure(g), measure(h)) else {
                continue;
            };
            let Some(both) = geom::bounds_of([bg.min(), bg.max(), bh.min(), bh.max()]) else {
                continue;
            };
            let width_m = 2.0 * self.area_m2[f] / (pg + ph);
            let unit_m = self.scale.x.max(self.scale.y) / UNITS;
            if width_m > 4.0 * overlay::noise_in_m(both) + 16.0 * unit_m {
                return true;
            }
        }
        false
    }

    /// Faces only one grid covers go to it; what spills outside the parent goes to
    /// nobody (clipped).
    fn first_owners(&self, actions: &mut [Vec<Action>]) -> Vec<u32> {
        let mut clipped: FxHashMap<u32, f64> = FxHashMap::default();
        let owner = (0..self.owners.len())
            .map(|f| match (self.inside[f], self.owners[f].as_slice()) {
                (false, grids) => {
                    for &g in grids {
                        *clipped.entry(g).or_default() += self.area_m2[f];
                    }
                    NOBODY
                }
                (true, [g]) => *g,
                (true, _) => NOBODY,
            })
            .collect();
        let mut clipped: Vec<(u32, f64)> = clipped.into_iter().collect();
        clipped.sort_by_key(|c| c.0);
        for (g, m2) in clipped {
            actions[g as usize].push(Action::Clipped { m2 });
        }
        owner
    }

    /// Length of `f`'s border with the faces `g` owns.
    fn border_with(&self, f: usize, g: u32, owner: &[u32]) -> f64 {
        self.borders[f]
            .iter()
            .filter(|&&(nb, _)| owner[nb as usize] == g)
            .map(|&(_, len)| len)
            .sum()
    }

    /// Each face several grids cover goes to the one of them with the longest border
    /// with it (as GEOS's CoverageCleaner does); a face bordering none of them yet
    /// waits for its neighbours to be decided.
    fn resolve_overlaps(&self, owner: &mut [u32], actions: &mut [Vec<Action>]) {
        let overlaps: Vec<usize> = (0..self.owners.len())
            .filter(|&f| self.inside[f] && self.owners[f].len() > 1)
            .collect();
        // A repair never deletes a grid: one that covers nothing alone (drawn wholly
        // over a neighbour) keeps the largest face it covers.
        let mut has_face = vec![false; actions.len()];
        for &g in owner.iter().filter(|&&g| g != NOBODY) {
            has_face[g as usize] = true;
        }
        let mut largest: FxHashMap<u32, usize> = FxHashMap::default();
        for &f in &overlaps {
            for &g in self.owners[f].iter().filter(|&&g| !has_face[g as usize]) {
                let best = largest.entry(g).or_insert(f);
                if self.area_m2[f] > self.area_m2[*best] {
                    *best = f;
                }
            }
        }
        let mut kept: Vec<(u32, usize)> = largest.into_iter().collect();
        kept.sort_unstable();
        for (g, f) in kept {
            if owner[f] == NOBODY {
                owner[f] = g;
            }
        }
        let mut pending: Vec<usize> = overlaps
            .iter()
            .copied()
            .filter(|&f| owner[f] == NOBODY)
            .collect();
        loop {
            let before = pending.len();
            let mut still = Vec::new();
            for f in pending {
                let best = self.owners[f]
                    .iter()
                    .map(|&g| (self.border_with(f, g, owner), g))
                    .filter(|&(len, _)| len > 0.0)
                    .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
                match best {
                    Some((_, g)) => owner[f] = g,
                    None => still.push(f),
                }
            }
            pending = still;
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        // Overlaps that touch none of their grids' other faces (a duplicated grid):
        // the first grid keeps them, and the other keeps its input.
        for f in pending {
            owner[f] = self.owners[f][0];
        }
        let mut moved: FxHashMap<(u32, u32), f64> = FxHashMap::default();
        for f in overlaps {
            for &g in self.owners[f].iter().filter(|&&g| g != owner[f]) {
                *moved.entry((g, owner[f])).or_default() += self.area_m2[f];
            }
        }
        let mut moved: Vec<((u32, u32), f64)> = moved.into_iter().collect();
        moved.sort_by_key(|m| m.0);
        for ((loser, winner), m2) in moved {
            actions[loser as usize].push(Action::GaveOverlap { to: winner, m2 });
            actions[winner as usize].push(Action::KeptOverlap { from: loser, m2 });
        }
    }

    /// Each gap (connected faces inside the parent that no grid covers) whose mean
    /// width is under the limit goes whole to the neighbour with the longest border
    /// along it. Returns the areas of the gaps left.
    fn fill_gaps(
        &self,
        owner: &mut [u32],
        max_width_m: f64,
        actions: &mut [Vec<Action>],
    ) -> Vec<f64> {
        let faces = self.owners.len();
        let mut region = vec![u32::MAX; faces];
        let mut left = Vec::new();
        for start in 0..faces {
            if !self.inside[start] || owner[start] != NOBODY || region[start] != u32::MAX {
                continue;
            }
            let id = start as u32;
            let mut members = vec![start];
            region[start] = id;
            let mut k = 0;
            while k < members.len() {
                for &(nb, _) in &self.borders[members[k]] {
                    let nb = nb as usize;
                    if self.inside[nb] && owner[nb] == NOBODY && region[nb] == u32::MAX {
                        region[nb] = id;
                        members.push(nb);
                    }
                }
                k += 1;
            }
            let area: f64 = members.iter().map(|&f| self.area_m2[f]).sum();
            let mut perimeter = 0.0;
            let mut along: FxHashMap<u32, f64> = FxHashMap::default();
            for &f in &members {
                for &(nb, len) in &self.borders[f] {
                    if region[nb as usize] != id {
                        perimeter += len;
                        if owner[nb as usize] != NOBODY {
                            *along.entry(owner[nb as usize]).or_default() += len;
                        }
                    }
                }
            }
            if area <= 0.0 {
                continue;
            }
            let best = along
                .into_iter()
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
            match best {
                Some((g, _)) if measure::mean_width_m(area, perimeter) < max_width_m => {
                    for &f in &members {
                        owner[f] = g;
                    }
                    actions[g as usize].push(Action::FilledGap { m2: area });
                }
                _ => left.push(area),
            }
        }
        left
    }
}

// ---- accounting ------------------------------------------------------------------

/// What one grid gained and lost, face by face.
#[derive(Debug, Clone, Default)]
struct Ledger {
    gained_m2: f64,
    lost_m2: f64,
    from_gaps_m2: f64,
    dropped_m2: f64,
    /// Per neighbour: received (positive) or given (negative).
    exchanged: FxHashMap<u32, f64>,
}

impl Shares {
    /// Each grid's ledger from the faces it covered and the faces it owns now: no
    /// polygon operation is needed, the faces are already the pieces that moved.
    fn ledgers(&self, owner: &[u32], n: usize) -> Vec<Ledger> {
        let mut ledgers = vec![Ledger::default(); n];
        for (f, covers) in self.owners.iter().enumerate() {
            let (o, a) = (owner[f], self.area_m2[f]);
            if o != NOBODY && !covers.contains(&o) {
                let l = &mut ledgers[o as usize];
                l.gained_m2 += a;
                if covers.is_empty() {
                    l.from_gaps_m2 += a;
                }
                for &g in covers {
                    *l.exchanged.entry(g).or_default() += a;
                }
            }
            for &g in covers.iter().filter(|&&g| g != o) {
                let l = &mut ledgers[g as usize];
                l.lost_m2 += a;
                if o == NOBODY {
                    l.dropped_m2 += a;
                } else {
                    *l.exchanged.entry(o).or_default() -= a;
                }
            }
        }
        ledgers
    }
}

/// Areas before and after, and what moved between which grids. The ledgers count
/// from the grids as the plane saw them; a grid whose vertices were snapped first has
/// its moved area measured against its input, so the snap's own shift is in it.
fn account(
    before: &[MultiPolygon<f64>],
    after: Vec<MultiPolygon<f64>>,
    ledgers: Vec<Ledger>,
    snapped: &[usize],
) -> Vec<GridRepair> {
    let mut out = Vec::with_capacity(before.len());
    for (i, ((b, a), l)) in before.iter().zip(after).zip(ledgers).enumerate() {
        let mut repair = GridRepair::unchanged(b);
        if super::same_shape(b, &a) {
            out.push(repair);
            continue;
        }
        repair.changed = true;
        repair.area_after_m2 = measure::local_area_m2(&a);
        repair.moved_m2 = if snapped[i] > 0 {
            measure::local_area_m2(&overlay::difference(&a, b))
                + measure::local_area_m2(&overlay::difference(b, &a))
        } else {
            l.gained_m2 + l.lost_m2
        };
        let mut exchanged: Vec<(u32, f64)> = l.exchanged.into_iter().collect();
        exchanged.sort_unstable_by_key(|e| e.0);
        repair.exchanged = exchanged;
        repair.from_gaps_m2 = l.from_gaps_m2;
        repair.dropped_m2 = l.dropped_m2;
        repair.after = a;
        out.push(repair);
    }
    out
}

/// The figures of the grids whose vertices were snapped, by polygon operations
/// against the input. The ledger saw them only after the snap, so what the snap
/// itself closed (a strip drawn twice, a sliver between two grids) would be in their
/// moved area and in no figure beside it. Run only on the proposal chosen, and only
/// for its snapped grids: the two differences `account` took for their moved area are
/// taken again here rather than kept for a proposal that may lose to the plain one.
fn exchanges_of_snapped(before: &[MultiPolygon<f64>], out: &mut [GridRepair], snapped: &[usize]) {
    let todo: Vec<usize> = (0..before.len())
        .filter(|&i| snapped.get(i).is_some_and(|&k| k > 0) && out[i].changed)
        .collect();
    if todo.is_empty() {
        return;
    }
    let before_refs: Vec<&MultiPolygon<f64>> = before.iter().collect();
    let index = GridIndex::new(before.iter().map(geom::bounds));
    let mut figures = Vec::with_capacity(todo.len());
    for &i in &todo {
        let (b, a) = (&before[i], &out[i].after);
        let gained = overlay::difference(a, b);
        let lost = overlay::difference(b, a);
        let gained_m2 = measure::local_area_m2(&gained);
        let lost_m2 = measure::local_area_m2(&lost);
        let share = |region: &MultiPolygon<f64>, m2: f64, other: &MultiPolygon<f64>| {
            if m2 > 0.0 {
                measure::local_area_m2(&overlay::intersection(region, other))
            } else {
                0.0
            }
        };
        let (mut from_others, mut to_others) = (0.0, 0.0);
        let mut exchanged = Vec::new();
        for (x, y) in index.pairs_with(&[i as u32], &before_refs) {
            let j = (if x == i as u32 { y } else { x }) as usize;
            // Received: new area that was the neighbour's; given: area that is the
            // neighbour's now.
            let got = share(&gained, gained_m2, &before[j]);
            let gave = share(&lost, lost_m2, &out[j].after);
            from_others += got;
            to_others += gave;
            if got > 0.0 || gave > 0.0 {
                exchanged.push((j as u32, got - gave));
            }
        }
        exchanged.sort_unstable_by_key(|e| e.0);
        figures.push((
            i,
            exchanged,
            (gained_m2 - from_others).max(0.0),
            (lost_m2 - to_others).max(0.0),
            gained_m2 + lost_m2,
        ));
    }
    for (i, exchanged, from_gaps_m2, dropped_m2, moved_m2) in figures {
        let g = &mut out[i];
        g.exchanged = exchanged;
        g.from_gaps_m2 = from_gaps_m2;
        g.dropped_m2 = dropped_m2;
        g.moved_m2 = moved_m2;
    }
}

impl GridRepair {
    /// A grid left as it is.
    fn unchanged(g: &MultiPolygon<f64>) -> GridRepair {
        let area = measure::local_area_m2(g);
        GridRepair {
            after: g.clone(),
            changed: false,
            area_before_m2: area,
            area_after_m2: area,
            exchanged: Vec::new(),
            from_gaps_m2: 0.0,
            dropped_m2: 0.0,
            moved_m2: 0.0,
            actions: Vec::new(),
        }
    }
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
        let grids: Vec<&MultiPolygon<f64>> = grids.iter().collect();
        validate(&grids, &ids, parent, &options)
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
        // The ledger, counted from the plane's faces, says the same: the strip went
        // to the winner, and nothing to or from a gap.
        let g = &r.grids[loser];
        let winner = 1 - loser as u32;
        assert_eq!(g.exchanged.len(), 1, "{:?}", g.exchanged);
        assert_eq!(g.exchanged[0].0, winner);
        assert!(
            (g.exchanged[0].1 + strip).abs() < strip * 0.02,
            "{:?}",
            g.exchanged
        );
        assert!((g.moved_m2 - strip).abs() < strip * 0.02, "{}", g.moved_m2);
        assert_eq!((g.from_gaps_m2, g.dropped_m2), (0.0, 0.0));
    }

    #[test]
    fn a_grid_drawn_wholly_over_by_its_neighbour_keeps_its_place() {
        // West is drawn over all of east: east keeps what it covers, west the rest.
        let west = rect(118.0, 37.0, 118.02, 37.01);
        let east = rect(118.01, 37.0, 118.02, 37.01);
        let parent = rect(118.0, 37.0, 118.02, 37.01);
        let r = repair(
            &[west, east.clone()],
            Some(&parent),
            &RepairOptions::default(),
        );
        let after = r.geometries();
        assert_eq!(problems(&after, Some(&parent)), vec![], "{after:?}");
        assert_eq!(after[1], east);
        assert!(super::super::same_shape(
            &after[0],
            &MultiPolygon(vec![polygon![
                (x: 118.0, y: 37.0), (x: 118.01, y: 37.0), (x: 118.01, y: 37.01), (x: 118.0, y: 37.01)
            ]])
        ));
    }

    #[test]
    fn an_island_in_its_own_grids_lake_stays_that_grids() {
        // A: land around a lake, and an island in the lake; B: the lake's water, drawn
        // 30 cm over A's shore all round (so there is something to repair).
        let d = 0.001;
        let sq = |lo: f64, hi: f64, pad: f64| {
            let (lo, hi) = (lo * d - pad, hi * d + pad);
            LineString::from(vec![
                (118.0 + lo, 37.0 + lo),
                (118.0 + hi, 37.0 + lo),
                (118.0 + hi, 37.0 + hi),
                (118.0 + lo, 37.0 + hi),
                (118.0 + lo, 37.0 + lo),
            ])
        };
        let rev = |mut r: LineString<f64>| {
            r.0.reverse();
            r
        };
        let land = MultiPolygon(vec![
            Polygon::new(sq(0.0, 10.0, 0.0), vec![rev(sq(2.0, 8.0, 0.0))]),
            Polygon::new(sq(4.0, 6.0, 0.0), vec![]),
        ]);
        let pad = 0.3 * M_LON;
        let water = MultiPolygon(vec![Polygon::new(
            sq(2.0, 8.0, pad),
            vec![rev(sq(4.0, 6.0, -pad))],
        )]);
        let parent = MultiPolygon(vec![Polygon::new(sq(0.0, 10.0, 0.0), vec![])]);
        let grids = vec![land.clone(), water];
        assert!(!problems(&grids, Some(&parent)).is_empty());
        let r = repair(&grids, Some(&parent), &RepairOptions::default());
        let after = r.geometries();
        assert_eq!(problems(&after, Some(&parent)), vec![], "{after:?}");
        let island = measure::local_area_m2(&MultiPolygon(vec![land.0[1].clone()]));
        let lost = r.grids[0].area_before_m2 - r.grids[0].area_after_m2;
        assert!(
            lost.abs() < island / 100.0,
            "the land keeps its island: {lost} m² gone"
        );
    }

    #[test]
    fn neighbours_share_every_vertex_of_a_crossing_they_are_repaired_at() {
        // East's west edge is drawn slanted, 1.5 m over west at the bottom and 1.5 m
        // short at the top: the two cross halfway, a vertex neither grid had; the gap
        // above the crossing is 0.75 m wide on average, narrow enough to fill.
        let west = rect(118.0, 37.0, 118.01, 37.01);
        let east = MultiPolygon(vec![polygon![
            (x: 118.01 - 1.5 * M_LON, y: 37.0), (x: 118.02, y: 37.0), (x: 118.02, y: 37.01),
            (x: 118.01 + 1.5 * M_LON, y: 37.01)
        ]]);
        let parent = rect(118.0, 37.0, 118.02, 37.01);
        let r = repair(&[west, east], Some(&parent), &RepairOptions::default());
        let after = r.geometries();
        assert_eq!(problems(&after, Some(&parent)), vec![], "{after:?}");
        let vertices = |mp: &MultiPolygon<f64>| -> FxHashSet<(u64, u64)> {
            geom::rings(mp)
                .flat_map(|r| r.0.iter().map(|&c| loops::key(c)))
                .collect()
        };
        let shared = vertices(&after[0])
            .intersection(&vertices(&after[1]))
            .count();
        assert!(
            shared >= 3,
            "the crossing and both ends of the common edge: {after:?}"
        );
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
        let filler = r
            .grids
            .iter()
            .find(|g| {
                g.actions
                    .iter()
                    .any(|a| matches!(a, Action::FilledGap { .. }))
            })
            .expect("one grid filled the gap");
        let gap = 0.6 * 1110.0; // 0.6 m by 0.01° of latitude
        assert!((filler.from_gaps_m2 - gap).abs() < gap * 0.02, "{filler:?}");
        assert!((filler.moved_m2 - gap).abs() < gap * 0.02, "{filler:?}");
        assert!(filler.exchanged.is_empty(), "{filler:?}");

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
        // The snap's own shift is in the snapped grid's figures: what it moved went to
        // or came from a neighbour, measured against the input.
        let snapped: Vec<&GridRepair> = r
            .grids
            .iter()
            .filter(|g| {
                g.actions
                    .iter()
                    .any(|a| matches!(a, Action::Snapped { .. }))
            })
            .collect();
        assert!(!snapped.is_empty(), "{:?}", r.grids);
        for g in snapped {
            assert!(g.moved_m2 > 0.0, "{g:?}");
            assert!(!g.exchanged.is_empty(), "{g:?}");
        }
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

    #[test]
    fn two_threads_propose_what_one_does() {
        let (parent, mut cells) = parent_and_tiling(30);
        let shifted =
            |mp: &MultiPolygon<f64>, dx: f64| map_vertices(mp, |c| Coord { x: c.x + dx, ..c });
        // Digitising noise the snap takes, and a shift of 3 m it must not.
        cells[4] = shifted(&cells[4], 0.2 * M_LON);
        cells[17] = shifted(&cells[17], -3.0 * M_LON);
        for parent in [Some(&parent), None] {
            let one = repair_on(&cells, parent, &RepairOptions::default(), 1);
            let two = repair_on(&cells, parent, &RepairOptions::default(), 2);
            assert!(one.changed() > 0);
            assert_eq!(one.grids, two.grids);
            assert_eq!(one.gaps_left, two.gaps_left);
        }
        let (parent, clean) = parent_and_tiling(30);
        let two = repair_on(&clean, Some(&parent), &RepairOptions::default(), 2);
        assert_eq!(two.geometries(), clean, "a clean tiling stays as it is");
    }

    #[test]
    fn an_overlap_is_sure_on_the_plane_only_where_validation_reports_one() {
        let sure = |grids: &[MultiPolygon<f64>]| {
            let work: Vec<MultiPolygon<f64>> = grids.iter().map(tidy).collect();
            let scale = scale_of(grids, None).expect("grids");
            let (plane, grid_of) =
                plane_of(&work, None, &RepairOptions::default()).expect("a plane");
            Shares::of(&plane, &grid_of, grids.len(), scale).sure_overlap(grids)
        };
        let west = rect(118.0, 37.0, 118.01, 37.01);
        let meeting = rect(118.01, 37.0, 118.02, 37.01);
        assert!(!sure(&[west.clone(), meeting.clone()]));
        assert_eq!(problems(&[west.clone(), meeting], None), vec![]);
        // The same square twice, one of them drawn clockwise: validation cancels
        // the two rings, so the plane's overlap must not be taken for its verdict.
        let reversed_west = map_rings(&west, |ring| ring.iter().rev().copied().collect());
        let pair = [west.clone(), reversed_west.clone()];
        assert!(!sure(&pair) || !problems(&pair, None).is_empty());
        // A third grid drawn clockwise cancels a fourth: validation sees nothing, and
        // a repair on two threads must leave the group as one thread does.
        let mid_edge = map_rings(&west, |ring| {
            let mut r = ring.to_vec();
            r.insert(
                1,
                Coord {
                    x: 118.005,
                    y: 37.0,
                },
            );
            r
        });
        let mid_edge_cw = map_rings(&mid_edge, |ring| ring.iter().rev().copied().collect());
        let four = [west.clone(), reversed_west.clone(), mid_edge, mid_edge_cw];
        assert_eq!(problems(&four, None), vec![]);
        assert!(!sure(&four));
        let two = repair_on(&four, None, &RepairOptions::default(), 2);
        assert_eq!(two.changed(), 0);
        // Two edges 2·10⁻¹² degree apart astride half a unit of the plane's 10⁻⁹
        // degree: rounding puts them a unit apart, an overlap only of the plane's own.
        let astride = 118.01 + 0.5e-9;
        let pair = [
            rect(118.0, 37.0, astride, 37.01),
            rect(astride - 2e-12, 37.0, 118.02, 37.01),
        ];
        assert!(!sure(&pair) || !problems(&pair, None).is_empty());
        // 10 cm, and one ten-thousandth of a millimetre: both are real overlaps.
        for overlap_m in [0.1, 1e-7] {
            let east = rect(118.01 - overlap_m * M_LON, 37.0, 118.02, 37.01);
            let grids = [west.clone(), east];
            if sure(&grids) {
                assert_ne!(problems(&grids, None), vec![], "{overlap_m} m");
            } else {
                assert!(overlap_m < 1e-3, "a {overlap_m} m overlap is not missed");
            }
        }
    }
}
