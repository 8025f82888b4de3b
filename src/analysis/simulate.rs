//! Synthetic canary/baseline traffic for measuring the judge: the shapes
//! production has (bursty errors per arm or shared, low and unequal traffic,
//! heavy-tailed and autocorrelated latency, overlapping windows, drift, late
//! regressions, missing scrapes), turned into exactly what the controller
//! would measure per interval. Used by `benches/judge.rs` and by the seeded
//! statistical tests, so the guarantees are guarded in `cargo test`.

use super::judge::CountsInterval;
use super::judge::buckets::PROMETHEUS_DEFAULT_BUCKETS;

/// Error bursts: while one lasts, the arm's error rate is `rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bursts {
    /// Mean seconds between burst starts (exponential gaps).
    pub every: f64,
    pub length: f64,
    pub rate: f64,
    /// Both arms burst together (a shared dependency) instead of independently.
    pub shared: bool,
}

/// One scenario of error traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorTraffic {
    pub canary_rps: f64,
    pub baseline_rps: f64,
    pub interval: f64,
    pub intervals: usize,
    pub baseline_rate: f64,
    /// Canary error rate = baseline rate × this, from `regression_from` seconds on.
    pub canary_factor: f64,
    pub regression_from: f64,
    pub bursts: Option<Bursts>,
    /// Both arms' base rate multiplied by `1 + drift * t / total` (a slow shared change).
    pub drift: f64,
    /// Chance that an interval's measurement of one arm is missing.
    pub gaps: f64,
}

impl Default for ErrorTraffic {
    fn default() -> Self {
        ErrorTraffic {
            canary_rps: 20.0,
            baseline_rps: 20.0,
            interval: 30.0,
            intervals: 20,
            baseline_rate: 0.01,
            canary_factor: 1.0,
            regression_from: 0.0,
            bursts: None,
            drift: 0.0,
            gaps: 0.0,
        }
    }
}

pub fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = rng.f64().max(f64::MIN_POSITIVE);
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

