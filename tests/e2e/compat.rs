//! Argo Rollouts manifests on the real API server: durations written as
//! integer seconds (`duration: 10`, `interval: 30`, `initialDelay: 5`) are
//! admitted beside humantime strings, and out-of-range or malformed ones are
//! refused with the field's message; a `web` metric provider is admitted like
//! the others (server-side dry run: the whole admission chain, nothing
//! stored).

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sluice::crd::{AnalysisTemplate, DurationOrSeconds, Rollout};

use super::harness::{admin_client, ensure_crds, namespace};

/// Post `doc` exactly as written (a typed client could not send `1.5`).
async fn dry_run(client: &Client, ns: &str, doc: &Value) -> Result<Value, String> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let gvk = GroupVersionKind::gvk("sluice.dev", "v1alpha1", kind);
    let plural = format!("{}s", kind.to_lowercase());
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, &plural),
    );
    let object: DynamicObject = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let created = api
        .create(&params, &object)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::to_value(created).map_err(|e| e.to_string())
}

fn rollout(name: &str, pause: Value) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "api", "image": "registry.example.com/api:2.4.0"}]}
            },
            "strategy": {"canary": {
                "stableService": "api-stable",
                "canaryService": "api-canary",
                "steps": [{"setWeight": 10}, {"pause": {"duration": pause}}, {"setWeight": 50}, {"pause": {}}]
            }}
        }
    })
}

fn template(name: &str, interval: Value, initial_delay: Value, timeout: Value) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"metrics": [{
            "name": "success-rate",
            "interval": interval,
            "initialDelay": initial_delay,
            "count": 3,
            "successCondition": "result[0] >= 0.95",
            "provider": {"prometheus": {
                "address": "http://127.0.0.1:9",
                "query": "vector(1)",
                "timeout": timeout
            }}
        }]}
    })
}

#[tokio::test]
async fn integer_durations_and_web_metrics_are_admitted_like_argo_rollouts_and_bad_ones_are_refused()
 {
    let admin = admin_client().await;
    ensure_crds(&admin).await;
    let ns = namespace(&admin, "compat").await;

    // Admitted, stored as written, and read back by Sluice's own types.
    let admitted = dry_run(&admin, &ns, &rollout("int-pause", json!(10)))
        .await
        .unwrap_or_else(|e| panic!("duration: 10 must be admitted: {e}"));
    assert_eq!(
        admitted["spec"]["strategy"]["canary"]["steps"][1]["pause"]["duration"],
        json!(10)
    );
    let typed: Rollout = serde_json::from_value(admitted).expect("a Rollout");
    let steps = typed
        .spec
        .strategy
        .canary
        .and_then(|c| c.steps)
        .unwrap_or_default();
    assert_eq!(
        steps
            .get(1)
            .and_then(|s| s.pause.as_ref())
            .and_then(|p| p.duration.clone()),
        Some(DurationOrSeconds::Seconds(10))
    );
    for doc in [
        rollout("str-pause", json!("30s")),
        rollout("max-int-pause", json!(2_592_000)),
        rollout("zero-pause", json!(0)),
    ] {
        if let Err(e) = dry_run(&admin, &ns, &doc).await {
            panic!("{} must be admitted: {e}", doc["metadata"]["name"]);
        }
    }
    let admitted = dry_run(
        &admin,
        &ns,
        &template("ints", json!(30), json!(5), json!(10)),
    )
    .await
    .unwrap_or_else(|e| panic!("interval: 30, initialDelay: 5, timeout: 10 must be admitted: {e}"));
    let typed: AnalysisTemplate = serde_json::from_value(admitted).expect("a template");
    let metric = &typed.spec.metrics[0];
    assert_eq!(metric.interval, Some(DurationOrSeconds::Seconds(30)));
    assert_eq!(metric.initial_delay, Some(DurationOrSeconds::Seconds(5)));
    let plan = sluice::analysis::run::plan_metric("ints", metric).expect("a valid metric");
    assert_eq!(plan.interval.as_secs(), 30);
    assert_eq!(plan.initial_delay.as_secs(), 5);
    if let Err(e) = dry_run(
        &admin,
        &ns,
        &template("mixed", json!("1m"), json!(0), json!("10s")),
    )
    .await
    {
        panic!("strings and integers mix: {e}");
    }

    // Refused, with the message of the rule that caught it.
    let refused = [
        (rollout("negative", json!(-5)), "not negative"),
        (
            rollout("too-long", json!(2_592_001)),
            "pause.duration must be at most 720h",
        ),
        (rollout("fraction", json!(1.5)), "duration"),
        (
            rollout("garbage", json!("soon")),
            "duration must look like 30s, 5m or 1h30m",
        ),
        (
            rollout("unitless", json!("30")),
            "duration must look like 30s, 5m or 1h30m",
        ),
        (
            template("long-interval", json!(86_401), json!(0), json!(10)),
            "interval must be at most 24h",
        ),
        (
            template("negative-delay", json!(30), json!(-1), json!(10)),
            "not negative",
        ),
        (
            template("long-timeout", json!(30), json!(0), json!(90_000)),
            "timeout must be at most 24h",
        ),
    ];
    // The web provider is a provider like the others: exactly one per metric.
    let mut web = template("web", json!(30), json!(0), json!(10));
    web["spec"]["metrics"][0]["provider"] = json!({"web": {
        "url": "http://metrics.example/api?app={{args.app}}",
        "method": "POST",
        "body": "{\"app\": \"{{args.app}}\"}",
        "headers": [{"key": "Authorization", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}],
        "jsonPath": "{$.data.errorRate}",
        "timeout": 5
    }});
    if let Err(e) = dry_run(&admin, &ns, &web).await {
        panic!("a web metric must be admitted: {e}");
    }
    let mut both = web.clone();
    both["metadata"]["name"] = json!("both");
    both["spec"]["metrics"][0]["provider"]["prometheus"] =
        json!({"address": "http://127.0.0.1:9", "query": "vector(1)"});
    let mut header = web.clone();
    header["metadata"]["name"] = json!("header");
    header["spec"]["metrics"][0]["provider"]["web"]["headers"][0]["value"] = json!("plain");
    let mut refused = refused.to_vec();
    refused.push((
        both,
        "set exactly one provider: prometheus, scrape, web or job",
    ));
    refused.push((header, "a header has either value or valueFrom"));
    for (doc, message) in refused {
        let name = doc["metadata"]["name"].clone();
        match dry_run(&admin, &ns, &doc).await {
            Ok(_) => panic!("{name} must be refused"),
            Err(e) => assert!(e.contains(message), "{name}: {e}"),
        }
    }
}
