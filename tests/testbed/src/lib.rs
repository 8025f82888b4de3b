//! Test-only tools for Sluice's end-to-end stack and demo.
//!
//! The only simulated part of the stack lives here: `sluice-trafficgen` plays
//! the role of real users and of the application's own instrumentation.
//! `sluice-gitops-sync` plays Argo CD's auto-sync against a local Git repository.

pub mod cluster_view;
pub mod fault;
pub mod gitops;
pub mod route_match;
pub mod split;
pub mod traffic;
