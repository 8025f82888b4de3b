//! The statistical judge: is the canary worse than the baseline?
//!
//! Both tests are e-processes: evidence that can be looked at after every
//! interval without inflating the error rate. By Ville's inequality the chance
//! that a true null ever reaches `1/alpha` is at most `alpha`, however often it
//! is checked, so a clear regression fails at the first look with enough
//! evidence and a clear success can promote before the planned count.
//!
//! - Counts (errors per request): the canary's events are Poisson in its
//!   exposure. The null "not worse beyond the tolerance" is a canary rate of
//!   at most `rho0 = max(rb+ * (1 + relative), rb+ + absolute)`, where `rb+` is
//!   an upper confidence bound of the baseline's rate (the baseline usually
//!   has most of the traffic, so the bound is tight). The e-value is a
//!   uniform mixture of Poisson likelihood ratios over alternatives above
//!   `rho0`; `NotWorse` mirrors it with alternatives below.
//! - Samples (latency-like series): reported with Mann-Whitney U, the
//!   Hodges-Lehmann shift and its interval, and the rank-biserial effect size,
//!   as Kayenta does; decided by a sequential sign test on pairs measured at
//!   the same instant (under the null a canary value exceeds the baseline's
//!   margin at most half the time).
//!
//! Several metrics share the false-abort budget (Bonferroni: each uses
//! `alpha / metrics`), which holds for e-values without independence.

use statrs::distribution::{ContinuousCDF, Gamma, Normal};

/// Which change is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Increase,
    Decrease,
    Either,
}

/// A change is a regression only beyond both margins (0 means none).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tolerance {
    pub relative: f64,
    pub absolute: f64,
}

/// What the evidence says so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Worse,
    NotWorse,
    Undecided,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Worse => "Worse",
            Decision::NotWorse => "NotWorse",
            Decision::Undecided => "Undecided",
        }
    }
}

/// Settings shared by both tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JudgeConfig {
    pub direction: Direction,
    pub tolerance: Tolerance,
    /// Bound on the chance of failing a canary that is not worse.
    pub alpha: f64,
    /// Bound on the chance of an early success for a canary that is worse.
    pub beta: f64,
}

/// Increments of one interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CountsInterval {
    pub canary_events: f64,
    pub canary_exposure: f64,
    pub baseline_events: f64,
    pub baseline_exposure: f64,
}

/// The counts test's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct CountsVerdict {
    pub decision: Decision,
    pub canary_rate: f64,
    pub baseline_rate: f64,
    pub canary_exposure: f64,
    pub baseline_exposure: f64,
    /// Canary rate / baseline rate, and its (1 - alpha) interval.
    pub rate_ratio: f64,
    pub ratio_interval: (f64, f64),
    pub e_value_worse: f64,
    pub e_value_not_worse: f64,
}

/// Each metric's share of the false-abort budget.
pub fn combined_alpha(alpha: f64, metrics: usize) -> f64 {
    alpha / metrics.max(1) as f64
}

const WORSE_FACTORS: [f64; 8] = [1.2, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0];
const BETTER_FACTORS: [f64; 6] = [0.9, 0.75, 0.6, 0.45, 0.3, 0.15];

/// Uniform mixture of Poisson likelihood ratios `rho1 = k * rho0` against `rho0`.
fn poisson_mixture(events: f64, exposure: f64, rho0: f64, factors: &[f64]) -> f64 {
    if rho0 <= 0.0 || exposure <= 0.0 {
        return 1.0;
    }
    let sum: f64 = factors
        .iter()
        .map(|k| (events * k.ln() - (k - 1.0) * rho0 * exposure).exp())
        .sum();
    sum / factors.len() as f64
}

/// Exact Poisson bounds of a rate at confidence `1 - tail` on each side.
fn rate_bounds(events: f64, exposure: f64, tail: f64) -> (f64, f64) {
    if exposure <= 0.0 {
        return (0.0, f64::INFINITY);
    }
    let upper = Gamma::new(events + 1.0, 1.0)
        .map(|g| g.inverse_cdf(1.0 - tail))
        .unwrap_or(events + 1.0);
    let lower = if events > 0.0 {
        Gamma::new(events, 1.0)
            .map(|g| g.inverse_cdf(tail))
            .unwrap_or(0.0)
    } else {
        0.0
    };
    (lower / exposure, upper / exposure)
}

