//! `AnalysisRun`: the narrow interface between the rollout engine and analysis.
//!
//! The engine creates one run per analysis step and waits for its
//! `status.phase` to reach a verdict; whatever evaluates the metrics only has
//! to write that phase (and a one-line message) back.

// kube's `printcolumn(...)` repeats keys like `type_` by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rollout::{AnalysisArg, AnalysisTemplateRef};

/// One evaluation of analysis templates for a canary revision.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "AnalysisRun",
    namespaced,
    status = "AnalysisRunStatus",
    shortname = "sar",
    category = "sluice",
    derive = "PartialEq",
    doc = "One evaluation of analysis templates against a canary revision",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Rollout", type_ = "string", json_path = ".spec.rollout"),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunSpec {
    /// Name of the Rollout this run judges.
    pub rollout: String,
    /// Index of the Rollout step that asked for this run.
    pub step_index: i32,
    /// Pod-template hash of the canary.
    pub canary_revision: String,
    /// Pod-template hash of the stable version (the baseline unless a dedicated one runs).
    pub stable_revision: String,
    /// Templates to evaluate.
    pub templates: Vec<AnalysisTemplateRef>,
    /// Arguments for the templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<AnalysisArg>,
    /// The baseline is a dedicated ReplicaSet (`stableRevision` is its hash label).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dedicated_baseline: bool,
    /// A background run: it judges the whole canary rather than one step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub background: bool,
    /// Set by the controller when nothing waits on the run any more (the
    /// canary was promoted, aborted or superseded): measuring stops.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminate: bool,
}

/// Verdict of an analysis run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AnalysisPhase {
    /// Not started yet.
    #[default]
    Pending,
    /// Measurements are being taken.
    Running,
    /// The canary is not worse than the baseline.
    Successful,
    /// The canary is worse: the rollout aborts.
    Failed,
    /// The data cannot tell: the rollout pauses for a human.
    Inconclusive,
    /// Measurements kept failing: the rollout aborts.
    Error,
    /// Stopped because nothing waits on it any more.
    Terminated,
}

impl AnalysisPhase {
    /// True once the run has a verdict that will not change.
    pub fn is_finished(self) -> bool {
        !matches!(self, AnalysisPhase::Pending | AnalysisPhase::Running)
    }

    /// The name used in status and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisPhase::Pending => "Pending",
            AnalysisPhase::Running => "Running",
            AnalysisPhase::Successful => "Successful",
            AnalysisPhase::Failed => "Failed",
            AnalysisPhase::Inconclusive => "Inconclusive",
            AnalysisPhase::Error => "Error",
            AnalysisPhase::Terminated => "Terminated",
        }
    }
}

impl std::fmt::Display for AnalysisPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Observed state of an analysis run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStatus {
    /// Pending, Running, Successful, Failed, Inconclusive or Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AnalysisPhase>,
    /// One-line human summary of the verdict and the numbers behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the first measurement clock started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// What the canary is compared with, e.g. `stable pods abc123 (no dedicated baseline)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// One entry per metric of every template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricResult>,
}

/// Progress and verdict of one metric.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// Metric name.
    pub name: String,
    /// Template it comes from.
    pub template: String,
    /// Running until the metric has a verdict.
    pub phase: AnalysisPhase,
    /// Reported, never fails the run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Measurements taken.
    #[serde(default)]
    pub count: i32,
    /// Measurements that passed.
    #[serde(default)]
    pub successful: i32,
    /// Measurements that failed.
    #[serde(default)]
    pub failed: i32,
    /// Measurements that could not tell (including no data, by default).
    #[serde(default)]
    pub inconclusive: i32,
    /// Measurements that could not be taken.
    #[serde(default)]
    pub error: i32,
    /// Errors in a row, reset by any measurement that was taken.
    #[serde(default)]
    pub consecutive_errors: i32,
    /// Latest error or summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The numbers behind the latest decision of a comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judgement: Option<Judgement>,
    /// Every measurement (at most the metric's count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
}

/// One measurement of a metric.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// When it was taken.
    pub at: Time,
    /// Successful, Failed, Inconclusive, Error, or Running for a comparison still undecided.
    pub phase: AnalysisPhase,
    /// Threshold metrics: the value (absent: no data or not a number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Counts comparisons: the canary's events and exposure in this interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CountSample>,
    /// Counts comparisons: the baseline's events and exposure in this interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<CountSample>,
    /// Direct scrape: every canary pod's counter totals at this measurement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canary_pods: Vec<PodCount>,
    /// Direct scrape: every baseline pod's counter totals at this measurement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline_pods: Vec<PodCount>,
    /// Samples comparisons: the canary's values in this interval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canary_values: Vec<f64>,
    /// Samples comparisons: the baseline's values at the same instants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline_values: Vec<f64>,
    /// Why it failed or could not be taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One pod's cumulative counters, as scraped.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodCount {
    /// Pod name.
    pub pod: String,
    /// Total of the `events` selector.
    pub events: f64,
    /// Total of the `exposure` selector.
    pub exposure: f64,
}

/// Events against exposure in one interval.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CountSample {
    /// Bad events, e.g. HTTP 5xx.
    pub events: f64,
    /// Exposure, e.g. requests.
    pub exposure: f64,
}

/// The numbers behind a comparison's decision (absent numbers were not finite).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Judgement {
    /// Worse, NotWorse or Undecided.
    pub decision: String,
    /// Canary: rate (counts) or median (samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<f64>,
    /// Baseline: rate (counts) or median (samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// Canary sample size: exposure, e.g. requests (counts), or intervals (samples).
    pub canary_size: f64,
    /// Baseline sample size.
    pub baseline_size: f64,
    /// Counts: the canary's events (e.g. errors), exactly as measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_events: Option<f64>,
    /// Counts: the baseline's events, exactly as measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_events: Option<f64>,
    /// Intervals judged (each one paired observation of canary and baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<i32>,
    /// Mean per-interval rate difference canary - baseline (counts) or
    /// Hodges-Lehmann shift canary - baseline (samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<f64>,
    /// Lower end of the confidence interval of the estimate (counts: valid at every look).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_low: Option<f64>,
    /// Upper end of the confidence interval of the estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_high: Option<f64>,
    /// Mann-Whitney p-value (samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Effect size (samples: rank-biserial correlation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect_size: Option<f64>,
    /// Samples: evidence (sign-test e-value) that the canary is worse beyond the tolerance; Failed at `threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_value_worse: Option<f64>,
    /// Samples: evidence that it is not; Successful at `threshold` once the minimum exposure is met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_value_not_worse: Option<f64>,
    /// 1/alpha in force (metrics × 1/(1 - confidence), Bonferroni).
    pub threshold: f64,
    /// What a verdict still needs, e.g. "needs about 1200 more requests per arm at the current rate".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs: Option<String>,
}
