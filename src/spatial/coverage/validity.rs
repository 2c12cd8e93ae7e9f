//! Validity of one grid's geometry (OGC simple-features rules, as GEOS applies them):
//! rings must be closed with at least four positions, must not cross or touch
//! themselves, rings of one polygon may touch at a point but never cross, holes lie
//! inside their shell, and the parts of a multipolygon do not overlap.
//!
//! A sweep over the edges sorted by their lowest y tests only edges whose bounding
//! boxes overlap, so a check costs O(n log n) for ordinary grids.

use crate::spatial::geom;
use geo_types::{Coord, MultiPolygon};

/// Why a geometry is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidReason {
    /// A ring with fewer than four positions, or not closed.
    BadRing,
    /// A ring crosses or touches itself.
    RingSelfIntersection,
    /// Two rings of one polygon cross or share a stretch of boundary.
    RingsCross,
    /// A hole lies (partly) outside its shell.
    HoleOutsideShell,
    /// Two parts of a multipolygon overlap.
    PartsOverlap,
}

impl InvalidReason {
    /// A short human description.
    pub fn describe(self) -> &'static str {
        match self {
            InvalidReason::BadRing => "ring not closed or with fewer than 4 positions",
            InvalidReason::RingSelfIntersection => "ring self-intersection",
            InvalidReason::RingsCross => "rings of one polygon cross",
            InvalidReason::HoleOutsideShell => "hole outside its shell",
            InvalidReason::PartsOverlap => "parts of the multipolygon overlap",
        }
    }

    /// [`describe`](Self::describe) in Chinese.
    pub fn describe_zh(self) -> &'static str {
        match self {
            InvalidReason::BadRing => "环未闭合或少于 4 个坐标",
            InvalidReason::RingSelfIntersection => "环自相交",
            InvalidReason::RingsCross => "同一面的环相互交叉",
            InvalidReason::HoleOutsideShell => "洞在外环之外",
            InvalidReason::PartsOverlap => "多面的各部分相互重叠",
        }
    }
}

struct Edge {
    a: Coord<f64>,
    b: Coord<f64>,
    ring: u32,
    part: u32,
    /// Position within its ring, and the ring's number of edges.
    pos: u32,
    ring_len: u32,
    min_y: f64,
    max_y: f64,
}

/// The first problem found in `mp`, with a location, or `None` when valid.
pub fn check(mp: &MultiPolygon<f64>) -> Option<(InvalidReason, Coord<f64>)> {
    let mut edges = Vec::new();
    let mut ring_id = 0u32;
    for (part, poly) in mp.0.iter().enumerate() {
        for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
            let c = &ring.0;
            if c.len() < 4 || c.first() != c.last() {
                return Some((
                    InvalidReason::BadRing,
                    c.first().copied().unwrap_or(Coord { x: 0.0, y: 0.0 }),
                ));
            }
            // Repeated consecutive positions are allowed (GEOS does too): skip them.
            let first_edge = edges.len();
            for w in c.windows(2).filter(|w| w[0] != w[1]) {
                edges.push(Edge {
                    a: w[0],
                    b: w[1],
                    ring: ring_id,
                    part: part as u32,
                    pos: (edges.len() - first_edge) as u32,
                    ring_len: 0,
                    min_y: w[0].y.min(w[1].y),
                    max_y: w[0].y.max(w[1].y),
                });
            }
            let n = (edges.len() - first_edge) as u32;
            if n < 3 {
                return Some((InvalidReason::BadRing, c[0]));
            }
            for e in &mut edges[first_edge..] {
                e.ring_len = n;
            }
            ring_id += 1;
        }
    }
    if let Some(found) = sweep(&mut edges) {
        return Some(found);
    }
    containment(mp)
}

fn sweep(edges: &mut [Edge]) -> Option<(InvalidReason, Coord<f64>)> {
    edges.sort_unstable_by(|a, b| a.min_y.total_cmp(&b.min_y));
    let mut active: Vec<usize> = Vec::new();
    for i in 0..edges.len() {
        let e = &edges[i];
        active.retain(|&j| edges[j].max_y >= e.min_y);
        for &j in &active {
            let f = &edges[j];
            if e.a.x.max(e.b.x) < f.a.x.min(f.b.x) || f.a.x.max(f.b.x) < e.a.x.min(e.b.x) {
                continue;
            }
            if let Some(found) = pair(e, f) {
                return Some(found);
            }
        }
        active.push(i);
    }
    None
}

