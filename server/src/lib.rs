//! sluice's server: the pure engine, the SQLite store, the REST API and the scheduler that ties them.

pub mod api;
pub mod engine;
pub mod scheduler;
mod serve;
pub mod store;
mod ui;

pub use serve::{serve, Server, ServerConfig};
