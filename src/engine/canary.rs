//! The canary step machine: weights, pauses, analysis, abort and promotion.
//!
//! Runs inside one planning pass. A step completes only on observed state
//! (pods ready, route weight in place, analysis verdict, time passed), so a
//! restarted controller re-derives exactly where it stands from status plus
//! what it sees, and never repeats a completed step.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::analysis_runs::RunRequest;
use super::plan::{ControlRequests, Planner};
use super::reasons;
use super::route_extras::{RouteExtras, extras_at};
use super::spec::{Routing, Step};
use super::verdict::{RunVerdict, cannot_tell_reason};
use crate::crd::limits::{after, seconds_until};
use crate::crd::{AnalysisRunRef, PromotionStatus, RolloutPhase};

/// Canary pods needed to carry `weight` percent of `replicas` (at least one for any traffic).
pub fn canary_replicas(replicas: i32, weight: i32) -> i32 {
    if weight <= 0 || replicas <= 0 {
        return 0;
    }
    ((i64::from(replicas) * i64::from(weight) + 99) / 100).clamp(1, i64::from(replicas)) as i32
}

/// Stable pods kept while the canary carries `weight` percent without a
/// router: never fewer than the stable's share of `replicas`, rounded up, so
/// the canary's pods come on top (within maxSurge) rather than from stable.
pub fn stable_replicas(replicas: i32, weight: i32) -> i32 {
    let replicas = i64::from(replicas.max(0));
    let canary_floor = replicas * i64::from(weight.clamp(0, 100)) / 100;
    i32::try_from(replicas - canary_floor).unwrap_or(0)
}

/// The weight in effect at step `index`: the last `setWeight` at or before it.
pub fn weight_at(steps: &[Step], index: usize) -> i32 {
    steps
        .iter()
        .take(index + 1)
        .filter_map(|s| match s {
            Step::SetWeight(w) => Some(*w),
            _ => None,
        })
        .next_back()
        .unwrap_or(0)
}

