//! Samples judge: exact sign test on per-interval pairs, NaN pairing, and
//! coherence of the reported numbers with the verdict.

use super::*;
use crate::analysis::judge::test_config as config;
use crate::analysis::simulate::{LatencyTraffic, latency_run};

#[test]
fn mann_whitney_matches_a_hand_count() {
    // Canary above baseline in 8 of 9 pairs, one tie: U = 8.5.
    let (u, z) = mann_whitney(&[3.0, 5.0, 7.0], &[1.0, 2.0, 3.0]);
    assert!((u - 8.5).abs() < 1e-12, "{u}");
    assert!(z > 1.5, "{z}");
}

#[test]
fn hodges_lehmann_recovers_a_shift_and_a_clear_shift_is_worse() {
    let baseline: Vec<f64> = (0..12).map(|i| 100.0 + (i % 10) as f64).collect();
    let canary: Vec<f64> = baseline.iter().map(|b| b + 20.0).collect();
    let v = judge_samples(&canary, &baseline, &config(0.1, 0.0));
    assert!((v.shift - 20.0).abs() < 1e-9, "{v:?}");
    assert!(v.shift_interval.0 <= 20.0 && 20.0 <= v.shift_interval.1);
    assert!(v.effect_size > 0.9);
    assert_eq!(v.decision, Decision::Worse);
}

#[test]
fn heavy_tailed_p99_of_the_same_version_is_rarely_worse() {
    // Issue #11: 9-11% false aborts from overlapping windows and a repeated instant.
    let mut rng = fastrand::Rng::with_seed(21);
    let runs = 200;
    let aborts = (0..runs)
        .filter(|_| {
            let r = latency_run(&mut rng, &LatencyTraffic::default(), 0.25);
            (1..=r.canary.len()).any(|k| {
                judge_samples(&r.canary[..k], &r.baseline[..k], &config(0.0, 0.0)).decision
                    == Decision::Worse
            })
        })
        .count();
    assert!(aborts as f64 / runs as f64 <= 0.05, "{aborts} of {runs}");
}

#[test]
fn a_missing_value_drops_its_pair_and_never_shifts_later_pairs() {
    // Issue #11: NaNs dropped per arm moved every later canary value onto another interval.
    let baseline = [1.0, f64::NAN, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
    let canary = [f64::NAN, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
    let v = judge_samples(&canary, &baseline, &config(0.1, 0.0));
    assert_eq!(v.pairs, 6);
    assert_eq!(
        v.beyond, 0,
        "no canary value is beyond its own interval's baseline"
    );
}
