//! Counts judge: seeded statistical regression tests on the simulator's
//! shapes (a few hundred runs each) and the bugs of issue #11.

use std::time::Duration;

use super::*;
use crate::analysis::judge::{Direction, Minimum, test_config as config};
use crate::analysis::simulate::{Bursts, ErrorTraffic, LatencyTraffic, error_run, latency_run};

/// First decision over the run, looked at after every interval.
fn first_decision(run: &[CountsInterval], config: &JudgeConfig) -> Decision {
    (1..=run.len())
        .map(|k| judge_counts(&run[..k], config).decision)
        .find(|d| *d != Decision::Undecided)
        .unwrap_or(Decision::Undecided)
}

fn share(runs: usize, seed: u64, traffic: &ErrorTraffic, cfg: &JudgeConfig, d: Decision) -> f64 {
    let mut rng = fastrand::Rng::with_seed(seed);
    let hits = (0..runs)
        .filter(|_| first_decision(&error_run(&mut rng, traffic), cfg) == d)
        .count();
    hits as f64 / runs as f64
}

#[test]
fn bursts_per_arm_do_not_abort_a_canary_of_the_same_version() {
    // Issue #11: 26% false aborts without tolerance.
    let traffic = ErrorTraffic {
        bursts: Some(Bursts {
            every: 180.0,
            length: 30.0,
            rate: 0.2,
            shared: false,
        }),
        ..Default::default()
    };
    let rate = share(300, 1, &traffic, &config(0.0, 0.0), Decision::Worse);
    assert!(rate <= 0.05, "false aborts {rate}");
}

#[test]
fn a_doubled_error_rate_never_passes_and_is_mostly_caught_in_ten_minutes() {
    // Issue #11: passed 9-19% of the time, most of them after the first interval.
    let traffic = ErrorTraffic {
        canary_factor: 2.0,
        ..Default::default()
    };
    let cfg = config(0.25, 0.002);
    assert!(share(300, 2, &traffic, &cfg, Decision::NotWorse) <= 0.05);
    let caught = share(300, 3, &traffic, &cfg, Decision::Worse);
    // The bench's 1000 runs give 90.7% [88.7-92.3]; 300 seeded runs sit near that.
    assert!(caught >= 0.88, "caught {caught}");
}

#[test]
fn slow_spells_that_last_minutes_on_one_arm_do_not_abort_the_same_version() {
    // Per-arm slowdowns with lag-1 autocorrelation 0.7: the slower-than-0.25 s
    // fraction of each arm wanders for minutes. Lag-1 Newey-West alone gave 7.1%
    // false aborts here; the dependence factor on the excess keeps it under alpha.
    let traffic = LatencyTraffic {
        autocorrelation: 0.7,
        slowdown_spread: 0.15,
        ..Default::default()
    };
    let cfg = config(0.25, 0.002);
    let mut rng = fastrand::Rng::with_seed(11);
    let runs = 400;
    let aborts = (0..runs)
        .filter(|_| {
            let run = latency_run(&mut rng, &traffic, 0.25);
            first_decision(&run.slow, &cfg) == Decision::Worse
        })
        .count();
    let rate = aborts as f64 / runs as f64;
    assert!(rate <= 0.05, "false aborts {rate}");
}

#[test]
fn a_tenfold_error_rate_on_too_little_traffic_is_never_a_pass() {
    // Issue #11: canary 10x worse at 0.2 req/s passed 43%.
    let traffic = ErrorTraffic {
        canary_rps: 0.2,
        baseline_rps: 0.2,
        canary_factor: 10.0,
        ..Default::default()
    };
    let rate = share(300, 4, &traffic, &config(0.25, 0.002), Decision::NotWorse);
    assert_eq!(rate, 0.0);
}

#[test]
fn the_null_is_not_built_from_an_uncapped_baseline_bound() {
    // Issue #11: tiny baseline exposure gave an upper bound far above 1, and a
    // canary at 50% errors was "not worse" than it.
    let interval = CountsInterval {
        canary_events: 500.0,
        canary_exposure: 1000.0,
        baseline_events: 0.0,
        baseline_exposure: 1.0,
    };
    let verdict = judge_counts(&[interval; 12], &config(0.1, 0.0));
    assert_ne!(verdict.decision, Decision::NotWorse, "{verdict:?}");
}

