//! Canary rollouts on the real control plane: weights observed on the HTTPRoute,
//! replica-ratio scaling, restarts, admission validation, invalid references.

use std::time::Duration;

use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use sluice::crd::{Rollout, RolloutPhase};
use sluice::engine::controls;

use super::harness::{ControllerProcess, admin_client, cluster, http_get, wait_for};
use super::support::*;

const SETTLE: Duration = Duration::from_secs(90);

#[tokio::test]
async fn api_server_is_the_pinned_kubernetes_release() {
    let client = admin_client().await;
    let version = client.apiserver_version().await.expect("version");
    assert_eq!(
        version.git_version, "v1.36.3",
        "test cluster runs {}",
        version.git_version
    );
    assert_eq!(cluster().info.kubernetes_version, "v1.36.3");
}

#[tokio::test]
async fn gateway_canary_goes_10_25_50_100_with_weights_on_the_httproute() {
    // The controller runs with the ServiceAccount and RBAC from deploy/, with leader election on.
    let (admin, ns, kubeconfig) = setup("gateway").await;
    let controller = ControllerProcess::start(
        &kubeconfig,
        &ns,
        "gw-1",
        &["--lease-name", &format!("sluice-{ns}")],
    );
    for file in [
        "gateway-canary/services.yaml",
        "gateway-canary/httproute.yaml",
        "gateway-canary/rollout.yaml",
    ] {
        apply_example(&admin, &ns, file, speed_up).await;
    }
    let first = wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable revision");
    assert!(
        revisions(&admin, &ns, "web")
            .await
            .contains(&(stable.clone(), 4, 4)),
        "4 KWOK pods ready"
    );

    set_image(&admin, &ns, "web", "registry.example.com/web:1.0.1").await;
    // Watch the route as the API server stores it, every 100 ms, until the new version is stable.
    let mut weights: Vec<i64> = Vec::new();
    let started = std::time::Instant::now();
    loop {
        if let Some(w) = route_canary_weight(&admin, &ns, "web", "web-canary").await
            && weights.last() != Some(&w)
        {
            weights.push(w);
        }
        let now = rollout(&admin, &ns, "web").await;
        let status = now.status.clone().unwrap_or_default();
        if status.phase == Some(RolloutPhase::Healthy)
            && status.stable_revision.as_ref() != Some(&stable)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no promotion; weights {weights:?}\n{}",
            controller.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        weights,
        vec![0, 10, 25, 50, 100, 0],
        "canary weights seen on the HTTPRoute\n{}",
        controller.log_tail()
    );
    let done = rollout(&admin, &ns, "web").await.status.unwrap_or_default();
    let new = done.stable_revision.clone().expect("new stable");
    assert!(
        done.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    // The old stable keeps its pods for scaleDownDelaySeconds (3 s here), then scales to zero.
    wait_for(Duration::from_secs(30), "old stable scaled down", || {
        let admin = admin.clone();
        let (ns, stable) = (ns.clone(), stable.clone());
        async move {
            revisions(&admin, &ns, "web")
                .await
                .contains(&(stable, 0, 0))
                .then_some(())
        }
    })
    .await;
    assert!(revisions(&admin, &ns, "web").await.contains(&(new, 4, 4)));
    let reasons = event_reasons(&admin, &ns, "web").await;
    for reason in ["CanaryStarted", "StepCompleted", "Promoted"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "Event {reason} missing: {reasons:?}"
        );
    }
    let (code, metrics) = http_get(&format!("{}/metrics", controller.http))
        .await
        .expect("metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("sluice_rollouts{phase=\"Healthy\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_reconcile_duration_seconds_count"),
        "{metrics}"
    );
    assert_eq!(
        http_get(&format!("{}/readyz", controller.http))
            .await
            .map(|r| r.0),
        Some(200)
    );
}

