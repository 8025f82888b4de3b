//! The blue-green machine: preview, pre-promotion analysis, the switch,
//! post-promotion analysis, and the switch back on abort.
//!
//! The active Service is `Settings::stable_service`, the preview Service
//! `canary_service`, so pointing Services and setting route weights reuse the
//! canary's helpers; a route's "canary weight" is the preview backend's.
//! The stage is persisted in `status.blueGreen`, and every transition waits
//! on observed state: the active Service is only ever pointed at a revision
//! whose pods are all available.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::analysis_runs::RunRequest;
use super::plan::{ControlRequests, Planner};
use super::reasons;
use super::spec::{BlueGreenSettings, Routing};
use super::verdict::{RunVerdict, cannot_tell_reason};
use crate::crd::limits::{after, seconds_until};
use crate::crd::{
    AnalysisPhase, AnalysisRunRef, BlueGreenStage, BlueGreenStatus, PromotionAnalysis,
    PromotionStatus, RolloutPhase,
};

/// What a promotion analysis asks of the blue-green machine.
enum StageVerdict {
    Passed,
    Failed(String, String),
    /// The analysis could not tell and traffic goes back (`RollbackTraffic`): the abort is planned.
    RolledBack,
    Waiting,
}

impl Planner<'_> {
    /// A blue-green update is in flight: `desired` differs from `stable`.
    pub(super) fn blue_green(
        &mut self,
        stable: &str,
        desired: &str,
        requests: &ControlRequests,
        settings: &BlueGreenSettings,
    ) {
        let fresh = BlueGreenStatus {
            stage: BlueGreenStage::Preview,
            active_revision: Some(stable.to_string()),
            preview_revision: Some(desired.to_string()),
            ..Default::default()
        };
        let mut state = self
            .old
            .blue_green
            .clone()
            .filter(|s| {
                s.preview_revision.as_deref() == Some(desired)
                    && s.stage != BlueGreenStage::Promoted
            })
            .unwrap_or_else(|| fresh.clone());
        if self.old.canary_revision.as_deref() != Some(desired) {
            let note = match self.old.canary_revision.clone().filter(|c| c != stable) {
                Some(previous) => format!("{previous} superseded by {desired}; previewing it"),
                None => format!("previewing revision {desired} beside active {stable}"),
            };
            self.event(false, "BlueGreenStarted", note);
            state = fresh.clone();
            self.status.abort = None;
            self.status.current_analysis = None;
            self.status.pause_reason = None;
            self.next_attempt();
        }
        self.status.canary_revision = Some(desired.to_string());
        self.status.current_step_index = None;
        if self.status.abort.is_some() && requests.retry {
            state = fresh;
            self.status.abort = None;
            self.status.current_analysis = None;
            self.next_attempt();
            self.event(
                false,
                "Retry",
                format!("retrying blue-green of {desired} with new analysis runs"),
            );
        } else if requests.retry && self.held_on_cannot_tell() {
            self.status.current_analysis = None;
            self.status.pause_reason = None;
            self.next_attempt();
            self.event(
                false,
                "AnalysisRetried",
                format!("operator retried the analysis of {desired}; it measures again"),
            );
        }
        self.requested_abort(desired, requests);
        if requests.promote_full && self.status.abort.is_none() {
            state.promoted_full = true;
            self.event(
                false,
                "PromotedFull",
                format!("operator promoted {desired} fully: the remaining analysis is skipped"),
            );
        }
        if self.status.abort.is_none() {
            match state.stage {
                BlueGreenStage::Switching | BlueGreenStage::PostPromotionAnalysis => {
                    self.after_switch(stable, desired, requests, settings, &mut state)
                }
                _ => self.before_switch(stable, desired, requests, settings, &mut state),
            }
        }
        if self.status.abort.is_some() {
            self.blue_green_aborted(stable, desired, &mut state);
        }
        self.status.step_label =
            (state.stage != BlueGreenStage::Promoted).then(|| state.stage.to_string());
        self.status.blue_green = Some(state);
    }

    /// Preview, pre-promotion analysis and the promotion gate; then the switch.
    fn before_switch(
        &mut self,
        stable: &str,
        desired: &str,
        requests: &ControlRequests,
        settings: &BlueGreenSettings,
        state: &mut BlueGreenStatus,
    ) {
        let replicas = self.settings.replicas;
        let preview = settings.preview_replicas;
        self.ensure_revision(stable, replicas);
        self.ensure_revision(desired, preview);
        self.point_services(stable, desired);
        self.route_weight_down_to(0);
        self.status.current_weight = 0;
        self.status.desired_weight = 0;
        let rev = self.revisions.get(desired);
        let available = rev.map(|r| r.available).unwrap_or(0);
        let ready = rev.is_some_and(|r| !r.stale && r.current >= preview) && available >= preview;
        if !ready {
            state.stage = BlueGreenStage::Preview;
            let message = format!("preview {desired}: {available}/{preview} pods available");
            self.set_outcome(RolloutPhase::Progressing, "Preview", message);
            return;
        }
        if state.preview_ready_at.is_none() {
            state.preview_ready_at = Some(Time(self.now));
        }
        if matches!(
            state.stage,
            BlueGreenStage::Preview | BlueGreenStage::PrePromotionAnalysis
        ) && let Some(analysis) = &settings.pre_promotion
            && !state.promoted_full
        {
            state.stage = BlueGreenStage::PrePromotionAnalysis;
            let (verdict, run) =
                self.promotion_analysis("pre", analysis, stable, desired, requests);
            state.pre_promotion_analysis = Some(run);
            match verdict {
                StageVerdict::Passed => {}
                StageVerdict::Failed(reason, message) => {
                    self.abort(desired, &format!("PrePromotion{reason}"), message);
                    return;
                }
                StageVerdict::RolledBack | StageVerdict::Waiting => return,
            }
        }
        if requests.paused {
            self.waiting_by_design = true;
            self.status.pause_reason = Some(reasons::PAUSED_BY_USER.into());
            let message = format!(
                "held by an operator before the switch to {desired} (sluice.dev/paused=true)"
            );
            self.set_outcome(RolloutPhase::Paused, reasons::PAUSED_BY_USER, message);
            return;
        }
        if state.stage != BlueGreenStage::AwaitingPromotion {
            state.stage = BlueGreenStage::AwaitingPromotion;
            state.auto_promote_at = settings
                .auto_promotion
                .then(|| Time(after(self.now, settings.auto_promotion_delay)));
        }
        if !(requests.promote || state.promoted_full) {
            if !settings.auto_promotion {
                self.waiting_by_design = true;
                self.status.pause_reason = Some("AwaitingPromotion".into());
                let message = format!(
                    "preview {desired} is ready; switch with `sluice rollout promote` (auto-promotion is off)"
                );
                self.set_outcome(RolloutPhase::Paused, "AwaitingPromotion", message);
                return;
            }
            let at = state
                .auto_promote_at
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(self.now);
            if self.now < at {
                self.waiting_by_design = true;
                self.wake.push(at);
                let left = humantime::format_duration(seconds_until(self.now, at));
                let message = format!("preview {desired} is ready; switching in {left}");
                self.set_outcome(RolloutPhase::Progressing, "AwaitingPromotion", message);
                return;
            }
        }
        self.status.pause_reason = None;
        state.stage = BlueGreenStage::Switching;
        state.auto_promote_at = None;
        self.after_switch(stable, desired, requests, settings, state);
    }

    /// The switch itself, then post-promotion analysis with the old version warm.
    fn after_switch(
        &mut self,
        stable: &str,
        desired: &str,
        requests: &ControlRequests,
        settings: &BlueGreenSettings,
        state: &mut BlueGreenStatus,
    ) {
        let replicas = self.settings.replicas;
        self.ensure_revision(desired, replicas);
        self.ensure_revision(stable, replicas);
        let active = self.settings.stable_service.clone().unwrap_or_default();
        if state.stage == BlueGreenStage::Switching {
            let rev = self.revisions.get(desired);
            let available = rev.map(|r| r.available).unwrap_or(0);
            let full = rev
                .is_some_and(|r| !r.stale && r.current == replicas && r.desired == replicas)
                && available >= replicas;
            if !full {
                self.point_services(stable, desired);
                self.route_weight_down_to(0);
                let message = format!(
                    "scaling {desired} to {replicas} pods before the switch: {available}/{replicas} available"
                );
                self.set_outcome(RolloutPhase::Progressing, "Switching", message);
                return;
            }
            if self.service_selects(&active) != Some(desired) {
                match self.settings.routing {
                    // All traffic moves in one route update to the preview backend
                    // (already on the new pods); then the active Service follows.
                    Routing::GatewayApi { .. } if self.route_weight() != Some(100) => {
                        self.point_services(stable, desired);
                        self.set_route_weight(100);
                        self.status.current_weight = 0;
                    }
                    _ => {
                        self.point_services(desired, desired);
                        self.status.current_weight = 100;
                    }
                }
                let message = format!("switching the active Service {active} to {desired}");
                self.set_outcome(RolloutPhase::Progressing, "Switching", message);
                return;
            }
            self.point_services(desired, desired);
            self.set_route_weight(0);
            if self.route_weight().is_some_and(|w| w != 0) {
                let message = format!("moving traffic back to the active backend, now {desired}");
                self.set_outcome(RolloutPhase::Progressing, "Switching", message);
                return;
            }
            state.switched_at = Some(Time(self.now));
            state.active_revision = Some(desired.to_string());
            let warm = humantime::format_duration(self.settings.scale_down_delay);
            self.event(
                false,
                "Switched",
                format!("active Service {active} now selects {desired}; {stable} stays warm ({warm} after promotion) for a switch back"),
            );
            state.stage = BlueGreenStage::PostPromotionAnalysis;
        }
        self.point_services(desired, desired);
        self.route_weight_down_to(0);
        self.status.current_weight = 100;
        self.status.desired_weight = 100;
        if let Some(analysis) = &settings.post_promotion
            && !state.promoted_full
        {
            let (verdict, run) =
                self.promotion_analysis("post", analysis, stable, desired, requests);
            state.post_promotion_analysis = Some(run);
            match verdict {
                StageVerdict::Passed => {}
                StageVerdict::Failed(reason, message) => {
                    self.abort(desired, &format!("PostPromotion{reason}"), message);
                    return;
                }
                StageVerdict::RolledBack | StageVerdict::Waiting => return,
            }
        }
        self.promote_blue_green(stable, desired, state);
    }

    /// Run (or read) the `pre`/`post` analysis of `desired`.
    fn promotion_analysis(
        &mut self,
        when: &str,
        analysis: &PromotionAnalysis,
        stable: &str,
        desired: &str,
        requests: &ControlRequests,
    ) -> (StageVerdict, AnalysisRunRef) {
        let rollout = self.rollout.metadata.name.clone().unwrap_or_default();
        let name = self.run_name(desired, when);
        let (phase, summary) = self.ensure_analysis_run(
            &name,
            RunRequest {
                rollout,
                step_index: 0,
                stable,
                desired,
                templates: &analysis.templates,
                args: &analysis.args,
                background: false,
            },
        );
        let run = AnalysisRunRef {
            name: name.clone(),
            phase,
            message: summary.clone(),
        };
        self.status.current_analysis = Some(run.clone());
        let label = if when == "pre" {
            "pre-promotion"
        } else {
            "post-promotion"
        };
        let detail = summary.unwrap_or_else(|| "no summary".into());
        let was = self
            .old
            .current_analysis
            .as_ref()
            .filter(|r| r.name == name)
            .and_then(|r| r.phase);
        let verdict = match RunVerdict::of(phase) {
            RunVerdict::Passed => {
                if was != Some(AnalysisPhase::Successful) {
                    self.event(
                        false,
                        "AnalysisSuccessful",
                        format!("{label} analysis {name} Successful: {detail}"),
                    );
                }
                StageVerdict::Passed
            }
            RunVerdict::Failed => StageVerdict::Failed(
                reasons::ANALYSIS_FAILED.into(),
                format!("{label} analysis {name} Failed: {detail}"),
            ),
            // An operator's promote acknowledges a verdict that cannot tell.
            RunVerdict::CannotTell(_) if requests.promote => StageVerdict::Passed,
            RunVerdict::CannotTell(verdict) => {
                let prefix = if when == "pre" {
                    "PrePromotion"
                } else {
                    "PostPromotion"
                };
                let reason = cannot_tell_reason(prefix, verdict);
                let seen = format!("{label} analysis {name} {}: {detail}", verdict.as_str());
                if self.cannot_tell(desired, &reason, seen) {
                    StageVerdict::Waiting
                } else {
                    StageVerdict::RolledBack
                }
            }
            RunVerdict::Waiting => {
                self.waiting_by_design = true;
                let message = format!("waiting for {label} analysis {name} of {desired}");
                self.set_outcome(RolloutPhase::Progressing, "Analyzing", message);
                StageVerdict::Waiting
            }
        };
        (verdict, run)
    }

    /// The new version becomes stable; the old one scales down after its delay.
    fn promote_blue_green(&mut self, stable: &str, desired: &str, state: &mut BlueGreenStatus) {
        let replicas = self.settings.replicas;
        self.kept.retain(|h| h != stable);
        self.status.stable_revision = Some(desired.to_string());
        self.status.last_promotion = Some(PromotionStatus {
            revision: desired.into(),
            previous: stable.into(),
            at: Time(self.now),
        });
        self.status.canary_revision = None;
        self.status.current_analysis = None;
        self.status.pause_reason = None;
        self.status.current_weight = 0;
        self.status.desired_weight = 0;
        state.stage = BlueGreenStage::Promoted;
        state.active_revision = Some(desired.to_string());
        state.scale_down_at = Some(Time(after(self.now, self.settings.scale_down_delay)));
        let warm = humantime::format_duration(self.settings.scale_down_delay);
        self.event(
            false,
            "Promoted",
            format!("revision {desired} is now stable; previous {stable} scales down in {warm}"),
        );
        let message = format!(
            "stable revision {desired} serves all traffic with {replicas}/{replicas} pods available; {stable} scales down in {warm}"
        );
        self.set_outcome(RolloutPhase::Healthy, "Promoted", message);
    }

    /// Aborted: the active Service on the old version (switching back if the
    /// switch happened), the new version scaled down after its delay.
    fn blue_green_aborted(&mut self, stable: &str, desired: &str, state: &mut BlueGreenStatus) {
        let Some(abort) = self.status.abort.clone() else {
            return;
        };
        let replicas = self.settings.replicas;
        self.ensure_revision(stable, replicas);
        let rev = self.revisions.get(stable);
        let stable_ready =
            rev.is_some_and(|r| !r.stale) && rev.map(|r| r.available).unwrap_or(0) >= replicas;
        let active = self.settings.stable_service.clone().unwrap_or_default();
        let switched_back = self.service_selects(&active) == Some(stable);
        if stable_ready || switched_back {
            self.point_services(stable, stable);
            self.route_weight_down_to(0);
            state.active_revision = Some(stable.to_string());
        }
        let due = after(abort.at.0, self.settings.abort_scale_down_delay);
        // Pods stuck past the progress deadline only hold resources: they go at once.
        let stuck = abort.reason == reasons::PROGRESS_DEADLINE_EXCEEDED;
        let pods = if self.now >= due || stuck || !switched_back {
            // Keep the new version up until the active Service has left it.
            if switched_back {
                0
            } else {
                self.revisions.get(desired).map(|r| r.desired).unwrap_or(0)
            }
        } else {
            self.wake.push(due);
            self.revisions.get(desired).map(|r| r.desired).unwrap_or(0)
        };
        self.ensure_revision(desired, pods);
        if switched_back && pods > 0 {
            state.scale_down_at = Some(Time(due));
        }
        state.stage = BlueGreenStage::Aborted;
        self.status.current_weight = 0;
        self.status.desired_weight = 0;
        let message = if switched_back {
            format!(
                "blue-green of {desired} aborted ({}): {}; the active Service is on {stable}",
                abort.reason, abort.message
            )
        } else {
            format!(
                "blue-green of {desired} aborted ({}): {}; scaling {stable} up before switching back",
                abort.reason, abort.message
            )
        };
        self.set_outcome(RolloutPhase::Aborted, &abort.reason, message);
    }
}
