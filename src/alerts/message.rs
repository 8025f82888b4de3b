//! The content of an alert, and its rendering for each receiver.
//!
//! [`Alert`] is also the generic webhook's body: schema `sluice.dev/alert/v1`,
//! documented in `docs/alert-webhook.md`. Fields are only ever added within
//! a schema version. Slack, Teams and PagerDuty get the same facts in their
//! own formats. Nothing here reads the network or the clock.

use jiff::Timestamp;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

use super::events::{Occurrence, Trigger};
use crate::crd::{AlertEvent, AlertLink, AlertSeverity, AnalysisRun, Rollout, RolloutStatus};

pub use super::render::{dedup_key, pagerduty, slack, teams};

/// Version of the webhook body.
pub const SCHEMA_VERSION: &str = "sluice.dev/alert/v1";

/// Everything an alert says, in the webhook's schema.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub schema_version: &'static str,
    /// Identity of the event; the same on every retry and after a restart.
    pub id: String,
    /// `aborted`, `reverted`, `revertFailed`, `inconclusive`, `paused`,
    /// `promoted`, `stepCompleted`, `analysisError` or `resolved`.
    pub event: &'static str,
    pub severity: &'static str,
    /// When the event happened (RFC 3339), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
    /// One line for people.
    pub summary: String,
    pub rollout: RolloutInfo,
    pub revisions: Pair,
    pub images: Pair,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepInfo>,
    /// Machine-readable reason of an abort or pause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The controller's message about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisInfo>,
    pub git: GitInfo,
    pub links: Vec<LinkInfo>,
    /// For `resolved`: the id of the event this resolves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolves: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub phase: String,
}

/// A canary/stable pair (revisions or images).
#[derive(Serialize, Debug, Clone, PartialEq, Default)]
pub struct Pair {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepInfo {
    /// 1-based step number.
    pub number: i32,
    pub total: Option<i32>,
    /// Canary traffic share in percent.
    pub weight: i32,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisInfo {
    pub run: String,
    pub phase: String,
    /// Metrics that failed (or, when none failed, all of them).
    pub metrics: Vec<MetricInfo>,
}

/// The numbers behind one metric's verdict.
#[derive(Serialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricInfo {
    pub name: String,
    pub phase: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_high: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Evidence that the canary is worse (sequential test).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e_value: Option<f64>,
    /// The e-value at which the metric fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Last measured value of a threshold metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where the Git revert stands (or why there is none).
#[derive(Serialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GitInfo {
    /// `Reverting`, `Pushing`, `Reverted`, `AlreadyReverted`, `NotNeeded`,
    /// `Skipped`, `Failed`, `Pending` (not started yet) or `NotConfigured`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverted_commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert_commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    pub message: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct LinkInfo {
    pub title: String,
    pub url: String,
}

/// What [`build`] reads.
pub struct Input<'a> {
    pub rollout: &'a Rollout,
    pub status: &'a RolloutStatus,
    pub occurrence: &'a Occurrence,
    pub severity: AlertSeverity,
    /// (canary image, stable image), when the ReplicaSets still say.
    pub images: Option<(String, String)>,
    /// The AnalysisRun behind an abort or analysis error, if any.
    pub run: Option<&'a AnalysisRun>,
}

