//! The bookkeeping of an AnalysisRun, without I/O: which measurements are
//! due, what each measurement means for its metric (judged here, its phase
//! decided by [`super::phase`]), and the run's verdict.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::condition::Condition;
use super::judge::{DEFAULT_MINIMUM, Direction, JudgeConfig, Minimum, Tolerance};
use super::template::condition_shape;
use super::verdicts::{finite, judge_counts_into, judge_samples_into, short};
use crate::crd::limits::{MAX_ANALYSIS_WAIT, after};
use crate::crd::{
    AnalysisPhase, BadDirection, ComparisonKind, ComparisonMinimum, CountSample, DurationOrSeconds,
    Measurement, Metric, MetricResult, NoDataPolicy, PodCount,
};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub(super) const DEFAULT_COUNT: i32 = 5;
pub(super) const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;
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
    /// A Job's outcome; a Job still running after `timeout` is an Error.
    Job {
        timeout: Duration,
    },
}

impl VerdictKind {
    /// Comparisons decide by a sequential test and share the false-abort budget.
    pub fn is_comparison(&self) -> bool {
        matches!(self, VerdictKind::Counts(_) | VerdictKind::Samples(_))
    }

    /// Longest a measurement itself may take (a Job runs before it is judged).
    fn measuring_time(&self) -> Duration {
        match self {
            VerdictKind::Job { timeout } => *timeout,
            _ => Duration::ZERO,
        }
    }
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

impl MetricPlan {
    /// `metric` with its limits' defaults applied, judged by `verdict`.
    pub(super) fn with_defaults(
        template: String,
        metric: &Metric,
        (interval, initial_delay): (Duration, Duration),
        verdict: VerdictKind,
    ) -> MetricPlan {
        MetricPlan {
            template,
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
        }
    }
}

pub(super) fn duration(
    value: Option<&DurationOrSeconds>,
    default: Duration,
    what: &str,
) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(v) => v
            .within(MAX_ANALYSIS_WAIT)
            .map_err(|e| format!("{what} {e}")),
    }
}

/// Time a run gets beyond its planned measurements (slow queries, a
/// controller restart) before it is called Inconclusive.
pub const DEADLINE_SLACK: Duration = Duration::from_secs(600);

/// When a run started at `started` must have its verdict: for the slowest
/// metric, its initial delay plus twice its measurements' intervals (and
/// Jobs' timeouts), plus `DEADLINE_SLACK`. Never past the end of time.
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
            let measuring = plan
                .interval
                .saturating_add(plan.verdict.measuring_time())
                .saturating_mul(intervals)
                .saturating_mul(2);
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

/// A provider's fields that give a threshold's value and a Counts
/// comparison's events and exposure, as a message names them.
struct ProviderFields {
    value: &'static str,
    events: &'static str,
    exposure: &'static str,
}

impl ProviderFields {
    const QUERIES_OF_PROMETHEUS: ProviderFields = ProviderFields {
        value: "provider.prometheus.query",
        events: "provider.prometheus.events",
        exposure: "provider.prometheus.exposure",
    };
    const QUERIES_OF_SCRAPE: ProviderFields = ProviderFields {
        value: "provider.scrape.query",
        events: "provider.scrape.events",
        exposure: "provider.scrape.exposure",
    };
    const PATHS_OF_WEB: ProviderFields = ProviderFields {
        value: "provider.web.jsonPath",
        events: "provider.web.eventsJsonPath",
        exposure: "provider.web.exposureJsonPath",
    };
}

