//! Named routes (Argo's `managedRoutes`) on the real API server with the
//! Gateway API CRDs: two header routes at once and a per-match mirror, read
//! back from the stored HTTPRoute at each step, one header route removed by
//! name, all gone after promotion; the suite's Prometheus shows the canary
//! taking exactly the matching requests.

use std::time::Duration;

use kube::Client;
use serde_json::{Value, json};
use sluice::crd::RolloutPhase;
use sluice::engine::controls;

use super::harness::{ControllerProcess, cluster, wait_for};
use super::routing::{prometheus_value, route, step_index};
use super::support::*;

const SETTLE: Duration = Duration::from_secs(90);
/// How long the request counters are watched to measure a share.
const WINDOW: Duration = Duration::from_secs(15);

fn sluice_rules(rules: &Value) -> Vec<Value> {
    rules
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["name"].as_str().is_some_and(|n| n.starts_with("sluice-")))
        .collect()
}

fn names(rules: &Value) -> Vec<String> {
    sluice_rules(rules)
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Over `WINDOW`: how much each counter `query` grew on the canary and on
/// stable, as (canary, stable).
async fn measure(
    prometheus: &str,
    queries: &[String],
    canary: &str,
    stable: &str,
) -> Vec<(f64, f64)> {
    let mut before = Vec::new();
    for query in queries {
        before.push((
            prometheus_value(prometheus, query, canary).await,
            prometheus_value(prometheus, query, stable).await,
        ));
    }
    tokio::time::sleep(WINDOW).await;
    let mut out = Vec::new();
    for (query, (canary_before, stable_before)) in queries.iter().zip(before) {
        out.push((
            prometheus_value(prometheus, query, canary).await - canary_before,
            prometheus_value(prometheus, query, stable).await - stable_before,
        ));
    }
    out
}

async fn wait_paused_at(admin: &Client, ns: &str, index: i32) {
    wait_for(SETTLE, &format!("paused at step {index}"), || {
        let (admin, ns) = (admin.clone(), ns.to_string());
        async move {
            let paused = rollout(&admin, &ns, "web")
                .await
                .status
                .and_then(|s| s.phase)
                == Some(RolloutPhase::Paused);
            (paused && step_index(&admin, &ns).await == Some(index)).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn two_named_header_routes_and_a_per_match_mirror_hold_until_removed_by_name_and_promotion() {
    let prometheus = cluster().info.prometheus.clone().expect("prometheus");
    let (admin, ns, kubeconfig) = setup("routing-named").await;
    let _controller =
        ControllerProcess::start(&kubeconfig, &ns, "routing-named", &["--no-leader-election"]);
    for file in ["services.yaml", "httproute.yaml"] {
        apply_example(&admin, &ns, &format!("header-routing/{file}"), |_| {}).await;
    }
    apply_example(&admin, &ns, "header-routing/rollout.yaml", |doc| {
        speed_up(doc);
        let canary = &mut doc["spec"]["strategy"]["canary"];
        canary["trafficRouting"]["managedRoutes"] =
            json!([{"name": "staff"}, {"name": "beta"}, {"name": "shadow"}]);
        canary["steps"] = json!([
            {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}},
            {"setHeaderRoute": {"name": "staff", "match": [{"headerName": "x-staff", "headerValue": {"regex": "^(yes|true)$"}}]}},
            {"setMirrorRoute": {"name": "shadow", "percentage": 50, "match": [{"headers": {"x-shadow": {"exact": "1"}}}]}},
            {"pause": {}},
            {"setHeaderRoute": {"name": "beta"}},
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
    // 300 rps: 10% each carries x-staff, x-beta or x-shadow; the rest none.
    let _traffic = start_trafficgen_with(
        &ns,
        300,
        &[
            "--header",
            "x-staff=yes",
            "--header",
            "x-beta=1",
            "--header",
            "x-shadow=1",
            "--header-share",
            "0.1",
        ],
    );

    set_image(&admin, &ns, "web", "registry.example.com/web:1.0.1").await;
    wait_paused_at(&admin, &ns, 3).await;
    let canary = rollout(&admin, &ns, "web")
        .await
        .status
        .and_then(|s| s.canary_revision)
        .expect("canary");
    let (version, rules) = route(&admin, &ns).await;
    assert_eq!(
        names(&rules),
        [
            "sluice-route-staff",
            "sluice-route-beta",
            "sluice-route-shadow"
        ],
        "managedRoutes order, not step order: {rules:#}"
    );
    let ours = sluice_rules(&rules);
    assert_eq!(
        ours[0]["matches"][0]["headers"],
        json!([{"name": "x-staff", "type": "RegularExpression", "value": "^(yes|true)$"}])
    );
    assert_eq!(ours[0]["backendRefs"][0]["name"], "web-canary");
    assert_eq!(
        ours[1]["matches"][0]["headers"],
        json!([{"name": "x-beta", "type": "Exact", "value": "1"}])
    );
    let shadow = &ours[2];
    assert_eq!(
        shadow["matches"][0]["headers"],
        json!([{"name": "x-shadow", "type": "Exact", "value": "1"}])
    );
    assert_eq!(
        shadow["backendRefs"], original[0]["backendRefs"],
        "the mirrored requests themselves follow the weights (all on stable)"
    );
    let mirror = shadow["filters"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["type"] == "RequestMirror").cloned())
        .expect("RequestMirror filter");
    assert_eq!(mirror["requestMirror"]["percent"], 50);
    assert_eq!(mirror["requestMirror"]["backendRef"]["name"], "web-canary");
    assert_eq!(rules[0], original[0], "the weighted rule is unchanged");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        route(&admin, &ns).await.0,
        version,
        "route rewritten while settled"
    );

    let selector = format!("namespace=\"{ns}\",app=\"web\"");
    let header_query =
        |h: &str| format!("sluice_trafficgen_header_requests_total{{{selector},header=\"{h}\"}}");
    let queries = [
        header_query("x-staff=yes"),
        header_query("x-beta=1"),
        header_query("x-shadow=1"),
        format!("sluice_trafficgen_mirrored_requests_total{{{selector}}}"),
    ];
    let both = measure(&prometheus, &queries, &canary, &stable).await;
    let (staff, beta, shadow, mirrored) = (both[0], both[1], both[2], both[3]);
    eprintln!(
        "two routes on, over {WINDOW:?} (canary, stable): x-staff {staff:?}, x-beta {beta:?}, \
         x-shadow {shadow:?}; mirrored copies on the canary {} = {:.2} of the x-shadow requests",
        mirrored.0,
        mirrored.0 / shadow.1.max(1.0)
    );
    assert!(
        staff.0 > 100.0 && staff.1 == 0.0,
        "x-staff all on the canary: {staff:?}"
    );
    assert!(
        beta.0 > 100.0 && beta.1 == 0.0,
        "x-beta all on the canary: {beta:?}"
    );
    assert!(
        shadow.1 > 100.0 && shadow.0 == 0.0,
        "x-shadow served by stable: {shadow:?}"
    );
    assert_eq!(mirrored.1, 0.0, "copies go to the canary only");
    let ratio = mirrored.0 / shadow.1;
    assert!(
        (0.4..=0.6).contains(&ratio),
        "mirrored {ratio:.2}, want 0.5"
    );

    // Remove beta by name: staff and the mirror stay.
    annotate(&admin, &ns, "web", controls::PROMOTE, "p1").await;
    wait_paused_at(&admin, &ns, 5).await;
    let (_, rules) = route(&admin, &ns).await;
    assert_eq!(
        names(&rules),
        ["sluice-route-staff", "sluice-route-shadow"],
        "{rules:#}"
    );
    // The generator re-reads the route every 250ms and Prometheus scrapes
    // every second: let requests routed by the old rules be counted first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = measure(&prometheus, &queries[..2], &canary, &stable).await;
    eprintln!(
        "beta removed, over {WINDOW:?} (canary, stable): x-staff {:?}, x-beta {:?}",
        after[0], after[1]
    );
    assert!(after[0].0 > 100.0 && after[0].1 == 0.0, "{after:?}");
    assert!(after[1].1 > 100.0 && after[1].0 == 0.0, "{after:?}");

    // Promotion: every rule of Sluice's goes, the route is the user's again.
    annotate(&admin, &ns, "web", controls::PROMOTE, "p2").await;
    wait_for(SETTLE, "promoted", || {
        let (admin, ns, canary) = (admin.clone(), ns.clone(), canary.clone());
        async move {
            let status = rollout(&admin, &ns, "web").await.status?;
            (status.phase == Some(RolloutPhase::Healthy)
                && status.stable_revision.as_deref() == Some(canary.as_str()))
            .then_some(())
        }
    })
    .await;
    let (_, rules) = route(&admin, &ns).await;
    assert!(names(&rules).is_empty(), "{rules:#}");
    assert_eq!(rules, original, "the route is back to what the user wrote");
}
