//! The rollout engine: a pure `plan` over a Rollout and what was observed.

mod blue_green;
mod canary;
pub mod conditions;
pub mod controls;
pub mod hash;
pub mod observed;
pub mod plan;
pub mod revisions;
pub mod route;
pub mod spec;

pub use canary::{canary_replicas, weight_at};
pub use observed::{Lookup, Observed, RouteState, ServiceState};
pub use plan::{Plan, PlannedEvent, Write, plan};

#[cfg(test)]
mod blue_green_tests;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(crate) mod testkit;
