//! Transforms from any CRS PROJ knows (e.g. the CGCS2000 Gauss–Krüger zones
//! EPSG:4513–4554 used by surveying offices) to CGCS2000 longitude/latitude.

use geo_types::Coord;

/// A failure to set up or run a PROJ transformation.
#[derive(Debug, thiserror::Error)]
pub enum ProjError {
    /// PROJ does not know the CRS or cannot build the operation.
    #[error("cannot transform from {crs} to EPSG:4490: {source}")]
    Create {
        crs: String,
        #[source]
        source: proj::ProjCreateError,
    },
    /// A coordinate could not be transformed (e.g. outside the projection's domain).
    #[error("cannot transform ({x}, {y}) from {crs}: {message}")]
    Convert {
        crs: String,
        x: f64,
        y: f64,
        message: String,
    },
}

impl crate::domain::Localised for ProjError {
    fn zh(&self) -> String {
        match self {
            ProjError::Create { crs, source } => {
                format!("无法从 {crs} 转换到 EPSG:4490：{source}")
            }
            ProjError::Convert { crs, x, y, message } => {
                format!("无法把 ({x}, {y}) 从 {crs} 转换：{message}")
            }
        }
    }
}

/// A ready transformation to CGCS2000 longitude/latitude (EPSG:4490, lon first).
pub struct ToCgcs2000 {
    crs: String,
    proj: proj::Proj,
}

impl ToCgcs2000 {
    /// Sets up the transformation from `crs` (anything PROJ accepts: `EPSG:4549`, WKT,
    /// a PROJ string). Axis order is normalised to easting/longitude first.
    pub fn new(crs: &str) -> Result<Self, ProjError> {
        let proj = proj::Proj::new_known_crs(crs, "EPSG:4490", None).map_err(|source| {
            ProjError::Create {
                crs: crs.to_string(),
                source,
            }
        })?;
        Ok(ToCgcs2000 {
            crs: crs.to_string(),
            proj,
        })
    }

    fn error(&self, c: Coord<f64>, message: String) -> ProjError {
        ProjError::Convert {
            crs: self.crs.clone(),
            x: c.x,
            y: c.y,
            message,
        }
    }

    /// Transforms many coordinates in place with one PROJ call (much faster than one
    /// call per coordinate for whole files).
    pub fn convert_all(&self, coords: &mut [Coord<f64>]) -> Result<(), ProjError> {
        let mut pairs: Vec<(f64, f64)> = coords.iter().map(|c| (c.x, c.y)).collect();
        self.proj.convert_array(&mut pairs).map_err(|e| {
            let first = coords.first().copied();
            self.error(
                first.unwrap_or(Coord {
                    x: f64::NAN,
                    y: f64::NAN,
                }),
                e.to_string(),
            )
        })?;
        for (c, (x, y)) in coords.iter_mut().zip(pairs) {
            if !x.is_finite() || !y.is_finite() {
                return Err(self.error(*c, "result is not finite".into()));
            }
            *c = Coord { x, y };
        }
        Ok(())
    }

    /// Transforms one coordinate.
    pub fn convert(&self, c: Coord<f64>) -> Result<Coord<f64>, ProjError> {
        let (x, y) = self
            .proj
            .convert((c.x, c.y))
            .map_err(|e| self.error(c, e.to_string()))?;
        if !x.is_finite() || !y.is_finite() {
            return Err(self.error(c, "result is not finite".into()));
        }
        Ok(Coord { x, y })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::coord;

    #[test]
    fn a_gauss_kruger_zone_40_point_lands_in_binzhou() {
        // EPSG:4528 is CGCS2000 / 3-degree Gauss-Kruger zone 40 (central meridian 120°E),
        // false easting 40 500 000 m. Convert a known lon/lat forward and back.
        let to_gk = proj::Proj::new_known_crs("EPSG:4490", "EPSG:4528", None).unwrap();
        let (e, n) = to_gk.convert((118.0, 37.4)).unwrap();
        assert!((40_000_000.0..41_000_000.0).contains(&e), "{e}");
        let back = ToCgcs2000::new("EPSG:4528")
            .unwrap()
            .convert(coord! {x: e, y: n})
            .unwrap();
        assert!(
            (back.x - 118.0).abs() < 1e-9 && (back.y - 37.4).abs() < 1e-9,
            "{back:?}"
        );
    }

    #[test]
    fn an_unknown_crs_is_a_clear_error() {
        let err = ToCgcs2000::new("EPSG:999999").err().unwrap();
        assert!(err.to_string().contains("EPSG:999999"));
    }
}
