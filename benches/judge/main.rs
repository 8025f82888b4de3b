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
//! Inconclusive and the median time to a verdict, with Wilson 95% intervals;
//! then the time to a verdict at equal error rates (`matched`, `calibrated`),
//! the goals of issue #11 that span scenarios, what measuring the spread
//! costs (`spread_cost`), and with `SLUICE_BENCH_SWEEP=1` a sweep of
//! same-version shapes beyond the table (`sweep`).
//! `SLUICE_BENCH_RUNS` sets the runs per scenario (default 1000).

mod calibrated;
mod matched;
mod methods;
mod spread_cost;
mod sweep;

use std::collections::BTreeMap;

use calibrated::{Calibrated, calibrated};
use matched::{Matched, matched};
use methods::{
    ALPHA, ERROR_TOLERANCE, INTERVAL, LATENCY_TOLERANCE, SLOW_BOUNDARY, Tally, Verdict,
    mann_whitney_fixed, minute_rates, rates, sluice_counts, sluice_samples, threshold,
    tolerance_edge, wilson,
};
use sluice::analysis::judge::buckets::{PROMETHEUS_DEFAULT_BUCKETS, describe};
use sluice::analysis::judge::{CountsInterval, DEFAULT_MINIMUM, Tolerance};
use sluice::analysis::simulate::{
    Bursts, ErrorTraffic, LatencyRun, LatencyTraffic, error_run, latency_run,
};

/// What the goals need from the table.
#[derive(Default)]
struct Goals {
    sluice_false_aborts_max: f64,
    sluice_false_passes_max: f64,
    /// Scenario -> method -> outcomes, for the cross-scenario goals.
    tallies: BTreeMap<String, BTreeMap<String, Tally>>,
    failures: Vec<String>,
}

fn print_row(scenario: &str, method: &str, worse: bool, t: &Tally) {
    let runs = t.runs();
    let (false_aborts, false_passes, detection) = if worse {
        ("–".into(), wilson(t.passes, runs), wilson(t.aborts, runs))
    } else {
        (wilson(t.aborts, runs), "–".into(), "–".into())
    };
    let median = Tally::median_minutes(&t.times).map_or("–".into(), |m| format!("{m:.1} min"));
    println!(
        "| {scenario} | {method} | {false_aborts} | {false_passes} | {detection} | {} | {median} |",
        wilson(t.inconclusive, runs),
    );
}

type Methods<'a, R> = Vec<(&'a str, Box<dyn Fn(&R) -> Verdict + 'a>)>;

/// Run `runs` seeded runs of a scenario through every method, print its rows
/// and return the runs with the Sluice methods' tallies (by method name).
fn scenario<R>(
    goals: &mut Goals,
    name: &str,
    worse: bool,
    runs: usize,
    seed: u64,
    generate: impl Fn(&mut fastrand::Rng) -> R,
    methods: Methods<'_, R>,
) -> Vec<R> {
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
        print_row(name, method, worse, &tally);
        goals
            .tallies
            .entry(name.to_string())
            .or_default()
            .insert(method.to_string(), tally);
    }
    generated
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
                mann_whitney_fixed(&c, &b, run.len(), |b| b)
            }),
        ),
    ]
}

/// The threshold may not beat Sluice on both error rates of one traffic shape.
const SAME_TRAFFIC: [(&str, &str); 3] = [
    ("A/A 1%, 20 req/s", "worse 1% → 2%, 20 req/s"),
    ("A/A 1%, 200 req/s", "worse 1% → 2%, 200 req/s"),
    (
        "A/A, bursts per arm (30 s at 20% every ~3 min)",
        "worse 1% → 2%, bursts per arm",
    ),
];

/// The 10-minute detection goal's scenario.
const HEADLINE: &str = "worse 1% → 2%, 20 req/s";

