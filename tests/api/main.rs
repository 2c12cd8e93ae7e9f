//! Integration tests, one binary: the engine against real boundaries and GEOS's
//! verdicts, property tests on synthetic partitions, and the command line as a user
//! runs it.

mod audit_walk;
mod authz;
mod backends;
mod browser;
mod cli;
mod clients;
mod clock;
mod commands;
mod dispatch;
mod endpoints;
mod faults;
mod follow_up;
mod helpers;
mod hostile;
mod import_files;

mod injected;
mod languages;
mod map;
mod mapping;
mod plan_scope;
mod properties;
mod real_data;
mod repair;
mod service;
mod store_contract;
mod webhooks;