pub fn poisson(rng: &mut fastrand::Rng, mean: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    if mean > 40.0 {
        return (mean + normal(rng) * mean.sqrt()).round().max(0.0);
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

fn binomial(rng: &mut fastrand::Rng, n: f64, p: f64) -> f64 {
    if n < 60.0 {
        return (0..n as usize).filter(|_| rng.f64() < p).count() as f64;
    }
    poisson(rng, n * p).min(n)
}

/// Burst windows `[start, end)` over `total` seconds.
fn burst_windows(rng: &mut fastrand::Rng, b: &Bursts, total: f64) -> Vec<(f64, f64)> {
    let mut windows = Vec::new();
    // Start in the middle of the process, as a rollout does.
    let mut t = -rng.f64() * b.every;
    while t < total {
        t += -b.every * (1.0 - rng.f64()).ln();
        windows.push((t, t + b.length));
    }
    windows
}

/// Seconds of `[from, to)` covered by `windows`.
fn covered(windows: &[(f64, f64)], from: f64, to: f64) -> f64 {
    windows
        .iter()
        .map(|(s, e)| (e.min(to) - s.max(from)).max(0.0))
        .sum()
}

/// One run: what the controller would measure in each interval.
pub fn error_run(rng: &mut fastrand::Rng, t: &ErrorTraffic) -> Vec<CountsInterval> {
    let total = t.interval * t.intervals as f64;
    let (canary_bursts, baseline_bursts) = match &t.bursts {
        None => (Vec::new(), Vec::new()),
        Some(b) if b.shared => {
            let w = burst_windows(rng, b, total);
            (w.clone(), w)
        }
        Some(b) => (burst_windows(rng, b, total), burst_windows(rng, b, total)),
    };
    let burst_rate = t.bursts.map(|b| b.rate).unwrap_or(0.0);
    (0..t.intervals)
        .map(|i| {
            let (from, to) = (i as f64 * t.interval, (i + 1) as f64 * t.interval);
            let drift = 1.0 + t.drift * (from + to) / 2.0 / total;
            let base = (t.baseline_rate * drift).min(1.0);
            // Share of the interval after the regression started.
            let regressed = ((to - t.regression_from.max(from)) / t.interval).clamp(0.0, 1.0);
            let canary_base = base * (1.0 + (t.canary_factor - 1.0) * regressed);
            let arm = |rng: &mut fastrand::Rng, rps: f64, rate: f64, bursts: &[(f64, f64)]| {
                let burst_share = covered(bursts, from, to) / t.interval;
                let rate = (rate * (1.0 - burst_share) + burst_rate * burst_share).min(1.0);
                let requests = poisson(rng, rps * t.interval);
                let errors = binomial(rng, requests, rate);
                if rng.f64() < t.gaps {
                    (f64::NAN, 0.0)
                } else {
                    (errors, requests)
                }
            };
            let (ce, cx) = arm(rng, t.canary_rps, canary_base.min(1.0), &canary_bursts);
            let (be, bx) = arm(rng, t.baseline_rps, base, &baseline_bursts);
            CountsInterval {
                canary_events: ce,
                canary_exposure: cx,
                baseline_events: be,
                baseline_exposure: bx,
            }
        })
        .collect()
}

/// One scenario of latency traffic, measured as a histogram quantile.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyTraffic {
    pub rps: f64,
    pub interval: f64,
    pub intervals: usize,
    /// Median latency (seconds) of the baseline.
    pub median: f64,
    /// Log-normal spread; a Pareto tail is mixed in for `tail_share` of requests.
    pub sigma: f64,
    pub tail_share: f64,
    /// Canary latencies multiplied by this.
    pub canary_factor: f64,
    /// Per-arm slowdown that persists across intervals (AR(1) on the log scale).
    pub autocorrelation: f64,
    pub slowdown_spread: f64,
    /// Query window in intervals: 1 is the interval alone; 2 overlaps the previous one.
    pub window: usize,
    pub quantile: f64,
}

impl Default for LatencyTraffic {
    fn default() -> Self {
        LatencyTraffic {
            rps: 20.0,
            interval: 30.0,
            intervals: 20,
            median: 0.1,
            sigma: 0.6,
            tail_share: 0.02,
            canary_factor: 1.0,
            autocorrelation: 0.0,
            slowdown_spread: 0.0,
            window: 1,
            quantile: 0.99,
        }
    }
}

/// Prometheus' `histogram_quantile` over cumulative bucket counts (`+Inf` last).
pub fn histogram_quantile(q: f64, boundaries: &[f64], cumulative: &[f64]) -> f64 {
    let total = cumulative.last().copied().unwrap_or(0.0);
    if total <= 0.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let index = cumulative.iter().position(|c| *c >= rank).unwrap_or(0);
    if index >= boundaries.len() {
        // In the +Inf bucket: Prometheus returns the last finite boundary.
        return boundaries.last().copied().unwrap_or(f64::NAN);
    }
    let (lower, below) = if index == 0 {
        (0.0, 0.0)
    } else {
        (boundaries[index - 1], cumulative[index - 1])
    };
    let upper = boundaries[index];
    let in_bucket = cumulative[index] - below;
    if in_bucket <= 0.0 {
        return upper;
    }
    lower + (upper - lower) * (rank - below) / in_bucket
}

/// Per-interval bucket counts (not cumulative) of one arm, `+Inf` last.
fn latency_buckets(rng: &mut fastrand::Rng, t: &LatencyTraffic, factor: f64) -> Vec<f64> {
    let boundaries = &PROMETHEUS_DEFAULT_BUCKETS;
    let mut counts = vec![0.0; boundaries.len() + 1];
    let requests = poisson(rng, t.rps * t.interval) as usize;
    for _ in 0..requests {
        let mut latency = t.median * factor * (t.sigma * normal(rng)).exp();
        if rng.f64() < t.tail_share {
            // Pareto tail (shape 1.5) starting at the p99 of the body.
            latency *= 2.0 * (1.0 - rng.f64()).max(1e-12).powf(-1.0 / 1.5);
        }
        let index = boundaries
            .iter()
            .position(|b| latency <= *b)
            .unwrap_or(boundaries.len());
        counts[index] += 1.0;
    }
    counts
}

/// One run of latency: per interval, the canary's and baseline's quantile, and
/// the slower-than-`boundary` counts (events, requests) of each arm.
pub struct LatencyRun {
    pub canary: Vec<f64>,
    pub baseline: Vec<f64>,
    pub slow: Vec<CountsInterval>,
}

pub fn latency_run(rng: &mut fastrand::Rng, t: &LatencyTraffic, boundary: f64) -> LatencyRun {
    let boundaries = &PROMETHEUS_DEFAULT_BUCKETS;
    let slow_from = boundaries
        .iter()
        .position(|b| *b >= boundary)
        .map(|i| i + 1)
        .unwrap_or(boundaries.len());
    let mut slowdown = [0.0f64; 2];
    let mut history: [Vec<Vec<f64>>; 2] = [Vec::new(), Vec::new()];
    let mut run = LatencyRun {
        canary: Vec::new(),
        baseline: Vec::new(),
        slow: Vec::new(),
    };
    let innovation = (1.0 - t.autocorrelation.powi(2)).max(0.0).sqrt();
    for _ in 0..t.intervals {
        let mut quantiles = [0.0; 2];
        let mut slow = [(0.0, 0.0); 2];
        for (arm, (level, past)) in slowdown.iter_mut().zip(history.iter_mut()).enumerate() {
            *level = t.autocorrelation * *level + innovation * t.slowdown_spread * normal(rng);
            let factor = level.exp() * if arm == 0 { t.canary_factor } else { 1.0 };
            past.push(latency_buckets(rng, t, factor));
            // The query's window: this interval and, when overlapping, the ones before it.
            let window = &past[past.len().saturating_sub(t.window.max(1))..];
            let mut summed = vec![0.0; boundaries.len() + 1];
            for counts in window {
                for (s, c) in summed.iter_mut().zip(counts) {
                    *s += c;
                }
            }
            let last = window.last().map(Vec::as_slice).unwrap_or_default();
            slow[arm] = (
                last.get(slow_from..).unwrap_or_default().iter().sum(),
                last.iter().sum(),
            );
            let cumulative: Vec<f64> = summed
                .iter()
                .scan(0.0, |acc, c| {
                    *acc += c;
                    Some(*acc)
                })
                .collect();
            quantiles[arm] = histogram_quantile(t.quantile, boundaries, &cumulative);
        }
        run.canary.push(quantiles[0]);
        run.baseline.push(quantiles[1]);
        run.slow.push(CountsInterval {
            canary_events: slow[0].0,
            canary_exposure: slow[0].1,
            baseline_events: slow[1].0,
            baseline_exposure: slow[1].1,
        });
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantile_interpolates_inside_the_bucket_like_prometheus() {
        // 100 requests: 50 at or below 0.1, 100 at or below 0.25: p75 is halfway into (0.1, 0.25].
        let q = histogram_quantile(0.75, &[0.1, 0.25], &[50.0, 100.0, 100.0]);
        assert!((q - 0.175).abs() < 1e-12, "{q}");
    }

    #[test]
    fn error_runs_have_the_asked_rates_on_average() {
        let mut rng = fastrand::Rng::with_seed(1);
        let traffic = ErrorTraffic {
            canary_factor: 2.0,
            intervals: 200,
            ..Default::default()
        };
        let run = error_run(&mut rng, &traffic);
        let rate = |e: f64, x: f64| e / x;
        let c = rate(
            run.iter().map(|i| i.canary_events).sum(),
            run.iter().map(|i| i.canary_exposure).sum(),
        );
        let b = rate(
            run.iter().map(|i| i.baseline_events).sum(),
            run.iter().map(|i| i.baseline_exposure).sum(),
        );
        assert!(
            (c - 0.02).abs() < 0.003 && (b - 0.01).abs() < 0.002,
            "{c} {b}"
        );
    }
}
