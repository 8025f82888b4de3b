//! Tests of `plan` for named routes (Argo's `managedRoutes`): several header
//! routes at once in order of precedence, removal by name, per-match
//! mirrors that follow the weights, and nothing of Sluice's left after
//! promotion or an abort; the user's rules are written back as read.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::controls::{ABORT, PROMOTE};
use super::plan::Write;
use super::route_extras_tests::{on_grpc_route, rules, use_grpc_route, user_route};
use super::testkit::{Sim, pause, rollout, weight};
use super::{Lookup, plan};
use crate::crd::{
    CanaryStep, HeaderRouteMatch, HeaderValueMatch, ManagedRoute, MirrorRouteMatch, RolloutPhase,
    RouteStringMatch, SetHeaderRoute, SetMirrorRoute,
};

const SEC: Duration = Duration::from_secs(1);

fn named_header(name: &str, header: &str, value: &str) -> CanaryStep {
    CanaryStep {
        set_header_route: Some(SetHeaderRoute {
            name: Some(name.into()),
            matches: vec![HeaderRouteMatch {
                header_name: header.into(),
                header_value: HeaderValueMatch {
                    exact: Some(value.into()),
                    regex: None,
                },
            }],
        }),
        ..CanaryStep::default()
    }
}

fn remove_header(name: &str) -> CanaryStep {
    CanaryStep {
        set_header_route: Some(SetHeaderRoute {
            name: Some(name.into()),
            matches: vec![],
        }),
        ..CanaryStep::default()
    }
}

fn prefix(value: &str) -> RouteStringMatch {
    RouteStringMatch {
        prefix: Some(value.into()),
        ..RouteStringMatch::default()
    }
}

fn exact(value: &str) -> RouteStringMatch {
    RouteStringMatch {
        exact: Some(value.into()),
        ..RouteStringMatch::default()
    }
}

fn named_mirror(name: &str, matches: Vec<MirrorRouteMatch>, percent: Option<i32>) -> CanaryStep {
    CanaryStep {
        set_mirror_route: Some(SetMirrorRoute {
            name: Some(name.into()),
            matches,
            percentage: percent,
        }),
        ..CanaryStep::default()
    }
}

fn path_match(method: Option<&str>, path: RouteStringMatch) -> MirrorRouteMatch {
    MirrorRouteMatch {
        method: method.map(exact),
        path: Some(path),
        headers: BTreeMap::new(),
    }
}

fn with_routes(steps: Vec<CanaryStep>, managed: &[&str]) -> crate::crd::Rollout {
    let mut rollout = rollout(4, Some(steps), true);
    if let Some(routing) = rollout
        .spec
        .strategy
        .canary
        .as_mut()
        .and_then(|c| c.traffic_routing.as_mut())
    {
        routing.managed_routes = managed
            .iter()
            .map(|name| ManagedRoute {
                name: (*name).into(),
            })
            .collect();
    }
    rollout
}

fn started(steps: Vec<CanaryStep>, managed: &[&str]) -> Sim {
    let mut sim = Sim::new(with_routes(steps, managed));
    user_route(&mut sim);
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    sim.set_image("web:2");
    sim
}

fn step_is(sim: &Sim, index: i32) -> bool {
    sim.rollout
        .status
        .as_ref()
        .and_then(|st| st.current_step_index)
        == Some(index)
}

/// Names of the rules after the user's two, in route order.
fn sluice_rule_names(sim: &Sim) -> Vec<String> {
    rules(sim)
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .skip(2)
        .map(|r| r["name"].as_str().unwrap_or("(unnamed)").to_string())
        .collect()
}

fn rule_named(sim: &Sim, name: &str) -> Option<Value> {
    rules(sim)
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
}

