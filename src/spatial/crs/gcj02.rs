//! GCJ-02 ("Mars coordinates") and BD-09, the offsets applied by Chinese map SDKs
//! (Amap and Tencent use GCJ-02, Baidu BD-09). PROJ knows neither, so they are pure
//! functions here. The forward GCJ-02 formula is the widely published one (identical
//! results to wandergis/coordtransform and eviltransform); the inverse is solved by
//! fixed-point iteration to below a millimetre, not the common one-step approximation
//! that is off by up to a few metres.

use std::f64::consts::PI;

const A: f64 = 6_378_245.0; // Krasovsky 1940 semi-major axis used by the formula
const EE: f64 = 0.006_693_421_622_965_943; // its first eccentricity squared
const X_PI: f64 = PI * 3000.0 / 180.0;

/// Whether the offset applies: outside this rectangle GCJ-02 equals WGS84 by convention.
pub fn in_china(lon: f64, lat: f64) -> bool {
    (72.004..=137.8347).contains(&lon) && (0.8293..=55.8271).contains(&lat)
}

fn transform_lat(x: f64, y: f64) -> f64 {
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn transform_lon(x: f64, y: f64) -> f64 {
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// WGS84 → GCJ-02, `(lon, lat)` in degrees.
///
/// ```
/// let (lon, lat) = wangge::spatial::crs::gcj02::wgs84_to_gcj02(116.404, 39.915);
/// assert!((lon - 116.41024449916938).abs() < 1e-12 && (lat - 39.91640428150164).abs() < 1e-12);
/// ```
pub fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if !in_china(lon, lat) {
        return (lon, lat);
    }
    let (dlon, dlat) = delta(lon, lat);
    (lon + dlon, lat + dlat)
}

fn delta(lon: f64, lat: f64) -> (f64, f64) {
    let dlat = transform_lat(lon - 105.0, lat - 35.0);
    let dlon = transform_lon(lon - 105.0, lat - 35.0);
    let radlat = lat / 180.0 * PI;
    let magic = 1.0 - EE * radlat.sin() * radlat.sin();
    let sqrtmagic = magic.sqrt();
    let dlat = (dlat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrtmagic) * PI);
    let dlon = (dlon * 180.0) / (A / sqrtmagic * radlat.cos() * PI);
    (dlon, dlat)
}

/// GCJ-02 → WGS84 by fixed-point iteration (converges to < 1e-9° in a few steps).
pub fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if !in_china(lon, lat) {
        return (lon, lat);
    }
    let (mut x, mut y) = (lon, lat);
    for _ in 0..30 {
        let (gx, gy) = wgs84_to_gcj02(x, y);
        let (ex, ey) = (gx - lon, gy - lat);
        x -= ex;
        y -= ey;
        if ex.abs() < 1e-11 && ey.abs() < 1e-11 {
            break;
        }
    }
    (x, y)
}

/// GCJ-02 → BD-09.
pub fn gcj02_to_bd09(lon: f64, lat: f64) -> (f64, f64) {
    let z = (lon * lon + lat * lat).sqrt() + 0.00002 * (lat * X_PI).sin();
    let theta = lat.atan2(lon) + 0.000003 * (lon * X_PI).cos();
    (z * theta.cos() + 0.0065, z * theta.sin() + 0.006)
}

/// BD-09 → GCJ-02 (the published closed form, the inverse of [`gcj02_to_bd09`] to
/// about a metre), refined by iteration to below a millimetre.
pub fn bd09_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    let (x, y) = (lon - 0.0065, lat - 0.006);
    let z = (x * x + y * y).sqrt() - 0.00002 * (y * X_PI).sin();
    let theta = y.atan2(x) - 0.000003 * (x * X_PI).cos();
    let (mut gx, mut gy) = (z * theta.cos(), z * theta.sin());
    for _ in 0..10 {
        let (bx, by) = gcj02_to_bd09(gx, gy);
        let (ex, ey) = (bx - lon, by - lat);
        gx -= ex;
        gy -= ey;
        if ex.abs() < 1e-11 && ey.abs() < 1e-11 {
            break;
        }
    }
    (gx, gy)
}

