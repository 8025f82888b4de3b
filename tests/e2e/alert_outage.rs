//! Alerts that outlive an outage on the real control plane: a receiver that
//! is down for longer than a round of attempts (the old ~15 s retry window)
//! gets the alert once when it comes back, and a target whose Secret only
//! appears after the abort delivers once it does. Meanwhile the alert is
//! `Pending` in status, in an Event and in `/metrics`.

use super::receiver;

use std::time::{Duration, Instant};

use serde_json::json;
use sluice::crd::{AlertState, RolloutPhase};

use super::harness::{ControllerProcess, apply_value, cluster, free_port, http_get, wait_for};
use super::support::*;
use receiver::Receiver;

/// Longer than a round of five attempts with the default 1 s back-off (1+2+4+8 s).
const OUTAGE: Duration = Duration::from_secs(25);

fn webhook_target(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "AlertTarget",
        "metadata": {"name": name},
        "spec": {"type": "Webhook", "secretName": name, "timeout": "2s"}
    })
}

/// A paused canary with `alerts` aborted by an operator: the `aborted`
/// event, without waiting for analysis.
pub(super) async fn abort_a_canary(admin: &kube::Client, ns: &str, alerts: serde_json::Value) {
    for file in [
        "gateway-canary/services.yaml",
        "gateway-canary/httproute.yaml",
    ] {
        apply_example(admin, ns, file, |_| {}).await;
    }
    apply_example(admin, ns, "gateway-canary/rollout.yaml", |doc| {
        speed_up(doc);
        doc["spec"]["strategy"]["canary"]["steps"] =
            json!([{"setWeight": 30}, {"pause": {}}, {"setWeight": 100}]);
        doc["spec"]["alerts"] = alerts.clone();
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
    wait_phase(
        admin,
        ns,
        "web",
        RolloutPhase::Paused,
        Duration::from_secs(90),
    )
    .await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["rollout", "abort", "web", "-n", ns])
        .env("KUBECONFIG", &cluster().info.kubeconfig)
        .output()
        .expect("sluice rollout abort");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `status.alerts` record for `target`, once `check` holds for it.
async fn record_where(
    admin: &kube::Client,
    ns: &str,
    target: &str,
    what: &str,
    limit: Duration,
    check: fn(&sluice::crd::AlertRecord) -> bool,
) -> sluice::crd::AlertRecord {
    let label = format!("AlertTarget/{ns}/{target}");
    wait_for(limit, what, || {
        let (admin, ns, label) = (admin.clone(), ns.to_string(), label.clone());
        async move {
            let status = rollout(&admin, &ns, "web").await.status?;
            status
                .alerts
                .into_iter()
                .find(|r| r.target == label && check(r))
        }
    })
    .await
}

#[tokio::test]
async fn an_alert_outlives_a_receiver_outage_and_a_missing_secret_and_is_delivered_once() {
    let (admin, ns, kubeconfig) = setup("alerts-outage").await;
    let controller =
        ControllerProcess::start(&kubeconfig, &ns, "alerts-outage", &["--no-leader-election"]);
    // `down-hook` points at a port nobody listens on yet; `late-hook`'s Secret does not exist yet.
    let port = free_port();
    let down_url = format!("http://127.0.0.1:{port}/hooks/down");
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "down-hook"},
        "stringData": {"url": down_url}
    });
    apply_value(&admin, &ns, secret).await;
    apply_value(&admin, &ns, webhook_target("down-hook")).await;
    apply_value(&admin, &ns, webhook_target("late-hook")).await;

    let alerts = json!({"subscriptions": [
        {"target": "down-hook", "events": ["aborted"]},
        {"target": "late-hook", "events": ["aborted"]}
    ]});
    abort_a_canary(&admin, &ns, alerts).await;
    let aborted_at = Instant::now();

    // Both wait, and say so: in status, in an Event and in the metrics.
    let waiting = record_where(
        &admin,
        &ns,
        "late-hook",
        "late-hook Pending for its Secret",
        Duration::from_secs(60),
        |r| r.state == AlertState::Pending,
    )
    .await;
    let message = waiting.message.clone().unwrap_or_default();
    assert!(message.contains("Secret"), "{message}");
    assert!(waiting.next_attempt.is_some(), "{waiting:?}");
    let down = record_where(
        &admin,
        &ns,
        "down-hook",
        "down-hook Pending after a failed round",
        Duration::from_secs(60),
        |r| r.state == AlertState::Pending && r.attempts >= 5,
    )
    .await;
    let message = down.message.clone().unwrap_or_default();
    assert!(message.contains("cannot connect"), "{message}");
    assert!(!message.contains(&down_url), "URL leaked: {message}");
    let reasons = event_reasons(&admin, &ns, "web").await;
    assert!(reasons.iter().any(|r| r == "AlertPending"), "{reasons:?}");
    wait_for(Duration::from_secs(10), "two pending in /metrics", || {
        let url = format!("{}/metrics", controller.http);
        async move {
            let (_, text) = http_get(&url).await?;
            text.contains("sluice_alerts_pending{target_type=\"Webhook\"} 2")
                .then_some(())
        }
    })
    .await;

    // Past the old retry window, the receiver comes back and the Secret appears.
    let left = OUTAGE.saturating_sub(aborted_at.elapsed());
    tokio::time::sleep(left).await;
    let receiver = Receiver::start_on(port, vec![]).await;
    let recovered_at = Instant::now();
    let late = Receiver::start(vec![]).await;
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "late-hook"},
        "stringData": {"url": format!("{}/hooks/late", late.url)}
    });
    apply_value(&admin, &ns, secret).await;

    let sent = record_where(
        &admin,
        &ns,
        "down-hook",
        "down-hook Sent after the outage",
        Duration::from_secs(60),
        |r| r.state == AlertState::Sent,
    )
    .await;
    assert!(sent.attempts > 5, "more than one round: {sent:?}");
    if let Some(first) = receiver.received().first() {
        eprintln!(
            "alert outage: delivered {} ms after the receiver came back ({} attempts, {} s after the abort)",
            first.at.saturating_duration_since(recovered_at).as_millis(),
            sent.attempts,
            first.at.saturating_duration_since(aborted_at).as_secs()
        );
    }
    record_where(
        &admin,
        &ns,
        "late-hook",
        "late-hook Sent once its Secret exists",
        Duration::from_secs(60),
        |r| r.state == AlertState::Sent,
    )
    .await;
    // Exactly once each, and nothing more while we watch a few more seconds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (got_down, got_late) = (receiver.received(), late.received());
    assert_eq!(got_down.len(), 1, "{}", controller.log_tail());
    assert_eq!(got_late.len(), 1, "{}", controller.log_tail());
    assert_eq!(got_down[0].json()["event"], "aborted");
    assert_eq!(
        got_down[0].header("x-sluice-event-id"),
        got_late[0].header("x-sluice-event-id")
    );
    let (_, metrics) = http_get(&format!("{}/metrics", controller.http))
        .await
        .expect("metrics");
    assert!(
        metrics.contains("sluice_alerts_pending{target_type=\"Webhook\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "sluice_alerts_total{target_type=\"Webhook\",event=\"aborted\",result=\"delivered\"} 2"
        ),
        "{metrics}"
    );
}
