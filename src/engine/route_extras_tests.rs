//! Tests of `plan` for header routes and mirroring (issue #16): the route
//! intents appear at their steps, are cleared by a later step, and are gone
//! after promotion and after an abort; rules Sluice does not own survive.

use std::time::Duration;

use serde_json::{Value, json};

use super::controls::{ABORT, PROMOTE};
use super::plan::Write;
use super::route_extras::HEADER_RULE_NAME;
use super::testkit::{Sim, pause, rollout, weight};
use super::{Lookup, plan};
use crate::crd::{
    CanaryStep, HeaderRouteMatch, HeaderValueMatch, RolloutPhase, SetHeaderRoute, SetMirrorRoute,
};

const SEC: Duration = Duration::from_secs(1);

fn header(name: &str, exact: Option<&str>, regex: Option<&str>) -> CanaryStep {
    CanaryStep {
        set_header_route: Some(SetHeaderRoute {
            name: None,
            matches: vec![HeaderRouteMatch {
                header_name: name.into(),
                header_value: HeaderValueMatch {
                    exact: exact.map(Into::into),
                    regex: regex.map(Into::into),
                },
            }],
        }),
        ..CanaryStep::default()
    }
}

fn clear_header() -> CanaryStep {
    CanaryStep {
        set_header_route: Some(SetHeaderRoute::default()),
        ..CanaryStep::default()
    }
}

fn mirror(percentage: Option<i32>) -> CanaryStep {
    CanaryStep {
        set_mirror_route: Some(SetMirrorRoute {
            percentage,
            ..SetMirrorRoute::default()
        }),
        ..CanaryStep::default()
    }
}

pub(super) fn rules(sim: &Sim) -> Value {
    match &sim.observed.http_route {
        Some(Lookup::Found(route)) => route.rules.clone(),
        _ => Value::Null,
    }
}

fn header_rule(sim: &Sim) -> Option<Value> {
    rules(sim)
        .as_array()?
        .iter()
        .find(|r| r["name"] == HEADER_RULE_NAME)
        .cloned()
}

fn mirror_percent(sim: &Sim) -> Option<i64> {
    rules(sim)[0]["filters"]
        .as_array()?
        .iter()
        .find(|f| f["type"] == "RequestMirror")
        .and_then(|f| f["requestMirror"]["percent"].as_i64())
}

/// A route with a rule Sluice does not own and a filter of the user's own.
pub(super) fn user_route(sim: &mut Sim) {
    if let Some(Lookup::Found(route)) = sim.observed.http_route.as_mut() {
        route.rules = json!([
            { "matches": [{"path": {"type": "PathPrefix", "value": "/shop"}}],
              "filters": [{"type": "RequestHeaderModifier",
                           "requestHeaderModifier": {"set": [{"name": "x-shop", "value": "1"}]}}],
              "backendRefs": [
                {"name": "web-stable", "port": 80, "weight": 100},
                {"name": "web-canary", "port": 80, "weight": 0}]},
            { "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
              "filters": [{"type": "RequestMirror",
                           "requestMirror": {"backendRef": {"name": "audit", "port": 80}}}],
              "backendRefs": [{"name": "admin", "port": 80}]}
        ]);
    }
}

fn started(steps: Vec<CanaryStep>) -> Sim {
    let mut sim = Sim::new(rollout(4, Some(steps), true));
    user_route(&mut sim);
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    sim.set_image("web:2");
    sim
}