impl Planner<'_> {
    /// A canary is in flight: `desired` differs from `stable`.
    pub(super) fn canary(&mut self, stable: &str, desired: &str, requests: &ControlRequests) {
        let steps = self.settings.steps().to_vec();
        let total = steps.len();
        let mut index = self
            .old
            .current_step_index
            .and_then(|i| usize::try_from(i).ok())
            .unwrap_or(0);
        if self.old.canary_revision.as_deref() != Some(desired) {
            match self.old.canary_revision.clone().filter(|c| c != stable) {
                Some(previous) => self.event(
                    false,
                    reasons::SUPERSEDED,
                    format!("canary {previous} superseded by {desired}; starting over at step 1"),
                ),
                None => self.event(
                    false,
                    "CanaryStarted",
                    format!("rolling out revision {desired} over stable {stable} in {total} steps"),
                ),
            }
            index = 0;
            self.start_step();
            self.status.abort = None;
            self.status.pause_reason = None;
            self.next_attempt();
        }
        self.status.canary_revision = Some(desired.to_string());
        if self.status.abort.is_some() && requests.retry {
            index = 0;
            self.start_step();
            self.status.abort = None;
            self.status.background_analysis = None;
            self.next_attempt();
            self.event(
                false,
                "Retry",
                format!("retrying canary {desired} from step 1 with new analysis runs"),
            );
        } else if requests.retry && self.held_on_cannot_tell() {
            // Measure again: the step (and the background analysis) get new runs.
            self.start_step();
            self.status.background_analysis = None;
            self.status.pause_reason = None;
            self.next_attempt();
            self.event(
                false,
                "AnalysisRetried",
                format!("operator retried the analysis of canary {desired}; it measures again"),
            );
        }
        self.set_index(index.min(total));
        self.requested_abort(desired, requests);
        if self.status.abort.is_some() {
            self.aborted(stable, desired);
            return;
        }
        if requests.promote_full && index < total {
            index = total;
            self.start_step();
            self.event(
                false,
                "PromotedFull",
                format!("operator promoted canary {desired} to 100%, skipping the remaining steps"),
            );
        } else if requests.promote
            && self
                .old
                .pause_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("BackgroundAnalysis"))
        {
            // Promote acknowledges an inconclusive background analysis: it starts over,
            // and the step in progress is not skipped.
            self.restart_background = true;
            self.event(
                false,
                "BackgroundAnalysisRestarted",
                "operator resumed after an inconclusive background analysis; it starts over".into(),
            );
        } else if requests.promote && index < total {
            index += 1;
            self.start_step();
            self.event(
                false,
                "StepPromoted",
                format!("operator skipped step {index}/{total}"),
            );
        }
        self.set_index(index);
        if requests.paused {
            self.hold_traffic(stable, desired, index);
            // Counted from 1, as step labels are.
            let message = format!(
                "held by an operator at step {}/{total} (sluice.dev/paused=true)",
                (index + 1).min(total)
            );
            self.status.pause_reason = Some(reasons::PAUSED_BY_USER.into());
            self.waiting_by_design = true;
            self.set_outcome(RolloutPhase::Paused, reasons::PAUSED_BY_USER, message);
            return;
        }
        self.status.pause_reason = None;
        if index < total && !self.background_analysis(index, desired, stable) {
            return;
        }
        while index < total {
            if !self.step_done(&steps[index], index, desired, stable) {
                break;
            }
            index += 1;
            self.set_index(index);
            self.start_step();
            self.event(
                false,
                "StepCompleted",
                format!("step {index}/{total} completed"),
            );
            if self.status.abort.is_some() {
                return;
            }
        }
        if self.status.abort.is_some() {
            self.aborted(stable, desired);
            return;
        }
        if index >= total {
            self.promote(stable, desired);
        } else {
            self.hold_traffic(stable, desired, index);
        }
    }

    fn set_index(&mut self, index: usize) {
        let total = self.settings.steps().len();
        self.status.current_step_index = Some(i32::try_from(index).unwrap_or(i32::MAX));
        self.status.step_label = Some(match self.settings.steps().get(index) {
            Some(step) => format!("{}/{total} {}", index + 1, step.describe()),
            None => format!("{total}/{total} promoting"),
        });
        self.status.desired_weight = if index >= total {
            100
        } else {
            weight_at(self.settings.steps(), index)
        };
    }

    fn start_step(&mut self) {
        self.status.step_started_at = Some(Time(self.now));
        self.status.current_analysis = None;
    }

    /// Whether step `index` is complete; sets the outcome describing the wait when it is not.
    fn step_done(&mut self, step: &Step, index: usize, desired: &str, stable: &str) -> bool {
        let total = self.settings.steps().len();
        let label = format!("step {}/{total}", index + 1);
        match step {
            Step::SetWeight(weight) => {
                let done = self.weight_reached(*weight, desired, stable);
                let message = format!("{label}: shifting {weight}% of traffic to canary {desired}");
                self.set_outcome(RolloutPhase::Progressing, "SettingWeight", message);
                done
            }
            Step::SetHeaderRoute { .. } | Step::SetMirrorRoute { .. } => {
                let extras = extras_at(self.settings.steps(), index);
                let done = self.route_shows(&extras);
                let message = format!("{label}: {} for canary {desired}", step.describe());
                self.set_outcome(RolloutPhase::Progressing, "SettingRoute", message);
                done
            }
            Step::Pause(Some(duration)) => {
                let started = self
                    .status
                    .step_started_at
                    .as_ref()
                    .map(|t| t.0)
                    .unwrap_or(self.now);
                let until = after(started, *duration);
                self.waiting_by_design = true;
                if self.now >= until {
                    return true;
                }
                self.wake.push(until);
                let left = humantime::format_duration(seconds_until(self.now, until));
                self.set_outcome(
                    RolloutPhase::Progressing,
                    "Pausing",
                    format!("{label}: pausing, {left} left"),
                );
                false
            }
            Step::Pause(None) => {
                self.waiting_by_design = true;
                self.status.pause_reason = Some("PauseStep".into());
                let message = format!("{label}: paused until promoted (sluice rollout promote)");
                self.set_outcome(RolloutPhase::Paused, "PauseStep", message);
                false
            }
            Step::Analysis(analysis) => {
                self.waiting_by_design = true;
                let rollout = self.rollout.metadata.name.clone().unwrap_or_default();
                let name = self.run_name(desired, &(index + 1).to_string());
                let (phase, summary) = self.ensure_analysis_run(
                    &name,
                    RunRequest {
                        rollout,
                        step_index: index,
                        stable,
                        desired,
                        templates: &analysis.templates,
                        args: &analysis.args,
                        background: false,
                    },
                );
                self.status.current_analysis = Some(AnalysisRunRef {
                    name: name.clone(),
                    phase,
                    message: summary.clone(),
                });
                let detail = summary.unwrap_or_else(|| "no summary".into());
                match RunVerdict::of(phase) {
                    RunVerdict::Passed => {
                        self.event(
                            false,
                            "AnalysisSuccessful",
                            format!("analysis {name} Successful: {detail}"),
                        );
                        true
                    }
                    RunVerdict::Failed => {
                        let message = format!("analysis {name} Failed: {detail}");
                        self.abort(desired, reasons::ANALYSIS_FAILED, message);
                        false
                    }
                    RunVerdict::CannotTell(verdict) => {
                        let reason = cannot_tell_reason("", verdict);
                        let seen =
                            format!("{label}: analysis {name} {}: {detail}", verdict.as_str());
                        self.cannot_tell(desired, &reason, seen);
                        false
                    }
                    RunVerdict::Waiting => {
                        let message = format!("{label}: waiting for analysis {name}");
                        self.set_outcome(RolloutPhase::Progressing, "Analyzing", message);
                        false
                    }
                }
            }
        }
    }

    /// Whether the observed cluster carries `weight` percent on the canary.
    fn weight_reached(&self, weight: i32, desired: &str, stable: &str) -> bool {
        let replicas = self.settings.replicas;
        let want = canary_replicas(replicas, weight);
        let canary = self.revisions.get(desired);
        let canary_ready =
            canary.map(|r| r.available).unwrap_or(0) >= want && canary.is_none_or(|r| !r.stale);
        match self.settings.routing {
            Routing::GatewayApi { .. } => canary_ready && self.route_weight() == Some(weight),
            Routing::ReplicaRatio => {
                let stable_rev = self.revisions.get(stable);
                let stable_size = stable_rev.map(|r| (r.desired, r.current)).unwrap_or((0, 0));
                let keep = stable_replicas(replicas, weight);
                canary_ready && stable_size == (keep, keep)
            }
        }
    }

    /// Keep pods and traffic at the weight in effect for step `index`.
    pub(super) fn hold_traffic(&mut self, stable: &str, desired: &str, index: usize) {
        let weight = weight_at(self.settings.steps(), index);
        let replicas = self.settings.replicas;
        match self.settings.routing {
            Routing::GatewayApi { .. } => {
                let extras = extras_at(self.settings.steps(), index);
                // A header route or mirror needs a canary pod even at weight 0.
                let floor = i32::from(extras != RouteExtras::default() && replicas > 0);
                let want = canary_replicas(replicas, weight).max(floor);
                self.ensure_revision(stable, replicas);
                self.ensure_revision(desired, want);
                // The baseline must be ready and selected before it takes its share.
                let baseline_ready = self.ensure_baseline(stable, want);
                let canary_selected = self
                    .service_selects(self.settings.canary_service.as_deref().unwrap_or_default())
                    == Some(desired);
                let ready = self
                    .revisions
                    .get(desired)
                    .map(|r| r.available)
                    .unwrap_or(0)
                    >= want;
                let current = self.route_weight().unwrap_or(0);
                // Traffic only rises once the canary Service selects ready canary pods.
                let target = match (canary_selected, ready && baseline_ready) {
                    (true, true) => weight,
                    (true, false) => current.min(weight),
                    (false, _) => 0,
                };
                // Header routes and mirrors reach the canary too: the same rule.
                if canary_selected && ready {
                    self.route_extras = extras;
                }
                self.route_weight_down_to(target);
                self.point_services(stable, desired);
                self.set_route_weight(target);
                self.status.current_weight = target;
            }
            Routing::ReplicaRatio => self.scale_by_ratio(stable, desired, weight),
        }
    }

    /// Approximate the weight with pod counts, within maxSurge and maxUnavailable.
    fn scale_by_ratio(&mut self, stable: &str, desired: &str, weight: i32) {
        let replicas = self.settings.replicas;
        let canary_target = canary_replicas(replicas, weight);
        let canary = self.revisions.get(desired).cloned();
        let canary_available = canary
            .as_ref()
            .map(|r| r.available)
            .unwrap_or(0)
            .min(canary_target);
        // Stable only shrinks as canary pods become available, keeping maxUnavailable.
        let stable_floor = replicas
            .saturating_sub(self.settings.max_unavailable)
            .saturating_sub(canary_available);
        let stable_target = stable_replicas(replicas, weight)
            .max(stable_floor)
            .clamp(0, replicas);
        // Canary grows within the surge room left by the stable pods.
        let room = replicas
            .saturating_add(self.settings.max_surge)
            .saturating_sub(stable_target);
        let canary_step = canary_target.min(room).max(0);
        self.ensure_revision(stable, stable_target);
        self.ensure_revision(desired, canary_step);
        // Behind the shared Service, the baseline's pods take the same share as the canary's.
        self.ensure_baseline(stable, canary_step);
        self.point_services(stable, desired);
        let stable_ready = self.revisions.get(stable).map(|r| r.ready).unwrap_or(0);
        let canary_ready = canary.map(|r| r.ready).unwrap_or(0);
        // Ready counts come from the cluster: widen before multiplying.
        let (stable_ready, canary_ready) = (
            i64::from(stable_ready.max(0)),
            i64::from(canary_ready.max(0)),
        );
        let total = stable_ready + canary_ready;
        self.status.current_weight = if total == 0 {
            0
        } else {
            i32::try_from((canary_ready * 100 + total / 2) / total).unwrap_or(100)
        };
    }

    /// All steps done: bring the canary to full size, then make it stable.
    fn promote(&mut self, stable: &str, desired: &str) {
        let replicas = self.settings.replicas;
        let canary = self.revisions.get(desired).cloned();
        let full = canary.as_ref().is_some_and(|r| {
            r.available >= replicas && r.current == replicas && !r.stale && r.desired == replicas
        });
        if !full {
            let last = self.settings.steps().len().saturating_sub(1);
            match self.settings.routing {
                Routing::GatewayApi { .. } => {
                    self.ensure_revision(stable, replicas);
                    self.ensure_revision(desired, replicas);
                    self.point_services(stable, desired);
                    let weight = if self.settings.steps().is_empty() {
                        0
                    } else {
                        weight_at(self.settings.steps(), last)
                    };
                    let current = self.route_weight().unwrap_or(0);
                    self.status.current_weight = current;
                    if current < weight
                        && self
                            .revisions
                            .get(desired)
                            .is_some_and(|r| r.available >= canary_replicas(replicas, weight))
                    {
                        self.set_route_weight(weight);
                        self.status.current_weight = weight;
                    }
                }
                Routing::ReplicaRatio => self.scale_by_ratio(stable, desired, 100),
            }
            let available = canary.map(|r| r.available).unwrap_or(0);
            let message =
                format!("promoting canary {desired}: {available}/{replicas} pods available");
            self.set_outcome(RolloutPhase::Progressing, "Promoting", message);
            return;
        }
        // Switch: Services first (both now select the new pods), then the route back to the stable backend.
        self.ensure_revision(desired, replicas);
        self.point_services(desired, desired);
        self.set_route_weight(0);
        self.status.stable_revision = Some(desired.into());
        self.status.last_promotion = Some(PromotionStatus {
            revision: desired.into(),
            previous: stable.into(),
            at: Time(self.now),
        });
        self.status.canary_revision = None;
        self.status.current_step_index = None;
        self.status.step_label = None;
        self.status.step_started_at = None;
        self.status.current_analysis = None;
        self.status.current_weight = 0;
        self.status.desired_weight = 0;
        self.event(false, "Promoted", format!("revision {desired} is now stable; previous stable {stable} scales down after its delay"));
        let message = format!(
            "stable revision {desired} serves all traffic with {replicas}/{replicas} pods available"
        );
        self.set_outcome(RolloutPhase::Healthy, "Promoted", message);
    }

    /// The canary is aborted: no traffic to it, stable at full size, canary scaled down after the delay.
    pub(super) fn aborted(&mut self, stable: &str, desired: &str) {
        let replicas = self.settings.replicas;
        let Some(abort) = self.status.abort.clone() else {
            return;
        };
        self.route_weight_down_to(0);
        self.ensure_revision(stable, replicas);
        let canary_pods = match self.settings.routing {
            // Without a router, any live canary pod takes traffic: scale it down now.
            Routing::ReplicaRatio => 0,
            // Pods stuck past the deadline (unschedulable, pulling) only hold resources.
            Routing::GatewayApi { .. } if abort.reason == reasons::PROGRESS_DEADLINE_EXCEEDED => 0,
            Routing::GatewayApi { .. } => {
                let due = after(abort.at.0, self.settings.abort_scale_down_delay);
                if self.now >= due {
                    0
                } else {
                    self.wake.push(due);
                    self.revisions.get(desired).map(|r| r.desired).unwrap_or(0)
                }
            }
        };
        self.ensure_revision(desired, canary_pods);
        self.point_services(stable, desired);
        self.status.current_weight = 0;
        self.status.desired_weight = 0;
        let message = format!(
            "canary {desired} aborted ({}): {}; traffic is on stable {stable}",
            abort.reason, abort.message
        );
        self.set_outcome(RolloutPhase::Aborted, &abort.reason, message);
    }
}
