//! Operations that combine the engine with grid data.

pub mod check;
pub mod duty;
pub mod hierarchy;
pub mod live;
pub mod locate;
pub mod plans;
