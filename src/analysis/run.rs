//! The bookkeeping of an AnalysisRun, without I/O: which measurements are
//! due, what each measurement means for its metric, and the run's verdict.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::condition::Condition;
use super::judge::{
    CountsInterval, Decision, Direction, JudgeConfig, Tolerance, combined_alpha, judge_counts,
    judge_samples,
};
use crate::crd::limits::{MAX_ANALYSIS_WAIT, after, parse_duration};
use crate::crd::{
    AnalysisPhase, BadDirection, ComparisonKind, CountSample, Judgement, Measurement, Metric,
    MetricResult, NoDataPolicy, PodCount,
};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_COUNT: i32 = 5;
const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;
const DEFAULT_CONFIDENCE: f64 = 0.95;

/// How a metric is judged.
#[derive(Debug, Clone)]
pub enum VerdictKind {
    Threshold {
        success: Option<Condition>,
        failure: Option<Condition>,
    },
    Counts(JudgeConfig),
    Samples(JudgeConfig),
}

/// A metric with its defaults applied and its texts parsed.
#[derive(Debug, Clone)]
pub struct MetricPlan {
    pub template: String,
    pub metric: Metric,
    pub interval: Duration,
    pub initial_delay: Duration,
    pub count: i32,
    pub failure_limit: i32,
    pub inconclusive_limit: i32,
    pub consecutive_error_limit: i32,
    pub no_data: NoDataPolicy,
    pub verdict: VerdictKind,
}

fn duration(text: Option<&str>, default: Duration, what: &str) -> Result<Duration, String> {
    match text {
        None => Ok(default),
        Some(t) => parse_duration(t, MAX_ANALYSIS_WAIT).map_err(|e| format!("{what} {e}")),
    }
}

/// Time a run gets beyond its planned measurements (slow queries, a
/// controller restart) before it is called Inconclusive.
pub const DEADLINE_SLACK: Duration = Duration::from_secs(600);

/// When a run started at `started` must have its verdict: for the slowest
/// metric, its initial delay plus twice its measurements' intervals, plus
/// `DEADLINE_SLACK`. Never past the end of time.
pub fn deadline<'a>(
    plans: impl IntoIterator<Item = &'a MetricPlan>,
    started: Timestamp,
) -> Timestamp {
    plans
        .into_iter()
        .map(|plan| {
            let intervals = u32::try_from(plan.count.max(0))
                .unwrap_or(0)
                .saturating_add(1);
            let measuring = plan.interval.saturating_mul(intervals).saturating_mul(2);
            after(
                started,
                plan.initial_delay
                    .saturating_add(measuring)
                    .saturating_add(DEADLINE_SLACK),
            )
        })
        .max()
        .unwrap_or(started)
}

/// The run's verdict at `now`: `overall`, except that a run still Running
/// past its deadline is Inconclusive, so a step never waits forever and a
/// human decides (never a silent pass, never a revert).
pub fn verdict_at(
    results: &[MetricResult],
    deadline: Timestamp,
    now: Timestamp,
) -> (AnalysisPhase, String) {
    match overall(results) {
        (AnalysisPhase::Running, progress) if now >= deadline => (
            AnalysisPhase::Inconclusive,
            format!("no verdict by the analysis deadline {deadline} ({progress})"),
        ),
        verdict => verdict,
    }
}

