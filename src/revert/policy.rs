//! What to do about Git for an aborted canary, and what an attempt's result
//! means for `status.gitRevert`: pure functions beside their tests. The
//! worker in `reconcile::git_revert` only does the I/O (Secrets, the clone,
//! the push, the status write) and asks these what to write.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::RevertOutcome;
use crate::crd::reasons::{self, git};
use crate::crd::{AbortStatus, GitRevertStatus, RevertState, Rollout, RolloutStatus};

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
    let record = status.git_revert.as_ref().filter(|r| record_of(r, abort));
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

/// Why an attempt could not revert.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The canary's ReplicaSets are gone, so its image is unknown.
    #[error("cannot tell which image the canary changed (its ReplicaSets are gone)")]
    ImagesUnknown,
    /// The Git settings, the repository object or its Secret could not be read.
    #[error("{0}")]
    Setup(String),
    /// Git itself failed.
    #[error(transparent)]
    Git(#[from] super::Error),
}

/// What a finished attempt tells people: an Event and a log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// A revert found on the branch: the reverted commit, the revert, its pull request.
pub type Pushed = (String, String, Option<String>);

/// The record of an abort that does not revert, dated so that a later abort
/// of the same revision is told apart.
pub fn skipped(canary: String, why: &str, now: Timestamp) -> GitRevertStatus {
    GitRevertStatus {
        state: RevertState::Skipped,
        canary_revision: canary,
        message: Some(why.into()),
        last_attempt: Some(Time(now)),
        ..Default::default()
    }
}

/// The record when attempt number `attempts + 1` starts. The commits an
/// earlier, killed attempt was pushing stay known, so that a crash in this
/// attempt can still be settled from the branch.
pub fn starting(status: &RolloutStatus, canary: String, attempts: i32) -> GitRevertStatus {
    let earlier = status
        .git_revert
        .as_ref()
        .filter(|r| r.canary_revision == canary);
    GitRevertStatus {
        state: RevertState::Reverting,
        canary_revision: canary,
        attempts: attempts.saturating_add(1),
        reverted_commit: earlier.and_then(|r| r.reverted_commit.clone()),
        revert_commit: earlier.and_then(|r| r.revert_commit.clone()),
        message: Some("reverting the image commit in Git".into()),
        ..Default::default()
    }
}

/// The record once both commits exist and the push starts.
pub fn pushing(record: &GitRevertStatus, reverted: String, revert: String) -> GitRevertStatus {
    GitRevertStatus {
        state: RevertState::Pushing,
        message: Some(format!("pushing {revert}, which reverts {reverted}")),
        reverted_commit: Some(reverted),
        revert_commit: Some(revert),
        ..record.clone()
    }
}

/// Merge an attempt's result into its record.
pub fn after_attempt(
    mut record: GitRevertStatus,
    result: Result<RevertOutcome, AttemptError>,
    now: Timestamp,
) -> (GitRevertStatus, Notice) {
    record.last_attempt = Some(Time(now));
    let notice = match result {
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
            told(false, git::EVENT_REVERTED, note)
        }
        Ok(RevertOutcome::AlreadyReverted {
            reverted,
            revert,
            pull_request,
        }) => {
            let note = format!("commit {reverted} was already reverted by {revert}");
            record.pull_request = pull_request;
            record.state = RevertState::AlreadyReverted;
            record.reverted_commit = Some(reverted);
            record.revert_commit = Some(revert);
            told(false, git::EVENT_REVERTED, note)
        }
        Ok(RevertOutcome::NotNeeded { reason }) => {
            record.state = RevertState::NotNeeded;
            told(false, git::EVENT_NOT_NEEDED, reason)
        }
        Err(error) => {
            record.state = RevertState::Failed;
            let retry = humantime::format_duration(backoff(record.attempts));
            told(
                true,
                git::EVENT_FAILED,
                format!("{error}; traffic stays on stable; retrying in {retry}"),
            )
        }
    };
    record.message = Some(notice.note.clone());
    (record, notice)
}

/// The record to settle, if the live one is still the unfinished record the
/// reconcile saw (same canary, still `Reverting` or `Pushing`). A record that
/// was settled meanwhile (its attempt finished after the reconcile read its
/// cache) is left alone: settling it again from a stale copy could turn
/// `Reverted` into `NotNeeded`.
pub fn still_open(
    seen: &GitRevertStatus,
    live: Option<GitRevertStatus>,
) -> Option<GitRevertStatus> {
    live.filter(|r| r.canary_revision == seen.canary_revision && r.state.in_progress())
}

/// Whether `record` is the revert record of `abort`: the same canary and, for
/// a known-bad revision that came back to Git and was refused, made after
/// that refusal (the record of its earlier abort does not count, so it is
/// reverted anew). Only for refusals: a reconcile on a stale cache may plan
/// any other abort again with a later time, and must not revert twice.
fn record_of(record: &GitRevertStatus, abort: &AbortStatus) -> bool {
    let refused = abort.reason == reasons::KNOWN_BAD_REVISION;
    record.canary_revision == abort.revision
        && (!refused
            || record
                .last_attempt
                .as_ref()
                .is_none_or(|t| t.0 >= abort.at.0))
}

/// Whether a revert the reconcile asked for (from its cache) for `abort` is
/// still wanted once the live record is read: not when the live record
/// already settled it (an attempt finished after the cache was read).
/// Starting again would overwrite `Reverted` with `Reverting`, then
/// `AlreadyReverted` (Sluice's own revert found on the branch), and tell of
/// the revert a second time.
pub fn still_wanted(abort: &AbortStatus, live: Option<&GitRevertStatus>) -> bool {
    !live.is_some_and(|r| record_of(r, abort) && r.state.is_final())
}

/// Settle an unfinished record whose abort has ended from what the branch
/// shows (see [`Wanted::Resolve`]).
pub fn after_resolve(
    mut record: GitRevertStatus,
    found: Result<Option<Pushed>, AttemptError>,
    now: Timestamp,
) -> (GitRevertStatus, Notice) {
    record.last_attempt = Some(Time(now));
    let notice = match found {
        Ok(Some((reverted, revert, pull_request))) => {
            let note = format!(
                "reverted commit {reverted} with {revert} (the push was confirmed on the branch after a restart)"
            );
            record.state = RevertState::Reverted;
            record.reverted_commit = Some(reverted);
            record.revert_commit = Some(revert);
            record.pull_request = pull_request;
            told(false, git::EVENT_REVERTED, note)
        }
        Ok(None) => {
            record.state = RevertState::NotNeeded;
            record.revert_commit = None;
            told(
                false,
                git::EVENT_NOT_NEEDED,
                "the abort ended before the revert reached the branch; Git is left as it is".into(),
            )
        }
        // The abort is over: record why and do not retry in a loop.
        Err(error) => {
            record.state = RevertState::Failed;
            told(
                true,
                git::EVENT_FAILED,
                format!("cannot confirm the revert: {error}"),
            )
        }
    };
    record.message = Some(notice.note.clone());
    (record, notice)
}

fn told(warning: bool, reason: &'static str, note: String) -> Notice {
    Notice {
        warning,
        reason,
        note,
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
