//! Time to a verdict at equal measured error rates: Sluice against a
//! fixed-horizon Mann-Whitney test calibrated on the same traffic.
//!
//! `matched` runs Mann-Whitney at its nominal one-sided 0.05, but Sluice
//! spends much less than 5% over a ten-minute step (a confidence sequence
//! holds its level at every look, for ever), so that compares a test that
//! makes ~5% false aborts with one that makes ~1%. Here both are measured on
//! canaries exactly at the tolerance's edge (the null hypothesis' worst
//! case, where "worse" starts): the fixed test's critical value at each
//! horizon aborts no more of those runs than the upper end of the Wilson
//! interval of Sluice's rate there (kind to it), and its horizon is the
//! shortest at which it then detects as many worse runs as Sluice did.
//! Calibrating on same-version runs instead would let the fixed test drop
//! the tolerance it is meant to honour. Runs are generated three times a
//! step's length so that the fixed test can take the time it needs.

use sluice::analysis::judge::CountsInterval;
use sluice::analysis::simulate::{ErrorTraffic, error_run};

use crate::methods::{
    CountsJudge, ERROR_TOLERANCE, INTERVAL, Tally, mann_whitney_z, rates, tolerance_edge,
    wilson_bounds,
};

/// One traffic shape's comparison.
pub struct Calibrated {
    pub scenario: String,
    /// Sluice's measured abort rate on canaries at the tolerance's edge, and
    /// the level the fixed test was held to (its Wilson upper bound).
    pub sluice_false_aborts: f64,
    pub level: f64,
    pub sluice_detection: f64,
    pub sluice_median_minutes: Option<f64>,
    /// Horizon (minutes) at which the calibrated fixed test detects as many
    /// worse runs as Sluice, if within the generated runs.
    pub fixed_minutes: Option<f64>,
    /// Longest horizon tried (minutes) and the fixed test's detection there.
    pub longest_minutes: f64,
    pub detection_at_longest: f64,
}

impl Calibrated {
    pub fn speed_up(&self) -> Option<f64> {
        Some(self.fixed_minutes? / self.sluice_median_minutes?)
    }

    pub fn row(&self) -> String {
        let minutes = |m: Option<f64>| m.map_or("–".into(), |m| format!("{m:.1} min"));
        let fixed = match self.fixed_minutes {
            Some(m) => format!("{m:.1} min"),
            None => format!(
                "not within {:.0} min (caught {:.1}% there)",
                self.longest_minutes,
                self.detection_at_longest * 100.0
            ),
        };
        format!(
            "| {} | {:.1}% (held to ≤ {:.2}%) | {:.1}% | {} | {} | {} |",
            self.scenario,
            self.sluice_false_aborts * 100.0,
            self.level * 100.0,
            self.sluice_detection * 100.0,
            minutes(self.sluice_median_minutes),
            fixed,
            self.speed_up().map_or("–".into(), |s| format!("{s:.1}×")),
        )
    }
}

/// Statistics of every run at every horizon `1..=length`.
fn statistics(runs: &[Vec<CountsInterval>], length: usize) -> Vec<Vec<f64>> {
    runs.iter()
        .map(|run| {
            let (c, b) = rates(run);
            (1..=length)
                .map(|h| mann_whitney_z(&c, &b, h, tolerance_edge(ERROR_TOLERANCE)))
                .collect()
        })
        .collect()
}

/// Compare on `runs` fresh runs of `same_traffic` with the canary at the
/// tolerance's edge and of `worse_traffic`; `worse` is `judge`'s tally on the
/// latter (Sluice's, from the main table).
pub fn calibrated(
    scenario: &str,
    (same_traffic, worse_traffic): (ErrorTraffic, ErrorTraffic),
    (judge, worse): (CountsJudge<'_>, &Tally),
    runs: usize,
    seed: u64,
) -> Calibrated {
    const STRETCH: usize = 3;
    let length = same_traffic.intervals * STRETCH;
    let generate = |traffic: ErrorTraffic, seed: u64| {
        let traffic = ErrorTraffic {
            intervals: length,
            ..traffic
        };
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..runs)
            .map(|_| error_run(&mut rng, &traffic))
            .collect::<Vec<_>>()
    };
    let step = same_traffic.intervals;
    let edge_factor = (1.0 + ERROR_TOLERANCE.relative)
        .max(1.0 + ERROR_TOLERANCE.absolute / same_traffic.baseline_rate);
    let edge_runs = generate(
        ErrorTraffic {
            canary_factor: edge_factor,
            ..same_traffic.clone()
        },
        seed,
    );
    let mut edge = Tally::default();
    for run in &edge_runs {
        edge.add(judge(&run[..step], ERROR_TOLERANCE));
    }
    let edge_z = statistics(&edge_runs, length);
    let worse_z = statistics(&generate(worse_traffic, seed + 1), length);

    let (sluice_false_aborts, _, level) = wilson_bounds(edge.aborts, edge.runs());
    let sluice_detection = worse.aborts as f64 / worse.runs().max(1) as f64;
    // Edge runs the fixed test may abort at this level.
    let allowed = (level * runs as f64).floor() as usize;
    let detection_at = |h: usize| {
        let mut null: Vec<f64> = edge_z.iter().map(|z| z[h - 1]).collect();
        null.sort_by(|a, b| b.total_cmp(a));
        // Abort above the (allowed + 1)-th largest edge statistic: exactly
        // `allowed` edge runs (ties aside) abort.
        let critical = null.get(allowed).copied().unwrap_or(f64::NEG_INFINITY);
        worse_z.iter().filter(|z| z[h - 1] > critical).count() as f64 / runs.max(1) as f64
    };
    let detections: Vec<f64> = (1..=length).map(detection_at).collect();
    let fixed_minutes = detections
        .iter()
        .position(|d| *d >= sluice_detection && *d > 0.0)
        .map(|i| (i + 1) as f64 * INTERVAL / 60.0);
    Calibrated {
        scenario: scenario.to_string(),
        sluice_false_aborts,
        level,
        sluice_detection,
        sluice_median_minutes: Tally::median_minutes(&worse.abort_times),
        fixed_minutes,
        longest_minutes: length as f64 * INTERVAL / 60.0,
        detection_at_longest: detections.last().copied().unwrap_or(0.0),
    }
}
