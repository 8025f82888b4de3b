//! Prometheus Alertmanager (API v2): an [`Alert`] as a `postableAlert`.
//!
//! Alertmanager identifies an alert by its label set (the fingerprint), so
//! the labels here come only from what stays the same for one incident
//! (event kind, namespace, Rollout, revision, severity, the target's extra
//! labels): every retry, keep-alive re-send and the resolve of the same
//! incident carry the identical set. Everything that changes goes into
//! annotations. Alertmanager forgets a firing alert at its `endsAt`, so an
//! incident's alert says it ends [`VALIDITY_INTERVALS`] re-send intervals
//! from now and Sluice sends it again every interval (as Prometheus does);
//! a recovery sends it once more with `endsAt` = now. Pure: the caller
//! passes `now`.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::events::opens_incident;
use super::message::{Alert, metric_line, truncate};
use crate::crd::{AlertEvent, AlertRecord, AlertState};

/// Path of the alerts endpoint under the Alertmanager base URL.
pub const ALERTS_PATH: &str = "api/v2/alerts";
/// How often a firing alert is sent again unless the target says otherwise.
pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest re-send interval honoured (a typo like `1ms` must not flood).
pub const MIN_RESEND_INTERVAL: Duration = Duration::from_secs(1);
/// A send keeps the alert active for this many re-send intervals, so a
/// re-send or two may fail before Alertmanager resolves it by itself
/// (Prometheus uses the same factor).
pub const VALIDITY_INTERVALS: u32 = 4;

/// Labels Sluice sets; a target's extra labels may not replace them.
pub const RESERVED_LABELS: [&str; 6] = [
    "alertname",
    "namespace",
    "rollout",
    "revision",
    "severity",
    "step",
];

/// Why an Alertmanager target's settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The `url` key is not an absolute http(s) URL (the value is not repeated: it may hold credentials).
    #[error("`url` is not an http(s) base URL of Alertmanager ({0})")]
    BadUrl(String),
    /// Only one of `username` and `password`.
    #[error("`username` and `password` go together (basic auth); only `{0}` is set")]
    HalfBasicAuth(&'static str),
    /// Both basic auth and a bearer token.
    #[error("set either `username`/`password` or `bearerToken`, not both")]
    TwoAuths,
    /// An extra label Alertmanager would refuse, or one that would replace Sluice's.
    #[error("label `{0}` in spec.labels is not allowed: {1}")]
    BadLabel(String, &'static str),
}

/// Check a target's extra labels before anything is sent with them.
pub fn check_labels(extra: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for name in extra.keys() {
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ConfigError::BadLabel(
                name.chars().take(64).collect(),
                "a name matches [a-zA-Z_][a-zA-Z0-9_]*",
            ));
        }
        if RESERVED_LABELS.contains(&name.as_str()) {
            return Err(ConfigError::BadLabel(
                name.clone(),
                "Sluice sets it (alertname, namespace, rollout, revision, severity, step)",
            ));
        }
    }
    Ok(())
}

