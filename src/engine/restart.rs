//! Restarting a Rollout's pods without a new revision (`spec.restartAt`,
//! `sluice rollout restart`), decided here without I/O.
//!
//! Given the pods of the stable and canary (or preview) ReplicaSets, the
//! request time and the availability budget, [`next`] says which pods to
//! evict now, what to wait for, or that the restart is done. The reconcile
//! evicts through the Eviction API, so PodDisruptionBudgets are honoured; a
//! refused eviction leaves the pod as it was, and the next pass picks it again.
//!
//! Safety rule: a pod that is Ready is only evicted while its ReplicaSet has
//! at least `desired - allowed + 1` Ready pods that are not terminating, so
//! Ready pods never drop below `desired - allowed` (`allowed` is the canary's
//! `maxUnavailable`, at least 1 so that a restart can move at all, and at
//! most `desired - 1`; a one-pod ReplicaSet is briefly without a Ready pod,
//! as eviction cannot surge).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use super::hash::POD_TEMPLATE_HASH_LABEL;
use super::plan::{Planner, Write};
use crate::crd::{AnalysisPhase, RolloutPhase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Event reason of a pod evicted for a restart (emitted by the reconcile once the eviction is accepted).
pub const POD_RESTARTED: &str = "PodRestarted";
/// Event reason of a finished restart.
pub const RESTART_DONE: &str = "RestartDone";
/// Event reason of an eviction refused (a PodDisruptionBudget): retried later.
pub const RESTART_BLOCKED: &str = "RestartBlocked";
/// Event reason of a restart that waits for the rollout to settle.
pub const RESTART_HELD: &str = "RestartHeld";

/// One pod as the restart sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    /// Pod name.
    pub name: String,
    /// `metadata.creationTimestamp`.
    pub created: Timestamp,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// Deletion has begun (`metadata.deletionTimestamp`).
    pub terminating: bool,
}

impl PodView {
    /// Read a pod; `None` without a creation time (never the case on a real API server).
    pub fn from_pod(pod: &Pod) -> Option<PodView> {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Some(PodView {
            name: pod.metadata.name.clone()?,
            created: pod.metadata.creation_timestamp.as_ref()?.0,
            ready,
            terminating: pod.metadata.deletion_timestamp.is_some(),
        })
    }
}

/// The pods of one ReplicaSet and how many it should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Pod-template hash of the ReplicaSet.
    pub revision: String,
    /// `spec.replicas` of the ReplicaSet.
    pub desired: i32,
    /// Its pods.
    pub pods: Vec<PodView>,
}

/// What the restart does now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// No restart is asked for, or the one asked for is done already.
    Idle,
    /// `restartAt` is still in the future.
    WaitUntil(Timestamp),
    /// Evict these pods (names) now.
    Evict(Vec<String>),
    /// Pods created before `restartAt` remain (`left`), but evicting one
    /// now would take Ready pods below what availability allows: wait for
    /// the replacements to become Ready.
    WaitForReady {
        /// Pods still to restart.
        left: usize,
    },
    /// Every pod is newer than `restartAt` and each ReplicaSet has its desired pods Ready.
    Done,
}

/// Pods created before this time are due for a restart, or `None` if no
/// restart is pending (none asked for, or that one done).
pub fn pending(
    restart_at: Option<Timestamp>,
    restarted_at: Option<Timestamp>,
) -> Option<Timestamp> {
    let at = restart_at?;
    match restarted_at {
        Some(done) if done >= at => None,
        _ => Some(at),
    }
}

/// Decide the next restart action. `allowed` is how many Ready pods a
/// ReplicaSet may be below `desired` (at least 1 is used).
pub fn next(
    restart_at: Option<Timestamp>,
    restarted_at: Option<Timestamp>,
    groups: &[Group],
    allowed: i32,
    now: Timestamp,
) -> Next {
    let Some(at) = pending(restart_at, restarted_at) else {
        return Next::Idle;
    };
    if at > now {
        return Next::WaitUntil(at);
    }
    let allowed = allowed.max(1);
    let mut evict = Vec::new();
    let mut left = 0;
    let mut short = false;
    for group in groups.iter().filter(|g| g.desired > 0) {
        let live = || group.pods.iter().filter(|p| !p.terminating);
        let ready = i32::try_from(live().filter(|p| p.ready).count()).unwrap_or(i32::MAX);
        short |= ready < group.desired;
        let mut old: Vec<&PodView> = live().filter(|p| p.created < at).collect();
        left += old.len();
        // Unready pods first (evicting one costs no availability), then the oldest.
        old.sort_by(|a, b| (a.ready, a.created, &a.name).cmp(&(b.ready, b.created, &b.name)));
        // A percentage of the full size must not empty a small canary: keep
        // one Ready pod where there is more than one.
        let allowed = allowed.min(group.desired - 1).max(1);
        // Ready pods this ReplicaSet can lose now without going below desired - allowed.
        let mut budget = allowed.saturating_sub(group.desired.saturating_sub(ready).max(0));
        // At most `allowed` evictions per pass, Ready or not.
        for pod in old.into_iter().take(usize::try_from(allowed).unwrap_or(1)) {
            if pod.ready {
                if budget <= 0 {
                    break;
                }
                budget -= 1;
            }
            evict.push(pod.name.clone());
        }
    }
    if !evict.is_empty() {
        Next::Evict(evict)
    } else if left > 0 || short {
        Next::WaitForReady { left }
    } else {
        Next::Done
    }
}