/// BD-09 → WGS84.
pub fn bd09_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    let (x, y) = bd09_to_gcj02(lon, lat);
    gcj02_to_wgs84(x, y)
}

/// WGS84 → BD-09.
pub fn wgs84_to_bd09(lon: f64, lat: f64) -> (f64, f64) {
    let (x, y) = wgs84_to_gcj02(lon, lat);
    gcj02_to_bd09(x, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spatial::measure::LocalScale;
    use geo_types::coord;

    // Reference pairs published with wandergis/coordtransform (README, "示例用法"),
    // reproduced by eviltransform, hutool and others.
    const BEIJING: (f64, f64) = (116.404, 39.915);

    fn metres(a: (f64, f64), b: (f64, f64)) -> f64 {
        LocalScale::at(a.1).distance(coord! {x: a.0, y: a.1}, coord! {x: b.0, y: b.1})
    }

    #[test]
    fn wgs84_to_gcj02_matches_the_published_reference_pair() {
        let (lon, lat) = wgs84_to_gcj02(BEIJING.0, BEIJING.1);
        assert!((lon - 116.41024449916938).abs() < 1e-12);
        assert!((lat - 39.91640428150164).abs() < 1e-12);
    }

    #[test]
    fn gcj02_to_bd09_and_back_match_the_published_reference_pairs() {
        let (lon, lat) = gcj02_to_bd09(BEIJING.0, BEIJING.1);
        assert!((lon - 116.41036949371029).abs() < 1e-12);
        assert!((lat - 39.92133699351021).abs() < 1e-12);
        // The published one-step inverse gives (116.39762729119315, 39.90865673957631);
        // ours refines it, so it must be within a metre of it and exact on the round trip.
        let inv = bd09_to_gcj02(BEIJING.0, BEIJING.1);
        assert!(metres(inv, (116.39762729119315, 39.90865673957631)) < 1.0);
        let back = gcj02_to_bd09(inv.0, inv.1);
        assert!(metres(back, BEIJING) < 0.001);
    }

    #[test]
    fn gcj02_to_wgs84_inverts_the_reference_pair_to_the_millimetre() {
        let w = gcj02_to_wgs84(116.41024449916938, 39.91640428150164);
        assert!(metres(w, BEIJING) < 0.001, "{w:?}");
        // The widely copied one-step inverse is within a few metres of ours.
        let one_step = (116.39775550083061, 39.91359571849836);
        assert!(metres(gcj02_to_wgs84(BEIJING.0, BEIJING.1), one_step) < 5.0);
    }

    #[test]
    fn round_trips_stay_within_half_a_metre_across_china() {
        let mut worst: f64 = 0.0;
        for i in 0..=60 {
            for j in 0..=50 {
                let p = (73.0 + i as f64 * 1.05, 18.0 + j as f64 * 0.7);
                let g = wgs84_to_gcj02(p.0, p.1);
                worst = worst.max(metres(gcj02_to_wgs84(g.0, g.1), p));
                let b = wgs84_to_bd09(p.0, p.1);
                worst = worst.max(metres(bd09_to_wgs84(b.0, b.1), p));
            }
        }
        assert!(worst < 0.5, "worst round trip {worst} m");
    }

    #[test]
    fn outside_china_nothing_changes() {
        assert_eq!(wgs84_to_gcj02(-0.1276, 51.5072), (-0.1276, 51.5072));
        assert_eq!(gcj02_to_wgs84(139.69, 35.68 + 30.0), (139.69, 65.68));
    }

    #[test]
    fn the_offset_near_binzhou_is_about_half_a_kilometre() {
        let p = (118.0, 37.4);
        let d = metres(wgs84_to_gcj02(p.0, p.1), p);
        assert!((300.0..800.0).contains(&d), "{d}");
    }
}