/// Put the alert together.
pub fn build(input: &Input) -> Alert {
    let Input {
        rollout, status, ..
    } = input;
    let namespace = rollout.metadata.namespace.clone().unwrap_or_default();
    let name = rollout.metadata.name.clone().unwrap_or_default();
    let occurrence = input.occurrence;
    let revision = occurrence.revision.clone();
    let stable = status.stable_revision.clone();
    let abort = status
        .abort
        .as_ref()
        .filter(|_| occurrence.trigger == Trigger::Event(AlertEvent::Aborted));
    let total = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.steps.as_ref())
        .map(|s| i32::try_from(s.len()).unwrap_or(i32::MAX));
    let blue_green = rollout.spec.strategy.blue_green.is_some();
    let step = match (&occurrence.trigger, abort) {
        // Blue-green has stages, not steps: the message names the stage.
        _ if blue_green => None,
        (_, Some(abort)) => Some(StepInfo {
            number: abort.step_index + 1,
            total,
            weight: abort.weight,
        }),
        (Trigger::Event(AlertEvent::StepCompleted), None) => {
            let completed = occurrence
                .id
                .rsplit('/')
                .next()
                .and_then(|n| n.parse::<i32>().ok())
                .unwrap_or(0);
            Some(StepInfo {
                number: completed + 1,
                total,
                weight: status.current_weight,
            })
        }
        (Trigger::Event(AlertEvent::Paused | AlertEvent::Inconclusive), None) => Some(StepInfo {
            number: status.current_step_index.unwrap_or(0) + 1,
            total,
            weight: status.current_weight,
        }),
        _ => None,
    };
    let git = git_info(rollout, status, &revision);
    let analysis = input.run.map(analysis_info);
    let who = format!("Rollout {namespace}/{name}");
    let at_step = |s: &Option<StepInfo>| match s {
        Some(StepInfo {
            number,
            total: Some(total),
            weight,
        }) => format!(" at step {number}/{total} ({weight}% canary)"),
        Some(StepInfo { number, weight, .. }) => format!(" at step {number} ({weight}% canary)"),
        None => String::new(),
    };
    let (reason, message, summary) = match &occurrence.trigger {
        Trigger::Resolve { .. } => (
            None,
            status.message.clone(),
            format!(
                "{who} recovered: stable revision {} serves all traffic",
                stable.clone().unwrap_or_default()
            ),
        ),
        Trigger::Event(event) => match event {
            AlertEvent::Aborted => {
                let (reason, message) = abort
                    .map(|a| (Some(a.reason.clone()), a.message.clone()))
                    .unwrap_or((None, String::new()));
                // The failed metrics' numbers say more than the abort's one-liner.
                let why = analysis
                    .as_ref()
                    .filter(|a| !a.metrics.is_empty())
                    .map(|a| {
                        let lines: Vec<String> = a.metrics.iter().map(metric_line).collect();
                        format!("analysis {} {}: {}", a.run, a.phase, lines.join("; "))
                    })
                    .unwrap_or_else(|| message.clone());
                // A keep-alive re-send after `retry` cleared the abort still says what it was.
                let why = if why.is_empty() {
                    format!(
                        "canary revision {revision} was aborted (the abort has since been cleared)"
                    )
                } else {
                    why
                };
                let summary = format!(
                    "{who} aborted{}: {why}; traffic is back on stable",
                    at_step(&step)
                );
                (reason, Some(message), summary)
            }
            AlertEvent::Reverted => (
                None,
                Some(git.message.clone()),
                format!("{who}: {}", git.message),
            ),
            AlertEvent::RevertFailed => (
                None,
                Some(git.message.clone()),
                format!(
                    "{who}: the Git revert failed, traffic stays on stable: {}",
                    git.message
                ),
            ),
            AlertEvent::Paused => (
                status.pause_reason.clone(),
                status.message.clone(),
                format!(
                    "{who} paused{}: waiting for `sluice rollout promote` or `abort`",
                    at_step(&step)
                ),
            ),
            AlertEvent::Inconclusive => (
                Some("AnalysisInconclusive".into()),
                status.message.clone(),
                format!(
                    "{who}: analysis inconclusive{}; waiting for `sluice rollout promote` or `abort`",
                    at_step(&step)
                ),
            ),
            AlertEvent::Promoted => {
                let previous = status
                    .last_promotion
                    .as_ref()
                    .map(|p| p.previous.clone())
                    .unwrap_or_default();
                (
                    None,
                    status.message.clone(),
                    format!("{who} promoted revision {revision} to stable (was {previous})"),
                )
            }
            AlertEvent::StepCompleted => (
                None,
                status.message.clone(),
                format!(
                    "{who} completed step{} of canary {revision}",
                    at_step(&step)
                ),
            ),
            AlertEvent::AnalysisError => {
                let run_message = input
                    .run
                    .and_then(|r| r.status.as_ref())
                    .and_then(|s| s.message.clone())
                    .unwrap_or_default();
                (
                    Some("AnalysisError".into()),
                    Some(run_message.clone()),
                    format!("{who}: analysis cannot measure: {run_message}"),
                )
            }
        },
    };
    let promoted = status.last_promotion.as_ref();
    let revisions = match &occurrence.trigger {
        Trigger::Event(AlertEvent::Promoted) => Pair {
            canary: promoted.map(|p| p.revision.clone()),
            stable: promoted.map(|p| p.previous.clone()),
        },
        _ => Pair {
            canary: (!revision.is_empty()).then(|| revision.clone()),
            stable: stable.clone(),
        },
    };
    let (canary_image, stable_image) = input.images.clone().unzip();
    let links = rollout
        .spec
        .alerts
        .as_ref()
        .map(|a| a.links.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|link| expand_link(link, &namespace, &name, &revisions, occurrence))
        .collect();
    Alert {
        schema_version: SCHEMA_VERSION,
        id: occurrence.id.clone(),
        event: occurrence.trigger.name(),
        severity: input.severity.as_str(),
        occurred_at: occurrence.at.map(|t| t.to_string()),
        summary: truncate(&summary, 1000),
        rollout: RolloutInfo {
            namespace,
            name,
            uid: rollout.metadata.uid.clone().unwrap_or_default(),
            phase: status.phase.map(|p| p.to_string()).unwrap_or_default(),
        },
        revisions,
        images: Pair {
            canary: canary_image,
            stable: stable_image,
        },
        step,
        reason,
        message,
        analysis,
        git,
        links,
        resolves: match &occurrence.trigger {
            Trigger::Resolve { event_id } => Some(event_id.clone()),
            Trigger::Event(_) => None,
        },
    }
}

