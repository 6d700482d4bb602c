//! sluice's SDK: the pipeline model and its YAML format with precise diagnostics, the API's wire
//! types, and an HTTP client for the server. No server, database or container code lives here.

pub mod api;
pub mod beneath;
pub mod client;
pub mod diag;
pub mod spec;
pub mod yaml;