#[test]
fn header_route_sends_matching_requests_to_the_canary_at_weight_zero_until_cleared() {
    let mut sim = started(vec![
        header("X-Canary", Some("internal"), None),
        pause(None),
        clear_header(),
        pause(None),
        weight(50),
    ]);
    let original_admin = rules(&sim)[1].clone();
    sim.run_until(SEC, 20, |s| s.phase() == Some(RolloutPhase::Paused));
    let rule = header_rule(&sim).expect("header rule on the route");
    assert_eq!(
        rule["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/shop"},
                "headers": [{"name": "x-canary", "type": "Exact", "value": "internal"}]}]),
        "the managed rule's match, narrowed by the header"
    );
    assert_eq!(rule["backendRefs"].as_array().map(Vec::len), Some(1));
    assert_eq!(rule["backendRefs"][0]["name"], "web-canary");
    assert_eq!(
        rule["filters"],
        rules(&sim)[0]["filters"],
        "same filters as the rule it copies"
    );
    assert_eq!(sim.route_weight(), 0, "weighted traffic unchanged");
    let canary = super::hash::pod_template_hash(&super::testkit::template("web:2"));
    assert_eq!(
        sim.replicas_of(&canary),
        Some(1),
        "a pod to answer at weight 0"
    );
    assert_eq!(rules(&sim)[1], original_admin, "the user's rule untouched");
    // Settled: a second look writes nothing to the route.
    let again = plan(&sim.rollout, &sim.observed, sim.now);
    assert!(
        !again
            .writes
            .iter()
            .any(|w| matches!(w, Write::SetRouteWeights { .. })),
        "{:?}",
        again.writes
    );

    sim.annotate(PROMOTE, "1");
    sim.run_until(SEC, 20, |s| {
        s.rollout
            .status
            .as_ref()
            .and_then(|st| st.current_step_index)
            == Some(3)
    });
    assert!(header_rule(&sim).is_none(), "a later empty step clears it");
    assert_eq!(rules(&sim).as_array().map(Vec::len), Some(2));

    sim.annotate(PROMOTE, "2");
    sim.run_until(SEC, 40, |s| s.phase() == Some(RolloutPhase::Healthy));
    assert!(header_rule(&sim).is_none());
    assert_eq!(rules(&sim)[1], original_admin);
}

#[test]
fn mirror_and_header_route_go_in_the_same_plan_as_an_abort() {
    let mut sim = started(vec![
        header("x-canary", None, Some("^intern.*")),
        mirror(Some(30)),
        pause(None),
    ]);
    sim.run_until(SEC, 20, |s| s.phase() == Some(RolloutPhase::Paused));
    let rule = header_rule(&sim).expect("header rule");
    assert_eq!(
        rule["matches"][0]["headers"][0]["type"],
        "RegularExpression"
    );
    assert_eq!(mirror_percent(&sim), Some(30));
    let filter = rules(&sim)[0]["filters"][1].clone();
    assert_eq!(
        filter["requestMirror"]["backendRef"],
        json!({"group": "", "kind": "Service", "name": "web-canary", "port": 80})
    );
    assert!(
        rule["filters"]
            .as_array()
            .is_some_and(|f| f.iter().all(|f| f["type"] != "RequestMirror")),
        "the header rule does not mirror its own requests"
    );

    sim.annotate(ABORT, "1");
    let abort = sim.tick(SEC);
    assert!(abort.newly_aborted.is_some());
    assert!(
        abort
            .writes
            .iter()
            .any(|w| matches!(w, Write::SetRouteWeights { .. })),
        "{:?}",
        abort.writes
    );
    assert_eq!(sim.phase(), Some(RolloutPhase::Aborted));
    assert!(
        header_rule(&sim).is_none(),
        "no header route to an aborted canary"
    );
    assert_eq!(mirror_percent(&sim), None, "no mirror to an aborted canary");
    assert_eq!(
        rules(&sim)[0]["filters"].as_array().map(Vec::len),
        Some(1),
        "the user's own filter stays"
    );
    assert_eq!(
        rules(&sim)[1]["filters"][0]["requestMirror"]["backendRef"]["name"],
        "audit",
        "a mirror Sluice does not own stays"
    );
}

#[test]
fn a_gitops_reapply_that_drops_the_header_rule_gets_it_back() {
    let mut sim = started(vec![header("x-canary", Some("1"), None), pause(None)]);
    sim.run_until(SEC, 20, |s| s.phase() == Some(RolloutPhase::Paused));
    if let Some(Lookup::Found(route)) = sim.observed.http_route.as_mut()
        && let Some(list) = route.rules.as_array_mut()
    {
        list.retain(|r| r["name"] != HEADER_RULE_NAME);
    }
    sim.tick(SEC);
    assert!(header_rule(&sim).is_some());
}

