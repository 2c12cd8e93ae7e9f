//! Small, exact-where-it-matters helpers on rings and polygons shared by the engine.

use geo_types::{Coord, LineString, MultiPolygon, Polygon, Rect};

/// Twice the signed area of a closed ring (shoelace); positive for counter-clockwise.
///
/// ```
/// use geo_types::coord;
/// let square = [coord! {x: 0., y: 0.}, coord! {x: 1., y: 0.}, coord! {x: 1., y: 1.},
///               coord! {x: 0., y: 1.}, coord! {x: 0., y: 0.}];
/// assert_eq!(wangge::spatial::geom::ring_twice_area(&square), 2.0);
/// ```
pub fn ring_twice_area(ring: &[Coord<f64>]) -> f64 {
    if ring.len() < 4 {
        return 0.0;
    }
    // Relative to the first vertex: keeps the products small, so the sum stays accurate
    // for tiny rings far from the origin (slivers at 118°E).
    let o = ring[0];
    let mut sum = 0.0;
    for w in ring.windows(2) {
        let (a, b) = (w[0] - o, w[1] - o);
        sum += a.x * b.y - b.x * a.y;
    }
    sum
}

/// Orients every ring by the right-hand rule (RFC 7946): exteriors counter-clockwise,
/// holes clockwise. Input of either orientation is accepted.
pub fn normalise_orientation(mp: &mut MultiPolygon<f64>) {
    for poly in mp.0.iter_mut() {
        let (ext, holes) =
            std::mem::replace(poly, Polygon::new(LineString::new(vec![]), vec![])).into_inner();
        let ext = oriented_ring(ext, true);
        let holes = holes.into_iter().map(|h| oriented_ring(h, false)).collect();
        *poly = Polygon::new(ext, holes);
    }
}

fn oriented_ring(mut ring: LineString<f64>, ccw: bool) -> LineString<f64> {
    let a = ring_twice_area(&ring.0);
    if (a > 0.0) != ccw && a != 0.0 {
        ring.0.reverse();
    }
    ring
}

/// Bounding rectangle of a multipolygon's exteriors, `None` when empty.
pub fn bounds(mp: &MultiPolygon<f64>) -> Option<Rect<f64>> {
    bounds_of(mp.0.iter().flat_map(|p| p.exterior().0.iter().copied()))
}

/// Bounding rectangle of all of a multipolygon's rings, holes included (an invalid
/// hole may reach outside its shell), `None` when empty.
pub fn ring_bounds(mp: &MultiPolygon<f64>) -> Option<Rect<f64>> {
    bounds_of(rings(mp).flat_map(|r| r.0.iter().copied()))
}

/// The rectangle around every `Some` rectangle, `None` when there is none.
pub fn merged_bounds(rects: impl IntoIterator<Item = Option<Rect<f64>>>) -> Option<Rect<f64>> {
    bounds_of(rects.into_iter().flatten().flat_map(|r| [r.min(), r.max()]))
}

/// The longitude halfway across the bounding box of all `polygons` (their exteriors),
/// `None` when there are none: where a set of regions lies, east to west.
pub fn middle_longitude<'a>(
    polygons: impl IntoIterator<Item = &'a MultiPolygon<f64>>,
) -> Option<f64> {
    let rect = bounds_of(
        polygons
            .into_iter()
            .flat_map(|mp| mp.0.iter().flat_map(|p| p.exterior().0.iter().copied())),
    )?;
    Some((rect.min().x + rect.max().x) / 2.0)
}

/// Bounding rectangle of coordinates, `None` when there are none.
pub fn bounds_of(coords: impl IntoIterator<Item = Coord<f64>>) -> Option<Rect<f64>> {
    let mut it = coords.into_iter();
    let first = it.next()?;
    let (mut min, mut max) = (first, first);
    for c in it {
        min.x = min.x.min(c.x);
        min.y = min.y.min(c.y);
        max.x = max.x.max(c.x);
        max.y = max.y.max(c.y);
    }
    Some(Rect::new(min, max))
}

/// The half-open crossing test of edge `a → b` against the ray from `p` towards +x:
/// the edge counts when `min(y) <= p.y < max(y)` and `p` is strictly left of it.
#[inline(always)]
pub fn crosses_ray(a: Coord<f64>, b: Coord<f64>, p: Coord<f64>) -> bool {
    if (a.y > p.y) == (b.y > p.y) {
        return false;
    }
    let o = orient(a, b, p);
    (b.y > a.y && o > 0.0) || (b.y < a.y && o < 0.0)
}

/// Every ring of a multipolygon, exteriors and holes alike.
pub fn rings(mp: &MultiPolygon<f64>) -> impl Iterator<Item = &LineString<f64>> {
    mp.0.iter()
        .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors().iter()))
}

/// Number of vertices, counting each closed ring's repeated last vertex once.
pub fn vertex_count(mp: &MultiPolygon<f64>) -> usize {
    rings(mp).map(|r| r.0.len().saturating_sub(1)).sum()
}

