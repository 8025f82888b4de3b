//! Anytime-valid bounds on the mean of per-interval observations.
//!
//! Each interval gives one number (a rate difference, a latency excess), so
//! bursts and dependence inside an interval only widen that number's spread;
//! they never make two observations look like independent evidence. The
//! bounds are the asymptotic confidence sequence of Waudby-Smith, Arnold, Wu,
//! Ramdas and Howard ("Time-uniform central limit theory", 2021): the
//! one-sided normal-mixture boundary of Howard et al. (2021) applied to the
//! running sum with a plug-in variance. Checked after every interval, the
//! chance that the true mean is ever outside its bound is about `alpha`.
//!
//! The plug-in variance is a floor the caller knows (for counts: what
//! binomial noise alone gives, independent from interval to interval) plus
//! the excess the intervals show beyond it. The floor keeps a handful of
//! quiet intervals from estimating a variance near zero and turning one stray
//! error into "proof"; the excess is multiplied by a dependence factor,
//! because a burst or a slow spell that outlasts an interval makes
//! neighbouring observations alike, and only the excess is widened for
//! having been estimated from few intervals.
//!
//! Assumptions, and what happens when they fail: the observations' mean is
//! what is tested (paired intervals share traffic conditions); dependence
//! reaches a few intervals (lag-1 autocorrelation up to 0.8 is allowed for).
//! Per-arm deviations that persist for most of the comparison cannot be told
//! from a regression by any test on that data: they raise false aborts.

use statrs::distribution::{ContinuousCDF, Normal};

/// Intrinsic time (in intervals) at which the boundary is tightest. Chosen
/// with the bench: canaries are judged for roughly 5-20 intervals.
const TIGHTEST_AT_INTERVALS: f64 = 12.0;

/// Largest lag-1 autocorrelation the dependence factor assumes (a factor of 9).
const MAX_SHARED: f64 = 0.8;

/// Summary of the observations so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanSummary {
    pub n: usize,
    pub mean: f64,
    /// Standard deviation of one observation (sample estimate, floored).
    pub spread: f64,
    /// Share of the variance estimated from the intervals themselves (the
    /// rest is the known floor); that share is uncertain and widens the bound.
    pub estimated_share: f64,
}

impl MeanSummary {
    /// Mean and floored spread of `values`; `floor_variance` is the smallest
    /// variance of one observation the caller believes possible.
    pub fn of(values: &[f64], floor_variance: f64) -> MeanSummary {
        MeanSummary::with_dependence_from(values, floor_variance, &[])
    }

    /// As [`MeanSummary::of`], with the dependence between neighbouring
    /// intervals taken as the largest shown by `values` or by any of `others`
    /// (series that share the traffic's dependence, such as each arm's own
    /// rates, where a long burst on one arm shows even when it barely moves
    /// the difference).
    pub fn with_dependence_from(
        values: &[f64],
        floor_variance: f64,
        others: &[&[f64]],
    ) -> MeanSummary {
        let n = values.len();
        if n == 0 {
            return MeanSummary {
                n,
                mean: f64::NAN,
                spread: f64::NAN,
                estimated_share: 1.0,
            };
        }
        let count = n as f64;
        let mean = values.iter().sum::<f64>() / count;
        let dependence = others
            .iter()
            .map(|series| lag1_autocorrelation(series))
            .fold(lag1_autocorrelation(values), f64::max);
        let (variance, estimated_share) = split_variance(values, mean, floor_variance, dependence);
        MeanSummary {
            n,
            mean,
            spread: variance.max(0.0).sqrt(),
            estimated_share,
        }
    }

    /// Half-width of the one-sided bound at level `alpha` (infinite when it cannot be computed).
    pub fn margin(&self, alpha: f64) -> f64 {
        if self.n == 0 || !self.spread.is_finite() || !(alpha > 0.0 && alpha < 1.0) {
            return f64::INFINITY;
        }
        self.spread * self.widening(self.n, alpha) * boundary(self.n as f64, alpha) / self.n as f64
    }

    /// Lower confidence bound of the mean at level `alpha`, valid at every look.
    pub fn lower(&self, alpha: f64) -> f64 {
        self.mean - self.margin(alpha)
    }

    /// Upper confidence bound of the mean at level `alpha`, valid at every look.
    pub fn upper(&self, alpha: f64) -> f64 {
        self.mean + self.margin(alpha)
    }

