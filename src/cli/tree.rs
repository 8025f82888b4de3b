//! `sluice rollout get`: a Rollout as a tree of revisions → ReplicaSets →
//! pods, with each revision's AnalysisRuns and the step list, the current
//! step marked.
//!
//! [`Tree::build`] is pure (it takes what was read), so both the text and
//! the `-o json|yaml` form are tested without a cluster. The JSON/YAML form
//! is this summary structure, not the live objects.

use std::fmt::Write as _;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde::Serialize;

use crate::crd::{AnalysisRun, Rollout};
use crate::engine::hash::POD_TEMPLATE_HASH_LABEL;
use crate::engine::revisions::Revision;
use crate::engine::spec;

/// The mark after the current step in the text form.
pub const CURRENT_MARK: &str = "◀ current";

/// A Rollout and everything it owns, as `get` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Tree {
    pub name: String,
    pub namespace: String,
    /// `Canary` or `BlueGreen`.
    pub strategy: &'static str,
    /// Phase from status; `None` before the first reconcile.
    pub phase: Option<String>,
    pub message: Option<String>,
    /// Canary traffic share in effect, in percent.
    pub weight: i32,
    /// Canary steps in order (empty for blue-green).
    pub steps: Vec<StepNode>,
    /// Index of the step being run (equal to the number of steps once all are done).
    pub current_step: Option<i32>,
    /// Newest revision first.
    pub revisions: Vec<RevisionNode>,
}

/// One canary step.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepNode {
    pub index: usize,
    /// `setWeight 25`, `pause 1m`, `analysis error-rate`.
    pub step: String,
    /// `done`, `current` or `pending`.
    pub state: &'static str,
}

/// One revision: its ReplicaSet, pods and AnalysisRuns.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RevisionNode {
    /// Revision number (1, 2, …; higher is newer).
    pub revision: i64,
    /// Pod-template hash.
    pub hash: String,
    /// What it is now: `stable`, `canary`, `baseline`, or none (an old revision).
    pub roles: Vec<&'static str>,
    /// Images of its containers.
    pub images: Vec<String>,
    pub replica_set: String,
    pub desired: i32,
    pub ready: i32,
    pub pods: Vec<PodNode>,
    pub analysis_runs: Vec<RunNode>,
}

/// One pod.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodNode {
    pub name: String,
    /// `Running`, `Pending`, `Terminating`, or a container's waiting reason (`ImagePullBackOff`).
    pub status: String,
    pub ready: bool,
    pub restarts: i32,
}

/// One AnalysisRun and its verdict.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunNode {
    pub name: String,
    /// `Pending` until the analysis writes a verdict.
    pub phase: String,
    pub message: Option<String>,
    pub background: bool,
}

