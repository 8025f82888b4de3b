//! Latency-like values, canary against baseline, one pair per interval.
//!
//! Each interval gives one value per arm, measured over that interval alone
//! (the window is the interval, so no two pairs share requests or an
//! instant). Under "same version" the canary's value is as likely to be above
//! the baseline's as below, whatever the shape of the latency distribution,
//! so a sign test on the pairs is exact: its e-process is a product of
//! likelihood ratios of coin flips, valid at every look (Ville's inequality)
//! with heavy tails, skew or drift that both arms share.
//!
//! Worse: the canary beyond the tolerance (above `(1 + relative) * b` and
//! `b + absolute`) in more pairs than a fair coin explains. Not worse: at or
//! below it in more pairs than a fair coin explains, after the minimum
//! exposure, and never while the Hodges-Lehmann interval of the shift lies
//! wholly beyond the tolerance. Mann-Whitney U, its p-value and the
//! rank-biserial effect are reported as Kayenta does (fixed-horizon numbers,
//! for people; they do not decide).

use statrs::distribution::{ContinuousCDF, Normal};

use super::{Decision, JudgeConfig, Side};

/// The samples test's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplesVerdict {
    pub decision: Decision,
    pub canary_median: f64,
    pub baseline_median: f64,
    /// Pairs (intervals) with a value on both arms.
    pub pairs: usize,
    /// Pairs where the canary was beyond the tolerance in a bad direction.
    pub beyond: usize,
    pub mann_whitney_u: f64,
    /// One-sided in the bad direction (two-sided for Either), no tolerance.
    pub p_value: f64,
    /// Hodges-Lehmann estimate of canary - baseline, and its (1 - alpha) interval.
    pub shift: f64,
    pub shift_interval: (f64, f64),
    /// Rank-biserial correlation: +1 every canary value above every baseline value.
    pub effect_size: f64,
    pub e_value_worse: f64,
    pub e_value_not_worse: f64,
    /// What a pass still needs, when undecided.
    pub needs: Option<String>,
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

/// Mixture over "the coin lands bad with probability p > 1/2" of likelihood ratios against 1/2.
fn sign_mixture(successes: f64, trials: f64) -> f64 {
    const ALTERNATIVES: [f64; 4] = [0.6, 0.7, 0.8, 0.9];
    let sum: f64 = ALTERNATIVES
        .iter()
        .map(|p| (successes * (p / 0.5).ln() + (trials - successes) * ((1.0 - p) / 0.5).ln()).exp())
        .sum();
    sum / ALTERNATIVES.len() as f64
}

/// Hodges-Lehmann shift canary - baseline and its (1 - alpha) interval.
fn hodges_lehmann(canary: &[f64], baseline: &[f64], alpha: f64) -> (f64, (f64, f64)) {
    let mut differences: Vec<f64> = canary
        .iter()
        .flat_map(|c| baseline.iter().map(move |b| c - b))
        .collect();
    if differences.is_empty() {
        return (f64::NAN, (f64::NAN, f64::NAN));
    }
    differences.sort_by(f64::total_cmp);
    let (nf, mf) = (canary.len() as f64, baseline.len() as f64);
    let zq = Normal::standard().inverse_cdf(1.0 - alpha / 2.0);
    let k = (nf * mf / 2.0 - zq * (nf * mf * (nf + mf + 1.0) / 12.0).sqrt()).floor();
    let k = k.max(0.0) as usize;
    let last = differences.len() - 1;
    (
        median(&differences),
        (
            differences[k.min(last)],
            differences[last.saturating_sub(k)],
        ),
    )
}

/// Judge latency-like values; `canary[i]` and `baseline[i]` cover the same interval.
/// Pairs where either value is missing (NaN) are left out together.
pub fn judge_samples(canary: &[f64], baseline: &[f64], config: &JudgeConfig) -> SamplesVerdict {
    let (canary, baseline): (Vec<f64>, Vec<f64>) = canary
        .iter()
        .zip(baseline)
        .filter(|(c, b)| c.is_finite() && b.is_finite())
        .map(|(c, b)| (*c, *b))
        .unzip();
    let pairs = canary.len();
    let (u, z) = mann_whitney(&canary, &baseline);
    let normal = Normal::standard();
    let sides = config.direction.sides();
    let p_value = match config.direction {
        super::Direction::Increase => 1.0 - normal.cdf(z),
        super::Direction::Decrease => normal.cdf(z),
        super::Direction::Either => 2.0 * (1.0 - normal.cdf(z.abs())),
    };
    let (shift, shift_interval) = hodges_lehmann(&canary, &baseline, config.alpha);
    let effect_size = if pairs > 0 {
        2.0 * u / (pairs * pairs) as f64 - 1.0
    } else {
        0.0
    };
    let baseline_median = median(&baseline);

    let tol = config.tolerance;
    let trials = pairs as f64;
    let (mut e_worse, mut e_fine, mut beyond, mut shift_says_worse) = (0.0f64, f64::MAX, 0, false);
    for &side in sides {
        let s = side.sign();
        // Beyond the tolerance: past both margins in this side's direction.
        let count = canary
            .iter()
            .zip(&baseline)
            .filter(|(c, b)| {
                let excess = s * (**c - **b);
                excess > tol.absolute && excess > tol.relative * b.abs()
            })
            .count();
        beyond = beyond.max(count);
        e_worse = e_worse.max(sign_mixture(count as f64, trials));
        e_fine = e_fine.min(sign_mixture(trials - count as f64, trials));
        let margin = tol.absolute.max(tol.relative * baseline_median.abs());
        let near_end = match side {
            Side::Up => shift_interval.0,
            Side::Down => -shift_interval.1,
        };
        shift_says_worse |= near_end > margin;
    }
    let alpha = config.alpha / sides.len() as f64;
    let decision = if pairs >= config.minimum.intervals && e_worse >= 1.0 / alpha {
        Decision::Worse
    } else if config.long_enough(pairs) && e_fine >= 1.0 / config.beta && !shift_says_worse {
        Decision::NotWorse
    } else {
        Decision::Undecided
    };
    let needs = (decision == Decision::Undecided).then(|| {
        let short = config.intervals_short(pairs);
        if short > 0 {
            format!("needs at least {short} more intervals")
        } else {
            "needs more intervals: the pairs do not yet show the canary within the tolerance".into()
        }
    });
    SamplesVerdict {
        decision,
        canary_median: median(&canary),
        baseline_median,
        pairs,
        beyond,
        mann_whitney_u: u,
        p_value,
        shift,
        shift_interval,
        effect_size,
        e_value_worse: e_worse,
        e_value_not_worse: e_fine,
        needs,
    }
}

#[cfg(test)]
#[path = "samples_tests.rs"]
mod tests;
