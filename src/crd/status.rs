//! `Rollout.status`: the persisted state machine and what users read.
//!
//! The phase plus `currentStepIndex`, `stableRevision` and `canaryRevision`
//! are the whole memory of the engine: a restarted controller resumes from
//! here without repeating a step.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::analysis_run::AnalysisPhase;
pub use super::states::{AlertState, BlueGreenStage, RevertState};

/// Where a rollout stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RolloutPhase {
    /// Pods or traffic are moving towards the desired state.
    Progressing,
    /// Waiting for a human (a `pause: {}` step, an inconclusive analysis, or `sluice rollout pause`).
    Paused,
    /// The stable version serves all traffic at full size; nothing is in flight.
    Healthy,
    /// The spec is invalid or the rollout stopped making progress.
    Degraded,
    /// The canary was aborted; traffic is back on stable.
    Aborted,
}

impl RolloutPhase {
    /// Every phase, for metrics that report a count per phase.
    pub const ALL: [RolloutPhase; 5] = [
        RolloutPhase::Progressing,
        RolloutPhase::Paused,
        RolloutPhase::Healthy,
        RolloutPhase::Degraded,
        RolloutPhase::Aborted,
    ];

    /// The name used in status, metrics and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutPhase::Progressing => "Progressing",
            RolloutPhase::Paused => "Paused",
            RolloutPhase::Healthy => "Healthy",
            RolloutPhase::Degraded => "Degraded",
            RolloutPhase::Aborted => "Aborted",
        }
    }
}

impl std::fmt::Display for RolloutPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Observed state of a Rollout.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Current phase: Progressing, Paused, Healthy, Degraded or Aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RolloutPhase>,
    /// Human-readable summary of the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pod-template hash of the version that serves production traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// Pod-template hash of the version being rolled out, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// Index of the canary step being executed (equal to the number of steps once all are done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// `index/total` for display, e.g. `2/7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_label: Option<String>,
    /// When the current step started (pause durations count from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// Canary traffic share in percent that is in effect now.
    #[serde(default)]
    pub current_weight: i32,
    /// Canary traffic share in percent that the current step asks for.
    #[serde(default)]
    pub desired_weight: i32,
    /// How traffic is split: `GatewayAPI` (exact weights) or `ReplicaRatio` (approximated by pod counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<String>,
    /// Last time the rollout made progress, for `progressDeadlineSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress_at: Option<Time>,
    /// The Git revert of the last aborted canary (written by the revert task
    /// under its own field manager, `sluice-git`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_revert: Option<GitRevertStatus>,
    /// Alerts sent (or being sent) for this Rollout's events, newest last
    /// (written by the alert task under its own field manager, `sluice-alerts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertRecord>,
    /// `Canary` or `BlueGreen`: the strategy the update in flight runs under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Where a blue-green update stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStatus>,
    /// The last promotion of a canary to stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promotion: Option<PromotionStatus>,
    /// Set while the canary is aborted; cleared by `retry` or a new template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortStatus>,
    /// Revisions aborted earlier (the newest last, at most 10): a template that
    /// comes back to one of them is refused until `sluice rollout retry`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aborted_revisions: Vec<AbortedRevision>,
    /// Counts the updates started and retried over the Rollout's life;
    /// AnalysisRun names carry it from 2 on, so a retry or a revision that
    /// comes back never reads an old run's verdict.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: i32,
    /// Images of the stable version's containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stable_images: Vec<String>,
    /// Images of the version being rolled out, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canary_images: Vec<String>,
    /// Why the rollout waits for a human, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_reason: Option<String>,
    /// Operator requests (annotation tokens) already handled, so each acts once.
    #[serde(default, skip_serializing_if = "ControlTokens::is_empty")]
    pub handled_controls: ControlTokens,
    /// Name and verdict of the analysis run of the current step, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_analysis: Option<AnalysisRunRef>,
    /// Name and verdict of the background analysis run of the current canary, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background_analysis: Option<AnalysisRunRef>,
    /// Total pods of all revisions (for the scale subresource).
    #[serde(default)]
    pub replicas: i32,
    /// Ready pods of all revisions.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods of the revision the template asks for.
    #[serde(default)]
    pub updated_replicas: i32,
    /// Ready pods of the stable revision.
    #[serde(default)]
    pub stable_ready_replicas: i32,
    /// Ready pods of the canary revision.
    #[serde(default)]
    pub canary_ready_replicas: i32,
    /// Label selector in string form (for the scale subresource and `kubectl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The `spec.restartAt` whose restart is done: every pod of the stable and
    /// canary ReplicaSets was created after it and they are back at full strength.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<Time>,
    /// Where a pod restart (`spec.restartAt`) in progress stands; gone when it is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_progress: Option<String>,
    /// Standard conditions: `Ready`, `Progressing`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl RolloutStatus {
    /// The Git revert record while it belongs to the current release: a later
    /// promotion ends it (its `GitReverted` condition and `status` line go).
    pub fn current_git_revert(&self) -> Option<&GitRevertStatus> {
        let record = self.git_revert.as_ref()?;
        let promoted_since = match (&self.last_promotion, &record.last_attempt) {
            (Some(promotion), Some(attempt)) => promotion.at.0 > attempt.0,
            _ => false,
        };
        let about_the_abort = self
            .abort
            .as_ref()
            .is_some_and(|a| a.revision == record.canary_revision);
        (about_the_abort || !promoted_since).then_some(record)
    }
}

