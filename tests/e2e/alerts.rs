//! Alert hooks on the real control plane: an analysis abort delivers exactly
//! one `aborted` alert with the numbers in it to each target type (a signed
//! webhook, Slack, Teams, PagerDuty), a restarted controller sends none of
//! them again, and the recovery resolves the PagerDuty incident.

use super::receiver;

use std::time::Duration;

use hmac::{Hmac, Mac};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use sha2::Sha256;
use sluice::crd::{AlertState, AlertTarget, ClusterAlertTarget, RolloutPhase};

use super::analysis::{canary_with, with_analysis};
use super::harness::{ControllerProcess, admin_client, apply_value, cluster, http_get, wait_for};
use super::rbac::service_account_kubeconfig;
use super::support::*;
use receiver::{Answer, Receiver};

fn with_webhook_alerts(doc: &mut serde_json::Value) {
    with_analysis(doc);
    if doc["kind"] == "Rollout" {
        doc["spec"]["alerts"] = json!({
            "subscriptions": [
                {"target": "team-hook"},
                {"target": "team-slack"},
                {"target": "team-teams"},
                {"target": "oncall", "events": ["aborted"], "severities": {"aborted": "error"}}
            ],
            "links": [{"title": "Dashboard", "url": "https://grafana.example.com/d/web?var-rollout={rollout}"}]
        });
    }
}

fn requests_to(receiver: &Receiver, path: &str) -> Vec<receiver::Received> {
    receiver
        .received()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

/// An AlertTarget of `kind` and its Secret.
async fn target(
    ns: &str,
    name: &str,
    kind: &str,
    secret: serde_json::Value,
    endpoint: Option<String>,
) {
    let admin = admin_client().await;
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": secret
    });
    apply_value(&admin, ns, secret).await;
    let mut spec = json!({"type": kind, "secretName": name});
    if let Some(endpoint) = endpoint {
        spec["endpoint"] = json!(endpoint);
    }
    let target = json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "AlertTarget",
        "metadata": {"name": name},
        "spec": spec
    });
    apply_value(&admin, ns, target).await;
}

