//! Reading and writing boundary and point files. GeoJSON is always available; the
//! formats GDAL reads arrive with the import command.

#[cfg(feature = "proj")]
pub mod gdal_files;
pub mod geojson;
pub mod mapping;
pub mod points;
pub mod upload;
#[cfg(feature = "proj")]
pub mod upload_reader;

pub use geojson::{FeatureProblem, FeatureRef, InputError, Position, ReadOptions};
