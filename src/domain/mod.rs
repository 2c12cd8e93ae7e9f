//! Plain data and its invariants; no I/O, no async.

pub mod access;
pub mod grid;
pub mod region;

pub use access::{Grant, UserRole};
pub use grid::{Grid, Layer};
pub use region::{Level, RegionCode, RegionRef};
