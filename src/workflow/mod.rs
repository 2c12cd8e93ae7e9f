//! Operations that combine the engine with grid data.

pub mod assessment;
pub mod audit;
pub mod calendar;
pub mod check;
pub mod dispatch;
pub mod duty;
pub mod hierarchy;
pub mod live;
pub mod locate;
pub mod plans;
pub mod repair;
pub mod state;
pub mod tiles;
pub mod webhooks;