#[test]
fn two_named_header_routes_follow_managed_routes_order_and_go_by_name_then_at_promotion() {
    // Set in the opposite order of precedence: managedRoutes decides.
    let mut sim = started(
        vec![
            named_header("beta", "x-beta", "1"),
            named_header("staff", "x-staff", "yes"),
            pause(None),
            remove_header("beta"),
            pause(None),
        ],
        &["staff", "beta"],
    );
    let user_rules = rules(&sim).as_array().cloned().unwrap_or_default();
    sim.run_until(SEC, 20, |s| s.phase() == Some(RolloutPhase::Paused));
    assert_eq!(
        sluice_rule_names(&sim),
        ["sluice-route-staff", "sluice-route-beta"],
        "{:#}",
        rules(&sim)
    );
    let staff = rule_named(&sim, "sluice-route-staff").expect("staff rule");
    assert_eq!(
        staff["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/shop"},
                "headers": [{"name": "x-staff", "type": "Exact", "value": "yes"}]}])
    );
    assert_eq!(staff["backendRefs"].as_array().map(Vec::len), Some(1));
    assert_eq!(staff["backendRefs"][0]["name"], "web-canary");
    assert_eq!(rules(&sim)[0], user_rules[0], "weights and filters as read");
    assert_eq!(
        rules(&sim)[1],
        user_rules[1],
        "the user's own rule untouched"
    );
    assert!(sim.route_weight() == 0);
    // Settled: nothing more to write.
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
    sim.run_until(SEC, 20, |s| step_is(s, 4));
    assert_eq!(
        sluice_rule_names(&sim),
        ["sluice-route-staff"],
        "beta removed by name, staff stays"
    );

    sim.annotate(PROMOTE, "2");
    sim.run_until(SEC, 40, |s| s.phase() == Some(RolloutPhase::Healthy));
    assert_eq!(
        rules(&sim).as_array().cloned().unwrap_or_default().len(),
        2,
        "only the user's rules after promotion: {:#}",
        rules(&sim)
    );
    assert_eq!(rules(&sim)[1], user_rules[1]);
}

#[test]
fn a_per_match_mirror_copies_only_matching_requests_and_keeps_the_weights() {
    let mut sim = started(
        vec![
            named_header("staff", "x-staff", "yes"),
            named_mirror(
                "checkout",
                vec![
                    path_match(Some("post"), prefix("/shop/checkout")),
                    // Outside the managed rule's /shop: not carried.
                    path_match(None, prefix("/admin")),
                ],
                Some(35),
            ),
            weight(25),
            pause(None),
        ],
        &["staff", "checkout"],
    );
    sim.run_until(SEC, 30, |s| s.phase() == Some(RolloutPhase::Paused));
    assert_eq!(
        sluice_rule_names(&sim),
        ["sluice-route-staff", "sluice-route-checkout"]
    );
    let mirror = rule_named(&sim, "sluice-route-checkout").expect("mirror rule");
    assert_eq!(
        mirror["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/shop/checkout"}, "method": "POST"}])
    );
    assert_eq!(
        mirror["backendRefs"],
        rules(&sim)[0]["backendRefs"],
        "the mirrored requests themselves still follow the weights (25%)"
    );
    assert_eq!(sim.route_weight(), 25);
    let filters = mirror["filters"].as_array().cloned().unwrap_or_default();
    let copy = filters
        .iter()
        .find(|f| f["type"] == "RequestMirror")
        .expect("RequestMirror filter");
    assert_eq!(copy["requestMirror"]["percent"], 35);
    assert_eq!(copy["requestMirror"]["backendRef"]["name"], "web-canary");
    assert!(
        filters.iter().any(|f| f["type"] == "RequestHeaderModifier"),
        "the managed rule's own filters come along"
    );
    assert!(
        rules(&sim)[0]["filters"]
            .as_array()
            .is_some_and(|f| f.iter().all(|f| f["type"] != "RequestMirror")),
        "the weighted rule itself mirrors nothing"
    );

    sim.annotate(ABORT, "1");
    let abort = sim.tick(SEC);
    assert!(abort.newly_aborted.is_some());
    assert_eq!(sim.route_weight(), 0);
    assert_eq!(
        sluice_rule_names(&sim),
        Vec::<String>::new(),
        "every named rule goes in the abort's own plan"
    );
}

#[test]
fn a_rule_of_a_route_no_longer_in_the_spec_is_still_removed() {
    let mut sim = started(
        vec![named_header("staff", "x-staff", "yes"), pause(None)],
        &["staff"],
    );
    sim.run_until(SEC, 20, |s| s.phase() == Some(RolloutPhase::Paused));
    if let Some(Lookup::Found(route)) = sim.observed.http_route.as_mut()
        && let Some(list) = route.rules.as_array_mut()
    {
        let mut stale = list[0].clone();
        stale["name"] = json!("sluice-route-renamed");
        // First in the list: the user's rules move down one index.
        list.insert(0, stale);
    }
    // One reconcile puts it right.
    sim.tick(SEC);
    assert_eq!(sluice_rule_names(&sim), ["sluice-route-staff"]);
    assert_eq!(
        rule_named(&sim, "sluice-route-staff").map(|r| r["matches"][0]["path"].clone()),
        Some(json!({"type": "PathPrefix", "value": "/shop"})),
        "the managed rule's match, not its neighbour's"
    );
}

