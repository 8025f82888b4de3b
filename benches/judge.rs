//! The judge against the two methods users know, on the same synthetic streams.
//!
//! `cargo bench --bench judge` replays canary/baseline streams: 30 s
//! intervals at 200 requests/s, the canary at the default steps' shares (10%
//! for 4 intervals, 25% for 4, 50% for 4). A/A streams have no difference;
//! A/B streams carry a known regression (error rate 1% → 2%, or p99 +20%).
//! For each method it prints the false-abort rate on A/A and, on A/B, how
//! often and how soon (median interval) the regression is caught:
//!
//! - Sluice: the sequential judge, consulted after every interval;
//! - threshold (Flagger's method): the canary's own error rate above 1.5%
//!   (p99 above 240 ms, 1.2 × the nominal 200 ms) in an interval is a failed
//!   check; two failed checks abort;
//! - fixed-horizon Mann-Whitney (Kayenta's method): per-interval values of
//!   canary and baseline compared once, after the 12th interval, one-sided at
//!   alpha 0.05; and the same test peeked at after every interval, to show
//!   what looking early does to a fixed-horizon test.

use std::time::Instant;

use sluice::analysis::judge::{
    CountsInterval, Decision, Direction, JudgeConfig, Tolerance, judge_counts, judge_samples,
    mann_whitney,
};
use statrs::distribution::{ContinuousCDF, Normal};

const STREAMS: usize = 1000;
const INTERVALS: usize = 12;
const RPS: f64 = 200.0;
const INTERVAL_SECONDS: f64 = 30.0;
const STEPS_PER_INTERVAL: usize = 6; // range-query points per interval (5 s step)
const ALPHA: f64 = 0.05;

fn share(interval: usize) -> f64 {
    match interval {
        0..4 => 0.10,
        4..8 => 0.25,
        _ => 0.50,
    }
}

fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = rng.f64().max(f64::MIN_POSITIVE);
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn poisson(rng: &mut fastrand::Rng, mean: f64) -> f64 {
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

struct ErrorStream {
    intervals: Vec<CountsInterval>,
}

fn error_stream(rng: &mut fastrand::Rng, canary_rate: f64, baseline_rate: f64) -> ErrorStream {
    let intervals = (0..INTERVALS)
        .map(|i| {
            let total = RPS * INTERVAL_SECONDS;
            let (cx, bx) = (total * share(i), total * (1.0 - share(i)));
            CountsInterval {
                canary_events: poisson(rng, cx * canary_rate),
                canary_exposure: cx,
                baseline_events: poisson(rng, bx * baseline_rate),
                baseline_exposure: bx,
            }
        })
        .collect();
    ErrorStream { intervals }
}

/// p99 per range-query point; its noise shrinks with the requests behind it.
struct LatencyStream {
    canary: Vec<Vec<f64>>,
    baseline: Vec<Vec<f64>>,
}

fn latency_stream(rng: &mut fastrand::Rng, canary_factor: f64) -> LatencyStream {
    let mut canary = Vec::new();
    let mut baseline = Vec::new();
    for i in 0..INTERVALS {
        let per_step = RPS * INTERVAL_SECONDS / STEPS_PER_INTERVAL as f64;
        let noise = |n: f64| 0.25 / (n / 100.0).sqrt();
        let (nc, nb) = (per_step * share(i), per_step * (1.0 - share(i)));
        canary.push(
            (0..STEPS_PER_INTERVAL)
                .map(|_| 0.2 * canary_factor * (noise(nc) * normal(rng)).exp())
                .collect(),
        );
        baseline.push(
            (0..STEPS_PER_INTERVAL)
                .map(|_| 0.2 * (noise(nb) * normal(rng)).exp())
                .collect(),
        );
    }
    LatencyStream { canary, baseline }
}

fn config() -> JudgeConfig {
    JudgeConfig {
        direction: Direction::Increase,
        // No tolerance: the same null hypothesis ("no worse at all") as the
        // Mann-Whitney rows; templates in production add a practical margin.
        tolerance: Tolerance {
            relative: 0.0,
            absolute: 0.0,
        },
        alpha: ALPHA,
        beta: ALPHA,
    }
}

/// First interval (1-based) at which each method aborts, if it does.
type Detector<S> = fn(&S) -> Option<usize>;

fn sluice_errors(s: &ErrorStream) -> Option<usize> {
    (1..=INTERVALS)
        .find(|&k| judge_counts(&s.intervals[..k], &config()).decision == Decision::Worse)
}

fn threshold_errors(s: &ErrorStream) -> Option<usize> {
    let mut failed = 0;
    for (i, interval) in s.intervals.iter().enumerate() {
        if interval.canary_events / interval.canary_exposure > 0.015 {
            failed += 1;
            if failed >= 2 {
                return Some(i + 1);
            }
        }
    }
    None
}

fn one_sided_p(canary: &[f64], baseline: &[f64]) -> f64 {
    let (_, z) = mann_whitney(canary, baseline);
    1.0 - Normal::standard().cdf(z)
}

fn error_ratios(s: &ErrorStream, k: usize) -> (Vec<f64>, Vec<f64>) {
    s.intervals[..k]
        .iter()
        .map(|i| {
            (
                i.canary_events / i.canary_exposure,
                i.baseline_events / i.baseline_exposure,
            )
        })
        .unzip()
}

fn fixed_mw_errors(s: &ErrorStream) -> Option<usize> {
    let (c, b) = error_ratios(s, INTERVALS);
    (one_sided_p(&c, &b) < ALPHA).then_some(INTERVALS)
}

fn peeking_mw_errors(s: &ErrorStream) -> Option<usize> {
    (2..=INTERVALS).find(|&k| {
        let (c, b) = error_ratios(s, k);
        one_sided_p(&c, &b) < ALPHA
    })
}

fn flat(values: &[Vec<f64>], k: usize) -> Vec<f64> {
    values[..k].iter().flatten().copied().collect()
}

fn sluice_latency(s: &LatencyStream) -> Option<usize> {
    (1..=INTERVALS).find(|&k| {
        judge_samples(&flat(&s.canary, k), &flat(&s.baseline, k), &config()).decision
            == Decision::Worse
    })
}

fn threshold_latency(s: &LatencyStream) -> Option<usize> {
    let mut failed = 0;
    for (i, values) in s.canary.iter().enumerate() {
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        if sorted[sorted.len() / 2] > 0.24 {
            failed += 1;
            if failed >= 2 {
                return Some(i + 1);
            }
        }
    }
    None
}

fn fixed_mw_latency(s: &LatencyStream) -> Option<usize> {
    (one_sided_p(&flat(&s.canary, INTERVALS), &flat(&s.baseline, INTERVALS)) < ALPHA)
        .then_some(INTERVALS)
}

fn peeking_mw_latency(s: &LatencyStream) -> Option<usize> {
    (1..=INTERVALS).find(|&k| one_sided_p(&flat(&s.canary, k), &flat(&s.baseline, k)) < ALPHA)
}

struct Row {
    aborts: usize,
    median_interval: Option<usize>,
}

fn evaluate<S>(streams: &[S], detector: Detector<S>) -> Row {
    let mut hits: Vec<usize> = streams.iter().filter_map(detector).collect();
    hits.sort_unstable();
    Row {
        aborts: hits.len(),
        median_interval: hits.get(hits.len() / 2).copied(),
    }
}

fn print_row(method: &str, a_a: &Row, a_b: &Row) {
    let median = a_b
        .median_interval
        .map(|m| format!("{m} ({} s)", m as f64 * INTERVAL_SECONDS))
        .unwrap_or_else(|| "-".into());
    println!(
        "| {method:<34} | {:>5.1}% | {:>5.1}% | {median:>10} |",
        100.0 * a_a.aborts as f64 / STREAMS as f64,
        100.0 * a_b.aborts as f64 / STREAMS as f64,
    );
}

fn main() {
    println!("# cargo bench --bench judge");
    println!(
        "{STREAMS} streams per scenario, {INTERVALS} intervals of {INTERVAL_SECONDS} s, {RPS} req/s, canary at 10/25/50%, alpha {ALPHA}\n"
    );
    let mut rng = fastrand::Rng::with_seed(42);
    let aa: Vec<ErrorStream> = (0..STREAMS)
        .map(|_| error_stream(&mut rng, 0.01, 0.01))
        .collect();
    let ab: Vec<ErrorStream> = (0..STREAMS)
        .map(|_| error_stream(&mut rng, 0.02, 0.01))
        .collect();
    println!("Error rate 1% -> 2%");
    println!(
        "| method                             | A/A false aborts | A/B caught | median interval caught |"
    );
    println!("|---|---|---|---|");
    let methods: [(&str, Detector<ErrorStream>); 4] = [
        ("Sluice sequential (every interval)", sluice_errors),
        ("threshold 1.5%, 2 failed checks", threshold_errors),
        ("Mann-Whitney, fixed horizon", fixed_mw_errors),
        ("Mann-Whitney, peeking every interval", peeking_mw_errors),
    ];
    for (name, detector) in methods {
        print_row(name, &evaluate(&aa, detector), &evaluate(&ab, detector));
    }

    let aa: Vec<LatencyStream> = (0..STREAMS)
        .map(|_| latency_stream(&mut rng, 1.0))
        .collect();
    let ab: Vec<LatencyStream> = (0..STREAMS)
        .map(|_| latency_stream(&mut rng, 1.2))
        .collect();
    println!("\np99 latency +20% (200 ms -> 240 ms)");
    println!(
        "| method                             | A/A false aborts | A/B caught | median interval caught |"
    );
    println!("|---|---|---|---|");
    let methods: [(&str, Detector<LatencyStream>); 4] = [
        ("Sluice sequential (every interval)", sluice_latency),
        ("threshold 240 ms, 2 failed checks", threshold_latency),
        ("Mann-Whitney, fixed horizon", fixed_mw_latency),
        ("Mann-Whitney, peeking every interval", peeking_mw_latency),
    ];
    for (name, detector) in methods {
        print_row(name, &evaluate(&aa, detector), &evaluate(&ab, detector));
    }

    // Cost of one decision with a full history.
    let stream = error_stream(&mut rng, 0.01, 0.01);
    let started = Instant::now();
    let calls = 20_000;
    for _ in 0..calls {
        std::hint::black_box(judge_counts(
            std::hint::black_box(&stream.intervals),
            &config(),
        ));
    }
    let counts_us = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
    let latency = latency_stream(&mut rng, 1.0);
    let (c, b) = (
        flat(&latency.canary, INTERVALS),
        flat(&latency.baseline, INTERVALS),
    );
    let started = Instant::now();
    let calls = 2_000;
    for _ in 0..calls {
        std::hint::black_box(judge_samples(&c, &b, &config()));
    }
    let samples_us = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
    println!(
        "\njudge_counts with {INTERVALS} intervals: {counts_us:.1} µs per call; judge_samples with {} pairs: {samples_us:.0} µs per call",
        c.len()
    );
}