/// Check a metric and fill in its defaults; the error says what to fix.
pub fn plan_metric(template: &str, metric: &Metric) -> Result<MetricPlan, String> {
    let prefix = format!("metric {}/{}", template, metric.name);
    let fail = |m: String| format!("{prefix}: {m}");
    let interval =
        duration(metric.interval.as_deref(), DEFAULT_INTERVAL, "interval").map_err(fail)?;
    if interval < Duration::from_secs(1) {
        return Err(fail("interval must be at least 1s".into()));
    }
    let initial_delay = duration(
        metric.initial_delay.as_deref(),
        Duration::ZERO,
        "initialDelay",
    )
    .map_err(fail)?;
    let (query, events, exposure, scrape) =
        match (&metric.provider.prometheus, &metric.provider.scrape) {
            (Some(p), None) => (
                p.query.is_some(),
                p.events.is_some(),
                p.exposure.is_some(),
                false,
            ),
            (None, Some(p)) => (
                p.query.is_some(),
                p.events.is_some(),
                p.exposure.is_some(),
                true,
            ),
            _ => {
                return Err(fail(
                    "set exactly one provider: prometheus or scrape".into(),
                ));
            }
        };
    let where_ = if scrape {
        "provider.scrape"
    } else {
        "provider.prometheus"
    };
    let verdict = match &metric.compare {
        None => {
            let parse = |text: &Option<String>| {
                text.as_deref()
                    .map(Condition::parse)
                    .transpose()
                    .map_err(|e| fail(e.to_string()))
            };
            let (success, failure) = (
                parse(&metric.success_condition)?,
                parse(&metric.failure_condition)?,
            );
            if success.is_none() && failure.is_none() {
                return Err(fail(
                    "needs successCondition, failureCondition or compare".into(),
                ));
            }
            if !query {
                return Err(fail(format!("a threshold needs {where_}.query")));
            }
            VerdictKind::Threshold { success, failure }
        }
        Some(compare) => {
            let confidence = compare.confidence.unwrap_or(DEFAULT_CONFIDENCE);
            if !(0.5..1.0).contains(&confidence) {
                return Err(fail(format!("confidence {confidence} must be in [0.5, 1)")));
            }
            let tolerance = Tolerance {
                relative: compare.tolerance.relative.unwrap_or(0.0),
                absolute: compare.tolerance.absolute.unwrap_or(0.0),
            };
            if tolerance.relative < 0.0 || tolerance.absolute < 0.0 {
                return Err(fail("tolerances must not be negative".into()));
            }
            let config = JudgeConfig {
                direction: match compare.direction {
                    BadDirection::Increase => Direction::Increase,
                    BadDirection::Decrease => Direction::Decrease,
                    BadDirection::Either => Direction::Either,
                },
                tolerance,
                alpha: 1.0 - confidence,
                beta: 1.0 - confidence,
            };
            match compare.kind {
                ComparisonKind::Counts => {
                    if !events || !exposure {
                        return Err(fail(format!(
                            "a Counts comparison needs {where_}.events and .exposure"
                        )));
                    }
                    VerdictKind::Counts(config)
                }
                ComparisonKind::Samples => {
                    if scrape {
                        return Err(fail(
                            "a Samples comparison needs the prometheus provider (a scrape has no history)".into(),
                        ));
                    }
                    if !query {
                        return Err(fail(format!("a Samples comparison needs {where_}.query")));
                    }
                    VerdictKind::Samples(config)
                }
            }
        }
    };
    Ok(MetricPlan {
        template: template.into(),
        metric: metric.clone(),
        interval,
        initial_delay,
        count: metric.count.unwrap_or(DEFAULT_COUNT).max(1),
        failure_limit: metric.failure_limit.unwrap_or(0),
        inconclusive_limit: metric.inconclusive_limit.unwrap_or(0),
        consecutive_error_limit: metric
            .consecutive_error_limit
            .unwrap_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT),
        no_data: metric.no_data.unwrap_or_default(),
        verdict,
    })
}

/// A fresh result entry for a metric.
pub fn new_result(plan: &MetricPlan) -> MetricResult {
    MetricResult {
        name: plan.metric.name.clone(),
        template: plan.template.clone(),
        phase: AnalysisPhase::Running,
        dry_run: plan.metric.dry_run,
        count: 0,
        successful: 0,
        failed: 0,
        inconclusive: 0,
        error: 0,
        consecutive_errors: 0,
        message: None,
        judgement: None,
        measurements: Vec::new(),
    }
}

/// When the metric's next measurement is due; `None` once it has a verdict.
pub fn next_due(result: &MetricResult, plan: &MetricPlan, started: Timestamp) -> Option<Timestamp> {
    if result.phase.is_finished() {
        return None;
    }
    let base = match result.measurements.last() {
        None => return started.checked_add(plan.initial_delay).ok(),
        Some(last) => last.at.0,
    };
    base.checked_add(plan.interval).ok()
}

