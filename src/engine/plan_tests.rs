//! Table-driven tests of `plan`, replaying whole rollouts with a fixed clock.

use std::time::Duration;

use super::hash::pod_template_hash;
use super::plan::{INVALID_RESYNC, Write};
use super::testkit::{Sim, analysis, pause, replica_set, rollout, template, weight};
use super::{Lookup, controls};
use crate::crd::{AnalysisPhase, RolloutPhase};

const SEC: Duration = Duration::from_secs(1);

fn hash(image: &str) -> String {
    pod_template_hash(&template(image))
}

/// A rollout that settled on web:1.
fn healthy(replicas: i32, steps: Option<Vec<crate::crd::CanaryStep>>, gateway: bool) -> Sim {
    let mut sim = Sim::new(rollout(replicas, steps, gateway));
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    sim
}

fn condition(sim: &Sim, kind: &str) -> (String, String) {
    let status = sim.rollout.status.clone().unwrap_or_default();
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
        .expect("condition");
    (c.status.clone(), c.reason.clone())
}

#[test]
fn first_template_becomes_stable_at_full_size() {
    let sim = healthy(3, None, true);
    let status = sim.rollout.status.clone().unwrap_or_default();
    assert_eq!(status.stable_revision, Some(hash("web:1")));
    assert_eq!(sim.replicas_of(&hash("web:1")), Some(3));
    assert_eq!(sim.selector_of("web-stable"), Some(hash("web:1")));
    assert_eq!(condition(&sim, "Ready"), ("True".into(), "Healthy".into()));
    assert_eq!(status.observed_generation, Some(1));
}

#[test]
fn gateway_canary_walks_every_weight_then_promotes() {
    let steps = vec![
        weight(10),
        pause(Some("30s")),
        weight(25),
        pause(Some("30s")),
        weight(50),
        weight(100),
    ];
    let mut sim = healthy(4, Some(steps), true);
    sim.set_image("web:2");
    let mut seen = Vec::new();
    sim.run_until(SEC, 200, |s| {
        s.phase() == Some(RolloutPhase::Healthy)
            && s.rollout
                .status
                .as_ref()
                .and_then(|x| x.stable_revision.clone())
                == Some(hash("web:2"))
    });
    for plan in &sim.plans {
        for write in &plan.writes {
            if let Write::SetRouteWeights { canary_weight, .. } = write {
                seen.push(*canary_weight);
            }
        }
    }
    assert_eq!(
        seen,
        vec![0, 10, 25, 50, 100, 0],
        "the route claimed at its weight, then weights in order, back to 0 once stable is the new version"
    );
    assert_eq!(sim.selector_of("web-stable"), Some(hash("web:2")));
    assert_eq!(sim.selector_of("web-canary"), Some(hash("web:2")));
    // The old stable keeps its pods for the scale-down delay, then goes to zero.
    assert_eq!(sim.replicas_of(&hash("web:1")), Some(4));
    sim.run_until(SEC, 40, |s| s.replicas_of(&hash("web:1")) == Some(0));
    let reasons: Vec<String> = sim
        .plans
        .iter()
        .flat_map(|p| p.events.iter().map(|e| e.reason.clone()))
        .collect();
    assert!(
        reasons.contains(&"CanaryStarted".to_string()) && reasons.contains(&"Promoted".to_string()),
        "{reasons:?}"
    );
}

#[test]
fn pause_steps_last_their_duration() {
    let mut sim = healthy(
        2,
        Some(vec![weight(20), pause(Some("1m")), weight(100)]),
        true,
    );
    sim.set_image("web:2");
    sim.run_until(SEC, 10, |s| {
        s.rollout.status.as_ref().and_then(|x| x.current_step_index) == Some(1)
    });
    let entered = sim.now;
    let ticks = sim.run_until(SEC, 100, |s| {
        s.rollout.status.as_ref().and_then(|x| x.current_step_index) == Some(2)
    });
    let waited = sim.now.duration_since(entered).as_secs();
    assert!(
        (59..=62).contains(&waited),
        "paused {waited}s over {ticks} ticks"
    );
    let plan = &sim.plans[sim.plans.len() - 5];
    assert!(plan.requeue_after <= Duration::from_secs(61));
}

