//! Which alerts are due: a pure function of a Rollout's spec and status.
//!
//! Events are read off the persisted state (an abort, a Git revert record,
//! a promotion, the step index), not off the reconcile that caused them, so
//! a controller that restarts finds the same events with the same ids and
//! compares them with `status.alerts` to know what was already sent.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::crd::{
    AlertEvent, AlertRecord, AlertSeverity, AlertState, AlertTargetType, AnalysisPhase,
    RevertState, Rollout, RolloutPhase, RolloutStatus,
};

/// Events older than this when first seen are not alerted (a target added
/// to a Rollout that promoted last month should not hear about it now).
pub const MAX_EVENT_AGE: Duration = Duration::from_secs(3600);
/// Records kept in `status.alerts`; older ones of events no longer current are dropped.
pub const MAX_RECORDS: usize = 32;

/// What an alert says: an event, or the recovery that resolves an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A rollout event.
    Event(AlertEvent),
    /// The rollout recovered: resolve the incident opened for `event_id` (PagerDuty).
    Resolve { event_id: String },
}

impl Trigger {
    /// Name in messages and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Event(event) => event.as_str(),
            Trigger::Resolve { .. } => "resolved",
        }
    }
}

/// An event that the status shows has happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub trigger: Trigger,
    /// Stable identity, e.g. `aborted/5f7c9b/1732662000`.
    pub id: String,
    /// The canary revision it is about.
    pub revision: String,
    /// When it happened, when the status says.
    pub at: Option<Timestamp>,
}

/// Events the status shows now.
pub fn occurrences(status: &RolloutStatus) -> Vec<Occurrence> {
    let mut found = Vec::new();
    let mut push = |event: AlertEvent, id: String, revision: &str, at: Option<Timestamp>| {
        found.push(Occurrence {
            trigger: Trigger::Event(event),
            id,
            revision: revision.to_string(),
            at,
        })
    };
    if let Some(abort) = &status.abort {
        let at = abort.at.0;
        if !abort.cannot_tell {
            let id = format!("aborted/{}/{}", abort.revision, at.as_second());
            push(AlertEvent::Aborted, id, &abort.revision, Some(at));
        } else if abort.reason.ends_with("Inconclusive") {
            // "We cannot tell" is not a bad canary: its own event, never `aborted`
            // (an Error verdict is alerted as `analysisError` from its run below).
            let id = format!("inconclusive/{}/{}", abort.revision, at.as_second());
            push(AlertEvent::Inconclusive, id, &abort.revision, Some(at));
        }
    }
    if let Some(git) = &status.git_revert {
        let at = git.last_attempt.as_ref().map(|t| t.0);
        let canary = &git.canary_revision;
        match git.state {
            RevertState::Reverted | RevertState::AlreadyReverted => {
                let by = git
                    .pull_request
                    .clone()
                    .or_else(|| git.revert_commit.clone())
                    .unwrap_or_default();
                let id = format!("reverted/{canary}/{}", short(&by));
                push(AlertEvent::Reverted, id, canary, at);
            }
            RevertState::Failed => push(
                AlertEvent::RevertFailed,
                format!("revertFailed/{canary}"),
                canary,
                at,
            ),
            _ => {}
        }
    }
    let canary = status.canary_revision.clone().unwrap_or_default();
    let step = status.current_step_index.unwrap_or(0);
    let in_flight = matches!(
        status.phase,
        Some(RolloutPhase::Progressing | RolloutPhase::Paused)
    );
    if in_flight && !canary.is_empty() && step >= 1 {
        let at = status.step_started_at.as_ref().map(|t| t.0);
        let id = format!("stepCompleted/{canary}/{}", step - 1);
        push(AlertEvent::StepCompleted, id, &canary, at);
    }
    if status.phase == Some(RolloutPhase::Paused) && !canary.is_empty() {
        let inconclusive = status
            .current_analysis
            .as_ref()
            .is_some_and(|run| run.phase == Some(AnalysisPhase::Inconclusive));
        let (event, name) = if inconclusive {
            (AlertEvent::Inconclusive, "inconclusive")
        } else {
            (AlertEvent::Paused, "paused")
        };
        push(event, format!("{name}/{canary}/{step}"), &canary, None);
    }
    for run in [&status.current_analysis, &status.background_analysis]
        .into_iter()
        .flatten()
    {
        if run.phase == Some(AnalysisPhase::Error) {
            let id = format!("analysisError/{}", run.name);
            push(AlertEvent::AnalysisError, id, &canary, None);
        }
    }
    if let Some(promotion) = &status.last_promotion {
        let at = promotion.at.0;
        let id = format!("promoted/{}/{}", promotion.revision, at.as_second());
        push(AlertEvent::Promoted, id, &promotion.revision, Some(at));
    }
    // Recovery: healthy again after an abort or a failed revert resolves the incident.
    if recovered(status) {
        let mut resolved: Vec<&AlertRecord> = status
            .alerts
            .iter()
            .filter(|r| r.state == AlertState::Sent && opens_incident(&r.event_id))
            .collect();
        resolved.dedup_by(|a, b| a.event_id == b.event_id);
        for record in resolved {
            let revision = record.event_id.split('/').nth(1).unwrap_or_default();
            found.push(Occurrence {
                trigger: Trigger::Resolve {
                    event_id: record.event_id.clone(),
                },
                id: format!("resolved/{}", record.event_id),
                revision: revision.to_string(),
                at: None,
            });
        }
    }
    found
}

