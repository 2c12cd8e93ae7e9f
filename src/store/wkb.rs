//! Geometry as WKB, through `geozero`: how boundaries travel to and from both backends.

use super::StoreError;
use geo_types::{Geometry, MultiPolygon};
use geozero::{CoordDimensions, ToGeo, ToWkb};

/// EPSG code of CGCS2000 geographic coordinates, the SRID of every stored geometry.
pub const SRID: i32 = 4490;

/// ISO WKB of a multipolygon (2D).
pub fn encode(m: &MultiPolygon<f64>) -> Result<Vec<u8>, StoreError> {
    Geometry::MultiPolygon(m.clone())
        .to_wkb(CoordDimensions::xy())
        .map_err(|e| StoreError::Corrupt(format!("cannot encode WKB: {e}")))
}

/// PostGIS EWKB (with SRID 4490), as `COPY … (FORMAT binary)` expects for geometry.
pub fn encode_ewkb(m: &MultiPolygon<f64>) -> Result<Vec<u8>, StoreError> {
    Geometry::MultiPolygon(m.clone())
        .to_ewkb(CoordDimensions::xy(), Some(SRID))
        .map_err(|e| StoreError::Corrupt(format!("cannot encode EWKB: {e}")))
}

/// Reads WKB holding a polygon or multipolygon.
pub fn decode(bytes: &[u8]) -> Result<MultiPolygon<f64>, StoreError> {
    let g = geozero::wkb::Wkb(bytes)
        .to_geo()
        .map_err(|e| StoreError::Corrupt(format!("bad WKB: {e}")))?;
    match g {
        Geometry::MultiPolygon(m) => Ok(m),
        Geometry::Polygon(p) => Ok(MultiPolygon(vec![p])),
        other => Err(StoreError::Corrupt(format!(
            "expected a (multi)polygon, found {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::polygon;

    #[test]
    fn a_multipolygon_survives_the_round_trip() {
        let m = MultiPolygon(vec![polygon![
            exterior: [(x: 118.0, y: 37.0), (x: 118.1, y: 37.0), (x: 118.1, y: 37.1), (x: 118.0, y: 37.0)],
            interiors: [[(x: 118.05, y: 37.02), (x: 118.06, y: 37.03), (x: 118.07, y: 37.02), (x: 118.05, y: 37.02)]],
        ]]);
        assert_eq!(decode(&encode(&m).unwrap()).unwrap(), m);
    }

    #[test]
    fn a_point_is_not_a_boundary() {
        let wkb = Geometry::Point(geo_types::point!(x: 1.0, y: 2.0))
            .to_wkb(CoordDimensions::xy())
            .unwrap();
        assert!(decode(&wkb).is_err());
    }
}
