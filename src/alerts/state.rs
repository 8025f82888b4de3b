//! What a delivery (or a delivery that could not start) means for the
//! alert's record in `status.alerts` and for its target's status: pure
//! functions beside their tests. The worker in `reconcile::alerts` reads the
//! Rollout and the targets, sends, and writes what these return.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::deliver::{DeliveryOutcome, NextRound, Policy, next_round};
use crate::crd::{AlertRecord, AlertState, AlertTargetStatus};

/// One alert to one target, as the worker found it before this round.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    pub event_id: &'a str,
    /// `AlertTarget/<namespace>/<name>` or `ClusterAlertTarget/<name>`.
    pub target: &'a str,
    /// The event's name, e.g. `aborted`.
    pub event: &'a str,
    /// Attempts made in earlier rounds.
    pub earlier_attempts: i32,
    /// When the first round that failed to deliver it started.
    pub pending_since: Option<Timestamp>,
}

impl Slot<'_> {
    /// The record in `state` after `attempts` in all.
    pub fn record(
        &self,
        state: AlertState,
        attempts: i32,
        message: Option<String>,
        now: Timestamp,
    ) -> AlertRecord {
        AlertRecord {
            event_id: self.event_id.to_string(),
            target: self.target.to_string(),
            state,
            attempts,
            at: Time(now),
            message,
            pending_since: None,
            next_attempt: None,
            active_until: None,
        }
    }

    /// Not delivered (`problem`), before or after attempts: `Pending` with
    /// the next round's time while the target's `retryFor` lasts, else `Failed`.
    pub fn undelivered(
        &self,
        problem: &str,
        attempts: i32,
        policy: &Policy,
        round_started: Timestamp,
        now: Timestamp,
        jitter: f64,
    ) -> AlertRecord {
        let round = next_round(
            policy,
            self.pending_since.unwrap_or(round_started),
            now,
            jitter,
        );
        let (event, target) = (self.event, self.target);
        let retry_for = humantime::format_duration(policy.retry_for);
        let (state, note, next_attempt, since) = match round {
            NextRound::At { since, at } => (
                AlertState::Pending,
                format!(
                    "{event} alert to {target} not delivered yet: {problem}; next try at {at:.0}, for up to {retry_for}"
                ),
                Some(Time(at)),
                since,
            ),
            NextRound::GiveUp { since } => (
                AlertState::Failed,
                format!(
                    "{event} alert to {target} given up: not delivered within {retry_for} of {since:.0}: {problem}"
                ),
                None,
                since,
            ),
        };
        AlertRecord {
            pending_since: Some(Time(since)),
            next_attempt,
            ..self.record(state, attempts, Some(note), now)
        }
    }

    /// The record after a delivery of `attempts_made` attempts that ended in `outcome`.
    pub fn delivered(
        &self,
        outcome: &DeliveryOutcome,
        attempts_made: u32,
        policy: &Policy,
        round_started: Timestamp,
        now: Timestamp,
        jitter: f64,
    ) -> AlertRecord {
        let attempts = self
            .earlier_attempts
            .saturating_add(i32::try_from(attempts_made).unwrap_or(i32::MAX));
        let tries = if attempts == 1 {
            "1 attempt".to_string()
        } else {
            format!("{attempts} attempts")
        };
        let (event, target) = (self.event, self.target);
        match outcome {
            DeliveryOutcome::Delivered { status } => AlertRecord {
                // How long it waited stays visible once it got through.
                pending_since: self.pending_since.map(Time),
                ..self.record(
                    AlertState::Sent,
                    attempts,
                    Some(format!(
                        "{event} alert delivered to {target} (HTTP {status}, {tries})"
                    )),
                    now,
                )
            },
            DeliveryOutcome::Rejected { detail, .. } => self.record(
                AlertState::Failed,
                attempts,
                Some(format!(
                    "{event} alert to {target} rejected, not retried: {detail}"
                )),
                now,
            ),
            DeliveryOutcome::GaveUp { detail } => self.undelivered(
                &format!("{tries} failed: {detail}"),
                attempts,
                policy,
                round_started,
                now,
                jitter,
            ),
        }
    }
}

/// Event reason of a record's state.
pub fn event_reason(state: AlertState) -> &'static str {
    match state {
        AlertState::Sent => "AlertSent",
        AlertState::Pending => "AlertPending",
        _ => "AlertFailed",
    }
}

/// The target's `Ready` reason after a delivery ended in `state`.
pub fn target_reason(state: AlertState) -> &'static str {
    match state {
        AlertState::Sent => "Delivering",
        AlertState::Pending => "DeliveryPending",
        _ => "DeliveryFailing",
    }
}

/// A target's status after a delivery (`ok`) or a failure, with `reason`
/// and `note` for its `Ready` condition; the transition time moves only when
/// `Ready` changes.
pub fn target_status(
    old: &AlertTargetStatus,
    ok: bool,
    reason: &str,
    note: &str,
    now: Timestamp,
) -> AlertTargetStatus {
    let now = Time(now);
    let status_word = if ok { "True" } else { "False" };
    let since = old
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == status_word)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    AlertTargetStatus {
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: status_word.into(),
            reason: reason.into(),
            message: note.chars().take(1000).collect(),
            observed_generation: None,
            last_transition_time: since,
        }],
        consecutive_failures: if ok {
            0
        } else {
            old.consecutive_failures.saturating_add(1)
        },
        last_delivered: if ok {
            Some(now.clone())
        } else {
            old.last_delivered.clone()
        },
        last_failed: if ok {
            old.last_failed.clone()
        } else {
            Some(now)
        },
        last_error: if ok {
            old.last_error.clone()
        } else {
            Some(note.chars().take(500).collect())
        },
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
