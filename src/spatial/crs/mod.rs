//! Coordinate systems of location input.

pub mod gcj02;
#[cfg(feature = "proj")]
pub mod proj;

use geo_types::Coord;
use std::str::FromStr;

/// The coordinate system a location arrives in. Inside wangge everything is CGCS2000
/// geographic (EPSG:4490), which equals WGS84 to well under a metre.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoordSys {
    /// WGS84 longitude/latitude (GPS, GeoJSON/CRS84).
    #[default]
    Wgs84,
    /// CGCS2000 geographic (EPSG:4490): the Chinese national datum.
    Cgcs2000,
    /// GCJ-02, used by Amap (Gaode) and Tencent map SDKs.
    Gcj02,
    /// BD-09, used by Baidu map SDKs.
    Bd09,
}

impl CoordSys {
    /// Converts `(lon, lat)` in this system to CGCS2000/WGS84 longitude/latitude.
    ///
    /// ```
    /// use wangge::spatial::crs::CoordSys;
    /// let p = CoordSys::Gcj02.to_wgs84(geo_types::coord! {x: 116.41024449916938, y: 39.91640428150164});
    /// assert!((p.x - 116.404).abs() < 1e-8 && (p.y - 39.915).abs() < 1e-8);
    /// ```
    pub fn to_wgs84(self, c: Coord<f64>) -> Coord<f64> {
        let (x, y) = match self {
            CoordSys::Wgs84 | CoordSys::Cgcs2000 => (c.x, c.y),
            CoordSys::Gcj02 => gcj02::gcj02_to_wgs84(c.x, c.y),
            CoordSys::Bd09 => gcj02::bd09_to_wgs84(c.x, c.y),
        };
        Coord { x, y }
    }

    /// Converts CGCS2000/WGS84 `(lon, lat)` into this system.
    pub fn from_wgs84(self, c: Coord<f64>) -> Coord<f64> {
        let (x, y) = match self {
            CoordSys::Wgs84 | CoordSys::Cgcs2000 => (c.x, c.y),
            CoordSys::Gcj02 => gcj02::wgs84_to_gcj02(c.x, c.y),
            CoordSys::Bd09 => gcj02::wgs84_to_bd09(c.x, c.y),
        };
        Coord { x, y }
    }

    /// The lowercase name used in APIs and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            CoordSys::Wgs84 => "wgs84",
            CoordSys::Cgcs2000 => "cgcs2000",
            CoordSys::Gcj02 => "gcj02",
            CoordSys::Bd09 => "bd09",
        }
    }
}

/// An unknown `coord_sys` name.
#[derive(Debug, thiserror::Error)]
#[error("unknown coordinate system {0:?}: expected wgs84, cgcs2000, gcj02 or bd09")]
pub struct UnknownCoordSys(pub String);

impl crate::domain::Localised for UnknownCoordSys {
    fn zh(&self) -> String {
        format!(
            "未知的坐标系 {:?}：应为 wgs84、cgcs2000、gcj02 或 bd09",
            self.0
        )
    }
}

impl FromStr for CoordSys {
    type Err = UnknownCoordSys;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "wgs84" | "crs84" | "epsg:4326" => Ok(CoordSys::Wgs84),
            "cgcs2000" | "epsg:4490" => Ok(CoordSys::Cgcs2000),
            "gcj02" | "gcj-02" => Ok(CoordSys::Gcj02),
            "bd09" | "bd-09" => Ok(CoordSys::Bd09),
            // Named back as given, but never at a length a caller chose.
            _ if s.chars().count() > 32 => {
                Err(UnknownCoordSys(s.chars().take(31).chain(['…']).collect()))
            }
            _ => Err(UnknownCoordSys(s.to_string())),
        }
    }
}
