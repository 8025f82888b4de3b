//! The three methods the bench compares, and how their outcomes are tallied.

use std::time::Duration;

use sluice::analysis::judge::sequential::MeanSummary;
use sluice::analysis::judge::{
    CountsInterval, DEFAULT_MINIMUM, Decision, Direction, JudgeConfig, Tolerance, judge_counts,
    judge_samples, mann_whitney,
};
use sluice::analysis::simulate::{Bursts, ErrorTraffic};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

pub const ALPHA: f64 = 0.05;
pub const INTERVAL: f64 = 30.0;
/// The stock error-rate template's tolerance (analysis-templates/error-rate-vs-baseline.yaml).
pub const ERROR_TOLERANCE: Tolerance = Tolerance {
    relative: 0.25,
    absolute: 0.002,
};
/// The stock p99 template's tolerance (analysis-templates/latency-p99-vs-baseline.yaml).
pub const LATENCY_TOLERANCE: Tolerance = Tolerance {
    relative: 0.1,
    absolute: 0.005,
};
/// The slower-than boundary of the latency-slow-requests template.
pub const SLOW_BOUNDARY: f64 = 0.25;

/// How one run ended: the interval (1-based) of the verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Abort(usize),
    Pass(usize),
    Inconclusive,
}

fn config(tolerance: Tolerance) -> JudgeConfig {
    JudgeConfig {
        direction: Direction::Increase,
        tolerance,
        alpha: ALPHA,
        beta: ALPHA,
        interval: Duration::from_secs(INTERVAL as u64),
        minimum: DEFAULT_MINIMUM,
    }
}

/// Sluice's counts judge, consulted after every interval as the controller does.
pub fn sluice_counts(run: &[CountsInterval], tolerance: Tolerance) -> Verdict {
    let config = config(tolerance);
    for k in 1..=run.len() {
        match judge_counts(&run[..k], &config).decision {
            Decision::Worse => return Verdict::Abort(k),
            Decision::NotWorse => return Verdict::Pass(k),
            Decision::Undecided => {}
        }
    }
    Verdict::Inconclusive
}

/// Error traffic at `rps` per arm with bursts of `length` seconds at `rate`
/// about `every` seconds (on each arm, or `shared`), otherwise the defaults.
pub fn bursty_traffic(
    rps: f64,
    (length, every, rate, shared): (f64, f64, f64, bool),
) -> ErrorTraffic {
    let bursts = Bursts {
        every,
        length,
        rate,
        shared,
    };
    ErrorTraffic {
        canary_rps: rps,
        baseline_rps: rps,
        bursts: Some(bursts),
        ..Default::default()
    }
}

/// A counts judge: the interval (1-based) of its verdict on one run.
pub type CountsJudge<'a> = &'a dyn Fn(&[CountsInterval], Tolerance) -> Verdict;

/// Ablation, not a method anyone should run: Sluice's boundary and
/// tolerance with the spread of each interval's difference *told*: binomial
/// noise plus each arm's `excess` (none: a test that assumes Poisson
/// errors), its long-run part for the bound. Nothing
/// is estimated from the run itself. Only its aborts are judged; it shows
/// what measuring the spread costs in time, and what it buys under bursts.
pub fn sluice_counts_told_spread(
    run: &[CountsInterval],
    tolerance: Tolerance,
    excess: Excess,
) -> Verdict {
    told_looks(run, tolerance, excess, |_, told| {
        told.iter().all(|(summary, _)| summary.lower(ALPHA) > 0.0)
    })
}

/// As [`sluice_counts_told_spread`], with a guard: at any look where the
/// run's own intervals spread more than the told marginal spread allows (a
/// χ² test of their dispersion at `guard_level`, at each look afresh),
/// Sluice's own judge decides that look. This is what a prior from history would need for bursts the
/// history did not show.
pub fn sluice_counts_told_spread_guarded(
    run: &[CountsInterval],
    tolerance: Tolerance,
    excess: Excess,
    guard_level: f64,
) -> Verdict {
    let config = config(tolerance);
    told_looks(run, tolerance, excess, |k, told| {
        let tripped = told.iter().any(|(summary, dispersion)| {
            ChiSquared::new((summary.n - 1) as f64)
                .is_ok_and(|chi| *dispersion > chi.inverse_cdf(1.0 - guard_level))
        });
        if tripped {
            judge_counts(&run[..k], &config).decision == Decision::Worse
        } else {
            told.iter().all(|(summary, _)| summary.lower(ALPHA) > 0.0)
        }
    })
}