#[test]
fn named_route_steps_are_checked_against_managed_routes() {
    let grpc_path = named_mirror("m", vec![path_match(None, prefix("/x"))], None);
    let cases: Vec<(Vec<CanaryStep>, Vec<&str>, bool, &str)> = vec![
        (
            vec![named_header("beta", "x-beta", "1")],
            vec!["staff"],
            false,
            "steps[0].setHeaderRoute.name \"beta\" is not listed in trafficRouting.managedRoutes",
        ),
        (
            vec![named_mirror("m", vec![], Some(10))],
            vec![],
            false,
            "not listed in trafficRouting.managedRoutes",
        ),
        (vec![], vec!["a", "a"], false, "appears twice"),
        (vec![], vec!["Beta_1"], false, "lowercase letters"),
        (
            vec![CanaryStep {
                set_mirror_route: Some(SetMirrorRoute {
                    name: None,
                    matches: vec![path_match(None, prefix("/x"))],
                    percentage: Some(5),
                }),
                ..CanaryStep::default()
            }],
            vec![],
            false,
            "match needs a name",
        ),
        (
            vec![named_mirror(
                "m",
                vec![path_match(Some("FETCH"), prefix("/x"))],
                None,
            )],
            vec!["m"],
            false,
            "method must be exact",
        ),
        (
            vec![named_mirror("m", vec![path_match(None, exact("x"))], None)],
            vec!["m"],
            false,
            "must start with '/'",
        ),
        (
            vec![grpc_path],
            vec!["m"],
            true,
            "a GRPCRoute matches headers only",
        ),
    ];
    for (steps, managed, grpc, expected) in cases {
        let mut steps = steps;
        steps.push(pause(None));
        let mut rollout = with_routes(steps, &managed);
        if grpc {
            use_grpc_route(&mut rollout);
        }
        let mut sim = Sim::new(rollout);
        let plan = sim.tick(SEC);
        assert_eq!(sim.phase(), Some(RolloutPhase::Degraded), "{expected}");
        let message = plan.status.message.clone().unwrap_or_default();
        assert!(message.contains(expected), "{expected}: {message}");
        assert!(
            plan.events
                .iter()
                .any(|e| e.warning && e.reason == "InvalidSpec" && e.note.contains(expected)),
            "{expected}: a Warning Event says it too: {:?}",
            plan.events
        );
    }
}

#[test]
fn on_a_grpc_route_named_routes_match_headers_of_every_call() {
    let shadow = MirrorRouteMatch {
        headers: BTreeMap::from([("x-shadow".to_string(), prefix("on"))]),
        ..MirrorRouteMatch::default()
    };
    let rollout = with_routes(
        vec![
            named_header("staff", "x-staff", "yes"),
            named_mirror("shadow", vec![shadow], None),
            pause(None),
        ],
        &["shadow", "staff"],
    );
    let mut sim = on_grpc_route(rollout);
    sim.run_until(SEC, 10, |s| s.phase() == Some(RolloutPhase::Healthy));
    sim.set_image("web:2");
    sim.run_until(SEC, 20, |s| s.phase() == Some(RolloutPhase::Paused));
    let all = rules(&sim).as_array().cloned().unwrap_or_default();
    let names: Vec<_> = all.iter().skip(1).map(|r| r["name"].clone()).collect();
    assert_eq!(
        names,
        [json!("sluice-route-shadow"), json!("sluice-route-staff")]
    );
    assert_eq!(
        all[1]["matches"],
        json!([{"headers": [{"name": "x-shadow", "type": "RegularExpression", "value": "^on"}]}]),
        "a prefix is a regex; no path on a GRPCRoute"
    );
    assert_eq!(all[1]["filters"][0]["requestMirror"]["percent"], 100);
    assert_eq!(
        all[2]["matches"],
        json!([{"headers": [{"name": "x-staff", "type": "Exact", "value": "yes"}]}])
    );
    sim.annotate(ABORT, "1");
    sim.tick(SEC);
    assert_eq!(rules(&sim).as_array().map(Vec::len), Some(1));
}
