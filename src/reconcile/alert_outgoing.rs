//! What one alert sends: the target's Secret read at delivery time (never
//! cached, never logged) and the body rendered for the target's type, at
//! `now` (an Alertmanager alert says when it ends).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::Io;
use super::alert_targets::{TargetError, TargetSettings};
use super::git_revert::images;
use crate::alerts::alertmanager;
use crate::alerts::message::{pagerduty, slack, teams};
use crate::alerts::{Due, Outgoing, build};
use crate::crd::{AlertTargetType, AnalysisPhase, AnalysisRun, Rollout, RolloutStatus};

const PAGERDUTY_EVENTS: &str = "https://events.pagerduty.com/v2/enqueue";

/// Read the target's Secret and render the body for its type.
pub async fn outgoing(
    io: &Io,
    rollout: &Rollout,
    status: &RolloutStatus,
    item: &Due,
    settings: &TargetSettings,
    observed: Option<&crate::engine::Observed>,
    now: Timestamp,
) -> Result<Outgoing, TargetError> {
    let (secret_ns, secret_name) = &settings.secret;
    let secrets: Api<Secret> = Api::namespaced(io.client.clone(), secret_ns);
    let secret =
        secrets
            .get(secret_name)
            .await
            .map_err(|source| TargetError::SecretUnreadable {
                namespace: secret_ns.clone(),
                name: secret_name.clone(),
                target: item.target.label(),
                source,
            })?;
    let data = secret.data.unwrap_or_default();
    let value = |key: &str| {
        data.get(key)
            .map(|v| String::from_utf8_lossy(&v.0).trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let missing = |key: &'static str| TargetError::SecretKeyMissing {
        namespace: secret_ns.clone(),
        name: secret_name.clone(),
        target: item.target.label(),
        key,
    };
    let revision = &item.occurrence.revision;
    let stable = status.stable_revision.clone().unwrap_or_default();
    let found_images = observed.and_then(|o| images(o, revision, &stable));
    let run = observed.and_then(|o| analysis_run(o, status, revision));
    let alert = build(&crate::alerts::Input {
        rollout,
        status,
        occurrence: &item.occurrence,
        severity: item.severity,
        images: found_images,
        run,
    });
    let invalid = |problem| TargetError::SecretValueInvalid {
        namespace: secret_ns.clone(),
        name: secret_name.clone(),
        target: item.target.label(),
        problem,
    };
    let mut authorization = None;
    let (url, body, signing_key) = match settings.kind {
        AlertTargetType::Slack => (
            value("url").ok_or_else(|| missing("url"))?,
            slack(&alert),
            None,
        ),
        AlertTargetType::Teams => (
            value("url").ok_or_else(|| missing("url"))?,
            teams(&alert),
            None,
        ),
        AlertTargetType::PagerDuty => {
            let key = value("routingKey").ok_or_else(|| missing("routingKey"))?;
            let url = settings
                .endpoint
                .clone()
                .unwrap_or_else(|| PAGERDUTY_EVENTS.into());
            (url, pagerduty(&alert, &key), None)
        }
        AlertTargetType::Webhook => (
            value("url").ok_or_else(|| missing("url"))?,
            serde_json::to_value(&alert).unwrap_or_default(),
            value("signingKey").map(String::into_bytes),
        ),
        AlertTargetType::Alertmanager => {
            alertmanager::check_labels(&settings.labels).map_err(|problem| {
                TargetError::SpecInvalid {
                    target: item.target.label(),
                    problem,
                }
            })?;
            let base = value("url").ok_or_else(|| missing("url"))?;
            let url = alertmanager::alerts_url(&base).map_err(invalid)?;
            authorization = alertmanager::authorization(
                value("username").as_deref(),
                value("password").as_deref(),
                value("bearerToken").as_deref(),
            )
            .map_err(invalid)?;
            let resolves = alert.resolves.is_some();
            let ends_at = alertmanager::ends_at(resolves, now, settings.resend_interval);
            let body = alertmanager::postable_alerts(&alert, &settings.labels, now, ends_at);
            (url.to_string(), body, None)
        }
    };
    Ok(Outgoing {
        url,
        body: serde_json::to_vec(&body).unwrap_or_default(),
        signing_key,
        authorization,
        event_id: item.occurrence.id.clone(),
        event: item.occurrence.trigger.name().into(),
    })
}

/// The AnalysisRun behind the event: the failed (or erroring) run of the revision.
fn analysis_run<'a>(
    observed: &'a crate::engine::Observed,
    status: &RolloutStatus,
    revision: &str,
) -> Option<&'a AnalysisRun> {
    let named = [&status.current_analysis, &status.background_analysis]
        .into_iter()
        .flatten()
        .map(|r| r.name.clone())
        .collect::<Vec<_>>();
    let runs = || {
        observed
            .analysis_runs
            .iter()
            .filter(|r| r.spec.canary_revision == revision)
    };
    let phase = |r: &AnalysisRun| r.status.as_ref().and_then(|s| s.phase);
    runs()
        .find(|r| matches!(phase(r), Some(AnalysisPhase::Failed | AnalysisPhase::Error)))
        .or_else(|| runs().find(|r| named.contains(&r.name_any())))
}