#[test]
fn replica_ratio_approximates_weights_with_pod_counts() {
    let mut sim = healthy(
        4,
        Some(vec![weight(25), pause(None), weight(50), pause(None)]),
        false,
    );
    sim.set_image("web:2");
    sim.run_until(SEC, 20, |s| s.phase() == Some(RolloutPhase::Paused));
    let status = sim.rollout.status.clone().unwrap_or_default();
    assert_eq!(status.traffic_routing.as_deref(), Some("ReplicaRatio"));
    assert_eq!(
        (
            sim.replicas_of(&hash("web:1")),
            sim.replicas_of(&hash("web:2"))
        ),
        (Some(3), Some(1))
    );
    assert_eq!(status.current_weight, 25);
    sim.annotate(controls::PROMOTE, "t1");
    sim.run_until(SEC, 20, |s| {
        s.rollout.status.as_ref().and_then(|x| x.current_step_index) == Some(3)
    });
    assert_eq!(
        (
            sim.replicas_of(&hash("web:1")),
            sim.replicas_of(&hash("web:2"))
        ),
        (Some(2), Some(2))
    );
    // The same token does not promote twice.
    sim.tick(SEC);
    assert_eq!(
        sim.rollout
            .status
            .as_ref()
            .and_then(|x| x.current_step_index),
        Some(3)
    );
    assert_eq!(sim.phase(), Some(RolloutPhase::Paused));
    sim.annotate(controls::PROMOTE, "t2");
    sim.run_until(SEC, 30, |s| s.phase() == Some(RolloutPhase::Healthy));
    assert_eq!(
        (
            sim.replicas_of(&hash("web:1")),
            sim.replicas_of(&hash("web:2"))
        ),
        (Some(0), Some(4))
    );
}

#[test]
fn replica_ratio_respects_surge_and_unavailability() {
    // 10 pods, maxSurge 25% = 3, maxUnavailable 0: never fewer than 10 ready, never more than 13 pods.
    let mut sim = healthy(10, Some(vec![weight(50), pause(None)]), false);
    sim.set_image("web:2");
    for _ in 0..30 {
        sim.tick(SEC);
        let total: i32 = sim
            .observed
            .replica_sets
            .iter()
            .filter_map(|r| r.spec.as_ref().and_then(|s| s.replicas))
            .sum();
        assert!(total <= 13, "surge exceeded: {total}");
    }
    assert_eq!(
        (
            sim.replicas_of(&hash("web:1")),
            sim.replicas_of(&hash("web:2"))
        ),
        (Some(5), Some(5))
    );
}

#[test]
fn indefinite_pause_waits_for_promote_and_promote_full_skips_the_rest() {
    let mut sim = healthy(
        2,
        Some(vec![
            weight(10),
            pause(None),
            weight(50),
            pause(None),
            weight(80),
        ]),
        true,
    );
    sim.set_image("web:2");
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Paused));
    assert_eq!(condition(&sim, "Progressing").1, "RolloutPaused");
    for _ in 0..5 {
        sim.tick(SEC);
    }
    assert_eq!(
        sim.rollout
            .status
            .as_ref()
            .and_then(|x| x.current_step_index),
        Some(1)
    );
    sim.annotate(controls::PROMOTE_FULL, "now");
    sim.run_until(SEC, 20, |s| s.phase() == Some(RolloutPhase::Healthy));
    assert_eq!(
        sim.rollout
            .status
            .as_ref()
            .and_then(|x| x.stable_revision.clone()),
        Some(hash("web:2"))
    );
}

