//! Tests of `plan` for traffic safety (issue #17): a Service selects one
//! revision of its own Rollout, another Rollout's objects are never written,
//! a broken reference takes the canary off the route, and replica-ratio
//! weights never take stable below its share.

use std::time::Duration;

use super::hash::{POD_TEMPLATE_HASH_LABEL, pod_template_hash};
use super::plan::{REFERENCE_CONFLICT, Write};
use super::testkit::{Sim, pause, rollout, template, weight};
use super::{Lookup, ratio};
use crate::crd::RolloutPhase;

const SEC: Duration = Duration::from_secs(1);

fn hash(image: &str) -> String {
    pod_template_hash(&template(image))
}

fn healthy(replicas: i32, steps: Option<Vec<crate::crd::CanaryStep>>, gateway: bool) -> Sim {
    let mut sim = Sim::new(rollout(replicas, steps, gateway));
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    sim
}

/// A gateway canary of 4 pods held at 25%.
fn held_at_25() -> Sim {
    let mut sim = healthy(4, Some(vec![weight(25), pause(None)]), true);
    sim.set_image("web:2");
    sim.run_until(SEC, 20, |s| s.phase() == Some(RolloutPhase::Paused));
    assert_eq!(sim.route_weight(), 25);
    sim
}

fn degraded_reason(sim: &Sim) -> String {
    let status = sim.rollout.status.clone().unwrap_or_default();
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .map(|c| format!("{} {}", c.status, c.reason))
        .unwrap_or_default()
}

fn message(sim: &Sim) -> String {
    sim.rollout
        .status
        .clone()
        .unwrap_or_default()
        .message
        .unwrap_or_default()
}

#[test]
fn claims_come_first_and_services_select_the_rollouts_labels_plus_one_hash() {
    let mut sim = Sim::new(rollout(2, None, true));
    let first = sim.tick(SEC);
    let claims: Vec<&Write> = first
        .writes
        .iter()
        .take_while(|w| matches!(w, Write::ClaimService { .. }))
        .collect();
    assert_eq!(claims.len(), 2, "{:?}", first.writes);
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    let Some(Lookup::Found(stable)) = sim.observed.services.get("web-stable") else {
        panic!("web-stable observed");
    };
    assert_eq!(stable.owner.as_deref(), Some("web"));
    assert_eq!(
        stable.selector,
        [
            ("app".to_string(), "web".to_string()),
            (POD_TEMPLATE_HASH_LABEL.to_string(), hash("web:1")),
        ]
        .into()
    );
    let Some(Lookup::Found(route)) = &sim.observed.http_route else {
        panic!("route observed");
    };
    assert_eq!(
        route.owner.as_deref(),
        Some("demo/web"),
        "the route is claimed"
    );
    // Settled: nothing more to write.
    assert!(sim.tick(SEC).writes.is_empty());
}

