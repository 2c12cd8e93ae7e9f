//! Plain data and its invariants; no I/O, no async.

pub mod grid;
pub mod region;

pub use grid::{Grid, Layer};
pub use region::{Level, RegionCode, RegionRef};
