//! End-to-end tests of Sluice on a real Kubernetes control plane.
//!
//! Needs the stack from `tests/cluster/` (built by `tests/cluster/build.sh`,
//! which `.ci/run` calls first). Each test gets its own namespace and its own
//! controller process.

mod alerts;
mod analysis;
mod blue_green;
mod canary;
mod git_loop;
mod harness;
mod measure;
mod rbac;
mod robustness;
mod support;
mod testbed;
