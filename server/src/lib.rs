//! sluice's server: the pure engine, the SQLite store, the REST API and the scheduler that ties them.

pub mod engine;
pub mod store;
pub mod scheduler;
pub mod api;
mod serve;

pub use serve::{serve, ServerConfig};
