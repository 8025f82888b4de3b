//! Per-Rollout series, labelled `namespace` and `rollout`, with a fixed
//! upper bound on the series each Rollout can hold (see [`BOUNDS`]).
//!
//! Every label set a Rollout ever got is remembered in [`Tracked`], so that a
//! changed label (a new revision, image or phase) removes the old series and
//! a deleted Rollout takes all of its series with it. Only Rollouts the
//! reconcile has seen are recorded: a Git or alert task finishing after its
//! Rollout was deleted cannot bring the series back.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use jiff::Timestamp;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::labels::{
    MeasurementLabels, OutcomeLabels, PhaseLabels, ReasonLabels, RevisionLabels, RolloutLabels,
    VerdictLabels, measurement_labels, outcome_labels, phase_labels, reason_labels, verdict_labels,
};
use crate::crd::{AnalysisPhase, RevertState, RolloutStatus, reasons};

/// Distinct analysis metric names counted per Rollout; more share `_other`.
pub const MAX_METRIC_NAMES: usize = 8;
/// Distinct abort reasons counted per Rollout; more share `Other`.
pub const MAX_ABORT_REASONS: usize = 12;
/// Longest label value taken from a spec or status (images); longer ones are cut.
pub const MAX_LABEL_LEN: usize = 200;

/// Abort reasons created at 0 with the Rollout, so that `increase()` sees the first abort.
const COMMON_ABORT_REASONS: [&str; 5] = [
    reasons::ANALYSIS_FAILED,
    reasons::BACKGROUND_ANALYSIS_FAILED,
    reasons::ABORTED_BY_USER,
    reasons::PROGRESS_DEADLINE_EXCEEDED,
    reasons::KNOWN_BAD_REVISION,
];
/// Verdicts of a finished AnalysisRun (created at 0 with the Rollout).
const RUN_VERDICTS: [AnalysisPhase; 5] = [
    AnalysisPhase::Successful,
    AnalysisPhase::Failed,
    AnalysisPhase::Inconclusive,
    AnalysisPhase::Error,
    AnalysisPhase::Terminated,
];
/// What one measurement can say (created at 0 with the metric's first measurement).
const MEASUREMENT_VERDICTS: [AnalysisPhase; 5] = [
    AnalysisPhase::Running,
    AnalysisPhase::Successful,
    AnalysisPhase::Failed,
    AnalysisPhase::Inconclusive,
    AnalysisPhase::Error,
];
/// How a Git revert attempt ended (created at 0 with the Rollout).
const REVERT_OUTCOMES: [RevertState; 5] = [
    RevertState::Reverted,
    RevertState::AlreadyReverted,
    RevertState::NotNeeded,
    RevertState::Skipped,
    RevertState::Failed,
];

/// The most series one Rollout can hold, per metric (documented in the README).
pub const BOUNDS: [(&str, usize); 10] = [
    ("sluice_rollout_phase", 1),
    ("sluice_rollout_step", 1),
    ("sluice_rollout_step_started_timestamp_seconds", 1),
    ("sluice_rollout_canary_weight", 1),
    ("sluice_rollout_desired_weight", 1),
    ("sluice_rollout_revision_info", 2),
    ("sluice_rollout_aborts_total", MAX_ABORT_REASONS + 1),
    ("sluice_analysis_runs_total", RUN_VERDICTS.len()),
    (
        "sluice_analysis_measurements_total",
        (MAX_METRIC_NAMES + 1) * MEASUREMENT_VERDICTS.len(),
    ),
    // `Reverting` and `Pushing` only end an attempt in odd cases, but may.
    ("sluice_git_reverts_total", 7),
];