/// Judge error-like counts against exposure over all intervals so far.
pub fn judge_counts(intervals: &[CountsInterval], config: &JudgeConfig) -> CountsVerdict {
    let sum = |f: fn(&CountsInterval) -> f64| intervals.iter().map(f).sum::<f64>();
    let (ce, cx) = (sum(|i| i.canary_events), sum(|i| i.canary_exposure));
    let (be, bx) = (sum(|i| i.baseline_events), sum(|i| i.baseline_exposure));
    let canary_rate = if cx > 0.0 { ce / cx } else { f64::NAN };
    let baseline_rate = if bx > 0.0 { be / bx } else { f64::NAN };
    let sides = if config.direction == Direction::Either {
        2.0
    } else {
        1.0
    };
    let alpha = config.alpha / sides;
    let (b_low, b_high) = rate_bounds(be, bx, alpha / 2.0);
    let (c_low, c_high) = rate_bounds(ce, cx, alpha / 2.0);
    let tol = config.tolerance;

    // Increase is bad: null rate at most rho_up.
    let rho_up = (b_high * (1.0 + tol.relative)).max(b_high + tol.absolute);
    let worse_up = poisson_mixture(ce, cx, rho_up, &WORSE_FACTORS);
    let fine_up = poisson_mixture(ce, cx, rho_up, &BETTER_FACTORS);
    // Decrease is bad: null rate at least rho_down.
    let rho_down = (b_low * (1.0 - tol.relative))
        .min(b_low - tol.absolute)
        .max(0.0);
    let worse_down = poisson_mixture(ce, cx, rho_down, &BETTER_FACTORS);
    let fine_down = poisson_mixture(ce, cx, rho_down, &WORSE_FACTORS);

    let (e_worse, e_fine) = match config.direction {
        Direction::Increase => (worse_up, fine_up),
        Direction::Decrease => (worse_down, fine_down),
        // Worse if either side shows it; fine only if both sides are ruled out.
        Direction::Either => (worse_up.max(worse_down), fine_up.min(fine_down)),
    };
    let decision = if cx <= 0.0 {
        Decision::Undecided
    } else if e_worse >= 1.0 / alpha {
        Decision::Worse
    } else if e_fine >= 1.0 / (config.beta / sides) {
        Decision::NotWorse
    } else {
        Decision::Undecided
    };
    CountsVerdict {
        decision,
        canary_rate,
        baseline_rate,
        canary_exposure: cx,
        baseline_exposure: bx,
        rate_ratio: canary_rate / baseline_rate,
        ratio_interval: (c_low / b_high, c_high / b_low),
        e_value_worse: e_worse,
        e_value_not_worse: e_fine,
    }
}

/// The samples test's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplesVerdict {
    pub decision: Decision,
    pub canary_median: f64,
    pub baseline_median: f64,
    pub n_canary: usize,
    pub n_baseline: usize,
    pub mann_whitney_u: f64,
    /// One-sided in the bad direction (two-sided for Either).
    pub p_value: f64,
    /// Hodges-Lehmann estimate of canary - baseline, and its (1 - alpha) interval.
    pub shift: f64,
    pub shift_interval: (f64, f64),
    /// Rank-biserial correlation: +1 every canary value above every baseline value.
    pub effect_size: f64,
    pub e_value_worse: f64,
    pub e_value_not_worse: f64,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// Mann-Whitney U of the canary (pairs where canary > baseline, ties half) and its z score
/// (normal approximation with tie correction).
pub fn mann_whitney(canary: &[f64], baseline: &[f64]) -> (f64, f64) {
    let (n, m) = (canary.len() as f64, baseline.len() as f64);
    if n == 0.0 || m == 0.0 {
        return (0.0, 0.0);
    }
    let mut all: Vec<(f64, bool)> = canary
        .iter()
        .map(|v| (*v, true))
        .chain(baseline.iter().map(|v| (*v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_canary = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        let tied = (j - i + 1) as f64;
        tie_term += tied.powi(3) - tied;
        rank_sum_canary += all[i..=j].iter().filter(|x| x.1).count() as f64 * rank;
        i = j + 1;
    }
    let u = rank_sum_canary - n * (n + 1.0) / 2.0;
    let total = n + m;
    let variance = n * m / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)));
    let z = if variance > 0.0 {
        (u - n * m / 2.0) / variance.sqrt()
    } else {
        0.0
    };
    (u, z)
}

fn sign_mixture(successes: f64, trials: f64) -> f64 {
    const ALTERNATIVES: [f64; 4] = [0.6, 0.7, 0.8, 0.9];
    let sum: f64 = ALTERNATIVES
        .iter()
        .map(|p| (successes * (p / 0.5).ln() + (trials - successes) * ((1.0 - p) / 0.5).ln()).exp())
        .sum();
    sum / ALTERNATIVES.len() as f64
}