/// Walk the looks of `run` after the minimum intervals; at each, each
/// tolerance margin's told summary and the dispersion statistic of its
/// values against the told marginal spread (χ² with n - 1 degrees of
/// freedom if it is right); `worse(look, told)` aborts.
fn told_looks(
    run: &[CountsInterval],
    tolerance: Tolerance,
    excess: Excess,
    worse: impl Fn(usize, &[(MeanSummary, f64)]) -> bool,
) -> Verdict {
    let mut seen: Vec<CountsInterval> = Vec::new();
    for (k, interval) in run.iter().enumerate() {
        if usable(interval) {
            seen.push(*interval);
        }
        if seen.len() < DEFAULT_MINIMUM.intervals {
            continue;
        }
        let sum = |f: fn(&CountsInterval) -> f64| seen.iter().map(f).sum::<f64>();
        // As the judge's floor: half an extra event keeps it above zero.
        let overall = |events: f64, exposure: f64| ((events + 0.5) / exposure.max(1.0)).min(1.0);
        let canary = overall(sum(|i| i.canary_events), sum(|i| i.canary_exposure));
        let baseline = overall(sum(|i| i.baseline_events), sum(|i| i.baseline_exposure));
        let margins = [(1.0 + tolerance.relative, 0.0), (1.0, tolerance.absolute)];
        let told: Vec<(MeanSummary, f64)> = margins
            .iter()
            .map(|&(factor, absolute)| {
                let values: Vec<f64> = seen
                    .iter()
                    .map(|i| {
                        i.canary_events / i.canary_exposure
                            - factor * i.baseline_events / i.baseline_exposure
                            - absolute
                    })
                    .collect();
                let n = values.len();
                let binomial = seen
                    .iter()
                    .map(|i| {
                        canary / i.canary_exposure
                            + factor * factor * baseline / i.baseline_exposure
                    })
                    .sum::<f64>()
                    / n as f64;
                // Independent bursts on each arm: Var(c - k b) adds (1 + k²) excesses.
                let arms = 1.0 + factor * factor;
                let marginal = binomial + arms * excess.marginal;
                let long_run = binomial + arms * excess.long_run;
                let mean = values.iter().sum::<f64>() / n as f64;
                let dispersion = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / marginal;
                let summary = MeanSummary {
                    n,
                    mean,
                    spread: long_run.sqrt(),
                    estimated_share: 0.0,
                };
                (summary, dispersion)
            })
            .collect();
        if worse(k + 1, &told) {
            return Verdict::Abort(k + 1);
        }
    }
    Verdict::Inconclusive
}

fn usable(i: &CountsInterval) -> bool {
    i.canary_events.is_finite()
        && i.baseline_events.is_finite()
        && i.canary_exposure > 0.0
        && i.baseline_exposure > 0.0
}

/// One arm's variance per interval beyond binomial noise.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Excess {
    /// Of one interval.
    pub marginal: f64,
    /// Of one interval's share of a long sum: `marginal` times the AR(1)
    /// factor of its lag-1 autocorrelation.
    pub long_run: f64,
}

/// The excess as the baseline arm of `history` shows it. Binomial noise is
/// independent between intervals, so all of the lag-1 autocovariance is the
/// excess's; its autocorrelation is kept in [0, 0.8], as the judge's.
pub fn history_excess(history: &[CountsInterval]) -> Excess {
    let measured: Vec<(f64, f64)> = history
        .iter()
        .filter(|i| i.baseline_exposure > 0.0 && i.baseline_events.is_finite())
        .map(|i| (i.baseline_events / i.baseline_exposure, i.baseline_exposure))
        .collect();
    let n = measured.len() as f64;
    if n < 3.0 {
        return Excess::default();
    }
    let mean = measured.iter().map(|(r, _)| r).sum::<f64>() / n;
    let exposure = measured.iter().map(|(_, x)| x).sum::<f64>() / n;
    let deviations: Vec<f64> = measured.iter().map(|(r, _)| r - mean).collect();
    let lag0 = deviations.iter().map(|d| d * d).sum::<f64>() / (n - 1.0);
    let lag1 = deviations.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / (n - 1.0);
    let binomial = mean.max(0.5 / exposure) / exposure;
    let marginal = (lag0 - binomial).max(0.0);
    let r = if marginal > 0.0 {
        (lag1 / marginal).clamp(0.0, 0.8)
    } else {
        0.0
    };
    Excess {
        marginal,
        long_run: marginal * (1.0 + r) / (1.0 - r),
    }
}

/// Sluice's samples judge (a latency quantile per interval), consulted after every interval.
pub fn sluice_samples(canary: &[f64], baseline: &[f64]) -> Verdict {
    let config = config(LATENCY_TOLERANCE);
    for k in 1..=canary.len() {
        match judge_samples(&canary[..k], &baseline[..k], &config).decision {
            Decision::Worse => return Verdict::Abort(k),
            Decision::NotWorse => return Verdict::Pass(k),
            Decision::Undecided => {}
        }
    }
    Verdict::Inconclusive
}