#[tokio::test]
async fn an_analysis_abort_sends_one_signed_alert_with_the_numbers_even_across_a_restart() {
    let receiver = Receiver::start(vec![]).await;
    let (ns, _stable, mut controller, _traffic) = canary_with(
        "alerts-abort",
        "registry.example.com/web:1.0.1-err10",
        "gateway-canary",
        with_webhook_alerts,
    )
    .await;
    let admin = admin_client().await;
    let url = |path: &str| format!("{}{path}", receiver.url);
    let hook = json!({"url": url("/hooks/team"), "signingKey": "s3cret"});
    target(&ns, "team-hook", "Webhook", hook, None).await;
    target(
        &ns,
        "team-slack",
        "Slack",
        json!({"url": url("/slack")}),
        None,
    )
    .await;
    target(
        &ns,
        "team-teams",
        "Teams",
        json!({"url": url("/teams")}),
        None,
    )
    .await;
    let routing = json!({"routingKey": "R0UTINGKEY"});
    target(&ns, "oncall", "PagerDuty", routing, Some(url("/pd"))).await;
    let first = wait_for(
        Duration::from_secs(120),
        "an aborted alert to each target",
        || {
            let got =
                ["/hooks/team", "/slack", "/teams", "/pd"].map(|p| requests_to(&receiver, p).len());
            let hook = requests_to(&receiver, "/hooks/team").into_iter().next();
            async move { hook.filter(|_| got.iter().all(|n| *n >= 1)) }
        },
    )
    .await;
    let r = rollout(&admin, &ns, "web").await;
    assert_eq!(
        r.status.as_ref().and_then(|s| s.phase),
        Some(RolloutPhase::Aborted),
        "{}",
        controller.log_tail()
    );

    // The body: who, what, where, and the numbers behind the verdict.
    let body = first.json();
    assert_eq!(first.header("x-sluice-event").as_deref(), Some("aborted"));
    assert_eq!(body["schemaVersion"], "sluice.dev/alert/v1");
    assert_eq!(body["event"], "aborted");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["rollout"]["namespace"], ns.as_str());
    assert_eq!(body["rollout"]["name"], "web");
    assert_eq!(
        body["images"]["canary"],
        "registry.example.com/web:1.0.1-err10"
    );
    assert!(body["images"]["stable"].is_string(), "{body}");
    assert_eq!(body["step"]["number"], 2, "{body}");
    assert_eq!(body["step"]["weight"], 25, "{body}");
    assert_eq!(body["reason"], "AnalysisFailed");
    let metric = &body["analysis"]["metrics"][0];
    assert_eq!(metric["name"], "errors-vs-baseline", "{body}");
    assert_eq!(metric["phase"], "Failed", "{body}");
    // Counts are judged on the per-interval rate difference, canary minus
    // baseline: 10% errors against about none, with an interval wholly above 0.
    let estimate = metric["estimate"].as_f64().expect("estimate");
    assert!(estimate > 0.05, "canary - baseline error rate {estimate}");
    let low = metric["intervalLow"].as_f64().expect("interval low");
    assert!(low > 0.0, "interval low {low} not above 0: {body}");
    assert!(metric["intervalLow"].is_number(), "{body}");
    assert_eq!(body["git"]["state"], "NotConfigured");
    assert_eq!(
        body["links"][0]["url"],
        "https://grafana.example.com/d/web?var-rollout=web"
    );
    assert!(
        body["summary"]
            .as_str()
            .is_some_and(|s| s.contains("estimate")),
        "{body}"
    );

    // The same facts in each receiver's format.
    let slack = requests_to(&receiver, "/slack")[0].json();
    assert_eq!(slack["blocks"][0]["type"], "header", "{slack}");
    assert_eq!(
        slack["blocks"][0]["text"]["text"],
        format!("Rollout aborted: {ns}/web")
    );
    assert!(
        slack["text"]
            .as_str()
            .is_some_and(|t| t.contains("estimate")),
        "{slack}"
    );
    let teams = requests_to(&receiver, "/teams")[0].json();
    let card = &teams["attachments"][0];
    assert_eq!(
        card["contentType"], "application/vnd.microsoft.card.adaptive",
        "{teams}"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    let trigger = requests_to(&receiver, "/pd")[0].json();
    assert_eq!(trigger["routing_key"], "R0UTINGKEY");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(
        trigger["payload"]["severity"], "error",
        "the subscription's severity"
    );
    assert_eq!(trigger["payload"]["source"], format!("{ns}/web"));
    let dedup_key = trigger["dedup_key"]
        .as_str()
        .expect("dedup key")
        .to_string();
    assert_eq!(
        dedup_key,
        format!("sluice/{ns}/web/{}", body["id"].as_str().expect("id"))
    );
    assert!(trigger["payload"]["custom_details"]["analysis"]["metrics"][0]["estimate"].is_number());

    // Signed with the shared secret.
    let timestamp = first.header("x-sluice-timestamp").expect("timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").expect("key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&first.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        first.header("x-sluice-signature"),
        Some(format!("sha256={expected}"))
    );

    // Recorded, counted and visible.
    let id = body["id"].as_str().expect("id").to_string();
    let recorded = wait_for(Duration::from_secs(20), "the Sent record", || {
        let (admin, ns, id) = (admin.clone(), ns.clone(), id.clone());
        async move {
            let r = rollout(&admin, &ns, "web").await;
            r.status?
                .alerts
                .into_iter()
                .find(|a| a.event_id == id && a.state == AlertState::Sent)
        }
    })
    .await;
    assert_eq!(recorded.target, format!("AlertTarget/{ns}/team-hook"));
    let (_, metrics) = http_get(&format!("{}/metrics", controller.http))
        .await
        .expect("metrics");
    assert!(
        metrics.contains(
            "sluice_alerts_total{target_type=\"Webhook\",event=\"aborted\",result=\"delivered\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        event_reasons(&admin, &ns, "web")
            .await
            .contains(&"AlertSent".to_string())
    );
    let targets: Api<AlertTarget> = Api::namespaced(admin.clone(), &ns);
    let target = targets.get("team-hook").await.expect("target");
    let ready = target
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned())
        .expect("Ready condition");
    assert_eq!(ready.status, "True");

    // A crash and a new controller: it finds the record and sends nothing again.
    controller.kill();
    let kubeconfig = service_account_kubeconfig(&admin, &ns).await;
    let second = ControllerProcess::start(
        &kubeconfig,
        &ns,
        "alerts-restarted",
        &["--no-leader-election"],
    );
    wait_for(
        Duration::from_secs(30),
        "the new controller to reconcile",
        || {
            let url = format!("{}/metrics", second.http);
            async move {
                let (_, text) = http_get(&url).await?;
                text.contains("sluice_reconciles_total{result=\"ok\"}")
                    .then_some(())
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        receiver.received().len(),
        4,
        "one alert per target and no duplicate after the restart; log:\n{}",
        second.log_tail()
    );

    // Back on the stable image: healthy again, and PagerDuty's incident is resolved.
    let stable_image = body["images"]["stable"].as_str().expect("stable image");
    set_image(&admin, &ns, "web", stable_image).await;
    let resolve = wait_for(Duration::from_secs(60), "a PagerDuty resolve", || {
        let pd = requests_to(&receiver, "/pd");
        async move { pd.get(1).map(|r| r.json()) }
    })
    .await;
    assert_eq!(resolve["event_action"], "resolve", "{resolve}");
    assert_eq!(resolve["dedup_key"], dedup_key.as_str());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        receiver.received().len(),
        5,
        "only PagerDuty hears of the recovery"
    );
}

#[tokio::test]
async fn a_refused_alert_is_not_retried_and_marks_its_cluster_target_failing() {
    let refusals = vec![
        Answer {
            body: "invalid_payload".into(),
            ..Answer::status(400)
        };
        10
    ];
    let receiver = Receiver::start(refusals).await;
    let (admin, ns, kubeconfig) = setup("alerts-refused").await;
    let _controller = ControllerProcess::start(
        &kubeconfig,
        &ns,
        "alerts-refused",
        &["--no-leader-election"],
    );
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "slack"},
        "stringData": {"url": format!("{}/slack", receiver.url)}
    });
    apply_value(&admin, &ns, secret).await;
    let target_name = format!("{ns}-slack");
    let targets: Api<ClusterAlertTarget> = Api::all(admin.clone());
    let target = json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "ClusterAlertTarget",
        "metadata": {"name": target_name},
        "spec": {"type": "Slack", "secretName": "slack", "secretNamespace": ns, "allowedNamespaces": [ns]}
    });
    targets
        .patch(
            &target_name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&target),
        )
        .await
        .expect("apply ClusterAlertTarget");
    for file in [
        "gateway-canary/services.yaml",
        "gateway-canary/httproute.yaml",
    ] {
        apply_example(&admin, &ns, file, |_| {}).await;
    }
    apply_example(&admin, &ns, "gateway-canary/rollout.yaml", |doc| {
        speed_up(doc);
        doc["spec"]["strategy"]["canary"]["steps"] =
            json!([{"setWeight": 30}, {"pause": {}}, {"setWeight": 100}]);
        doc["spec"]["alerts"] = json!({"subscriptions": [{
            "target": target_name, "clusterScope": true, "events": ["stepCompleted", "paused"]
        }]});
    })
    .await;
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    set_image(&admin, &ns, "web", "registry.example.com/web:2").await;
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Paused,
        Duration::from_secs(90),
    )
    .await;

    // Two events (step 1 completed, paused at step 2), one refused attempt each.
    let records = wait_for(Duration::from_secs(30), "two Failed records", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            let status = rollout(&admin, &ns, "web").await.status?;
            let failed: Vec<_> = status
                .alerts
                .into_iter()
                .filter(|a| a.state == AlertState::Failed)
                .collect();
            (failed.len() == 2).then_some(failed)
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), 2, "a 400 is never retried");
    for record in &records {
        assert_eq!(record.attempts, 1);
        assert_eq!(record.target, format!("ClusterAlertTarget/{target_name}"));
        let message = record.message.clone().unwrap_or_default();
        assert!(message.contains("HTTP 400: invalid_payload"), "{message}");
        assert!(!message.contains(&receiver.url), "URL leaked: {message}");
    }
    let mut events: Vec<&str> = records
        .iter()
        .map(|r| r.event_id.split('/').next().unwrap_or(""))
        .collect();
    events.sort();
    assert_eq!(events, ["paused", "stepCompleted"]);
    assert!(
        event_reasons(&admin, &ns, "web")
            .await
            .contains(&"AlertFailed".to_string())
    );
    let status = targets
        .get(&target_name)
        .await
        .expect("target")
        .status
        .expect("target status");
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "DeliveryFailing")
    );
    assert_eq!(status.consecutive_failures, 2);
    let error = status.last_error.unwrap_or_default();
    assert!(
        error.contains("400") && !error.contains(&receiver.url),
        "{error}"
    );
    let _ = targets.delete(&target_name, &Default::default()).await;
}

