//! Coverage validation: do these grids tile their parent exactly?
//!
//! ## Method
//! In a valid tiling every interior edge appears exactly twice, in opposite directions,
//! and the grids' outer edges are the parent's boundary. So:
//! 1. every edge of every grid, and every edge of the parent reversed, goes into a
//!    multiset of directed edges where opposite pairs cancel — O(V), and for a clean
//!    plan nothing remains;
//! 2. what remains is split at vertices lying exactly on other remaining edges
//!    (T-junctions) and cancelled again: what cancels now between two grids is a shared
//!    boundary that matches geometrically but not vertex-for-vertex (`edge_mismatch`,
//!    area 0). Grids meeting the parent's boundary where the parent has no vertex are
//!    accepted: the parent is usually drawn by another office, and the tiling is exact;
//! 3. the rest bounds the regions where the coverage count is wrong. As closed rings,
//!    the regions of negative winding are gaps (parent covered by no grid); pairs of
//!    remaining grids are intersected for overlaps, and remaining grids are clipped
//!    against the parent for spill. Only the grids that own a remaining edge take part,
//!    so the expensive polygon operations touch the defects, not the plan.
//!
//! Gaps and overlaps whose mean width (2·area/perimeter) is under
//! [`ValidateOptions::sliver_width_m`] are reported as `edge_mismatch` instead: they are
//! neighbours that should share an edge and do not.
//!
//! Without a parent, the union of the grids is the reference: its holes are gaps.

mod cells;
mod overlay;
mod plane;
pub mod repair;
pub mod validity;

use crate::domain::{Lang, Msg};
use crate::spatial::geom;
use crate::spatial::loops::{self, EdgeBag};
use crate::spatial::measure;
use crate::spatial::parallel;
use geo_types::{Coord, Geometry, LineString, MultiLineString, MultiPolygon, Polygon, Rect};
use rstar::{AABB, RTree, RTreeObject};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

pub use validity::InvalidReason;

/// Tolerances of [`validate`]; every one is in metres or square metres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ValidateOptions {
    /// Gaps, overlaps and spills narrower than this (mean width, metres) are reported as
    /// `edge_mismatch`. Default 1 m: below the width of a road kerb, above the
    /// digitising noise of cadastral data.
    pub sliver_width_m: f64,
    /// Grids smaller than this (m²) get a `small_grid` warning. Default 1 000 m².
    pub min_area_m2: f64,
    /// The grids must cover the parent (comprehensive layer): report gaps. Dedicated
    /// grids only must not overlap each other or leave the parent. Default true.
    pub require_cover: bool,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            sliver_width_m: 1.0,
            min_area_m2: 1_000.0,
            require_cover: true,
        }
    }
}

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The geometry itself is invalid (self-intersection, bad ring, hole outside shell…).
    InvalidGeometry,
    /// Two grids carry the same id.
    DuplicateId,
    /// Two grids have the same geometry.
    DuplicateGeometry,
    /// Two grids overlap.
    Overlap,
    /// Part of the parent is covered by no grid.
    Gap,
    /// Part of a grid lies outside its parent.
    OutsideParent,
    /// Neighbours whose shared boundary does not match vertex-for-vertex.
    EdgeMismatch,
    /// Warning: a grid consists of several disconnected parts.
    Disconnected,
    /// Warning: a grid is smaller than the minimum area.
    SmallGrid,
    /// A community under a plan's scope has no grids in the plan: activating it would
    /// leave the community without grids.
    Uncovered,
}

impl ProblemKind {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::InvalidGeometry => "invalid_geometry",
            ProblemKind::DuplicateId => "duplicate_id",
            ProblemKind::DuplicateGeometry => "duplicate_geometry",
            ProblemKind::Overlap => "overlap",
            ProblemKind::Gap => "gap",
            ProblemKind::OutsideParent => "outside_parent",
            ProblemKind::EdgeMismatch => "edge_mismatch",
            ProblemKind::Disconnected => "disconnected",
            ProblemKind::SmallGrid => "small_grid",
            ProblemKind::Uncovered => "uncovered",
        }
    }

    /// Errors block approval; warnings do not.
    pub fn severity(self) -> Severity {
        match self {
            ProblemKind::Disconnected | ProblemKind::SmallGrid => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// Whether a problem blocks approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Blocks submission and approval of a plan.
    Error,
    /// Shown to the planner; does not block.
    Warning,
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// Indices of the grids involved (into the validated slice), ascending.
    pub grids: Vec<u32>,
    /// Area in m² of the problem region, where it has one.
    pub area_m2: Option<f64>,
    /// Mean width in metres of gaps, overlaps and slivers.
    pub width_m: Option<f64>,
    /// A representative point (inside the region where there is one).
    pub location: Coord<f64>,
    /// The problem's geometry: the region, or the mismatched edges.
    pub geometry: Option<Geometry<f64>>,
    /// A human sentence, in English and Chinese.
    pub detail: Msg,
}

impl Problem {
    /// Error or warning.
    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }
}

