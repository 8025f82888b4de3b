//! Argo Rollouts-style analysis with the real controller: a `web` metric
//! whose token comes from a Secret judges a canary through an endpoint on
//! 127.0.0.1 (with integer durations and an Argo-spelled condition), and a
//! condition Sluice does not support is reported with its column on the
//! AnalysisRun, the Rollout and an Event; a tenant's web metric that is
//! redirected to the cloud metadata address is refused and holds the rollout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, Uri};
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};
use sluice::crd::{AnalysisPhase, AnalysisRun, RolloutPhase};

use super::harness::{ControllerProcess, apply_value, wait_for};
use super::support::*;

const SECRET: &str = "Bearer tok-81c2e4-never-shown";

/// Every query string the endpoint answered with a 200.
type Seen = Arc<Mutex<Vec<String>>>;

/// A metrics endpoint on 127.0.0.1 that wants the token and reports a 1% error rate.
async fn metrics_endpoint(seen: Seen) -> String {
    let handler = move |headers: HeaderMap, uri: Uri| {
        let seen = seen.clone();
        async move {
            if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(SECRET) {
                return (
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "token"}).to_string(),
                );
            }
            if let Ok(mut seen) = seen.lock() {
                seen.push(uri.query().unwrap_or_default().to_string());
            }
            (
                StatusCode::OK,
                json!({"data": {"errorRate": 0.01}}).to_string(),
            )
        }
    };
    let app = axum::Router::new().route("/rate", axum::routing::get(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

/// The gateway example with one analysis step on `template`, then a new image.
async fn canary_with_analysis(admin: &kube::Client, ns: &str, template: &str) {
    for file in [
        "gateway-canary/services.yaml",
        "gateway-canary/httproute.yaml",
    ] {
        apply_example(admin, ns, file, |_| {}).await;
    }
    apply_example(admin, ns, "gateway-canary/rollout.yaml", |doc| {
        speed_up(doc);
        doc["spec"]["strategy"]["canary"]["steps"] = json!([
            {"setWeight": 25},
            {"analysis": {"templates": [{"templateName": template}]}},
            {"setWeight": 100}
        ]);
    })
    .await;
    wait_phase(
        admin,
        ns,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    set_image(admin, ns, "web", "registry.example.com/web:2").await;
}

/// The first AnalysisRun whose phase is `phase`.
async fn run_in(admin: &kube::Client, ns: &str, phase: AnalysisPhase) -> AnalysisRun {
    let runs: Api<AnalysisRun> = Api::namespaced(admin.clone(), ns);
    wait_for(
        Duration::from_secs(120),
        &format!("a run {phase:?}"),
        || {
            let runs = runs.clone();
            async move {
                let list = runs.list(&ListParams::default()).await.ok()?;
                list.items
                    .into_iter()
                    .find(|r| r.status.as_ref().and_then(|s| s.phase) == Some(phase))
            }
        },
    )
    .await
}

async fn events_text(admin: &kube::Client, ns: &str) -> String {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), ns);
    let list = events.list(&ListParams::default()).await.expect("events");
    serde_json::to_string(&list.items).expect("json")
}

#[tokio::test]
async fn a_web_metric_with_a_secret_header_judges_a_canary() {
    let seen = Seen::default();
    let endpoint = metrics_endpoint(seen.clone()).await;
    let (admin, ns, kubeconfig) = setup("compat-web").await;
    let controller =
        ControllerProcess::start(&kubeconfig, &ns, "compat-web", &["--no-leader-election"]);
    apply_value(
        &admin,
        &ns,
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "metrics-api"},
            "stringData": {"token": SECRET}
        }),
    )
    .await;
    apply_value(&admin, &ns, json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "web-errors"},
        "spec": {"metrics": [{
            "name": "error-rate", "interval": 2, "initialDelay": 1, "count": 3,
            "successCondition": "result[0] < 0.05 and not isNaN(result[0])",
            "provider": {"web": {
                "url": format!("{endpoint}/rate?app={{{{args.rollout}}}}&rev={{{{revision}}}}"),
                "headers": [{"key": "Authorization",
                             "valueFrom": {"secretKeyRef": {"name": "metrics-api", "key": "token"}}}],
                "jsonPath": "{$.data.errorRate}",
                "timeout": 5
            }}
        }]}
    }))
    .await;
    canary_with_analysis(&admin, &ns, "web-errors").await;

    let run = run_in(&admin, &ns, AnalysisPhase::Successful).await;
    let metric = run
        .status
        .as_ref()
        .map(|s| s.metrics.clone())
        .unwrap_or_default();
    let values: Vec<Option<f64>> = metric
        .iter()
        .flat_map(|m| m.measurements.iter().map(|x| x.value))
        .collect();
    assert_eq!(values, vec![Some(0.01); 3], "three measurements of 1%");
    let canary = run.spec.canary_revision.clone();
    let queries = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(
        queries
            .iter()
            .any(|q| *q == format!("app=web&rev={canary}")),
        "asked about the canary {canary}: {queries:?}"
    );
    wait_for(Duration::from_secs(90), "the canary promoted", || {
        let (admin, ns, canary) = (admin.clone(), ns.clone(), canary.clone());
        async move {
            let r = rollout(&admin, &ns, "web").await;
            let status = r.status?;
            (status.phase == Some(RolloutPhase::Healthy)
                && status.stable_revision.as_deref() == Some(canary.as_str()))
            .then_some(())
        }
    })
    .await;

    let runs: Api<AnalysisRun> = Api::namespaced(admin.clone(), &ns);
    let written = format!(
        "{}{}{}",
        serde_json::to_string(&runs.list(&ListParams::default()).await.expect("runs").items)
            .expect("json"),
        serde_json::to_string(&rollout(&admin, &ns, "web").await).expect("json"),
        events_text(&admin, &ns).await
    );
    assert!(
        !written.contains("tok-81c2e4"),
        "the token is in status or Events"
    );
    let log = std::fs::read_to_string(&controller.log).expect("log");
    assert!(
        !log.contains("tok-81c2e4"),
        "the token is in the controller's log"
    );
}