/// Details of an abort.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AbortStatus {
    /// The canary revision that was aborted.
    pub revision: String,
    /// Machine-readable reason, e.g. `AbortedByUser`, `AnalysisFailed`.
    pub reason: String,
    /// What happened, for humans.
    pub message: String,
    /// When the abort happened.
    pub at: Time,
    /// Step index at the moment of the abort.
    #[serde(default)]
    pub step_index: i32,
    /// Canary weight at the moment of the abort.
    #[serde(default)]
    pub weight: i32,
    /// The analysis could not tell (verdict `Error` or `Inconclusive`) and
    /// `analysisCannotTell: RollbackTraffic` put traffic back: no verdict on the canary.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cannot_tell: bool,
    /// Git is left as it is: the abort is no verdict that the canary is bad
    /// (the analysis could not tell, or the progress deadline passed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_git: bool,
}

/// A revision that was aborted, remembered so that it is not rolled out again by accident.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AbortedRevision {
    /// Pod-template hash.
    pub revision: String,
    /// Its containers' images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Reason of the abort, e.g. `AnalysisFailed`.
    pub reason: String,
    /// When it was aborted (the first time).
    pub at: Time,
    /// The Git commit that reverted it, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_commit: Option<String>,
    /// The abort left Git alone; a refusal of this revision does too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_git: bool,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// The last token of each operator request that the controller has acted on.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ControlTokens {
    /// Last handled `sluice.dev/promote` token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<String>,
    /// Last handled `sluice.dev/promote-full` token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_full: Option<String>,
    /// Last handled `sluice.dev/abort` token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<String>,
    /// Last handled `sluice.dev/retry` token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
}

impl ControlTokens {
    /// True when no request was ever handled.
    pub fn is_empty(&self) -> bool {
        self == &ControlTokens::default()
    }
}

/// The AnalysisRun a step waits on.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunRef {
    /// AnalysisRun name.
    pub name: String,
    /// Its phase as last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AnalysisPhase>,
    /// Its one-line summary as last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where the Git revert of an aborted canary stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GitRevertStatus {
    /// `Reverting`, `Pushing` (both commits known, push under way), `Reverted`,
    /// `AlreadyReverted`, `NotNeeded`, `Skipped` or `Failed` (retried).
    pub state: RevertState,
    /// The aborted canary this is about.
    pub canary_revision: String,
    /// The commit that brought the canary's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted_commit: Option<String>,
    /// The revert commit on the branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_commit: Option<String>,
    /// The pull request holding the revert, in pull-request mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    /// What happened, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Attempts so far.
    #[serde(default)]
    pub attempts: i32,
    /// When the last attempt ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<Time>,
}

/// A canary that became stable.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PromotionStatus {
    /// The revision promoted.
    pub revision: String,
    /// The stable revision it replaced.
    pub previous: String,
    /// When.
    pub at: Time,
}

/// One alert for one event and one target: recorded as `Sending` before
/// the first attempt and `Sent` (or `Failed`) after, so that a restarted
/// controller never sends it twice.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertRecord {
    /// Identity of the event, e.g. `aborted/5f7c9b/1732662000`.
    pub event_id: String,
    /// `AlertTarget/<namespace>/<name>` or `ClusterAlertTarget/<name>`.
    pub target: String,
    /// `Sending`, `Sent`, `Pending` (not delivered yet: retried at `nextAttempt`
    /// until the target's `retryFor` is over), `Failed` (rejected or given up),
    /// or `Unconfirmed` (a restart cut a delivery short and the receiver cannot
    /// deduplicate, so it is not re-sent).
    pub state: AlertState,
    /// HTTP attempts made.
    #[serde(default)]
    pub attempts: i32,
    /// When the record last changed.
    pub at: Time,
    /// Result or error, without URLs or keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Since when the alert has been waiting to be delivered (first failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_since: Option<Time>,
    /// When a `Pending` alert is tried again, or when a firing Alertmanager
    /// alert is next sent again to keep it alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<Time>,
    /// Alertmanager: the `endsAt` of the last send; the alert stays active
    /// there until then unless Sluice sends it again or resolves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_until: Option<Time>,
}

/// Where a blue-green update stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStatus {
    /// `Preview` (scaling the new version), `PrePromotionAnalysis`,
    /// `AwaitingPromotion`, `Switching`, `PostPromotionAnalysis`, `Aborted` or
    /// `Promoted`.
    pub stage: BlueGreenStage,
    /// Revision the active Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_revision: Option<String>,
    /// Revision the preview Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_revision: Option<String>,
    /// When the preview was first seen fully ready (auto-promotion counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_ready_at: Option<Time>,
    /// When auto-promotion will switch, while waiting for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promote_at: Option<Time>,
    /// When the switch happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_at: Option<Time>,
    /// Pre-promotion analysis run and its verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<AnalysisRunRef>,
    /// Post-promotion analysis run and its verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<AnalysisRunRef>,
    /// When the previous version's pods go (after a promotion or an abort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_at: Option<Time>,
    /// An operator's `promote --full`: the remaining analysis is skipped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promoted_full: bool,
}
