//! A metric's phase after each measurement: the pure rule that turns its
//! counters and limits into Running, Successful, Failed, Inconclusive or
//! Error.

use super::run::MetricPlan;
use crate::crd::{AnalysisPhase, MetricResult};

/// The metric's phase once the measurement that ended `decided` is counted
/// into `result`.
///
/// - Errors beyond `consecutiveErrorLimit` in a row: Error.
/// - A comparison decides as soon as its sequential test does (it controls
///   its own error): Failed past `failureLimit`, or Successful.
/// - A threshold fails past `failureLimit` failed measurements.
/// - Inconclusive measurements beyond `inconclusiveLimit`: Inconclusive.
/// - At `count`: a threshold with at least one success passes; a comparison
///   still undecided, or a metric never measured, is Inconclusive (Error when a
///   threshold only ever errored), never a pass.
pub fn metric_phase(
    plan: &MetricPlan,
    result: &MetricResult,
    decided: AnalysisPhase,
) -> AnalysisPhase {
    let comparison = plan.verdict.is_comparison();
    if result.consecutive_errors > plan.consecutive_error_limit {
        AnalysisPhase::Error
    } else if comparison && decided == AnalysisPhase::Failed && result.failed > plan.failure_limit {
        AnalysisPhase::Failed
    } else if comparison && decided == AnalysisPhase::Successful {
        AnalysisPhase::Successful
    } else if !comparison && result.failed > plan.failure_limit {
        AnalysisPhase::Failed
    } else if result.inconclusive > plan.inconclusive_limit {
        AnalysisPhase::Inconclusive
    } else if result.count >= plan.count {
        if comparison || result.successful == 0 {
            if result.successful == 0 && result.error > 0 && !comparison {
                AnalysisPhase::Error
            } else {
                AnalysisPhase::Inconclusive
            }
        } else {
            AnalysisPhase::Successful
        }
    } else {
        AnalysisPhase::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::run::plan_metric;
    use crate::crd::{Comparison, Metric, MetricProvider, PrometheusProvider};

    fn plan(comparison: bool) -> MetricPlan {
        let prometheus = PrometheusProvider {
            address: "http://prometheus:9090".into(),
            query: (!comparison).then(|| "q".into()),
            events: comparison.then(|| "e".into()),
            exposure: comparison.then(|| "x".into()),
            ..Default::default()
        };
        let metric = Metric {
            name: "m".into(),
            count: Some(20),
            failure_limit: Some(1),
            inconclusive_limit: Some(1),
            consecutive_error_limit: Some(2),
            provider: MetricProvider {
                prometheus: Some(prometheus),
                scrape: None,
                web: None,
                job: None,
            },
            success_condition: (!comparison).then(|| "result < 0.01".into()),
            compare: comparison.then(Comparison::default),
            ..Default::default()
        };
        plan_metric("t", &metric).expect("a valid metric")
    }

    /// Counters: (count, successful, failed, inconclusive, error, consecutive errors).
    fn counted(c: (i32, i32, i32, i32, i32, i32)) -> MetricResult {
        MetricResult {
            count: c.0,
            successful: c.1,
            failed: c.2,
            inconclusive: c.3,
            error: c.4,
            consecutive_errors: c.5,
            ..Default::default()
        }
    }

    #[test]
    fn each_rule_of_the_metric_phase() {
        use AnalysisPhase::*;
        let cases = [
            // (comparison, counters, this measurement, expected, why)
            (
                false,
                (3, 0, 0, 0, 3, 3),
                Error,
                Error,
                "errors beyond the limit in a row",
            ),
            (
                true,
                (3, 0, 0, 0, 3, 3),
                Error,
                Error,
                "the same for a comparison",
            ),
            (
                false,
                (2, 1, 1, 0, 0, 0),
                Failed,
                Running,
                "a threshold failure within the limit",
            ),
            (
                false,
                (3, 1, 2, 0, 0, 0),
                Failed,
                Failed,
                "threshold failures past the limit",
            ),
            (
                true,
                (2, 0, 2, 0, 0, 0),
                Failed,
                Failed,
                "a comparison failed past the limit",
            ),
            (
                true,
                (1, 0, 1, 0, 0, 0),
                Failed,
                Running,
                "a comparison failure within the limit",
            ),
            (
                true,
                (7, 1, 0, 0, 0, 0),
                Successful,
                Successful,
                "the sequential test passed",
            ),
            (
                false,
                (2, 2, 0, 0, 0, 0),
                Successful,
                Running,
                "a threshold waits for count",
            ),
            (
                true,
                (2, 0, 0, 2, 0, 0),
                Inconclusive,
                Inconclusive,
                "inconclusive past the limit",
            ),
            (
                false,
                (20, 20, 0, 0, 0, 0),
                Successful,
                Successful,
                "a threshold at count",
            ),
            (
                true,
                (20, 0, 0, 0, 0, 0),
                Running,
                Inconclusive,
                "undecided at count is no pass",
            ),
            (
                false,
                (20, 0, 0, 0, 2, 0),
                Running,
                Error,
                "a threshold that only errored",
            ),
            (
                false,
                (20, 0, 0, 1, 0, 0),
                Inconclusive,
                Inconclusive,
                "never measured a number",
            ),
            (
                true,
                (5, 0, 0, 0, 1, 1),
                Error,
                Running,
                "one error, then keep measuring",
            ),
        ];
        for (comparison, counters, decided, expected, why) in cases {
            let phase = metric_phase(&plan(comparison), &counted(counters), decided);
            assert_eq!(phase, expected, "{why}");
        }
    }
}
