//! `AnalysisRun`: the narrow interface between the rollout engine and analysis.
//!
//! The engine creates one run per analysis step and waits for its
//! `status.phase` to reach a verdict; whatever evaluates the metrics only has
//! to write that phase (and a one-line message) back.

// kube's `printcolumn(...)` repeats keys like `type_` by design.
#![allow(clippy::duplicated_attributes)]

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rollout::{AnalysisArg, AnalysisTemplateRef};

/// One evaluation of analysis templates for a canary revision.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "AnalysisRun",
    namespaced,
    status = "AnalysisRunStatus",
    shortname = "ar",
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
}

/// Verdict of an analysis run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnalysisPhase {
    /// Not started yet.
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
        }
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
}
