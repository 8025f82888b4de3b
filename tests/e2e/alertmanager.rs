//! An `Alertmanager` AlertTarget on the real control plane, with a real
//! Alertmanager on loopback: an analysis abort fires one alert there with
//! the stable label set, the controller keeps it active past its `endsAt`
//! by re-sending it (also after a restart, from what `status.alerts`
//! records), and the recovery to the stable image resolves it. A target
//! whose Secret holds a malformed URL says so in its status and an Event.

use std::time::Duration;

use kube::Api;
use serde_json::{Value, json};
use sluice::crd::{AlertState, AlertTarget, RolloutPhase};

use super::alertmanager_server::Alertmanager;
use super::analysis::canary_with;
use super::harness::{ControllerProcess, admin_client, apply_value, wait_for};
use super::rbac::service_account_kubeconfig;
use super::support::*;

/// Re-send interval of the target: a send keeps the alert active for four
/// of them (20 s), time enough for a new controller to start under load.
const RESEND: &str = "5s";

fn with_alertmanager_alerts(doc: &mut Value) {
    super::analysis::with_analysis(doc);
    if doc["kind"] == "Rollout" {
        doc["spec"]["alerts"] = json!({
            "subscriptions": [
                {"target": "team-am", "events": ["aborted"], "severities": {"aborted": "error"}},
                {"target": "bad-am"}
            ]
        });
    }
}

fn active_in(alerts: &[Value], ns: &str) -> Option<Value> {
    alerts
        .iter()
        .find(|a| a["labels"]["namespace"] == ns && a["status"]["state"] == "active")
        .cloned()
}

