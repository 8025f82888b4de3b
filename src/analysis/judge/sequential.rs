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
//! The plug-in variance is never below a floor the caller supplies (for
//! counts: what Poisson noise alone would give), because a handful of quiet
//! intervals can otherwise estimate a variance near zero and turn one stray
//! error into "proof".

use statrs::distribution::{ContinuousCDF, Normal};

/// Intrinsic time (in intervals) at which the boundary is tightest. Chosen
/// with the bench: canaries are judged for roughly 5-20 intervals.
const TIGHTEST_AT_INTERVALS: f64 = 8.0;

/// Summary of the observations so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanSummary {
    pub n: usize,
    pub mean: f64,
    /// Standard deviation of one observation (sample estimate, floored).
    pub spread: f64,
}

impl MeanSummary {
    /// Mean and floored spread of `values`; `floor_variance` is the smallest
    /// variance of one observation the caller believes possible.
    pub fn of(values: &[f64], floor_variance: f64) -> MeanSummary {
        let n = values.len();
        if n == 0 {
            return MeanSummary {
                n,
                mean: f64::NAN,
                spread: f64::NAN,
            };
        }
        let count = n as f64;
        let mean = values.iter().sum::<f64>() / count;
        let sample_variance = if n > 1 {
            let deviations: Vec<f64> = values.iter().map(|v| v - mean).collect();
            let lag0 = deviations.iter().map(|d| d * d).sum::<f64>() / (count - 1.0);
            // Neighbouring intervals share what straddles their boundary (a burst,
            // a slow minute): a Newey-West term adds their positive covariance.
            let lag1 = deviations.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / (count - 1.0);
            lag0 + lag1.max(0.0)
        } else {
            0.0
        };
        MeanSummary {
            n,
            mean,
            spread: sample_variance.max(floor_variance).max(0.0).sqrt(),
        }
    }

    /// Half-width of the one-sided bound at level `alpha` (infinite when it cannot be computed).
    pub fn margin(&self, alpha: f64) -> f64 {
        if self.n == 0 || !self.spread.is_finite() || !(alpha > 0.0 && alpha < 1.0) {
            return f64::INFINITY;
        }
        self.spread * small_sample_factor(self.n, alpha) * boundary(self.n as f64, alpha)
            / self.n as f64
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
        let fits = |n: f64| {
            self.spread * small_sample_factor(n as usize, alpha) * boundary(n, alpha) / n < gap
        };
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
    fn a_single_outlier_gives_a_studentised_mean_of_one() {
        // One canary-only burst among quiet intervals: mean / (sd / sqrt n) is exactly 1,
        // far below any boundary, so a lone burst can never prove a regression.
        let mut values = vec![0.0; 9];
        values.push(0.2);
        let s = MeanSummary::of(&values, 0.0);
        let studentised = s.mean / (s.spread / (s.n as f64).sqrt());
        assert!((studentised - 1.0).abs() < 1e-9, "{studentised}");
        assert!(s.lower(0.05) < 0.0);
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
        assert!((s.spread - 0.01).abs() < 1e-12, "{s:?}");
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
