//! The judge against the two methods users know, on traffic shaped like production.
//!
//! `cargo bench --bench judge` generates canary/baseline runs with
//! `sluice::analysis::simulate` (bursty errors per arm and shared, low and
//! unequal traffic, drift, missing scrapes, late regressions, better canaries,
//! heavy-tailed, autocorrelated and overlapping-window latency) and replays
//! each through:
//!
//! - Sluice: the judge consulted after every 30 s interval, with the stock
//!   templates' settings (confidence 0.95, default minimum exposure);
//! - threshold (Flagger's method): the canary's own error rate over each
//!   minute above 1.5% (p99 above 1.2 × the healthy p99) is a failed check;
//!   two failed checks abort; otherwise it passes at the end;
//! - fixed-horizon Mann-Whitney (Kayenta's method): per-interval values of
//!   canary and baseline compared once, at the end, one-sided at 0.05.
//!
//! Per scenario and method it prints the false-abort rate (canary not worse),
//! the false-pass and detection rates (canary worse), the share left
//! Inconclusive and the median time to a verdict, with Wilson 95% intervals.
//! `SLUICE_BENCH_RUNS` sets the runs per scenario (default 600).

use std::time::Duration;

use sluice::analysis::judge::buckets::{PROMETHEUS_DEFAULT_BUCKETS, describe};
use sluice::analysis::judge::{
    CountsInterval, DEFAULT_MINIMUM, Decision, Direction, JudgeConfig, Tolerance, judge_counts,
    judge_samples, mann_whitney,
};
use sluice::analysis::simulate::{Bursts, ErrorTraffic, LatencyTraffic, error_run, latency_run};
use statrs::distribution::{ContinuousCDF, Normal};

const ALPHA: f64 = 0.05;
const INTERVAL: f64 = 30.0;
/// The stock error-rate template's tolerance (analysis-templates/error-rate-vs-baseline.yaml).
const ERROR_TOLERANCE: Tolerance = Tolerance {
    relative: 0.25,
    absolute: 0.002,
};
/// The stock p99 template's tolerance (analysis-templates/latency-p99-vs-baseline.yaml).
const LATENCY_TOLERANCE: Tolerance = Tolerance {
    relative: 0.1,
    absolute: 0.005,
};
/// The slower-than boundary of the latency-slow-requests template.
const SLOW_BOUNDARY: f64 = 0.25;

/// How one run ended: the interval (1-based) of the verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
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