#[tokio::test]
async fn an_unsupported_condition_is_reported_with_its_column() {
    let (admin, ns, kubeconfig) = setup("compat-cond").await;
    let _controller =
        ControllerProcess::start(&kubeconfig, &ns, "compat-cond", &["--no-leader-election"]);
    apply_value(
        &admin,
        &ns,
        json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "argo-style"},
            "spec": {"metrics": [{
                "name": "errors", "interval": 2, "count": 3,
                "successCondition": "len(filter(result, {# > 1})) > 0",
                "provider": {"prometheus": {"address": "http://127.0.0.1:9", "query": "vector(0)"}}
            }]}
        }),
    )
    .await;
    canary_with_analysis(&admin, &ns, "argo-style").await;

    const WHAT: &str = "unsupported function 'filter' at column 5";
    let run = run_in(&admin, &ns, AnalysisPhase::Error).await;
    let message = run.status.and_then(|s| s.message).unwrap_or_default();
    assert!(message.contains("metric argo-style/errors"), "{message}");
    assert!(message.contains(WHAT), "{message}");
    // An Error verdict cannot tell: the Rollout holds and says why.
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Paused,
        Duration::from_secs(60),
    )
    .await;
    let status: Value =
        serde_json::to_value(rollout(&admin, &ns, "web").await.status).expect("json");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains(WHAT),
        "{status}"
    );
    let conditions = status["conditions"].to_string();
    assert!(
        conditions.contains(WHAT),
        "a condition carries it: {conditions}"
    );
    let events = wait_for(Duration::from_secs(30), "the Event", || {
        let admin = admin.clone();
        let ns = ns.clone();
        async move { Some(events_text(&admin, &ns).await).filter(|t| t.contains(WHAT)) }
    })
    .await;
    assert!(events.contains("Warning"), "a Warning Event: {events}");
}

#[tokio::test]
async fn a_web_metric_redirected_to_the_metadata_service_is_refused_and_holds_the_rollout() {
    // A tenant-controlled endpoint that bounces the controller's request to
    // the instance-metadata address, where the node's credentials live.
    let app = axum::Router::new().route(
        "/rate",
        axum::routing::get(|| async {
            (
                StatusCode::FOUND,
                [(
                    axum::http::header::LOCATION,
                    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                )],
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let (admin, ns, kubeconfig) = setup("compat-egress").await;
    let _controller =
        ControllerProcess::start(&kubeconfig, &ns, "compat-egress", &["--no-leader-election"]);
    apply_value(&admin, &ns, json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "bounced"},
        "spec": {"metrics": [{
            "name": "error-rate", "interval": 2, "count": 3, "consecutiveErrorLimit": 1,
            "successCondition": "result[0] < 0.05",
            "provider": {"web": {"url": format!("{endpoint}/rate"), "jsonPath": "$.rate", "timeout": 5}}
        }]}
    }))
    .await;
    canary_with_analysis(&admin, &ns, "bounced").await;

    const WHAT: &str = "the controller refuses to reach 169.254.169.254";
    let run = run_in(&admin, &ns, AnalysisPhase::Error).await;
    let messages = serde_json::to_string(&run.status).expect("json");
    assert!(messages.contains(WHAT), "{messages}");
    assert!(
        messages.contains("denied range 169.254.0.0/16"),
        "{messages}"
    );
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Paused,
        Duration::from_secs(60),
    )
    .await;
    let status = rollout(&admin, &ns, "web").await.status.expect("status");
    assert_ne!(
        status.stable_revision,
        Some(run.spec.canary_revision.clone()),
        "the canary was not promoted"
    );
    wait_for(Duration::from_secs(30), "the Event", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move { Some(events_text(&admin, &ns).await).filter(|t| t.contains(WHAT)) }
    })
    .await;
}
