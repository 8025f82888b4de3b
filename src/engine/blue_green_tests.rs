//! The blue-green machine, transition by transition, on the in-memory cluster.

use std::time::Duration;

use super::hash::pod_template_hash;
use super::plan::Write;
use super::testkit::{Sim, blue_green_rollout, template};
use crate::crd::{
    AnalysisPhase, AnalysisTemplateRef, BlueGreenStrategy, PromotionAnalysis, RolloutPhase,
};

const SEC: Duration = Duration::from_secs(1);

fn hash(image: &str) -> String {
    pod_template_hash(&template(image))
}

fn analysis() -> Option<PromotionAnalysis> {
    Some(PromotionAnalysis {
        templates: vec![AnalysisTemplateRef {
            template_name: "error-rate".into(),
            ..Default::default()
        }],
        args: Vec::new(),
    })
}

/// Healthy on web:1, then web:2 pushed.
fn updating(gateway: bool, edit: impl FnOnce(&mut BlueGreenStrategy)) -> Sim {
    let mut sim = Sim::new(blue_green_rollout(4, gateway, edit));
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    sim.set_image("web:2");
    sim
}

fn stage(sim: &Sim) -> String {
    sim.rollout
        .status
        .as_ref()
        .and_then(|s| s.blue_green.as_ref())
        .map(|b| b.stage.to_string())
        .unwrap_or_default()
}

/// Index of the first plan that points `service` at `revision`.
fn first_pointing(sim: &Sim, service: &str, revision: &str) -> Option<usize> {
    sim.plans.iter().position(|p| {
        p.writes.iter().any(|w| {
            matches!(w, Write::SelectRevision { service: s, revision: r } if s == service && r == revision)
        })
    })
}

/// Index of the first plan that scales `revision` to `replicas`.
fn first_scaling(sim: &Sim, revision: &str, replicas: i32) -> Option<usize> {
    sim.plans.iter().position(|p| {
        p.writes.iter().any(|w| {
            matches!(w, Write::ApplyReplicaSet(rs) if rs.hash == revision && rs.replicas == replicas)
        })
    })
}

#[test]
fn a_healthy_update_previews_then_switches_once_every_new_pod_is_ready() {
    let mut sim = updating(false, |b| b.preview_replica_count = Some(2));
    let (old, new) = (hash("web:1"), hash("web:2"));
    sim.tick(SEC);
    assert_eq!(stage(&sim), "Preview");
    assert_eq!(
        sim.replicas_of(&new),
        Some(2),
        "preview at previewReplicaCount"
    );
    assert_eq!(sim.selector_of("web-canary"), Some(new.clone()));
    assert_eq!(sim.selector_of("web-stable"), Some(old.clone()));
    sim.run_until(SEC, 20, |s| s.phase() == Some(RolloutPhase::Healthy));
    let status = sim.rollout.status.clone().unwrap_or_default();
    assert_eq!(status.stable_revision, Some(new.clone()));
    assert_eq!(sim.selector_of("web-stable"), Some(new.clone()));
    // Scaled to full size in one tick, switched in a later one: the pods were ready first.
    let full = first_scaling(&sim, &new, 4).expect("scaled to full size");
    let switched = first_pointing(&sim, "web-stable", &new).expect("switched");
    assert!(
        full < switched,
        "scaled at plan {full}, switched at plan {switched}"
    );
    // The old version stays warm for scaleDownDelaySeconds (30 s), then goes.
    assert_eq!(sim.replicas_of(&old), Some(4));
    let promotion = status.blue_green.expect("blue-green status");
    assert_eq!(promotion.stage, crate::crd::BlueGreenStage::Promoted);
    assert!(promotion.scale_down_at.is_some());
    sim.run_until(SEC, 40, |s| s.replicas_of(&old) == Some(0));
    assert!(
        sim.rollout
            .status
            .as_ref()
            .is_some_and(|s| s.blue_green.is_none())
    );
    assert_eq!(status.last_promotion.map(|p| p.previous), Some(old));
}

#[test]
fn the_active_service_never_selects_a_version_that_is_not_all_ready() {
    let mut sim = updating(false, |_| {});
    let new = hash("web:2");
    sim.broken.push(new.clone());
    for _ in 0..30 {
        sim.tick(SEC);
        assert_ne!(sim.selector_of("web-stable"), Some(new.clone()));
    }
    assert_eq!(stage(&sim), "Preview");
    assert_eq!(sim.phase(), Some(RolloutPhase::Progressing));
}

