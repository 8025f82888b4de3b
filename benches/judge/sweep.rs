//! Same-version shapes beyond the main table, Sluice only: bursts of other
//! lengths and rates, slow spells of other persistence, other traffic and
//! base rates, with and without tolerance. Each row is a false-abort rate
//! that must stay at or under alpha. `SLUICE_BENCH_SWEEP=1` prints it.

use sluice::analysis::judge::Tolerance;
use sluice::analysis::simulate::{ErrorTraffic, LatencyTraffic, error_run, latency_run};

use crate::methods::{
    ALPHA, ERROR_TOLERANCE, SLOW_BOUNDARY, Tally, Verdict, bursty_traffic, sluice_counts, wilson,
};

const NO_TOLERANCE: Tolerance = Tolerance {
    relative: 0.0,
    absolute: 0.0,
};

/// Print the sweep; returns the shapes whose false-abort rate exceeded alpha.
pub fn run(runs: usize) -> Vec<String> {
    println!("\n## Same-version sweep (false aborts, Sluice)\n");
    println!("| shape | tolerance | false aborts |");
    println!("|---|---|---|");
    let mut over = Vec::new();
    let mut row = |name: String, tolerance: &str, tally: &Tally| {
        println!(
            "| {name} | {tolerance} | {} |",
            wilson(tally.aborts, tally.runs())
        );
        if tally.aborts as f64 / tally.runs().max(1) as f64 > ALPHA {
            over.push(format!("{name} ({tolerance})"));
        }
    };
    let mut seed = 500;
    for (length, every, rate, shared) in [
        (30.0, 180.0, 0.2, false),
        (60.0, 300.0, 0.2, false),
        (120.0, 600.0, 0.1, false),
        (10.0, 60.0, 0.5, false),
        (60.0, 300.0, 0.2, true),
    ] {
        for rps in [2.0, 20.0, 200.0] {
            let traffic = bursty_traffic(rps, (length, every, rate, shared));
            for (label, tolerance) in [("stock", ERROR_TOLERANCE), ("none", NO_TOLERANCE)] {
                seed += 1;
                let tally = tally_of(runs, seed, |rng| {
                    sluice_counts(&error_run(rng, &traffic), tolerance)
                });
                let kind = if shared { "shared" } else { "per arm" };
                row(
                    format!(
                        "bursts {kind}, {length} s at {:.0}% every ~{every} s, {rps} req/s",
                        rate * 100.0
                    ),
                    label,
                    &tally,
                );
            }
        }
    }
    for (base, rps, unequal) in [
        (0.05, 20.0, false),
        (0.001, 200.0, false),
        (0.01, 20.0, true),
    ] {
        let traffic = ErrorTraffic {
            baseline_rate: base,
            canary_rps: if unequal { rps / 10.0 } else { rps },
            baseline_rps: rps,
            intervals: 40,
            ..Default::default()
        };
        for (label, tolerance) in [("stock", ERROR_TOLERANCE), ("none", NO_TOLERANCE)] {
            seed += 1;
            let tally = tally_of(runs, seed, |rng| {
                sluice_counts(&error_run(rng, &traffic), tolerance)
            });
            let arms = if unequal {
                "canary at a tenth"
            } else {
                "equal arms"
            };
            row(
                format!(
                    "Poisson {:.1}%, {rps} req/s, {arms}, 20 minutes",
                    base * 100.0
                ),
                label,
                &tally,
            );
        }
    }
    for (autocorrelation, spread) in [(0.5, 0.15), (0.7, 0.1), (0.7, 0.3), (0.9, 0.15)] {
        let traffic = LatencyTraffic {
            autocorrelation,
            slowdown_spread: spread,
            ..Default::default()
        };
        seed += 1;
        let tally = tally_of(runs, seed, |rng| {
            let run = latency_run(rng, &traffic, SLOW_BOUNDARY);
            sluice_counts(&run.slow, ERROR_TOLERANCE)
        });
        row(
            format!(
                "slower than 0.25 s, per-arm slow spells AR(1) {autocorrelation}, spread {spread}"
            ),
            "stock",
            &tally,
        );
    }
    over
}

/// Outcomes of `runs` runs from one seed, each generated and judged by `judge`.
fn tally_of(runs: usize, seed: u64, mut judge: impl FnMut(&mut fastrand::Rng) -> Verdict) -> Tally {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::default();
    for _ in 0..runs {
        tally.add(judge(&mut rng));
    }
    tally
}