/// What one Rollout has exported, so that it can be replaced or removed.
#[derive(Default)]
struct Tracked {
    phase: Option<&'static str>,
    step: bool,
    step_started: bool,
    revisions: Vec<RevisionLabels>,
    abort_reasons: BTreeSet<String>,
    metric_names: BTreeSet<String>,
    revert_outcomes: BTreeSet<&'static str>,
    /// The last abort counted (revision, time), so a status seen twice counts once.
    counted_abort: Option<(String, Timestamp)>,
    /// The last abort whose traffic reached 0, for the latency histogram.
    zeroed_abort: Option<(String, Timestamp)>,
}

/// The per-Rollout families and what each Rollout holds in them.
#[derive(Default)]
pub(super) struct RolloutMetrics {
    phase: Family<PhaseLabels, Gauge>,
    step: Family<RolloutLabels, Gauge>,
    step_started: Family<RolloutLabels, Gauge>,
    canary_weight: Family<RolloutLabels, Gauge>,
    desired_weight: Family<RolloutLabels, Gauge>,
    revision: Family<RevisionLabels, Gauge>,
    aborts: Family<ReasonLabels, Counter>,
    runs: Family<VerdictLabels, Counter>,
    measurements: Family<MeasurementLabels, Counter>,
    reverts: Family<OutcomeLabels, Counter>,
    tracked: Mutex<HashMap<(String, String), Tracked>>,
}

fn cut(value: &str) -> String {
    match value.char_indices().nth(MAX_LABEL_LEN) {
        Some((end, _)) => value[..end].to_string(),
        None => value.to_string(),
    }
}

