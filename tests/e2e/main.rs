//! End-to-end tests of Sluice on a real Kubernetes control plane.
//!
//! Needs the stack from `tests/cluster/` (built by `tests/cluster/build.sh`,
//! which `.ci/run` calls first). Each test gets its own namespace and its own
//! controller process.

mod adopt;
mod alert_outage;
mod alertmanager;
#[path = "../common/alertmanager.rs"]
mod alertmanager_server;
mod alerts;
mod analysis;
mod argocd;
mod argocd_book;
#[path = "../common/argocd_lua.rs"]
mod argocd_lua;
mod blue_green;
mod canary;
mod chart;
mod cli;
mod cli_verbs;
mod compat;
mod compat_analysis;
mod controls;
mod dashboard;
#[path = "../common/dashboard.rs"]
mod dashboard_file;
mod events;
mod git_chaos;
mod git_loop;
mod harness;
mod image;
mod job_provider;
mod measure;
mod migrate;
mod pod_root;
mod rbac;
#[path = "../common/receiver.rs"]
mod receiver;
mod restart;
mod robustness;
mod routing;
mod routing_named;
#[path = "../common/sshd.rs"]
mod sshd;
mod support;
mod tenancy;
mod testbed;
mod traffic_safety;
mod traffic_support;
