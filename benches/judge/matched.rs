//! Time to the same detection: Sluice's sequential judge against a
//! fixed-horizon Mann-Whitney test of the same hypothesis.
//!
//! A fixed-horizon test has to pick its length in advance, and at its end it
//! either aborts or passes, so every miss is a false pass. Compared at equal
//! error rates (the textbook comparison of a sequential test with a fixed
//! one): the shortest horizon at which Mann-Whitney (one-sided at the same
//! alpha, with the same tolerance applied to the baseline's values) passes
//! at most `ALPHA` of these worse canaries, as Sluice promises, beside
//! Sluice's median time to abort. Also shown, more favourable to the fixed
//! test: the shortest horizon at which it merely detects as many runs as
//! Sluice did (then its misses are passes; Sluice's are Inconclusive).

use crate::methods::{ALPHA, INTERVAL, Tally, Verdict};

/// One worse scenario's comparison.
pub struct Matched {
    pub scenario: String,
    pub sluice_detection: f64,
    pub sluice_median_minutes: Option<f64>,
    /// Horizon (minutes) Mann-Whitney needs to pass at most `ALPHA` of the
    /// worse canaries, if any within the run.
    pub fixed_minutes: Option<f64>,
    /// Horizon (minutes) at which it detects as many runs as Sluice.
    pub fixed_same_detection_minutes: Option<f64>,
    /// Its detection at the end of the run.
    pub fixed_detection: f64,
}

impl Matched {
    /// How many times sooner Sluice decides at equal error rates.
    pub fn speed_up(&self) -> Option<f64> {
        Some(self.fixed_minutes? / self.sluice_median_minutes?)
    }

    fn speed_up_at_same_detection(&self) -> Option<f64> {
        Some(self.fixed_same_detection_minutes? / self.sluice_median_minutes?)
    }

    pub fn row(&self) -> String {
        let minutes = |m: Option<f64>| m.map_or("–".into(), |m| format!("{m:.1} min"));
        let fixed = match self.fixed_minutes {
            Some(m) => format!("{m:.1} min"),
            None => format!(
                "not within the run (caught {:.1}% at its end)",
                self.fixed_detection * 100.0
            ),
        };
        let times = |s: Option<f64>| s.map_or("–".into(), |s| format!("{s:.1}×"));
        format!(
            "| {} | {:.1}% | {} | {} | {} | {} | {} |",
            self.scenario,
            self.sluice_detection * 100.0,
            minutes(self.sluice_median_minutes),
            fixed,
            times(self.speed_up()),
            minutes(self.fixed_same_detection_minutes),
            times(self.speed_up_at_same_detection()),
        )
    }
}

/// Compare on `runs` of `length` intervals; `fixed_at(run, h)` is the fixed test at horizon `h`.
pub fn matched<R>(
    scenario: &str,
    runs: &[R],
    length: usize,
    sluice: &Tally,
    fixed_at: impl Fn(&R, usize) -> Verdict,
) -> Matched {
    let count = runs.len().max(1) as f64;
    let sluice_detection = sluice.aborts as f64 / count;
    let detection_at = |h: usize| {
        runs.iter()
            .filter(|r| matches!(fixed_at(r, h), Verdict::Abort(_)))
            .count() as f64
            / count
    };
    let detections: Vec<f64> = (1..=length).map(detection_at).collect();
    let first = |enough: f64| {
        detections
            .iter()
            .position(|d| *d >= enough && *d > 0.0)
            .map(|i| (i + 1) as f64 * INTERVAL / 60.0)
    };
    Matched {
        scenario: scenario.to_string(),
        sluice_detection,
        sluice_median_minutes: Tally::median_minutes(&sluice.abort_times),
        fixed_minutes: first(1.0 - ALPHA),
        fixed_same_detection_minutes: first(sluice_detection),
        fixed_detection: detections.last().copied().unwrap_or(0.0),
    }
}