#[test]
fn a_selector_reset_by_a_gitops_apply_is_rewritten_at_the_next_reconcile() {
    let mut sim = held_at_25();
    for service in ["web-stable", "web-canary"] {
        if let Some(Lookup::Found(state)) = sim.observed.services.get_mut(service) {
            // What a server-side apply of the manifest in Git does to the atomic map.
            state.selector = [("app".to_string(), "web".to_string())].into();
        }
    }
    let plan = sim.tick(SEC);
    let pointed: Vec<(String, String)> = plan
        .writes
        .iter()
        .filter_map(|w| match w {
            Write::SelectRevision { service, revision } => {
                Some((service.clone(), revision.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        pointed,
        vec![
            ("web-stable".to_string(), hash("web:1")),
            ("web-canary".to_string(), hash("web:2"))
        ]
    );
}

#[test]
fn a_second_rollout_on_claimed_services_or_route_is_refused_without_any_write() {
    let claimed_service = |sim: &mut Sim| {
        if let Some(Lookup::Found(state)) = sim.observed.services.get_mut("web-canary") {
            state.owner = Some("shop".into());
        }
    };
    let claimed_route = |sim: &mut Sim| {
        if let Some(Lookup::Found(route)) = sim.observed.http_route.as_mut() {
            route.owner = Some("demo/shop".into());
        }
    };
    for (name, claim, expected) in [
        (
            "service",
            &claimed_service as &dyn Fn(&mut Sim),
            "Service \"web-canary\"",
        ),
        ("route", &claimed_route, "HTTPRoute demo/web"),
    ] {
        let mut sim = Sim::new(rollout(2, None, true));
        claim(&mut sim);
        let plan = sim.tick(SEC);
        assert!(plan.writes.is_empty(), "{name}: {:?}", plan.writes);
        assert_eq!(sim.phase(), Some(RolloutPhase::Degraded), "{name}");
        assert_eq!(degraded_reason(&sim), format!("True {REFERENCE_CONFLICT}"));
        assert!(
            message(&sim).contains(expected),
            "{name}: {}",
            message(&sim)
        );
        assert!(
            plan.events
                .iter()
                .any(|e| e.warning && e.reason == REFERENCE_CONFLICT),
            "{name}: {:?}",
            plan.events
        );
        // Once only: the same refusal is not a new Event.
        assert!(sim.tick(SEC).events.is_empty(), "{name}");
    }
}

#[test]
fn a_missing_canary_service_takes_the_canary_weight_to_zero_at_once() {
    let mut sim = held_at_25();
    sim.observed
        .services
        .insert("web-canary".into(), Lookup::Missing);
    let plan = sim.tick(SEC);
    assert_eq!(
        plan.writes.len(),
        1,
        "only the route weight: {:?}",
        plan.writes
    );
    assert!(matches!(
        plan.writes[0],
        Write::SetRouteWeights {
            canary_weight: 0,
            ..
        }
    ));
    assert_eq!(sim.route_weight(), 0);
    assert_eq!(sim.backend_weight("web-stable"), 100);
    assert_eq!(degraded_reason(&sim), "True InvalidSpec");
    let text = message(&sim);
    assert!(
        text.contains("\"web-canary\" not found") && text.contains("weight is set to 0"),
        "{text}"
    );
    assert_eq!(
        sim.rollout
            .status
            .clone()
            .unwrap_or_default()
            .current_weight,
        0
    );
    // Nothing more to write while it stays missing; no repeated Event.
    let again = sim.tick(SEC);
    assert!(
        again.writes.is_empty() && again.events.is_empty(),
        "{again:?}"
    );
}

#[test]
fn a_broken_reference_never_writes_a_route_another_rollout_claims() {
    let mut sim = held_at_25();
    sim.observed
        .services
        .insert("web-canary".into(), Lookup::Missing);
    if let Some(Lookup::Found(route)) = sim.observed.http_route.as_mut() {
        route.owner = Some("demo/shop".into());
    }
    let plan = sim.tick(SEC);
    assert!(plan.writes.is_empty(), "{:?}", plan.writes);
}

#[test]
fn replica_ratio_keeps_stable_at_its_share_and_the_canary_on_top() {
    // 4 pods at 10%: stable keeps all 4, the canary's one pod comes from the surge.
    let mut sim = healthy(4, Some(vec![weight(10), pause(None)]), false);
    sim.set_image("web:2");
    sim.run_until(SEC, 20, |s| s.phase() == Some(RolloutPhase::Paused));
    assert_eq!(
        (
            sim.replicas_of(&hash("web:1")),
            sim.replicas_of(&hash("web:2"))
        ),
        (Some(4), Some(1))
    );
    assert_eq!(
        sim.rollout
            .status
            .clone()
            .unwrap_or_default()
            .current_weight,
        20
    );
}

#[test]
fn replica_ratio_refuses_a_weight_the_replica_count_cannot_honour() {
    let mut sim = Sim::new(rollout(1, Some(vec![weight(10), pause(None)]), false));
    let plan = sim.tick(SEC);
    assert!(plan.writes.is_empty(), "{:?}", plan.writes);
    assert_eq!(degraded_reason(&sim), "True InvalidSpec");
    let text = message(&sim);
    assert!(
        text.contains("setWeight 10 cannot be honoured with 1 replicas")
            && text.contains("takes 50%")
            && text.contains("at least 4 replicas"),
        "{text}"
    );
}

#[test]
fn ratio_rounding_is_documented_by_these_figures() {
    // (replicas, weight) -> (canary pods, stable pods, canary share %)
    for (replicas, weight, expected) in [
        (10, 10, (1, 9, 10)),
        (4, 10, (1, 4, 20)),
        (4, 25, (1, 3, 25)),
        (3, 50, (2, 2, 50)),
        (2, 25, (1, 2, 33)),
        (1, 50, (1, 1, 50)),
    ] {
        let (canary, stable) = ratio::pods(replicas, weight);
        let share = ratio::canary_share(replicas, weight);
        assert_eq!(
            (canary, stable, share),
            expected,
            "{replicas} replicas at {weight}%"
        );
    }
}