#[test]
fn without_auto_promotion_it_waits_paused_for_promote() {
    let mut sim = updating(false, |b| {
        b.auto_promotion_enabled = Some(false);
        b.preview_replica_count = Some(1);
    });
    let new = hash("web:2");
    for _ in 0..10 {
        sim.tick(SEC);
    }
    assert_eq!(sim.phase(), Some(RolloutPhase::Paused));
    assert_eq!(stage(&sim), "AwaitingPromotion");
    assert_eq!(
        sim.replicas_of(&new),
        Some(1),
        "no full size before the promote"
    );
    sim.annotate(super::controls::PROMOTE, "p1");
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    assert_eq!(sim.selector_of("web-stable"), Some(new));
}

#[test]
fn auto_promotion_seconds_delays_the_switch_and_status_says_when() {
    let mut sim = updating(false, |b| b.auto_promotion_seconds = Some(60));
    let new = hash("web:2");
    for _ in 0..5 {
        sim.tick(SEC);
    }
    let status = sim.rollout.status.clone().unwrap_or_default();
    let at = status
        .blue_green
        .and_then(|b| b.auto_promote_at)
        .expect("autoPromoteAt");
    assert!(at.0 > sim.now, "in the future");
    assert!(status.message.unwrap_or_default().contains("switching in"));
    assert_ne!(sim.selector_of("web-stable"), Some(new.clone()));
    let ticks = sim.run_until(SEC, 90, |s| {
        s.selector_of("web-stable") == Some(new.clone())
    });
    assert!(ticks >= 50, "switched after {ticks} s");
}

#[test]
fn a_failed_pre_promotion_analysis_aborts_without_ever_switching() {
    let mut sim = updating(false, |b| {
        b.pre_promotion_analysis = analysis();
        b.preview_replica_count = Some(2);
    });
    let new = hash("web:2");
    sim.run_until(SEC, 10, |s| stage(s) == "PrePromotionAnalysis");
    let run = sim.observed.analysis_runs[0]
        .metadata
        .name
        .clone()
        .unwrap_or_default();
    assert_eq!(run, format!("web-{new}-pre"));
    sim.set_analysis(AnalysisPhase::Failed, "errors 9% vs 0.5%");
    sim.tick(SEC);
    let status = sim.rollout.status.clone().unwrap_or_default();
    assert_eq!(sim.phase(), Some(RolloutPhase::Aborted));
    assert_eq!(
        status.abort.map(|a| a.reason),
        Some("PrePromotionAnalysisFailed".into())
    );
    assert_eq!(
        first_pointing(&sim, "web-stable", &new),
        None,
        "never switched"
    );
    assert_eq!(
        first_scaling(&sim, &new, 4),
        None,
        "never scaled up for a switch"
    );
    // The aborted preview goes after abortScaleDownDelaySeconds.
    sim.run_until(SEC, 40, |s| s.replicas_of(&new) == Some(0));
    assert_eq!(stage(&sim), "Aborted");
}

#[test]
fn a_failed_post_promotion_analysis_switches_back_at_once() {
    let mut sim = updating(false, |b| b.post_promotion_analysis = analysis());
    let (old, new) = (hash("web:1"), hash("web:2"));
    sim.run_until(SEC, 20, |s| stage(s) == "PostPromotionAnalysis");
    assert_eq!(sim.selector_of("web-stable"), Some(new.clone()));
    assert_eq!(
        sim.replicas_of(&old),
        Some(4),
        "old version warm during the analysis"
    );
    assert_eq!(sim.phase(), Some(RolloutPhase::Progressing));
    sim.set_analysis(AnalysisPhase::Failed, "errors 9%");
    let plan = sim.tick(SEC);
    assert!(
        plan.writes.iter().any(|w| matches!(w, Write::SelectRevision { service, revision } if service == "web-stable" && *revision == old)),
        "switched back in the same reconcile: {:?}",
        plan.writes
    );
    assert_eq!(sim.selector_of("web-stable"), Some(old.clone()));
    assert_eq!(sim.phase(), Some(RolloutPhase::Aborted));
    let status = sim.rollout.status.clone().unwrap_or_default();
    assert_eq!(
        status.abort.map(|a| a.reason),
        Some("PostPromotionAnalysisFailed".into())
    );
    assert_eq!(status.stable_revision, Some(old));
}

#[test]
fn a_passed_post_promotion_analysis_promotes() {
    let mut sim = updating(false, |b| b.post_promotion_analysis = analysis());
    sim.run_until(SEC, 20, |s| stage(s) == "PostPromotionAnalysis");
    sim.set_analysis(AnalysisPhase::Successful, "fine");
    sim.run_until(SEC, 5, |s| s.phase() == Some(RolloutPhase::Healthy));
    let status = sim.rollout.status.clone().unwrap_or_default();
    assert_eq!(status.stable_revision, Some(hash("web:2")));
}

