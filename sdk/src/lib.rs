//! sluice's SDK: the wire types of the REST API and of the worker protocol, the HTTP client for the
//! server, and reading artifacts beneath their directory with no link followed (the server and the
//! worker both serve artifacts through it). The pipeline model is `sluice-spec`; no server, database
//! or container code lives here.

pub mod api;
pub mod artifacts;
pub mod beneath;
pub mod client;
