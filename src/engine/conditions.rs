//! Status conditions in the shapes that GitOps health checks read.
//!
//! `Ready`, `Progressing` and `Degraded` follow the Deployment-style
//! conventions Argo CD health scripts use; `Reconciling` and `Stalled` are
//! the kstatus conditions Flux reads. `lastTransitionTime` only moves when a
//! condition's status does.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::reasons::{self, git};
use crate::crd::{RevertState, RolloutPhase};

/// The outcome a plan reports, from which every condition is derived.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanOutcome {
    /// New phase.
    pub phase: RolloutPhase,
    /// CamelCase reason, e.g. `StepCompleted`, `InvalidSpec`.
    pub reason: String,
    /// Human message.
    pub message: String,
}

/// Conditions for `outcome`, keeping transition times of unchanged conditions.
/// The `GitReverted` condition from the revert task's record, if there is one.
pub fn git_condition(
    record: Option<&crate::crd::GitRevertStatus>,
    generation: Option<i64>,
    old: &[Condition],
    now: Timestamp,
) -> Option<Condition> {
    let record = record?;
    let (status, reason) = match record.state {
        RevertState::Reverted | RevertState::AlreadyReverted => ("True", git::REVERTED),
        RevertState::NotNeeded => ("True", git::NOT_NEEDED),
        RevertState::Skipped => ("False", git::SKIPPED),
        RevertState::Reverting | RevertState::Pushing => ("Unknown", git::REVERTING),
        RevertState::Failed => ("False", git::REVERT_FAILED),
    };
    let since = match old.iter().find(|c| c.type_ == "GitReverted") {
        Some(c) if c.status == status && c.reason == reason => c.last_transition_time.clone(),
        _ => Time(now),
    };
    Some(Condition {
        type_: "GitReverted".into(),
        status: status.into(),
        reason: reason.into(),
        message: record.message.clone().unwrap_or_default(),
        observed_generation: generation,
        last_transition_time: since,
    })
}

pub fn conditions(
    outcome: &PlanOutcome,
    generation: Option<i64>,
    old: &[Condition],
    now: Timestamp,
) -> Vec<Condition> {
    let phase = outcome.phase;
    let failed = matches!(phase, RolloutPhase::Degraded | RolloutPhase::Aborted);
    let moving = matches!(phase, RolloutPhase::Progressing);
    let ready_reason = if phase == RolloutPhase::Healthy {
        reasons::HEALTHY
    } else {
        outcome.reason.as_str()
    };
    let progressing_reason = match phase {
        RolloutPhase::Healthy => reasons::ROLLOUT_COMPLETED,
        RolloutPhase::Paused => reasons::ROLLOUT_PAUSED,
        _ => outcome.reason.as_str(),
    };
    let wanted = [
        ("Ready", phase == RolloutPhase::Healthy, ready_reason),
        ("Progressing", !failed, progressing_reason),
        (
            "Degraded",
            failed,
            if failed {
                outcome.reason.as_str()
            } else {
                reasons::AS_EXPECTED
            },
        ),
        (
            "Reconciling",
            moving,
            if moving {
                outcome.reason.as_str()
            } else {
                phase.as_str()
            },
        ),
        (
            "Stalled",
            failed,
            if failed {
                outcome.reason.as_str()
            } else {
                reasons::AS_EXPECTED
            },
        ),
    ];
    wanted
        .into_iter()
        .map(|(kind, status, reason)| {
            let status = if status { "True" } else { "False" };
            let previous = old.iter().find(|c| c.type_ == kind);
            let since = match previous {
                Some(c) if c.status == status => c.last_transition_time.clone(),
                _ => Time(now),
            };
            Condition {
                type_: kind.into(),
                status: status.into(),
                reason: reason.into(),
                message: outcome.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(phase: RolloutPhase, reason: &str) -> PlanOutcome {
        PlanOutcome {
            phase,
            reason: reason.into(),
            message: "m".into(),
        }
    }

    fn find<'a>(conditions: &'a [Condition], kind: &str) -> &'a Condition {
        conditions
            .iter()
            .find(|c| c.type_ == kind)
            .expect("condition present")
    }

    #[test]
    fn healthy_is_ready_and_aborted_is_degraded_and_stalled() {
        let now = Timestamp::UNIX_EPOCH;
        let healthy = conditions(
            &outcome(RolloutPhase::Healthy, "Promoted"),
            Some(3),
            &[],
            now,
        );
        assert_eq!(find(&healthy, "Ready").status, "True");
        assert_eq!(find(&healthy, "Degraded").status, "False");
        assert_eq!(find(&healthy, "Ready").observed_generation, Some(3));
        let aborted = conditions(
            &outcome(RolloutPhase::Aborted, "AnalysisFailed"),
            Some(3),
            &healthy,
            now,
        );
        assert_eq!(find(&aborted, "Ready").status, "False");
        assert_eq!(find(&aborted, "Degraded").reason, "AnalysisFailed");
        assert_eq!(find(&aborted, "Stalled").status, "True");
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = Timestamp::from_second(100).expect("valid");
        let first = conditions(
            &outcome(RolloutPhase::Progressing, "StepStarted"),
            None,
            &[],
            t0,
        );
        let second = conditions(
            &outcome(RolloutPhase::Progressing, "StepCompleted"),
            None,
            &first,
            t1,
        );
        assert_eq!(find(&second, "Reconciling").last_transition_time, Time(t0));
        let third = conditions(
            &outcome(RolloutPhase::Healthy, "Promoted"),
            None,
            &second,
            t1,
        );
        assert_eq!(find(&third, "Ready").last_transition_time, Time(t1));
    }
}