/// Figures about the validated plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub grids: usize,
    pub vertices: usize,
    pub edges: usize,
    /// Directed edges that did not cancel against a neighbour or the parent.
    pub unmatched_edges: usize,
    pub grids_area_m2: f64,
    pub parent_area_m2: Option<f64>,
}

/// The result of [`validate`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub problems: Vec<Problem>,
    pub stats: Stats,
}

impl Report {
    /// No error-severity problem.
    pub fn is_valid(&self) -> bool {
        self.problems
            .iter()
            .all(|p| p.severity() != Severity::Error)
    }

    /// How many problems of each kind.
    pub fn counts(&self) -> std::collections::BTreeMap<ProblemKind, usize> {
        let mut m = std::collections::BTreeMap::new();
        for p in &self.problems {
            *m.entry(p.kind).or_insert(0) += 1;
        }
        m
    }
}

const PARENT: u32 = u32::MAX;

/// Validates that `grids` tile `parent` (or, without a parent, that they do not
/// overlap and leave no holes). `ids[i]` names grid `i` for the duplicate-id check.
///
/// ```
/// use geo_types::{polygon, MultiPolygon};
/// use wangge::spatial::coverage::{validate, ValidateOptions, ProblemKind};
/// let west = MultiPolygon(vec![polygon![(x: 118.0, y: 37.0), (x: 118.01, y: 37.0), (x: 118.01, y: 37.01), (x: 118.0, y: 37.01)]]);
/// // The east grid starts 20 m too far east: a gap.
/// let east = MultiPolygon(vec![polygon![(x: 118.0102, y: 37.0), (x: 118.02, y: 37.0), (x: 118.02, y: 37.01), (x: 118.0102, y: 37.01)]]);
/// let parent = MultiPolygon(vec![polygon![(x: 118.0, y: 37.0), (x: 118.02, y: 37.0), (x: 118.02, y: 37.01), (x: 118.0, y: 37.01)]]);
/// let report = validate(&[&west, &east], &["W", "E"], Some(&parent), &ValidateOptions::default());
/// assert_eq!(report.problems.len(), 1);
/// assert_eq!(report.problems[0].kind, ProblemKind::Gap);
/// assert_eq!(report.problems[0].grids, vec![0, 1]);
/// ```
pub fn validate(
    grids: &[&MultiPolygon<f64>],
    ids: &[&str],
    parent: Option<&MultiPolygon<f64>>,
    options: &ValidateOptions,
) -> Report {
    validate_on(
        grids,
        ids,
        parent,
        options,
        parallel::build_threads(grids.len()),
    )
}

/// [`validate`] on at most `threads` threads (callers that already keep every core
/// busy pass 1). The report is the same for any number.
pub fn validate_on(
    grids: &[&MultiPolygon<f64>],
    ids: &[&str],
    parent: Option<&MultiPolygon<f64>>,
    options: &ValidateOptions,
    threads: usize,
) -> Report {
    check(grids, ids, parent, options, Until::End, threads)
}

/// Whether [`validate`] would find an error. It stops at the end of the first stage
/// that finds one, so a group with broken edges is told apart without computing
/// every overlap's polygon. It runs on one thread: the repair calls it beside other
/// work.
pub(crate) fn has_errors(
    grids: &[&MultiPolygon<f64>],
    parent: Option<&MultiPolygon<f64>>,
    options: &ValidateOptions,
) -> bool {
    let ids: Vec<String> = (0..grids.len()).map(|i| i.to_string()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    !check(grids, &ids, parent, options, Until::FirstError, 1).is_valid()
}

/// How far [`check`] goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    End,
    FirstError,
}

