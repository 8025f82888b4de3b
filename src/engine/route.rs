//! Gateway API `HTTPRoute` weights, read and written as plain JSON.
//!
//! Only `backendRefs[].weight` of the stable and canary Services in the
//! managed rules is ever changed; everything else in the rules is sent back
//! exactly as read, with the read `resourceVersion` as a precondition.
//!
//! A backendRef is the Rollout's only when it names the Service *and* points
//! at the Rollout's namespace (Gateway API: a ref without `namespace` points
//! at the route's own), and a route in another namespace is used only when a
//! `ReferenceGrant` there allows the Rollout's namespace ([`route_granted`]).

use serde_json::Value;

use super::observed::RouteState;

/// Rules of `route` that Sluice manages: the configured indexes, or every rule
/// that references the stable Service. Each must reference both Services.
pub fn managed_rules(
    route: &RouteState,
    rule_indexes: Option<&[u32]>,
    stable: &str,
    canary: &str,
    baseline: Option<&str>,
) -> Result<Vec<usize>, String> {
    let rules = route
        .rules
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let indexes: Vec<usize> = match rule_indexes {
        Some(list) => list.iter().map(|i| *i as usize).collect(),
        None => (0..rules.len())
            // Sluice's own header rule sends to the canary alone: never weighted.
            .filter(|i| !super::route_extras::is_sluice_rule(&rules[*i]))
            .filter(|i| backend_ref(route, &rules[*i], stable).is_some())
            .collect(),
    };
    if indexes.is_empty() {
        return Err(format!(
            "no rule of the HTTPRoute references the stable Service {stable:?} in namespace {}",
            route.service_namespace
        ));
    }
    for index in &indexes {
        let Some(rule) = rules.get(*index) else {
            return Err(format!("the HTTPRoute has no rule at index {index}"));
        };
        for service in [Some(stable), Some(canary), baseline].into_iter().flatten() {
            if backend_ref(route, rule, service).is_none() {
                return Err(format!(
                    "rule {index} of the HTTPRoute has no backendRef to Service {service:?} in namespace {}",
                    route.service_namespace
                ));
            }
        }
    }
    Ok(indexes)
}

/// The canary's share in percent on the first managed rule.
pub fn canary_weight(
    route: &RouteState,
    rules: &[usize],
    stable: &str,
    canary: &str,
    baseline: Option<&str>,
) -> i32 {
    let Some(rule) = rules.first().and_then(|i| route.rules.get(*i)) else {
        return 0;
    };
    let weight = |service| {
        backend_ref(route, rule, service)
            .map(ref_weight)
            .unwrap_or(0)
    };
    let (stable_weight, canary_weight) = (weight(stable), weight(canary));
    let total = stable_weight + canary_weight + baseline.map(weight).unwrap_or(0);
    if total == 0 {
        return 0;
    }
    i32::try_from((canary_weight * 100 + total / 2) / total).unwrap_or(0)
}

/// The baseline's share beside a canary at `percent`: the same, at most what is left.
pub fn baseline_weight(percent: i32) -> i32 {
    percent.min(100 - percent).max(0)
}

/// `spec.rules` with the canary at `percent` on the managed rules; the baseline
/// (if any) at `baseline_weight(percent)`, stable the rest.
pub fn rules_with_weight(
    route: &RouteState,
    rules: &[usize],
    stable: &str,
    canary: &str,
    baseline: Option<&str>,
    percent: i32,
) -> Value {
    let baseline_share = if baseline.is_some() {
        baseline_weight(percent)
    } else {
        0
    };
    let mut all = route.rules.clone();
    for index in rules {
        let Some(rule) = all.get_mut(*index) else {
            continue;
        };
        let Some(refs) = rule.get_mut("backendRefs").and_then(Value::as_array_mut) else {
            continue;
        };
        for backend in refs.iter_mut() {
            let weight = match backend_name(route, backend) {
                Some(name) if name == stable => 100 - percent - baseline_share,
                Some(name) if name == canary => percent,
                Some(name) if Some(name) == baseline => baseline_share,
                _ => continue,
            };
            if let Some(object) = backend.as_object_mut() {
                object.insert("weight".into(), Value::from(weight));
            }
        }
    }
    all
}

fn backend_ref<'a>(route: &RouteState, rule: &'a Value, service: &str) -> Option<&'a Value> {
    rule.get("backendRefs")?
        .as_array()?
        .iter()
        .find(|b| backend_name(route, b) == Some(service))
}