#[test]
fn abort_puts_traffic_on_stable_at_once_and_scales_canary_down_later() {
    let mut sim = healthy(4, Some(vec![weight(50), pause(None)]), true);
    sim.set_image("web:2");
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Paused));
    assert_eq!(sim.route_weight(), 50);
    sim.annotate(controls::ABORT, "a1");
    let plan = sim.tick(SEC);
    assert_eq!(sim.route_weight(), 0, "weight 0 in the same reconcile");
    assert!(
        matches!(
            plan.writes.first(),
            Some(Write::SetRouteWeights {
                canary_weight: 0,
                ..
            })
        ),
        "route first: {:?}",
        plan.writes
    );
    let abort = plan.newly_aborted.expect("abort hook fires");
    assert_eq!((abort.reason.as_str(), abort.weight), ("AbortedByUser", 50));
    assert_eq!(sim.phase(), Some(RolloutPhase::Aborted));
    assert_eq!(
        condition(&sim, "Degraded"),
        ("True".into(), "AbortedByUser".into())
    );
    assert_eq!(
        sim.replicas_of(&hash("web:2")),
        Some(2),
        "canary kept warm during the abort delay"
    );
    sim.run_until(SEC, 40, |s| s.replicas_of(&hash("web:2")) == Some(0));
    assert!(
        sim.plans
            .iter()
            .rev()
            .take(30)
            .all(|p| p.newly_aborted.is_none()),
        "abort hook fires once"
    );
    // Retry starts over from the first step.
    sim.annotate(controls::RETRY, "r1");
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Paused));
    assert_eq!(sim.route_weight(), 50);
    assert!(
        sim.rollout
            .status
            .as_ref()
            .is_some_and(|s| s.abort.is_none())
    );
}

#[test]
fn replica_ratio_abort_removes_canary_pods_at_once() {
    let mut sim = healthy(4, Some(vec![weight(50), pause(None)]), false);
    sim.set_image("web:2");
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Paused));
    sim.annotate(controls::ABORT, "a1");
    sim.tick(SEC);
    assert_eq!(
        (
            sim.replicas_of(&hash("web:1")),
            sim.replicas_of(&hash("web:2"))
        ),
        (Some(4), Some(0))
    );
}

#[test]
fn operator_pause_holds_and_resume_continues() {
    let mut sim = healthy(
        2,
        Some(vec![weight(10), pause(Some("10s")), weight(100)]),
        true,
    );
    sim.annotate(controls::PAUSED, "true");
    sim.set_image("web:2");
    for _ in 0..30 {
        sim.tick(SEC);
    }
    assert_eq!(sim.phase(), Some(RolloutPhase::Paused));
    assert_eq!(
        sim.rollout
            .status
            .as_ref()
            .and_then(|x| x.pause_reason.clone())
            .as_deref(),
        Some("PausedByUser")
    );
    assert_eq!(
        sim.rollout
            .status
            .as_ref()
            .and_then(|x| x.current_step_index),
        Some(0)
    );
    sim.annotate(controls::PAUSED, "false");
    sim.run_until(SEC, 40, |s| s.phase() == Some(RolloutPhase::Healthy));
}

#[test]
fn a_new_template_supersedes_the_canary_in_flight() {
    let mut sim = healthy(2, Some(vec![weight(50), pause(None)]), true);
    sim.set_image("web:2");
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Paused));
    sim.set_image("web:3");
    let plan = sim.tick(SEC);
    // Traffic leaves the old canary before the canary Service moves to the new one.
    let route_at = plan.writes.iter().position(|w| {
        matches!(
            w,
            Write::SetRouteWeights {
                canary_weight: 0,
                ..
            }
        )
    });
    let svc_at = plan.writes.iter().position(
        |w| matches!(w, Write::SelectRevision { service, .. } if service == "web-canary"),
    );
    assert!(route_at.is_some() && route_at < svc_at, "{:?}", plan.writes);
    assert!(plan.events.iter().any(|e| e.reason == "Superseded"));
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Paused));
    assert_eq!(
        sim.rollout
            .status
            .as_ref()
            .and_then(|x| x.canary_revision.clone()),
        Some(hash("web:3"))
    );
    assert_eq!(sim.route_weight(), 50);
    sim.run_until(SEC, 40, |s| s.replicas_of(&hash("web:2")) == Some(0));
}

