//! Keeping a delivered Alertmanager alert firing while its incident lasts.
//!
//! Alertmanager resolves an alert by itself at its `endsAt`, so the alert
//! workers send an incident's alert again every re-send interval (same
//! labels, so the same alert there) until the Rollout recovers and the
//! resolve is sent. When a re-send is due is persisted in the alert's record
//! (`nextAttempt`, `activeUntil`), so a restarted controller carries on.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Io;
use super::alert_outgoing::outgoing;
use super::alert_targets::{TargetSettings, record_target};
use crate::alerts::alertmanager::{ends_at, firing_record, later};
use crate::alerts::state::target_reason;
use crate::alerts::{DeliveryOutcome, Due, deliver};
use crate::crd::{AlertRecord, AlertState, AlertTargetType, Rollout, RolloutStatus};
use crate::engine::Observed;

/// The Rollout an alert is about, as the worker read it.
pub struct About<'a> {
    pub rollout: &'a Rollout,
    pub status: &'a RolloutStatus,
    pub observed: Option<&'a Observed>,
}

/// The record of a firing alert after its re-send is handled: sent again
/// when the target is still an Alertmanager, or no longer kept alive when
/// its type changed. `None` when there is no such record.
pub async fn keep_alive(
    io: &Io,
    http: &reqwest::Client,
    about: About<'_>,
    item: &Due,
    settings: &mut TargetSettings,
    records: &[AlertRecord],
) -> Option<AlertRecord> {
    let label = item.target.label();
    let record = records
        .iter()
        .find(|r| r.event_id == item.occurrence.id && r.target == label)
        .cloned()?;
    if settings.kind != AlertTargetType::Alertmanager {
        // The target changed type: there is no alert to keep alive.
        return Some(AlertRecord {
            next_attempt: None,
            ..record
        });
    }
    Some(resend(io, http, about, item, settings, record).await)
}

/// Send `record`'s alert again and return the record with its next re-send.
/// A failed re-send leaves the alert firing until its `activeUntil`, says so
/// in a Warning Event and the target's status, and is tried again one
/// interval later.
async fn resend(
    io: &Io,
    http: &reqwest::Client,
    about: About<'_>,
    item: &Due,
    settings: &mut TargetSettings,
    record: AlertRecord,
) -> AlertRecord {
    let About {
        rollout,
        status,
        observed,
    } = about;
    let now = Timestamp::now();
    let interval = settings.resend_interval;
    let label = item.target.label();
    let event = item.occurrence.trigger.name();
    let until = record
        .active_until
        .as_ref()
        .map_or_else(|| "unknown".to_string(), |t| format!("{:.0}", t.0));
    let failed = |problem: String, record: AlertRecord| AlertRecord {
        next_attempt: Some(Time(later(now, interval))),
        at: Time(now),
        message: Some(format!(
            "{event} alert to {label} could not be sent again: {problem}; Alertmanager keeps it active until {until}; next try at {:.0}",
            later(now, interval)
        )),
        ..record
    };
    let out = match outgoing(io, rollout, status, item, settings, observed, now).await {
        Ok(out) => out,
        Err(error) => {
            let kept = failed(error.to_string(), record);
            let note = kept.message.clone().unwrap_or_default();
            super::publish_as(io, rollout, "Alert", true, "AlertTargetUnavailable", &note).await;
            record_target(io, &item.target, settings, false, "SecretInvalid", &note).await;
            return kept;
        }
    };
    let delivery = deliver(http, &out, &settings.policy).await;
    io.metrics
        .alert_attempts(settings.kind.as_str(), &delivery.attempt_results);
    match &delivery.outcome {
        DeliveryOutcome::Delivered { status } => {
            let sent = AlertRecord {
                at: Time(now),
                message: Some(format!(
                    "{event} alert sent again to {label} (HTTP {status})"
                )),
                ..record
            };
            if settings.status.consecutive_failures > 0 {
                let note = sent.message.clone().unwrap_or_default();
                let reason = target_reason(AlertState::Sent);
                record_target(io, &item.target, settings, true, reason, &note).await;
            }
            firing_record(sent, now, ends_at(false, now, interval), interval)
        }
        DeliveryOutcome::Rejected { detail, .. } | DeliveryOutcome::GaveUp { detail } => {
            let kept = failed(detail.clone(), record);
            let note = kept.message.clone().unwrap_or_default();
            super::publish_as(io, rollout, "Alert", true, "AlertResendFailed", &note).await;
            let reason = target_reason(AlertState::Pending);
            record_target(io, &item.target, settings, false, reason, &note).await;
            kept
        }
    }
}