/// The Service a backendRef names when it is one of the Rollout's (see [`backend_name`]).
pub fn service_of<'a>(route: &RouteState, backend: &'a Value) -> Option<&'a str> {
    backend_name(route, backend)
}

/// Name of a backendRef that points at a core Service (the default kind) in
/// the Rollout's namespace; `None` for anything else.
fn backend_name<'a>(route: &RouteState, backend: &'a Value) -> Option<&'a str> {
    let kind = backend
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("Service");
    let group = backend.get("group").and_then(Value::as_str).unwrap_or("");
    let namespace = backend
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(&route.namespace);
    (kind == "Service" && group.is_empty() && namespace == route.service_namespace)
        .then(|| backend.get("name").and_then(Value::as_str))?
}

/// Group and kind a `ReferenceGrant` must name in `from` to admit Rollouts.
const ROLLOUT_GROUP_KIND: (&str, &str) = ("sluice.dev", "Rollout");
/// Group and kind a `ReferenceGrant` must name in `to` to admit HTTPRoutes.
const ROUTE_GROUP: &str = "gateway.networking.k8s.io";

/// Whether one of `grants` (`ReferenceGrant` objects of the route's
/// namespace, as JSON) lets Rollouts of `rollout_namespace` use the HTTPRoute
/// `route`: `from` names group `sluice.dev`, kind `Rollout` and that
/// namespace; `to` names group `gateway.networking.k8s.io`, kind `HTTPRoute`
/// and that route's name, or no name (every HTTPRoute).
pub fn route_granted(grants: &[Value], rollout_namespace: &str, route: &str) -> bool {
    kind_granted(grants, rollout_namespace, "HTTPRoute", route)
}

