//! Errors per request, canary against baseline, one observation per interval.
//!
//! Interval `i` gives the rate difference `c_i - b_i` (canary events over its
//! exposure minus the baseline's). Under "same version" its mean is zero
//! whatever the traffic does, bursts included, as long as the two arms'
//! intervals are independent of each other's labels. Its spread is the
//! binomial noise of each arm's rate (known, independent between intervals)
//! plus whatever excess the intervals show beyond it (bursts, slow spells:
//! measured, not assumed), the excess inflated for dependence between
//! neighbouring intervals as the difference or either arm's own rates show
//! it (see [`super::sequential`]).
//!
//! A regression beyond the tolerance means the canary rate exceeds both
//! `(1 + relative) * baseline` and `baseline + absolute`; each margin is a
//! linear contrast of the per-interval rates with its own confidence
//! sequence. Worse: every contrast's lower bound is above zero (an
//! intersection-union test, each at `alpha`). Not worse: some contrast's
//! upper bound is below zero (each at `beta / contrasts`), after the minimum
//! exposure. No bound of the baseline's rate enters a null hypothesis.

use super::sequential::MeanSummary;
use super::{Decision, JudgeConfig, Side};

/// Increments of one interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CountsInterval {
    pub canary_events: f64,
    pub canary_exposure: f64,
    pub baseline_events: f64,
    pub baseline_exposure: f64,
}

impl CountsInterval {
    fn usable(&self) -> bool {
        self.canary_exposure > 0.0
            && self.baseline_exposure > 0.0
            && self.canary_events.is_finite()
            && self.baseline_events.is_finite()
            && self.canary_exposure.is_finite()
            && self.baseline_exposure.is_finite()
    }
}

/// The counts test's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct CountsVerdict {
    pub decision: Decision,
    /// Intervals that had exposure on both arms.
    pub intervals: usize,
    pub canary_events: f64,
    pub canary_exposure: f64,
    pub baseline_events: f64,
    pub baseline_exposure: f64,
    /// Pooled rates: all events over all exposure.
    pub canary_rate: f64,
    pub baseline_rate: f64,
    /// Mean per-interval rate difference canary - baseline, with its
    /// anytime-valid interval (lower end at `alpha`, upper end at `beta`).
    pub difference: f64,
    pub difference_interval: (f64, f64),
    /// What a pass still needs, when undecided.
    pub needs: Option<String>,
}

/// Weights of one tolerance margin: contrast `sign * (c - k b) - a`.
#[derive(Debug, Clone, Copy)]
struct Contrast {
    k: f64,
    a: f64,
}

fn contrasts(config: &JudgeConfig, side: Side) -> Vec<Contrast> {
    let t = config.tolerance;
    let k = match side {
        Side::Up => 1.0 + t.relative,
        Side::Down => (1.0 - t.relative).max(0.0),
    };
    match (t.relative > 0.0, t.absolute > 0.0) {
        (true, true) => vec![
            Contrast { k, a: 0.0 },
            Contrast {
                k: 1.0,
                a: t.absolute,
            },
        ],
        (true, false) => vec![Contrast { k, a: 0.0 }],
        _ => vec![Contrast {
            k: 1.0,
            a: t.absolute,
        }],
    }
}

/// Each arm's rates: per interval (the observations), and over the whole
/// comparison (for the binomial-noise floor). Computed once per judgement and
/// shared by every contrast.
#[derive(Debug, Clone)]
struct ArmRates {
    canary: Vec<f64>,
    baseline: Vec<f64>,
    canary_overall: f64,
    baseline_overall: f64,
}

impl ArmRates {
    fn of(intervals: &[CountsInterval], (ce, cx): (f64, f64), (be, bx): (f64, f64)) -> ArmRates {
        ArmRates {
            canary: intervals
                .iter()
                .map(|i| i.canary_events / i.canary_exposure)
                .collect(),
            baseline: intervals
                .iter()
                .map(|i| i.baseline_events / i.baseline_exposure)
                .collect(),
            // Half an extra event keeps the floor above zero while no errors
            // have been seen: zero errors in a few requests says little about the rate.
            canary_overall: ((ce + 0.5) / cx.max(1.0)).min(1.0),
            baseline_overall: ((be + 0.5) / bx.max(1.0)).min(1.0),
        }
    }
}

fn summary(intervals: &[CountsInterval], rates: &ArmRates, sign: f64, c: Contrast) -> MeanSummary {
    let values: Vec<f64> = rates
        .canary
        .iter()
        .zip(&rates.baseline)
        .map(|(rate_c, rate_b)| sign * (rate_c - c.k * rate_b) - c.a)
        .collect();
    // What binomial noise alone would give one interval, on average: it is
    // independent from interval to interval, whatever the traffic does.
    let floor = intervals
        .iter()
        .map(|i| {
            rates.canary_overall / i.canary_exposure
                + c.k * c.k * rates.baseline_overall / i.baseline_exposure
        })
        .sum::<f64>()
        / intervals.len().max(1) as f64;
    // A slow spell or a long burst on either arm makes its own rates
    // persistent even when it barely shows in the difference: dependence is
    // read from the difference and from each arm's rates, the largest counting.
    MeanSummary::with_dependence_from(&values, floor, &[&rates.canary, &rates.baseline])
}

