//! `plan` against hostile input: values that passed admission before the
//! bounds existed, and status or cluster objects written by someone else.
//! Each case once panicked the controller; now it is an `InvalidSpec`
//! condition or a sane plan.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::hash::pod_template_hash;
use super::observed::{Lookup, RouteState};
use super::testkit::{Sim, blue_green_rollout, pause, replica_set, rollout, template, weight};
use crate::crd::{AbortStatus, RolloutPhase};

const SEC: Duration = Duration::from_secs(1);

fn hash(image: &str) -> String {
    pod_template_hash(&template(image))
}

fn healthy(sim: &mut Sim) {
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
}

fn degraded_message(sim: &Sim) -> String {
    let status = sim.rollout.status.clone().unwrap_or_default();
    assert_eq!(status.phase, Some(RolloutPhase::Degraded), "{status:#?}");
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("Degraded condition");
    assert_eq!(condition.reason, "InvalidSpec");
    condition.message.clone()
}

#[test]
fn a_stored_pause_of_99999999999h_is_an_invalid_spec_not_a_panic() {
    let steps = vec![weight(10), pause(Some("99999999999h")), weight(100)];
    let mut sim = Sim::new(rollout(3, Some(steps), true));
    sim.tick(SEC);
    sim.set_image("web:2");
    for _ in 0..5 {
        sim.tick(SEC);
    }
    let message = degraded_message(&sim);
    assert!(
        message.contains("steps[1].pause.duration") && message.contains("at most 720h"),
        "{message}"
    );
}

#[test]
fn replicas_of_i32_max_are_an_invalid_spec_not_an_overflow() {
    let mut sim = Sim::new(rollout(i32::MAX, None, false));
    sim.tick(SEC);
    let message = degraded_message(&sim);
    assert!(
        message.contains("spec.replicas is 2147483647, at most 1000000"),
        "{message}"
    );
    let mut blue_green = Sim::new(blue_green_rollout(i32::MAX, false, |_| {}));
    blue_green.tick(SEC);
    assert!(degraded_message(&blue_green).contains("spec.replicas"));
}

#[test]
fn a_max_surge_of_i32_max_is_an_invalid_spec_not_an_overflow() {
    let mut r = rollout(3, Some(vec![weight(50), weight(100)]), false);
    if let Some(canary) = r.spec.strategy.canary.as_mut() {
        canary.max_surge = Some(IntOrString::Int(i32::MAX));
        canary.max_unavailable = Some(IntOrString::Int(i32::MAX));
    }
    let mut sim = Sim::new(r);
    sim.tick(SEC);
    let message = degraded_message(&sim);
    assert!(
        message.contains("maxSurge is 2147483647") && message.contains("maxUnavailable"),
        "{message}"
    );
}

#[test]
fn status_times_at_the_end_of_time_do_not_panic() {
    let steps = vec![weight(10), pause(Some("1h")), weight(100)];
    let mut sim = Sim::new(rollout(2, Some(steps), true));
    healthy(&mut sim);
    sim.set_image("web:2");
    sim.run_until(SEC, 20, |s| {
        s.rollout
            .status
            .as_ref()
            .is_some_and(|st| st.current_step_index == Some(1))
    });
    // Someone with access to the status wrote the latest instant there is.
    let end = Time(Timestamp::MAX);
    if let Some(status) = sim.rollout.status.as_mut() {
        status.step_started_at = Some(end.clone());
        status.last_progress_at = Some(end.clone());
    }
    let plan = sim.tick(SEC);
    assert_eq!(sim.phase(), Some(RolloutPhase::Progressing));
    assert!(plan.requeue_after <= Duration::from_secs(300));
    // An abort stamped at the end of time still takes all traffic off the canary.
    if let Some(status) = sim.rollout.status.as_mut() {
        status.abort = Some(AbortStatus {
            revision: hash("web:2"),
            reason: "AbortedByUser".into(),
            message: "hostile".into(),
            at: end,
            step_index: 1,
            weight: 10,
            cannot_tell: false,
            keep_git: false,
        });
    }
    sim.tick(SEC);
    assert_eq!(sim.phase(), Some(RolloutPhase::Aborted));
    assert_eq!(sim.route_weight(), 0);
}

#[test]
fn blue_green_times_at_the_end_of_time_do_not_panic() {
    let thirty_days = crate::crd::limits::MAX_SECONDS;
    let mut sim = Sim::new(blue_green_rollout(2, true, |b| {
        b.auto_promotion_seconds = Some(1);
        b.scale_down_delay_seconds = Some(thirty_days);
        b.abort_scale_down_delay_seconds = Some(thirty_days);
    }));
    // A clock (or a status stamp) within 30 days of the last instant there is.
    sim.now = Timestamp::MAX - jiff::SignedDuration::from_secs(3600);
    healthy(&mut sim);
    sim.set_image("web:2");
    sim.run_until(SEC, 30, |s| {
        s.rollout
            .status
            .as_ref()
            .is_some_and(|st| st.stable_revision == Some(hash("web:2")))
    });
    sim.set_image("web:3");
    sim.tick(SEC);
    sim.annotate(super::controls::ABORT, "t1");
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Aborted));
}

#[test]
fn replica_sets_with_absurd_numbers_do_not_panic() {
    let r = rollout(2, None, false);
    let mut sim = Sim::new(r.clone());
    let mut old = replica_set(&r, "web:0", 1, i64::MAX);
    if let Some(status) = old.status.as_mut() {
        status.replicas = i32::MAX;
        status.ready_replicas = Some(i32::MAX);
    }
    let mut other = replica_set(&r, "web:9", 1, i64::MAX);
    if let Some(status) = other.status.as_mut() {
        status.replicas = i32::MAX;
        status.ready_replicas = Some(i32::MAX);
    }
    sim.observed.replica_sets = vec![old, other];
    let plan = sim.tick(SEC);
    assert!(plan.status.replicas >= 0, "{:?}", plan.status.replicas);
}

#[test]
fn absurd_httproute_weights_read_as_a_share_within_0_and_100() {
    let steps = vec![weight(10), pause(None), weight(100)];
    let mut sim = Sim::new(rollout(2, Some(steps), true));
    healthy(&mut sim);
    sim.set_image("web:2");
    sim.tick(SEC);
    for (stable, canary) in [
        (i64::MAX, i64::MAX),
        (-50, 100),
        (i64::MIN, 5),
        (0, i64::MAX),
    ] {
        sim.observed.http_route = Some(Lookup::Found(RouteState {
            resource_version: Some("9".into()),
            rules: json!([{ "backendRefs": [
                {"name": "web-stable", "port": 80, "weight": stable},
                {"name": "web-canary", "port": 80, "weight": canary}]}]),
            ..RouteState::default()
        }));
        let plan = sim.tick(SEC);
        assert!(
            (0..=100).contains(&plan.status.current_weight),
            "{stable}/{canary}: {}",
            plan.status.current_weight
        );
    }
}
