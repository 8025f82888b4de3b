//! The per-Rollout series: what a scrape shows, the cardinality bound under
//! churn, and nothing left of a deleted Rollout.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Metrics;
use super::rollout::BOUNDS;
use crate::crd::{AbortStatus, AnalysisPhase, RevertState, RolloutPhase, RolloutStatus};

/// Series per (metric name, rollout) in the text a scrape returns.
fn series_per_rollout(text: &str) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(start) = line.find("rollout=\"") else {
            continue;
        };
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let rest = &line[start + "rollout=\"".len()..];
        let rollout = rest.split('"').next().unwrap_or_default();
        *counts
            .entry((name.to_string(), rollout.to_string()))
            .or_default() += 1;
    }
    counts
}

fn status(phase: RolloutPhase, step: i32, weight: i32, canary: &str) -> RolloutStatus {
    RolloutStatus {
        phase: Some(phase),
        stable_revision: Some("stable1".into()),
        stable_images: vec!["example.com/web:1.0.0".into()],
        canary_revision: Some(canary.into()),
        canary_images: vec![format!("example.com/web:{canary}")],
        current_step_index: Some(step),
        step_started_at: Some(Time(Timestamp::from_second(1_700_000_000).expect("time"))),
        current_weight: weight,
        desired_weight: weight,
        ..RolloutStatus::default()
    }
}

fn aborted(revision: &str, reason: &str, second: i64) -> RolloutStatus {
    let mut s = status(RolloutPhase::Aborted, 1, 0, revision);
    s.abort = Some(AbortStatus {
        revision: revision.into(),
        reason: reason.into(),
        message: "worse".into(),
        at: Time(Timestamp::from_second(second).expect("time")),
        step_index: 1,
        weight: 25,
        cannot_tell: false,
        keep_git: false,
    });
    s
}