fn ends_at(alert: &Value) -> jiff::Timestamp {
    alert["endsAt"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("endsAt")
}

#[tokio::test]
async fn an_abort_fires_in_alertmanager_is_kept_alive_across_a_restart_and_resolves_on_recovery() {
    let Some(am) = Alertmanager::start().await else {
        return;
    };
    let (ns, _stable, mut controller, _traffic) = canary_with(
        "alerts-am",
        "registry.example.com/web:1.0.1-err10",
        "gateway-canary",
        with_alertmanager_alerts,
    )
    .await;
    let admin = admin_client().await;
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "team-am"},
        "stringData": {"url": am.url}
    });
    apply_value(&admin, &ns, secret).await;
    let target = json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "AlertTarget",
        "metadata": {"name": "team-am"},
        "spec": {
            "type": "Alertmanager",
            "secretName": "team-am",
            "resendInterval": RESEND,
            "labels": {"team": "payments"}
        }
    });
    apply_value(&admin, &ns, target).await;
    // A second target whose Secret's URL is no URL (and must not be echoed).
    let bad_secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bad-am"},
        "stringData": {"url": "alertmanager.monitoring:9093/s3cret"}
    });
    apply_value(&admin, &ns, bad_secret).await;
    let bad_target = json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "AlertTarget",
        "metadata": {"name": "bad-am"},
        "spec": {"type": "Alertmanager", "secretName": "bad-am"}
    });
    apply_value(&admin, &ns, bad_target).await;

    let alerts = am
        .wait_for(Duration::from_secs(150), "web", "the abort, active", |a| {
            active_in(a, &ns).is_some()
        })
        .await;
    let first = active_in(&alerts, &ns).expect("active");
    let r = rollout(&admin, &ns, "web").await;
    let status = r.status.clone().unwrap_or_default();
    assert_eq!(
        status.phase,
        Some(RolloutPhase::Aborted),
        "{}",
        controller.log_tail()
    );
    let revision = status
        .abort
        .as_ref()
        .map(|a| a.revision.clone())
        .expect("abort");
    let labels = &first["labels"];
    assert_eq!(labels["alertname"], "SluiceRolloutAborted");
    assert_eq!(labels["rollout"], "web");
    assert_eq!(labels["revision"], revision.as_str());
    assert_eq!(labels["severity"], "error", "the subscription's severity");
    assert_eq!(labels["team"], "payments", "the target's extra label");
    assert_eq!(
        first["annotations"]["canary_image"],
        "registry.example.com/web:1.0.1-err10"
    );
    assert_eq!(first["annotations"]["reason"], "AnalysisFailed");
    let fingerprint = first["fingerprint"].clone();
    let stable_image = first["annotations"]["stable_image"]
        .as_str()
        .expect("stable image")
        .to_string();

    // The record says when it is sent again and until when it is active.
    let record = wait_for(Duration::from_secs(20), "the firing record", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            let r = rollout(&admin, &ns, "web").await;
            r.status?.alerts.into_iter().find(|a| {
                a.event_id.starts_with("aborted/")
                    && a.state == AlertState::Sent
                    && a.next_attempt.is_some()
                    && a.active_until.is_some()
            })
        }
    })
    .await;
    assert_eq!(record.target, format!("AlertTarget/{ns}/team-am"));

    // The bad target says what is wrong, in its status, the alert's record
    // and an Event, without the URL; the alert waits for a fix.
    let targets: Api<AlertTarget> = Api::namespaced(admin.clone(), &ns);
    let ready = wait_for(Duration::from_secs(30), "bad-am SecretInvalid", || {
        let targets = targets.clone();
        async move {
            let target = targets.get("bad-am").await.ok()?;
            target
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready" && c.reason == "SecretInvalid")
        }
    })
    .await;
    assert_eq!(ready.status, "False");
    assert!(
        ready
            .message
            .contains("`url` is not an http(s) base URL of Alertmanager"),
        "{}",
        ready.message
    );
    assert!(!ready.message.contains("s3cret"), "{}", ready.message);
    let r = rollout(&admin, &ns, "web").await;
    let pending = r
        .status
        .unwrap_or_default()
        .alerts
        .into_iter()
        .find(|a| a.target == format!("AlertTarget/{ns}/bad-am"))
        .expect("a record for bad-am");
    assert_eq!(pending.state, AlertState::Pending, "{pending:?}");
    assert!(
        event_reasons(&admin, &ns, "web")
            .await
            .contains(&"AlertTargetUnavailable".to_string())
    );

    // Past the first send's endsAt (20 s) it is still the same active alert.
    tokio::time::sleep(Duration::from_secs(24)).await;
    let later = active_in(&am.alerts_of("web").await, &ns)
        .unwrap_or_else(|| panic!("expired: not kept alive; log:\n{}", controller.log_tail()));
    assert_eq!(later["fingerprint"], fingerprint);
    assert!(ends_at(&later) > ends_at(&first), "{later:#}");

    // A crash: the new controller reads the re-send time from status and
    // keeps the alert alive past the last endsAt the old one sent.
    let before_kill = ends_at(&active_in(&am.alerts_of("web").await, &ns).expect("active"));
    controller.kill();
    let kubeconfig = service_account_kubeconfig(&admin, &ns).await;
    let second = ControllerProcess::start(
        &kubeconfig,
        &ns,
        "alerts-am-restarted",
        &["--no-leader-election"],
    );
    tokio::time::sleep(Duration::from_secs(24)).await;
    let after = active_in(&am.alerts_of("web").await, &ns).unwrap_or_else(|| {
        panic!(
            "the alert expired across the restart; log:\n{}",
            second.log_tail()
        )
    });
    assert_eq!(after["fingerprint"], fingerprint);
    assert!(ends_at(&after) > before_kill, "{after:#}");

    // Back on the stable image: Healthy, and the alert is resolved (ended
    // alerts are not listed), recorded once.
    set_image(&admin, &ns, "web", &stable_image).await;
    am.wait_for(Duration::from_secs(90), "web", "the alert resolved", |a| {
        active_in(a, &ns).is_none()
    })
    .await;
    let resolved = wait_for(Duration::from_secs(20), "the resolve record", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            let r = rollout(&admin, &ns, "web").await;
            r.status?.alerts.into_iter().find(|a| {
                a.event_id.starts_with("resolved/aborted/") && a.state == AlertState::Sent
            })
        }
    })
    .await;
    assert_eq!(resolved.target, format!("AlertTarget/{ns}/team-am"));
    // And it stays resolved: no re-send after the recovery.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(
        active_in(&am.alerts_of("web").await, &ns).is_none(),
        "re-sent after the resolve; log:\n{}",
        second.log_tail()
    );
}
