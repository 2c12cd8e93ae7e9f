//! The spatial engine: synchronous, pure, no I/O. It knows polygons and their indices,
//! not grids, plans or HTTP; callers attach meaning to the indices.

pub mod coverage;
pub mod crs;
pub mod geom;
pub mod loops;
pub mod measure;
pub(crate) mod parallel;
pub mod partition;
pub mod pip;
pub mod synth;
pub mod tiles;

pub use partition::{LocateOptions, Location, Partition};