fn pair(e: &Edge, f: &Edge) -> Option<(InvalidReason, Coord<f64>)> {
    if !geom::segments_intersect(e.a, e.b, f.a, f.b) {
        return None;
    }
    let same_ring = e.ring == f.ring;
    let adjacent = same_ring
        && (e.pos + 1 == f.pos
            || f.pos + 1 == e.pos
            || (e.pos == 0 && f.pos + 1 == f.ring_len)
            || (f.pos == 0 && e.pos + 1 == e.ring_len));
    let collinear_overlap = geom::orient(e.a, e.b, f.a) == 0.0
        && geom::orient(e.a, e.b, f.b) == 0.0
        && overlap_length_positive(e, f);
    if adjacent {
        // Consecutive edges meet at their shared vertex; only a backtrack is wrong.
        if e.ring_len == 2 || collinear_overlap {
            return Some((InvalidReason::RingSelfIntersection, shared_point(e, f)));
        }
        return None;
    }
    if same_ring {
        return Some((InvalidReason::RingSelfIntersection, shared_point(e, f)));
    }
    let touch_only = !collinear_overlap && touches_at_endpoint(e, f);
    if touch_only {
        return None;
    }
    let reason = if e.part == f.part {
        InvalidReason::RingsCross
    } else {
        InvalidReason::PartsOverlap
    };
    Some((reason, shared_point(e, f)))
}

fn overlap_length_positive(e: &Edge, f: &Edge) -> bool {
    // Project on the dominant axis of e.
    let horizontal = (e.b.x - e.a.x).abs() >= (e.b.y - e.a.y).abs();
    let (e0, e1, f0, f1) = if horizontal {
        (e.a.x, e.b.x, f.a.x, f.b.x)
    } else {
        (e.a.y, e.b.y, f.a.y, f.b.y)
    };
    e0.min(e1).max(f0.min(f1)) < e0.max(e1).min(f0.max(f1))
}

/// Whether two intersecting, non-overlapping segments meet only where one of them ends
/// (a touch at a point, which OGC allows between different rings).
fn touches_at_endpoint(e: &Edge, f: &Edge) -> bool {
    geom::lies_on_segment(f.a, f.b, e.a)
        || geom::lies_on_segment(f.a, f.b, e.b)
        || geom::lies_on_segment(e.a, e.b, f.a)
        || geom::lies_on_segment(e.a, e.b, f.b)
}

/// A point where the two segments meet (an endpoint on the other, or the crossing).
fn shared_point(e: &Edge, f: &Edge) -> Coord<f64> {
    for (p, a, b) in [
        (e.a, f.a, f.b),
        (e.b, f.a, f.b),
        (f.a, e.a, e.b),
        (f.b, e.a, e.b),
    ] {
        if geom::lies_on_segment(a, b, p) {
            return p;
        }
    }
    let (d1, d2) = (e.b - e.a, f.b - f.a);
    let den = d1.x * d2.y - d1.y * d2.x;
    if den == 0.0 {
        return e.a;
    }
    let t = ((f.a.x - e.a.x) * d2.y - (f.a.y - e.a.y) * d2.x) / den;
    e.a + d1 * t
}

/// Holes inside their shells, and parts not inside one another, once no rings cross.
fn containment(mp: &MultiPolygon<f64>) -> Option<(InvalidReason, Coord<f64>)> {
    // One part without holes (nearly every grid) has nothing to contain: the index of
    // its shell would cost more than the whole sweep.
    if let [only] = mp.0.as_slice()
        && only.interiors().is_empty()
    {
        return None;
    }
    let shells: Vec<MultiPolygon<f64>> =
        mp.0.iter()
            .map(|p| MultiPolygon(vec![geo_types::Polygon::new(p.exterior().clone(), vec![])]))
            .collect();
    let set = crate::spatial::pip::PolygonSet::new(&shells);
    for (i, poly) in mp.0.iter().enumerate() {
        for hole in poly.interiors() {
            if let Some(p) = off_boundary_vertex(&hole.0, &poly.exterior().0)
                && !set.contains(i as u32, p)
            {
                return Some((InvalidReason::HoleOutsideShell, p));
            }
        }
        for (j, other) in mp.0.iter().enumerate() {
            if i == j {
                continue;
            }
            if let Some(p) = off_boundary_vertex(&poly.exterior().0, &other.exterior().0)
                && set.contains(j as u32, p)
                && !in_any_hole(other, p)
            {
                return Some((InvalidReason::PartsOverlap, p));
            }
        }
    }
    None
}