fn sluice_counts(run: &[CountsInterval], tolerance: Tolerance) -> Verdict {
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

fn sluice_samples(canary: &[f64], baseline: &[f64]) -> Verdict {
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
fn threshold(values: &[Option<f64>], limit: f64) -> Verdict {
    let mut failed = 0;
    for (i, value) in values.iter().enumerate() {
        if value.is_some_and(|v| v > limit) {
            failed += 1;
            if failed >= 2 {
                return Verdict::Abort(i);
            }
        }
    }
    Verdict::Pass(values.len())
}

/// The canary's own error rate per minute (pairs of intervals).
fn minute_rates(run: &[CountsInterval]) -> Vec<Option<f64>> {
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

fn mann_whitney_fixed(canary: &[f64], baseline: &[f64], horizon: usize) -> Verdict {
    let (c, b): (Vec<f64>, Vec<f64>) = canary
        .iter()
        .zip(baseline)
        .filter(|(c, b)| c.is_finite() && b.is_finite())
        .map(|(c, b)| (*c, *b))
        .unzip();
    let (_, z) = mann_whitney(&c, &b);
    if 1.0 - Normal::standard().cdf(z) < ALPHA {
        Verdict::Abort(horizon)
    } else {
        Verdict::Pass(horizon)
    }
}

fn rates(run: &[CountsInterval]) -> (Vec<f64>, Vec<f64>) {
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

/// Wilson score interval for `hits` of `n`, as "r% [lo–hi]".
fn wilson(hits: usize, n: usize) -> String {
    if n == 0 {
        return "–".into();
    }
    let (k, n) = (hits as f64, n as f64);
    let z = 1.959_964;
    let p = k / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    format!(
        "{:.1}% [{:.1}–{:.1}]",
        100.0 * p,
        100.0 * (centre - half).max(0.0),
        100.0 * (centre + half).min(1.0)
    )
}

#[derive(Default)]
struct Tally {
    aborts: usize,
    passes: usize,
    inconclusive: usize,
    times: Vec<usize>,
}

impl Tally {
    fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Abort(k) => {
                self.aborts += 1;
                self.times.push(k);
            }
            Verdict::Pass(k) => {
                self.passes += 1;
                self.times.push(k);
            }
            Verdict::Inconclusive => self.inconclusive += 1,
        }
    }

    fn median_minutes(&mut self) -> String {
        if self.times.is_empty() {
            return "–".into();
        }
        self.times.sort_unstable();
        let k = self.times[self.times.len() / 2];
        format!("{:.1} min", k as f64 * INTERVAL / 60.0)
    }
}

/// What the goals need from the table.
#[derive(Default)]
struct Goals {
    sluice_false_aborts_max: f64,
    sluice_false_passes_max: f64,
    failures: Vec<String>,
}

fn print_row(scenario: &str, method: &str, worse: bool, runs: usize, t: &mut Tally) {
    let (false_aborts, false_passes, detection) = if worse {
        ("–".into(), wilson(t.passes, runs), wilson(t.aborts, runs))
    } else {
        (wilson(t.aborts, runs), "–".into(), "–".into())
    };
    println!(
        "| {scenario} | {method} | {false_aborts} | {false_passes} | {detection} | {} | {} |",
        wilson(t.inconclusive, runs),
        t.median_minutes()
    );
}

type Methods<'a, R> = Vec<(&'a str, Box<dyn Fn(&R) -> Verdict + 'a>)>;

/// Run `runs` seeded runs of a scenario through every method and print its rows.
fn scenario<R>(
    goals: &mut Goals,
    name: &str,
    worse: bool,
    runs: usize,
    seed: u64,
    generate: impl Fn(&mut fastrand::Rng) -> R,
    methods: Methods<'_, R>,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let generated: Vec<R> = (0..runs).map(|_| generate(&mut rng)).collect();
    for (method, judge) in &methods {
        let mut tally = Tally::default();
        for run in &generated {
            tally.add(judge(run));
        }
        if method.starts_with("Sluice") {
            let rate = |k: usize| k as f64 / runs as f64;
            if worse {
                goals.sluice_false_passes_max =
                    goals.sluice_false_passes_max.max(rate(tally.passes));
                if rate(tally.passes) > ALPHA {
                    goals
                        .failures
                        .push(format!("{name}: {method} passes a worse canary"));
                }
            } else {
                goals.sluice_false_aborts_max =
                    goals.sluice_false_aborts_max.max(rate(tally.aborts));
                if rate(tally.aborts) > ALPHA {
                    goals
                        .failures
                        .push(format!("{name}: {method} aborts a healthy canary"));
                }
            }
        }
        print_row(name, method, worse, runs, &mut tally);
    }
}

fn error_methods<'a>(tolerance: Tolerance) -> Methods<'a, Vec<CountsInterval>> {
    vec![
        (
            "Sluice",
            Box::new(move |run: &Vec<CountsInterval>| sluice_counts(run, tolerance)),
        ),
        (
            "threshold 1.5%",
            Box::new(|run: &Vec<CountsInterval>| threshold(&minute_rates(run), 0.015)),
        ),
        (
            "Mann-Whitney, fixed",
            Box::new(|run: &Vec<CountsInterval>| {
                let (c, b) = rates(run);
                mann_whitney_fixed(&c, &b, run.len())
            }),
        ),
    ]
}

fn main() {
    let runs: usize = std::env::var("SLUICE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let started = std::time::Instant::now();
    println!("# cargo bench --bench judge");
    println!(
        "{runs} runs per scenario, 30 s intervals, 20 intervals (10 min) unless noted, alpha {ALPHA}; \
         Sluice with tolerance +{:.0}% / +{} (errors), +{:.0}% / +{} s (p99), minimum {} intervals, {} s, {} requests per arm\n",
        ERROR_TOLERANCE.relative * 100.0,
        ERROR_TOLERANCE.absolute,
        LATENCY_TOLERANCE.relative * 100.0,
        LATENCY_TOLERANCE.absolute,
        DEFAULT_MINIMUM.intervals,
        DEFAULT_MINIMUM.duration.as_secs(),
        DEFAULT_MINIMUM.exposure
    );
    println!(
        "| scenario | method | false aborts | false passes | detection | inconclusive | median time to verdict |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut goals = Goals::default();
    let per_arm = |burst_every: f64, shared: bool| Bursts {
        every: burst_every,
        length: 30.0,
        rate: 0.2,
        shared,
    };
    let error_scenarios: Vec<(&str, bool, ErrorTraffic)> = vec![
        ("A/A 1%, 20 req/s", false, ErrorTraffic::default()),
        (
            "A/A 1%, 200 req/s",
            false,
            ErrorTraffic {
                canary_rps: 200.0,
                baseline_rps: 200.0,
                ..Default::default()
            },
        ),
        (
            "A/A, bursts per arm (30 s at 20% every ~3 min)",
            false,
            ErrorTraffic {
                bursts: Some(per_arm(180.0, false)),
                ..Default::default()
            },
        ),
        (
            "A/A, shared bursts",
            false,
            ErrorTraffic {
                bursts: Some(per_arm(180.0, true)),
                ..Default::default()
            },
        ),
        (
            "A/A, drift 1% → 3% on both arms",
            false,
            ErrorTraffic {
                drift: 2.0,
                ..Default::default()
            },
        ),
        (
            "A/A, unequal arms 2 vs 38 req/s, 10% missing scrapes",
            false,
            ErrorTraffic {
                canary_rps: 2.0,
                baseline_rps: 38.0,
                gaps: 0.1,
                ..Default::default()
            },
        ),
        (
            "better canary 1% → 0.5%",
            false,
            ErrorTraffic {
                canary_factor: 0.5,
                ..Default::default()
            },
        ),
        (
            "worse 1% → 2%, 20 req/s",
            true,
            ErrorTraffic {
                canary_factor: 2.0,
                ..Default::default()
            },
        ),
        (
            "worse 1% → 2%, 200 req/s",
            true,
            ErrorTraffic {
                canary_rps: 200.0,
                baseline_rps: 200.0,
                canary_factor: 2.0,
                ..Default::default()
            },
        ),
        (
            "worse 1% → 2%, bursts per arm",
            true,
            ErrorTraffic {
                canary_factor: 2.0,
                bursts: Some(per_arm(180.0, false)),
                ..Default::default()
            },
        ),
        (
            "worse 1% → 2%, 10% missing scrapes",
            true,
            ErrorTraffic {
                canary_factor: 2.0,
                gaps: 0.1,
                ..Default::default()
            },
        ),
        (
            "worse 10× at 0.2 req/s",
            true,
            ErrorTraffic {
                canary_rps: 0.2,
                baseline_rps: 0.2,
                canary_factor: 10.0,
                ..Default::default()
            },
        ),
        (
            "worse 1% → 3% from minute 4",
            true,
            ErrorTraffic {
                canary_factor: 3.0,
                regression_from: 240.0,
                ..Default::default()
            },
        ),
    ];
    for (i, (name, worse, traffic)) in error_scenarios.into_iter().enumerate() {
        scenario(
            &mut goals,
            name,
            worse,
            runs,
            100 + i as u64,
            move |rng| error_run(rng, &traffic),
            error_methods(ERROR_TOLERANCE),
        );
    }

    // Latency: p99 from Prometheus' default buckets, and the slower-than-0.25 s fraction.
    let healthy_p99 = {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut values: Vec<f64> = (0..50)
            .flat_map(|_| latency_run(&mut rng, &LatencyTraffic::default(), SLOW_BOUNDARY).baseline)
            .filter(|v| v.is_finite())
            .collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let latency_scenarios: Vec<(&str, bool, LatencyTraffic)> = vec![
        ("p99 A/A, heavy tail", false, LatencyTraffic::default()),
        (
            "p99 A/A, autocorrelated per-arm slowdowns",
            false,
            LatencyTraffic {
                autocorrelation: 0.7,
                slowdown_spread: 0.15,
                ..Default::default()
            },
        ),
        (
            "p99 A/A, window 2 intervals (overlapping)",
            false,
            LatencyTraffic {
                window: 2,
                ..Default::default()
            },
        ),
        (
            "latency +30%",
            true,
            LatencyTraffic {
                canary_factor: 1.3,
                ..Default::default()
            },
        ),
        (
            "latency +30%, 200 req/s",
            true,
            LatencyTraffic {
                canary_factor: 1.3,
                rps: 200.0,
                ..Default::default()
            },
        ),
    ];
    for (i, (name, worse, traffic)) in latency_scenarios.into_iter().enumerate() {
        let methods: Methods<'_, sluice::analysis::simulate::LatencyRun> = vec![
            (
                "Sluice, p99 (Samples)",
                Box::new(|r| sluice_samples(&r.canary, &r.baseline)),
            ),
            (
                "Sluice, slower than 0.25 s (Counts)",
                Box::new(|r| sluice_counts(&r.slow, ERROR_TOLERANCE)),
            ),
            (
                "threshold p99 1.2× healthy",
                Box::new(move |r| {
                    let per_minute: Vec<Option<f64>> = r
                        .canary
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (i % 2 == 1 && v.is_finite()).then_some(*v))
                        .collect();
                    threshold(&per_minute, 1.2 * healthy_p99)
                }),
            ),
            (
                "Mann-Whitney, fixed",
                Box::new(|r| mann_whitney_fixed(&r.canary, &r.baseline, r.canary.len())),
            ),
        ];
        scenario(
            &mut goals,
            name,
            worse,
            runs,
            200 + i as u64,
            move |rng| latency_run(rng, &traffic, SLOW_BOUNDARY),
            methods,
        );
    }
    println!(
        "\nhealthy p99 {healthy_p99:.3} s with the default buckets: {}",
        describe(&PROMETHEUS_DEFAULT_BUCKETS, healthy_p99)
    );
    println!(
        "largest Sluice false-abort rate {:.1}%, largest Sluice false-pass rate {:.1}% (goal: both <= {:.0}%)",
        goals.sluice_false_aborts_max * 100.0,
        goals.sluice_false_passes_max * 100.0,
        ALPHA * 100.0
    );
    for failure in &goals.failures {
        println!("GOAL MISSED: {failure}");
    }
    println!("({:.0} s)", started.elapsed().as_secs_f64());
}
