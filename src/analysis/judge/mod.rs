//! The statistical judge: is the canary worse than the baseline?
//!
//! The unit of evidence is the interval, not the request: each measurement
//! interval gives one paired observation of canary against baseline, so
//! bursts, shared incidents and autocorrelated latency inside an interval
//! only widen the spread of those observations (which is estimated from the
//! data) instead of being mistaken for thousands of independent requests.
//!
//! - [`counts`]: per-interval rate differences (errors per request), judged
//!   with anytime-valid confidence sequences on their mean ([`sequential`]).
//! - [`samples`]: per-interval values (a latency quantile), judged with an
//!   exact sequential sign test on the pairs, reported with Mann-Whitney U and
//!   the Hodges-Lehmann shift.
//! - [`buckets`]: what a histogram's buckets let a quantile comparison see.
//!
//! Both tests may be looked at after every interval. "Worse" needs the
//! evidence to clear `alpha`; "not worse" needs its own evidence to clear
//! `beta` *and* a minimum exposure (intervals, time and requests), so too
//! little data is Undecided, never a pass. Several metrics share the
//! false-abort budget (Bonferroni: each uses `alpha / metrics`).

pub mod buckets;
pub mod counts;
pub mod samples;
pub mod sequential;

use std::time::Duration;

pub use counts::{CountsInterval, CountsVerdict, judge_counts};
pub use samples::{SamplesVerdict, judge_samples, mann_whitney};

/// Which change is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Increase,
    Decrease,
    Either,
}

impl Direction {
    /// The directions tested, each with its share of `alpha`.
    fn sides(self) -> &'static [Side] {
        match self {
            Direction::Increase => &[Side::Up],
            Direction::Decrease => &[Side::Down],
            Direction::Either => &[Side::Up, Side::Down],
        }
    }
}

/// One tested direction of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Up,
    Down,
}

impl Side {
    fn sign(self) -> f64 {
        match self {
            Side::Up => 1.0,
            Side::Down => -1.0,
        }
    }
}

/// A change is a regression only beyond both margins (0 means none).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tolerance {
    pub relative: f64,
    pub absolute: f64,
}

/// What the evidence says so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Worse,
    NotWorse,
    Undecided,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Worse => "Worse",
            Decision::NotWorse => "NotWorse",
            Decision::Undecided => "Undecided",
        }
    }
}

/// The least evidence behind any verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Minimum {
    /// Intervals before any verdict: a spread estimated from fewer is worthless.
    pub intervals: usize,
    /// Observed time before a pass.
    pub duration: Duration,
    /// Exposure (requests) of each arm before a pass (counts only).
    pub exposure: f64,
}

/// Defaults chosen with `cargo bench --bench judge` (see the README).
pub const DEFAULT_MINIMUM: Minimum = Minimum {
    intervals: 6,
    duration: Duration::from_secs(300),
    exposure: 2000.0,
};

/// Settings shared by both tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JudgeConfig {
    pub direction: Direction,
    pub tolerance: Tolerance,
    /// Bound on the chance of failing a canary that is not worse.
    pub alpha: f64,
    /// Bound on the chance of passing a canary that is worse.
    pub beta: f64,
    /// Length of one interval (one observation).
    pub interval: Duration,
    pub minimum: Minimum,
}

impl JudgeConfig {
    /// Whether `intervals` observations cover the minimum time and count.
    fn long_enough(&self, intervals: usize) -> bool {
        intervals >= self.minimum.intervals
            && self.interval.as_secs_f64() * intervals as f64 >= self.minimum.duration.as_secs_f64()
    }

    /// Intervals still missing before the minimum time and count are met.
    fn intervals_short(&self, intervals: usize) -> usize {
        let seconds = self.interval.as_secs_f64().max(1e-9);
        let for_time = (self.minimum.duration.as_secs_f64() / seconds).ceil() as usize;
        self.minimum
            .intervals
            .max(for_time)
            .saturating_sub(intervals)
    }
}

/// Each metric's share of the false-abort budget.
pub fn combined_alpha(alpha: f64, metrics: usize) -> f64 {
    alpha / metrics.max(1) as f64
}

/// Settings for the judge's tests: one-sided, 95%, 30 s intervals, default minimum.
#[cfg(test)]
pub(crate) fn test_config(relative: f64, absolute: f64) -> JudgeConfig {
    JudgeConfig {
        direction: Direction::Increase,
        tolerance: Tolerance { relative, absolute },
        alpha: 0.05,
        beta: 0.05,
        interval: Duration::from_secs(30),
        minimum: DEFAULT_MINIMUM,
    }
}
