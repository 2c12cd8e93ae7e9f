//! Metres and square metres from longitude/latitude.
//!
//! Areas are geodesic (Karney's algorithm on the WGS84/CGCS2000 ellipsoid, via `geo`).
//! Short distances (boundary proximity, up to a few kilometres) use a local
//! equirectangular projection on the ellipsoid centred on the query point: the error is
//! below 0.01 % at those ranges, far under the digitising error of any boundary.

use geo::GeodesicArea;
use geo_types::{Coord, MultiPolygon, Polygon};

/// Metres per degree of latitude on a sphere of the ellipsoid's mean radius.
pub const METRES_PER_DEGREE: f64 = 6_371_008.8 * std::f64::consts::PI / 180.0;

/// Scales that turn degree differences near latitude `lat` into metres.
#[derive(Clone, Copy, Debug)]
pub struct LocalScale {
    /// metres per degree of longitude
    pub x: f64,
    /// metres per degree of latitude
    pub y: f64,
}

impl LocalScale {
    /// The scale at latitude `lat` (degrees).
    pub fn at(lat: f64) -> Self {
        // Radii of curvature of the CGCS2000 ellipsoid (= GRS80, WGS84 to 0.1 mm).
        const A: f64 = 6_378_137.0;
        const E2: f64 = 0.006_694_380_022_900_787;
        let phi = lat.to_radians();
        let w = (1.0 - E2 * phi.sin().powi(2)).sqrt();
        let meridian = A * (1.0 - E2) / (w * w * w);
        let prime_vertical = A / w;
        let rad = std::f64::consts::PI / 180.0;
        LocalScale {
            x: prime_vertical * phi.cos() * rad,
            y: meridian * rad,
        }
    }

    /// Squared distance in m² from `p` to segment `a b` (all in degrees).
    #[inline]
    pub fn segment_distance2(&self, p: Coord<f64>, a: Coord<f64>, b: Coord<f64>) -> f64 {
        let (ax, ay) = ((a.x - p.x) * self.x, (a.y - p.y) * self.y);
        let (bx, by) = ((b.x - p.x) * self.x, (b.y - p.y) * self.y);
        let (dx, dy) = (bx - ax, by - ay);
        let len2 = dx * dx + dy * dy;
        let t = if len2 > 0.0 {
            (-(ax * dx + ay * dy) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let (cx, cy) = (ax + t * dx, ay + t * dy);
        cx * cx + cy * cy
    }

    /// Distance in metres between two nearby points.
    pub fn distance(&self, a: Coord<f64>, b: Coord<f64>) -> f64 {
        let (dx, dy) = ((a.x - b.x) * self.x, (a.y - b.y) * self.y);
        (dx * dx + dy * dy).sqrt()
    }
}

/// Geodesic area in m² of a polygon given in lon/lat degrees (holes subtracted).
pub fn polygon_area_m2(p: &Polygon<f64>) -> f64 {
    p.geodesic_area_unsigned()
}

/// Geodesic area in m² of a multipolygon given in lon/lat degrees.
pub fn area_m2(mp: &MultiPolygon<f64>) -> f64 {
    mp.0.iter().map(polygon_area_m2).sum()
}

/// Geodesic perimeter in metres of every ring of a multipolygon.
pub fn perimeter_m(mp: &MultiPolygon<f64>) -> f64 {
    use geo::{Distance, Geodesic};
    super::geom::rings(mp)
        .flat_map(|r| r.0.windows(2))
        .map(|w| Geodesic.distance(geo_types::Point(w[0]), geo_types::Point(w[1])))
        .sum()
}

/// Mean width in metres of a thin region: twice its area over its perimeter. For a
/// sliver of length L and width w that is w·L / (L + w) ≈ w.
pub fn mean_width_m(area_m2: f64, perimeter_m: f64) -> f64 {
    if perimeter_m > 0.0 {
        2.0 * area_m2 / perimeter_m
    } else {
        0.0
    }
}

/// Area in m² by a local equirectangular projection centred on each ring's mean
/// latitude: within 0.01 % of the geodesic area for grid-sized polygons, and precise
/// for slivers of a few square centimetres where the geodesic sums lose digits.
pub fn local_area_m2(mp: &MultiPolygon<f64>) -> f64 {
    mp.0.iter()
        .map(|p| {
            let ring_area = |r: &[Coord<f64>]| {
                // The closing vertex repeats the first: left out, so that where a ring
                // starts does not change its area.
                let open = &r[..r.len().saturating_sub(1)];
                let lat = open.iter().map(|c| c.y).sum::<f64>() / open.len().max(1) as f64;
                let s = LocalScale::at(lat);
                (super::geom::ring_twice_area(r) / 2.0).abs() * s.x * s.y
            };
            let holes: f64 = p.interiors().iter().map(|h| ring_area(&h.0)).sum();
            ring_area(&p.exterior().0) - holes
        })
        .sum()
}

/// Perimeter in metres by the same local projection, segment by segment.
pub fn local_perimeter_m(mp: &MultiPolygon<f64>) -> f64 {
    super::geom::rings(mp)
        .flat_map(|r| r.0.windows(2))
        .map(|w| LocalScale::at(w[0].y).distance(w[0], w[1]))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::{coord, polygon};

    #[test]
    fn one_degree_square_at_equator_has_the_known_geodesic_area() {
        let p = polygon![(x: 0., y: 0.), (x: 1., y: 0.), (x: 1., y: 1.), (x: 0., y: 1.)];
        let a = polygon_area_m2(&p);
        // 12 308 778 361 m² on WGS84 (Karney).
        assert!((a - 1.2308778361e10).abs() / a < 1e-4, "{a}");
    }

    #[test]
    fn local_distance_matches_geodesic_within_a_hundredth_of_a_percent() {
        use geo::{Distance, Geodesic};
        let a = coord! {x: 118.0, y: 37.4};
        let b = coord! {x: 118.01, y: 37.405};
        let local = LocalScale::at(a.y).distance(a, b);
        let geod = Geodesic.distance(geo_types::Point(a), geo_types::Point(b));
        assert!((local - geod).abs() / geod < 1e-4, "{local} vs {geod}");
    }
}