impl Tree {
    /// The tree of `rollout` from the objects read in its namespace (pods
    /// and runs of other Rollouts are left out by owner and label).
    pub fn build(
        rollout: &Rollout,
        replica_sets: &[ReplicaSet],
        pods: &[Pod],
        runs: &[AnalysisRun],
    ) -> Tree {
        let status = rollout.status.clone().unwrap_or_default();
        let name = rollout.name_any();
        let current = status.current_step_index;
        let steps = match spec::settings(rollout) {
            Ok(settings) => settings
                .steps()
                .iter()
                .enumerate()
                .map(|(index, step)| StepNode {
                    index,
                    step: step.describe(),
                    state: step_state(index, current),
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let stable = status.stable_revision.as_deref();
        let canary = status.canary_revision.as_deref();
        let mut revisions: Vec<RevisionNode> = replica_sets
            .iter()
            .filter_map(|rs| Some((rs, Revision::from_replica_set(rs)?)))
            .map(|(rs, revision)| {
                let mut roles = Vec::new();
                if Some(revision.hash.as_str()) == stable {
                    roles.push("stable");
                }
                if Some(revision.hash.as_str()) == canary {
                    roles.push("canary");
                }
                if stable.is_some_and(|s| spec::baseline_hash(s) == revision.hash) {
                    roles.push("baseline");
                }
                let owned_pods = pods
                    .iter()
                    .filter(|pod| {
                        pod.owner_references().iter().any(|o| {
                            o.kind == "ReplicaSet" && Some(&o.uid) == rs.metadata.uid.as_ref()
                        })
                    })
                    .map(pod_node)
                    .collect();
                let analysis_runs = runs
                    .iter()
                    .filter(|run| {
                        run.spec.rollout == name && run.spec.canary_revision == revision.hash
                    })
                    .map(|run| {
                        let run_status = run.status.clone().unwrap_or_default();
                        RunNode {
                            name: run.name_any(),
                            phase: run_status.phase.unwrap_or_default().to_string(),
                            message: run_status.message,
                            background: run.spec.background,
                        }
                    })
                    .collect();
                let images = revision
                    .template
                    .spec
                    .as_ref()
                    .map(|s| {
                        s.containers
                            .iter()
                            .filter_map(|c| c.image.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                RevisionNode {
                    revision: revision.number,
                    hash: revision.hash,
                    roles,
                    images,
                    replica_set: revision.name,
                    desired: revision.desired,
                    ready: revision.ready,
                    pods: owned_pods,
                    analysis_runs,
                }
            })
            .collect();
        revisions.sort_by(|a, b| b.revision.cmp(&a.revision).then(a.hash.cmp(&b.hash)));
        Tree {
            name,
            namespace: rollout.namespace().unwrap_or_default(),
            strategy: if rollout.spec.strategy.blue_green.is_some() {
                "BlueGreen"
            } else {
                "Canary"
            },
            phase: status.phase.map(|p| p.to_string()),
            message: status.message,
            weight: status.current_weight,
            steps,
            current_step: current,
            revisions,
        }
    }

    /// The text form.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let phase = self
            .phase
            .as_deref()
            .unwrap_or("Unknown (not reconciled yet)");
        let _ = writeln!(
            out,
            "Rollout {} (namespace {})  {}  {phase}  weight {}%",
            self.name, self.namespace, self.strategy, self.weight
        );
        if let Some(message) = &self.message {
            let _ = writeln!(out, "  {message}");
        }
        if !self.steps.is_empty() {
            let _ = writeln!(out, "Steps:");
            for step in &self.steps {
                let (glyph, mark) = match step.state {
                    "done" => ("✔", String::new()),
                    "current" => ("▶", format!("   {CURRENT_MARK}")),
                    _ => (" ", String::new()),
                };
                let _ = writeln!(
                    out,
                    "  {glyph} {}/{} {}{mark}",
                    step.index + 1,
                    self.steps.len(),
                    step.step
                );
            }
        }
        let _ = writeln!(out, "Revisions:");
        if self.revisions.is_empty() {
            let _ = writeln!(out, "  (none yet)");
        }
        let last_revision = self.revisions.len().saturating_sub(1);
        for (r, revision) in self.revisions.iter().enumerate() {
            let (branch, stem) = if r == last_revision {
                ("└─", "   ")
            } else {
                ("├─", "│  ")
            };
            let roles = if revision.roles.is_empty() {
                String::new()
            } else {
                format!(" ({})", revision.roles.join(", "))
            };
            let _ = writeln!(
                out,
                "  {branch} revision {} {}{roles} [{}]",
                revision.revision,
                revision.hash,
                revision.images.join(", ")
            );
            let children = revision.analysis_runs.len() + 1;
            let _ = writeln!(
                out,
                "  {stem}{} ReplicaSet {}  {}/{} ready",
                if children == 1 { "└─" } else { "├─" },
                revision.replica_set,
                revision.ready,
                revision.desired
            );
            let rs_stem = if children == 1 { "   " } else { "│  " };
            for (p, pod) in revision.pods.iter().enumerate() {
                let glyph = if p + 1 == revision.pods.len() {
                    "└─"
                } else {
                    "├─"
                };
                let ready = if pod.ready { "ready" } else { "not ready" };
                let restarts = match pod.restarts {
                    0 => String::new(),
                    n => format!(", {n} restarts"),
                };
                let _ = writeln!(
                    out,
                    "  {stem}{rs_stem}{glyph} Pod {}  {} ({ready}{restarts})",
                    pod.name, pod.status
                );
            }
            for (a, run) in revision.analysis_runs.iter().enumerate() {
                let glyph = if a + 1 == revision.analysis_runs.len() {
                    "└─"
                } else {
                    "├─"
                };
                let kind = if run.background { " (background)" } else { "" };
                let detail = run
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {stem}{glyph} AnalysisRun {}{kind}  {}{detail}",
                    run.name, run.phase
                );
            }
        }
        out
    }
}

fn step_state(index: usize, current: Option<i32>) -> &'static str {
    let Some(current) = current.and_then(|c| usize::try_from(c).ok()) else {
        return "pending";
    };
    match index.cmp(&current) {
        std::cmp::Ordering::Less => "done",
        std::cmp::Ordering::Equal => "current",
        std::cmp::Ordering::Greater => "pending",
    }
}

fn pod_node(pod: &Pod) -> PodNode {
    let status = pod.status.clone().unwrap_or_default();
    let containers = status.container_statuses.unwrap_or_default();
    let waiting = containers
        .iter()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    let shown = if pod.metadata.deletion_timestamp.is_some() {
        "Terminating".to_string()
    } else {
        waiting.or(status.phase).unwrap_or_else(|| "Unknown".into())
    };
    PodNode {
        name: pod.name_any(),
        status: shown,
        ready: status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        restarts: containers.iter().map(|c| c.restart_count).sum(),
    }
}

/// Label selector of the pods of every revision of `rollout` (they all carry the hash label).
pub fn pod_selector(rollout: &Rollout) -> String {
    let mut parts: Vec<String> = rollout
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    parts.push(POD_TEMPLATE_HASH_LABEL.to_string());
    parts.join(",")
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
