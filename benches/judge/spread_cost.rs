//! What measuring the spread costs: Sluice's judge beside the same boundary
//! told each interval's spread instead of estimating it.
//!
//! Issue #11 asks for a verdict 2× sooner than a fixed-horizon Mann-Whitney
//! test at equal error rates, and for at most alpha false aborts under
//! bursts. Run on the same seeded runs, this section shows where the time
//! goes: told that the spread is binomial noise alone, the boundary is fast
//! enough and aborts healthy canaries under bursts; told the spread that an
//! hour of the stable revision's own history shows (simulated here with the
//! same traffic shape; Sluice does not query history), it is fast and safe
//! on these shapes, until the bursts start with the step after a quiet
//! hour. What Sluice spends instead is the price of estimating
//! the excess and the dependence from the run's own intervals.

use std::collections::BTreeMap;

use sluice::analysis::judge::{CountsInterval, Tolerance};
use sluice::analysis::simulate::{ErrorTraffic, error_run};

use crate::calibrated::calibrated;
use crate::methods::{
    ERROR_TOLERANCE, Tally, Verdict, history_excess, sluice_counts, sluice_counts_told_spread,
    wilson,
};

/// The scenarios shown: healthy shapes where the assumption matters, and the headline.
const SHOWN: [(&str, bool); 6] = [
    ("A/A 1%, 20 req/s", false),
    ("A/A, bursts per arm (30 s at 20% every ~3 min)", false),
    ("A/A, shared bursts", false),
    ("A/A, drift 1% → 3% on both arms", false),
    ("worse 1% → 2%, 20 req/s", true),
    ("worse 1% → 2%, bursts per arm", true),
];

/// Intervals of history behind the history-told spread (an hour of 30 s intervals).
const HISTORY_INTERVALS: usize = 120;

type Judge = Box<dyn Fn(&[CountsInterval], Tolerance) -> Verdict>;

/// The three judges, for runs of traffic shaped like `shape`.
fn judges(shape: &ErrorTraffic) -> Vec<(&'static str, Judge)> {
    // The stable revision before the step: the same traffic, no regression,
    // no drift. Seeded from the run so that every judge sees one history per run.
    let history = ErrorTraffic {
        intervals: HISTORY_INTERVALS,
        canary_factor: 1.0,
        regression_from: 0.0,
        drift: 0.0,
        ..shape.clone()
    };
    let told_by = |history: ErrorTraffic| -> Judge {
        Box::new(move |run: &[CountsInterval], tolerance| {
            let seed = run
                .iter()
                .map(|i| i.baseline_exposure)
                .filter(|x| x.is_finite())
                .sum::<f64>() as u64;
            let past = error_run(&mut fastrand::Rng::with_seed(seed), &history);
            sluice_counts_told_spread(run, tolerance, history_excess(&past))
        })
    };
    // The hostile case for a prior: the last hour was quiet, the bursts start with the step.
    let quiet = ErrorTraffic {
        bursts: None,
        ..history.clone()
    };
    vec![
        ("Sluice (spread measured)", Box::new(sluice_counts)),
        (
            "same boundary, spread told: binomial",
            Box::new(|run, tolerance| sluice_counts_told_spread(run, tolerance, 0.0)),
        ),
        (
            "same boundary, spread told: stable's last hour",
            told_by(history),
        ),
        (
            "same boundary, spread told: a quiet last hour",
            told_by(quiet),
        ),
    ]
}

/// Print the section; `headline` pairs the same-version and worse traffic of
/// the speed goal (for the calibrated comparison).
pub fn run(traffic: &BTreeMap<&str, ErrorTraffic>, headline: (&str, &str), runs: usize) {
    println!(
        "\n## What measuring the spread costs\n\nThe same runs judged by Sluice and by its boundary told each \
         interval's spread: binomial noise alone (what a test assuming Poisson errors does), or what the stable \
         revision's last hour ({HISTORY_INTERVALS} intervals of the same traffic) shows. Aborts only.\n"
    );
    println!("| scenario | judge | false aborts | detection | median time to abort |");
    println!("|---|---|---|---|---|");
    let mut worse_tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for (i, (scenario, worse)) in SHOWN.iter().enumerate() {
        let Some(shape) = traffic.get(scenario) else {
            continue;
        };
        let mut rng = fastrand::Rng::with_seed(600 + i as u64);
        let generated: Vec<_> = (0..runs).map(|_| error_run(&mut rng, shape)).collect();
        for (name, judge) in judges(shape) {
            let mut tally = Tally::default();
            for run in &generated {
                tally.add(match judge(run, ERROR_TOLERANCE) {
                    // Aborts only: a pass is not this section's question.
                    Verdict::Pass(_) => Verdict::Inconclusive,
                    verdict => verdict,
                });
            }
            let aborts = wilson(tally.aborts, tally.runs());
            let (false_aborts, detection) = if *worse {
                ("–".to_string(), aborts)
            } else {
                (aborts, "–".to_string())
            };
            let median = Tally::median_minutes(&tally.abort_times)
                .map_or("–".into(), |m| format!("{m:.1} min"));
            println!("| {scenario} | {name} | {false_aborts} | {detection} | {median} |");
            if *scenario == headline.1 {
                worse_tallies.insert(name, tally);
            }
        }
    }
    let (Some(same), Some(worse)) = (traffic.get(headline.0), traffic.get(headline.1)) else {
        return;
    };
    println!(
        "\nAt equal measured error rates (as above) on `{}`:\n",
        headline.1
    );
    println!(
        "| judge | aborts at the tolerance's edge (fixed test held to) | detection | median time to abort | Mann-Whitney needs | faster by |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, judge) in judges(same) {
        let Some(tally) = worse_tallies.get(name) else {
            continue;
        };
        let row = calibrated(
            name,
            (same.clone(), worse.clone()),
            (&*judge, tally),
            runs,
            700,
        );
        println!("{}", row.row());
    }
}
