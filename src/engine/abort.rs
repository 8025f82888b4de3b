//! Aborts: recording one (a verdict, "we cannot tell", the deadline, an
//! operator), and the images of a revision that status and alerts show.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::hash::pod_template_hash;
use super::plan::{ControlRequests, Planner};
use super::reasons;
use crate::crd::AbortStatus;

impl Planner<'_> {
    /// Record an abort of the canary `revision` now: a verdict that it is bad (Git is reverted).
    pub(super) fn abort(&mut self, revision: &str, reason: &str, message: String) {
        self.abort_with(revision, reason, message, false, false);
    }

    /// Record an abort of `revision` now; `cannot_tell` and `keep_git` as in [`AbortStatus`].
    pub(super) fn abort_with(
        &mut self,
        revision: &str,
        reason: &str,
        message: String,
        cannot_tell: bool,
        keep_git: bool,
    ) {
        let abort = AbortStatus {
            revision: revision.into(),
            reason: reason.into(),
            message: message.clone(),
            at: Time(self.now),
            step_index: self.status.current_step_index.unwrap_or(0),
            weight: self.status.current_weight,
            cannot_tell,
            keep_git,
        };
        let git = if keep_git { "; Git is left alone" } else { "" };
        self.event(
            true,
            reason,
            format!("canary {revision} aborted: {message}{git}"),
        );
        if !cannot_tell {
            self.remember_aborted(revision, reason, keep_git);
        }
        self.status.abort = Some(abort.clone());
        self.newly_aborted = Some(abort);
    }

    /// An abort that an operator or the progress deadline asks for, if the update is not aborted yet.
    pub(super) fn requested_abort(&mut self, desired: &str, requests: &ControlRequests) {
        if self.status.abort.is_some() {
            return;
        }
        if let Some(message) = self.forced_abort.clone() {
            self.abort_with(
                desired,
                reasons::PROGRESS_DEADLINE_EXCEEDED,
                message,
                false,
                true,
            );
        } else if requests.abort {
            self.abort(
                desired,
                reasons::ABORTED_BY_USER,
                "aborted by an operator".into(),
            );
        }
    }

    /// Images of the containers of `revision` (its ReplicaSet, or the template when it is the desired one).
    pub(super) fn images_of(&self, revision: &str) -> Vec<String> {
        let template = match self.revisions.get(revision) {
            Some(rev) => Some(&rev.template),
            None if pod_template_hash(&self.rollout.spec.template) == revision => {
                Some(&self.rollout.spec.template)
            }
            None => None,
        };
        template
            .and_then(|t| t.spec.as_ref())
            .map(|s| {
                s.containers
                    .iter()
                    .filter_map(|c| c.image.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}