#[test]
fn back_to_the_stable_template_is_an_instant_rollback() {
    let mut sim = healthy(
        2,
        Some(vec![weight(25), pause(None), weight(75), pause(None)]),
        true,
    );
    sim.set_image("web:2");
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Paused));
    sim.set_image("web:1");
    let plan = sim.tick(SEC);
    assert_eq!(sim.route_weight(), 0);
    assert!(plan.events.iter().any(|e| e.reason == "RolledBack"));
    assert_eq!(sim.phase(), Some(RolloutPhase::Healthy));
    let status = sim.rollout.status.clone().unwrap_or_default();
    assert_eq!(
        (status.canary_revision, status.current_step_index),
        (None, None)
    );
}

#[test]
fn a_canary_that_never_gets_ready_hits_the_progress_deadline() {
    let mut r = rollout(2, Some(vec![weight(50), weight(100)]), true);
    r.spec.progress_deadline_seconds = Some(60);
    let mut sim = Sim::new(r);
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    sim.broken.push(hash("web:2"));
    sim.set_image("web:2");
    sim.run_until(Duration::from_secs(5), 20, |s| {
        s.phase() == Some(RolloutPhase::Degraded)
    });
    assert_eq!(
        condition(&sim, "Progressing"),
        ("False".into(), "ProgressDeadlineExceeded".into())
    );
    assert_eq!(
        sim.route_weight(),
        0,
        "no traffic ever reached pods that are not ready"
    );
}

#[test]
fn analysis_verdicts_drive_the_rollout() {
    let cases = [
        (AnalysisPhase::Successful, RolloutPhase::Healthy, None),
        (
            AnalysisPhase::Failed,
            RolloutPhase::Aborted,
            Some("AnalysisFailed"),
        ),
        // "We cannot tell" holds by default (analysisCannotTell: Hold).
        (AnalysisPhase::Error, RolloutPhase::Paused, None),
        (AnalysisPhase::Inconclusive, RolloutPhase::Paused, None),
    ];
    for (verdict, expected, abort_reason) in cases {
        let mut sim = healthy(
            2,
            Some(vec![weight(20), analysis("error-rate"), weight(100)]),
            true,
        );
        sim.set_image("web:2");
        sim.run_until(SEC, 10, |s| !s.observed.analysis_runs.is_empty());
        sim.tick(SEC);
        assert_eq!(
            sim.phase(),
            Some(RolloutPhase::Progressing),
            "waits for the verdict"
        );
        let run = &sim.observed.analysis_runs[0];
        assert_eq!(run.spec.canary_revision, hash("web:2"));
        sim.set_analysis(verdict, "error ratio 4.1% vs 0.5% (p=0.001)");
        sim.run_until(SEC, 20, |s| s.phase() == Some(expected));
        let status = sim.rollout.status.clone().unwrap_or_default();
        assert_eq!(
            status.abort.as_ref().map(|a| a.reason.as_str()),
            abort_reason,
            "{verdict:?}"
        );
        if let Some(abort) = status.abort {
            assert!(
                abort.message.contains("error ratio 4.1%"),
                "numbers reach the abort: {}",
                abort.message
            );
            assert_eq!(sim.route_weight(), 0);
        }
        assert_eq!(
            sim.observed.analysis_runs.len(),
            1,
            "one run per step, never recreated"
        );
    }
}