/// Judge latency-like samples; `canary[i]` and `baseline[i]` were measured at the same instant.
pub fn judge_samples(canary: &[f64], baseline: &[f64], config: &JudgeConfig) -> SamplesVerdict {
    let canary: Vec<f64> = canary.iter().copied().filter(|v| v.is_finite()).collect();
    let baseline: Vec<f64> = baseline.iter().copied().filter(|v| v.is_finite()).collect();
    let (n, m) = (canary.len(), baseline.len());
    let (u, z) = mann_whitney(&canary, &baseline);
    let normal = Normal::standard();
    let p_value = match config.direction {
        Direction::Increase => 1.0 - normal.cdf(z),
        Direction::Decrease => normal.cdf(z),
        Direction::Either => 2.0 * (1.0 - normal.cdf(z.abs())),
    };
    let mut differences: Vec<f64> = canary
        .iter()
        .flat_map(|c| baseline.iter().map(move |b| c - b))
        .collect();
    differences.sort_by(f64::total_cmp);
    let shift = median(&differences);
    let shift_interval = if differences.is_empty() {
        (f64::NAN, f64::NAN)
    } else {
        let (nf, mf) = (n as f64, m as f64);
        let zq = normal.inverse_cdf(1.0 - config.alpha / 2.0);
        let k = (nf * mf / 2.0 - zq * (nf * mf * (nf + mf + 1.0) / 12.0).sqrt()).floor();
        let k = k.max(0.0) as usize;
        let last = differences.len() - 1;
        (
            differences[k.min(last)],
            differences[last.saturating_sub(k)],
        )
    };
    let effect_size = if n > 0 && m > 0 {
        2.0 * u / (n * m) as f64 - 1.0
    } else {
        0.0
    };

    // Sequential sign test on the pairs.
    let tol = config.tolerance;
    let pairs = canary.len().min(baseline.len());
    let (mut above, mut below) = (0.0, 0.0);
    for i in 0..pairs {
        let (c, b) = (canary[i], baseline[i]);
        let high = (b * (1.0 + tol.relative)).max(b + tol.absolute);
        let low = (b * (1.0 - tol.relative)).min(b - tol.absolute);
        if c > high {
            above += 1.0;
        }
        if c < low {
            below += 1.0;
        }
    }
    let trials = pairs as f64;
    let sides = if config.direction == Direction::Either {
        2.0
    } else {
        1.0
    };
    let (e_worse, e_fine) = match config.direction {
        Direction::Increase => (
            sign_mixture(above, trials),
            sign_mixture(trials - above, trials),
        ),
        Direction::Decrease => (
            sign_mixture(below, trials),
            sign_mixture(trials - below, trials),
        ),
        Direction::Either => (
            sign_mixture(above, trials).max(sign_mixture(below, trials)),
            sign_mixture(trials - above, trials).min(sign_mixture(trials - below, trials)),
        ),
    };
    let decision = if pairs == 0 {
        Decision::Undecided
    } else if e_worse >= sides / config.alpha {
        Decision::Worse
    } else if e_fine >= sides / config.beta {
        Decision::NotWorse
    } else {
        Decision::Undecided
    };
    SamplesVerdict {
        decision,
        canary_median: median(&canary),
        baseline_median: median(&baseline),
        n_canary: n,
        n_baseline: m,
        mann_whitney_u: u,
        p_value,
        shift,
        shift_interval,
        effect_size,
        e_value_worse: e_worse,
        e_value_not_worse: e_fine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(relative: f64, absolute: f64) -> JudgeConfig {
        JudgeConfig {
            direction: Direction::Increase,
            tolerance: Tolerance { relative, absolute },
            alpha: 0.05,
            beta: 0.05,
        }
    }

    /// Deterministic Poisson draws (Knuth) from a seeded generator.
    fn poisson(rng: &mut fastrand::Rng, mean: f64) -> f64 {
        if mean > 50.0 {
            // Normal approximation for large means keeps the test fast.
            let u1 = rng.f64().max(f64::MIN_POSITIVE);
            let u2 = rng.f64();
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            return (mean + z * mean.sqrt()).round().max(0.0);
        }
        let limit = (-mean).exp();
        let (mut k, mut p) = (0.0, 1.0);
        loop {
            p *= rng.f64();
            if p <= limit {
                return k;
            }
            k += 1.0;
        }
    }

    /// 30 s intervals at 200 req/s with the canary at `share`.
    fn stream(
        rng: &mut fastrand::Rng,
        looks: usize,
        share: f64,
        canary_rate: f64,
        baseline_rate: f64,
    ) -> Vec<CountsInterval> {
        (0..looks)
            .map(|_| {
                let (cx, bx) = (6000.0 * share, 6000.0 * (1.0 - share));
                CountsInterval {
                    canary_events: poisson(rng, cx * canary_rate),
                    canary_exposure: cx,
                    baseline_events: poisson(rng, bx * baseline_rate),
                    baseline_exposure: bx,
                }
            })
            .collect()
    }

    #[test]
    fn a_tripled_error_rate_fails_within_a_few_intervals_at_10_percent() {
        let mut rng = fastrand::Rng::with_seed(3);
        let intervals = stream(&mut rng, 8, 0.10, 0.03, 0.01);
        let first_worse = (1..=intervals.len()).find(|&k| {
            judge_counts(&intervals[..k], &config(0.1, 0.0)).decision == Decision::Worse
        });
        assert!(matches!(first_worse, Some(k) if k <= 4), "{first_worse:?}");
    }

    #[test]
    fn equal_rates_are_almost_never_worse_even_when_checked_every_interval() {
        let mut rng = fastrand::Rng::with_seed(11);
        let runs = 400;
        let mut false_aborts = 0;
        for _ in 0..runs {
            let intervals = stream(&mut rng, 20, 0.25, 0.01, 0.01);
            if (1..=intervals.len()).any(|k| {
                judge_counts(&intervals[..k], &config(0.0, 0.0)).decision == Decision::Worse
            }) {
                false_aborts += 1;
            }
        }
        assert!(
            false_aborts as f64 / runs as f64 <= 0.05,
            "{false_aborts} of {runs}"
        );
    }

    #[test]
    fn a_regression_inside_the_tolerance_is_not_worse() {
        let mut rng = fastrand::Rng::with_seed(5);
        // +5% relative with a 50% tolerance, lots of data.
        let intervals = stream(&mut rng, 20, 0.5, 0.0105, 0.01);
        let verdict = judge_counts(&intervals, &config(0.5, 0.0));
        assert_ne!(verdict.decision, Decision::Worse, "{verdict:?}");
    }

    #[test]
    fn a_healthy_canary_is_shown_not_worse_with_a_practical_margin() {
        let mut rng = fastrand::Rng::with_seed(9);
        let intervals = stream(&mut rng, 8, 0.25, 0.005, 0.005);
        let verdict = judge_counts(&intervals, &config(0.1, 0.01));
        assert_eq!(verdict.decision, Decision::NotWorse, "{verdict:?}");
    }

    #[test]
    fn zero_baseline_errors_still_catch_a_failing_canary_with_an_absolute_margin() {
        let intervals = [CountsInterval {
            canary_events: 60.0,
            canary_exposure: 600.0,
            baseline_events: 0.0,
            baseline_exposure: 5400.0,
        }];
        assert_eq!(
            judge_counts(&intervals, &config(0.1, 0.005)).decision,
            Decision::Worse
        );
    }

    #[test]
    fn decrease_direction_flags_a_drop() {
        let intervals = [CountsInterval {
            canary_events: 400.0,
            canary_exposure: 1000.0,
            baseline_events: 9000.0,
            baseline_exposure: 10000.0,
        }];
        let mut c = config(0.05, 0.0);
        c.direction = Direction::Decrease;
        assert_eq!(judge_counts(&intervals, &c).decision, Decision::Worse);
        c.direction = Direction::Increase;
        assert_ne!(judge_counts(&intervals, &c).decision, Decision::Worse);
    }

    #[test]
    fn mann_whitney_matches_a_hand_count() {
        // Canary above baseline in 8 of 9 pairs, one tie: U = 8.5.
        let (u, z) = mann_whitney(&[3.0, 5.0, 7.0], &[1.0, 2.0, 3.0]);
        assert!((u - 8.5).abs() < 1e-12, "{u}");
        assert!(z > 1.5, "{z}");
    }

    #[test]
    fn hodges_lehmann_recovers_a_shift() {
        let baseline: Vec<f64> = (0..40).map(|i| 100.0 + (i % 10) as f64).collect();
        let canary: Vec<f64> = baseline.iter().map(|b| b + 20.0).collect();
        let v = judge_samples(&canary, &baseline, &config(0.1, 0.0));
        assert!((v.shift - 20.0).abs() < 1e-9, "{v:?}");
        assert!(v.shift_interval.0 <= 20.0 && 20.0 <= v.shift_interval.1);
        assert!(v.effect_size > 0.9);
        assert_eq!(v.decision, Decision::Worse);
        assert!(v.p_value < 0.001);
    }

    #[test]
    fn equal_latency_samples_are_not_worse() {
        let mut rng = fastrand::Rng::with_seed(2);
        let mut aborts = 0;
        for _ in 0..300 {
            let draw = |rng: &mut fastrand::Rng| 0.1 * (1.0 + 0.2 * (rng.f64() - 0.5));
            let canary: Vec<f64> = (0..60).map(|_| draw(&mut rng)).collect();
            let baseline: Vec<f64> = (0..60).map(|_| draw(&mut rng)).collect();
            if (1..=60).any(|k| {
                judge_samples(&canary[..k], &baseline[..k], &config(0.0, 0.0)).decision
                    == Decision::Worse
            }) {
                aborts += 1;
            }
        }
        assert!(aborts <= 15, "{aborts} of 300");
    }
}
