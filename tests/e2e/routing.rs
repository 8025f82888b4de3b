//! Header routes and mirroring (issue #16) on the real API server with the
//! Gateway API CRDs: the HTTPRoute rule and the RequestMirror filter appear
//! at their steps, go when a later step clears them and on an abort, and the
//! suite's Prometheus sees canary requests come through them at weight 0.

use std::time::Duration;

use kube::Api;
use kube::Client;
use kube::api::DynamicObject;
use serde_json::{Value, json};
use sluice::crd::RolloutPhase;
use sluice::engine::controls;
use sluice::engine::route_extras::HEADER_RULE_NAME;

use super::harness::{ControllerProcess, cluster, wait_for};
use super::support::*;

const SETTLE: Duration = Duration::from_secs(90);

/// The stored HTTPRoute `web`: (resourceVersion, spec.rules).
pub(super) async fn route(admin: &Client, ns: &str) -> (String, Value) {
    let resource = sluice::reconcile::observe::http_route_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), ns, &resource);
    let object = api.get("web").await.expect("read HTTPRoute web");
    let version = object.metadata.resource_version.unwrap_or_default();
    (version, object.data["spec"]["rules"].clone())
}

fn header_rule(rules: &Value) -> Option<Value> {
    rules
        .as_array()?
        .iter()
        .find(|r| r["name"] == HEADER_RULE_NAME)
        .cloned()
}

fn mirror_filters(rules: &Value) -> Vec<Value> {
    rules[0]["filters"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f["type"] == "RequestMirror")
        .collect()
}

/// Sum of an instant query's samples for `hash` (0 when absent or unreachable).
pub(super) async fn prometheus_value(prometheus: &str, query: &str, hash: &str) -> f64 {
    let Ok(response) = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", query)])
        .timeout(Duration::from_secs(5))
        .send()
        .await
    else {
        return 0.0;
    };
    let body: Value = response.json().await.unwrap_or_default();
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|r| r["metric"]["pod_template_hash"] == hash)
        .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
        .sum()
}

/// Wait until Prometheus shows `query` above zero for `hash`.
async fn wait_positive(prometheus: &str, query: String, hash: &str, what: &str) -> f64 {
    wait_for(Duration::from_secs(60), what, || {
        let (prometheus, query, hash) = (prometheus.to_string(), query.clone(), hash.to_string());
        async move {
            let value = prometheus_value(&prometheus, &query, &hash).await;
            (value > 0.0).then_some(value)
        }
    })
    .await
}

pub(super) async fn step_index(admin: &Client, ns: &str) -> Option<i32> {
    rollout(admin, ns, "web")
        .await
        .status
        .and_then(|s| s.current_step_index)
}

#[tokio::test]
async fn header_route_and_mirror_appear_at_their_steps_and_go_on_clear_and_abort() {
    let prometheus = cluster().info.prometheus.clone().expect("prometheus");
    let (admin, ns, kubeconfig) = setup("routing").await;
    let _controller =
        ControllerProcess::start(&kubeconfig, &ns, "routing", &["--no-leader-election"]);
    for file in ["services.yaml", "httproute.yaml"] {
        apply_example(&admin, &ns, &format!("header-routing/{file}"), |_| {}).await;
    }
    apply_example(&admin, &ns, "header-routing/rollout.yaml", |doc| {
        speed_up(doc);
        doc["spec"]["strategy"]["canary"]["steps"] = json!([
            {"setHeaderRoute": {"match": [{"headerName": "X-Canary", "headerValue": {"exact": "internal"}}]}},
            {"pause": {}},
            {"setHeaderRoute": {}},
            {"setMirrorRoute": {"percentage": 50}},
            {"pause": {}}
        ]);
    })
    .await;
    let first = wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    let (_, original) = route(&admin, &ns).await;
    let _traffic = start_trafficgen_with(
        &ns,
        200,
        &["--header", "x-canary=internal", "--header-share", "0.2"],
    );

    // Step 1: the header rule, weights untouched.
    set_image(&admin, &ns, "web", "registry.example.com/web:1.0.1").await;
    let paused = wait_phase(&admin, &ns, "web", RolloutPhase::Paused, SETTLE).await;
    let canary = paused
        .status
        .and_then(|s| s.canary_revision)
        .expect("canary");
    let (version, rules) = route(&admin, &ns).await;
    let rule = header_rule(&rules).expect("header rule on the stored route");
    assert_eq!(
        rule["matches"][0]["headers"],
        json!([{"name": "x-canary", "type": "Exact", "value": "internal"}]),
        "{rules:#}"
    );
    assert_eq!(rule["backendRefs"][0]["name"], "web-canary");
    assert_eq!(rules[0], original[0], "the weighted rule is unchanged");
    assert!(mirror_filters(&rules).is_empty());
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-canary").await,
        Some(0)
    );
    // What Sluice wrote is what the API server stores: no write loop.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        route(&admin, &ns).await.0,
        version,
        "route rewritten while settled"
    );

    let selector = format!("namespace=\"{ns}\",app=\"web\"");
    let through_header = wait_positive(
        &prometheus,
        format!("sluice_trafficgen_header_requests_total{{{selector}}}"),
        &canary,
        "canary requests through the header rule in Prometheus",
    )
    .await;
    let canary_served = wait_positive(
        &prometheus,
        format!("http_requests_total{{{selector}}}"),
        &canary,
        "the canary's request counter in Prometheus",
    )
    .await;
    let stable_header = prometheus_value(
        &prometheus,
        &format!("sluice_trafficgen_header_requests_total{{{selector}}}"),
        &stable,
    )
    .await;
    eprintln!(
        "at weight 0: {through_header} header requests and {canary_served} in all on the canary; \
         {stable_header} header requests on stable (before the rule was in place)"
    );

    // Promote: the next step clears the header rule, the one after mirrors 50%.
    annotate(&admin, &ns, "web", controls::PROMOTE, "p1").await;
    wait_for(SETTLE, "paused at the mirror step", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            let paused = rollout(&admin, &ns, "web")
                .await
                .status
                .and_then(|s| s.phase)
                == Some(RolloutPhase::Paused);
            (paused && step_index(&admin, &ns).await == Some(4)).then_some(())
        }
    })
    .await;
    let (version, rules) = route(&admin, &ns).await;
    assert!(
        header_rule(&rules).is_none(),
        "cleared by the later step: {rules:#}"
    );
    let mirrors = mirror_filters(&rules);
    assert_eq!(mirrors.len(), 1, "{rules:#}");
    assert_eq!(mirrors[0]["requestMirror"]["percent"], 50);
    assert_eq!(
        mirrors[0]["requestMirror"]["backendRef"]["name"],
        "web-canary"
    );
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-canary").await,
        Some(0)
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        route(&admin, &ns).await.0,
        version,
        "route rewritten while mirroring"
    );
    let mirrored = wait_positive(
        &prometheus,
        format!("sluice_trafficgen_mirrored_requests_total{{{selector}}}"),
        &canary,
        "mirrored requests on the canary in Prometheus",
    )
    .await;
    eprintln!("mirrored to the canary at weight 0: {mirrored}");

    // Abort: no header rule and no mirror reach the aborted canary.
    annotate(&admin, &ns, "web", controls::ABORT, "a1").await;
    wait_phase(&admin, &ns, "web", RolloutPhase::Aborted, SETTLE).await;
    // The route is written before the status says Aborted.
    let (_, rules) = route(&admin, &ns).await;
    assert_eq!(
        rules, original,
        "the route is back to exactly what the user wrote"
    );
}