#[tokio::test]
async fn replica_ratio_canary_scales_pods_to_match_weights() {
    let (admin, ns) = fresh_namespace("ratio").await;
    let _controller = ControllerProcess::start(
        &cluster().info.kubeconfig,
        &ns,
        "ratio-1",
        &["--no-leader-election"],
    );
    apply_example(&admin, &ns, "replica-ratio/services.yaml", |_| {}).await;
    apply_example(&admin, &ns, "replica-ratio/rollout.yaml", |doc| {
        doc["spec"]["strategy"]["canary"]["steps"] =
            json!([{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]);
    })
    .await;
    let first = wait_phase(&admin, &ns, "api", RolloutPhase::Healthy, SETTLE).await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    set_image(&admin, &ns, "api", "registry.example.com/api:2.5.0").await;
    let paused = wait_phase(&admin, &ns, "api", RolloutPhase::Paused, SETTLE).await;
    let status = paused.status.unwrap_or_default();
    let canary = status.canary_revision.clone().expect("canary");
    assert_eq!(status.traffic_routing.as_deref(), Some("ReplicaRatio"));
    assert_eq!(status.current_weight, 20);
    let mut revs = revisions(&admin, &ns, "api").await;
    revs.sort();
    let mut expected = vec![(stable.clone(), 8, 8), (canary.clone(), 2, 2)];
    expected.sort();
    assert_eq!(revs, expected, "20% of 10 pods");
    annotate(&admin, &ns, "api", controls::PROMOTE, "p1").await;
    wait_for(SETTLE, "50%", || {
        let admin = admin.clone();
        let ns = ns.clone();
        async move {
            let s = rollout(&admin, &ns, "api").await.status?;
            (s.current_step_index == Some(3) && s.current_weight == 50).then_some(())
        }
    })
    .await;
    annotate(&admin, &ns, "api", controls::PROMOTE_FULL, "f1").await;
    let done = wait_phase(&admin, &ns, "api", RolloutPhase::Healthy, SETTLE).await;
    assert_eq!(
        done.status.and_then(|s| s.stable_revision),
        Some(canary.clone())
    );
    assert!(
        revisions(&admin, &ns, "api")
            .await
            .contains(&(canary, 10, 10))
    );
}

#[tokio::test]
async fn a_killed_controller_resumes_from_status_without_repeating_a_step() {
    let (admin, ns) = fresh_namespace("restart").await;
    let kubeconfig = cluster().info.kubeconfig.clone();
    let lease = format!("sluice-{ns}");
    let mut first = ControllerProcess::start(
        &kubeconfig,
        &ns,
        "leader",
        &["--lease-namespace", &ns, "--lease-name", &lease],
    );
    for file in [
        "gateway-canary/services.yaml",
        "gateway-canary/httproute.yaml",
    ] {
        apply_example(&admin, &ns, file, |_| {}).await;
    }
    apply_example(&admin, &ns, "gateway-canary/rollout.yaml", |doc| {
        doc["spec"]["strategy"]["canary"]["steps"] =
            json!([{"setWeight": 10}, {"pause": {}}, {"setWeight": 40}, {"pause": {}}]);
    })
    .await;
    wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    set_image(&admin, &ns, "web", "registry.example.com/web:1.0.1").await;
    wait_phase(&admin, &ns, "web", RolloutPhase::Paused, SETTLE).await;
    annotate(&admin, &ns, "web", controls::PROMOTE, "p1").await;
    let paused = wait_for(SETTLE, "second pause", || {
        let admin = admin.clone();
        let ns = ns.clone();
        async move {
            let r = rollout(&admin, &ns, "web").await;
            let s = r.status.clone()?;
            (s.current_step_index == Some(3) && s.phase == Some(RolloutPhase::Paused)).then_some(r)
        }
    })
    .await;
    let completed_before = event_count(&admin, &ns, "StepCompleted").await;
    // A standby replica takes over the Lease when the leader dies without releasing it.
    let _standby = ControllerProcess::start(
        &kubeconfig,
        &ns,
        "standby",
        &["--lease-namespace", &ns, "--lease-name", &lease],
    );
    first.kill();
    tokio::time::sleep(Duration::from_secs(25)).await;
    let after = rollout(&admin, &ns, "web").await;
    let (before_status, after_status) = (
        paused.status.unwrap_or_default(),
        after.status.unwrap_or_default(),
    );
    assert_eq!(
        after_status.current_step_index, before_status.current_step_index,
        "no step repeated or skipped"
    );
    assert_eq!(
        after_status.step_started_at, before_status.step_started_at,
        "the step was not restarted"
    );
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-canary").await,
        Some(40)
    );
    assert_eq!(
        event_count(&admin, &ns, "StepCompleted").await,
        completed_before,
        "no step completed twice"
    );
    let lease_holder =
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(admin.clone(), &ns)
            .get(&lease)
            .await
            .ok()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity);
    assert_eq!(lease_holder.as_deref(), Some("standby"));
    annotate(&admin, &ns, "web", controls::PROMOTE, "p2").await;
    wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
}

async fn event_count(client: &kube::Client, ns: &str, reason: &str) -> usize {
    event_reasons(client, ns, "web")
        .await
        .iter()
        .filter(|r| *r == reason)
        .count()
}