/// Events that open an incident a recovery resolves.
pub fn opens_incident(event_id: &str) -> bool {
    event_id.starts_with("aborted/") || event_id.starts_with("revertFailed/")
}

/// The Rollout is Healthy again with no abort: its incidents are over.
pub fn recovered(status: &RolloutStatus) -> bool {
    status.phase == Some(RolloutPhase::Healthy) && status.abort.is_none()
}

/// Records of firing Alertmanager alerts that must be sent again to stay
/// active: delivered (`Sent`) incidents marked with their next re-send
/// (`nextAttempt`), while the Rollout has not recovered and no resolve was
/// recorded for them. Re-derived from the persisted status, so a restarted
/// controller keeps them alive too.
pub fn kept_alive(status: &RolloutStatus) -> impl Iterator<Item = &AlertRecord> {
    let over = recovered(status);
    status.alerts.iter().filter(move |r| {
        !over
            && r.state == AlertState::Sent
            && r.next_attempt.is_some()
            && opens_incident(&r.event_id)
            && !status.alerts.iter().any(|o| {
                o.target == r.target && o.event_id.strip_prefix("resolved/") == Some(&r.event_id)
            })
    })
}

/// The occurrence a record is about, from its id, once the status no longer
/// shows it (an abort cleared by `retry` while its alert still fires).
fn occurrence_of(record: &AlertRecord) -> Option<Occurrence> {
    let event = super::alertmanager::event_of(&record.event_id)?;
    let mut parts = record.event_id.split('/').skip(1);
    let revision = parts.next().unwrap_or_default().to_string();
    let at = parts
        .next()
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|t| Timestamp::from_second(t).ok());
    Some(Occurrence {
        trigger: Trigger::Event(event),
        id: record.event_id.clone(),
        revision,
        at,
    })
}

fn short(sha_or_url: &str) -> &str {
    if sha_or_url.len() == 40 && sha_or_url.bytes().all(|b| b.is_ascii_hexdigit()) {
        &sha_or_url[..12]
    } else {
        sha_or_url
    }
}

/// A target as a subscription names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetKey {
    /// `None` for a ClusterAlertTarget.
    pub namespace: Option<String>,
    pub name: String,
}

impl TargetKey {
    /// The form recorded in `status.alerts[].target`.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("AlertTarget/{ns}/{}", self.name),
            None => format!("ClusterAlertTarget/{}", self.name),
        }
    }
}

