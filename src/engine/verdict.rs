//! Analysis verdicts shared by both strategies: run names per attempt, and
//! what a verdict that cannot tell (Error, Inconclusive) does.
//!
//! A `Failed` verdict says the canary is bad: abort, revert Git, page. An
//! `Error` (monitoring down, a broken query) or an `Inconclusive` verdict
//! says nothing about the canary, so it never reverts Git: per
//! `spec.analysisCannotTell` it holds traffic where it is (`Hold`, the
//! default) or puts it back on stable (`RollbackTraffic`).

use super::plan::Planner;
use crate::crd::{AnalysisPhase, CannotTellAction};

/// Whether a pause reason (or an abort reason) is a verdict that cannot tell,
/// e.g. `AnalysisError`, `BackgroundAnalysisInconclusive`, `PostPromotionAnalysisError`.
pub fn is_cannot_tell(reason: &str) -> bool {
    reason.ends_with("AnalysisError") || reason.ends_with("AnalysisInconclusive")
}

/// What the phase of an analysis run means for whatever waits on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunVerdict {
    /// Not worse: go on.
    Passed,
    /// Worse: abort.
    Failed,
    /// `Error` or `Inconclusive`: says nothing about the canary (see the module header).
    CannotTell(AnalysisPhase),
    /// No verdict yet (not created, pending, running, or terminated).
    Waiting,
}

impl RunVerdict {
    pub fn of(phase: Option<AnalysisPhase>) -> RunVerdict {
        match phase {
            Some(AnalysisPhase::Successful) => RunVerdict::Passed,
            Some(AnalysisPhase::Failed) => RunVerdict::Failed,
            Some(verdict @ (AnalysisPhase::Error | AnalysisPhase::Inconclusive)) => {
                RunVerdict::CannotTell(verdict)
            }
            Some(AnalysisPhase::Pending | AnalysisPhase::Running | AnalysisPhase::Terminated)
            | None => RunVerdict::Waiting,
        }
    }
}

/// Event reason when an analysis cannot tell and traffic is held.
pub const CANNOT_TELL_EVENT: &str = "AnalysisCannotTell";

/// The reason for a verdict that cannot tell, after `prefix` (`""`,
/// `Background`, `PrePromotion`, `PostPromotion`): e.g. `BackgroundAnalysisError`.
pub fn cannot_tell_reason(prefix: &str, verdict: AnalysisPhase) -> String {
    if verdict == AnalysisPhase::Error {
        format!("{prefix}AnalysisError")
    } else {
        format!("{prefix}AnalysisInconclusive")
    }
}

impl Planner<'_> {
    /// Name of the run `what` (a step number, `pre`, `post`, `background`) of
    /// `desired` in this attempt. The first attempt keeps the plain name.
    pub(super) fn run_name(&self, desired: &str, what: &str) -> String {
        let rollout = self.rollout.metadata.name.as_deref().unwrap_or_default();
        match self.status.attempt {
            attempt if attempt > 1 => format!("{rollout}-{desired}-{what}-{attempt}"),
            _ => format!("{rollout}-{desired}-{what}"),
        }
    }

    /// A new update or a retry: runs get new names from here on.
    pub(super) fn next_attempt(&mut self) {
        self.status.attempt = self.old.attempt.saturating_add(1);
    }

    /// Whether the rollout is held on a verdict that cannot tell.
    pub(super) fn held_on_cannot_tell(&self) -> bool {
        self.old.pause_reason.as_deref().is_some_and(is_cannot_tell)
    }

    /// The setting for verdicts that cannot tell.
    pub(super) fn cannot_tell_action(&self) -> CannotTellAction {
        self.rollout.spec.analysis_cannot_tell.unwrap_or_default()
    }

    /// Act on a verdict that cannot tell: `reason` (e.g. `AnalysisError`,
    /// `PostPromotionAnalysisInconclusive`) and what was seen. With `Hold`
    /// the rollout pauses (traffic stays as it is; the caller keeps it
    /// there) and true is returned; with `RollbackTraffic` it is aborted
    /// without a Git revert and false is returned.
    pub(super) fn cannot_tell(&mut self, desired: &str, reason: &str, seen: String) -> bool {
        match self.cannot_tell_action() {
            CannotTellAction::Hold => {
                self.waiting_by_design = true;
                if self.old.pause_reason.as_deref() != Some(reason) {
                    self.event(
                        true,
                        CANNOT_TELL_EVENT,
                        format!("{seen}; traffic is held where it is and Git is left alone"),
                    );
                }
                self.status.pause_reason = Some(reason.into());
                let message = format!(
                    "{seen}; the analysis cannot tell, so traffic is held: `sluice rollout promote` goes on without it, `retry` measures again, `abort` rolls back"
                );
                self.set_outcome(crate::crd::RolloutPhase::Paused, reason, message);
                true
            }
            CannotTellAction::RollbackTraffic => {
                let message = format!(
                    "{seen}; the analysis cannot tell, so traffic goes back to stable and Git is left alone"
                );
                self.abort_with(desired, reason, message, true, true);
                false
            }
        }
    }
}