/// [`route_granted`] for a route of `kind` (`HTTPRoute` or `GRPCRoute`).
pub fn kind_granted(grants: &[Value], rollout_namespace: &str, kind: &str, route: &str) -> bool {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    grants.iter().any(|grant| {
        let list = |key: &str| {
            grant
                .get("spec")
                .and_then(|s| s.get(key))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let from = list("from").iter().any(|f| {
            (text(f, "group").as_str(), text(f, "kind").as_str()) == ROLLOUT_GROUP_KIND
                && text(f, "namespace") == rollout_namespace
        });
        let to = list("to").iter().any(|t| {
            (text(t, "group").as_str(), text(t, "kind").as_str()) == (ROUTE_GROUP, kind)
                && t.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(|n| n == route)
        });
        from && to
    })
}

/// What a Rollout of `rollout_namespace` is told when the HTTPRoute
/// `namespace/name` is in another namespace that does not grant it.
pub fn refusal(rollout_namespace: &str, namespace: &str, name: &str) -> String {
    kind_refusal(rollout_namespace, "HTTPRoute", namespace, name)
}

/// [`refusal`] for a route of `kind`.
pub fn kind_refusal(rollout_namespace: &str, kind: &str, namespace: &str, name: &str) -> String {
    format!(
        "{kind} {namespace}/{name} is in another namespace and no ReferenceGrant in \
         {namespace} allows Rollouts from {rollout_namespace} to use it: add a ReferenceGrant \
         in {namespace} with from {{group: sluice.dev, kind: Rollout, namespace: \
         {rollout_namespace}}} and to {{group: gateway.networking.k8s.io, kind: {kind}, \
         name: {name}}}; the route is left untouched"
    )
}

/// Weight of a backendRef; the Gateway API default is 1. Read within the
/// Gateway API's own bounds (0 to 1,000,000), whatever the object says.
fn ref_weight(backend: &Value) -> i64 {
    let weight = backend.get("weight").and_then(Value::as_i64).unwrap_or(1);
    weight.clamp(0, 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(rules: Value) -> RouteState {
        RouteState {
            owner: None,
            resource_version: Some("7".into()),
            rules,
            ..RouteState::default()
        }
    }

    fn two_backends(stable: i64, canary: i64) -> Value {
        json!([{ "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "backendRefs": [
                    {"name": "web-stable", "port": 80, "weight": stable},
                    {"name": "web-canary", "port": 80, "weight": canary}]}])
    }

    #[test]
    fn finds_rules_referencing_stable_and_reads_weight() {
        let r = route(two_backends(75, 25));
        let rules = managed_rules(&r, None, "web-stable", "web-canary", None).expect("rules");
        assert_eq!(rules, vec![0]);
        assert_eq!(
            canary_weight(&r, &rules, "web-stable", "web-canary", None),
            25
        );
    }

    #[test]
    fn missing_canary_backend_is_an_error() {
        let r = route(json!([{ "backendRefs": [{"name": "web-stable", "port": 80}]}]));
        let err = managed_rules(&r, None, "web-stable", "web-canary", None).expect_err("must fail");
        assert!(err.contains("web-canary"), "{err}");
        let err =
            managed_rules(&r, Some(&[3]), "web-stable", "web-canary", None).expect_err("must fail");
        assert!(err.contains("index 3"), "{err}");
    }

    #[test]
    fn writing_weights_keeps_everything_else() {
        let r = route(two_backends(100, 0));
        let rules = rules_with_weight(&r, &[0], "web-stable", "web-canary", None, 10);
        assert_eq!(rules[0]["backendRefs"][0]["weight"], 90);
        assert_eq!(rules[0]["backendRefs"][1]["weight"], 10);
        assert_eq!(rules[0]["matches"], r.rules[0]["matches"]);
        assert_eq!(rules[0]["backendRefs"][1]["port"], 80);
    }

    #[test]
    fn default_weight_is_one_and_foreign_kinds_are_ignored() {
        let r = route(json!([{ "backendRefs": [
            {"name": "web-stable", "port": 80},
            {"name": "web-canary", "port": 80},
            {"name": "web-canary", "kind": "ServiceImport", "group": "multicluster.x-k8s.io", "weight": 50}]}]));
        assert_eq!(
            canary_weight(&r, &[0], "web-stable", "web-canary", None),
            50
        );
    }

    #[test]
    fn backend_refs_count_only_in_the_rollouts_namespace() {
        // The Rollout lives in `team-a`; the route in `team-b` names Services
        // `web-stable`/`web-canary` without a namespace, i.e. team-b's own.
        let foreign = RouteState {
            namespace: "team-b".into(),
            service_namespace: "team-a".into(),
            ..route(two_backends(100, 0))
        };
        let err = managed_rules(&foreign, None, "web-stable", "web-canary", None)
            .expect_err("team-b's Services are not the Rollout's");
        assert!(err.contains("team-a"), "{err}");
        let unchanged = rules_with_weight(&foreign, &[0], "web-stable", "web-canary", None, 100);
        assert_eq!(
            unchanged, foreign.rules,
            "no weight of team-b's backends moves"
        );

        // The same route pointing at team-a's Services explicitly is the Rollout's.
        let explicit = RouteState {
            namespace: "team-b".into(),
            service_namespace: "team-a".into(),
            ..route(json!([{ "backendRefs": [
                {"name": "web-stable", "namespace": "team-a", "port": 80, "weight": 100},
                {"name": "web-canary", "namespace": "team-b", "port": 80, "weight": 0},
                {"name": "web-canary", "namespace": "team-a", "port": 80, "weight": 0}]}]))
        };
        let rules =
            managed_rules(&explicit, None, "web-stable", "web-canary", None).expect("rules");
        let moved = rules_with_weight(&explicit, &rules, "web-stable", "web-canary", None, 30);
        assert_eq!(moved[0]["backendRefs"][0]["weight"], 70);
        assert_eq!(
            moved[0]["backendRefs"][1]["weight"], 0,
            "team-b's web-canary untouched"
        );
        assert_eq!(moved[0]["backendRefs"][2]["weight"], 30);
    }

    #[test]
    fn a_reference_grant_must_name_rollouts_of_the_namespace_and_the_route() {
        let grant = |from: Value, to: Value| json!({"spec": {"from": [from], "to": [to]}});
        let from_a = json!({"group": "sluice.dev", "kind": "Rollout", "namespace": "team-a"});
        let to_web =
            json!({"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "web"});
        let to_any = json!({"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"});
        assert!(route_granted(
            &[grant(from_a.clone(), to_web.clone())],
            "team-a",
            "web"
        ));
        assert!(route_granted(
            &[grant(from_a.clone(), to_any)],
            "team-a",
            "web"
        ));
        assert!(!route_granted(
            &[grant(from_a.clone(), to_web.clone())],
            "team-a",
            "other"
        ));
        assert!(!route_granted(
            &[grant(from_a.clone(), to_web.clone())],
            "team-c",
            "web"
        ));
        let from_routes = json!({"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "team-a"});
        assert!(!route_granted(
            &[grant(from_routes, to_web.clone())],
            "team-a",
            "web"
        ));
        let to_services = json!({"group": "", "kind": "Service"});
        assert!(!route_granted(
            &[grant(from_a, to_services)],
            "team-a",
            "web"
        ));
        assert!(!route_granted(&[], "team-a", "web"));
        let text = refusal("team-a", "team-b", "web");
        assert!(text.contains("ReferenceGrant in team-b"), "{text}");
    }
}
