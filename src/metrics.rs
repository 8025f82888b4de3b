//! Prometheus metrics of the controller, served on `/metrics`.
//!
//! Controller-wide:
//! - `sluice_reconciles_total{result}`: reconciles by `ok` / `error` (`error`
//!   created at 0, so an error ratio exists before the first error).
//! - `sluice_reconcile_failures_total{reason}`: failures by error kind.
//! - `sluice_reconcile_duration_seconds`: histogram of reconcile time.
//! - `sluice_rollouts{phase}`: Rollouts currently in each phase.
//! - `sluice_alerts_total{target_type,event,result}`: alerts by outcome
//!   (`delivered`, `rejected`, `pending` when an alert first waits for a
//!   retry, `gave_up` when its `retryFor` is over, `unconfirmed`).
//! - `sluice_alerts_pending{target_type}`: alerts not delivered yet that will be retried.
//! - `sluice_alert_attempts_total{target_type,result}`: HTTP attempts
//!   (`2xx`, `4xx`, `429`, `5xx`, `timeout`, `network`).
//! - `sluice_alert_queue_depth`, `sluice_alert_queue_dropped_total`: the
//!   bounded alert queue (a dropped job is queued again by the next reconcile).
//! - `sluice_abort_to_traffic_zero_seconds`, `sluice_abort_to_revert_pushed_seconds`,
//!   `sluice_abort_to_alert_delivered_seconds`: histograms of what follows an
//!   abort ([`latency`]).
//!
//! Per Rollout, labelled `namespace` and `rollout` ([`rollout`], bounds in
//! [`rollout::BOUNDS`]; all of a Rollout's series go when it is deleted):
//! - `sluice_rollout_phase{phase}` (1 series), `sluice_rollout_step`,
//!   `sluice_rollout_step_started_timestamp_seconds`,
//!   `sluice_rollout_canary_weight`, `sluice_rollout_desired_weight` (1 each),
//!   `sluice_rollout_revision_info{role,revision,image}` (stable and canary: 2).
//! - `sluice_rollout_aborts_total{reason}` (at most 13),
//!   `sluice_analysis_runs_total{verdict}` (5),
//!   `sluice_analysis_measurements_total{metric,verdict}` (at most 45),
//!   `sluice_git_reverts_total{outcome}` (at most 7).

mod labels;
mod latency;
pub mod rollout;
#[cfg(test)]
mod rollout_tests;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use jiff::Timestamp;

use crate::crd::{AnalysisPhase, RevertState, RolloutPhase, RolloutStatus};
use latency::{Latency, seconds_since};
use rollout::RolloutMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    target_type: &'static str,
    event: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    target_type: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetTypeLabels {
    target_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// The controller's metrics and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    failures: Family<ReasonLabels, Counter>,
    duration: Histogram,
    rollouts: Family<PhaseLabels, Gauge>,
    alerts: Family<AlertLabels, Counter>,
    alert_attempts: Family<AttemptLabels, Counter>,
    alert_queue_depth: Gauge,
    alert_queue_dropped: Counter,
    alerts_pending: Family<TargetTypeLabels, Gauge>,
    phases: Mutex<HashMap<String, RolloutPhase>>,
    per_rollout: RolloutMetrics,
    latency: Latency,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let failures = Family::<ReasonLabels, Counter>::default();
        let buckets = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let duration = Histogram::new(buckets);
        let rollouts = Family::<PhaseLabels, Gauge>::default();
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Failed reconciles by reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            duration.clone(),
        );
        registry.register("rollouts", "Rollouts by phase", rollouts.clone());
        let alerts = Family::<AlertLabels, Counter>::default();
        let alert_attempts = Family::<AttemptLabels, Counter>::default();
        let alert_queue_depth = Gauge::default();
        let alert_queue_dropped = Counter::default();
        registry.register(
            "alerts",
            "Alerts by target type, event and result",
            alerts.clone(),
        );
        registry.register(
            "alert_attempts",
            "HTTP attempts to deliver alerts, by result",
            alert_attempts.clone(),
        );
        registry.register(
            "alert_queue_depth",
            "Rollouts waiting in the alert queue",
            alert_queue_depth.clone(),
        );
        registry.register(
            "alert_queue_dropped",
            "Alert jobs dropped because the queue was full",
            alert_queue_dropped.clone(),
        );
        let alerts_pending = Family::<TargetTypeLabels, Gauge>::default();
        registry.register(
            "alerts_pending",
            "Alerts not delivered yet that will be retried, by target type",
            alerts_pending.clone(),
        );
        // At 0 from the start, so the error ratio exists before the first
        // error (`ok` appears with the first reconcile, which tests wait for).
        reconciles.get_or_create_owned(&ResultLabels { result: "error" });
        let per_rollout = RolloutMetrics::default();
        per_rollout.register(&mut registry);
        let latency = Latency::default();
        latency.register(&mut registry);
        for phase in RolloutPhase::ALL {
            rollouts
                .get_or_create(&PhaseLabels {
                    phase: phase.as_str(),
                })
                .set(0);
        }
        Metrics {
            registry,
            reconciles,
            failures,
            duration,
            rollouts,
            alerts,
            alert_attempts,
            alert_queue_depth,
            alert_queue_dropped,
            alerts_pending,
            phases: Mutex::default(),
            per_rollout,
            latency,
        }
    }
}