#[test]
fn steps_are_checked_before_anything_is_written() {
    let cases = [
        (
            header("x-canary", None, Some("(")),
            "not a regular expression",
        ),
        (
            header("bad header", Some("1"), None),
            "not a valid HTTP header name",
        ),
        (
            header("x-canary", None, None),
            "exactly one of exact and regex",
        ),
        (mirror(Some(0)), "between 1 and 100"),
    ];
    for (step, expected) in cases {
        let mut sim = Sim::new(rollout(2, Some(vec![step, pause(None)]), true));
        let plan = sim.tick(SEC);
        assert_eq!(sim.phase(), Some(RolloutPhase::Degraded), "{expected}");
        let message = plan.status.message.unwrap_or_default();
        assert!(message.contains(expected), "{message}");
    }
    let mut sim = Sim::new(rollout(2, Some(vec![mirror(Some(10))]), false));
    let plan = sim.tick(SEC);
    let message = plan.status.message.unwrap_or_default();
    assert!(
        message.contains("needs trafficRouting.gatewayAPI"),
        "{message}"
    );
}

#[test]
fn a_grpc_route_gets_weights_and_a_header_rule_of_its_own_shape() {
    let rollout = rollout(
        4,
        Some(vec![
            header("x-canary", Some("1"), None),
            weight(50),
            pause(None),
        ]),
        true,
    );
    let mut sim = on_grpc_route(rollout);
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    assert!(
        sim.rollout
            .status
            .as_ref()
            .and_then(|s| s.traffic_routing.as_deref())
            .is_some_and(|t| t.contains("GRPCRoute")),
        "{:?}",
        sim.rollout.status
    );
    sim.set_image("web:2");
    sim.run_until(SEC, 20, |s| s.phase() == Some(RolloutPhase::Paused));
    assert_eq!(sim.route_weight(), 50);
    let kinds: Vec<_> = sim
        .plans
        .iter()
        .flat_map(|p| &p.writes)
        .filter_map(|w| match w {
            Write::SetRouteWeights { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    assert!(
        !kinds.is_empty() && kinds.iter().all(|k| *k == super::spec::RouteKind::Grpc),
        "{kinds:?}"
    );
    let rule = header_rule(&sim).expect("header rule");
    assert_eq!(
        rule["matches"],
        json!([{"headers": [{"name": "x-canary", "type": "Exact", "value": "1"}]}]),
        "no HTTP path in a gRPC match"
    );
    sim.annotate(ABORT, "1");
    sim.tick(SEC);
    assert_eq!(sim.route_weight(), 0);
    assert!(header_rule(&sim).is_none());
}

#[test]
fn a_blue_green_users_own_mirror_to_the_preview_is_left_alone() {
    let mut sim = Sim::new(super::testkit::blue_green_rollout(2, true, |_| {}));
    let own_mirror = json!({"type": "RequestMirror",
        "requestMirror": {"backendRef": {"name": "web-canary", "port": 80}, "percent": 10}});
    if let Some(Lookup::Found(route)) = sim.observed.http_route.as_mut() {
        route.rules[0]["filters"] = json!([own_mirror.clone()]);
    }
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    sim.set_image("web:2");
    sim.run_until(SEC, 40, |s| {
        s.rollout
            .status
            .as_ref()
            .and_then(|st| st.last_promotion.as_ref())
            .is_some()
    });
    assert_eq!(rules(&sim)[0]["filters"], json!([own_mirror]));
}

/// Point `rollout`'s Gateway API routing at the GRPCRoute `web` instead of its HTTPRoute.
pub(super) fn use_grpc_route(rollout: &mut crate::crd::Rollout) {
    if let Some(gateway) = rollout
        .spec
        .strategy
        .canary
        .as_mut()
        .and_then(|c| c.traffic_routing.as_mut())
        .and_then(|t| t.gateway_api.as_mut())
    {
        gateway.http_route = String::new();
        gateway.grpc_route = Some("web".into());
    }
}

/// A simulation of `rollout` routed through a GRPCRoute `web` (one rule
/// without matches, which takes every request) instead of its HTTPRoute.
pub(super) fn on_grpc_route(mut rollout: crate::crd::Rollout) -> Sim {
    use_grpc_route(&mut rollout);
    let mut sim = Sim::new(rollout);
    if let Some(Lookup::Found(route)) = sim.observed.http_route.as_mut() {
        route.kind = super::spec::RouteKind::Grpc;
        route.rules = json!([{ "backendRefs": [
            {"name": "web-stable", "port": 9090, "weight": 100},
            {"name": "web-canary", "port": 9090, "weight": 0}]}]);
    }
    sim
}