impl RolloutMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "rollout_phase",
            "1 for the Rollout's current phase (one series per Rollout)",
            self.phase.clone(),
        );
        registry.register(
            "rollout_step",
            "Index of the canary step in progress (the step count once done)",
            self.step.clone(),
        );
        registry.register(
            "rollout_step_started_timestamp_seconds",
            "When the current canary step started (Unix seconds)",
            self.step_started.clone(),
        );
        registry.register(
            "rollout_canary_weight",
            "Canary traffic share in effect, percent",
            self.canary_weight.clone(),
        );
        registry.register(
            "rollout_desired_weight",
            "Canary traffic share the current step asks for, percent",
            self.desired_weight.clone(),
        );
        registry.register(
            "rollout_revision_info",
            "1 for the stable and the canary revision with their images",
            self.revision.clone(),
        );
        registry.register(
            "rollout_aborts",
            "Canary aborts by reason",
            self.aborts.clone(),
        );
        registry.register(
            "analysis_runs",
            "Finished AnalysisRuns by verdict",
            self.runs.clone(),
        );
        registry.register(
            "analysis_measurements",
            "Analysis measurements by metric and verdict",
            self.measurements.clone(),
        );
        registry.register(
            "git_reverts",
            "Git revert attempts by outcome",
            self.reverts.clone(),
        );
    }

    /// Record `after`, the status just written; `before` is the one it
    /// replaced. Counts a new abort, and returns the abort's time when this
    /// status is the first to show its traffic at 0.
    pub(super) fn observe(
        &self,
        namespace: &str,
        name: &str,
        before: Option<&RolloutStatus>,
        after: &RolloutStatus,
    ) -> Option<Timestamp> {
        let Ok(mut tracked) = self.tracked.lock() else {
            return None;
        };
        let key = (namespace.to_string(), name.to_string());
        let fresh = !tracked.contains_key(&key);
        let state = tracked.entry(key).or_default();
        let labels = RolloutLabels {
            namespace: namespace.to_string(),
            rollout: name.to_string(),
        };
        if fresh {
            self.create_zeroes(&labels, state);
        }
        self.set_phase(&labels, state, after.phase.map(|p| p.as_str()));
        match after.current_step_index {
            Some(step) => {
                self.step.get_or_create(&labels).set(i64::from(step));
                state.step = true;
            }
            None if state.step => {
                self.step.remove(&labels);
                state.step = false;
            }
            None => {}
        }
        match &after.step_started_at {
            Some(at) => {
                self.step_started
                    .get_or_create(&labels)
                    .set(at.0.as_second());
                state.step_started = true;
            }
            None if state.step_started => {
                self.step_started.remove(&labels);
                state.step_started = false;
            }
            None => {}
        }
        self.canary_weight
            .get_or_create(&labels)
            .set(i64::from(after.current_weight));
        self.desired_weight
            .get_or_create(&labels)
            .set(i64::from(after.desired_weight));
        self.set_revisions(&labels, state, after);
        self.count_abort(&labels, state, before, after);
        traffic_zeroed(state, before, after)
    }

    fn create_zeroes(&self, labels: &RolloutLabels, state: &mut Tracked) {
        for reason in COMMON_ABORT_REASONS {
            self.aborts
                .get_or_create_owned(&reason_labels(labels, reason));
            state.abort_reasons.insert(reason.to_string());
        }
        for verdict in RUN_VERDICTS {
            self.runs
                .get_or_create_owned(&verdict_labels(labels, verdict));
        }
        for outcome in REVERT_OUTCOMES {
            self.reverts
                .get_or_create_owned(&outcome_labels(labels, outcome.as_str()));
            state.revert_outcomes.insert(outcome.as_str());
        }
    }

    fn set_phase(&self, labels: &RolloutLabels, state: &mut Tracked, phase: Option<&'static str>) {
        if state.phase == phase {
            return;
        }
        if let Some(old) = state.phase {
            self.phase.remove(&phase_labels(labels, old));
        }
        if let Some(new) = phase {
            self.phase.get_or_create(&phase_labels(labels, new)).set(1);
        }
        state.phase = phase;
    }

    fn set_revisions(&self, labels: &RolloutLabels, state: &mut Tracked, status: &RolloutStatus) {
        let mut wanted = Vec::new();
        let mut add = |role, revision: &Option<String>, images: &[String]| {
            if let Some(revision) = revision {
                wanted.push(RevisionLabels {
                    namespace: labels.namespace.clone(),
                    rollout: labels.rollout.clone(),
                    role,
                    revision: cut(revision),
                    image: cut(&images.join(",")),
                });
            }
        };
        add("stable", &status.stable_revision, &status.stable_images);
        if status.canary_revision != status.stable_revision {
            add("canary", &status.canary_revision, &status.canary_images);
        }
        for old in &state.revisions {
            if !wanted.contains(old) {
                self.revision.remove(old);
            }
        }
        for new in &wanted {
            self.revision.get_or_create(new).set(1);
        }
        state.revisions = wanted;
    }

    fn count_abort(
        &self,
        labels: &RolloutLabels,
        state: &mut Tracked,
        before: Option<&RolloutStatus>,
        after: &RolloutStatus,
    ) {
        let Some(abort) = &after.abort else {
            return;
        };
        let identity = (abort.revision.clone(), abort.at.0);
        let already = before
            .and_then(|b| b.abort.as_ref())
            .is_some_and(|old| (old.revision.clone(), old.at.0) == identity);
        if already || state.counted_abort.as_ref() == Some(&identity) {
            return;
        }
        state.counted_abort = Some(identity);
        let mut reason: String = abort
            .reason
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        reason = cut(&reason);
        if !state.abort_reasons.contains(&reason) {
            if state.abort_reasons.len() >= MAX_ABORT_REASONS {
                reason = "Other".into();
            }
            state.abort_reasons.insert(reason.clone());
        }
        self.aborts
            .get_or_create(&reason_labels(labels, &reason))
            .inc();
    }

    /// Count a measurement of `metric` for a Rollout the reconcile knows.
    pub(super) fn measured(
        &self,
        namespace: &str,
        name: &str,
        metric: &str,
        verdict: AnalysisPhase,
    ) {
        let Ok(mut tracked) = self.tracked.lock() else {
            return;
        };
        let Some(state) = tracked.get_mut(&(namespace.to_string(), name.to_string())) else {
            return;
        };
        let mut metric = cut(metric);
        if !state.metric_names.contains(&metric) {
            if state.metric_names.len() >= MAX_METRIC_NAMES {
                metric = "_other".into();
            }
            if state.metric_names.insert(metric.clone()) {
                for each in MEASUREMENT_VERDICTS {
                    self.measurements
                        .get_or_create_owned(&measurement_labels(namespace, name, &metric, each));
                }
            }
        }
        if MEASUREMENT_VERDICTS.contains(&verdict) {
            self.measurements
                .get_or_create(&measurement_labels(namespace, name, &metric, verdict))
                .inc();
        }
    }

    /// Count an AnalysisRun's final verdict.
    pub(super) fn analysis_finished(&self, namespace: &str, name: &str, verdict: AnalysisPhase) {
        let labels = RolloutLabels {
            namespace: namespace.to_string(),
            rollout: name.to_string(),
        };
        let Ok(tracked) = self.tracked.lock() else {
            return;
        };
        if tracked.contains_key(&(labels.namespace.clone(), labels.rollout.clone()))
            && RUN_VERDICTS.contains(&verdict)
        {
            self.runs
                .get_or_create(&verdict_labels(&labels, verdict))
                .inc();
        }
    }

    /// Count how a Git revert attempt ended.
    pub(super) fn git_revert(&self, namespace: &str, name: &str, outcome: RevertState) {
        let labels = RolloutLabels {
            namespace: namespace.to_string(),
            rollout: name.to_string(),
        };
        let Ok(mut tracked) = self.tracked.lock() else {
            return;
        };
        let Some(state) = tracked.get_mut(&(labels.namespace.clone(), labels.rollout.clone()))
        else {
            return;
        };
        state.revert_outcomes.insert(outcome.as_str());
        self.reverts
            .get_or_create(&outcome_labels(&labels, outcome.as_str()))
            .inc();
    }

    /// Remove every series of a Rollout (deleted, or no longer watched).
    pub(super) fn forget(&self, namespace: &str, name: &str) {
        let Ok(mut tracked) = self.tracked.lock() else {
            return;
        };
        let Some(state) = tracked.remove(&(namespace.to_string(), name.to_string())) else {
            return;
        };
        let labels = RolloutLabels {
            namespace: namespace.to_string(),
            rollout: name.to_string(),
        };
        if let Some(phase) = state.phase {
            self.phase.remove(&phase_labels(&labels, phase));
        }
        for family in [
            &self.step,
            &self.step_started,
            &self.canary_weight,
            &self.desired_weight,
        ] {
            family.remove(&labels);
        }
        for old in &state.revisions {
            self.revision.remove(old);
        }
        for reason in &state.abort_reasons {
            self.aborts.remove(&reason_labels(&labels, reason));
        }
        for verdict in RUN_VERDICTS {
            self.runs.remove(&verdict_labels(&labels, verdict));
        }
        for metric in &state.metric_names {
            for verdict in MEASUREMENT_VERDICTS {
                self.measurements
                    .remove(&measurement_labels(namespace, name, metric, verdict));
            }
        }
        for outcome in &state.revert_outcomes {
            self.reverts.remove(&outcome_labels(&labels, outcome));
        }
    }
}

/// The abort's time when `after` is the first status to show its traffic at 0.
fn traffic_zeroed(
    state: &mut Tracked,
    before: Option<&RolloutStatus>,
    after: &RolloutStatus,
) -> Option<Timestamp> {
    let abort = after.abort.as_ref().filter(|_| after.current_weight == 0)?;
    let identity = (abort.revision.clone(), abort.at.0);
    // A restarted controller reads an abort that reached 0 long ago: not a new measurement.
    let seen_before = before.is_some_and(|b| {
        b.current_weight == 0
            && b.abort
                .as_ref()
                .is_some_and(|old| (old.revision.clone(), old.at.0) == identity)
    });
    if seen_before || state.zeroed_abort.as_ref() == Some(&identity) {
        return None;
    }
    state.zeroed_abort = Some(identity);
    Some(abort.at.0)
}