/// Flagger: one check per minute (two intervals); two failed checks abort.
pub fn threshold(values: &[Option<f64>], limit: f64) -> Verdict {
    let mut failed = 0;
    for (i, value) in values.iter().enumerate() {
        if value.is_some_and(|v| v > limit) {
            failed += 1;
            if failed >= 2 {
                return Verdict::Abort(i + 1);
            }
        }
    }
    Verdict::Pass(values.len())
}

/// The canary's own error rate per minute (pairs of intervals), known at each minute's end.
pub fn minute_rates(run: &[CountsInterval]) -> Vec<Option<f64>> {
    run.chunks(2)
        .map(|pair| {
            let usable = pair.iter().filter(|i| i.canary_events.is_finite());
            let (e, x) = usable.fold((0.0, 0.0), |(e, x), i| {
                (e + i.canary_events, x + i.canary_exposure)
            });
            (x > 0.0).then(|| e / x)
        })
        .flat_map(|rate| [None, rate])
        .collect()
}

/// Kayenta's method: the per-interval values of both arms compared once, at
/// `horizon` intervals, one-sided at `ALPHA`. `raise` maps a baseline value
/// to the largest canary value still acceptable (the identity: no tolerance).
pub fn mann_whitney_fixed(
    canary: &[f64],
    baseline: &[f64],
    horizon: usize,
    raise: impl Fn(f64) -> f64,
) -> Verdict {
    let z = mann_whitney_z(canary, baseline, horizon, raise);
    if 1.0 - Normal::standard().cdf(z) < ALPHA {
        Verdict::Abort(horizon)
    } else {
        Verdict::Pass(horizon)
    }
}

/// The Mann-Whitney statistic (canary above the raised baseline is positive)
/// of the first `horizon` intervals where both arms were measured.
pub fn mann_whitney_z(
    canary: &[f64],
    baseline: &[f64],
    horizon: usize,
    raise: impl Fn(f64) -> f64,
) -> f64 {
    let (c, b): (Vec<f64>, Vec<f64>) = canary
        .iter()
        .zip(baseline)
        .take(horizon)
        .filter(|(c, b)| c.is_finite() && b.is_finite())
        .map(|(c, b)| (*c, raise(*b)))
        .unzip();
    mann_whitney(&c, &b).1
}

/// The baseline value raised to the edge of a tolerance: beyond both margins.
pub fn tolerance_edge(tolerance: Tolerance) -> impl Fn(f64) -> f64 {
    move |b| ((1.0 + tolerance.relative) * b).max(b + tolerance.absolute)
}

/// Per-interval rates of each arm (NaN where an arm had no measurement).
pub fn rates(run: &[CountsInterval]) -> (Vec<f64>, Vec<f64>) {
    let rate = |e: f64, x: f64| if x > 0.0 { e / x } else { f64::NAN };
    run.iter()
        .map(|i| {
            (
                rate(i.canary_events, i.canary_exposure),
                rate(i.baseline_events, i.baseline_exposure),
            )
        })
        .unzip()
}

/// Wilson score interval for `hits` of `n`: the rate and its 95% bounds.
pub fn wilson_bounds(hits: usize, n: usize) -> (f64, f64, f64) {
    let (k, n) = (hits as f64, n.max(1) as f64);
    let z = 1.959_964;
    let p = k / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    (p, (centre - half).max(0.0), (centre + half).min(1.0))
}

/// Wilson score interval for `hits` of `n`, as "r% [lo–hi]".
pub fn wilson(hits: usize, n: usize) -> String {
    if n == 0 {
        return "–".into();
    }
    let (p, low, high) = wilson_bounds(hits, n);
    format!("{:.1}% [{:.1}–{:.1}]", 100.0 * p, 100.0 * low, 100.0 * high)
}

/// Outcomes of one method over one scenario's runs.
#[derive(Default, Clone)]
pub struct Tally {
    pub aborts: usize,
    pub passes: usize,
    pub inconclusive: usize,
    pub abort_times: Vec<usize>,
    pub times: Vec<usize>,
}

impl Tally {
    pub fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Abort(k) => {
                self.aborts += 1;
                self.abort_times.push(k);
                self.times.push(k);
            }
            Verdict::Pass(k) => {
                self.passes += 1;
                self.times.push(k);
            }
            Verdict::Inconclusive => self.inconclusive += 1,
        }
    }

    pub fn runs(&self) -> usize {
        self.aborts + self.passes + self.inconclusive
    }

    /// Median of `times` in minutes, if any.
    pub fn median_minutes(times: &[usize]) -> Option<f64> {
        let mut sorted = times.to_vec();
        sorted.sort_unstable();
        sorted
            .get(sorted.len() / 2)
            .map(|k| *k as f64 * INTERVAL / 60.0)
    }
}
