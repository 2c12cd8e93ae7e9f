//! Operations that combine the engine with grid data.

pub mod check;
pub mod hierarchy;
pub mod live;
pub mod locate;
pub mod plans;
