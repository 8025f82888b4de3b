//! The progress deadline: a rollout that stands still longer than
//! `progressDeadlineSeconds` (pauses and analysis do not count) is
//! `Degraded`, or with `abortOnProgressDeadline` aborted, and the message
//! says why its pods are not Ready (see [`super::stuck`]).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::plan::Planner;
use super::reasons::PROGRESS_DEADLINE_EXCEEDED;
use crate::crd::RolloutPhase;

impl Planner<'_> {
    /// Whether the rollout stands still: `Err(deadline)` while within it.
    pub(super) fn stalled(&self) -> Result<bool, Timestamp> {
        let progressed = self.status.current_step_index != self.old.current_step_index
            || self.status.canary_revision != self.old.canary_revision
            || self.status.stable_revision != self.old.stable_revision
            || self.status.ready_replicas != self.old.ready_replicas
            || self.status.current_weight != self.old.current_weight
            || self.old.last_progress_at.is_none();
        if progressed || self.outcome.phase != RolloutPhase::Progressing || self.waiting_by_design {
            return Ok(false);
        }
        let since = self
            .old
            .last_progress_at
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(self.now);
        let deadline = crate::crd::limits::after(since, self.settings.progress_deadline);
        if self.now >= deadline {
            Ok(true)
        } else {
            Err(deadline)
        }
    }

    /// What the deadline message says: how long, what the rollout waited for, and why pods are not ready.
    pub(super) fn deadline_message(&self) -> String {
        let seconds = self.settings.progress_deadline.as_secs();
        let mut message = format!("no progress for {seconds}s: {}", self.outcome.message);
        let revision = self
            .status
            .canary_revision
            .as_deref()
            .or(self.status.stable_revision.as_deref());
        if let Some(why) = revision.and_then(|r| super::stuck::why(self.observed, r)) {
            message.push_str(&format!("; {why}"));
        }
        message
    }

    /// The message of an abort on the progress deadline, when one is due now.
    pub(super) fn deadline_abort_due(&mut self) -> Option<String> {
        let update_in_flight = self.status.canary_revision.is_some() && self.status.abort.is_none();
        if !self.rollout.spec.abort_on_progress_deadline || !update_in_flight {
            return None;
        }
        self.count_replicas();
        matches!(self.stalled(), Ok(true)).then(|| self.deadline_message())
    }

    /// Progress is any change in step or ready pods; none for too long while progressing is Degraded.
    pub(super) fn check_deadline(&mut self) {
        match self.stalled() {
            Ok(false) => self.status.last_progress_at = Some(Time(self.now)),
            Ok(true) => {
                let message = self.deadline_message();
                self.set_outcome(RolloutPhase::Degraded, PROGRESS_DEADLINE_EXCEEDED, message);
            }
            Err(deadline) => self.wake.push(deadline),
        }
    }
}
