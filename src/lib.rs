//! Sluice: progressive delivery for Kubernetes.
//!
//! The crate is a library with thin binaries: `crd` holds the API types,
//! `engine` the pure planning core, and the rest is I/O around it.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod engine;
pub mod metrics;
pub mod reconcile;
pub mod revert;
pub mod server;
pub mod telemetry;