#[test]
fn a_superseded_canary_stops_its_analysis_and_history_stays_bounded() {
    let mut sim = healthy(
        2,
        Some(vec![weight(20), analysis("error-rate"), weight(100)]),
        true,
    );
    let mut runs_seen = Vec::new();
    // Seven canaries in a row, each superseded while its analysis runs.
    for version in 2..9 {
        sim.set_image(&format!("web:{version}"));
        sim.run_until(SEC, 20, |s| {
            s.observed
                .analysis_runs
                .iter()
                .any(|r| r.spec.canary_revision == hash(&format!("web:{version}")))
        });
        runs_seen.push(hash(&format!("web:{version}")));
        sim.tick(SEC);
        let running: Vec<_> = sim
            .observed
            .analysis_runs
            .iter()
            .filter(|r| r.status.as_ref().and_then(|s| s.phase) == Some(AnalysisPhase::Running))
            .map(|r| r.spec.canary_revision.clone())
            .collect();
        assert_eq!(
            running,
            vec![hash(&format!("web:{version}"))],
            "only the current canary's run measures"
        );
    }
    let kept = sim.observed.analysis_runs.len();
    assert!(
        kept <= crate::engine::plan::ANALYSIS_HISTORY + 1,
        "{kept} runs kept"
    );
    assert!(
        sim.observed
            .analysis_runs
            .iter()
            .all(|r| r.spec.canary_revision != runs_seen[0]),
        "the oldest run was deleted"
    );
}

fn with_background_analysis(mut sim: Sim, starting_step: i32) -> Sim {
    if let Some(canary) = sim.rollout.spec.strategy.canary.as_mut() {
        canary.analysis = Some(crate::crd::BackgroundAnalysis {
            templates: vec![crate::crd::AnalysisTemplateRef {
                template_name: "error-rate".into(),
                cluster_scope: false,
            }],
            args: vec![],
            starting_step: Some(starting_step),
        });
    }
    sim
}

fn background_runs(sim: &Sim) -> Vec<(String, Option<AnalysisPhase>, bool)> {
    sim.observed
        .analysis_runs
        .iter()
        .filter(|r| r.spec.background)
        .map(|r| {
            (
                r.metadata.name.clone().unwrap_or_default(),
                r.status.as_ref().and_then(|s| s.phase),
                r.spec.terminate,
            )
        })
        .collect()
}

#[test]
fn a_failing_background_analysis_aborts_mid_step() {
    let sim = healthy(4, Some(vec![weight(25), pause(None), weight(100)]), true);
    let mut sim = with_background_analysis(sim, 1);
    sim.set_image("web:2");
    sim.run_until(SEC, 20, |s| s.phase() == Some(RolloutPhase::Paused));
    sim.tick(SEC);
    assert_eq!(
        background_runs(&sim).len(),
        1,
        "starts at step index 1, the pause"
    );
    assert_eq!(sim.route_weight(), 25);
    sim.set_background_analysis(AnalysisPhase::Failed, "canary 9.8% vs baseline 0.5% errors");
    sim.tick(SEC);
    let status = sim.rollout.status.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(RolloutPhase::Aborted));
    let abort = status.abort.expect("abort");
    assert_eq!(abort.reason, "BackgroundAnalysisFailed");
    assert!(abort.message.contains("9.8%"), "{}", abort.message);
    assert_eq!(
        sim.route_weight(),
        0,
        "traffic back on stable in the same reconcile"
    );
}

#[test]
fn an_inconclusive_background_analysis_pauses_and_promote_restarts_it() {
    let sim = healthy(
        4,
        Some(vec![weight(25), pause(Some("1h")), weight(100)]),
        true,
    );
    let mut sim = with_background_analysis(sim, 0);
    sim.set_image("web:2");
    sim.run_until(SEC, 20, |s| {
        !background_runs(s).is_empty()
            && s.rollout
                .status
                .clone()
                .unwrap_or_default()
                .current_step_index
                == Some(1)
    });
    sim.set_background_analysis(AnalysisPhase::Inconclusive, "not enough traffic");
    sim.run_until(SEC, 5, |s| s.phase() == Some(RolloutPhase::Paused));
    let step_before = sim
        .rollout
        .status
        .clone()
        .unwrap_or_default()
        .current_step_index;
    sim.annotate(controls::PROMOTE, "ack");
    sim.tick(SEC);
    sim.tick(SEC);
    let runs = background_runs(&sim);
    assert_eq!(runs.len(), 2, "a fresh run: {runs:?}");
    assert_eq!(runs[1].1, Some(AnalysisPhase::Running));
    assert_eq!(
        sim.rollout
            .status
            .clone()
            .unwrap_or_default()
            .current_step_index,
        step_before,
        "acknowledging does not skip the step"
    );
    assert_ne!(sim.phase(), Some(RolloutPhase::Paused));
    // Promoted to the end: the background run is stopped.
    sim.annotate(controls::PROMOTE_FULL, "go");
    sim.run_until(SEC, 30, |s| s.phase() == Some(RolloutPhase::Healthy));
    sim.tick(SEC);
    assert!(
        background_runs(&sim)
            .iter()
            .all(|(_, phase, _)| phase.is_some_and(|p| p.is_finished())),
        "{:?}",
        background_runs(&sim)
    );
}

