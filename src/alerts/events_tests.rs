//! Which alerts are due, table by table.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::crd::{
    AbortStatus, AlertSeverities, AlertSubscription, AlertsSpec, AnalysisRunRef, GitRevertStatus,
    PromotionStatus,
};
use crate::engine::testkit::{rollout as test_rollout, weight};

fn at(s: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + s).expect("time"))
}

fn now(s: i64) -> Timestamp {
    at(s).0
}

fn subscribed(subscriptions: Vec<AlertSubscription>) -> Rollout {
    let mut r = test_rollout(4, Some(vec![weight(25), weight(50)]), true);
    r.metadata.namespace = Some("shop".into());
    r.spec.alerts = Some(AlertsSpec {
        subscriptions,
        links: Vec::new(),
    });
    r
}

fn to(target: &str, events: Option<Vec<AlertEvent>>) -> AlertSubscription {
    AlertSubscription {
        target: target.into(),
        events,
        ..Default::default()
    }
}

fn types(pairs: &[(&str, AlertTargetType)]) -> BTreeMap<TargetKey, AlertTargetType> {
    pairs
        .iter()
        .map(|(name, kind)| {
            (
                TargetKey {
                    namespace: Some("shop".into()),
                    name: (*name).into(),
                },
                *kind,
            )
        })
        .collect()
}

fn aborted_status() -> RolloutStatus {
    RolloutStatus {
        phase: Some(RolloutPhase::Aborted),
        stable_revision: Some("stable1".into()),
        canary_revision: Some("canary1".into()),
        abort: Some(AbortStatus {
            revision: "canary1".into(),
            reason: "AnalysisFailed".into(),
            message: "metric errors failed".into(),
            at: at(0),
            step_index: 1,
            weight: 25,
            cannot_tell: false,
            keep_git: false,
        }),
        ..Default::default()
    }
}

fn record(event_id: &str, target: &str, state: AlertState) -> AlertRecord {
    AlertRecord {
        event_id: event_id.into(),
        target: target.into(),
        state,
        attempts: 1,
        at: at(1),
        message: None,
        pending_since: None,
        next_attempt: None,
        active_until: None,
    }
}

#[test]
fn an_abort_is_due_once_per_subscribed_target_with_its_severity() {
    let mut slack = to("team-slack", None);
    slack.severities = Some(AlertSeverities {
        aborted: Some(AlertSeverity::Error),
        ..Default::default()
    });
    let rollout = subscribed(vec![slack, to("pager", Some(vec![AlertEvent::Promoted]))]);
    let kinds = types(&[
        ("team-slack", AlertTargetType::Slack),
        ("pager", AlertTargetType::PagerDuty),
    ]);
    let due = due(&rollout, "shop", &aborted_status(), &kinds, now(5));
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].occurrence.id, "aborted/canary1/1800000000");
    assert_eq!(due[0].target.label(), "AlertTarget/shop/team-slack");
    assert_eq!(due[0].severity, AlertSeverity::Error);
    assert_eq!(due[0].action, Action::Send);
}

#[test]
fn what_was_sent_failed_or_is_unconfirmed_is_not_due_again() {
    let rollout = subscribed(vec![to("team-slack", None)]);
    let kinds = types(&[("team-slack", AlertTargetType::Slack)]);
    for state in [
        AlertState::Sent,
        AlertState::Failed,
        AlertState::Unconfirmed,
    ] {
        let mut status = aborted_status();
        status.alerts = vec![record(
            "aborted/canary1/1800000000",
            "AlertTarget/shop/team-slack",
            state,
        )];
        assert!(
            due(&rollout, "shop", &status, &kinds, now(5)).is_empty(),
            "{state}"
        );
    }
}

#[test]
fn an_interrupted_delivery_is_resent_only_where_the_receiver_deduplicates() {
    let rollout = subscribed(vec![to("slack", None), to("hook", None), to("pd", None)]);
    let kinds = types(&[
        ("slack", AlertTargetType::Slack),
        ("hook", AlertTargetType::Webhook),
        ("pd", AlertTargetType::PagerDuty),
    ]);
    let mut status = aborted_status();
    status.alerts = ["slack", "hook", "pd"]
        .iter()
        .map(|t| {
            record(
                "aborted/canary1/1800000000",
                &format!("AlertTarget/shop/{t}"),
                AlertState::Sending,
            )
        })
        .collect();
    let actions: BTreeMap<String, Action> = due(&rollout, "shop", &status, &kinds, now(5))
        .into_iter()
        .map(|d| (d.target.name, d.action))
        .collect();
    assert_eq!(actions["slack"], Action::MarkUnconfirmed);
    assert_eq!(actions["hook"], Action::Send);
    assert_eq!(actions["pd"], Action::Send);
}