#[test]
fn with_a_route_the_switch_is_a_weight_flip_before_the_selector_moves() {
    let mut sim = updating(true, |_| {});
    let (old, new) = (hash("web:1"), hash("web:2"));
    let mut seen = Vec::new();
    for _ in 0..20 {
        sim.tick(SEC);
        seen.push((
            sim.selector_of("web-stable"),
            sim.backend_weight("web-canary"),
        ));
        if sim.phase() == Some(RolloutPhase::Healthy) {
            break;
        }
    }
    // Preview backend takes everything while active still selects the old version,
    // then the active Service moves, then the route returns to the active backend.
    let flip = seen
        .iter()
        .position(|(active, preview)| *active == Some(old.clone()) && *preview == 100)
        .expect("route flip first");
    let moved = seen
        .iter()
        .position(|(active, _)| *active == Some(new.clone()))
        .expect("active moved");
    assert!(flip < moved, "{seen:?}");
    assert_eq!(sim.backend_weight("web-canary"), 0);
    assert_eq!(sim.backend_weight("web-stable"), 100);
    assert_eq!(sim.phase(), Some(RolloutPhase::Healthy));
}

#[test]
fn an_operator_abort_keeps_the_old_version_active_and_retry_starts_over() {
    let mut sim = updating(false, |b| b.auto_promotion_enabled = Some(false));
    let (old, new) = (hash("web:1"), hash("web:2"));
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Paused));
    sim.annotate(super::controls::ABORT, "a1");
    sim.tick(SEC);
    assert_eq!(sim.phase(), Some(RolloutPhase::Aborted));
    assert_eq!(sim.selector_of("web-stable"), Some(old.clone()));
    assert_eq!(sim.selector_of("web-canary"), Some(old));
    sim.annotate(super::controls::RETRY, "r1");
    let plan = sim.tick(SEC);
    assert!(plan.events.iter().any(|e| e.reason == "Retry"));
    assert!(
        sim.rollout
            .status
            .as_ref()
            .is_some_and(|s| s.abort.is_none())
    );
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Paused));
    assert_eq!(sim.selector_of("web-canary"), Some(new));
}

#[test]
fn changing_strategy_in_flight_restarts_the_update_under_the_new_one() {
    // A canary at 25% on the route…
    let mut sim = Sim::new(super::testkit::rollout(
        4,
        Some(vec![
            super::testkit::weight(25),
            super::testkit::pause(None),
        ]),
        true,
    ));
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    sim.set_image("web:2");
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Paused));
    assert_eq!(sim.backend_weight("web-canary"), 25);
    // …then the spec switches to blue-green with the same Services and route.
    let blue_green = blue_green_rollout(4, true, |_| {});
    sim.rollout.spec.strategy = blue_green.spec.strategy;
    let plan = sim.tick(SEC);
    assert!(
        plan.events.iter().any(|e| e.reason == "StrategyChanged"),
        "{:?}",
        plan.events
    );
    assert_eq!(
        sim.backend_weight("web-canary"),
        0,
        "traffic back on stable at once"
    );
    let status = sim.rollout.status.clone().unwrap_or_default();
    assert_eq!(status.strategy.as_deref(), Some("BlueGreen"));
    assert_eq!(status.current_step_index, None);
    sim.run_until(SEC, 20, |s| s.phase() == Some(RolloutPhase::Healthy));
    assert_eq!(sim.selector_of("web-stable"), Some(hash("web:2")));
}

#[test]
fn an_operator_pause_holds_the_switch_until_resumed() {
    let mut sim = updating(false, |_| {});
    let new = hash("web:2");
    sim.annotate(super::controls::PAUSED, "true");
    for _ in 0..10 {
        sim.tick(SEC);
    }
    assert_eq!(sim.phase(), Some(RolloutPhase::Paused));
    assert_ne!(sim.selector_of("web-stable"), Some(new.clone()));
    if let Some(annotations) = sim.rollout.metadata.annotations.as_mut() {
        annotations.remove(super::controls::PAUSED);
    }
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    assert_eq!(sim.selector_of("web-stable"), Some(new));
}

#[test]
fn promote_full_skips_both_analyses() {
    let mut sim = updating(false, |b| {
        b.pre_promotion_analysis = analysis();
        b.post_promotion_analysis = analysis();
    });
    sim.run_until(SEC, 10, |s| stage(s) == "PrePromotionAnalysis");
    sim.annotate(super::controls::PROMOTE_FULL, "f1");
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    assert_eq!(sim.selector_of("web-stable"), Some(hash("web:2")));
    assert_eq!(sim.observed.analysis_runs.len(), 1, "no post-promotion run");
}
