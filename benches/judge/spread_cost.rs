//! What measuring the spread costs: Sluice's judge beside the same boundary
//! told each interval's spread instead of estimating it.
//!
//! Issue #11 asks for a verdict 2× sooner than a fixed-horizon Mann-Whitney
//! test at equal error rates, and for at most alpha false aborts under
//! bursts. On the same seeded runs this section shows where the time goes.
//! Told that the spread is binomial noise alone, the boundary is fast enough
//! and aborts healthy canaries under bursts. Told the spread an hour of the
//! stable revision's own history shows (simulated with the same traffic
//! shape: Sluice does not query history), it is safe and a little slower,
//! until the bursts start with the step after a quiet hour. An in-run
//! dispersion test that hands such looks back to Sluice's judge is safe
//! only when it trips often enough to give the time back. What Sluice
//! spends instead is the price of estimating the excess and the dependence
//! from the run's own intervals.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use sluice::analysis::judge::{CountsInterval, Tolerance};
use sluice::analysis::simulate::{ErrorTraffic, error_run};

use crate::calibrated::calibrated;
use crate::methods::{
    ERROR_TOLERANCE, Excess, Tally, Verdict, bursty_traffic, history_excess, sluice_counts,
    sluice_counts_told_spread, sluice_counts_told_spread_guarded, wilson,
};

/// Intervals of history behind a history-told spread (an hour of 30 s intervals).
const HISTORY_INTERVALS: usize = 120;

type Judge = Box<dyn Fn(&[CountsInterval], Tolerance) -> Verdict>;

/// Where the spread comes from.
#[derive(Clone, Copy)]
enum Told {
    /// Sluice's judge: measured from the run's own intervals.
    Measured,
    Binomial,
    /// From the stable revision's last hour (`quiet`: with the bursts left
    /// out), with an in-run dispersion test at this level, if any.
    History {
        quiet: bool,
        guard: Option<f64>,
    },
}

const JUDGES: [(&str, Told); 8] = [
    ("Sluice (spread measured)", Told::Measured),
    ("told: binomial", Told::Binomial),
    (
        "told: stable's last hour",
        Told::History {
            quiet: false,
            guard: None,
        },
    ),
    (
        "told: a quiet last hour",
        Told::History {
            quiet: true,
            guard: None,
        },
    ),
    (
        "told: last hour, χ² guard at 5%",
        Told::History {
            quiet: false,
            guard: Some(0.05),
        },
    ),
    (
        "told: quiet hour, χ² guard at 5%",
        Told::History {
            quiet: true,
            guard: Some(0.05),
        },
    ),
    (
        "told: last hour, χ² guard at 20%",
        Told::History {
            quiet: false,
            guard: Some(0.2),
        },
    ),
    (
        "told: quiet hour, χ² guard at 20%",
        Told::History {
            quiet: true,
            guard: Some(0.2),
        },
    ),
];

/// The judge `told` for runs of traffic shaped like `shape`.
fn judge(told: Told, shape: &ErrorTraffic) -> Judge {
    match told {
        Told::Measured => Box::new(sluice_counts),
        Told::Binomial => {
            Box::new(|run, tolerance| sluice_counts_told_spread(run, tolerance, Excess::default()))
        }
        Told::History { quiet, guard } => {
            // The stable revision before the step: the same traffic, no
            // regression, no drift (and no bursts, when quiet).
            let history = ErrorTraffic {
                intervals: HISTORY_INTERVALS,
                canary_factor: 1.0,
                regression_from: 0.0,
                drift: 0.0,
                bursts: if quiet { None } else { shape.bursts },
                ..shape.clone()
            };
            Box::new(move |run: &[CountsInterval], tolerance| {
                // Seeded from the run: every judge sees the same history for a run.
                let mut hasher = DefaultHasher::new();
                for i in run {
                    for value in [
                        i.canary_events,
                        i.canary_exposure,
                        i.baseline_events,
                        i.baseline_exposure,
                    ] {
                        value.to_bits().hash(&mut hasher);
                    }
                }
                let seed = hasher.finish();
                let past = error_run(&mut fastrand::Rng::with_seed(seed), &history);
                let excess = history_excess(&past);
                match guard {
                    None => sluice_counts_told_spread(run, tolerance, excess),
                    Some(level) => sluice_counts_told_spread_guarded(run, tolerance, excess, level),
                }
            })
        }
    }
}