#[test]
fn old_events_are_not_alerted_to_a_newly_added_target() {
    let rollout = subscribed(vec![to("slack", Some(vec![AlertEvent::Promoted]))]);
    let kinds = types(&[("slack", AlertTargetType::Slack)]);
    let status = RolloutStatus {
        phase: Some(RolloutPhase::Healthy),
        stable_revision: Some("new".into()),
        last_promotion: Some(PromotionStatus {
            revision: "new".into(),
            previous: "old".into(),
            at: at(0),
        }),
        ..Default::default()
    };
    assert_eq!(due(&rollout, "shop", &status, &kinds, now(60)).len(), 1);
    assert!(due(&rollout, "shop", &status, &kinds, now(2 * 3600)).is_empty());
}

#[test]
fn targets_that_cannot_be_read_are_skipped() {
    let rollout = subscribed(vec![to("missing", None)]);
    assert!(
        due(
            &rollout,
            "shop",
            &aborted_status(),
            &BTreeMap::new(),
            now(1)
        )
        .is_empty()
    );
}

#[test]
fn each_event_is_read_off_the_status() {
    let mut status = RolloutStatus {
        phase: Some(RolloutPhase::Paused),
        canary_revision: Some("c".into()),
        current_step_index: Some(2),
        current_analysis: Some(AnalysisRunRef {
            name: "web-c-2".into(),
            phase: Some(AnalysisPhase::Inconclusive),
            message: None,
        }),
        background_analysis: Some(AnalysisRunRef {
            name: "web-c-bg".into(),
            phase: Some(AnalysisPhase::Error),
            message: None,
        }),
        git_revert: Some(GitRevertStatus {
            state: RevertState::Failed,
            canary_revision: "b".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let ids: Vec<String> = occurrences(&status).into_iter().map(|o| o.id).collect();
    assert_eq!(
        ids,
        [
            "revertFailed/b",
            "stepCompleted/c/1",
            "inconclusive/c/2",
            "analysisError/web-c-bg"
        ]
    );
    status.current_analysis = None;
    status.git_revert = Some(GitRevertStatus {
        state: RevertState::Reverted,
        canary_revision: "b".into(),
        revert_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        ..Default::default()
    });
    let ids: Vec<String> = occurrences(&status).into_iter().map(|o| o.id).collect();
    assert!(ids.contains(&"paused/c/2".to_string()), "{ids:?}");
    assert!(
        ids.contains(&"reverted/b/0123456789ab".to_string()),
        "{ids:?}"
    );
}

#[test]
fn recovery_resolves_the_pagerduty_incident_it_opened_and_nothing_else() {
    let rollout = subscribed(vec![to("pd", None), to("slack", None)]);
    let kinds = types(&[
        ("pd", AlertTargetType::PagerDuty),
        ("slack", AlertTargetType::Slack),
    ]);
    let status = RolloutStatus {
        phase: Some(RolloutPhase::Healthy),
        stable_revision: Some("stable1".into()),
        alerts: vec![
            record(
                "aborted/canary1/1800000000",
                "AlertTarget/shop/pd",
                AlertState::Sent,
            ),
            record(
                "aborted/canary1/1800000000",
                "AlertTarget/shop/slack",
                AlertState::Sent,
            ),
        ],
        ..Default::default()
    };
    let due = due(&rollout, "shop", &status, &kinds, now(100));
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].target.name, "pd");
    assert_eq!(
        due[0].occurrence.trigger,
        Trigger::Resolve {
            event_id: "aborted/canary1/1800000000".into()
        }
    );
    // Still aborted: nothing to resolve yet.
    let mut aborted = aborted_status();
    aborted.alerts = status.alerts.clone();
    assert!(
        occurrences(&aborted)
            .iter()
            .all(|o| !matches!(o.trigger, Trigger::Resolve { .. }))
    );
}

#[test]
fn records_stay_bounded_and_keep_what_current_events_need() {
    let current = occurrences(&aborted_status());
    let mut records = vec![record(
        "aborted/canary1/1800000000",
        "AlertTarget/shop/a",
        AlertState::Sent,
    )];
    for i in 0..100 {
        records = upsert(
            &records,
            record(
                &format!("stepCompleted/x/{i}"),
                "AlertTarget/shop/a",
                AlertState::Sent,
            ),
            &current,
        );
    }
    assert_eq!(records.len(), MAX_RECORDS);
    assert_eq!(records[0].event_id, "aborted/canary1/1800000000");
    assert_eq!(
        records.last().map(|r| r.event_id.as_str()),
        Some("stepCompleted/x/99")
    );
    // Replacing a record keeps one per event and target.
    let replaced = upsert(
        &records,
        record(
            "aborted/canary1/1800000000",
            "AlertTarget/shop/a",
            AlertState::Failed,
        ),
        &current,
    );
    assert_eq!(replaced.len(), MAX_RECORDS);
    assert_eq!(
        replaced
            .iter()
            .filter(|r| r.event_id.starts_with("aborted/"))
            .count(),
        1
    );
}

#[test]
fn a_pending_alert_is_due_again_at_its_next_attempt_even_hours_after_the_event() {
    let rollout = subscribed(vec![to("team-slack", None)]);
    let kinds = types(&[("team-slack", AlertTargetType::Slack)]);
    let mut status = aborted_status();
    let mut pending = record(
        "aborted/canary1/1800000000",
        "AlertTarget/shop/team-slack",
        AlertState::Pending,
    );
    pending.pending_since = Some(at(1));
    pending.next_attempt = Some(at(3 * 3600));
    status.alerts = vec![pending];
    assert!(due(&rollout, "shop", &status, &kinds, now(3 * 3600 - 1)).is_empty());
    let again = due(&rollout, "shop", &status, &kinds, now(3 * 3600));
    assert_eq!(again.len(), 1, "past the one-hour age limit, still due");
    assert_eq!(again[0].action, Action::Send);
    assert_eq!(
        next_retry(&rollout, "shop", &status),
        Some(now(3 * 3600)),
        "the alerter wakes up for it"
    );
}

#[test]
fn no_wake_up_for_pending_alerts_of_past_events_or_dropped_targets() {
    let mut status = aborted_status();
    let mut stale = record(
        "aborted/old/1700000000",
        "AlertTarget/shop/team-slack",
        AlertState::Pending,
    );
    stale.next_attempt = Some(at(10));
    let mut unsubscribed = record(
        "aborted/canary1/1800000000",
        "AlertTarget/shop/gone",
        AlertState::Pending,
    );
    unsubscribed.next_attempt = Some(at(10));
    status.alerts = vec![stale, unsubscribed];
    let rollout = subscribed(vec![to("team-slack", None)]);
    assert_eq!(next_retry(&rollout, "shop", &status), None);
}

/// A delivered abort to an Alertmanager target, firing, next re-send at `next`.
fn firing(next: i64) -> AlertRecord {
    AlertRecord {
        next_attempt: Some(at(next)),
        active_until: Some(at(next + 180)),
        ..record(
            "aborted/canary1/1800000000",
            "AlertTarget/shop/am",
            AlertState::Sent,
        )
    }
}

#[test]
fn a_firing_alertmanager_alert_is_sent_again_each_interval_until_the_rollout_recovers() {
    let mut sub = to("am", None);
    sub.severities = Some(AlertSeverities {
        aborted: Some(AlertSeverity::Warning),
        ..Default::default()
    });
    let rollout = subscribed(vec![sub]);
    let kinds = types(&[("am", AlertTargetType::Alertmanager)]);
    let mut status = aborted_status();
    status.alerts = vec![firing(60)];
    // Not before its time, and the restarted controller reads the same.
    assert!(due(&rollout, "shop", &status, &kinds, now(59)).is_empty());
    assert_eq!(next_retry(&rollout, "shop", &status), Some(now(60)));
    let resend = due(&rollout, "shop", &status, &kinds, now(60));
    assert_eq!(resend.len(), 1, "{resend:?}");
    assert_eq!(resend[0].action, Action::KeepAlive);
    assert_eq!(resend[0].severity, AlertSeverity::Warning);
    assert_eq!(resend[0].occurrence.id, "aborted/canary1/1800000000");

    // `retry` cleared the abort but the Rollout is not Healthy yet: still
    // firing, about the same abort (read back from its id), hours later too.
    status.abort = None;
    status.phase = Some(RolloutPhase::Progressing);
    let resend = due(&rollout, "shop", &status, &kinds, now(7200));
    assert_eq!(resend.len(), 1, "{resend:?}");
    assert_eq!(resend[0].action, Action::KeepAlive);
    assert_eq!(resend[0].occurrence.revision, "canary1");
    assert_eq!(resend[0].occurrence.at, Some(now(0)));

    // Healthy again: no re-send, the resolve instead, with the abort's
    // severity (Alertmanager matches the resolve by the whole label set).
    status.phase = Some(RolloutPhase::Healthy);
    let resolve = due(&rollout, "shop", &status, &kinds, now(7200));
    assert_eq!(resolve.len(), 1, "{resolve:?}");
    assert_eq!(resolve[0].action, Action::Send);
    assert_eq!(
        resolve[0].occurrence.id,
        "resolved/aborted/canary1/1800000000"
    );
    assert_eq!(resolve[0].severity, AlertSeverity::Warning);
    assert_eq!(next_retry(&rollout, "shop", &status), None);
}

#[test]
fn a_resolved_or_interrupted_alertmanager_alert_is_handled_once() {
    let rollout = subscribed(vec![to("am", None)]);
    let kinds = types(&[("am", AlertTargetType::Alertmanager)]);
    // A resolve recorded (even one still pending) ends the re-sends, also
    // when the Rollout aborts again later.
    for state in [AlertState::Sent, AlertState::Pending, AlertState::Failed] {
        let mut status = aborted_status();
        status.abort = None;
        status.phase = Some(RolloutPhase::Progressing);
        let mut resolved = record(
            "resolved/aborted/canary1/1800000000",
            "AlertTarget/shop/am",
            state,
        );
        resolved.next_attempt = Some(at(1_000_000));
        status.alerts = vec![firing(60), resolved];
        assert!(
            due(&rollout, "shop", &status, &kinds, now(600)).is_empty(),
            "{state}"
        );
    }
    // A send a restart cut short goes out again: Alertmanager merges by labels.
    let mut status = aborted_status();
    status.alerts = vec![record(
        "aborted/canary1/1800000000",
        "AlertTarget/shop/am",
        AlertState::Sending,
    )];
    let again = due(&rollout, "shop", &status, &kinds, now(5));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].action, Action::Send);
}