#[tokio::test]
async fn abort_puts_traffic_back_on_stable_immediately() {
    let (admin, ns) = fresh_namespace("abort").await;
    let controller = ControllerProcess::start(
        &cluster().info.kubeconfig,
        &ns,
        "abort-1",
        &["--no-leader-election"],
    );
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
    })
    .await;
    wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    set_image(&admin, &ns, "web", "registry.example.com/web:bad").await;
    wait_phase(&admin, &ns, "web", RolloutPhase::Paused, SETTLE).await;
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-canary").await,
        Some(30)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["rollout", "abort", "web", "-n", &ns])
        .env("KUBECONFIG", &cluster().info.kubeconfig)
        .output()
        .expect("sluice rollout abort");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let aborted = wait_phase(&admin, &ns, "web", RolloutPhase::Aborted, SETTLE).await;
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-canary").await,
        Some(0),
        "{}",
        controller.log_tail()
    );
    let status = aborted.status.unwrap_or_default();
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Degraded" && c.status == "True" && c.reason == "AbortedByUser")
    );
    let canary = status.canary_revision.expect("canary");
    wait_for(
        Duration::from_secs(30),
        "aborted canary scaled down",
        || {
            let admin = admin.clone();
            let (ns, canary) = (ns.clone(), canary.clone());
            async move {
                revisions(&admin, &ns, "web")
                    .await
                    .contains(&(canary, 0, 0))
                    .then_some(())
            }
        },
    )
    .await;
    let status_out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["rollout", "status", "web", "-n", &ns])
        .env("KUBECONFIG", &cluster().info.kubeconfig)
        .output()
        .expect("sluice rollout status");
    let text = String::from_utf8_lossy(&status_out.stdout);
    assert!(
        text.contains("Phase:    Aborted") && text.contains("AbortedByUser"),
        "{text}"
    );
}

#[tokio::test]
async fn invalid_rollouts_are_rejected_at_admission_with_clear_messages() {
    let (admin, ns) = fresh_namespace("admission").await;
    let api: Api<Rollout> = Api::namespaced(admin.clone(), &ns);
    let text = std::fs::read_to_string(
        super::harness::repo_root().join("examples/gateway-canary/rollout.yaml"),
    )
    .expect("example");
    let base: serde_json::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let cases: [(&str, serde_json::Value, &str); 4] = [
        (
            "weight above 100",
            json!([{"setWeight": 150}]),
            "setWeight must be between 0 and 100",
        ),
        (
            "two kinds in one step",
            json!([{"setWeight": 10, "pause": {}}]),
            "each step sets exactly one of setWeight, pause, analysis",
        ),
        (
            "bad duration",
            json!([{"pause": {"duration": "soon"}}]),
            "duration must look like 30s, 5m or 1h30m",
        ),
        ("empty step", json!([{}]), "each step sets exactly one"),
    ];
    for (name, steps, message) in cases {
        let mut doc = base.clone();
        doc["metadata"]["name"] = json!(format!("bad-{}", name.replace(' ', "-")));
        doc["spec"]["strategy"]["canary"]["steps"] = steps;
        let rollout: Rollout = serde_json::from_value(doc).expect("typed");
        let err = api
            .create(&PostParams::default(), &rollout)
            .await
            .expect_err(name);
        assert!(err.to_string().contains(message), "{name}: {err}");
    }
    let mut no_strategy = base.clone();
    no_strategy["metadata"]["name"] = json!("no-strategy");
    no_strategy["spec"]["strategy"] = json!({});
    let rollout: Rollout = serde_json::from_value(no_strategy).expect("typed");
    let err = api
        .create(&PostParams::default(), &rollout)
        .await
        .expect_err("no strategy");
    assert!(
        err.to_string().contains("exactly one strategy must be set"),
        "{err}"
    );
}

#[tokio::test]
async fn a_rollout_naming_a_missing_service_is_degraded_with_an_event() {
    let (admin, ns) = fresh_namespace("invalid").await;
    let _controller = ControllerProcess::start(
        &cluster().info.kubeconfig,
        &ns,
        "invalid-1",
        &["--no-leader-election"],
    );
    apply_example(&admin, &ns, "gateway-canary/rollout.yaml", |_| {}).await;
    let degraded = wait_phase(&admin, &ns, "web", RolloutPhase::Degraded, SETTLE).await;
    let status = degraded.status.unwrap_or_default();
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("Degraded condition");
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("True", "InvalidSpec")
    );
    assert!(
        condition
            .message
            .contains("Service \"web-stable\" not found"),
        "{}",
        condition.message
    );
    assert!(
        condition.message.contains("HTTPRoute"),
        "{}",
        condition.message
    );
    wait_for(Duration::from_secs(20), "InvalidSpec event", || {
        let admin = admin.clone();
        let ns = ns.clone();
        async move {
            event_reasons(&admin, &ns, "web")
                .await
                .iter()
                .any(|r| r == "InvalidSpec")
                .then_some(())
        }
    })
    .await;
    assert!(
        revisions(&admin, &ns, "web").await.is_empty(),
        "nothing is created for an invalid spec"
    );
    // Creating what was missing heals it without a restart.
    for file in [
        "gateway-canary/services.yaml",
        "gateway-canary/httproute.yaml",
    ] {
        apply_example(&admin, &ns, file, |_| {}).await;
    }
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(120),
    )
    .await;
}
