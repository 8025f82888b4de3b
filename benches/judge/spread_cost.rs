//! What measuring the spread costs: Sluice's judge beside the same boundary
//! told that each interval's spread is binomial noise alone.
//!
//! Issue #11 asks for a verdict 2× sooner than a fixed-horizon Mann-Whitney
//! test at equal error rates, and for at most alpha false aborts under
//! bursts. Run on the same seeded runs, this section shows that the two pull
//! against each other: with the spread known the boundary is fast enough,
//! and the same assumption aborts healthy canaries under bursts. What Sluice
//! spends between the two is the price of estimating the excess and the
//! dependence from the run's own intervals.

use std::collections::BTreeMap;

use sluice::analysis::simulate::{ErrorTraffic, error_run};

use crate::calibrated::calibrated;
use crate::methods::{
    CountsJudge, ERROR_TOLERANCE, Tally, Verdict, sluice_counts, sluice_counts_binomial_spread,
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

const JUDGES: [(&str, CountsJudge); 2] = [
    ("Sluice (spread measured)", sluice_counts),
    (
        "same boundary, spread told binomial",
        sluice_counts_binomial_spread,
    ),
];

/// Print the section; `headline` pairs the same-version and worse traffic of
/// the speed goal (for the calibrated comparison).
pub fn run(traffic: &BTreeMap<&str, ErrorTraffic>, headline: (&str, &str), runs: usize) {
    println!(
        "\n## What measuring the spread costs\n\nThe same runs judged by Sluice and by its boundary told that each \
         interval's spread is binomial noise alone (known, independent: what a test assuming Poisson errors does). \
         Aborts only.\n"
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
        for (name, judge) in JUDGES {
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
    for (name, judge) in JUDGES {
        let Some(tally) = worse_tallies.get(name) else {
            continue;
        };
        let row = calibrated(
            name,
            (same.clone(), worse.clone()),
            (judge, tally),
            runs,
            700,
        );
        println!("{}", row.row());
    }
}
