//! What a histogram's buckets let a latency comparison see.
//!
//! Prometheus' classic histograms count requests at or below each bucket
//! boundary (`le`). Those counts are exact, so "the fraction of requests
//! slower than a boundary" is compared exactly by a Counts comparison. A
//! quantile (`histogram_quantile`) is not: it is only known to lie in the
//! bucket that holds it, and inside that bucket Prometheus interpolates as if
//! requests were spread evenly. A real change of the p99 that stays inside
//! one bucket shows up distorted (often much smaller), so the change a
//! quantile comparison can surely see is the step to the next boundary.

/// Prometheus client libraries' default buckets (seconds).
pub const PROMETHEUS_DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The bucket holding a value and what that means for detecting a change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolution {
    /// Boundaries of the bucket that holds the value: `lower < value <= upper`.
    pub lower: f64,
    pub upper: f64,
    /// Smallest relative increase certain to move the value past `upper`
    /// (and so to change which bucket holds it).
    pub smallest_sure_increase: f64,
}

/// The resolution of `value` under `boundaries` (sorted or not; `+Inf` is implied).
/// `None` when the value is not finite or above the last finite boundary.
pub fn resolution(boundaries: &[f64], value: f64) -> Option<Resolution> {
    if !(value.is_finite() && value > 0.0) {
        return None;
    }
    let mut sorted: Vec<f64> = boundaries
        .iter()
        .copied()
        .filter(|b| b.is_finite())
        .collect();
    sorted.sort_by(f64::total_cmp);
    let index = sorted.iter().position(|b| value <= *b)?;
    let lower = if index == 0 { 0.0 } else { sorted[index - 1] };
    let upper = sorted[index];
    Some(Resolution {
        lower,
        upper,
        smallest_sure_increase: upper / value - 1.0,
    })
}

/// One line for people: "p in (0.25, 0.5]: a change below +67% may not show".
pub fn describe(boundaries: &[f64], value: f64) -> String {
    match resolution(boundaries, value) {
        Some(r) => format!(
            "{value} lies in bucket ({}, {}]: an increase below +{:.0}% may not show in the quantile; compare the slower-than-{} fraction (a Counts comparison) to see it exactly",
            r.lower,
            r.upper,
            r.smallest_sure_increase * 100.0,
            r.upper
        ),
        None => {
            format!("{value} is beyond the last finite bucket: the quantile cannot be resolved")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_p99_inside_a_wide_default_bucket_hides_changes_below_the_next_boundary() {
        let r = resolution(&PROMETHEUS_DEFAULT_BUCKETS, 0.3).expect("in a bucket");
        assert_eq!((r.lower, r.upper), (0.25, 0.5));
        assert!((r.smallest_sure_increase - 2.0 / 3.0).abs() < 1e-9, "{r:?}");
        // A value on a boundary belongs to that bucket (le is "less or equal").
        let r = resolution(&PROMETHEUS_DEFAULT_BUCKETS, 0.25).expect("in a bucket");
        assert_eq!((r.lower, r.upper), (0.1, 0.25));
    }

    #[test]
    fn values_outside_the_buckets_have_no_resolution() {
        assert_eq!(resolution(&PROMETHEUS_DEFAULT_BUCKETS, 12.0), None);
        assert_eq!(resolution(&PROMETHEUS_DEFAULT_BUCKETS, f64::NAN), None);
        assert!(describe(&PROMETHEUS_DEFAULT_BUCKETS, 12.0).contains("cannot be resolved"));
    }
}