/// A vertex of `ring` that does not lie on `other`'s boundary (rings may touch).
fn off_boundary_vertex(ring: &[Coord<f64>], other: &[Coord<f64>]) -> Option<Coord<f64>> {
    ring.iter()
        .copied()
        .find(|&p| !geom::lies_on_ring(other, p))
}

fn in_any_hole(poly: &geo_types::Polygon<f64>, p: Coord<f64>) -> bool {
    use geo::Contains;
    poly.interiors()
        .iter()
        .any(|h| geo_types::Polygon::new(h.clone(), vec![]).contains(&geo_types::Point(p)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::{MultiPolygon, polygon};

    fn mp(p: geo_types::Polygon<f64>) -> MultiPolygon<f64> {
        MultiPolygon(vec![p])
    }

    #[test]
    fn a_square_is_valid() {
        assert_eq!(
            check(&mp(
                polygon![(x: 0., y: 0.), (x: 1., y: 0.), (x: 1., y: 1.), (x: 0., y: 1.)]
            )),
            None
        );
    }

    #[test]
    fn a_bow_tie_is_a_self_intersection_at_its_crossing() {
        let r = check(&mp(
            polygon![(x: 0., y: 0.), (x: 2., y: 2.), (x: 2., y: 0.), (x: 0., y: 2.)],
        ));
        let (reason, at) = r.unwrap();
        assert_eq!(reason, InvalidReason::RingSelfIntersection);
        assert!((at.x - 1.0).abs() < 1e-12 && (at.y - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_ring_touching_itself_at_a_vertex_is_invalid() {
        let r = check(&mp(polygon![
            (x: 0., y: 0.), (x: 4., y: 0.), (x: 4., y: 4.), (x: 2., y: 0.), (x: 0., y: 4.)
        ]));
        assert_eq!(r.map(|r| r.0), Some(InvalidReason::RingSelfIntersection));
    }

    #[test]
    fn a_hole_outside_its_shell_is_invalid() {
        let p = polygon![
            exterior: [(x: 0., y: 0.), (x: 1., y: 0.), (x: 1., y: 1.), (x: 0., y: 1.)],
            interiors: [[(x: 5., y: 5.), (x: 5., y: 6.), (x: 6., y: 6.), (x: 6., y: 5.)]],
        ];
        assert_eq!(
            check(&mp(p)).map(|r| r.0),
            Some(InvalidReason::HoleOutsideShell)
        );
    }

    #[test]
    fn a_hole_touching_the_shell_at_one_point_is_valid() {
        let p = polygon![
            exterior: [(x: 0., y: 0.), (x: 4., y: 0.), (x: 4., y: 4.), (x: 0., y: 4.)],
            interiors: [[(x: 0., y: 2.), (x: 1., y: 3.), (x: 1., y: 1.)]],
        ];
        assert_eq!(check(&mp(p)), None);
    }

    #[test]
    fn overlapping_parts_are_invalid() {
        let a = polygon![(x: 0., y: 0.), (x: 2., y: 0.), (x: 2., y: 2.), (x: 0., y: 2.)];
        let b = polygon![(x: 1., y: 1.), (x: 3., y: 1.), (x: 3., y: 3.), (x: 1., y: 3.)];
        assert_eq!(
            check(&MultiPolygon(vec![a, b])).map(|r| r.0),
            Some(InvalidReason::PartsOverlap)
        );
    }

    #[test]
    fn a_spike_is_invalid() {
        let r = check(&mp(polygon![
            (x: 0., y: 0.), (x: 2., y: 0.), (x: 3., y: 0.), (x: 2., y: 0.), (x: 2., y: 2.), (x: 0., y: 2.)
        ]));
        assert_eq!(r.map(|r| r.0), Some(InvalidReason::RingSelfIntersection));
    }
}
