//! Reasons written to `Rollout.status` (conditions, the abort record, the
//! pause reason) that other code or users compare against: one name each, so
//! a typo cannot split a reason in two.

/// The step's analysis judged the canary worse.
pub const ANALYSIS_FAILED: &str = "AnalysisFailed";
/// The background analysis judged the canary worse.
pub const BACKGROUND_ANALYSIS_FAILED: &str = "BackgroundAnalysisFailed";
/// An operator aborted (`sluice rollout abort`).
pub const ABORTED_BY_USER: &str = "AbortedByUser";
/// An operator paused (`sluice rollout pause`).
pub const PAUSED_BY_USER: &str = "PausedByUser";
/// The spec cannot be acted on; the message lists every problem.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// `spec.workloadRef` cannot be used: a missing Deployment, a wrong kind, a template beside it.
pub const WORKLOAD_REF_INVALID: &str = "WorkloadRefInvalid";
/// A new template waits until the adopted Deployment's pods stop serving through the stable Service.
pub const ADOPTION_IN_PROGRESS: &str = "AdoptionInProgress";
/// A revision aborted before came back and was refused.
pub const KNOWN_BAD_REVISION: &str = "KnownBadRevision";
/// The update made no progress within `progressDeadlineSeconds`.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
/// A newer revision replaced the canary mid-update.
pub const SUPERSEDED: &str = "Superseded";
/// The strategy changed mid-update; it restarts under the new one.
pub const STRATEGY_CHANGED: &str = "StrategyChanged";
/// A reconcile panicked; it is retried.
pub const RECONCILE_PANICKED: &str = "ReconcilePanicked";

/// `Ready` when the rollout is Healthy.
pub const HEALTHY: &str = "Healthy";
/// `Progressing` once the update completed.
pub const ROLLOUT_COMPLETED: &str = "RolloutCompleted";
/// `Progressing` while paused.
pub const ROLLOUT_PAUSED: &str = "RolloutPaused";
/// `Degraded`/`Stalled` when nothing is wrong.
pub const AS_EXPECTED: &str = "AsExpected";

/// `GitReverted` reasons.
pub mod git {
    pub const REVERTED: &str = "Reverted";
    pub const NOT_NEEDED: &str = "NotNeeded";
    pub const SKIPPED: &str = "Skipped";
    pub const REVERTING: &str = "Reverting";
    pub const REVERT_FAILED: &str = "RevertFailed";
    /// Event reasons of the revert task.
    pub const EVENT_REVERTED: &str = "GitReverted";
    pub const EVENT_NOT_NEEDED: &str = "GitRevertNotNeeded";
    pub const EVENT_FAILED: &str = "GitRevertFailed";
}