/// Check a metric and fill in its defaults; the error says what to fix.
pub fn plan_metric(template: &str, metric: &Metric) -> Result<MetricPlan, String> {
    let prefix = format!("metric {}/{}", template, metric.name);
    let fail = |m: String| format!("{prefix}: {m}");
    let interval =
        duration(metric.interval.as_ref(), DEFAULT_INTERVAL, "interval").map_err(fail)?;
    if interval < Duration::from_secs(1) {
        return Err(fail("interval must be at least 1s".into()));
    }
    let initial_delay = duration(
        metric.initial_delay.as_ref(),
        Duration::ZERO,
        "initialDelay",
    )
    .map_err(fail)?;
    let provider = &metric.provider;
    if let Some(job) = &provider.job {
        return super::job::plan_job_metric(metric, job, interval, initial_delay)
            .map(|plan| MetricPlan {
                template: template.into(),
                ..plan
            })
            .map_err(fail);
    }
    // Which fields a provider has, and their names for messages.
    let (query, events, exposure, names) =
        match (&provider.prometheus, &provider.scrape, &provider.web) {
            (Some(p), None, None) => (
                p.query.is_some(),
                p.events.is_some(),
                p.exposure.is_some(),
                ProviderFields::QUERIES_OF_PROMETHEUS,
            ),
            (None, Some(p), None) => (
                p.query.is_some(),
                p.events.is_some(),
                p.exposure.is_some(),
                ProviderFields::QUERIES_OF_SCRAPE,
            ),
            (None, None, Some(p)) => (
                p.json_path.is_some(),
                p.events_json_path.is_some(),
                p.exposure_json_path.is_some(),
                ProviderFields::PATHS_OF_WEB,
            ),
            _ => {
                return Err(fail(
                    "set exactly one provider: prometheus, scrape, web or job".into(),
                ));
            }
        };
    let scrape = provider.scrape.is_some();
    let verdict = match &metric.compare {
        None => {
            let parse = |text: &Option<String>| {
                text.as_deref()
                    .map(|t| Condition::parse_threshold(&condition_shape(t)))
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
                return Err(fail(format!("a threshold needs {}", names.value)));
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
            let minimum = minimum_of(compare.minimum.as_ref()).map_err(fail)?;
            let count = metric.count.unwrap_or(DEFAULT_COUNT).max(1);
            check_reachable(count, interval, &minimum).map_err(fail)?;
            let config = JudgeConfig {
                direction: match compare.direction {
                    BadDirection::Increase => Direction::Increase,
                    BadDirection::Decrease => Direction::Decrease,
                    BadDirection::Either => Direction::Either,
                },
                tolerance,
                alpha: 1.0 - confidence,
                beta: 1.0 - confidence,
                interval,
                minimum,
            };
            match compare.kind {
                ComparisonKind::Counts => {
                    if !events || !exposure {
                        return Err(fail(format!(
                            "a Counts comparison needs {} and {}",
                            names.events, names.exposure
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
                        return Err(fail(format!("a Samples comparison needs {}", names.value)));
                    }
                    VerdictKind::Samples(config)
                }
            }
        }
    };
    Ok(MetricPlan::with_defaults(
        template.into(),
        metric,
        (interval, initial_delay),
        verdict,
    ))
}

/// The comparison's minimum exposure, defaults filled in.
fn minimum_of(spec: Option<&ComparisonMinimum>) -> Result<Minimum, String> {
    let Some(spec) = spec else {
        return Ok(DEFAULT_MINIMUM);
    };
    let intervals = match spec.intervals {
        None => DEFAULT_MINIMUM.intervals,
        Some(n) if n >= 3 => usize::try_from(n).unwrap_or(DEFAULT_MINIMUM.intervals),
        Some(n) => return Err(format!("minimum.intervals {n} must be at least 3")),
    };
    let exposure = spec.requests.unwrap_or(DEFAULT_MINIMUM.exposure);
    if !(exposure >= 0.0 && exposure.is_finite()) {
        return Err(format!("minimum.requests {exposure} must be a number >= 0"));
    }
    Ok(Minimum {
        intervals,
        duration: duration(
            spec.duration.as_ref(),
            DEFAULT_MINIMUM.duration,
            "minimum.duration",
        )?,
        exposure,
    })
}

/// A comparison whose `count` cannot reach its minimum exposure could never
/// pass; say so at admission instead of pausing every rollout as Inconclusive.
fn check_reachable(count: i32, interval: Duration, minimum: &Minimum) -> Result<(), String> {
    let count = usize::try_from(count).unwrap_or(0);
    let covered = interval.saturating_mul(u32::try_from(count).unwrap_or(u32::MAX));
    if count < minimum.intervals || covered < minimum.duration {
        return Err(format!(
            "count {count} × interval {} covers {}, short of the minimum exposure ({} intervals, {}): this comparison could never pass; raise count or lower compare.minimum",
            humantime::format_duration(interval),
            humantime::format_duration(covered),
            minimum.intervals,
            humantime::format_duration(minimum.duration),
        ));
    }
    Ok(())
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
pub enum MeasurementOutcome {
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
    /// A Job finished: it completed (`true`) or failed; the message says which Job and why.
    JobFinished { completed: bool, message: String },
    /// The measurement could not be taken.
    Error(String),
}

/// Record `outcome` as the metric's next measurement and update its phase.
/// `comparisons` is the number of non-dry-run comparison metrics in the run,
/// which share the false-abort budget.
pub fn record(
    result: &mut MetricResult,
    plan: &MetricPlan,
    outcome: MeasurementOutcome,
    now: Timestamp,
    comparisons: usize,
) {
    result.count += 1;
    let measurement = measure(result, plan, outcome, now, comparisons);
    tally(result, &measurement);
    let decided = measurement.phase;
    result.measurements.push(measurement);
    result.phase = super::phase::metric_phase(plan, result, decided);
}

/// Judge `outcome` against what `result` holds so far: the new measurement
/// with its phase (the judges also update `result`'s message and estimates).
fn measure(
    result: &mut MetricResult,
    plan: &MetricPlan,
    outcome: MeasurementOutcome,
    now: Timestamp,
    comparisons: usize,
) -> Measurement {
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
    let no_data = |measurement: &mut Measurement, what: &str| {
        measurement.message = Some(format!("no data: {what}"));
        measurement.phase = match plan.no_data {
            NoDataPolicy::Inconclusive => AnalysisPhase::Inconclusive,
            NoDataPolicy::Failed => AnalysisPhase::Failed,
            NoDataPolicy::Error => AnalysisPhase::Error,
        };
    };
    match (outcome, &plan.verdict) {
        (MeasurementOutcome::Error(message), _) => {
            measurement.phase = AnalysisPhase::Error;
            measurement.message = Some(message);
        }
        (MeasurementOutcome::Value(value), VerdictKind::Threshold { success, failure }) => {
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
            MeasurementOutcome::Counts {
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
            let (mut sum, mut usable_sums) = (0.0f64, true);
            // NaN is "no value" (e.g. 0/0 at no traffic): no data, below.
            for count in counts.filter(|c| !c.is_nan()) {
                usable_sums &= count.is_finite() && count >= 0.0;
                sum += count;
            }
            let usable = |s: &CountSample| {
                s.exposure > 0.0 && s.exposure.is_finite() && s.events.is_finite()
            };
            if !usable_sums || !sum.is_finite() {
                measurement.canary = None;
                measurement.baseline = None;
                measurement.phase = AnalysisPhase::Error;
                measurement.message =
                    Some("counts must not be negative, and their sums must stay finite".into());
            } else if !usable(&canary) || !usable(&baseline) {
                // Kept out of the judged intervals so later pairs stay on their own interval.
                measurement.canary = None;
                measurement.baseline = None;
                no_data(
                    &mut measurement,
                    "no exposure (requests) for the canary or the baseline",
                );
            } else {
                judge_counts_into(result, &mut measurement, config, comparisons);
            }
        }
        (MeasurementOutcome::Samples { canary, baseline }, VerdictKind::Samples(config)) => {
            // One pair per interval; a missing value on either arm drops the pair, never one side.
            let (c, b): (Vec<f64>, Vec<f64>) = canary
                .iter()
                .zip(&baseline)
                .filter(|(c, b)| c.is_finite() && b.is_finite())
                .map(|(c, b)| (*c, *b))
                .unzip();
            if c.is_empty() {
                no_data(&mut measurement, "no value for the canary or the baseline");
            } else {
                measurement.canary_values = c;
                measurement.baseline_values = b;
                judge_samples_into(result, &mut measurement, config, comparisons);
            }
        }
        (MeasurementOutcome::JobFinished { completed, message }, VerdictKind::Job { .. }) => {
            measurement.phase = if completed {
                AnalysisPhase::Successful
            } else {
                AnalysisPhase::Failed
            };
            result.message = Some(message.clone());
            measurement.message = Some(message);
        }
        (_, _) => {
            measurement.phase = AnalysisPhase::Error;
            measurement.message = Some("the provider returned a result of the wrong kind".into());
        }
    }

    measurement
}

/// Count the measurement's phase and keep the metric's message current.
fn tally(result: &mut MetricResult, measurement: &Measurement) {
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
#[path = "run_tests.rs"]
mod tests;