/// The stored GRPCRoute `web`'s rules.
async fn grpc_rules(admin: &Client, ns: &str) -> Value {
    let resource =
        sluice::reconcile::observe::route_resource(sluice::engine::spec::RouteKind::Grpc);
    let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), ns, &resource);
    let object = api.get("web").await.expect("read GRPCRoute web");
    object.data["spec"]["rules"].clone()
}

fn weight_of(rules: &Value, service: &str) -> Option<i64> {
    rules[0]["backendRefs"]
        .as_array()?
        .iter()
        .find(|b| b["name"] == service)
        .and_then(|b| b["weight"].as_i64())
}

#[tokio::test]
async fn a_grpc_route_carries_weights_and_a_header_rule_with_the_deploy_rbac() {
    let (admin, ns, kubeconfig) = setup("routing-grpc").await;
    let _controller =
        ControllerProcess::start(&kubeconfig, &ns, "routing-grpc", &["--no-leader-election"]);
    for file in ["services.yaml", "grpcroute.yaml"] {
        apply_example(&admin, &ns, &format!("grpc-canary/{file}"), |_| {}).await;
    }
    apply_example(&admin, &ns, "grpc-canary/rollout.yaml", |doc| {
        speed_up(doc);
        doc["spec"]["strategy"]["canary"]["steps"] = json!([
            {"setHeaderRoute": {"match": [{"headerName": "x-canary", "headerValue": {"regex": "^intern"}}]}},
            {"setWeight": 25},
            {"pause": {}}
        ]);
    })
    .await;
    wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    let original = grpc_rules(&admin, &ns).await;
    set_image(&admin, &ns, "web", "registry.example.com/web:1.0.1").await;
    let paused = wait_phase(&admin, &ns, "web", RolloutPhase::Paused, SETTLE).await;
    let routing = paused
        .status
        .and_then(|s| s.traffic_routing)
        .unwrap_or_default();
    assert!(routing.contains("GRPCRoute"), "{routing}");
    let rules = grpc_rules(&admin, &ns).await;
    assert_eq!(weight_of(&rules, "web-canary"), Some(25), "{rules:#}");
    assert_eq!(weight_of(&rules, "web-stable"), Some(75), "{rules:#}");
    let rule = header_rule(&rules).expect("header rule on the GRPCRoute");
    assert_eq!(
        rule["matches"],
        json!([{"method": original[0]["matches"][0]["method"].clone(),
                "headers": [{"name": "x-canary", "type": "RegularExpression", "value": "^intern"}]}]),
        "{rules:#}"
    );

    annotate(&admin, &ns, "web", controls::ABORT, "a1").await;
    wait_phase(&admin, &ns, "web", RolloutPhase::Aborted, SETTLE).await;
    let rules = grpc_rules(&admin, &ns).await;
    assert_eq!(rules, original, "weights back to 100/0 and no header rule");
}