    /// About how many observations in all the bound needs before the upper
    /// bound falls below `target`, if the mean and spread stay as they are.
    pub fn needed_for_upper_below(&self, target: f64, alpha: f64) -> Option<usize> {
        let gap = target - self.mean;
        if gap.is_nan() || gap <= 0.0 || !self.spread.is_finite() {
            return None;
        }
        // The boundary grows like sqrt(n log n): walk in doubling steps, then bisect.
        let fits =
            |n: f64| self.spread * self.widening(n as usize, alpha) * boundary(n, alpha) / n < gap;
        let (mut low, mut high) = (self.n.max(1) as f64, self.n.max(1) as f64);
        while !fits(high) {
            low = high;
            high *= 2.0;
            if high > 1e9 {
                return None;
            }
        }
        while high - low > 1.0 {
            let mid = ((low + high) / 2.0).floor();
            if fits(mid) {
                high = mid;
            } else {
                low = mid;
            }
        }
        Some(high as usize)
    }
}

impl MeanSummary {
    fn widening(&self, n: usize, alpha: f64) -> f64 {
        if n < 2 {
            return f64::INFINITY;
        }
        1.0 + (small_sample_factor(n, alpha) - 1.0) * self.estimated_share
    }
}

/// Variance of one observation as the known floor (noise that is
/// independent from interval to interval, such as Poisson noise) plus the
/// excess the intervals show beyond it. Only the excess can be shared by
/// neighbouring intervals (a burst or slow spell straddling a boundary, a
/// per-pod slowdown that lasts minutes), so only the excess is multiplied by
/// the dependence factor `(1 + r) / (1 - r)` (the long-run variance of an
/// AR(1) process), with `r` the lag-1 autocorrelation (`observed`) corrected
/// for its small-sample bias (Kendall: about `-(1 + 3r) / n`), raised by half
/// a standard error and kept in `[0, MAX_SHARED]`. Returns the variance and the
/// share of it that was estimated.
fn split_variance(values: &[f64], mean: f64, floor: f64, observed: f64) -> (f64, f64) {
    let n = values.len();
    let floor = floor.max(0.0);
    if n < 2 {
        return (floor, if floor > 0.0 { 0.0 } else { 1.0 });
    }
    let count = n as f64;
    let lag0 = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (count - 1.0);
    let excess = (lag0 - floor).max(0.0);
    // Bias-corrected, then half a standard error (about 1/sqrt(n)) on top: with
    // ten intervals the estimate is rough (the largest of several series is
    // already biased high), and erring high only costs time.
    let assumed =
        (observed + (1.0 + 3.0 * observed) / count + 0.5 / count.sqrt()).clamp(0.0, MAX_SHARED);
    let dependence = (1.0 + assumed) / (1.0 - assumed);
    let shared = excess * dependence;
    let variance = floor + shared;
    let share = if variance > 0.0 {
        shared / variance
    } else {
        1.0
    };
    (variance, share)
}

/// Lag-1 autocorrelation of a series (0 when it cannot be computed).
fn lag1_autocorrelation(series: &[f64]) -> f64 {
    let finite: Vec<f64> = series.iter().copied().filter(|v| v.is_finite()).collect();
    let n = finite.len();
    if n < 2 {
        return 0.0;
    }
    let mean = finite.iter().sum::<f64>() / n as f64;
    let deviations: Vec<f64> = finite.iter().map(|v| v - mean).collect();
    let lag0 = deviations.iter().map(|d| d * d).sum::<f64>();
    let lag1 = deviations.windows(2).map(|w| w[0] * w[1]).sum::<f64>();
    if lag0 > 0.0 { lag1 / lag0 } else { 0.0 }
}

/// A spread estimated from few intervals is itself uncertain: widen the
/// bound by the ratio of Student's t to the normal quantile, as a fixed-n
/// t-test would (about 1.2× at 6 intervals, 1.05× at 20). The t quantile is
/// the Cornish-Fisher expansion, within 1% from 5 degrees of freedom.
fn small_sample_factor(n: usize, alpha: f64) -> f64 {
    if n < 2 {
        return f64::INFINITY;
    }
    let z = Normal::standard().inverse_cdf(1.0 - alpha);
    let nu = (n - 1) as f64;
    let t = z
        + (z.powi(3) + z) / (4.0 * nu)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * nu * nu)
        + (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / (384.0 * nu.powi(3));
    (t / z).max(1.0)
}