/// Targets a Rollout subscribes to.
pub fn subscribed_targets(rollout: &Rollout, namespace: &str) -> Vec<TargetKey> {
    let mut keys: Vec<TargetKey> = rollout
        .spec
        .alerts
        .iter()
        .flat_map(|a| &a.subscriptions)
        .map(|s| TargetKey {
            namespace: (!s.cluster_scope).then(|| namespace.to_string()),
            name: s.target.clone(),
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// What to do for one event and one target.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Record `Sending`, deliver, record the result.
    Send,
    /// A previous controller recorded `Sending` and stopped; the receiver
    /// cannot deduplicate, so say so instead of risking a duplicate.
    MarkUnconfirmed,
    /// Send a delivered, still firing Alertmanager alert again (same labels)
    /// so that Alertmanager keeps it active.
    KeepAlive,
}

/// One alert to act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub occurrence: Occurrence,
    pub target: TargetKey,
    pub severity: AlertSeverity,
    pub action: Action,
}

/// Alerts due now for `rollout` given its status, the types of the targets
/// that could be read, and `now`. Targets missing from `types` are skipped
/// (the caller reports them).
pub fn due(
    rollout: &Rollout,
    namespace: &str,
    status: &RolloutStatus,
    types: &BTreeMap<TargetKey, AlertTargetType>,
    now: Timestamp,
) -> Vec<Due> {
    let Some(alerts) = &rollout.spec.alerts else {
        return Vec::new();
    };
    let occurrences = occurrences(status);
    let mut due = Vec::new();
    for subscription in &alerts.subscriptions {
        let target = TargetKey {
            namespace: (!subscription.cluster_scope).then(|| namespace.to_string()),
            name: subscription.target.clone(),
        };
        let Some(kind) = types.get(&target).copied() else {
            continue;
        };
        let label = target.label();
        let events = subscription
            .events
            .clone()
            .unwrap_or_else(|| vec![AlertEvent::Aborted]);
        let severity_of = |event: AlertEvent| {
            subscription
                .severities
                .as_ref()
                .and_then(|s| s.get(event))
                .unwrap_or(event.default_severity())
        };
        for occurrence in &occurrences {
            let severity = match &occurrence.trigger {
                Trigger::Event(event) if events.contains(event) => severity_of(*event),
                Trigger::Resolve { event_id }
                    if matches!(
                        kind,
                        AlertTargetType::PagerDuty | AlertTargetType::Alertmanager
                    ) =>
                {
                    let triggered_here = status.alerts.iter().any(|r| {
                        &r.event_id == event_id && r.target == label && r.state == AlertState::Sent
                    });
                    if !triggered_here {
                        continue;
                    }
                    // Alertmanager resolves by label set: the severity label must be the event's.
                    match super::alertmanager::event_of(event_id) {
                        Some(event) if kind == AlertTargetType::Alertmanager => severity_of(event),
                        _ => AlertSeverity::Info,
                    }
                }
                _ => continue,
            };
            let record = status
                .alerts
                .iter()
                .find(|r| r.event_id == occurrence.id && r.target == label);
            let action = match record.map(|r| r.state) {
                None => {
                    let stale = occurrence.at.is_some_and(|at| {
                        now.duration_since(at).as_secs_f64() > MAX_EVENT_AGE.as_secs_f64()
                    });
                    if stale {
                        continue;
                    }
                    Action::Send
                }
                // The receiver deduplicates (dedup key, event id header): safe to send again.
                Some(AlertState::Sending)
                    if matches!(
                        kind,
                        AlertTargetType::PagerDuty
                            | AlertTargetType::Webhook
                            | AlertTargetType::Alertmanager
                    ) =>
                {
                    Action::Send
                }
                Some(AlertState::Sending) => Action::MarkUnconfirmed,
                // Not delivered yet: a new round once its time has come.
                Some(AlertState::Pending) => {
                    let waiting = record
                        .and_then(|r| r.next_attempt.as_ref())
                        .is_some_and(|next| next.0 > now);
                    if waiting {
                        continue;
                    }
                    Action::Send
                }
                Some(_) => continue,
            };
            due.push(Due {
                occurrence: occurrence.clone(),
                target: target.clone(),
                severity,
                action,
            });
        }
        // Firing Alertmanager alerts whose re-send is due. The marker is only
        // ever set for Alertmanager; a target whose type changed since gets
        // it cleared by the worker.
        for record in kept_alive(status).filter(|r| r.target == label) {
            if record.next_attempt.as_ref().is_some_and(|t| t.0 > now) {
                continue;
            }
            let occurrence = occurrences
                .iter()
                .find(|o| o.id == record.event_id)
                .cloned()
                .or_else(|| occurrence_of(record));
            let Some(occurrence) = occurrence else {
                continue;
            };
            let severity = match &occurrence.trigger {
                Trigger::Event(event) => severity_of(*event),
                Trigger::Resolve { .. } => continue,
            };
            due.push(Due {
                occurrence,
                target: target.clone(),
                severity,
                action: Action::KeepAlive,
            });
        }
    }
    due
}

/// The earliest time a pending alert of a current event to a subscribed
/// target is due for its next round, if any.
pub fn next_retry(rollout: &Rollout, namespace: &str, status: &RolloutStatus) -> Option<Timestamp> {
    let targets: Vec<String> = subscribed_targets(rollout, namespace)
        .iter()
        .map(TargetKey::label)
        .collect();
    let current = occurrences(status);
    let pending = status
        .alerts
        .iter()
        .filter(|r| r.state == AlertState::Pending)
        .filter(|r| current.iter().any(|o| o.id == r.event_id));
    pending
        .chain(kept_alive(status))
        .filter(|r| targets.contains(&r.target))
        .map(|r| {
            r.next_attempt
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
        })
        .min()
}

/// When the alert worker should look at a Rollout again: the earliest
/// [`next_retry`], except that alerts to targets that could not be read
/// (`unreadable` labels), which were not due whatever their time, wait until
/// `later` (the longest retry interval from now) instead of being due at
/// once, which would read the missing target in a loop.
pub fn next_wake(
    rollout: &Rollout,
    namespace: &str,
    status: &RolloutStatus,
    unreadable: &[String],
    later: Timestamp,
) -> Option<Timestamp> {
    let (mut readable, mut unread) = (status.clone(), status.clone());
    readable.alerts.retain(|r| !unreadable.contains(&r.target));
    unread.alerts.retain(|r| unreadable.contains(&r.target));
    let next = next_retry(rollout, namespace, &readable);
    if next_retry(rollout, namespace, &unread).is_none() {
        return next;
    }
    Some(next.map_or(later, |at| at.min(later)))
}

/// `records` with `record` in place of the one for the same event and target,
/// trimmed to `MAX_RECORDS` by dropping the oldest that no current event needs.
pub fn upsert(
    records: &[AlertRecord],
    record: AlertRecord,
    current: &[Occurrence],
) -> Vec<AlertRecord> {
    let mut out: Vec<AlertRecord> = records
        .iter()
        .filter(|r| !(r.event_id == record.event_id && r.target == record.target))
        .cloned()
        .collect();
    out.push(record);
    while out.len() > MAX_RECORDS {
        let resolved = |id: &str| {
            let resolution = format!("resolved/{id}");
            out.iter().any(|r| r.event_id == resolution)
        };
        let needed = |r: &AlertRecord| {
            // A firing Alertmanager alert's record carries its re-send state.
            let firing = r.state == AlertState::Sent
                && r.next_attempt.is_some()
                && opens_incident(&r.event_id)
                && !resolved(&r.event_id);
            firing
                || current.iter().any(|o| {
                    o.id == r.event_id
                        || matches!(&o.trigger, Trigger::Resolve { event_id }
                        if *event_id == r.event_id && !resolved(event_id))
                })
        };
        match out.iter().position(|r| !needed(r)) {
            Some(oldest) => {
                out.remove(oldest);
            }
            None => break,
        }
    }
    out
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