/// The shapes: same-version ones where the spread matters, then the worse ones.
fn shapes(traffic: &BTreeMap<&str, ErrorTraffic>) -> Vec<(String, bool, ErrorTraffic)> {
    // A short label for the column, and the main table's scenario.
    let from_table = |label: &str, name: &str, worse: bool| {
        traffic
            .get(name)
            .map(|t| (label.to_string(), worse, t.clone()))
    };
    let per_arm = |rps: f64, length: f64, every: f64, rate: f64| {
        bursty_traffic(rps, (length, every, rate, false))
    };
    [
        from_table("A/A", "A/A 1%, 20 req/s", false),
        from_table(
            "A/A, bursts 30 s / ~3 min",
            "A/A, bursts per arm (30 s at 20% every ~3 min)",
            false,
        ),
        // Two of the sweep's per-arm bursts, where a guard has the least to go on.
        Some((
            "A/A, bursts 60 s / ~5 min".into(),
            false,
            per_arm(20.0, 60.0, 300.0, 0.2),
        )),
        Some((
            "A/A, bursts 120 s at 10% / ~10 min, 2 req/s".into(),
            false,
            per_arm(2.0, 120.0, 600.0, 0.1),
        )),
        from_table("A/A, shared bursts", "A/A, shared bursts", false),
        from_table("A/A, drift", "A/A, drift 1% → 3% on both arms", false),
        from_table("worse, bursts", "worse 1% → 2%, bursts per arm", true),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn aborts(judge: &Judge, runs: &[Vec<CountsInterval>]) -> Tally {
    let mut tally = Tally::default();
    for run in runs {
        tally.add(match judge(run, ERROR_TOLERANCE) {
            // Aborts only: a pass is not this section's question.
            Verdict::Pass(_) => Verdict::Inconclusive,
            verdict => verdict,
        });
    }
    tally
}

/// Print the section; `headline` pairs the same-version and worse traffic of
/// the speed goal.
pub fn run(traffic: &BTreeMap<&str, ErrorTraffic>, headline: (&str, &str), runs: usize) {
    let (Some(same), Some(worse)) = (traffic.get(headline.0), traffic.get(headline.1)) else {
        return;
    };
    println!(
        "\n## What measuring the spread costs\n\nThe same runs judged by Sluice and by its boundary told each \
         interval's spread: binomial noise alone (what a test assuming Poisson errors does), or what the stable \
         revision's last hour ({HISTORY_INTERVALS} intervals of the same traffic, or of the same traffic without \
         its bursts: a quiet hour) shows, with or without an in-run χ² test of dispersion that hands a look back \
         to Sluice's judge. Aborts only. Speed: at equal measured error rates on `{}`, as above. Bursts are \
         per arm at 20% and 20 req/s unless noted.\n",
        headline.1
    );
    let shapes = shapes(traffic);
    let mut header = "| judge | faster by | headline detection, median |".to_string();
    for (name, worse, _) in &shapes {
        let kind = if *worse { "detection" } else { "false aborts" };
        header.push_str(&format!(" {name}: {kind} |"));
    }
    println!("{header}");
    println!("|---|---|---|{}", "---|".repeat(shapes.len()));
    let generate = |shape: &ErrorTraffic, seed: u64| -> Vec<Vec<CountsInterval>> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..runs).map(|_| error_run(&mut rng, shape)).collect()
    };
    let headline_runs = generate(worse, 600);
    let shape_runs: Vec<_> = shapes
        .iter()
        .enumerate()
        .map(|(i, (_, _, shape))| generate(shape, 601 + i as u64))
        .collect();
    for (name, told) in JUDGES {
        let on_headline = aborts(&judge(told, worse), &headline_runs);
        let speed = calibrated(
            name,
            (same.clone(), worse.clone()),
            (&*judge(told, same), &on_headline),
            runs,
            700,
        );
        let median = Tally::median_minutes(&on_headline.abort_times)
            .map_or("–".into(), |m| format!("{m:.1} min"));
        let mut row = format!(
            "| {name} | {} | {}, {median} |",
            speed.speed_up().map_or("–".into(), |s| format!("{s:.1}×")),
            wilson(on_headline.aborts, on_headline.runs()),
        );
        for ((_, _, shape), generated) in shapes.iter().zip(&shape_runs) {
            let tally = aborts(&judge(told, shape), generated);
            row.push_str(&format!(" {} |", wilson(tally.aborts, tally.runs())));
        }
        println!("{row}");
    }
}
