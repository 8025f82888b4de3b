//! Running the Git revert of an aborted canary beside the reconcile loop.
//!
//! The decision is pure (`wanted`): which abort needs a revert, whether an
//! operator's abort asked for one, and when a failed attempt may run again.
//! The work runs in a spawned task, so the traffic revert never waits for
//! Git; its record lives in `status.gitRevert`, written under its own field
//! manager (`sluice-git`) so the reconcile's status writes never erase it.
//! A task killed at any point is simply run again: the revert itself is
//! idempotent (it finds its own `Sluice-Reverts:` trailer on the branch).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde_json::json;
use tracing::warn;

use super::Context;
use super::git_source::{Prepared, prepare_request};
use super::status_write::{GIT_MANAGER, apply_status};
use crate::crd::{GitRevertStatus, RevertState, Rollout, RolloutStatus};
use crate::engine::revisions::index;
use crate::engine::{Observed, reasons};
use crate::revert::{RevertOutcome, find_pushed, revert_with};

/// Annotation an operator's abort carries to ask for (`true`) or refuse (`false`) a revert.
pub const ABORT_REVERT_ANNOTATION: &str = "sluice.dev/abort-revert";

/// What the loop should do about Git for this Rollout now.
#[derive(Debug, Clone, PartialEq)]
pub enum Wanted {
    /// Nothing (no abort, no Git source, already done, or backing off).
    Nothing,
    /// Record that this abort does not revert, and why.
    Skip { canary: String, why: &'static str },
    /// Run the revert for this aborted canary.
    Revert { canary: String, attempts: i32 },
    /// Come back after this long (a failed attempt is backing off).
    Later(Duration),
    /// Settle a record a killed controller left unfinished after its abort
    /// ended (the GitOps sync applied the revert, or an operator retried):
    /// look on the branch for the revert it was pushing.
    Resolve { record: GitRevertStatus },
}

/// Back-off between failed attempts: 30 s, 1 min, 2 min … at most 10 min.
pub fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.clamp(1, 6) - 1).unwrap_or(0);
    Duration::from_secs(30 * 2u64.pow(exponent)).min(Duration::from_secs(600))
}

/// Decide from the Rollout and its current status.
pub fn wanted(rollout: &Rollout, status: &RolloutStatus, now: Timestamp) -> Wanted {
    let Some(git) = &rollout.spec.git else {
        return Wanted::Nothing;
    };
    let Some(abort) = &status.abort else {
        return match &status.git_revert {
            Some(record) if record.state.in_progress() => Wanted::Resolve {
                record: record.clone(),
            },
            _ => Wanted::Nothing,
        };
    };
    let canary = abort.revision.clone();
    // A known-bad revision that came back to Git and was refused is reverted
    // anew: the record of its earlier abort (older than the refusal) does not
    // count. Only for refusals: a reconcile on a stale cache may plan any
    // other abort again with a later time, and must not revert twice.
    let refused = abort.reason == reasons::KNOWN_BAD_REVISION;
    let record = status.git_revert.as_ref().filter(|r| {
        r.canary_revision == canary
            && (!refused || r.last_attempt.as_ref().is_none_or(|t| t.0 >= abort.at.0))
    });
    if let Some(record) = record {
        if record.state.is_final() {
            return Wanted::Nothing;
        }
        if record.state == RevertState::Failed
            && let Some(last) = &record.last_attempt
        {
            let next = last.0 + backoff(record.attempts);
            if next > now {
                let wait = (next - now)
                    .total(jiff::Unit::Second)
                    .unwrap_or(30.0)
                    .max(1.0);
                return Wanted::Later(Duration::from_secs_f64(wait));
            }
        }
    }
    if abort.keep_git {
        return Wanted::Skip {
            canary,
            why: if abort.cannot_tell {
                "the analysis could not tell whether the canary is bad: Git is left as it is"
            } else {
                "the abort is no verdict on the image: Git is left as it is"
            },
        };
    }
    if abort.reason == reasons::ABORTED_BY_USER {
        let asked = rollout
            .annotations()
            .get(ABORT_REVERT_ANNOTATION)
            .map(|v| v == "true");
        if !asked.unwrap_or(git.revert_on_manual_abort.unwrap_or(false)) {
            return Wanted::Skip {
                canary,
                why: "aborted by an operator without --revert: Git is left as it is",
            };
        }
    }
    Wanted::Revert {
        canary,
        attempts: record.map(|r| r.attempts).unwrap_or(0),
    }
}

