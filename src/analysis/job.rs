//! The `job` provider without I/O: the Job a measurement creates (its
//! deterministic name, labels and owner), and what an observed Job means for
//! the measurement; and the plan of a job metric.
//!
//! Measurement `n` of a metric always maps to the same Job name, so a
//! controller that restarts while a Job runs finds that Job again instead of
//! starting a second one; the owner reference to the AnalysisRun lets the
//! garbage collector remove the Jobs with the run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::run::{MetricPlan, VerdictKind, duration};
use super::template::{Bindings, RenderError, args_named, render_escaped};
use crate::crd::{JobProvider, Metric};

/// Label selecting every Job of one AnalysisRun (its uid: always a valid label value).
pub const RUN_UID_LABEL: &str = "sluice.dev/analysis-run-uid";
/// Label naming the AnalysisRun, for people (shortened with a hash past 63 characters).
pub const RUN_LABEL: &str = "sluice.dev/analysis-run";
/// Label naming the metric the Job measures.
pub const METRIC_LABEL: &str = "sluice.dev/analysis-metric";
/// How long a Job may run when the provider sets no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Longest Job name: the Job controller copies it into a label of its pods.
const MAX_JOB_NAME: usize = 63;
/// Hex digits of the hash that keeps a shortened or cleaned-up name unique.
const HASH_LEN: usize = 10;

/// Check that `spec` is a batch/v1 JobSpec; the error says what is wrong.
pub fn check_spec(spec: &Value) -> Result<JobSpec, String> {
    let parsed: JobSpec = serde_json::from_value(spec.clone())
        .map_err(|e| format!("provider.job.spec is not a batch/v1 JobSpec: {e}"))?;
    let containers = parsed
        .template
        .spec
        .as_ref()
        .map_or(0, |pod| pod.containers.len());
    if containers == 0 {
        return Err(
            "provider.job.spec.template.spec.containers must name at least one container".into(),
        );
    }
    Ok(parsed)
}

/// A job metric's plan: judged by the Job's outcome, so it takes no
/// conditions; `template` is left for the caller to fill in.
pub fn plan_job_metric(
    metric: &Metric,
    job: &JobProvider,
    interval: Duration,
    initial_delay: Duration,
) -> Result<MetricPlan, String> {
    let provider = &metric.provider;
    if provider.prometheus.is_some() || provider.scrape.is_some() || provider.web.is_some() {
        return Err("set exactly one provider: prometheus, scrape, web or job".into());
    }
    if metric.compare.is_some()
        || metric.success_condition.is_some()
        || metric.failure_condition.is_some()
    {
        return Err("a job metric is judged by the Job's outcome: remove compare, successCondition and failureCondition".into());
    }
    check_spec(&job.spec)?;
    let timeout = duration(job.timeout.as_ref(), DEFAULT_TIMEOUT, "timeout")?;
    if timeout < Duration::from_secs(1) {
        return Err("provider.job.timeout must be at least 1s".into());
    }
    Ok(MetricPlan::with_defaults(
        String::new(),
        metric,
        (interval, initial_delay),
        VerdictKind::Job { timeout },
    ))
}

/// `text` as a Kubernetes name or label value: lowercase letters, digits and
/// `-`, at most `max` characters, starting and ending alphanumeric. A name
/// that had to be changed gets a hash of the original, so two different
/// inputs never share a result.
fn name_like(text: &str, max: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed == text && !trimmed.is_empty() && trimmed.len() <= max {
        return trimmed.to_string();
    }
    let digest = Sha256::digest(text.as_bytes());
    let hash: String = digest
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .take(HASH_LEN)
        .map(|n| char::from_digit(u32::from(n), 16).unwrap_or('0'))
        .collect();
    let keep = max - HASH_LEN - 1;
    let head = trimmed[..trimmed.len().min(keep)].trim_end_matches('-');
    if head.is_empty() {
        hash
    } else {
        format!("{head}-{hash}")
    }
}

/// The name of the Job of measurement `index` (0-based) of `metric` in `run`:
/// the same on every call, at most 63 characters.
pub fn job_name(run: &str, metric: &str, index: i32) -> String {
    name_like(&format!("{run}-{metric}-{index}"), MAX_JOB_NAME)
}

/// `text` as a label value (at most 63 characters).
pub fn label_value(text: &str) -> String {
    name_like(text, MAX_JOB_NAME)
}

/// The AnalysisRun a Job belongs to.
#[derive(Debug, Clone)]
pub struct Owner<'a> {
    pub run_name: &'a str,
    pub run_uid: &'a str,
    pub namespace: &'a str,
}

/// Errors of building a measurement's Job.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    #[error("job provider: {0}")]
    Render(#[from] RenderError),
    #[error("job provider: {0}")]
    Invalid(String),
}

/// Fill `{{args.NAME}}` and `{{revision}}` into every string of `value`
/// (keys stay as written, so the object keeps its shape).
fn render_strings(value: &Value, bindings: &Bindings) -> Result<Value, RenderError> {
    Ok(match value {
        Value::String(text) => Value::String(render_escaped(text, bindings, str::to_string)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_strings(v, bindings))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), render_strings(v, bindings)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
        other => other.clone(),
    })
}