/// Why restarting now would be unsafe, if it would be. With nothing in
/// flight the restart goes ahead (the availability rule in [`next`] is the
/// guard). During an update it only acts while the rollout is Paused with no
/// analysis measuring: while pods or traffic move a restart would compete
/// with the scaling for availability, and during an analysis it would put
/// cold-start noise into the canary's metrics. While aborted, the canary is
/// on its way out: the restart waits for `retry` or a new template.
pub fn held_because(
    in_flight: bool,
    phase: RolloutPhase,
    aborted: bool,
    analysis_running: bool,
    scaling: bool,
) -> Option<String> {
    if aborted {
        Some("the update is aborted; the restart waits until it is retried or replaced".into())
    } else if analysis_running {
        Some("an analysis is measuring; the restart waits until it has a verdict".into())
    } else if scaling {
        Some("ReplicaSets are being scaled; the restart waits until they settle".into())
    } else if in_flight && phase != RolloutPhase::Paused {
        Some(format!(
            "an update is {phase:?}; the restart waits until it is Paused or done"
        ))
    } else {
        None
    }
}

impl Planner<'_> {
    /// Carry a pending `spec.restartAt` one step further (after the strategy
    /// has planned, so it sees this pass's phase and writes).
    pub(super) fn restart_pods(&mut self) {
        let restart_at = self.rollout.spec.restart_at.as_ref().map(|t| t.0);
        let restarted_at = self.old.restarted_at.as_ref().map(|t| t.0);
        if pending(restart_at, restarted_at).is_none() {
            self.status.restart_progress = None;
            return;
        }
        let running = |r: &Option<crate::crd::AnalysisRunRef>| {
            r.as_ref().is_some_and(|r| {
                !matches!(
                    r.phase,
                    Some(
                        AnalysisPhase::Successful
                            | AnalysisPhase::Failed
                            | AnalysisPhase::Error
                            | AnalysisPhase::Inconclusive
                    )
                )
            })
        };
        let analysis_running =
            running(&self.status.current_analysis) || running(&self.status.background_analysis);
        let scaling = self.writes.iter().any(|w| {
            matches!(
                w,
                Write::ApplyReplicaSet(_) | Write::DeleteReplicaSet { .. }
            )
        });
        let held = held_because(
            self.status.canary_revision.is_some(),
            self.outcome.phase,
            self.status.abort.is_some(),
            analysis_running,
            scaling,
        );
        let groups = self.restart_groups();
        let allowed = self.settings.max_unavailable;
        let decision = match (restart_at, &held) {
            (Some(at), Some(_)) if at <= self.now => None,
            _ => Some(next(restart_at, restarted_at, &groups, allowed, self.now)),
        };
        let progress = match (decision, held) {
            (None, Some(why)) => {
                if self.old.restart_progress.as_deref() != Some(why.as_str()) {
                    self.event(false, RESTART_HELD, format!("pod restart held: {why}"));
                }
                Some(why)
            }
            (Some(Next::WaitUntil(at)), _) => {
                self.wake.push(at);
                Some(format!("pods restart at {at}"))
            }
            (Some(Next::Evict(names)), _) => {
                let progress = format!(
                    "restarting pods: evicting {} ({} created before {} left)",
                    names.join(", "),
                    count_old(&groups, restart_at),
                    restart_at.map(|t| t.to_string()).unwrap_or_default()
                );
                self.writes
                    .extend(names.into_iter().map(|name| Write::EvictPod { name }));
                Some(progress)
            }
            (Some(Next::WaitForReady { left }), _) => {
                self.wake
                    .push(self.now.saturating_add(RESTART_POLL).unwrap_or(self.now));
                Some(format!(
                    "restarting pods: {left} left, waiting for replacements to become Ready"
                ))
            }
            (Some(Next::Done), _) => {
                let at = restart_at.unwrap_or(self.now);
                self.status.restarted_at = Some(Time(at));
                self.event(
                    false,
                    RESTART_DONE,
                    format!("every pod created before {at} was restarted; no new revision"),
                );
                None
            }
            (Some(Next::Idle), _) | (None, None) => None,
        };
        self.status.restart_progress = progress;
    }

    /// The pods of the stable, canary and baseline ReplicaSets, by revision.
    fn restart_groups(&self) -> Vec<Group> {
        let mut hashes: Vec<String> = [&self.status.stable_revision, &self.status.canary_revision]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if let Some(stable) = &self.status.stable_revision
            && self.settings.baseline().is_some()
        {
            hashes.push(super::spec::baseline_hash(stable));
        }
        hashes.dedup();
        hashes
            .into_iter()
            .filter_map(|hash| {
                let rev = self.revisions.get(&hash)?;
                let pods = self
                    .observed
                    .restart_pods
                    .iter()
                    .filter(|p| {
                        p.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
                            == Some(&hash)
                    })
                    .filter_map(PodView::from_pod)
                    .collect();
                Some(Group {
                    revision: hash,
                    desired: rev.desired,
                    pods,
                })
            })
            .collect()
    }
}

/// How often a restart that waits for Ready replacements looks again
/// (ReplicaSet status changes wake it sooner).
pub const RESTART_POLL: std::time::Duration = std::time::Duration::from_secs(3);

fn count_old(groups: &[Group], restart_at: Option<Timestamp>) -> usize {
    let Some(at) = restart_at else { return 0 };
    groups
        .iter()
        .flat_map(|g| &g.pods)
        .filter(|p| !p.terminating && p.created < at)
        .count()
}
