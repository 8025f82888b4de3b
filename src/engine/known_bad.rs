//! Known-bad revisions: an aborted revision is remembered (the newest
//! [`KNOWN_BAD_LIMIT`], in `status.abortedRevisions`), and a template that
//! comes back to one of them, e.g. image automation committing the same tag
//! again after the revert, is refused until an operator's `retry`.
//!
//! The refusal is a new abort (reason `KnownBadRevision`), so the image
//! commit that brought it back is reverted in Git again and the `aborted`
//! alert fires for it; no pod of the refused revision starts and no
//! AnalysisRun is read or created.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::plan::{ControlRequests, Planner};
use super::reasons::KNOWN_BAD_REVISION;
use crate::crd::{AbortedRevision, RevertState, RolloutPhase};

/// Aborted revisions remembered per Rollout (the oldest go first).
pub const KNOWN_BAD_LIMIT: usize = 10;

impl Planner<'_> {
    /// Remember `revision` as aborted (called once per new abort that is a verdict).
    pub(super) fn remember_aborted(&mut self, revision: &str, reason: &str, keep_git: bool) {
        if reason == KNOWN_BAD_REVISION {
            return;
        }
        let images = self.images_of(revision);
        let known = &mut self.status.aborted_revisions;
        known.retain(|k| k.revision != revision);
        known.push(AbortedRevision {
            revision: revision.into(),
            images,
            reason: reason.into(),
            at: Time(self.now),
            revert_commit: None,
            keep_git,
        });
        let excess = known.len().saturating_sub(KNOWN_BAD_LIMIT);
        known.drain(..excess);
    }

    /// Copy what the Git task recorded into the remembered revisions.
    pub(super) fn note_reverts(&mut self) {
        let Some(record) = self.old.git_revert.clone() else {
            return;
        };
        for known in &mut self.status.aborted_revisions {
            if known.revision != record.canary_revision {
                continue;
            }
            if record.state.reverted() && known.revert_commit.is_none() {
                known.revert_commit = record
                    .revert_commit
                    .clone()
                    .or_else(|| record.pull_request.clone());
            }
            // An operator's abort without --revert: a refusal leaves Git alone too.
            if record.state == RevertState::Skipped {
                known.keep_git = true;
            }
        }
    }

    /// Refuse `desired` if it is a known-bad revision; true when refused (the
    /// plan is complete). A `retry` forgets it and lets the strategy start it again.
    pub(super) fn refuse_known_bad(
        &mut self,
        stable: &str,
        desired: &str,
        requests: &ControlRequests,
    ) -> bool {
        let Some(known) = self
            .old
            .aborted_revisions
            .iter()
            .find(|k| k.revision == desired)
            .cloned()
        else {
            return false;
        };
        if requests.retry {
            self.status
                .aborted_revisions
                .retain(|k| k.revision != desired);
            return false;
        }
        // Its own abort is still being carried out (pods, switch back, Git).
        let current = self.old.abort.as_ref().filter(|a| a.revision == desired);
        if current.is_some_and(|a| a.reason != KNOWN_BAD_REVISION) {
            return false;
        }
        let images = if known.images.is_empty() {
            String::new()
        } else {
            format!(" ({})", known.images.join(", "))
        };
        let reverted = known
            .revert_commit
            .as_deref()
            .map(|c| format!(", reverted in Git by {}", short(c)))
            .unwrap_or_default();
        let message = format!(
            "revision {desired}{images} was aborted at {} ({}){reverted}; it is not rolled out again until `sluice rollout retry`",
            known.at.0, known.reason
        );
        if current.is_none() {
            let keep_git = known.keep_git;
            self.abort_with(
                desired,
                KNOWN_BAD_REVISION,
                message.clone(),
                false,
                keep_git,
            );
        }
        self.status.canary_revision = Some(desired.to_string());
        self.status.current_step_index = None;
        self.status.step_label = None;
        self.status.step_started_at = None;
        self.status.current_analysis = None;
        self.status.background_analysis = None;
        self.status.blue_green = None;
        self.status.pause_reason = None;
        let replicas = self.settings.replicas;
        self.ensure_revision(stable, replicas);
        self.route_weight_down_to(0);
        self.point_services(stable, stable);
        self.status.current_weight = 0;
        self.status.desired_weight = 0;
        self.set_outcome(
            RolloutPhase::Aborted,
            KNOWN_BAD_REVISION,
            format!("{message}; traffic is on stable {stable}"),
        );
        true
    }
}

/// A commit SHA shortened for messages; URLs and other strings stay whole.
fn short(commit: &str) -> &str {
    if commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        &commit[..12]
    } else {
        commit
    }
}
