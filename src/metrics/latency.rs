//! How long the actions that follow an abort take, from the abort's time in
//! status: traffic back at 0, the Git revert pushed, an alert delivered.
//! Controller-wide histograms (no Rollout label), so their size does not
//! grow with the number of Rollouts.

use std::time::Duration;

use jiff::Timestamp;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// From well under a second (the traffic revert) to half an hour (a revert
/// or an alert waiting out an outage).
const BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

pub(super) struct Latency {
    traffic_zero: Histogram,
    revert_pushed: Histogram,
    alert_delivered: Histogram,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            traffic_zero: Histogram::new(BUCKETS),
            revert_pushed: Histogram::new(BUCKETS),
            alert_delivered: Histogram::new(BUCKETS),
        }
    }
}

/// Seconds from `since` to `now`, 0 when a skewed clock puts `since` later.
pub(super) fn seconds_since(since: Timestamp, now: Timestamp) -> f64 {
    Duration::try_from(now.duration_since(since))
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Latency {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "abort_to_traffic_zero_seconds",
            "Time from an abort to the first status with the canary's traffic at 0",
            self.traffic_zero.clone(),
        );
        registry.register(
            "abort_to_revert_pushed_seconds",
            "Time from an abort to its Git revert pushed",
            self.revert_pushed.clone(),
        );
        registry.register(
            "abort_to_alert_delivered_seconds",
            "Time from an abort to its aborted alert delivered, per target",
            self.alert_delivered.clone(),
        );
    }

    pub(super) fn traffic_zero(&self, seconds: f64) {
        self.traffic_zero.observe(seconds);
    }

    pub(super) fn revert_pushed(&self, seconds: f64) {
        self.revert_pushed.observe(seconds);
    }

    pub(super) fn alert_delivered(&self, seconds: f64) {
        self.alert_delivered.observe(seconds);
    }
}
