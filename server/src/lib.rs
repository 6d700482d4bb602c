//! sluice's server: the SQLite store, the REST API and the scheduler that ties them.

pub mod api;
pub mod metrics;
pub mod policy;
pub mod scheduler;
pub mod secrets;
mod serve;
mod shared;
pub mod store;
pub mod throwaway_s3;
pub mod tls;
mod ui;
pub mod wire;

pub use serve::{serve, Server, ServerConfig};