/// The image that differs between two revisions' templates (canary, stable).
pub fn images(observed: &Observed, canary: &str, stable: &str) -> Option<(String, String)> {
    let revisions = index(&observed.replica_sets);
    let containers = |hash: &str| {
        revisions
            .get(hash)
            .and_then(|r| r.template.spec.clone())
            .map(|s| s.containers)
            .unwrap_or_default()
    };
    let (canary, stable) = (containers(canary), containers(stable));
    canary.iter().find_map(|c| {
        let before = stable.iter().find(|s| s.name == c.name)?;
        match (&c.image, &before.image) {
            (Some(new), Some(old)) if new != old => Some((new.clone(), old.clone())),
            _ => None,
        }
    })
}

/// Runs reverts, at most one at a time per Rollout.
pub struct GitReverter {
    workspace: PathBuf,
    in_flight: Mutex<HashSet<String>>,
}

impl GitReverter {
    pub fn new(workspace: PathBuf) -> GitReverter {
        GitReverter {
            workspace,
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    /// Start what `wanted` asks for; returns when to look again, if a retry is pending.
    pub fn consider(
        self: &Arc<Self>,
        ctx: &Arc<Context>,
        rollout: &Rollout,
        observed: &Observed,
        status: &RolloutStatus,
    ) -> Option<Duration> {
        let key = format!(
            "{}/{}",
            rollout.namespace().unwrap_or_default(),
            rollout.name_any()
        );
        match wanted(rollout, status, Timestamp::now()) {
            Wanted::Nothing => None,
            Wanted::Later(wait) => Some(wait),
            Wanted::Skip { canary, why } => {
                let record = GitRevertStatus {
                    state: RevertState::Skipped,
                    canary_revision: canary,
                    message: Some(why.into()),
                    // Dated, so that a later abort of the same revision is told apart.
                    last_attempt: Some(Time(Timestamp::now())),
                    ..Default::default()
                };
                let (ctx, rollout) = (ctx.clone(), rollout.clone());
                tokio::spawn(async move { record_state(&ctx, &rollout, &record).await });
                None
            }
            Wanted::Resolve { record } => {
                if !self.claim(&key) {
                    return None;
                }
                let (this, ctx, rollout) = (self.clone(), ctx.clone(), rollout.clone());
                tokio::spawn(async move {
                    this.resolve(&ctx, &rollout, record).await;
                    this.release(&key);
                });
                None
            }
            Wanted::Revert { canary, attempts } => {
                if !self.claim(&key) {
                    return None;
                }
                let stable = status.stable_revision.clone().unwrap_or_default();
                let found = images(observed, &canary, &stable);
                // The status just planned: the Rollout object may predate the abort.
                let reason = status
                    .abort
                    .as_ref()
                    .map(|a| format!("{} ({})", a.message, a.reason))
                    .unwrap_or_else(|| "aborted".into());
                // The commits an earlier, killed attempt was pushing stay known, so
                // that a crash in this attempt can still be settled from the branch.
                let earlier = status
                    .git_revert
                    .as_ref()
                    .filter(|r| r.canary_revision == canary);
                let record = GitRevertStatus {
                    state: RevertState::Reverting,
                    canary_revision: canary,
                    attempts: attempts + 1,
                    reverted_commit: earlier.and_then(|r| r.reverted_commit.clone()),
                    revert_commit: earlier.and_then(|r| r.revert_commit.clone()),
                    message: Some("reverting the image commit in Git".into()),
                    ..Default::default()
                };
                let (this, ctx, rollout) = (self.clone(), ctx.clone(), rollout.clone());
                tokio::spawn(async move {
                    this.run(&ctx, &rollout, record, found, reason).await;
                    this.release(&key);
                });
                None
            }
        }
    }

    /// Mark a Rollout's Git work as running here; false when it already is.
    fn claim(&self, key: &str) -> bool {
        self.in_flight
            .lock()
            .is_ok_and(|mut running| running.insert(key.to_string()))
    }

    fn release(&self, key: &str) {
        if let Ok(mut running) = self.in_flight.lock() {
            running.remove(key);
        }
    }

    /// Settle an unfinished record whose abort has ended (see `Wanted::Resolve`).
    async fn resolve(&self, ctx: &Context, rollout: &Rollout, mut record: GitRevertStatus) {
        let found = match record.reverted_commit.clone() {
            // Killed before its commit existed: nothing was pushed by that attempt.
            None => Ok(None),
            Some(reverted) => {
                let images = (String::new(), String::new());
                match prepare_request(&ctx.client, rollout, &self.workspace, images, String::new())
                    .await
                {
                    Ok(Prepared {
                        request,
                        credentials: _credentials,
                    }) => find_pushed(&request, &reverted)
                        .await
                        .map(|found| found.map(|(revert, pr)| (reverted, revert, pr)))
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                }
            }
        };
        record.last_attempt = Some(Time(Timestamp::now()));
        let (warning, reason, note) = match found {
            Ok(Some((reverted, revert, pull_request))) => {
                let note = format!(
                    "reverted commit {reverted} with {revert} (the push was confirmed on the branch after a restart)"
                );
                record.state = RevertState::Reverted;
                record.reverted_commit = Some(reverted);
                record.revert_commit = Some(revert);
                record.pull_request = pull_request;
                (false, "GitReverted", note)
            }
            Ok(None) => {
                record.state = RevertState::NotNeeded;
                record.revert_commit = None;
                (
                    false,
                    "GitRevertNotNeeded",
                    "the abort ended before the revert reached the branch; Git is left as it is"
                        .to_string(),
                )
            }
            // The abort is over: record why and do not retry in a loop.
            Err(error) => {
                record.state = RevertState::Failed;
                (
                    true,
                    "GitRevertFailed",
                    format!("cannot confirm the revert: {error}"),
                )
            }
        };
        Self::finish(ctx, rollout, record, warning, reason, note).await;
    }

    async fn run(
        &self,
        ctx: &Context,
        rollout: &Rollout,
        mut record: GitRevertStatus,
        images: Option<(String, String)>,
        reason: String,
    ) {
        if rollout.spec.git.is_none() {
            return;
        }
        let attempts = record.attempts;
        record_state(ctx, rollout, &record).await;
        let result = async {
            let Some(images) = images else {
                return Err(
                    "cannot tell which image the canary changed (its ReplicaSets are gone)"
                        .to_string(),
                );
            };
            // `_credentials` keeps the key files until the revert is done.
            let Prepared {
                request,
                credentials: _credentials,
            } = prepare_request(&ctx.client, rollout, &self.workspace, images, reason).await?;
            // Both SHAs are in status before the push; the trailer in Git makes a rerun safe.
            let pushing = record.clone();
            revert_with(&request, |reverted, revert| {
                let mut state = pushing.clone();
                state.state = RevertState::Pushing;
                state.message = Some(format!("pushing {revert}, which reverts {reverted}"));
                state.reverted_commit = Some(reverted);
                state.revert_commit = Some(revert);
                async move { record_state(ctx, rollout, &state).await }
            })
            .await
            .map_err(|e| e.to_string())
        }
        .await;
        record.last_attempt = Some(Time(Timestamp::now()));
        let (warning, reason, note) = match result {
            Ok(RevertOutcome::Reverted {
                reverted,
                revert,
                fallback,
                bundled,
                pull_request,
            }) => {
                let mut note = format!("reverted commit {reverted} with {revert}");
                if fallback {
                    note.push_str(" (the revert conflicted; the image was set back by an edit)");
                }
                if !bundled.is_empty() {
                    note.push_str(&format!(
                        "; the reverted commit also changed {}",
                        bundled.join(", ")
                    ));
                }
                if let Some(url) = &pull_request {
                    note.push_str(&format!("; waiting to be merged in {url}"));
                }
                record.state = RevertState::Reverted;
                record.pull_request = pull_request;
                record.reverted_commit = Some(reverted);
                record.revert_commit = Some(revert);
                (false, "GitReverted", note)
            }
            Ok(RevertOutcome::AlreadyReverted {
                reverted,
                revert,
                pull_request,
            }) => {
                record.pull_request = pull_request;
                record.state = RevertState::AlreadyReverted;
                record.reverted_commit = Some(reverted.clone());
                record.revert_commit = Some(revert.clone());
                (
                    false,
                    "GitReverted",
                    format!("commit {reverted} was already reverted by {revert}"),
                )
            }
            Ok(RevertOutcome::NotNeeded { reason }) => {
                record.state = RevertState::NotNeeded;
                (false, "GitRevertNotNeeded", reason)
            }
            Err(error) => {
                record.state = RevertState::Failed;
                let retry = humantime::format_duration(backoff(attempts));
                (
                    true,
                    "GitRevertFailed",
                    format!("{error}; traffic stays on stable; retrying in {retry}"),
                )
            }
        };
        Self::finish(ctx, rollout, record, warning, reason, note).await;
    }
}

impl GitReverter {
    /// Record the outcome, log it, and publish it as an Event.
    async fn finish(
        ctx: &Context,
        rollout: &Rollout,
        mut record: GitRevertStatus,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        record.message = Some(note.clone());
        record_state(ctx, rollout, &record).await;
        super::publish_as(ctx, rollout, "GitRevert", warning, reason, &note).await;
    }
}

/// Write `status.gitRevert` under the revert task's own field manager.
async fn record_state(ctx: &Context, rollout: &Rollout, record: &GitRevertStatus) {
    let namespace = rollout.namespace().unwrap_or_default();
    let status = json!({ "gitRevert": record });
    if let Err(e) = apply_status::<Rollout>(
        &ctx.client,
        Some(&namespace),
        &rollout.name_any(),
        GIT_MANAGER,
        status,
    )
    .await
    {
        warn!(rollout = %rollout.name_any(), error = %e, "cannot record the Git revert state");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{AbortStatus, GitSource};
    use crate::engine::testkit::rollout as test_rollout;

    fn aborted(reason: &str) -> (Rollout, RolloutStatus) {
        let mut r = test_rollout(4, None, true);
        r.spec.git = Some(GitSource {
            repository: Some("https://git.example.com/apps.git".into()),
            path: "apps/web".into(),
            ..Default::default()
        });
        let status = RolloutStatus {
            abort: Some(AbortStatus {
                revision: "canaryhash".into(),
                reason: reason.into(),
                message: "m".into(),
                at: Time(Timestamp::UNIX_EPOCH),
                step_index: 1,
                weight: 10,
                cannot_tell: false,
                keep_git: false,
            }),
            ..Default::default()
        };
        (r, status)
    }

    #[test]
    fn analysis_aborts_revert_and_manual_ones_only_when_asked() {
        let now = Timestamp::UNIX_EPOCH;
        let (r, s) = aborted("AnalysisFailed");
        assert_eq!(
            wanted(&r, &s, now),
            Wanted::Revert {
                canary: "canaryhash".into(),
                attempts: 0
            }
        );
        let (mut r, s) = aborted("AbortedByUser");
        assert_eq!(
            wanted(&r, &s, now),
            Wanted::Skip {
                canary: "canaryhash".into(),
                why: "aborted by an operator without --revert: Git is left as it is",
            }
        );
        r.metadata.annotations =
            Some([(ABORT_REVERT_ANNOTATION.to_string(), "true".to_string())].into());
        assert!(matches!(wanted(&r, &s, now), Wanted::Revert { .. }));
        let (mut r, s) = aborted("AbortedByUser");
        if let Some(git) = r.spec.git.as_mut() {
            git.revert_on_manual_abort = Some(true);
        }
        r.metadata.annotations =
            Some([(ABORT_REVERT_ANNOTATION.to_string(), "false".to_string())].into());
        assert_eq!(
            wanted(&r, &s, now),
            Wanted::Skip {
                canary: "canaryhash".into(),
                why: "aborted by an operator without --revert: Git is left as it is",
            },
            "--no-revert wins"
        );
    }

    #[test]
    fn a_refused_known_bad_revision_is_reverted_anew_and_nothing_else_twice() {
        let now = Timestamp::UNIX_EPOCH;
        let earlier = GitRevertStatus {
            state: RevertState::Reverted,
            canary_revision: "canaryhash".into(),
            revert_commit: Some("abc".into()),
            last_attempt: Some(Time(now)),
            attempts: 1,
            ..Default::default()
        };
        let later = Time(now + Duration::from_secs(60));
        // The same abort planned again (a stale cache) a bit later: no second revert.
        let (r, mut s) = aborted("AnalysisFailed");
        s.git_revert = Some(earlier.clone());
        if let Some(abort) = s.abort.as_mut() {
            abort.at = later.clone();
        }
        assert_eq!(wanted(&r, &s, now), Wanted::Nothing);
        // The revision came back to Git and was refused: its new commit is reverted.
        let (r, mut s) = aborted(reasons::KNOWN_BAD_REVISION);
        s.git_revert = Some(earlier);
        if let Some(abort) = s.abort.as_mut() {
            abort.at = later;
        }
        assert!(matches!(wanted(&r, &s, now), Wanted::Revert { .. }));
        // "We cannot tell" and the progress deadline leave Git alone.
        let (r, mut s) = aborted("AnalysisError");
        if let Some(abort) = s.abort.as_mut() {
            abort.keep_git = true;
            abort.cannot_tell = true;
        }
        assert!(
            matches!(wanted(&r, &s, now), Wanted::Skip { why, .. } if why.contains("could not tell"))
        );
    }

    #[test]
    fn a_rollout_that_recovers_is_not_reverted() {
        let now = Timestamp::UNIX_EPOCH;
        // Never aborted: nothing to do in Git.
        let (r, mut s) = aborted("AnalysisFailed");
        let healthy = RolloutStatus {
            abort: None,
            ..s.clone()
        };
        assert_eq!(wanted(&r, &healthy, now), Wanted::Nothing);
        // Aborted, then retried (the abort is cleared) before the revert ran: Git stays.
        s.abort = None;
        assert_eq!(wanted(&r, &s, now), Wanted::Nothing);
        // No spec.git: aborts never touch Git.
        let (mut r, s) = aborted("AnalysisFailed");
        r.spec.git = None;
        assert_eq!(wanted(&r, &s, now), Wanted::Nothing);
    }

    #[test]
    fn done_is_done_and_failures_back_off() {
        let now = Timestamp::UNIX_EPOCH + Duration::from_secs(100);
        let (r, mut s) = aborted("AnalysisFailed");
        s.git_revert = Some(GitRevertStatus {
            state: RevertState::Reverted,
            canary_revision: "canaryhash".into(),
            ..Default::default()
        });
        assert_eq!(wanted(&r, &s, now), Wanted::Nothing);
        s.git_revert = Some(GitRevertStatus {
            state: RevertState::Failed,
            canary_revision: "canaryhash".into(),
            attempts: 2,
            last_attempt: Some(Time(Timestamp::UNIX_EPOCH + Duration::from_secs(90))),
            ..Default::default()
        });
        assert!(
            matches!(wanted(&r, &s, now), Wanted::Later(d) if d.as_secs() == 50),
            "{:?}",
            wanted(&r, &s, now)
        );
        let later = now + Duration::from_secs(60);
        assert_eq!(
            wanted(&r, &s, later),
            Wanted::Revert {
                canary: "canaryhash".into(),
                attempts: 2
            }
        );
        // A record about an older canary does not count for this one.
        s.git_revert = Some(GitRevertStatus {
            state: RevertState::Reverted,
            canary_revision: "older".into(),
            ..Default::default()
        });
        assert!(matches!(wanted(&r, &s, now), Wanted::Revert { .. }));
    }
    #[test]
    fn a_push_left_unconfirmed_by_a_crash_is_resolved_even_after_the_abort_cleared() {
        let now = Timestamp::UNIX_EPOCH;
        let (r, mut s) = aborted("AnalysisFailed");
        let pushing = GitRevertStatus {
            state: RevertState::Pushing,
            canary_revision: "canaryhash".into(),
            reverted_commit: Some("bump".into()),
            revert_commit: Some("revert".into()),
            attempts: 1,
            ..Default::default()
        };
        s.git_revert = Some(pushing.clone());
        // The GitOps sync applied the revert while the controller was down:
        // the abort is over, but the record still waits for its push.
        s.abort = None;
        assert_eq!(
            wanted(&r, &s, now),
            Wanted::Resolve { record: pushing },
            "the trailer on the branch settles it"
        );
        let mut reverting = s.clone();
        if let Some(record) = reverting.git_revert.as_mut() {
            record.state = RevertState::Reverting;
        }
        assert!(matches!(
            wanted(&r, &reverting, now),
            Wanted::Resolve { .. }
        ));
        // Settled records stay settled.
        for state in [
            RevertState::Reverted,
            RevertState::AlreadyReverted,
            RevertState::NotNeeded,
            RevertState::Skipped,
            RevertState::Failed,
        ] {
            let mut done = s.clone();
            if let Some(record) = done.git_revert.as_mut() {
                record.state = state;
            }
            assert_eq!(wanted(&r, &done, now), Wanted::Nothing, "{state}");
        }
    }
}
