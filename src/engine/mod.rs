//! The rollout engine: a pure `plan` over a Rollout and what was observed.

mod abort;
mod analysis_runs;
mod blue_green;
mod canary;
pub mod claims;
pub mod conditions;
pub mod controls;
pub mod deadline;
pub mod hash;
mod housekeeping;
mod known_bad;
pub mod named_routes;
pub mod observed;
pub mod plan;
mod pointing;
pub mod ratio;
pub mod restart;
pub use crate::crd::reasons;
pub mod revisions;
pub mod route;
pub mod route_extras;
pub mod spec;
pub mod stuck;
mod verdict;
pub mod workload;

pub use canary::{canary_replicas, stable_replicas, weight_at};
pub use known_bad::KNOWN_BAD_LIMIT;
pub use observed::{Lookup, Observed, RouteState, ServiceState};
pub use plan::{Plan, PlannedEvent, Write, plan};

#[cfg(test)]
mod blue_green_tests;
#[cfg(test)]
mod controls_tests;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod named_routes_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod restart_tests;
#[cfg(test)]
mod route_extras_tests;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod traffic_tests;
#[cfg(test)]
mod workload_tests;