#[test]
fn a_dedicated_baseline_runs_beside_the_canary_at_its_size_and_weight() {
    let mut spec = rollout(
        10,
        Some(vec![
            weight(20),
            analysis("error-rate"),
            weight(60),
            pause(Some("10s")),
            weight(100),
        ]),
        true,
    );
    if let Some(canary) = spec.spec.strategy.canary.as_mut() {
        canary.baseline = Some(crate::crd::BaselineSpec {
            service: Some("web-baseline".into()),
        });
    }
    let mut sim = Sim::new(spec);
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    let stable = hash("web:1");
    let baseline = format!("{stable}-baseline");
    sim.set_image("web:2");
    sim.run_until(SEC, 20, |s| !s.observed.analysis_runs.is_empty());
    assert_eq!(sim.replicas_of(&baseline), Some(2), "the canary's size");
    assert_eq!(sim.selector_of("web-baseline"), Some(baseline.clone()));
    assert_eq!(
        (
            sim.backend_weight("web-stable"),
            sim.backend_weight("web-canary"),
            sim.backend_weight("web-baseline")
        ),
        (60, 20, 20),
        "the baseline takes the canary's share from stable"
    );
    let template_image = sim
        .observed
        .replica_sets
        .iter()
        .find(|rs| rs.metadata.name.as_deref() == Some(&format!("web-{baseline}")))
        .and_then(|rs| {
            rs.spec
                .clone()?
                .template?
                .spec?
                .containers
                .first()?
                .image
                .clone()
        });
    assert_eq!(
        template_image.as_deref(),
        Some("web:1"),
        "the stable template"
    );
    let run = &sim.observed.analysis_runs[0];
    assert!(run.spec.dedicated_baseline);
    assert_eq!(run.spec.stable_revision, baseline);
    assert_eq!(sim.replicas_of(&stable), Some(10), "stable keeps its size");

    sim.set_analysis(AnalysisPhase::Successful, "not worse");
    sim.run_until(SEC, 20, |s| s.backend_weight("web-canary") == 60);
    assert_eq!(
        (
            sim.backend_weight("web-stable"),
            sim.backend_weight("web-baseline")
        ),
        (0, 40),
        "above 50% the baseline gets what is left"
    );
    sim.run_until(SEC, 120, |s| s.phase() == Some(RolloutPhase::Healthy));
    sim.run_until(SEC, 60, |s| s.replicas_of(&baseline) == Some(0));
    assert_eq!(sim.backend_weight("web-baseline"), 0);
}

