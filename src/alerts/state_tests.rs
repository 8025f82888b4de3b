//! `alerts::state`: delivery outcomes as records, and targets' status.

use std::time::Duration;

use super::*;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn slot(earlier_attempts: i32, pending_since: Option<Timestamp>) -> Slot<'static> {
    Slot {
        event_id: "aborted/c/1",
        target: "AlertTarget/shop/pd",
        event: "aborted",
        earlier_attempts,
        pending_since,
    }
}

fn policy() -> Policy {
    Policy {
        retry_for: Duration::from_secs(3600),
        ..Policy::default()
    }
}

#[test]
fn a_delivery_counts_every_attempt_and_keeps_how_long_it_waited() {
    let waited = slot(3, Some(at(0)));
    let record = waited.delivered(
        &DeliveryOutcome::Delivered { status: 202 },
        2,
        &policy(),
        at(100),
        at(101),
        0.5,
    );
    assert_eq!(record.state, AlertState::Sent);
    assert_eq!(record.attempts, 5);
    assert_eq!(record.pending_since, Some(Time(at(0))));
    assert_eq!(record.next_attempt, None);
    assert_eq!(
        record.message.as_deref(),
        Some("aborted alert delivered to AlertTarget/shop/pd (HTTP 202, 5 attempts)")
    );
    let first = slot(0, None).delivered(
        &DeliveryOutcome::Delivered { status: 200 },
        1,
        &policy(),
        at(0),
        at(0),
        0.5,
    );
    assert_eq!(first.pending_since, None);
    assert!(
        first
            .message
            .as_deref()
            .is_some_and(|m| m.ends_with("(HTTP 200, 1 attempt)"))
    );
}

#[test]
fn a_rejection_fails_at_once_and_a_failed_round_waits_for_the_next() {
    let rejected = slot(0, None).delivered(
        &DeliveryOutcome::Rejected {
            status: 400,
            detail: "bad payload".into(),
        },
        1,
        &policy(),
        at(0),
        at(0),
        0.5,
    );
    assert_eq!(rejected.state, AlertState::Failed);
    assert_eq!(rejected.next_attempt, None);

    let failed = slot(0, None).delivered(
        &DeliveryOutcome::GaveUp {
            detail: "connection refused".into(),
        },
        3,
        &policy(),
        at(0),
        at(10),
        0.5,
    );
    assert_eq!(failed.state, AlertState::Pending);
    assert_eq!(failed.attempts, 3);
    assert_eq!(failed.pending_since, Some(Time(at(0))));
    assert!(
        failed
            .next_attempt
            .as_ref()
            .is_some_and(|next| next.0 > at(10))
    );
    let note = failed.message.unwrap_or_default();
    assert!(
        note.contains("3 attempts failed: connection refused"),
        "{note}"
    );
}

#[test]
fn past_retry_for_an_undelivered_alert_is_given_up() {
    let old = slot(7, Some(at(0)));
    let record = old.undelivered("secret missing", 7, &policy(), at(4000), at(4000), 0.5);
    assert_eq!(record.state, AlertState::Failed);
    assert_eq!(record.pending_since, Some(Time(at(0))));
    assert!(
        record
            .message
            .as_deref()
            .is_some_and(|m| m.contains("given up"))
    );
    assert_eq!(event_reason(record.state), "AlertFailed");
    assert_eq!(target_reason(AlertState::Pending), "DeliveryPending");
}

#[test]
fn a_target_counts_failures_in_a_row_and_ready_moves_only_on_change() {
    let fresh = AlertTargetStatus::default();
    let failing = target_status(&fresh, false, "DeliveryFailing", "HTTP 500", at(0));
    let still = target_status(&failing, false, "DeliveryFailing", "HTTP 503", at(60));
    assert_eq!(still.consecutive_failures, 2);
    assert_eq!(still.conditions[0].status, "False");
    assert_eq!(still.conditions[0].last_transition_time, Time(at(0)));
    assert_eq!(still.last_error.as_deref(), Some("HTTP 503"));
    let back = target_status(&still, true, "Delivering", "delivered", at(120));
    assert_eq!(back.consecutive_failures, 0);
    assert_eq!(back.conditions[0].last_transition_time, Time(at(120)));
    assert_eq!(back.last_delivered, Some(Time(at(120))));
    assert_eq!(
        back.last_failed,
        Some(Time(at(60))),
        "the last failure stays visible"
    );
}
