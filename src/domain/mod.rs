//! Plain data and its invariants; no I/O, no async.

pub mod access;
pub mod case;
pub mod grid;
pub mod matter;
pub mod msg;
pub mod region;
pub mod text;
mod time;

pub use access::{Grant, UserRole};
pub use case::{CaseSource, CaseState, CentreLevel, ReturnReason};
pub use grid::{Grid, Layer, MAX_GRID_NAME_CHARS, MAX_GRID_VERTICES};
pub use matter::{Category, MatterStatus, TimeLimit, TimeUnit};
pub use msg::{Lang, Localised, Msg};
pub use region::{Level, RegionCode, RegionRef};
pub use time::{DayKind, china, date_in_china, in_china, now, set_now, today_in_china};