#[tokio::test]
async fn a_failed_git_revert_is_alerted_once_while_traffic_stays_on_stable() {
    let receiver = Receiver::start(vec![]).await;
    let (admin, ns, kubeconfig) = setup("alerts-revert-failed").await;
    let controller =
        ControllerProcess::start(&kubeconfig, &ns, "alerts-revert", &["--no-leader-election"]);
    let hook = json!({"url": format!("{}/hooks/team", receiver.url)});
    target(&ns, "team-hook", "Webhook", hook, None).await;
    for file in [
        "gateway-canary/services.yaml",
        "gateway-canary/httproute.yaml",
    ] {
        apply_example(&admin, &ns, file, |_| {}).await;
    }
    apply_example(&admin, &ns, "gateway-canary/rollout.yaml", |doc| {
        speed_up(doc);
        doc["spec"]["strategy"]["canary"]["steps"] =
            json!([{"setWeight": 30}, {"pause": {}}, {"setWeight": 100}]);
        doc["spec"]["git"] = json!({"repository": "/nonexistent/gitops.git", "path": "apps/web"});
        doc["spec"]["alerts"] = json!({"subscriptions": [
            {"target": "team-hook", "events": ["aborted", "revertFailed"]}
        ]});
    })
    .await;
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    set_image(&admin, &ns, "web", "registry.example.com/web:2").await;
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Paused,
        Duration::from_secs(90),
    )
    .await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["rollout", "abort", "web", "--revert", "-n", &ns])
        .env("KUBECONFIG", &cluster().info.kubeconfig)
        .output()
        .expect("sluice rollout abort");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed = wait_for(Duration::from_secs(60), "a revertFailed alert", || {
        let got: Vec<_> = receiver
            .received()
            .into_iter()
            .filter(|r| r.header("x-sluice-event").as_deref() == Some("revertFailed"))
            .collect();
        async move { got.into_iter().next() }
    })
    .await;
    let body = failed.json();
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["git"]["state"], "Failed", "{body}");
    let summary = body["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("traffic stays on stable"), "{summary}");
    assert!(
        summary.contains("/nonexistent/gitops.git"),
        "says which repository: {summary}"
    );
    // Traffic went back at once; the revert failure did not hold it up.
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-canary").await,
        Some(0)
    );
    let aborted: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|r| r.header("x-sluice-event").as_deref() == Some("aborted"))
        .collect();
    assert_eq!(aborted.len(), 1, "{}", controller.log_tail());
    assert_eq!(aborted[0].json()["reason"], "AbortedByUser");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), 2, "one alert per event");
}
