//! sluice's server: the pure engine, the SQLite store, the REST API and the scheduler that ties them.

pub mod engine;
