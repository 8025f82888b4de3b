//! What a comparison's measurement means: the judge's verdict on every
//! interval so far, written into the metric's result as exact numbers and
//! one line for people. Kept apart from `run` (the schedule and the phases).

use super::judge::{
    CountsInterval, Decision, JudgeConfig, combined_alpha, judge_counts, judge_samples,
};
use crate::crd::{AnalysisPhase, Judgement, Measurement, MetricResult};

pub(crate) fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

pub(crate) fn percent(rate: f64) -> String {
    if rate.is_finite() {
        format!("{:.2}%", rate * 100.0)
    } else {
        "n/a".into()
    }
}

/// A count as measured: integers as integers, anything else (Prometheus'
/// `increase()` extrapolates) with two decimals, never rounded to look whole.
pub(crate) fn exact(count: f64) -> String {
    if !count.is_finite() {
        "n/a".into()
    } else if (count - count.round()).abs() < 1e-9 {
        format!("{}", count.round() as i64)
    } else {
        format!("{count:.2}")
    }
}

pub(crate) fn short(value: f64) -> String {
    if !value.is_finite() {
        "n/a".into()
    } else if value.abs() >= 1e4 || (value != 0.0 && value.abs() < 1e-3) {
        format!("{value:.2e}")
    } else {
        format!("{value:.3}")
    }
}

/// A rate difference in percentage points, with its sign.
fn points(difference: f64) -> String {
    if difference.is_finite() {
        format!("{:+.2} pp", difference * 100.0)
    } else {
        "n/a".into()
    }
}

fn phase_of(decision: Decision) -> AnalysisPhase {
    match decision {
        Decision::Worse => AnalysisPhase::Failed,
        Decision::NotWorse => AnalysisPhase::Successful,
        Decision::Undecided => AnalysisPhase::Running,
    }
}

fn tolerance_text(config: &JudgeConfig) -> String {
    let t = config.tolerance;
    format!(
        "tolerance +{:.0}% and {}",
        t.relative * 100.0,
        short(t.absolute)
    )
}

/// Judge the counts of every measured interval (the previous ones and `current`).
pub(crate) fn judge_counts_into(
    result: &mut MetricResult,
    measurement: &mut Measurement,
    config: &JudgeConfig,
    comparisons: usize,
) {
    let config = JudgeConfig {
        alpha: combined_alpha(config.alpha, comparisons),
        ..*config
    };
    let intervals: Vec<CountsInterval> = result
        .measurements
        .iter()
        .chain(std::iter::once(&*measurement))
        .filter_map(|m| Some((m.canary?, m.baseline?)))
        .map(|(c, b)| CountsInterval {
            canary_events: c.events,
            canary_exposure: c.exposure,
            baseline_events: b.events,
            baseline_exposure: b.exposure,
        })
        .collect();
    let v = judge_counts(&intervals, &config);
    measurement.phase = phase_of(v.decision);
    let confidence = (1.0 - config.alpha) * 100.0;
    let mut message = format!(
        "canary {} ({} of {}) vs baseline {} ({} of {}) over {} intervals; difference {} ({confidence:.0}% anytime interval {} to {}; {})",
        percent(v.canary_rate),
        exact(v.canary_events),
        exact(v.canary_exposure),
        percent(v.baseline_rate),
        exact(v.baseline_events),
        exact(v.baseline_exposure),
        v.intervals,
        points(v.difference),
        points(v.difference_interval.0),
        points(v.difference_interval.1),
        tolerance_text(&config),
    );
    if let Some(needs) = &v.needs {
        message.push_str("; ");
        message.push_str(needs);
    }
    result.message = Some(message);
    result.judgement = Some(Judgement {
        decision: v.decision.as_str().into(),
        canary: finite(v.canary_rate),
        baseline: finite(v.baseline_rate),
        canary_size: v.canary_exposure,
        baseline_size: v.baseline_exposure,
        canary_events: finite(v.canary_events),
        baseline_events: finite(v.baseline_events),
        intervals: i32::try_from(v.intervals).ok(),
        estimate: finite(v.difference),
        interval_low: finite(v.difference_interval.0),
        interval_high: finite(v.difference_interval.1),
        threshold: 1.0 / config.alpha,
        needs: v.needs,
        ..Default::default()
    });
}

/// Judge the value pairs of every measured interval (the previous ones and `current`).
pub(crate) fn judge_samples_into(
    result: &mut MetricResult,
    measurement: &mut Measurement,
    config: &JudgeConfig,
    comparisons: usize,
) {
    let config = JudgeConfig {
        alpha: combined_alpha(config.alpha, comparisons),
        ..*config
    };
    // Pairs stay pairs: a measurement holds its values only when both arms had one.
    let (c, b): (Vec<f64>, Vec<f64>) = result
        .measurements
        .iter()
        .chain(std::iter::once(&*measurement))
        .flat_map(|m| m.canary_values.iter().zip(&m.baseline_values))
        .map(|(c, b)| (*c, *b))
        .unzip();
    let v = judge_samples(&c, &b, &config);
    measurement.phase = phase_of(v.decision);
    let threshold = 1.0 / config.alpha;
    let mut message = format!(
        "canary median {} vs baseline {} over {} intervals (canary beyond the tolerance in {}); shift {} ({:.0}% CI {} to {}), Mann-Whitney p {}, effect {}; e-value worse {} / not worse {} (decides at {}; {})",
        short(v.canary_median),
        short(v.baseline_median),
        v.pairs,
        v.beyond,
        short(v.shift),
        (1.0 - config.alpha) * 100.0,
        short(v.shift_interval.0),
        short(v.shift_interval.1),
        short(v.p_value),
        short(v.effect_size),
        short(v.e_value_worse),
        short(v.e_value_not_worse),
        short(threshold),
        tolerance_text(&config),
    );
    if let Some(needs) = &v.needs {
        message.push_str("; ");
        message.push_str(needs);
    }
    result.message = Some(message);
    result.judgement = Some(Judgement {
        decision: v.decision.as_str().into(),
        canary: finite(v.canary_median),
        baseline: finite(v.baseline_median),
        canary_size: v.pairs as f64,
        baseline_size: v.pairs as f64,
        intervals: i32::try_from(v.pairs).ok(),
        estimate: finite(v.shift),
        interval_low: finite(v.shift_interval.0),
        interval_high: finite(v.shift_interval.1),
        p_value: finite(v.p_value),
        effect_size: finite(v.effect_size),
        e_value_worse: finite(v.e_value_worse),
        e_value_not_worse: finite(v.e_value_not_worse),
        threshold,
        needs: v.needs,
        ..Default::default()
    });
}
