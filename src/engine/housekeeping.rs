//! Tidying after the plan's main decisions: old revisions scaled down after
//! their delay and deleted beyond the history limit, and finished
//! AnalysisRuns beyond the history limit deleted.

use std::time::Duration;

use super::plan::{ANALYSIS_HISTORY, Planner, Write};
use super::revisions::{DesiredReplicaSet, Revision};
use super::spec::{self, Routing};
use crate::crd::limits::after;
use crate::crd::{AnalysisPhase, RolloutPhase};

impl Planner<'_> {
    /// Scale down revisions that are neither stable nor canary once their delay is over; prune history.
    pub(super) fn retire_old_revisions(&mut self) {
        let mut old: Vec<Revision> = self
            .revisions
            .values()
            .filter(|r| !self.kept.contains(&r.hash))
            .cloned()
            .collect();
        old.sort_by_key(|r| std::cmp::Reverse(r.number));
        let mut idle = 0usize;
        for rev in old {
            if rev.desired > 0 {
                let delay = self.retire_delay(&rev.hash);
                let due = rev.scale_down_at.unwrap_or_else(|| after(self.now, delay));
                let replicas = if due <= self.now { 0 } else { rev.desired };
                if replicas != rev.desired || rev.scale_down_at.is_none() {
                    let scale_down_at = (replicas > 0).then_some(due);
                    let desired = DesiredReplicaSet {
                        hash: rev.hash.clone(),
                        template: rev.template.clone(),
                        replicas,
                        number: rev.number,
                        scale_down_at,
                    };
                    self.writes.push(Write::ApplyReplicaSet(Box::new(desired)));
                }
                if replicas > 0 {
                    self.wake.push(due);
                }
            } else if rev.current == 0 {
                idle += 1;
                if idle > self.settings.revision_history_limit {
                    self.writes.push(Write::DeleteReplicaSet {
                        name: rev.name.clone(),
                    });
                }
            }
        }
    }

    /// How long an old revision keeps its pods once it stops being stable or canary.
    pub(super) fn retire_delay(&self, hash: &str) -> Duration {
        let was_stable = self.old.stable_revision.as_deref() == Some(hash);
        if let spec::Strategy::BlueGreen(_) = self.settings.strategy {
            // Nothing routes to an old blue-green version: keep it warm for a switch back.
            return if was_stable {
                self.settings.scale_down_delay
            } else {
                self.settings.abort_scale_down_delay
            };
        }
        match self.settings.routing {
            // Without a router, live pods of an old revision still take a share of traffic.
            Routing::ReplicaRatio => Duration::ZERO,
            Routing::GatewayApi { .. } if was_stable => self.settings.scale_down_delay,
            Routing::GatewayApi { .. } => self.settings.abort_scale_down_delay,
        }
    }

    /// Terminate runs nothing waits on, and keep a bounded history of finished ones.
    pub(super) fn analysis_housekeeping(&mut self) {
        // A settled or aborted rollout has no background analysis any more,
        // except the verdict that aborted it (on show, and for its alert).
        let verdict = self
            .status
            .background_analysis
            .as_ref()
            .and_then(|r| r.phase)
            .is_some_and(|p| {
                matches!(
                    p,
                    AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive
                )
            });
        let settled = matches!(
            self.outcome.phase,
            RolloutPhase::Healthy | RolloutPhase::Degraded
        );
        if settled || (self.outcome.phase == RolloutPhase::Aborted && !verdict) {
            self.status.background_analysis = None;
        }
        // An aborted rollout waits on nothing: its running analysis stops at once.
        let aborted = self.outcome.phase == RolloutPhase::Aborted;
        let waited_on = self
            .status
            .current_analysis
            .as_ref()
            .filter(|_| !aborted)
            .map(|r| r.name.clone());
        let background = self
            .status
            .background_analysis
            .as_ref()
            .filter(|_| !aborted)
            .map(|r| r.name.clone());
        let created: Vec<String> = self
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::CreateAnalysisRun { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        let mut finished = Vec::new();
        for run in &self.observed.analysis_runs {
            let Some(name) = run.metadata.name.clone() else {
                continue;
            };
            if waited_on.as_deref() == Some(name.as_str())
                || background.as_deref() == Some(name.as_str())
                || created.contains(&name)
            {
                continue;
            }
            let phase = run.status.as_ref().and_then(|s| s.phase);
            if phase.is_some_and(|p| p.is_finished()) {
                finished.push((run.metadata.creation_timestamp.clone(), name));
            } else if !run.spec.terminate {
                self.writes.push(Write::TerminateAnalysisRun { name });
            }
        }
        // Newest first; everything past the limit goes.
        finished.sort_by(|a, b| {
            b.0.as_ref()
                .map(|t| t.0)
                .cmp(&a.0.as_ref().map(|t| t.0))
                .then(b.1.cmp(&a.1))
        });
        for (_, name) in finished.into_iter().skip(ANALYSIS_HISTORY) {
            self.writes.push(Write::DeleteAnalysisRun { name });
        }
    }
}