/// Exact orientation of `c` relative to the directed line `a → b`: positive when `c` is
/// to the left. Adaptive precision (Shewchuk), so the sign is always right.
#[inline(always)]
pub fn orient(a: Coord<f64>, b: Coord<f64>, c: Coord<f64>) -> f64 {
    // Shewchuk's stage-A filter, inlined: when the rounded determinant is larger
    // than its error bound its sign is exact; otherwise the adaptive version decides.
    const CCW_ERRBOUND_A: f64 = (3.0 + 16.0 * f64::EPSILON / 2.0) * f64::EPSILON / 2.0;
    let detleft = (a.x - c.x) * (b.y - c.y);
    let detright = (a.y - c.y) * (b.x - c.x);
    let det = detleft - detright;
    let bound = CCW_ERRBOUND_A * (detleft.abs() + detright.abs());
    if det > bound || -det > bound {
        return det;
    }
    orient_exact(a, b, c)
}

#[cold]
#[inline(never)]
fn orient_exact(a: Coord<f64>, b: Coord<f64>, c: Coord<f64>) -> f64 {
    robust::orient2d(
        robust::Coord { x: a.x, y: a.y },
        robust::Coord { x: b.x, y: b.y },
        robust::Coord { x: c.x, y: c.y },
    )
}

/// Whether two closed segments share at least one point (exact).
pub fn segments_intersect(a: Coord<f64>, b: Coord<f64>, c: Coord<f64>, d: Coord<f64>) -> bool {
    let o1 = orient(a, b, c);
    let o2 = orient(a, b, d);
    let o3 = orient(c, d, a);
    let o4 = orient(c, d, b);
    if ((o1 > 0.0 && o2 < 0.0) || (o1 < 0.0 && o2 > 0.0))
        && ((o3 > 0.0 && o4 < 0.0) || (o3 < 0.0 && o4 > 0.0))
    {
        return true;
    }
    (o1 == 0.0 && on_segment(a, b, c))
        || (o2 == 0.0 && on_segment(a, b, d))
        || (o3 == 0.0 && on_segment(c, d, a))
        || (o4 == 0.0 && on_segment(c, d, b))
}

/// For `p` collinear with `a b`: whether it lies within the segment's bounds.
#[inline]
pub fn on_segment(a: Coord<f64>, b: Coord<f64>, p: Coord<f64>) -> bool {
    p.x >= a.x.min(b.x) && p.x <= a.x.max(b.x) && p.y >= a.y.min(b.y) && p.y <= a.y.max(b.y)
}

/// How far off a line a vertex may lie and still count as on it, in degrees (about
/// 0.1 µm): the rounding of a coordinate computed on a slanted edge, which is the
/// closest any vertex can come to lying on one, and far under any distance that
/// matters on the ground.
pub const ON_LINE_DEG: f64 = 1e-12;

/// Whether `p` lies on the line through `a b` to within [`ON_LINE_DEG`].
pub fn nearly_collinear(a: Coord<f64>, b: Coord<f64>, p: Coord<f64>) -> bool {
    let o = orient(a, b, p);
    o == 0.0 || o.abs() <= ON_LINE_DEG * (b.x - a.x).hypot(b.y - a.y)
}

/// Whether `p` lies on the closed segment `a b` (exact).
#[inline]
pub fn lies_on_segment(a: Coord<f64>, b: Coord<f64>, p: Coord<f64>) -> bool {
    orient(a, b, p) == 0.0 && on_segment(a, b, p)
}

/// Whether `p` lies on the closed ring (exact).
pub fn lies_on_ring(ring: &[Coord<f64>], p: Coord<f64>) -> bool {
    ring.windows(2).any(|w| lies_on_segment(w[0], w[1], p))
}

/// Whether a closed segment meets a closed axis-aligned rectangle.
pub fn segment_meets_rect(a: Coord<f64>, b: Coord<f64>, r: &Rect<f64>) -> bool {
    let (min, max) = (r.min(), r.max());
    if a.x.max(b.x) < min.x || a.x.min(b.x) > max.x || a.y.max(b.y) < min.y || a.y.min(b.y) > max.y
    {
        return false;
    }
    let inside = |p: Coord<f64>| p.x >= min.x && p.x <= max.x && p.y >= min.y && p.y <= max.y;
    if inside(a) || inside(b) {
        return true;
    }
    let corners = [
        min,
        Coord { x: max.x, y: min.y },
        max,
        Coord { x: min.x, y: max.y },
    ];
    (0..4).any(|i| segments_intersect(a, b, corners[i], corners[(i + 1) % 4]))
}

/// A point strictly inside a polygon's area where one exists: the midpoint of the widest
/// interior span on the horizontal line through the middle of the tallest band.
/// Used as the representative location of problems.
pub fn interior_point(poly: &Polygon<f64>) -> Option<Coord<f64>> {
    use geo::InteriorPoint;
    poly.interior_point().map(|p| p.0)
}