/// What one measurement returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Threshold value; `None` when the query returned nothing.
    Value(Option<f64>),
    /// Events and exposure of each revision in the last interval (and, for
    /// direct scrapes, every pod's totals, from which the next interval counts).
    Counts {
        canary: CountSample,
        baseline: CountSample,
        canary_pods: Vec<PodCount>,
        baseline_pods: Vec<PodCount>,
    },
    /// Values of each revision in the last interval, paired by instant.
    Samples {
        canary: Vec<f64>,
        baseline: Vec<f64>,
    },
    /// The measurement could not be taken.
    Error(String),
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

fn percent(rate: f64) -> String {
    if rate.is_finite() {
        format!("{:.2}%", rate * 100.0)
    } else {
        "n/a".into()
    }
}

fn short(value: f64) -> String {
    if !value.is_finite() {
        "n/a".into()
    } else if value.abs() >= 1e4 || (value != 0.0 && value.abs() < 1e-3) {
        format!("{value:.2e}")
    } else {
        format!("{value:.3}")
    }
}

/// Record `outcome` as the metric's next measurement and update its phase.
/// `comparisons` is the number of non-dry-run comparison metrics in the run,
/// which share the false-abort budget.
pub fn record(
    result: &mut MetricResult,
    plan: &MetricPlan,
    outcome: Outcome,
    now: Timestamp,
    comparisons: usize,
) {
    let mut measurement = Measurement {
        at: Time(now),
        phase: AnalysisPhase::Running,
        value: None,
        canary: None,
        baseline: None,
        canary_pods: Vec::new(),
        baseline_pods: Vec::new(),
        canary_values: Vec::new(),
        baseline_values: Vec::new(),
        message: None,
    };
    result.count += 1;
    let no_data = |measurement: &mut Measurement, what: &str| {
        measurement.message = Some(format!("no data: {what}"));
        measurement.phase = match plan.no_data {
            NoDataPolicy::Inconclusive => AnalysisPhase::Inconclusive,
            NoDataPolicy::Failed => AnalysisPhase::Failed,
            NoDataPolicy::Error => AnalysisPhase::Error,
        };
    };
    match (outcome, &plan.verdict) {
        (Outcome::Error(message), _) => {
            measurement.phase = AnalysisPhase::Error;
            measurement.message = Some(message);
        }
        (Outcome::Value(value), VerdictKind::Threshold { success, failure }) => {
            match value.and_then(finite) {
                None => no_data(&mut measurement, "the query returned no number"),
                Some(v) => {
                    measurement.value = Some(v);
                    let failed = failure.as_ref().is_some_and(|c| c.holds(v))
                        || success.as_ref().is_some_and(|c| !c.holds(v));
                    measurement.phase = if failed {
                        AnalysisPhase::Failed
                    } else {
                        AnalysisPhase::Successful
                    };
                    result.message = Some(format!("result {}", short(v)));
                }
            }
        }
        (
            Outcome::Counts {
                canary,
                baseline,
                canary_pods,
                baseline_pods,
            },
            VerdictKind::Counts(config),
        ) => {
            measurement.canary = Some(canary);
            measurement.baseline = Some(baseline);
            measurement.canary_pods = canary_pods;
            measurement.baseline_pods = baseline_pods;
            let counts = [canary, baseline]
                .into_iter()
                .chain(
                    result
                        .measurements
                        .iter()
                        .flat_map(|m| m.canary.into_iter().chain(m.baseline)),
                )
                .flat_map(|c| [c.events, c.exposure]);
            // Counts come from queries and pods' /metrics: the judge gets only
            // finite, non-negative numbers whose sums stay finite.
            let (mut sum, mut usable) = (0.0f64, true);
            for count in counts {
                usable &= count.is_finite() && count >= 0.0;
                sum += count;
            }
            if !usable || !sum.is_finite() {
                measurement.phase = AnalysisPhase::Error;
                measurement.message =
                    Some("counts must be finite and not negative (and so must their sums)".into());
            } else if canary.exposure <= 0.0 || baseline.exposure <= 0.0 {
                no_data(
                    &mut measurement,
                    "no exposure (requests) for the canary or the baseline",
                );
            } else {
                let config = JudgeConfig {
                    alpha: combined_alpha(config.alpha, comparisons),
                    ..*config
                };
                let mut intervals: Vec<CountsInterval> = result
                    .measurements
                    .iter()
                    .filter_map(|m| Some((m.canary?, m.baseline?)))
                    .map(|(c, b)| CountsInterval {
                        canary_events: c.events,
                        canary_exposure: c.exposure,
                        baseline_events: b.events,
                        baseline_exposure: b.exposure,
                    })
                    .collect();
                intervals.push(CountsInterval {
                    canary_events: canary.events,
                    canary_exposure: canary.exposure,
                    baseline_events: baseline.events,
                    baseline_exposure: baseline.exposure,
                });
                let v = judge_counts(&intervals, &config);
                let threshold = 1.0 / config.alpha;
                measurement.phase = phase_of(v.decision);
                result.message = Some(format!(
                    "canary {} vs baseline {} ({:.0} of {:.0} vs {:.0} of {:.0}); ratio {} ({:.0}% CI {}–{}); e-value worse {} / not worse {} (decides at {})",
                    percent(v.canary_rate),
                    percent(v.baseline_rate),
                    intervals.iter().map(|i| i.canary_events).sum::<f64>(),
                    v.canary_exposure,
                    intervals.iter().map(|i| i.baseline_events).sum::<f64>(),
                    v.baseline_exposure,
                    short(v.rate_ratio),
                    (1.0 - config.alpha) * 100.0,
                    short(v.ratio_interval.0),
                    short(v.ratio_interval.1),
                    short(v.e_value_worse),
                    short(v.e_value_not_worse),
                    short(threshold),
                ));
                result.judgement = Some(Judgement {
                    decision: v.decision.as_str().into(),
                    canary: finite(v.canary_rate),
                    baseline: finite(v.baseline_rate),
                    canary_size: v.canary_exposure,
                    baseline_size: v.baseline_exposure,
                    estimate: finite(v.rate_ratio),
                    interval_low: finite(v.ratio_interval.0),
                    interval_high: finite(v.ratio_interval.1),
                    p_value: None,
                    effect_size: None,
                    e_value_worse: finite(v.e_value_worse),
                    e_value_not_worse: finite(v.e_value_not_worse),
                    threshold,
                });
            }
        }
        (Outcome::Samples { canary, baseline }, VerdictKind::Samples(config)) => {
            measurement.canary_values = canary.iter().copied().filter(|v| v.is_finite()).collect();
            measurement.baseline_values =
                baseline.iter().copied().filter(|v| v.is_finite()).collect();
            if measurement.canary_values.is_empty() || measurement.baseline_values.is_empty() {
                no_data(&mut measurement, "no values for the canary or the baseline");
            } else {
                let config = JudgeConfig {
                    alpha: combined_alpha(config.alpha, comparisons),
                    ..*config
                };
                let all = |f: fn(&Measurement) -> &Vec<f64>, current: &Vec<f64>| {
                    result
                        .measurements
                        .iter()
                        .flat_map(|m| f(m).iter().copied())
                        .chain(current.iter().copied())
                        .collect::<Vec<f64>>()
                };
                let c = all(|m| &m.canary_values, &measurement.canary_values);
                let b = all(|m| &m.baseline_values, &measurement.baseline_values);
                let v = judge_samples(&c, &b, &config);
                let threshold = 1.0 / config.alpha;
                measurement.phase = phase_of(v.decision);
                result.message = Some(format!(
                    "canary median {} vs baseline {} (n {} / {}); shift {} ({:.0}% CI {}–{}), Mann-Whitney p {}, effect {}; e-value worse {} / not worse {} (decides at {})",
                    short(v.canary_median),
                    short(v.baseline_median),
                    v.n_canary,
                    v.n_baseline,
                    short(v.shift),
                    (1.0 - config.alpha) * 100.0,
                    short(v.shift_interval.0),
                    short(v.shift_interval.1),
                    short(v.p_value),
                    short(v.effect_size),
                    short(v.e_value_worse),
                    short(v.e_value_not_worse),
                    short(threshold),
                ));
                result.judgement = Some(Judgement {
                    decision: v.decision.as_str().into(),
                    canary: finite(v.canary_median),
                    baseline: finite(v.baseline_median),
                    canary_size: v.n_canary as f64,
                    baseline_size: v.n_baseline as f64,
                    estimate: finite(v.shift),
                    interval_low: finite(v.shift_interval.0),
                    interval_high: finite(v.shift_interval.1),
                    p_value: finite(v.p_value),
                    effect_size: finite(v.effect_size),
                    e_value_worse: finite(v.e_value_worse),
                    e_value_not_worse: finite(v.e_value_not_worse),
                    threshold,
                });
            }
        }
        (_, _) => {
            measurement.phase = AnalysisPhase::Error;
            measurement.message = Some("the provider returned a result of the wrong kind".into());
        }
    }

    match measurement.phase {
        AnalysisPhase::Successful => result.successful += 1,
        AnalysisPhase::Failed => result.failed += 1,
        AnalysisPhase::Inconclusive => result.inconclusive += 1,
        AnalysisPhase::Error => result.error += 1,
        _ => {}
    }
    if measurement.phase == AnalysisPhase::Error {
        result.consecutive_errors += 1;
        result.message = measurement.message.clone();
    } else {
        result.consecutive_errors = 0;
        if measurement.message.is_some() && result.message.is_none() {
            result.message = measurement.message.clone();
        }
    }
    let comparison = !matches!(plan.verdict, VerdictKind::Threshold { .. });
    let decided = measurement.phase;
    result.measurements.push(measurement);

    result.phase = if result.consecutive_errors > plan.consecutive_error_limit {
        AnalysisPhase::Error
    } else if comparison && decided == AnalysisPhase::Failed && result.failed > plan.failure_limit {
        AnalysisPhase::Failed
    } else if comparison && decided == AnalysisPhase::Successful {
        // The sequential test already controls its error: a clear success ends early.
        AnalysisPhase::Successful
    } else if !comparison && result.failed > plan.failure_limit {
        AnalysisPhase::Failed
    } else if result.inconclusive > plan.inconclusive_limit {
        AnalysisPhase::Inconclusive
    } else if result.count >= plan.count {
        if comparison || result.successful == 0 {
            // Undecided at the end, or nothing ever measured, is not a pass.
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
    };
}

fn phase_of(decision: Decision) -> AnalysisPhase {
    match decision {
        Decision::Worse => AnalysisPhase::Failed,
        Decision::NotWorse => AnalysisPhase::Successful,
        Decision::Undecided => AnalysisPhase::Running,
    }
}

/// The run's verdict and one line for people. Dry-run metrics never decide.
pub fn overall(results: &[MetricResult]) -> (AnalysisPhase, String) {
    let deciding: Vec<&MetricResult> = results.iter().filter(|r| !r.dry_run).collect();
    let line = |r: &MetricResult| {
        format!(
            "{} {}: {}",
            r.name,
            r.phase.as_str(),
            r.message.as_deref().unwrap_or("-")
        )
    };
    for phase in [AnalysisPhase::Failed, AnalysisPhase::Error] {
        if let Some(r) = deciding.iter().find(|r| r.phase == phase) {
            return (phase, line(r));
        }
    }
    if deciding.iter().any(|r| !r.phase.is_finished()) {
        let done = deciding.iter().filter(|r| r.phase.is_finished()).count();
        return (
            AnalysisPhase::Running,
            format!("{done}/{} metrics decided", deciding.len()),
        );
    }
    if let Some(r) = deciding
        .iter()
        .find(|r| r.phase == AnalysisPhase::Inconclusive)
    {
        return (AnalysisPhase::Inconclusive, line(r));
    }
    let summary: Vec<String> = deciding.iter().map(|r| line(r)).collect();
    (AnalysisPhase::Successful, summary.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Comparison, MetricProvider, PrometheusProvider};

    fn threshold_metric() -> Metric {
        Metric {
            name: "error-ratio".into(),
            interval: Some("10s".into()),
            count: Some(3),
            failure_limit: Some(1),
            provider: MetricProvider {
                prometheus: Some(PrometheusProvider {
                    address: "http://prometheus:9090".into(),
                    query: Some("q".into()),
                    ..Default::default()
                }),
                scrape: None,
            },
            success_condition: Some("result < 0.01".into()),
            ..Default::default()
        }
    }

    fn counts_metric() -> Metric {
        Metric {
            name: "errors-vs-baseline".into(),
            count: Some(4),
            provider: MetricProvider {
                prometheus: Some(PrometheusProvider {
                    address: "http://prometheus:9090".into(),
                    events: Some("e".into()),
                    exposure: Some("x".into()),
                    ..Default::default()
                }),
                scrape: None,
            },
            compare: Some(Comparison::default()),
            ..Default::default()
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn threshold_fails_only_past_the_failure_limit_and_no_data_is_not_a_pass() {
        let plan = plan_metric("t", &threshold_metric()).expect("valid");
        let mut result = new_result(&plan);
        assert_eq!(next_due(&result, &plan, at(0)), Some(at(0)));
        record(&mut result, &plan, Outcome::Value(Some(0.05)), at(0), 0);
        assert_eq!(
            result.phase,
            AnalysisPhase::Running,
            "one failure is within failureLimit 1"
        );
        assert_eq!(next_due(&result, &plan, at(0)), Some(at(10)));
        record(&mut result, &plan, Outcome::Value(Some(0.002)), at(10), 0);
        record(&mut result, &plan, Outcome::Value(Some(0.03)), at(20), 0);
        assert_eq!(result.phase, AnalysisPhase::Failed);
        assert_eq!(next_due(&result, &plan, at(0)), None);

        let mut empty = new_result(&plan);
        record(&mut empty, &plan, Outcome::Value(None), at(0), 0);
        assert_eq!(empty.phase, AnalysisPhase::Inconclusive);
        let mut nan = new_result(&plan);
        record(&mut nan, &plan, Outcome::Value(Some(f64::NAN)), at(0), 0);
        assert_eq!(
            nan.phase,
            AnalysisPhase::Inconclusive,
            "NaN (0/0) is no data"
        );
    }

    #[test]
    fn query_errors_end_the_metric_only_after_the_consecutive_limit() {
        let mut metric = threshold_metric();
        metric.count = Some(10);
        let plan = plan_metric("t", &metric).expect("valid");
        let mut result = new_result(&plan);
        for i in 0..4 {
            record(
                &mut result,
                &plan,
                Outcome::Error("bad_data: parse error".into()),
                at(i * 10),
                0,
            );
            assert_eq!(result.phase, AnalysisPhase::Running);
        }
        record(
            &mut result,
            &plan,
            Outcome::Error("bad_data: parse error".into()),
            at(50),
            0,
        );
        assert_eq!(result.phase, AnalysisPhase::Error);
        assert_eq!(result.message.as_deref(), Some("bad_data: parse error"));

        // Reaching the count with nothing but errors is not a pass either.
        let plan = plan_metric("t", &threshold_metric()).expect("valid");
        let mut result = new_result(&plan);
        for i in 0..3 {
            record(
                &mut result,
                &plan,
                Outcome::Error("unreachable".into()),
                at(i * 10),
                0,
            );
        }
        assert_eq!(result.phase, AnalysisPhase::Error);
    }

    #[test]
    fn comparisons_decide_early_and_undecided_at_the_end_is_inconclusive() {
        let plan = plan_metric("t", &counts_metric()).expect("valid");
        let sample = |events: f64, exposure: f64| CountSample { events, exposure };
        let mut bad = new_result(&plan);
        record(
            &mut bad,
            &plan,
            Outcome::Counts {
                canary: sample(60.0, 600.0),
                baseline: sample(27.0, 5400.0),
                canary_pods: vec![],
                baseline_pods: vec![],
            },
            at(0),
            1,
        );
        assert_eq!(bad.phase, AnalysisPhase::Failed);
        let judgement = bad.judgement.clone().expect("numbers");
        assert!(judgement.e_value_worse.unwrap_or(0.0) >= judgement.threshold);

        let mut few = new_result(&plan);
        for i in 0..4 {
            record(
                &mut few,
                &plan,
                Outcome::Counts {
                    canary: sample(0.0, 5.0),
                    baseline: sample(0.0, 45.0),
                    canary_pods: vec![],
                    baseline_pods: vec![],
                },
                at(i * 30),
                1,
            );
        }
        assert_eq!(few.phase, AnalysisPhase::Inconclusive, "{:?}", few.message);
    }

    #[test]
    fn overall_fails_fast_and_ignores_dry_runs() {
        let plan = plan_metric("t", &threshold_metric()).expect("valid");
        let mut failing = new_result(&plan);
        failing.phase = AnalysisPhase::Failed;
        let running = new_result(&plan);
        assert_eq!(
            overall(&[failing.clone(), running.clone()]).0,
            AnalysisPhase::Failed
        );
        failing.dry_run = true;
        assert_eq!(overall(&[failing, running]).0, AnalysisPhase::Running);
    }

    #[test]
    fn intervals_and_initial_delays_beyond_24h_are_refused() {
        for field in ["interval", "initialDelay"] {
            let mut metric = threshold_metric();
            if field == "interval" {
                metric.interval = Some("99999999999h".into());
            } else {
                metric.initial_delay = Some("25h".into());
            }
            let err = plan_metric("t", &metric).expect_err(field);
            assert!(err.contains(field) && err.contains("at most 24h"), "{err}");
        }
        let mut metric = threshold_metric();
        metric.interval = Some("24h".into());
        metric.initial_delay = Some("1d".into());
        assert!(plan_metric("t", &metric).is_ok(), "24h is allowed");
    }

    #[test]
    fn a_run_still_running_past_its_deadline_is_inconclusive() {
        let plan = plan_metric("t", &threshold_metric()).expect("valid");
        // count 3 at 10s: (3 + 1) intervals, doubled, plus the slack.
        let due = deadline([&plan], at(0));
        assert_eq!(due, at(80 + DEADLINE_SLACK.as_secs() as i64));
        let results = vec![new_result(&plan)];
        assert_eq!(verdict_at(&results, due, at(79)).0, AnalysisPhase::Running);
        let (phase, message) = verdict_at(&results, due, due);
        assert_eq!(phase, AnalysisPhase::Inconclusive);
        assert!(message.contains("deadline"), "{message}");
        let mut done = new_result(&plan);
        for i in 0..3 {
            record(&mut done, &plan, Outcome::Value(Some(0.001)), at(i * 10), 0);
        }
        assert_eq!(
            verdict_at(&[done], due, at(1_000_000)).0,
            AnalysisPhase::Successful,
            "a verdict stands after the deadline"
        );
        assert_eq!(
            deadline([&plan], Timestamp::MAX),
            Timestamp::MAX,
            "a hostile start time saturates"
        );
    }

    #[test]
    fn invalid_metrics_say_what_to_fix() {
        let mut metric = threshold_metric();
        metric.success_condition = Some("result <<".into());
        assert!(
            plan_metric("t", &metric)
                .unwrap_err()
                .contains("metric t/error-ratio")
        );
        let mut metric = counts_metric();
        metric.provider.prometheus = Some(PrometheusProvider {
            address: "http://p".into(),
            ..Default::default()
        });
        assert!(plan_metric("t", &metric).unwrap_err().contains("events"));

        let mut metric = counts_metric();
        metric.provider = MetricProvider {
            prometheus: None,
            scrape: Some(crate::crd::ScrapeProvider {
                port: 8080,
                query: Some("latency".into()),
                ..Default::default()
            }),
        };
        metric.compare = Some(Comparison {
            kind: ComparisonKind::Samples,
            ..Default::default()
        });
        assert!(
            plan_metric("t", &metric)
                .unwrap_err()
                .contains("needs the prometheus provider"),
            "a scrape has no history for samples"
        );
    }
}