fn main() {
    let runs: usize = std::env::var("SLUICE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let started = std::time::Instant::now();
    println!("# cargo bench --bench judge");
    println!(
        "{runs} runs per scenario, {INTERVAL} s intervals, 20 intervals (10 min) unless noted, alpha {ALPHA}; \
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
    let mut comparisons: Vec<Matched> = Vec::new();
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
            "canary 1% → 1.15% (inside the tolerance)",
            false,
            ErrorTraffic {
                canary_factor: 1.15,
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
    let error_traffic: BTreeMap<&str, ErrorTraffic> = error_scenarios
        .iter()
        .map(|(name, _, traffic)| (*name, traffic.clone()))
        .collect();
    for (i, (name, worse, traffic)) in error_scenarios.into_iter().enumerate() {
        let length = traffic.intervals;
        let generated = scenario(
            &mut goals,
            name,
            worse,
            runs,
            100 + i as u64,
            move |rng| error_run(rng, &traffic),
            error_methods(ERROR_TOLERANCE),
        );
        if worse {
            let sluice = &goals.tallies[name]["Sluice"];
            comparisons.push(matched(name, &generated, length, sluice, |run, h| {
                let (c, b) = rates(run);
                mann_whitney_fixed(&c, &b, h, tolerance_edge(ERROR_TOLERANCE))
            }));
        }
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
        let length = traffic.intervals;
        let methods: Methods<'_, LatencyRun> = vec![
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
                Box::new(|r| mann_whitney_fixed(&r.canary, &r.baseline, r.canary.len(), |b| b)),
            ),
        ];
        let generated = scenario(
            &mut goals,
            name,
            worse,
            runs,
            200 + i as u64,
            move |rng| latency_run(rng, &traffic, SLOW_BOUNDARY),
            methods,
        );
        if worse {
            let tallies = &goals.tallies[name];
            let p99 = &tallies["Sluice, p99 (Samples)"];
            comparisons.push(matched(
                &format!("{name}, p99"),
                &generated,
                length,
                p99,
                |r, h| {
                    mann_whitney_fixed(&r.canary, &r.baseline, h, tolerance_edge(LATENCY_TOLERANCE))
                },
            ));
            let slow = &tallies["Sluice, slower than 0.25 s (Counts)"];
            comparisons.push(matched(
                &format!("{name}, slower than 0.25 s"),
                &generated,
                length,
                slow,
                |r, h| {
                    let (c, b) = rates(&r.slow);
                    mann_whitney_fixed(&c, &b, h, tolerance_edge(ERROR_TOLERANCE))
                },
            ));
        }
    }

    println!(
        "\n## Time to a verdict at equal error rates\n\nFixed-horizon Mann-Whitney of the same hypothesis (the baseline's values \
         raised by the same tolerance, one-sided at {ALPHA}) at the shortest horizon where it passes at most {:.0}% of the worse \
         canaries, as Sluice promises; and, kinder to it, where it detects as many runs as Sluice (its misses are then passes).\n",
        ALPHA * 100.0
    );
    println!(
        "| scenario | Sluice detection | Sluice median time to abort | Mann-Whitney needs (false passes <= {:.0}%) | Sluice faster by | Mann-Whitney needs (same detection) | Sluice faster by |",
        ALPHA * 100.0
    );
    println!("|---|---|---|---|---|---|---|");
    for comparison in &comparisons {
        println!("{}", comparison.row());
    }
    let calibrated = calibrated_table(&goals, &error_traffic, runs);
    check_goals(&mut goals, &comparisons, &calibrated);
    spread_cost::run(&error_traffic, (SAME_TRAFFIC[0].0, HEADLINE), runs);
    if std::env::var_os("SLUICE_BENCH_SWEEP").is_some() {
        for shape in sweep::run(runs) {
            goals
                .failures
                .push(format!("sweep: {shape} aborts a healthy canary"));
        }
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

/// The fixed test held to Sluice's measured error rates on each shape of `SAME_TRAFFIC`.
fn calibrated_table(
    goals: &Goals,
    traffic: &BTreeMap<&str, ErrorTraffic>,
    runs: usize,
) -> Vec<Calibrated> {
    println!(
        "\n## Time to a verdict at equal measured error rates\n\nThe same fixed-horizon Mann-Whitney, held to Sluice's \
         measured error rates instead of its nominal {ALPHA}. Both are run on canaries exactly at the tolerance's edge (where \
         \"worse\" starts): the fixed test's critical value at each horizon aborts no more of them than the upper end of the \
         95% interval of Sluice's rate there, and its horizon is the shortest at which it then detects as many worse runs as \
         Sluice did (fresh runs, three times a step's length).\n"
    );
    println!(
        "| traffic | Sluice aborts at the tolerance's edge (fixed test held to) | Sluice detection | Sluice median time to abort | Mann-Whitney needs | Sluice faster by |"
    );
    println!("|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for (i, (healthy, worse)) in SAME_TRAFFIC.iter().enumerate() {
        let tally = |scenario: &str| goals.tallies.get(scenario).and_then(|m| m.get("Sluice"));
        let (Some(worse_tally), Some(same_traffic), Some(worse_traffic)) =
            (tally(worse), traffic.get(healthy), traffic.get(worse))
        else {
            continue;
        };
        let row = calibrated(
            worse,
            (same_traffic.clone(), worse_traffic.clone()),
            (&sluice_counts, worse_tally),
            runs,
            400 + 2 * i as u64,
        );
        println!("{}", row.row());
        rows.push(row);
    }
    rows
}

/// The goals that span scenarios: detection in 10 minutes, speed, and the threshold.
fn check_goals(goals: &mut Goals, comparisons: &[Matched], calibrated: &[Calibrated]) {
    let share = |t: &Tally, k: usize| k as f64 / t.runs().max(1) as f64;
    if let Some(headline) = goals.tallies.get(HEADLINE).and_then(|m| m.get("Sluice")) {
        let caught = share(headline, headline.aborts);
        println!(
            "\n{HEADLINE}: Sluice caught {} within 10 minutes (goal: at least 90%)",
            wilson(headline.aborts, headline.runs())
        );
        if caught < 0.9 {
            goals
                .failures
                .push(format!("{HEADLINE}: caught {:.1}% < 90%", caught * 100.0));
        }
    }
    let times = |s: Option<f64>| s.map_or("–".into(), |s| format!("{s:.1}×"));
    if let Some(c) = comparisons.iter().find(|c| c.scenario == HEADLINE) {
        println!(
            "{HEADLINE}: Sluice decides {} sooner than fixed-horizon Mann-Whitney at its nominal {ALPHA} (for reference)",
            times(c.speed_up())
        );
    }
    if let Some(c) = calibrated.iter().find(|c| c.scenario == HEADLINE) {
        let speed_up = c.speed_up();
        println!(
            "{HEADLINE}: Sluice decides {} sooner than fixed-horizon Mann-Whitney at equal measured error rates (goal: at least 2×)",
            times(speed_up)
        );
        if speed_up.is_none_or(|s| s < 2.0) {
            goals.failures.push(format!(
                "{HEADLINE}: less than 2× faster than fixed-horizon Mann-Whitney at equal error rates"
            ));
        }
    }
    for (healthy, worse) in SAME_TRAFFIC {
        let get = |scenario: &str, method: &str| {
            goals
                .tallies
                .get(scenario)
                .and_then(|m| m.get(method))
                .cloned()
        };
        let (Some(sa), Some(ta), Some(sw), Some(tw)) = (
            get(healthy, "Sluice"),
            get(healthy, "threshold 1.5%"),
            get(worse, "Sluice"),
            get(worse, "threshold 1.5%"),
        ) else {
            continue;
        };
        let sluice = (share(&sa, sa.aborts), 1.0 - share(&sw, sw.aborts));
        let threshold = (share(&ta, ta.aborts), 1.0 - share(&tw, tw.aborts));
        if sluice.0 > threshold.0 && sluice.1 > threshold.1 {
            goals.failures.push(format!(
                "{healthy} / {worse}: the threshold has fewer false aborts and fewer misses"
            ));
        }
    }
}