#[test]
fn invalid_specs_are_reported_without_writes_or_hot_loops() {
    type Mutate = fn(&mut Sim);
    let cases: [(&str, Mutate, &str); 8] = [
        (
            "weights decrease",
            |s| set_steps(s, vec![weight(50), weight(20)]),
            "must not decrease",
        ),
        (
            "bad duration",
            |s| set_steps(s, vec![pause(Some("5 parsecs"))]),
            "pause.duration",
        ),
        (
            "two kinds in a step",
            |s| {
                set_steps(
                    s,
                    vec![crate::crd::CanaryStep {
                        set_weight: Some(5),
                        ..pause(None)
                    }],
                )
            },
            "exactly one",
        ),
        (
            "selector mismatch",
            |s| s.rollout.spec.selector.match_labels = Some([("app".into(), "api".into())].into()),
            "does not match",
        ),
        (
            "missing service",
            |s| {
                s.observed
                    .services
                    .insert("web-canary".into(), Lookup::Missing);
            },
            "\"web-canary\" not found",
        ),
        (
            "missing route",
            |s| s.observed.http_route = Some(Lookup::Missing),
            "HTTPRoute demo/web not found",
        ),
        (
            "route without canary",
            |s| {
                if let Some(Lookup::Found(r)) = s.observed.http_route.as_mut() {
                    r.rules =
                        serde_json::json!([{"backendRefs": [{"name": "web-stable", "port": 80}]}]);
                }
            },
            "no backendRef to Service \"web-canary\"",
        ),
        (
            "route in another namespace without a ReferenceGrant",
            |s| {
                s.observed.http_route = None;
                s.observed.http_route_refused =
                    Some(crate::engine::route::refusal("demo", "team-b", "web"));
            },
            "no ReferenceGrant in team-b",
        ),
    ];
    for (name, mutate, expected) in cases {
        let mut sim = Sim::new(rollout(2, None, true));
        mutate(&mut sim);
        let first = sim.tick(SEC);
        assert!(first.writes.is_empty(), "{name}: {:?}", first.writes);
        assert_eq!(sim.phase(), Some(RolloutPhase::Degraded), "{name}");
        assert_eq!(
            condition(&sim, "Degraded"),
            ("True".into(), "InvalidSpec".into()),
            "{name}"
        );
        let message = sim
            .rollout
            .status
            .clone()
            .unwrap_or_default()
            .message
            .unwrap_or_default();
        assert!(message.contains(expected), "{name}: {message}");
        assert_eq!(first.events.len(), 1, "{name}: one Warning event");
        assert_eq!(first.requeue_after, INVALID_RESYNC, "{name}");
        let second = sim.tick(SEC);
        assert!(
            second.events.is_empty(),
            "{name}: the event is not repeated"
        );
    }
}

fn set_steps(sim: &mut Sim, steps: Vec<crate::crd::CanaryStep>) {
    if let Some(canary) = sim.rollout.spec.strategy.canary.as_mut() {
        canary.steps = Some(steps);
    }
}

#[test]
fn a_restarted_controller_resumes_without_repeating_a_step() {
    let mut sim = healthy(
        2,
        Some(vec![weight(10), pause(Some("1h")), weight(100)]),
        true,
    );
    sim.set_image("web:2");
    sim.run_until(SEC, 10, |s| {
        s.rollout.status.as_ref().and_then(|x| x.current_step_index) == Some(1)
    });
    // A fresh process plans from persisted status and what it observes: nothing to redo.
    let again = super::plan(&sim.rollout, &sim.observed, sim.now);
    assert!(again.writes.is_empty(), "{:?}", again.writes);
    assert!(again.events.is_empty(), "{:?}", again.events);
    assert_eq!(again.status.current_step_index, Some(1));
}

#[test]
fn old_revisions_beyond_the_history_limit_are_pruned() {
    let mut r = rollout(1, Some(vec![weight(100)]), true);
    r.spec.revision_history_limit = Some(1);
    let mut sim = Sim::new(r);
    for n in 1..=4 {
        let old = replica_set(&sim.rollout, &format!("old:{n}"), 0, n);
        let mut old = old;
        if let Some(status) = old.status.as_mut() {
            status.replicas = 0;
        }
        sim.observed.replica_sets.push(old);
    }
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    let deleted: Vec<String> = sim
        .plans
        .iter()
        .flat_map(|p| p.writes.iter())
        .filter_map(|w| match w {
            Write::DeleteReplicaSet { name } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted.len(), 3, "{deleted:?}");
    assert!(
        !deleted.iter().any(|d| d.ends_with(&hash("old:4"))),
        "the newest old revision is kept"
    );
}
