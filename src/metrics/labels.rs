//! Label sets of the per-Rollout series: every one carries `namespace` and
//! `rollout`, so a deleted Rollout's series can be found and removed.

use prometheus_client::encoding::EncodeLabelSet;

use crate::crd::AnalysisPhase;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RolloutLabels {
    pub(super) namespace: String,
    pub(super) rollout: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PhaseLabels {
    pub(super) namespace: String,
    pub(super) rollout: String,
    pub(super) phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RevisionLabels {
    pub(super) namespace: String,
    pub(super) rollout: String,
    pub(super) role: &'static str,
    pub(super) revision: String,
    pub(super) image: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReasonLabels {
    pub(super) namespace: String,
    pub(super) rollout: String,
    pub(super) reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct VerdictLabels {
    pub(super) namespace: String,
    pub(super) rollout: String,
    pub(super) verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct MeasurementLabels {
    pub(super) namespace: String,
    pub(super) rollout: String,
    pub(super) metric: String,
    pub(super) verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OutcomeLabels {
    pub(super) namespace: String,
    pub(super) rollout: String,
    pub(super) outcome: &'static str,
}

pub(super) fn phase_labels(labels: &RolloutLabels, phase: &'static str) -> PhaseLabels {
    PhaseLabels {
        namespace: labels.namespace.clone(),
        rollout: labels.rollout.clone(),
        phase,
    }
}

pub(super) fn reason_labels(labels: &RolloutLabels, reason: &str) -> ReasonLabels {
    ReasonLabels {
        namespace: labels.namespace.clone(),
        rollout: labels.rollout.clone(),
        reason: reason.to_string(),
    }
}

pub(super) fn verdict_labels(labels: &RolloutLabels, verdict: AnalysisPhase) -> VerdictLabels {
    VerdictLabels {
        namespace: labels.namespace.clone(),
        rollout: labels.rollout.clone(),
        verdict: verdict.as_str(),
    }
}

pub(super) fn outcome_labels(labels: &RolloutLabels, outcome: &'static str) -> OutcomeLabels {
    OutcomeLabels {
        namespace: labels.namespace.clone(),
        rollout: labels.rollout.clone(),
        outcome,
    }
}

pub(super) fn measurement_labels(
    namespace: &str,
    name: &str,
    metric: &str,
    verdict: AnalysisPhase,
) -> MeasurementLabels {
    MeasurementLabels {
        namespace: namespace.to_string(),
        rollout: name.to_string(),
        metric: metric.to_string(),
        verdict: verdict.as_str(),
    }
}