fn check(
    grids: &[&MultiPolygon<f64>],
    ids: &[&str],
    parent: Option<&MultiPolygon<f64>>,
    options: &ValidateOptions,
    until: Until,
    threads: usize,
) -> Report {
    let done = |problems: &[Problem]| {
        until == Until::FirstError && problems.iter().any(|p| p.severity() == Severity::Error)
    };
    // The region loops check only what they just added.
    let done_last = |problems: &[Problem]| {
        until == Until::FirstError
            && problems
                .last()
                .is_some_and(|p| p.severity() == Severity::Error)
    };
    let mut problems = Vec::new();
    let mut stats = Stats {
        grids: grids.len(),
        ..Stats::default()
    };

    // Per grid: validity, size, parts. The facts are gathered on every core; the
    // problems are made from them in grid order, so the report does not depend on the
    // number of threads.
    let facts = grid_facts(grids, threads);
    for (i, (g, f)) in grids.iter().zip(&facts).enumerate() {
        let i = i as u32;
        stats.vertices += f.vertices;
        if let Some((reason, at)) = f.invalid {
            problems.push(Problem {
                kind: ProblemKind::InvalidGeometry,
                grids: vec![i],
                area_m2: None,
                width_m: None,
                location: at,
                geometry: Some(Geometry::Point(geo_types::Point(at))),
                detail: Msg::new(
                    format!("{}: {}", name(ids, i), reason.describe()),
                    format!("{}：{}", name_zh(ids, i), reason.describe_zh()),
                ),
            });
        }
        let area = f.area_m2;
        stats.grids_area_m2 += area;
        if g.0.len() > 1 {
            problems.push(Problem {
                kind: ProblemKind::Disconnected,
                grids: vec![i],
                area_m2: Some(area),
                width_m: None,
                location: representative(g),
                geometry: None,
                detail: Msg::new(
                    format!("{} consists of {} separate parts", name(ids, i), g.0.len()),
                    format!("{} 由 {} 个互不相连的部分组成", name_zh(ids, i), g.0.len()),
                ),
            });
        }
        if area < options.min_area_m2 {
            problems.push(Problem {
                kind: ProblemKind::SmallGrid,
                grids: vec![i],
                area_m2: Some(area),
                width_m: None,
                location: representative(g),
                geometry: None,
                detail: Msg::new(
                    format!(
                        "{} covers {:.0} m², less than the minimum {:.0} m²",
                        name(ids, i),
                        area,
                        options.min_area_m2
                    ),
                    format!(
                        "{} 面积 {:.0} m²，小于下限 {:.0} m²",
                        name_zh(ids, i),
                        area,
                        options.min_area_m2
                    ),
                ),
            });
        }
    }
    if let Some(p) = parent {
        stats.parent_area_m2 = Some(measure::local_area_m2(p));
        if let Some((reason, at)) = validity::check(p) {
            problems.push(Problem {
                kind: ProblemKind::InvalidGeometry,
                grids: vec![],
                area_m2: None,
                width_m: None,
                location: at,
                geometry: Some(Geometry::Point(geo_types::Point(at))),
                detail: Msg::new(
                    format!("the parent boundary is invalid: {}", reason.describe()),
                    format!("上级边界无效：{}", reason.describe_zh()),
                ),
            });
        }
    }

    duplicate_ids(ids, grids, &mut problems);
    let duplicates = duplicate_geometries(grids, &facts, ids, &mut problems);
    if done(&problems) {
        return finish(problems, stats);
    }

    // 1. Cancel edges.
    // Each core cancels the edges of a run of grids in spatial order: what is left of
    // a run is the boundary of the region it covers, and those remainders are
    // cancelled together.
    let order = loops::spatial_order_of(&facts.iter().map(|f| f.bounds).collect::<Vec<_>>());
    let mut bag = EdgeBag::default();
    for run in parallel::in_parallel(order.len(), threads, |range| {
        let mut bag = EdgeBag::default();
        for &i in &order[range] {
            bag.add_rings(grids[i]);
        }
        bag
    }) {
        bag.absorb(run);
    }
    if let (Some(p), true) = (parent, options.require_cover) {
        bag.add_rings(&reversed(p));
    }
    // A closed ring has as many edges as vertices.
    stats.edges = stats.vertices;
    let remainder = bag.remainder();
    stats.unmatched_edges = remainder.len();
    if remainder.is_empty() {
        return finish(problems, stats);
    }

    // Who owns each remaining edge (a grid, or the parent).
    let owners = owners_of(&remainder, grids, parent.filter(|_| options.require_cover));

    // 2. T-junctions.
    let (remainder, mismatches) = resolve_t_junctions(&remainder, &owners);
    for ((a, b), (edges, at)) in mismatches {
        let involved = vec![a, b];
        problems.push(Problem {
            kind: ProblemKind::EdgeMismatch,
            grids: involved,
            area_m2: Some(0.0),
            width_m: Some(0.0),
            location: at,
            geometry: Some(Geometry::MultiLineString(MultiLineString(
                edges
                    .into_iter()
                    .map(|(p, q)| LineString(vec![p, q]))
                    .collect(),
            ))),
            detail: Msg::new(
                format!(
                    "{} and {} share a boundary that does not match vertex-for-vertex",
                    name(ids, a),
                    name(ids, b)
                ),
                format!(
                    "{} 与 {} 的共用边界顶点不一致",
                    name_zh(ids, a),
                    name_zh(ids, b)
                ),
            ),
        });
    }
    if remainder.is_empty() || done(&problems) {
        return finish(problems, stats);
    }

    // 3. Regions.
    let noise_m = geom::merged_bounds(
        facts
            .iter()
            .map(|f| f.ring_bounds)
            .chain(parent.map(geom::ring_bounds)),
    )
    .map_or(0.0, overlay::noise_in_m);
    let noise_of = |shapes: &[&MultiPolygon<f64>]| overlay::noise_m(shapes.iter().copied());
    let involved: Vec<u32> = {
        let mut s: Vec<u32> = remainder
            .iter()
            .flat_map(|(_, o)| o.iter().copied())
            .filter(|&o| o != PARENT)
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let rings = loops::assemble_rings(&remainder.iter().map(|(e, _)| *e).collect::<Vec<_>>());
    let gaps = if !options.require_cover {
        MultiPolygon(vec![])
    } else if parent.is_some() {
        overlay::winding_regions(&rings, false)
    } else {
        holes_as_polygons(&overlay::winding_regions(&rings, true))
    };
    // Every grid may be the partner of an overlap: a grid whose edges all cancel
    // against its neighbours can still lie under another grid's remaining edges.
    let index = GridIndex::new(facts.iter().map(|f| f.bounds));
    for gap in gaps.0 {
        let mp = MultiPolygon(vec![gap]);
        let neighbours = index.touching(&mp, grids);
        push_region(
            &mut problems,
            ProblemKind::Gap,
            mp,
            neighbours,
            ids,
            Widths {
                sliver_m: options.sliver_width_m,
                noise_m,
            },
            |ids, g| match g.len() {
                0 => Msg::new("area covered by no grid", "没有网格覆盖的区域"),
                _ => Msg::new(
                    format!("gap between {}", names(ids, g)),
                    format!("{} 之间的缝隙", names_zh(ids, g)),
                ),
            },
        );
        if done_last(&problems) {
            return finish(problems, stats);
        }
    }

    for (i, j) in index.pairs_with(&involved, grids) {
        if duplicates.contains(&(i, j)) {
            continue;
        }
        let common = overlay::intersection(grids[i as usize], grids[j as usize]);
        push_region(
            &mut problems,
            ProblemKind::Overlap,
            common,
            vec![i, j],
            ids,
            Widths {
                sliver_m: options.sliver_width_m,
                noise_m: noise_of(&[grids[i as usize], grids[j as usize]]),
            },
            |ids, g| {
                Msg::new(
                    format!("{} overlap", names(ids, g)),
                    format!("{} 相互重叠", names_zh(ids, g)),
                )
            },
        );
        if done_last(&problems) {
            return finish(problems, stats);
        }
    }

    if let Some(p) = parent {
        for &i in &involved {
            let spill = overlay::difference(grids[i as usize], p);
            push_region(
                &mut problems,
                ProblemKind::OutsideParent,
                spill,
                vec![i],
                ids,
                Widths {
                    sliver_m: options.sliver_width_m,
                    noise_m: noise_of(&[grids[i as usize], p]),
                },
                |ids, g| {
                    Msg::new(
                        format!("{} reaches outside its parent", names(ids, g)),
                        format!("{} 超出了上级边界", names_zh(ids, g)),
                    )
                },
            );
        }
    }
    finish(problems, stats)
}

fn finish(mut problems: Vec<Problem>, stats: Stats) -> Report {
    problems.sort_by(|a, b| {
        (a.severity(), a.kind, &a.grids)
            .cmp(&(b.severity(), b.kind, &b.grids))
            .then(a.location.x.total_cmp(&b.location.x))
            .then(a.location.y.total_cmp(&b.location.y))
    });
    Report { problems, stats }
}

/// How a problem names grid `i` (or the parent) in `lang`.
fn name_in(lang: Lang, ids: &[&str], i: u32) -> String {
    match (lang, ids.get(i as usize)) {
        (Lang::En, _) if i == PARENT => "the parent boundary".into(),
        (Lang::Zh, _) if i == PARENT => "上级边界".into(),
        (Lang::En, Some(id)) => format!("grid {id}"),
        (Lang::Zh, Some(id)) => format!("网格 {id}"),
        (Lang::En, None) => format!("grid #{i}"),
        (Lang::Zh, None) => format!("第 {i} 个网格"),
    }
}

fn names_in(lang: Lang, ids: &[&str], grids: &[u32]) -> String {
    let v: Vec<String> = grids.iter().map(|&g| name_in(lang, ids, g)).collect();
    v.join(match lang {
        Lang::En => " and ",
        Lang::Zh => " 与 ",
    })
}

fn name(ids: &[&str], i: u32) -> String {
    name_in(Lang::En, ids, i)
}

fn names(ids: &[&str], grids: &[u32]) -> String {
    names_in(Lang::En, ids, grids)
}

fn name_zh(ids: &[&str], i: u32) -> String {
    name_in(Lang::Zh, ids, i)
}

fn names_zh(ids: &[&str], grids: &[u32]) -> String {
    names_in(Lang::Zh, ids, grids)
}

/// A point inside `mp` (on it when it has no interior): where problems are pinned.
pub fn representative(mp: &MultiPolygon<f64>) -> Coord<f64> {
    use geo::InteriorPoint;
    mp.interior_point()
        .map(|p| p.0)
        .or_else(|| mp.0.first().and_then(|p| p.exterior().0.first().copied()))
        .unwrap_or(Coord { x: 0.0, y: 0.0 })
}

fn ring_start(r: &[Coord<f64>]) -> usize {
    let n = r.len().saturating_sub(1);
    (0..n).min_by_key(|&i| loops::key(r[i])).unwrap_or(0)
}

/// A hash of a shape that ignores where each ring starts and the order of rings: equal
/// shapes hash equal; confirm a match with [`same_shape`].
pub fn shape_fingerprint(mp: &MultiPolygon<f64>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut acc = 0u64;
    for r in geom::rings(mp) {
        let n = r.0.len().saturating_sub(1);
        let start = ring_start(&r.0);
        let mut h = rustc_hash::FxHasher::default();
        for i in 0..n {
            loops::key(r.0[(start + i) % n]).hash(&mut h);
        }
        // Combined order-independently: rings may come in any order.
        acc = acc.wrapping_add(h.finish().wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
    acc
}

/// Whether two shapes have exactly the same rings (any start vertex, any ring order).
pub fn same_shape(a: &MultiPolygon<f64>, b: &MultiPolygon<f64>) -> bool {
    let canon = |mp: &MultiPolygon<f64>| -> Vec<Vec<(u64, u64)>> {
        let mut rings: Vec<Vec<(u64, u64)>> = geom::rings(mp)
            .map(|r| {
                let n = r.0.len().saturating_sub(1);
                let start = ring_start(&r.0);
                (0..n).map(|i| loops::key(r.0[(start + i) % n])).collect()
            })
            .collect();
        rings.sort();
        rings
    };
    canon(a) == canon(b)
}

/// Area in m² that two shapes share.
pub fn overlap_area_m2(a: &MultiPolygon<f64>, b: &MultiPolygon<f64>) -> f64 {
    measure::local_area_m2(&overlay::intersection(a, b))
}

/// How wide a region must be to be a region problem rather than a sliver, and to be
/// anything at all rather than the polygon operations' rounding.
#[derive(Clone, Copy)]
struct Widths {
    sliver_m: f64,
    noise_m: f64,
}

/// Reports a region problem, or an `edge_mismatch` when the region is a sliver.
fn push_region(
    problems: &mut Vec<Problem>,
    kind: ProblemKind,
    region: MultiPolygon<f64>,
    grids: Vec<u32>,
    ids: &[&str],
    widths: Widths,
    describe: impl Fn(&[&str], &[u32]) -> Msg,
) {
    // Pieces no wider than the polygon operations' rounding are made by it: where a
    // grid follows its parent or neighbour vertex for vertex, the edges cancel, and
    // only the operations see a difference.
    let region = MultiPolygon(
        region
            .0
            .into_iter()
            .filter(|p| geom::ring_twice_area(&p.exterior().0) != 0.0)
            .filter(|p| {
                let piece = MultiPolygon(vec![p.clone()]);
                let area = measure::local_area_m2(&piece);
                measure::mean_width_m(area, measure::local_perimeter_m(&piece)) > widths.noise_m
            })
            .collect(),
    );
    if region.0.is_empty() {
        return;
    }
    let area = measure::local_area_m2(&region);
    if area <= 0.0 {
        return;
    }
    let width = measure::mean_width_m(area, measure::local_perimeter_m(&region));
    let location = representative(&region);
    let (kind, detail) = if width < widths.sliver_m {
        (
            ProblemKind::EdgeMismatch,
            Msg::new(
                format!(
                    "{}: a sliver {:.2} m wide ({} of {:.1} m²) where boundaries should coincide",
                    names(ids, &grids),
                    width,
                    kind.as_str(),
                    area
                ),
                format!(
                    "{}：本应重合的边界之间有 {:.2} 米宽的细条（{:.1} m² 的{}）",
                    names_zh(ids, &grids),
                    width,
                    area,
                    match kind {
                        ProblemKind::Gap => "缝隙",
                        ProblemKind::Overlap => "重叠",
                        _ => "越界",
                    }
                ),
            ),
        )
    } else {
        let words = describe(ids, &grids);
        (
            kind,
            Msg::new(
                format!("{} ({area:.1} m²)", words.en()),
                format!("{}（{area:.1} m²）", words.zh()),
            ),
        )
    };
    let geometry = if region.0.len() == 1 {
        Geometry::Polygon(region.0[0].clone())
    } else {
        Geometry::MultiPolygon(region)
    };
    problems.push(Problem {
        kind,
        grids,
        area_m2: Some(area),
        width_m: Some(width),
        location,
        geometry: Some(geometry),
        detail,
    });
}

fn reversed(mp: &MultiPolygon<f64>) -> MultiPolygon<f64> {
    MultiPolygon(
        mp.0.iter()
            .map(|p| {
                let rev = |r: &LineString<f64>| {
                    let mut v = r.0.clone();
                    v.reverse();
                    LineString(v)
                };
                Polygon::new(rev(p.exterior()), p.interiors().iter().map(rev).collect())
            })
            .collect(),
    )
}

fn holes_as_polygons(mp: &MultiPolygon<f64>) -> MultiPolygon<f64> {
    let mut out = MultiPolygon(
        mp.0.iter()
            .flat_map(|p| p.interiors().iter())
            .map(|h| Polygon::new(h.clone(), vec![]))
            .collect(),
    );
    geom::normalise_orientation(&mut out);
    out
}

use crate::spatial::loops::EdgeKey;

fn undirected(a: Coord<f64>, b: Coord<f64>) -> EdgeKey {
    let (ka, kb) = (loops::key(a), loops::key(b));
    if ka < kb { (ka, kb) } else { (kb, ka) }
}

/// For each remaining edge, the grids (or `PARENT`) that have it in that direction.
fn owners_of(
    remainder: &[(Coord<f64>, Coord<f64>)],
    grids: &[&MultiPolygon<f64>],
    parent: Option<&MultiPolygon<f64>>,
) -> FxHashMap<(EdgeKey, bool), Vec<u32>> {
    let wanted: FxHashSet<EdgeKey> = remainder.iter().map(|e| undirected(e.0, e.1)).collect();
    let mut owners: FxHashMap<(EdgeKey, bool), Vec<u32>> = FxHashMap::default();
    let mut visit = |mp: &MultiPolygon<f64>, who: u32| {
        for r in geom::rings(mp) {
            for w in r.0.windows(2) {
                let k = undirected(w[0], w[1]);
                if wanted.contains(&k) {
                    let forward = loops::key(w[0]) < loops::key(w[1]);
                    let v = owners.entry((k, forward)).or_default();
                    if v.last() != Some(&who) {
                        v.push(who);
                    }
                }
            }
        }
    };
    for (i, g) in grids.iter().enumerate() {
        visit(g, i as u32);
    }
    if let Some(p) = parent {
        visit(&reversed(p), PARENT);
    }
    owners
}

type Edge = (Coord<f64>, Coord<f64>);
type Mismatches = std::collections::BTreeMap<(u32, u32), (Vec<Edge>, Coord<f64>)>;

/// Splits remaining edges at remaining vertices that lie on them (to within
/// [`geom::ON_LINE_DEG`]) and cancels again. Returns what still remains (with owners)
/// and, per pair of owners, the edges whose only fault was a missing vertex.
fn resolve_t_junctions(
    remainder: &[Edge],
    owners: &FxHashMap<(EdgeKey, bool), Vec<u32>>,
) -> (Vec<(Edge, Vec<u32>)>, Mismatches) {
    let owner_of = |e: &Edge| -> Vec<u32> {
        let k = undirected(e.0, e.1);
        let forward = loops::key(e.0) < loops::key(e.1);
        owners.get(&(k, forward)).cloned().unwrap_or_default()
    };
    let vertices: Vec<[f64; 2]> = {
        let mut v: Vec<[f64; 2]> = remainder
            .iter()
            .flat_map(|e| [[e.0.x, e.0.y], [e.1.x, e.1.y]])
            .collect();
        v.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
        v.dedup();
        v
    };
    let tree = RTree::bulk_load(vertices);
    // Split every edge at the vertices strictly inside it.
    let mut pieces: Vec<(Edge, usize)> = Vec::new();
    for (idx, &(a, b)) in remainder.iter().enumerate() {
        let env = AABB::from_corners([a.x.min(b.x), a.y.min(b.y)], [a.x.max(b.x), a.y.max(b.y)]);
        let mut inner: Vec<(f64, Coord<f64>)> = tree
            .locate_in_envelope(&env)
            .map(|p| Coord { x: p[0], y: p[1] })
            .filter(|&p| p != a && p != b && geom::nearly_collinear(a, b, p))
            .map(|p| {
                let t = if (b.x - a.x).abs() >= (b.y - a.y).abs() {
                    (p.x - a.x) / (b.x - a.x)
                } else {
                    (p.y - a.y) / (b.y - a.y)
                };
                (t, p)
            })
            .collect();
        if inner.is_empty() {
            pieces.push(((a, b), idx));
            continue;
        }
        inner.sort_by(|x, y| x.0.total_cmp(&y.0));
        let mut prev = a;
        for (_, p) in inner {
            pieces.push(((prev, p), idx));
            prev = p;
        }
        pieces.push(((prev, b), idx));
    }
    let mut bag = EdgeBag::default();
    for (e, _) in &pieces {
        bag.add(e.0, e.1);
    }
    let left: FxHashSet<(EdgeKey, bool)> = bag
        .remainder()
        .iter()
        .map(|e| (undirected(e.0, e.1), loops::key(e.0) < loops::key(e.1)))
        .collect();
    let survives =
        |e: &Edge| left.contains(&(undirected(e.0, e.1), loops::key(e.0) < loops::key(e.1)));
    // Edges that were split, and whose pieces all cancelled, are vertex mismatches;
    // find their partners through the cancelled pieces.
    let mut piece_users: FxHashMap<EdgeKey, Vec<usize>> = FxHashMap::default();
    for (e, idx) in &pieces {
        piece_users
            .entry(undirected(e.0, e.1))
            .or_default()
            .push(*idx);
    }
    let mut remaining_edges: Vec<(Edge, Vec<u32>)> = Vec::new();
    let mut mismatches: Mismatches = Default::default();
    // Which original edges cancelled whole (pieces are pushed in order of idx).
    let mut cancelled_whole = vec![true; remainder.len()];
    for (p, idx) in &pieces {
        if survives(p) {
            cancelled_whole[*idx] = false;
        }
    }
    // Group pieces per original edge.
    let mut start = 0;
    while start < pieces.len() {
        let idx = pieces[start].1;
        let mut end = start;
        while end < pieces.len() && pieces[end].1 == idx {
            end += 1;
        }
        let e = remainder[idx];
        let me = owner_of(&e);
        let all_cancelled = pieces[start..end].iter().all(|(p, _)| !survives(p));
        if all_cancelled {
            // Partners: other original edges that shared a piece with this one. Only a
            // pure vertex mismatch counts: every partner must have cancelled whole too,
            // else the pieces are part of a gap or overlap outline reported as such.
            let mut partners: Vec<u32> = Vec::new();
            let mut pure = true;
            for (p, _) in &pieces[start..end] {
                for &other in piece_users.get(&undirected(p.0, p.1)).into_iter().flatten() {
                    if other != idx {
                        pure &= cancelled_whole[other];
                        partners.extend(owner_of(&remainder[other]));
                    }
                }
            }
            partners.sort_unstable();
            partners.dedup();
            // Grid edges that meet the parent boundary without a parent vertex there
            // tile it exactly; only grid-grid vertex mismatches are reported.
            for &a in me.iter().filter(|&&a| a != PARENT) {
                for &b in partners.iter().filter(|&&b| b != PARENT && b != a) {
                    if !pure {
                        continue;
                    }
                    let key = (a.min(b), a.max(b));
                    let at = if end - start > 1 {
                        pieces[start].0.1
                    } else {
                        e.0
                    };
                    let entry = mismatches.entry(key).or_insert_with(|| (Vec::new(), at));
                    entry.0.push(e);
                }
            }
        } else {
            for (p, _) in &pieces[start..end] {
                if survives(p) {
                    remaining_edges.push((*p, me.clone()));
                }
            }
        }
        start = end;
    }
    (remaining_edges, mismatches)
}

/// What validation needs of one grid on its own, gathered in one pass over it.
struct GridFacts {
    invalid: Option<(InvalidReason, Coord<f64>)>,
    area_m2: f64,
    vertices: usize,
    fingerprint: u64,
    /// Bounds of the exteriors (the grid's extent).
    bounds: Option<Rect<f64>>,
    /// Bounds of every ring, holes included (an invalid hole may stick out).
    ring_bounds: Option<Rect<f64>>,
}

/// [`GridFacts`] of every grid, in grid order, on `threads` threads.
fn grid_facts(grids: &[&MultiPolygon<f64>], threads: usize) -> Vec<GridFacts> {
    parallel::in_parallel(grids.len(), threads, |range| {
        grids[range]
            .iter()
            .map(|g| {
                let bounds = geom::bounds(g);
                // The exteriors' bounds widened by the holes', not every ring again.
                let holes = geom::bounds_of(
                    g.0.iter()
                        .flat_map(|p| p.interiors())
                        .flat_map(|r| r.0.iter().copied()),
                );
                GridFacts {
                    invalid: validity::check(g),
                    area_m2: measure::local_area_m2(g),
                    vertices: geom::vertex_count(g),
                    fingerprint: shape_fingerprint(g),
                    bounds,
                    ring_bounds: geom::merged_bounds([bounds, holes]),
                }
            })
            .collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect()
}

/// Pairs of identical grids (same rings, any starting vertex), reported once.
fn duplicate_geometries(
    grids: &[&MultiPolygon<f64>],
    facts: &[GridFacts],
    ids: &[&str],
    problems: &mut Vec<Problem>,
) -> FxHashSet<(u32, u32)> {
    let mut seen: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
    let mut pairs = FxHashSet::default();
    for (i, (g, f)) in grids.iter().zip(facts).enumerate() {
        let i = i as u32;
        let bucket = seen.entry(f.fingerprint).or_default();
        if let Some(&first) = bucket.iter().find(|&&j| same_shape(grids[j as usize], g)) {
            pairs.insert((first, i));
            problems.push(Problem {
                kind: ProblemKind::DuplicateGeometry,
                grids: vec![first, i],
                area_m2: Some(measure::local_area_m2(g)),
                width_m: None,
                location: representative(g),
                geometry: None,
                detail: Msg::new(
                    format!(
                        "{} has the same geometry as {}",
                        name(ids, i),
                        name(ids, first)
                    ),
                    format!(
                        "{} 与 {} 的图形完全相同",
                        name_zh(ids, i),
                        name_zh(ids, first)
                    ),
                ),
            });
        } else {
            bucket.push(i);
        }
    }
    pairs
}

fn duplicate_ids(ids: &[&str], grids: &[&MultiPolygon<f64>], problems: &mut Vec<Problem>) {
    let mut by_id: FxHashMap<&str, Vec<u32>> = FxHashMap::default();
    for (i, id) in ids.iter().enumerate() {
        by_id.entry(id).or_default().push(i as u32);
    }
    let mut dups: Vec<(&str, Vec<u32>)> = by_id.into_iter().filter(|(_, v)| v.len() > 1).collect();
    dups.sort();
    for (id, v) in dups {
        let at = grids
            .get(v[0] as usize)
            .map(|g| representative(g))
            .unwrap_or(Coord { x: 0.0, y: 0.0 });
        problems.push(Problem {
            kind: ProblemKind::DuplicateId,
            detail: Msg::new(
                format!("{} grids share the id {id:?}", v.len()),
                format!("{} 个网格使用同一编码 {id:?}", v.len()),
            ),
            grids: v,
            area_m2: None,
            width_m: None,
            location: at,
            geometry: None,
        });
    }
}

struct Boxed {
    idx: u32,
    env: AABB<[f64; 2]>,
}

impl RTreeObject for Boxed {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        self.env
    }
}

fn aabb(r: Rect<f64>) -> AABB<[f64; 2]> {
    AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y])
}

/// Bounding boxes of the grids that own a remaining edge.
struct GridIndex {
    tree: RTree<Boxed>,
}

impl GridIndex {
    /// The index of grids whose bounds (in grid order) are `bounds`.
    fn new(bounds: impl Iterator<Item = Option<Rect<f64>>>) -> Self {
        let items = bounds
            .enumerate()
            .filter_map(|(i, b)| {
                b.map(|r| Boxed {
                    idx: i as u32,
                    env: aabb(r),
                })
            })
            .collect();
        GridIndex {
            tree: RTree::bulk_load(items),
        }
    }

    /// Pairs `(i, j)`, `i < j`, of grids with intersecting boxes where at least one
    /// of the two is in `involved`.
    fn pairs_with(&self, involved: &[u32], grids: &[&MultiPolygon<f64>]) -> Vec<(u32, u32)> {
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        for &i in involved {
            let Some(b) = geom::bounds(grids[i as usize]) else {
                continue;
            };
            for c in self.tree.locate_in_envelope_intersecting(&aabb(b)) {
                if c.idx != i {
                    pairs.push((i.min(c.idx), i.max(c.idx)));
                }
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        pairs
    }

    /// Grids whose boundary comes within a centimetre of the region's boundary.
    fn touching(&self, region: &MultiPolygon<f64>, grids: &[&MultiPolygon<f64>]) -> Vec<u32> {
        let Some(b) = geom::bounds(region) else {
            return vec![];
        };
        let pad = 1e-7;
        let env = AABB::from_corners(
            [b.min().x - pad, b.min().y - pad],
            [b.max().x + pad, b.max().y + pad],
        );
        let scale = measure::LocalScale::at(b.center().y);
        let vertices: Vec<Coord<f64>> = geom::rings(region)
            .flat_map(|r| r.0.iter().copied())
            .collect();
        let mut out: Vec<u32> = self
            .tree
            .locate_in_envelope_intersecting(&env)
            .filter(|c| {
                let edges: Vec<(Coord<f64>, Coord<f64>)> = geom::rings(grids[c.idx as usize])
                    .flat_map(|r| r.0.windows(2).map(|w| (w[0], w[1])))
                    .collect();
                vertices.iter().any(|&v| {
                    edges
                        .iter()
                        .any(|&(a, b)| scale.segment_distance2(v, a, b) < 0.01 * 0.01)
                })
            })
            .map(|c| c.idx)
            .collect();
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::synth::{SynthOptions, tile};
    use geo_types::polygon;

    #[test]
    fn a_plan_validated_on_several_threads_gets_the_report_of_one() {
        let parent = MultiPolygon(vec![
            polygon![(x: 118.0, y: 37.0), (x: 118.2, y: 37.0), (x: 118.2, y: 37.15), (x: 118.0, y: 37.15)],
        ]);
        let options = SynthOptions {
            densify: 3,
            seed: 11,
            ..Default::default()
        };
        let mut cells = tile(&parent, 400, &options).unwrap().cells;
        // A grid pushed into its neighbours (overlap and gap), a duplicate, a bow tie,
        // and one drawn the other way round.
        cells[7].0[0].exterior_mut(|r| {
            for c in r.0.iter_mut().skip(1).take(2) {
                c.x += 0.0007;
            }
        });
        cells[40] = cells[41].clone();
        cells[90] = MultiPolygon(vec![
            polygon![(x: 118.1, y: 37.1), (x: 118.101, y: 37.101), (x: 118.101, y: 37.1), (x: 118.1, y: 37.101)],
        ]);
        cells[200].0[0].exterior_mut(|r| r.0.reverse());
        let refs: Vec<&MultiPolygon<f64>> = cells.iter().collect();
        let ids: Vec<String> = (0..cells.len()).map(|i| format!("g{}", i % 390)).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let one = validate_on(&refs, &ids, Some(&parent), &ValidateOptions::default(), 1);
        for kind in [
            ProblemKind::Overlap,
            ProblemKind::Gap,
            ProblemKind::DuplicateGeometry,
            ProblemKind::DuplicateId,
            ProblemKind::InvalidGeometry,
        ] {
            assert!(
                one.counts().contains_key(&kind),
                "{kind:?}: {:?}",
                one.counts()
            );
        }
        for threads in [2, 3, 8] {
            let many = validate_on(
                &refs,
                &ids,
                Some(&parent),
                &ValidateOptions::default(),
                threads,
            );
            assert_eq!(many.problems, one.problems, "{threads} threads");
            assert_eq!(many.stats, one.stats, "{threads} threads");
        }
    }
}