fn git_info(rollout: &Rollout, status: &RolloutStatus, revision: &str) -> GitInfo {
    if rollout.spec.git.is_none() {
        return GitInfo {
            state: "NotConfigured".into(),
            message: "no Git source on this Rollout (spec.git): Git is not reverted".into(),
            ..Default::default()
        };
    }
    match status
        .git_revert
        .as_ref()
        .filter(|g| g.canary_revision == revision)
    {
        Some(record) => GitInfo {
            state: record.state.as_str().into(),
            reverted_commit: record.reverted_commit.clone(),
            revert_commit: record.revert_commit.clone(),
            pull_request: record.pull_request.clone(),
            message: record
                .message
                .clone()
                .unwrap_or_else(|| record.state.to_string()),
        },
        None => GitInfo {
            state: "Pending".into(),
            message: "the Git revert has not started yet; a `reverted` event follows".into(),
            ..Default::default()
        },
    }
}

fn analysis_info(run: &AnalysisRun) -> AnalysisInfo {
    let status = run.status.clone().unwrap_or_default();
    let all: Vec<MetricInfo> = status
        .metrics
        .iter()
        .map(|m| {
            let judgement = m.judgement.as_ref();
            MetricInfo {
                name: m.name.clone(),
                phase: m.phase.as_str().to_string(),
                decision: judgement.map(|j| j.decision.clone()),
                canary: judgement.and_then(|j| j.canary),
                baseline: judgement.and_then(|j| j.baseline),
                estimate: judgement.and_then(|j| j.estimate),
                interval_low: judgement.and_then(|j| j.interval_low),
                interval_high: judgement.and_then(|j| j.interval_high),
                p_value: judgement.and_then(|j| j.p_value),
                e_value: judgement.and_then(|j| j.e_value_worse),
                threshold: judgement.map(|j| j.threshold),
                value: m.measurements.last().and_then(|x| x.value),
                message: m.message.clone(),
            }
        })
        .collect();
    let failed: Vec<MetricInfo> = all
        .iter()
        .filter(|m| m.phase == "Failed" || m.phase == "Error")
        .cloned()
        .collect();
    AnalysisInfo {
        run: run.metadata.name.clone().unwrap_or_default(),
        phase: status
            .phase
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        metrics: if failed.is_empty() { all } else { failed },
    }
}

/// `errors-vs-baseline: canary 0.098 vs baseline 0.0012, ratio 81.2 [40.1, 160], e-value 1.2e3 ≥ 40`.
pub fn metric_line(metric: &MetricInfo) -> String {
    let mut parts = Vec::new();
    if let (Some(c), Some(b)) = (metric.canary, metric.baseline) {
        parts.push(format!("canary {} vs baseline {}", num(c), num(b)));
    }
    if let Some(e) = metric.estimate {
        let interval = match (metric.interval_low, metric.interval_high) {
            (Some(l), Some(h)) => format!(" [{}, {}]", num(l), num(h)),
            _ => String::new(),
        };
        parts.push(format!("estimate {}{interval}", num(e)));
    }
    if let Some(p) = metric.p_value {
        parts.push(format!("p = {}", num(p)));
    }
    match (metric.e_value, metric.threshold) {
        (Some(e), Some(t)) => parts.push(format!("e-value {} (fails at {})", num(e), num(t))),
        (Some(e), None) => parts.push(format!("e-value {}", num(e))),
        _ => {}
    }
    if parts.is_empty()
        && let Some(v) = metric.value
    {
        parts.push(format!("value {}", num(v)));
    }
    if parts.is_empty()
        && let Some(m) = &metric.message
    {
        parts.push(m.clone());
    }
    format!("{} {}: {}", metric.name, metric.phase, parts.join(", "))
}

/// Four significant digits, scientific outside [1e-3, 1e6).
fn num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs();
    if !(1e-3..1e6).contains(&magnitude) {
        return format!("{x:.3e}");
    }
    let decimals = (3 - magnitude.log10().floor() as i32).max(0) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn expand_link(
    link: &AlertLink,
    namespace: &str,
    name: &str,
    revisions: &Pair,
    occurrence: &Occurrence,
) -> LinkInfo {
    let encode = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let millis = occurrence
        .at
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .as_millisecond()
        .to_string();
    let url = link
        .url
        .replace("{namespace}", &encode(namespace))
        .replace("{rollout}", &encode(name))
        .replace(
            "{canaryRevision}",
            &encode(revisions.canary.as_deref().unwrap_or_default()),
        )
        .replace(
            "{stableRevision}",
            &encode(revisions.stable.as_deref().unwrap_or_default()),
        )
        .replace("{event}", occurrence.trigger.name())
        .replace("{timestampMs}", &millis);
    LinkInfo {
        title: link.title.clone(),
        url,
    }
}

pub(super) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
