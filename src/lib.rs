//! # wangge (网格)
//!
//! The spatial backbone of a municipality's social-governance grid service: it keeps
//! the official grid boundaries, proves that they tile their villages and communities
//! exactly, and tells any caller which grid a location belongs to.
//!
//! ## Code tour
//! * [`spatial`] — the engine, pure and synchronous: [`spatial::Partition`] answers
//!   point lookups, [`spatial::coverage::validate`] proves a tiling, [`spatial::synth`]
//!   makes deterministic test partitions, [`spatial::crs`] converts GCJ-02/BD-09 and
//!   (feature `proj`) any CRS.
//! * [`domain`] — plain data: administrative levels and codes, grids and layers.
//! * [`io`] — GeoJSON in and out, with errors that name the feature and position.
//! * [`workflow`] — combines the layers: a [`workflow::locate::GridLocator`] turns the
//!   engine's polygon indices into grids with their ancestors.
//!
//! Dependencies point one way: `cli`, `http` → `app` → `workflow` → `spatial`, `io` → `domain`.

/// The application layer: every use case, authorised and audited.
pub mod app;
/// Principals, roles over region subtrees, tokens, passwords, masking (no HTTP).
pub mod auth;
/// Plain data and invariants: levels, codes, grids.
pub mod domain;
/// Crate-wide error type.
pub mod error;
/// The HTTP service (axum): locate, plans, public cards, OGC API – Features.
pub mod http;
/// Reading and writing boundary files.
pub mod io;
/// The allocator (mimalloc) and how it hands memory back.
pub mod memory;
/// Service settings (file + environment), validated at start-up.
pub mod settings;
/// The spatial engine (no I/O).
pub mod spatial;
/// Storage of regions, grid versions, plans and members (PostGIS, SQLite).
pub mod store;
/// Operations that combine the engine with grid data.
pub mod workflow;

pub use error::{Error, Result};