/// Judge error-like counts against exposure over all intervals so far.
pub fn judge_counts(all: &[CountsInterval], config: &JudgeConfig) -> CountsVerdict {
    let intervals: Vec<CountsInterval> = all.iter().copied().filter(|i| i.usable()).collect();
    let sum = |f: fn(&CountsInterval) -> f64| intervals.iter().map(f).sum::<f64>();
    let (ce, cx) = (sum(|i| i.canary_events), sum(|i| i.canary_exposure));
    let (be, bx) = (sum(|i| i.baseline_events), sum(|i| i.baseline_exposure));
    let n = intervals.len();
    let rates = ArmRates::of(&intervals, (ce, cx), (be, bx));

    let sides = config.direction.sides();
    let alpha = config.alpha / sides.len() as f64;
    let mut worse = false;
    let mut fine_everywhere = true;
    let mut needs_intervals: Option<usize> = Some(0);
    for &side in sides {
        let cs = contrasts(config, side);
        let beta = config.beta / cs.len() as f64;
        let summaries: Vec<MeanSummary> = cs
            .iter()
            .map(|c| summary(&intervals, &rates, side.sign(), *c))
            .collect();
        if summaries.iter().all(|s| s.lower(alpha) > 0.0) {
            worse = true;
        }
        if !summaries.iter().any(|s| s.upper(beta) < 0.0) {
            fine_everywhere = false;
            let best = summaries
                .iter()
                .filter_map(|s| s.needed_for_upper_below(0.0, beta))
                .min();
            needs_intervals = match (needs_intervals, best) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
    }
    let difference = summary(&intervals, &rates, 1.0, Contrast { k: 1.0, a: 0.0 });
    let enough_for_any = n >= config.minimum.intervals;
    let enough_to_pass =
        config.long_enough(n) && cx >= config.minimum.exposure && bx >= config.minimum.exposure;
    let decision = if enough_for_any && worse {
        Decision::Worse
    } else if enough_to_pass && fine_everywhere {
        Decision::NotWorse
    } else {
        Decision::Undecided
    };
    let needs = (decision == Decision::Undecided).then(|| {
        needs_text(
            config,
            n,
            (cx, bx),
            if fine_everywhere {
                Some(0)
            } else {
                needs_intervals.map(|total| total.saturating_sub(n))
            },
        )
    });
    CountsVerdict {
        decision,
        intervals: n,
        canary_events: ce,
        canary_exposure: cx,
        baseline_events: be,
        baseline_exposure: bx,
        canary_rate: if cx > 0.0 { ce / cx } else { f64::NAN },
        baseline_rate: if bx > 0.0 { be / bx } else { f64::NAN },
        difference: difference.mean,
        difference_interval: (difference.lower(alpha), difference.upper(config.beta)),
        needs,
    }
}

/// "needs about N more requests per arm at the current rate", from what the
/// bounds still miss and what the minimum exposure still misses.
fn needs_text(
    config: &JudgeConfig,
    n: usize,
    (cx, bx): (f64, f64),
    more_for_bounds: Option<usize>,
) -> String {
    let per_interval = if n > 0 { cx.min(bx) / n as f64 } else { 0.0 };
    let short_exposure = (config.minimum.exposure - cx.min(bx)).max(0.0);
    let Some(more_for_bounds) = more_for_bounds else {
        let t = config.tolerance;
        return if t.relative <= 0.0 && t.absolute <= 0.0 {
            "without a tolerance only a canary clearly better than the baseline can pass; set compare.tolerance".into()
        } else {
            "the canary is not below the baseline plus the tolerance; more data will not make it pass at this difference".into()
        };
    };
    let more_intervals = more_for_bounds.max(config.intervals_short(n));
    let more_requests = (more_intervals as f64 * per_interval).max(short_exposure);
    if per_interval <= 0.0 {
        return format!(
            "needs traffic: at least {} requests per arm and {} more intervals",
            config.minimum.exposure.ceil(),
            more_intervals
        );
    }
    let intervals_at_rate = (more_requests / per_interval)
        .ceil()
        .max(more_intervals as f64);
    let seconds = intervals_at_rate * config.interval.as_secs_f64();
    format!(
        "needs about {} more requests per arm at the current rate (about {} more)",
        more_requests.ceil(),
        humantime::format_duration(std::time::Duration::from_secs(seconds.min(1e9) as u64))
    )
}

#[cfg(test)]
#[path = "counts_tests.rs"]
mod tests;