/// One-sided normal-mixture boundary for a sum of `n` unit-variance
/// observations (Howard, Ramdas, McAuliffe and Sekhon 2021, eq. 14), with the
/// mixture tuned to be tightest near [`TIGHTEST_AT_INTERVALS`].
pub fn boundary(n: f64, alpha: f64) -> f64 {
    let log_term = -2.0 * alpha.ln();
    let rho = TIGHTEST_AT_INTERVALS / (log_term + (1.0 + log_term).ln());
    let v = n + rho;
    (2.0 * v * (((v / rho).sqrt() / (2.0 * alpha)) + 1.0).ln()).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_outlier_never_proves_a_regression_however_large() {
        // One canary-only burst among quiet intervals: its studentised mean is
        // at most 1 whatever its size, far below any boundary.
        for n in [6, 10, 20, 40] {
            for size in [0.01, 0.2, 1.0] {
                let mut values = vec![0.0; n - 1];
                values.push(size);
                let s = MeanSummary::of(&values, 0.0);
                assert!(s.lower(0.05) < 0.0, "n {n}, size {size}: {s:?}");
            }
        }
    }

    #[test]
    fn variance_at_the_floor_is_known_and_only_the_excess_is_widened() {
        // Alternating values whose variance is under the floor: the floor is the spread,
        // nothing was estimated, so no small-sample widening.
        let quiet = [0.01, -0.01, 0.01, -0.01, 0.01, -0.01, 0.01, -0.01];
        let s = MeanSummary::of(&quiet, 0.0004);
        assert!((s.spread - 0.02).abs() < 1e-12, "{s:?}");
        assert_eq!(s.estimated_share, 0.0);
        // Far above the floor: almost all of it was estimated.
        let loud = [0.1, -0.1, 0.1, -0.1, 0.1, -0.1, 0.1, -0.1];
        assert!(MeanSummary::of(&loud, 0.0004).estimated_share > 0.9);
    }

    #[test]
    fn an_excess_that_persists_across_intervals_widens_the_spread() {
        // The same excess, once alternating (no dependence), once in long runs (a slow
        // spell lasting several intervals): the persistent one is worth fewer observations.
        let alternating: Vec<f64> = (0..12)
            .map(|i| if i % 2 == 0 { 0.1 } else { -0.1 })
            .collect();
        let persistent: Vec<f64> = (0..12)
            .map(|i| if i / 4 % 2 == 0 { 0.1 } else { -0.1 })
            .collect();
        let a = MeanSummary::of(&alternating, 0.0);
        let p = MeanSummary::of(&persistent, 0.0);
        assert!(p.spread > 2.0 * a.spread, "{a:?} {p:?}");
    }

    #[test]
    fn the_boundary_is_wider_than_a_fixed_sample_quantile_and_grows_slowly() {
        for n in [1.0, 5.0, 10.0, 50.0, 500.0] {
            // A fixed-n one-sided 95% bound is 1.645 sqrt(n); a time-uniform one must be wider.
            assert!(boundary(n, 0.05) > 1.645 * n.sqrt(), "{n}");
        }
        assert!(boundary(100.0, 0.05) / 100.0 < boundary(10.0, 0.05) / 10.0);
    }

    #[test]
    fn the_floor_keeps_quiet_intervals_from_proving_anything() {
        let s = MeanSummary::of(&[0.0, 0.0, 0.0, 0.0, 0.01], 0.0001);
        assert!(s.spread >= 0.01, "{s:?}");
        assert!(s.lower(0.05) < 0.0);
    }

    #[test]
    fn needed_observations_shrink_the_bound_below_the_target() {
        let s = MeanSummary::of(&[-0.01, 0.0, 0.01, -0.005, 0.005], 0.0);
        let n = s.needed_for_upper_below(0.005, 0.05).expect("reachable");
        let later = MeanSummary { n, ..s };
        assert!(later.upper(0.05) < 0.005);
        let before = MeanSummary { n: n - 1, ..s };
        assert!(before.upper(0.05) >= 0.005);
        assert_eq!(s.needed_for_upper_below(-0.1, 0.05), None);
    }
}
