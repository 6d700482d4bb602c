//! sluice's worker: leases ready tasks from the server over HTTP, runs each through a container
//! runtime, ships its logs while it runs, and reports its outputs. It knows the server only by URL.

mod agent;
pub mod images;
pub mod kfp;
pub mod network;
mod outcome;
mod outputs;
mod placed;
pub mod reporter;
pub mod runtime;
use sluice_sdk::artifacts::transfer;

pub use agent::{run, WorkerConfig};
pub use reporter::logship::LogPolicy;