#[test]
fn a_firing_alertmanager_record_outlives_trimming() {
    let mut status = aborted_status();
    status.abort = None;
    status.phase = Some(RolloutPhase::Progressing);
    let mut records = vec![firing(60)];
    for step in 0..(MAX_RECORDS as i32 + 5) {
        let r = record(
            &format!("stepCompleted/canary2/{step}"),
            "AlertTarget/shop/am",
            AlertState::Sent,
        );
        records = upsert(&records, r, &occurrences(&status));
    }
    assert_eq!(records.len(), MAX_RECORDS);
    assert!(
        records
            .iter()
            .any(|r| r.event_id == "aborted/canary1/1800000000")
    );
}

#[test]
fn a_target_that_cannot_be_read_is_looked_at_again_later_not_in_a_loop() {
    let rollout = subscribed(vec![to("am", None), to("pd", None)]);
    let mut status = aborted_status();
    // Overdue for a long time: due at once if the target could be read.
    status.alerts = vec![firing(-3600)];
    let unreadable = ["AlertTarget/shop/am".to_string()];
    assert_eq!(
        next_wake(&rollout, "shop", &status, &[], now(600)),
        Some(now(-3600))
    );
    assert_eq!(
        next_wake(&rollout, "shop", &status, &unreadable, now(600)),
        Some(now(600))
    );
    // A readable target's earlier time still wins.
    let mut pending = record(
        "aborted/canary1/1800000000",
        "AlertTarget/shop/pd",
        AlertState::Pending,
    );
    pending.next_attempt = Some(at(30));
    status.alerts.push(pending);
    assert_eq!(
        next_wake(&rollout, "shop", &status, &unreadable, now(600)),
        Some(now(30))
    );
    assert_eq!(
        next_wake(&rollout, "shop", &status, &[], now(600)),
        Some(now(-3600))
    );
}
