//! Boolean operations through i_overlay on the few polygons where a plan goes wrong.
//! i_overlay snaps to an integer grid of about 2^-31 of the operands' extent (under a
//! millimetre for a county); slivers thinner than that are not seen by these
//! operations (they are still reported through the unmatched edges).

use crate::spatial::geom;
use crate::spatial::measure::LocalScale;
use geo_types::{Coord, LineString, MultiPolygon, Polygon, Rect};
use i_overlay::core::fill_rule::FillRule;
use i_overlay::core::overlay_rule::OverlayRule;
use i_overlay::float::simplify::SimplifyShape;
use i_overlay::float::single::SingleFloatOverlay;

type Shapes = Vec<Vec<Vec<[f64; 2]>>>;

/// The width in metres under which a region these operations return over the given
/// shapes may be their rounding alone: 2⁻²⁸ of the shapes' extent (0.5 mm for a
/// city, under 0.01 mm for two villages), a few times what i_overlay rounds to and far
/// under anything that matters on the ground.
pub(crate) fn noise_m<'a>(shapes: impl Iterator<Item = &'a MultiPolygon<f64>>) -> f64 {
    geom::bounds_of(shapes.flat_map(|mp| geom::rings(mp).flat_map(|r| r.0.iter().copied())))
        .map_or(0.0, noise_in_m)
}

/// [`noise_m`] of shapes whose bounds are `b`.
pub(crate) fn noise_in_m(b: Rect<f64>) -> f64 {
    let s = LocalScale::at(b.center().y);
    (b.width() * s.x).max(b.height() * s.y) / f64::from(1u32 << 28)
}

fn contour(r: &LineString<f64>) -> Vec<[f64; 2]> {
    let n = r.0.len().saturating_sub(1);
    r.0[..n].iter().map(|c| [c.x, c.y]).collect()
}

pub(crate) fn to_shapes(mp: &MultiPolygon<f64>) -> Shapes {
    mp.0.iter()
        .map(|p| {
            std::iter::once(contour(p.exterior()))
                .chain(p.interiors().iter().map(contour))
                .collect()
        })
        .collect()
}

pub(crate) fn from_shapes(shapes: Shapes) -> MultiPolygon<f64> {
    let ring = |c: Vec<[f64; 2]>| {
        let mut v: Vec<Coord<f64>> = c.into_iter().map(|[x, y]| Coord { x, y }).collect();
        if let Some(&f) = v.first() {
            v.push(f);
        }
        LineString(v)
    };
    let mut mp = MultiPolygon(
        shapes
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                let mut it = s.into_iter();
                let ext = it.next().map(ring).unwrap_or_else(|| LineString(vec![]));
                Polygon::new(ext, it.map(ring).collect())
            })
            .collect(),
    );
    crate::spatial::geom::normalise_orientation(&mut mp);
    mp
}

/// Interior intersection of two multipolygons.
pub(crate) fn intersection(a: &MultiPolygon<f64>, b: &MultiPolygon<f64>) -> MultiPolygon<f64> {
    from_shapes(to_shapes(a).overlay(&to_shapes(b), OverlayRule::Intersect, FillRule::NonZero))
}

/// `a` minus `b`.
pub(crate) fn difference(a: &MultiPolygon<f64>, b: &MultiPolygon<f64>) -> MultiPolygon<f64> {
    from_shapes(to_shapes(a).overlay(&to_shapes(b), OverlayRule::Difference, FillRule::NonZero))
}

/// Regions where the winding number of the closed `rings` is positive (`positive`)
/// or negative (otherwise). Counter-clockwise rings wind +1.
pub(crate) fn winding_regions(rings: &[Vec<Coord<f64>>], positive: bool) -> MultiPolygon<f64> {
    let contours: Vec<Vec<[f64; 2]>> = rings
        .iter()
        .map(|r| {
            let n = r.len().saturating_sub(1);
            r[..n].iter().map(|c| [c.x, c.y]).collect()
        })
        .collect();
    let rule = if positive {
        FillRule::Positive
    } else {
        FillRule::Negative
    };
    from_shapes(contours.simplify_shape(rule))
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::polygon;

    #[test]
    fn counter_clockwise_rings_wind_positive() {
        let ccw = vec![
            Coord { x: 0., y: 0. },
            Coord { x: 1., y: 0. },
            Coord { x: 1., y: 1. },
            Coord { x: 0., y: 1. },
            Coord { x: 0., y: 0. },
        ];
        let mut cw = ccw.clone();
        cw.reverse();
        assert_eq!(winding_regions(std::slice::from_ref(&ccw), true).0.len(), 1);
        assert_eq!(winding_regions(&[ccw], false).0.len(), 0);
        assert_eq!(winding_regions(&[cw], false).0.len(), 1);
    }

    #[test]
    fn intersection_of_overlapping_squares_is_their_common_square() {
        let a = MultiPolygon(vec![
            polygon![(x: 0., y: 0.), (x: 2., y: 0.), (x: 2., y: 2.), (x: 0., y: 2.)],
        ]);
        let b = MultiPolygon(vec![
            polygon![(x: 1., y: 1.), (x: 3., y: 1.), (x: 3., y: 3.), (x: 1., y: 3.)],
        ]);
        let i = intersection(&a, &b);
        assert_eq!(
            crate::spatial::geom::ring_twice_area(&i.0[0].exterior().0),
            2.0
        );
    }
}
