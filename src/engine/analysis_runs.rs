//! The AnalysisRuns a plan starts and reads: a run named per attempt,
//! created from the templates a step (or a blue-green stage) names, and the
//! canary's background analysis with what its verdict does.

use super::plan::{Planner, Write};
use super::reasons;
use super::verdict::{RunVerdict, cannot_tell_reason};
use crate::crd::{
    AnalysisArg, AnalysisPhase, AnalysisRunRef, AnalysisRunSpec, AnalysisTemplateRef,
};

/// What an AnalysisRun is created for.
pub(super) struct RunRequest<'a> {
    pub(super) rollout: String,
    pub(super) step_index: usize,
    pub(super) stable: &'a str,
    pub(super) desired: &'a str,
    pub(super) templates: &'a [AnalysisTemplateRef],
    pub(super) args: &'a [AnalysisArg],
    pub(super) background: bool,
}

impl Planner<'_> {
    /// Keep the background analysis of the canary running; false when its
    /// verdict stops the canary (abort or pause).
    pub(super) fn background_analysis(
        &mut self,
        index: usize,
        desired: &str,
        stable: &str,
    ) -> bool {
        let Some(background) = self.settings.background_analysis().cloned() else {
            return true;
        };
        let starting = usize::try_from(background.starting_step.unwrap_or(0)).unwrap_or(0);
        if index < starting {
            return true;
        }
        let rollout = self.rollout.metadata.name.clone().unwrap_or_default();
        // A restart gets a new name, so the old run's verdict cannot linger.
        let base = self.run_name(desired, "background");
        let generation = self
            .observed
            .analysis_runs
            .iter()
            .filter(|r| r.spec.background)
            .filter_map(|r| {
                r.metadata
                    .name
                    .as_deref()?
                    .strip_prefix(&base)?
                    .strip_prefix('-')
            })
            .filter_map(|n| n.parse::<u32>().ok())
            .max()
            .unwrap_or(0);
        let name = if self.restart_background {
            format!("{base}-{}", generation.saturating_add(1))
        } else {
            format!("{base}-{}", generation.max(1))
        };
        let (phase, summary) = self.ensure_analysis_run(
            &name,
            RunRequest {
                rollout,
                step_index: starting,
                stable,
                desired,
                templates: &background.templates,
                args: &background.args,
                background: true,
            },
        );
        self.status.background_analysis = Some(AnalysisRunRef {
            name: name.clone(),
            phase,
            message: summary.clone(),
        });
        let detail = summary.unwrap_or_else(|| "no summary".into());
        match RunVerdict::of(phase) {
            RunVerdict::Failed => {
                let message = format!("background analysis {name} Failed: {detail}");
                self.abort(desired, reasons::BACKGROUND_ANALYSIS_FAILED, message);
                self.aborted(stable, desired);
                false
            }
            RunVerdict::CannotTell(verdict) => {
                let reason = cannot_tell_reason("Background", verdict);
                let seen = format!(
                    "background analysis {name} {}: {detail} (`promote` restarts it)",
                    verdict.as_str()
                );
                if self.cannot_tell(desired, &reason, seen) {
                    self.hold_traffic(stable, desired, index);
                } else {
                    self.aborted(stable, desired);
                }
                false
            }
            RunVerdict::Passed | RunVerdict::Waiting => true,
        }
    }

    /// The verdict and summary of run `name`, planning its creation when it does not exist yet.
    pub(super) fn ensure_analysis_run(
        &mut self,
        name: &str,
        request: RunRequest<'_>,
    ) -> (Option<AnalysisPhase>, Option<String>) {
        let run = self
            .observed
            .analysis_runs
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name));
        if let Some(run) = run {
            let status = run.status.as_ref();
            return (
                status.and_then(|s| s.phase),
                status.and_then(|s| s.message.clone()),
            );
        }
        let (baseline, dedicated_baseline) = self.analysis_baseline(request.stable);
        self.writes.push(Write::CreateAnalysisRun {
            name: name.to_string(),
            spec: AnalysisRunSpec {
                rollout: request.rollout,
                step_index: i32::try_from(request.step_index).unwrap_or(i32::MAX),
                canary_revision: request.desired.into(),
                stable_revision: baseline,
                dedicated_baseline,
                templates: request.templates.to_vec(),
                args: request.args.to_vec(),
                background: request.background,
                terminate: false,
            },
        });
        (None, None)
    }
}
