//! Operations that combine the engine with grid data.

pub mod hierarchy;
pub mod locate;