#[test]
fn a_pass_needs_the_minimum_exposure_and_says_how_much_is_missing() {
    let healthy = CountsInterval {
        canary_events: 0.0,
        canary_exposure: 100.0,
        baseline_events: 0.0,
        baseline_exposure: 100.0,
    };
    let cfg = config(0.1, 0.05);
    // Ten quiet intervals (5 min) but 1000 requests per arm: short of 2000.
    let verdict = judge_counts(&[healthy; 10], &cfg);
    assert_eq!(verdict.decision, Decision::Undecided);
    let needs = verdict.needs.expect("says what is missing");
    assert!(needs.contains("1000 more requests per arm"), "{needs}");
    // With the exposure reached the same data passes.
    let verdict = judge_counts(&[healthy; 20], &cfg);
    assert_eq!(verdict.decision, Decision::NotWorse, "{verdict:?}");
    // And a shorter minimum lets it pass sooner, never before its own floor.
    let quick = JudgeConfig {
        minimum: Minimum {
            intervals: 3,
            duration: Duration::from_secs(60),
            exposure: 200.0,
        },
        ..cfg
    };
    assert_eq!(
        judge_counts(&[healthy; 2], &quick).decision,
        Decision::Undecided
    );
    assert_eq!(
        judge_counts(&[healthy; 3], &quick).decision,
        Decision::NotWorse
    );
}

#[test]
fn a_single_canary_burst_is_not_a_regression() {
    let quiet = CountsInterval {
        canary_events: 6.0,
        canary_exposure: 600.0,
        baseline_events: 6.0,
        baseline_exposure: 600.0,
    };
    let mut run = vec![quiet; 9];
    run.push(CountsInterval {
        canary_events: 120.0,
        ..quiet
    });
    assert_ne!(
        judge_counts(&run, &config(0.0, 0.0)).decision,
        Decision::Worse
    );
}

#[test]
fn a_clear_regression_fails_and_its_interval_says_so() {
    let bad = CountsInterval {
        canary_events: 60.0,
        canary_exposure: 600.0,
        baseline_events: 6.0,
        baseline_exposure: 600.0,
    };
    let verdict = judge_counts(&[bad; 6], &config(0.1, 0.005));
    assert_eq!(verdict.decision, Decision::Worse);
    assert!(verdict.difference_interval.0 > 0.005, "{verdict:?}");
    assert_eq!(
        (verdict.canary_events, verdict.canary_exposure),
        (360.0, 3600.0)
    );
}

#[test]
fn decrease_direction_flags_a_drop_and_either_flags_both() {
    let drop = CountsInterval {
        canary_events: 400.0,
        canary_exposure: 1000.0,
        baseline_events: 900.0,
        baseline_exposure: 1000.0,
    };
    let mut c = config(0.05, 0.0);
    c.direction = Direction::Decrease;
    assert_eq!(judge_counts(&[drop; 6], &c).decision, Decision::Worse);
    c.direction = Direction::Either;
    assert_eq!(judge_counts(&[drop; 6], &c).decision, Decision::Worse);
    c.direction = Direction::Increase;
    assert_ne!(judge_counts(&[drop; 6], &c).decision, Decision::Worse);
}

#[test]
fn a_regression_that_starts_mid_step_never_passes() {
    // Issue #11: a regression that started late was never caught and the step
    // passed after 60 s. Now the pass waits for the minimum exposure, and the
    // late step (which looks like a slow spell) leaves the step Inconclusive.
    let traffic = ErrorTraffic {
        canary_factor: 3.0,
        regression_from: 240.0,
        ..Default::default()
    };
    let cfg = config(0.25, 0.002);
    assert_eq!(share(300, 12, &traffic, &cfg, Decision::NotWorse), 0.0);
}

#[test]
fn a_burst_that_lasts_four_intervals_on_one_arm_does_not_abort_the_same_version() {
    // Two-minute bursts at 10% about every ten minutes, independently per arm:
    // reading dependence from the baseline alone gave 6.6% false aborts, as the
    // canary's burst barely shows in a quiet baseline.
    let traffic = ErrorTraffic {
        bursts: Some(Bursts {
            every: 600.0,
            length: 120.0,
            rate: 0.1,
            shared: false,
        }),
        ..Default::default()
    };
    let rate = share(400, 14, &traffic, &config(0.25, 0.002), Decision::Worse);
    assert!(rate <= 0.05, "false aborts {rate}");
}