/// `<base>/api/v2/alerts`; `base` may carry a path prefix (`/alertmanager`).
pub fn alerts_url(base: &str) -> Result<reqwest::Url, ConfigError> {
    let mut url =
        reqwest::Url::parse(base.trim()).map_err(|e| ConfigError::BadUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::BadUrl(format!(
            "scheme `{}` is neither http nor https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::BadUrl("no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::BadUrl(
            "a base URL has no query or fragment".into(),
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.join(ALERTS_PATH)
        .map_err(|e| ConfigError::BadUrl(e.to_string()))
}

/// The `Authorization` header from the Secret's optional keys.
pub fn authorization(
    username: Option<&str>,
    password: Option<&str>,
    bearer_token: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    use base64::Engine as _;
    match (username, password, bearer_token) {
        (None, None, None) => Ok(None),
        (None, None, Some(token)) => Ok(Some(format!("Bearer {token}"))),
        (Some(_), Some(_), Some(_)) => Err(ConfigError::TwoAuths),
        (Some(user), Some(password), None) => {
            let pair =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            Ok(Some(format!("Basic {pair}")))
        }
        (Some(_), None, _) => Err(ConfigError::HalfBasicAuth("username")),
        (None, Some(_), _) => Err(ConfigError::HalfBasicAuth("password")),
    }
}

/// The re-send interval from a target's `resendInterval`, at least [`MIN_RESEND_INTERVAL`].
pub fn resend_interval(configured: Option<Duration>) -> Duration {
    configured
        .unwrap_or(DEFAULT_RESEND_INTERVAL)
        .max(MIN_RESEND_INTERVAL)
}

/// How long one send keeps an alert active.
pub fn validity(resend_interval: Duration) -> Duration {
    resend_interval.saturating_mul(VALIDITY_INTERVALS)
}

/// `now + d`, saturating at the far future.
pub fn later(now: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// `alertname` of an event.
pub fn alertname(event: AlertEvent) -> &'static str {
    match event {
        AlertEvent::Aborted => "SluiceRolloutAborted",
        AlertEvent::Reverted => "SluiceGitReverted",
        AlertEvent::RevertFailed => "SluiceGitRevertFailed",
        AlertEvent::Inconclusive => "SluiceAnalysisInconclusive",
        AlertEvent::Paused => "SluiceRolloutPaused",
        AlertEvent::Promoted => "SluiceRolloutPromoted",
        AlertEvent::StepCompleted => "SluiceStepCompleted",
        AlertEvent::AnalysisError => "SluiceAnalysisError",
    }
}

/// The event an event id (`aborted/<revision>/<time>`) is about.
pub fn event_of(event_id: &str) -> Option<AlertEvent> {
    let name = event_id.split('/').next()?;
    [
        AlertEvent::Aborted,
        AlertEvent::Reverted,
        AlertEvent::RevertFailed,
        AlertEvent::Inconclusive,
        AlertEvent::Paused,
        AlertEvent::Promoted,
        AlertEvent::StepCompleted,
        AlertEvent::AnalysisError,
    ]
    .into_iter()
    .find(|e| e.as_str() == name)
}

/// The label set: the alert's identity in Alertmanager. A resolve carries
/// the labels of the event it resolves (its severity is that event's, which
/// the caller puts in `alert.severity`).
pub fn labels(alert: &Alert, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let event_id = alert.resolves.as_deref().unwrap_or(&alert.id);
    let event = event_of(event_id);
    let mut labels: BTreeMap<String, String> = extra
        .iter()
        .filter(|(k, v)| !RESERVED_LABELS.contains(&k.as_str()) && !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut set = |name: &str, value: &str| {
        if !value.is_empty() {
            labels.insert(name.to_string(), value.to_string());
        }
    };
    set("alertname", event.map_or("SluiceRolloutEvent", alertname));
    set("namespace", &alert.rollout.namespace);
    set("rollout", &alert.rollout.name);
    set("severity", alert.severity);
    // The revision the event is about: the first segment after the kind.
    set("revision", event_id.split('/').nth(1).unwrap_or_default());
    // Each step (or pause at a step) of one canary is its own notification.
    if matches!(event, Some(AlertEvent::StepCompleted | AlertEvent::Paused))
        && let Some(step) = event_id.rsplit('/').next()
    {
        set("step", step);
    }
    labels
}

/// Annotation names must be label names: `Dashboard (prod)` → `link_dashboard_prod`.
fn annotation_name(prefix: &str, title: &str) -> String {
    let mut name = String::from(prefix);
    let mut last_underscore = true;
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
            last_underscore = false;
        } else if !last_underscore {
            name.push('_');
            last_underscore = true;
        }
    }
    name.trim_end_matches('_').to_string()
}

/// Annotations: the facts that change as the incident goes on.
pub fn annotations(alert: &Alert) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |name: String, value: &str| {
        if !value.is_empty() {
            out.insert(name, truncate(value, 4000));
        }
    };
    put("summary".into(), &alert.summary);
    let mut description: Vec<String> = alert.message.iter().cloned().collect();
    description.extend(
        alert
            .analysis
            .iter()
            .flat_map(|a| a.metrics.iter().map(metric_line)),
    );
    put("description".into(), &description.join("\n"));
    put(
        "event_id".into(),
        alert.resolves.as_deref().unwrap_or(&alert.id),
    );
    put("event".into(), alert.event);
    put("phase".into(), &alert.rollout.phase);
    put(
        "canary_image".into(),
        alert.images.canary.as_deref().unwrap_or_default(),
    );
    put(
        "stable_image".into(),
        alert.images.stable.as_deref().unwrap_or_default(),
    );
    put(
        "stable_revision".into(),
        alert.revisions.stable.as_deref().unwrap_or_default(),
    );
    if let Some(step) = &alert.step {
        let of = step.total.map(|t| format!("/{t}")).unwrap_or_default();
        put(
            "step_at".into(),
            &format!("{}{of} at {}%", step.number, step.weight),
        );
    }
    put("reason".into(), alert.reason.as_deref().unwrap_or_default());
    if alert.resolves.is_none() {
        let git = &alert.git;
        put("git_state".into(), &git.state);
        put("git_message".into(), &git.message);
        put(
            "git_reverted_commit".into(),
            git.reverted_commit.as_deref().unwrap_or_default(),
        );
        put(
            "git_revert_commit".into(),
            git.revert_commit.as_deref().unwrap_or_default(),
        );
        put(
            "git_pull_request".into(),
            git.pull_request.as_deref().unwrap_or_default(),
        );
    }
    for (index, link) in alert.links.iter().enumerate() {
        let name = annotation_name("link_", &link.title);
        let taken = out.contains_key(&name) || name == "link";
        let name = if taken {
            format!("link_{}", index + 1)
        } else {
            name
        };
        if !link.url.is_empty() {
            out.insert(name, truncate(&link.url, 4000));
        }
    }
    out
}

/// The body of `POST /api/v2/alerts`: one `postableAlert`. `ends_at` is
/// now for a resolve and now plus the validity for anything else.
pub fn postable_alerts(
    alert: &Alert,
    extra_labels: &BTreeMap<String, String>,
    now: Timestamp,
    ends_at: Timestamp,
) -> Value {
    let starts_at = match &alert.resolves {
        // Alertmanager keeps the earliest start of the alert it merges into.
        Some(_) => ends_at,
        None => alert
            .occurred_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .filter(|t| *t <= now)
            .unwrap_or(now),
    };
    let mut posted = json!({
        "labels": labels(alert, extra_labels),
        "annotations": annotations(alert),
        "startsAt": starts_at.to_string(),
        "endsAt": ends_at.to_string(),
    });
    // generatorURL must be a URL: the first link that is one.
    if let Some(link) = alert
        .links
        .iter()
        .find(|l| reqwest::Url::parse(&l.url).is_ok())
    {
        posted["generatorURL"] = json!(link.url);
    }
    json!([posted])
}

/// When the alert posted at `now` ends: now for a resolve, else `now + validity`.
pub fn ends_at(resolves: bool, now: Timestamp, resend_interval: Duration) -> Timestamp {
    if resolves {
        now
    } else {
        later(now, validity(resend_interval))
    }
}

/// A record in `status.alerts` after a successful send at `sent_at` that
/// said the alert ends at `ends_at`: an incident's alert keeps firing and is
/// sent again one interval later (`nextAttempt`); anything else (a one-off
/// event, a resolve) is left to end by itself.
pub fn firing_record(
    record: AlertRecord,
    sent_at: Timestamp,
    ends_at: Timestamp,
    resend_interval: Duration,
) -> AlertRecord {
    if record.state != AlertState::Sent {
        return record;
    }
    let keep_firing = opens_incident(&record.event_id);
    let next = later(sent_at, resend_interval);
    let note = if record.event_id.starts_with("resolved/") {
        "resolved in Alertmanager".to_string()
    } else if keep_firing {
        format!(
            "firing in Alertmanager until {ends_at:.0}; sent again at {next:.0} until the Rollout recovers"
        )
    } else {
        format!("active in Alertmanager until {ends_at:.0}")
    };
    let message = match record.message {
        Some(m) => format!("{m}; {note}"),
        None => note,
    };
    AlertRecord {
        next_attempt: keep_firing.then_some(Time(next)),
        active_until: Some(Time(ends_at)),
        message: Some(message),
        ..record
    }
}

#[cfg(test)]
#[path = "alertmanager_tests.rs"]
mod tests;
