//! Alert hooks: tell a team within seconds what happened to a rollout.
//!
//! - [`events`]: which alerts are due, from the Rollout's persisted status (pure).
//! - [`message`]: what an alert says, rendered for Slack, Teams, PagerDuty and
//!   the signed generic webhook (pure).
//! - [`alertmanager`]: the Alertmanager API v2 body, its stable label set,
//!   and when a firing alert ends there (pure).
//! - [`deliver`]: the HTTP delivery with retries, back-off and `Retry-After`,
//!   and when a pending alert's next round is due.
//! - [`state`]: what a delivery means for the alert's record and for its
//!   target's status (pure).
//!
//! The task that runs them beside the reconcile loop is `reconcile::alerts`.

pub mod alertmanager;
pub mod deliver;
pub mod events;
pub mod message;
mod render;
pub mod state;

pub use deliver::{Delivery, DeliveryOutcome, NextRound, Outgoing, Policy, deliver, next_round};
pub use events::{Action, Due, Occurrence, TargetKey, Trigger, due, occurrences};
pub use message::{Alert, Input, build};
