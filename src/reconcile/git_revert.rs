//! Running the Git revert of an aborted canary beside the reconcile loop.
//!
//! The decisions are pure and live in `revert::policy` (which abort needs a
//! revert, whether an operator's abort asked for one, when a failed attempt
//! may run again, what a result means for the record); this worker does the
//! I/O.
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
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::warn;

use super::Io;
use super::git_source::{Prepared, prepare_request};
use super::status_write::{GIT_MANAGER, apply_status};
use crate::crd::{AbortStatus, GitRevertStatus, Rollout, RolloutStatus};
use crate::engine::Observed;
use crate::engine::revisions::index;
use crate::revert::policy::{self, AttemptError, Notice};
pub use crate::revert::policy::{ABORT_REVERT_ANNOTATION, Wanted, backoff, wanted};
use crate::revert::{find_pushed, revert_with};

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
        io: &Arc<Io>,
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
                let record = policy::skipped(canary, why, Timestamp::now());
                let (io, rollout) = (io.clone(), rollout.clone());
                tokio::spawn(async move {
                    record_state(&io, &rollout, &record).await;
                    count(&io, &rollout, &record, None);
                });
                None
            }
            Wanted::Resolve { record } => {
                if !self.claim(&key) {
                    return None;
                }
                let (this, io, rollout) = (self.clone(), io.clone(), rollout.clone());
                tokio::spawn(async move {
                    this.resolve(&io, &rollout, record).await;
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
                let record = policy::starting(status, canary, attempts);
                let abort = status.abort.clone();
                let (this, io, rollout) = (self.clone(), io.clone(), rollout.clone());
                tokio::spawn(async move {
                    this.run(&io, &rollout, record, found, reason, abort).await;
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
    async fn resolve(&self, io: &Io, rollout: &Rollout, seen: GitRevertStatus) {
        // The reconcile decided on its cache, which may predate the attempt
        // that settled this record a moment ago: settle only what is still open.
        let api: Api<Rollout> =
            Api::namespaced(io.client.clone(), &rollout.namespace().unwrap_or_default());
        let live = match api.get(&rollout.name_any()).await {
            Ok(current) => current.status.and_then(|s| s.git_revert),
            Err(e) => {
                warn!(rollout = %rollout.name_any(), error = %e, "cannot read the Git revert record; trying later");
                return;
            }
        };
        let Some(record) = policy::still_open(&seen, live) else {
            return;
        };
        let found = match record.reverted_commit.clone() {
            // Killed before its commit existed: nothing was pushed by that attempt.
            None => Ok(None),
            Some(reverted) => {
                let images = (String::new(), String::new());
                match prepare_request(&io.client, rollout, &self.workspace, images, String::new())
                    .await
                {
                    Ok(Prepared {
                        request,
                        credentials: _credentials,
                    }) => find_pushed(&request, &reverted)
                        .await
                        .map(|found| found.map(|(revert, pr)| (reverted, revert, pr)))
                        .map_err(AttemptError::from),
                    Err(e) => Err(AttemptError::Setup(e)),
                }
            }
        };
        let (record, notice) = policy::after_resolve(record, found, Timestamp::now());
        // Settled after a restart: the push time is unknown, only the outcome counts.
        finish(io, rollout, &record, &notice, None).await;
    }

    async fn run(
        &self,
        io: &Io,
        rollout: &Rollout,
        record: GitRevertStatus,
        images: Option<(String, String)>,
        reason: String,
        abort: Option<AbortStatus>,
    ) {
        if rollout.spec.git.is_none() {
            return;
        }
        // The reconcile decided on its cache, which may predate the attempt
        // that settled this canary a moment ago. When the live record cannot be
        // read, go on: the attempt is idempotent (the trailer finds a revert).
        let api: Api<Rollout> =
            Api::namespaced(io.client.clone(), &rollout.namespace().unwrap_or_default());
        if let (Some(abort), Ok(current)) = (&abort, api.get(&rollout.name_any()).await) {
            let live = current.status.and_then(|s| s.git_revert);
            if !policy::still_wanted(abort, live.as_ref()) {
                return;
            }
        }
        record_state(io, rollout, &record).await;
        let result = async {
            let images = images.ok_or(AttemptError::ImagesUnknown)?;
            // `_credentials` keeps the key files until the revert is done.
            let Prepared {
                request,
                credentials: _credentials,
            } = prepare_request(&io.client, rollout, &self.workspace, images, reason)
                .await
                .map_err(AttemptError::Setup)?;
            // Both SHAs are in status before the push; the trailer in Git makes a rerun safe.
            let before = record.clone();
            let outcome = revert_with(&request, |reverted, revert| {
                let state = policy::pushing(&before, reverted, revert);
                async move { record_state(io, rollout, &state).await }
            })
            .await?;
            Ok(outcome)
        }
        .await;
        let (record, notice) = policy::after_attempt(record, result, Timestamp::now());
        let aborted_at = abort.map(|a| a.at.0);
        finish(io, rollout, &record, &notice, aborted_at).await;
    }
}

/// Record the outcome, count it, log it, and publish it as an Event.
async fn finish(
    io: &Io,
    rollout: &Rollout,
    record: &GitRevertStatus,
    notice: &Notice,
    aborted_at: Option<Timestamp>,
) {
    record_state(io, rollout, record).await;
    count(io, rollout, record, aborted_at);
    super::publish_as(
        io,
        rollout,
        "GitRevert",
        notice.warning,
        notice.reason,
        &notice.note,
    )
    .await;
}

/// Count an attempt's outcome; `aborted_at` times a revert pushed for that abort.
fn count(io: &Io, rollout: &Rollout, record: &GitRevertStatus, aborted_at: Option<Timestamp>) {
    io.metrics.git_revert(
        &rollout.namespace().unwrap_or_default(),
        &rollout.name_any(),
        record.state,
        aborted_at,
    );
}

/// Write `status.gitRevert` under the revert task's own field manager.
async fn record_state(io: &Io, rollout: &Rollout, record: &GitRevertStatus) {
    let namespace = rollout.namespace().unwrap_or_default();
    let status = json!({ "gitRevert": record });
    if let Err(e) = apply_status::<Rollout>(
        &io.client,
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