#[test]
fn a_scrape_shows_each_rollout_once_with_its_current_labels() {
    let metrics = Metrics::default();
    let first = status(RolloutPhase::Progressing, 1, 25, "canary1");
    metrics.rollout_status("shop", "web", None, &first);
    let second = status(RolloutPhase::Paused, 2, 50, "canary2");
    metrics.rollout_status("shop", "web", Some(&first), &second);
    let text = metrics.render();
    let phase = |p: &str| {
        format!("sluice_rollout_phase{{namespace=\"shop\",rollout=\"web\",phase=\"{p}\"}} 1")
    };
    assert!(text.contains(&phase("Paused")), "{text}");
    assert!(!text.contains(&phase("Progressing")), "{text}");
    assert!(
        text.contains("sluice_rollout_canary_weight{namespace=\"shop\",rollout=\"web\"} 50"),
        "{text}"
    );
    assert!(
        text.contains("sluice_rollout_step{namespace=\"shop\",rollout=\"web\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("role=\"canary\",revision=\"canary2\",image=\"example.com/web:canary2\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("canary1"),
        "old revision left behind: {text}"
    );
    assert!(
        text.contains("sluice_rollout_step_started_timestamp_seconds{namespace=\"shop\",rollout=\"web\"} 1700000000"),
        "{text}"
    );
}

#[test]
fn an_abort_counts_once_and_times_the_traffic_revert_once() {
    let metrics = Metrics::default();
    let before = status(RolloutPhase::Progressing, 1, 25, "bad");
    let abort = aborted("bad", "AnalysisFailed", Timestamp::now().as_second() - 2);
    metrics.rollout_status("shop", "web", Some(&before), &abort);
    // The same status seen again (a stale cache, a later reconcile) is no new abort.
    metrics.rollout_status("shop", "web", Some(&before), &abort);
    metrics.rollout_status("shop", "web", Some(&abort), &abort);
    let text = metrics.render();
    assert!(
        text.contains("sluice_rollout_aborts_total{namespace=\"shop\",rollout=\"web\",reason=\"AnalysisFailed\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sluice_abort_to_traffic_zero_seconds_count 1"),
        "{text}"
    );
    // About two seconds: in the 2.5 s bucket, not the 1 s one.
    assert!(
        text.contains("sluice_abort_to_traffic_zero_seconds_bucket{le=\"1.0\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("sluice_abort_to_traffic_zero_seconds_bucket{le=\"5.0\"} 1"),
        "{text}"
    );
}

#[test]
fn a_restarted_controller_does_not_count_an_old_abort_again() {
    let metrics = Metrics::default();
    let abort = aborted("bad", "AnalysisFailed", 1_700_000_000);
    metrics.rollout_status("shop", "web", Some(&abort), &abort);
    let text = metrics.render();
    assert!(
        text.contains("reason=\"AnalysisFailed\"} 0"),
        "created at 0, not counted: {text}"
    );
    assert!(
        text.contains("sluice_abort_to_traffic_zero_seconds_count 0"),
        "{text}"
    );
}

#[test]
fn tasks_finishing_for_an_unknown_or_deleted_rollout_record_nothing() {
    let metrics = Metrics::default();
    metrics.git_revert("shop", "gone", RevertState::Reverted, None);
    metrics.measured("shop", "gone", "errors", AnalysisPhase::Failed);
    metrics.analysis_finished("shop", "gone", AnalysisPhase::Failed);
    let text = metrics.render();
    assert!(!text.contains("rollout=\"gone\""), "{text}");
}

/// The documented bound holds however often labels change, and a deleted
/// Rollout leaves no series at all.
#[test]
fn series_per_rollout_stay_within_the_bound_under_churn_and_go_with_the_rollout() {
    let metrics = Metrics::default();
    let rollouts = ["web", "api", "worker"];
    let phases = RolloutPhase::ALL;
    let reasons = (0..40).map(|i| format!("Reason{i}")).collect::<Vec<_>>();
    for round in 0..300 {
        for (i, name) in rollouts.iter().enumerate() {
            let canary = format!("rev{round}");
            let mut s = status(
                phases[(round + i) % phases.len()],
                round as i32 % 7,
                round as i32 % 101,
                &canary,
            );
            s.stable_revision = Some(format!("stable{}", round / 3));
            s.stable_images = vec![format!("example.com/{name}:{}", round / 3)];
            if round % 4 == 0 {
                let mut a = aborted(
                    &canary,
                    &reasons[round % reasons.len()],
                    1_700_000_000 + round as i64,
                );
                a.stable_revision = s.stable_revision.clone();
                metrics.rollout_status("shop", name, Some(&s), &a);
            }
            metrics.rollout_status("shop", name, None, &s);
            let metric = format!("metric-{}", round % 30);
            let verdict = [
                AnalysisPhase::Running,
                AnalysisPhase::Failed,
                AnalysisPhase::Pending,
            ][round % 3];
            metrics.measured("shop", name, &metric, verdict);
            metrics.analysis_finished(
                "shop",
                name,
                [AnalysisPhase::Failed, AnalysisPhase::Running][round % 2],
            );
            let outcome = [
                RevertState::Reverted,
                RevertState::Pushing,
                RevertState::Failed,
            ][round % 3];
            metrics.git_revert("shop", name, outcome, None);
        }
    }
    let counts = series_per_rollout(&metrics.render());
    let bounds: BTreeMap<&str, usize> = BOUNDS.into_iter().collect();
    for ((name, rollout), count) in &counts {
        let bound = bounds
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} is per-Rollout but has no stated bound"));
        assert!(
            count <= bound,
            "{name} of {rollout}: {count} series, bound {bound}"
        );
    }
    // The churn reached the bounds that are caps (so the test can fail).
    for capped in [
        "sluice_rollout_aborts_total",
        "sluice_analysis_measurements_total",
    ] {
        assert_eq!(
            counts.get(&(capped.to_string(), "web".to_string())),
            bounds.get(capped),
            "{capped}"
        );
    }
    let total: usize = counts.values().sum();
    let bound: usize = BOUNDS.iter().map(|(_, n)| n).sum();
    assert!(
        total <= bound * rollouts.len(),
        "{total} series for 3 Rollouts"
    );

    metrics.forget_rollout("shop", "api");
    let text = metrics.render();
    assert!(!text.contains("rollout=\"api\""), "series left: {text}");
    assert!(text.contains("rollout=\"web\""));
    for name in rollouts {
        metrics.forget_rollout("shop", name);
    }
    let text = metrics.render();
    assert!(!text.contains("rollout=\""), "series left: {text}");
    assert!(
        text.contains("sluice_rollouts{phase=\"Aborted\"} 0"),
        "{text}"
    );
}

#[test]
fn the_error_count_exists_at_zero_before_the_first_error() {
    let text = Metrics::default().render();
    assert!(
        text.contains("sluice_reconciles_total{result=\"error\"} 0"),
        "{text}"
    );
    // `ok` comes with the first reconcile: tests wait for it as a sign of life.
    assert!(!text.contains("result=\"ok\""), "{text}");
}