impl Metrics {
    /// Count a successful reconcile that took `elapsed`.
    pub fn reconciled(&self, elapsed: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels { result: "ok" })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Count a failed reconcile.
    pub fn failed(&self, reason: &str, elapsed: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels { result: "error" })
            .inc();
        self.failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Record the phase of one Rollout (`None` once it is deleted).
    pub fn set_phase(&self, key: &str, phase: Option<RolloutPhase>) {
        let Ok(mut phases) = self.phases.lock() else {
            return;
        };
        match phase {
            Some(phase) => phases.insert(key.to_string(), phase),
            None => phases.remove(key),
        };
        for each in RolloutPhase::ALL {
            let count = phases.values().filter(|p| **p == each).count();
            self.rollouts
                .get_or_create(&PhaseLabels {
                    phase: each.as_str(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Record the status just written for Rollout `namespace/name` (`before`
    /// is the status it replaced): phase, step, weights, revisions, a new
    /// abort, and the time the abort took to bring traffic to 0.
    pub fn rollout_status(
        &self,
        namespace: &str,
        name: &str,
        before: Option<&RolloutStatus>,
        after: &RolloutStatus,
    ) {
        self.set_phase(&format!("{namespace}/{name}"), after.phase);
        if let Some(aborted_at) = self.per_rollout.observe(namespace, name, before, after) {
            self.latency
                .traffic_zero(seconds_since(aborted_at, Timestamp::now()));
        }
    }

    /// Remove every series of a deleted Rollout.
    pub fn forget_rollout(&self, namespace: &str, name: &str) {
        self.set_phase(&format!("{namespace}/{name}"), None);
        self.per_rollout.forget(namespace, name);
    }

    /// Count one analysis measurement of `metric` for Rollout `namespace/name`.
    pub fn measured(&self, namespace: &str, name: &str, metric: &str, verdict: AnalysisPhase) {
        self.per_rollout.measured(namespace, name, metric, verdict);
    }

    /// Count the final verdict of an AnalysisRun of Rollout `namespace/name`.
    pub fn analysis_finished(&self, namespace: &str, name: &str, verdict: AnalysisPhase) {
        self.per_rollout.analysis_finished(namespace, name, verdict);
    }

    /// Count how a Git revert attempt ended; `aborted_at` (when known) times a push.
    pub fn git_revert(
        &self,
        namespace: &str,
        name: &str,
        outcome: RevertState,
        aborted_at: Option<Timestamp>,
    ) {
        self.per_rollout.git_revert(namespace, name, outcome);
        if let (RevertState::Reverted, Some(at)) = (outcome, aborted_at) {
            self.latency
                .revert_pushed(seconds_since(at, Timestamp::now()));
        }
    }

    /// Time an `aborted` alert delivered for an abort at `aborted_at`.
    pub fn abort_alert_delivered(&self, aborted_at: Timestamp) {
        self.latency
            .alert_delivered(seconds_since(aborted_at, Timestamp::now()));
    }

    /// Count one alert's outcome.
    pub fn alert(&self, target_type: &'static str, event: &'static str, result: &'static str) {
        self.alerts
            .get_or_create(&AlertLabels {
                target_type,
                event,
                result,
            })
            .inc();
    }

    /// Count HTTP attempts of one delivery.
    pub fn alert_attempts(&self, target_type: &'static str, results: &[&'static str]) {
        for result in results {
            self.alert_attempts
                .get_or_create(&AttemptLabels {
                    target_type,
                    result,
                })
                .inc();
        }
    }

    /// Set the number of Rollouts waiting for the alert task.
    pub fn alert_queue_depth(&self, depth: usize) {
        self.alert_queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Set the number of alerts of one target type waiting for a retry.
    pub fn alerts_pending(&self, target_type: &'static str, count: usize) {
        self.alerts_pending
            .get_or_create(&TargetTypeLabels { target_type })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Count a job the full queue turned away.
    pub fn alert_queue_dropped(&self) {
        self.alert_queue_dropped.inc();
    }

    /// Render in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_counted_per_rollout() {
        let metrics = Metrics::default();
        metrics.set_phase("a/one", Some(RolloutPhase::Progressing));
        metrics.set_phase("a/two", Some(RolloutPhase::Progressing));
        metrics.set_phase("a/one", Some(RolloutPhase::Healthy));
        metrics.reconciled(Duration::from_millis(3));
        metrics.failed("ReadReplicaSets", Duration::from_millis(3));
        let text = metrics.render();
        assert!(
            text.contains("sluice_rollouts{phase=\"Progressing\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sluice_rollouts{phase=\"Healthy\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sluice_reconcile_failures_total{reason=\"ReadReplicaSets\"} 1"),
            "{text}"
        );
        metrics.set_phase("a/two", None);
        assert!(
            metrics
                .render()
                .contains("sluice_rollouts{phase=\"Progressing\"} 0")
        );
    }
}