/// The Job of measurement `index` of metric `metric`: the provider's spec with
/// placeholders filled, in the run's namespace (never another), owned by the
/// run and labelled with it.
///
/// An argument read from a Secret (`secret_args`) is refused: it would be
/// written into the Job in clear, readable by anyone who may read Jobs.
pub fn build_job(
    provider: &JobProvider,
    bindings: &Bindings,
    secret_args: &BTreeSet<String>,
    owner: &Owner<'_>,
    metric: &str,
    index: i32,
) -> Result<Job, BuildError> {
    let mut texts = Vec::new();
    strings_of(&provider.spec, &mut texts);
    if let Some(meta) = &provider.metadata {
        texts.extend(
            meta.labels
                .values()
                .chain(meta.annotations.values())
                .map(String::as_str),
        );
    }
    if let Some(arg) = texts
        .iter()
        .flat_map(|text| args_named(text))
        .find(|arg| secret_args.contains(*arg))
    {
        return Err(BuildError::Invalid(format!(
            "argument {arg} comes from a Secret and would be written into the Job in clear; give it to the container with env[].valueFrom.secretKeyRef instead"
        )));
    }
    let spec =
        check_spec(&render_strings(&provider.spec, bindings)?).map_err(BuildError::Invalid)?;
    let render_map =
        |map: &BTreeMap<String, String>| -> Result<BTreeMap<String, String>, RenderError> {
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_escaped(v, bindings, str::to_string)?)))
                .collect()
        };
    let metadata = provider.metadata.clone().unwrap_or_default();
    let mut labels = render_map(&metadata.labels)?;
    labels.insert(RUN_UID_LABEL.into(), owner.run_uid.into());
    labels.insert(RUN_LABEL.into(), label_value(owner.run_name));
    labels.insert(METRIC_LABEL.into(), label_value(metric));
    let annotations = render_map(&metadata.annotations)?;
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(owner.run_name, metric, index)),
            namespace: Some(owner.namespace.into()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: crate::crd::API_VERSION.into(),
                kind: "AnalysisRun".into(),
                name: owner.run_name.into(),
                uid: owner.run_uid.into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// Every string of a JSON value.
fn strings_of<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(text) => out.push(text),
        Value::Array(items) => items.iter().for_each(|v| strings_of(v, out)),
        Value::Object(fields) => fields.values().for_each(|v| strings_of(v, out)),
        _ => {}
    }
}

/// Where an observed Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    Complete,
    /// The Job's `Failed` condition: its reason and message.
    Failed(String),
}

/// The Job's state from its terminal conditions (`Complete`, `Failed`).
pub fn job_state(job: &Job) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let holds = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    if let Some(failed) = holds("Failed") {
        let reason = failed.reason.as_deref().unwrap_or("Failed");
        return JobState::Failed(match failed.message.as_deref() {
            Some(message) if !message.is_empty() => format!("{reason}: {message}"),
            _ => reason.to_string(),
        });
    }
    if holds("Complete").is_some() {
        return JobState::Complete;
    }
    JobState::Running
}

/// What to do about a due measurement, given the Job found under its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStep {
    /// No Job yet: create it.
    Create,
    /// It runs: look again later.
    Wait,
    /// It finished: the measurement passed (`true`) or failed.
    Finished { completed: bool, message: String },
    /// It ran past the timeout: delete it; the measurement is an Error.
    TimedOut(String),
    /// A Job of that name belongs to something else: never judged, never touched.
    Foreign(String),
}

/// Decide the next step for the Job `name` (`found`: what the API server
/// holds under that name) of the run `run_uid`, at `now`.
pub fn next_step(
    found: Option<&Job>,
    name: &str,
    run_uid: &str,
    timeout: Duration,
    now: Timestamp,
) -> JobStep {
    let Some(job) = found else {
        return JobStep::Create;
    };
    let ours = job
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|o| o.uid == run_uid);
    if !ours {
        return JobStep::Foreign(format!(
            "a Job named {name} exists and does not belong to this AnalysisRun; it is left alone"
        ));
    }
    match job_state(job) {
        JobState::Complete => JobStep::Finished {
            completed: true,
            message: format!("Job {name} completed"),
        },
        JobState::Failed(why) => JobStep::Finished {
            completed: false,
            message: format!("Job {name} failed: {why}"),
        },
        JobState::Running => {
            let created = job.metadata.creation_timestamp.as_ref().map(|t| t.0);
            // A creation time ahead of this clock counts as just created.
            let ran =
                created.map(|c| Duration::try_from(now.duration_since(c)).unwrap_or_default());
            match ran {
                Some(ran) if ran >= timeout => JobStep::TimedOut(format!(
                    "Job {name} did not finish within {}; deleted",
                    humantime::format_duration(timeout)
                )),
                _ => JobStep::Wait,
            }
        }
    }
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;
