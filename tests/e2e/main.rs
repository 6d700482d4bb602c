//! End-to-end tests of the `sluice` binary and its crates: a real server on a random port with a
//! temporary SQLite file, real workers (in-process, or as separate processes killed with SIGKILL),
//! the fake runtime standing in for containers.

mod harness;

mod access;
mod api;
mod catalog;
mod ci;
mod cli;
mod containers;
mod hostile;
mod hosts;
mod invariants;
mod objects;
mod ops;
mod organise;
mod pg;
mod placement;
mod processes;
mod registry;
mod schedules;
mod shared;
mod store;
mod ui;
