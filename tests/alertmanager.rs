//! The `Alertmanager` alert target against a real Prometheus Alertmanager
//! (Debian's `prometheus-alertmanager`) on 127.0.0.1: an abort delivered by
//! Sluice's own code (which alerts are due, the message, the API v2 body,
//! the HTTP delivery) fires there with the expected labels and annotations;
//! the keep-alive re-send keeps the very same alert (one fingerprint) and
//! moves its end; the resolve on recovery ends it; an alert Alertmanager
//! refuses (HTTP 400) is not retried.
//!
//! The Alertmanager is started by `common/alertmanager.rs` (skipped with a
//! message when the binary is missing, unless `SLUICE_REQUIRE_ALERTMANAGER`
//! is set, as `scripts/test.sh` does); it is killed when the test ends.

#[path = "common/alertmanager.rs"]
mod alertmanager_server;

use std::collections::BTreeMap;
use std::time::Duration;

use alertmanager_server::Alertmanager;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};
use sluice::alerts::alertmanager::{
    alerts_url, authorization, ends_at, firing_record, postable_alerts,
};
use sluice::alerts::{
    Action, Delivery, DeliveryOutcome, Due, Input, Outgoing, Policy, TargetKey, build, deliver, due,
};
use sluice::crd::{AlertRecord, AlertState, AlertTargetType, Rollout, RolloutStatus};

const NAMESPACE: &str = "shop";
const TARGET: &str = "oncall-alertmanager";
const RESEND: Duration = Duration::from_secs(60);

fn client() -> reqwest::Client {
    sluice::install_crypto_provider();
    reqwest::Client::new()
}

fn policy() -> Policy {
    Policy {
        timeout: Duration::from_secs(5),
        max_attempts: 3,
        base_delay: Duration::from_millis(100),
        ..Policy::default()
    }
}

/// The alerts example's Rollout, subscribing an Alertmanager target to
/// aborts with severity `error` (not the default), so that a resolve with
/// any other severity label would miss the alert.
fn rollout() -> Rollout {
    let text = include_str!("../examples/alerts/rollout.yaml");
    let mut rollout: Rollout = serde_yaml_ng::from_str(text).expect("example Rollout");
    rollout.metadata.namespace = Some(NAMESPACE.into());
    rollout.metadata.uid = Some("6b1c0a52-0000-4000-8000-000000000001".into());
    let alerts = rollout.spec.alerts.as_mut().expect("alerts");
    alerts.subscriptions = vec![
        serde_json::from_value(json!({
            "target": TARGET,
            "events": ["aborted", "revertFailed"],
            "severities": {"aborted": "error"},
        }))
        .expect("subscription"),
    ];
    rollout
}

fn aborted(at: Timestamp) -> RolloutStatus {
    serde_json::from_value(json!({
        "phase": "Aborted",
        "stableRevision": "7d9f8c6b5",
        "canaryRevision": "5f7c9b8d4",
        "abort": {
            "revision": "5f7c9b8d4",
            "reason": "AnalysisFailed",
            "message": "metric error-rate failed: canary 0.098 vs baseline 0.0012",
            "at": at.to_string(),
            "stepIndex": 2,
            "weight": 50,
        },
    }))
    .expect("status")
}

fn target() -> TargetKey {
    TargetKey {
        namespace: Some(NAMESPACE.into()),
        name: TARGET.into(),
    }
}

/// What `due` says for the Alertmanager target at `now`.
fn due_now(rollout: &Rollout, status: &RolloutStatus, now: Timestamp) -> Vec<Due> {
    let types = BTreeMap::from([(target(), AlertTargetType::Alertmanager)]);
    due(rollout, NAMESPACE, status, &types, now)
}

/// Render `item` as the worker does and deliver it to `am`.
async fn send(
    am: &Alertmanager,
    rollout: &Rollout,
    status: &RolloutStatus,
    item: &Due,
    extra: &BTreeMap<String, String>,
    now: Timestamp,
) -> Delivery {
    send_as(am, rollout, status, item, extra, now, None).await
}

/// [`send`] with an `Authorization` header.
async fn send_as(
    am: &Alertmanager,
    rollout: &Rollout,
    status: &RolloutStatus,
    item: &Due,
    extra: &BTreeMap<String, String>,
    now: Timestamp,
    authorization: Option<String>,
) -> Delivery {
    let alert = build(&Input {
        rollout,
        status,
        occurrence: &item.occurrence,
        severity: item.severity,
        images: Some((
            "registry.example.com/web:1.1.0".into(),
            "registry.example.com/web:1.0.0".into(),
        )),
        run: None,
    });
    let ends = ends_at(alert.resolves.is_some(), now, RESEND);
    let body = postable_alerts(&alert, extra, now, ends);
    let out = Outgoing {
        url: alerts_url(&am.url).expect("URL").to_string(),
        body: serde_json::to_vec(&body).expect("body"),
        signing_key: None,
        authorization,
        event_id: item.occurrence.id.clone(),
        event: item.occurrence.trigger.name().into(),
    };
    deliver(&client(), &out, &policy()).await
}

fn sent_record(item: &Due, at: Timestamp) -> AlertRecord {
    AlertRecord {
        event_id: item.occurrence.id.clone(),
        target: target().label(),
        state: AlertState::Sent,
        attempts: 1,
        at: Time(at),
        message: None,
        pending_since: None,
        next_attempt: None,
        active_until: None,
    }
}

fn seconds(s: i64) -> jiff::SignedDuration {
    jiff::SignedDuration::from_secs(s)
}

#[tokio::test]
async fn an_abort_fires_in_alertmanager_stays_one_alert_when_resent_and_resolves_on_recovery() {
    let Some(am) = Alertmanager::start().await else {
        return;
    };
    let rollout = rollout();
    let extra = BTreeMap::from([
        ("team".to_string(), "payments".to_string()),
        ("cluster".to_string(), "eu-1".to_string()),
    ]);
    let t0 = Timestamp::now();
    let mut status = aborted(t0 - seconds(30));

    // The abort is due once, as a first send.
    let items = due_now(&rollout, &status, t0);
    assert_eq!(items.len(), 1, "{items:#?}");
    let abort = &items[0];
    assert_eq!(abort.action, Action::Send);
    let delivery = send(&am, &rollout, &status, abort, &extra, t0).await;
    assert_eq!(delivery.outcome, DeliveryOutcome::Delivered { status: 200 });

    let firing = am
        .wait_for(
            Duration::from_secs(10),
            "web",
            "the abort alert, active",
            |a| a.len() == 1 && a[0]["status"]["state"] == "active",
        )
        .await;
    let alert = &firing[0];
    let labels: BTreeMap<String, String> =
        serde_json::from_value(alert["labels"].clone()).expect("labels");
    let expected: BTreeMap<String, String> = [
        ("alertname", "SluiceRolloutAborted"),
        ("namespace", NAMESPACE),
        ("rollout", "web"),
        ("revision", "5f7c9b8d4"),
        ("severity", "error"),
        ("team", "payments"),
        ("cluster", "eu-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(labels, expected);
    let annotations = &alert["annotations"];
    let summary = annotations["summary"].as_str().expect("summary");
    assert!(
        summary.contains("Rollout shop/web aborted at step 3/5 (50% canary)"),
        "{summary}"
    );
    assert!(
        annotations["description"]
            .as_str()
            .is_some_and(|d| d.contains("canary 0.098 vs baseline 0.0012")),
        "{annotations:#}"
    );
    assert_eq!(annotations["reason"], "AnalysisFailed");
    assert_eq!(
        annotations["canary_image"],
        "registry.example.com/web:1.1.0"
    );
    assert_eq!(
        annotations["stable_image"],
        "registry.example.com/web:1.0.0"
    );
    assert_eq!(annotations["event_id"], abort.occurrence.id.as_str());
    // The example Rollout has no spec.git: the annotation says so.
    assert_eq!(annotations["git_state"], "NotConfigured");
    assert!(
        annotations["link_dashboard"]
            .as_str()
            .is_some_and(|l| l.contains("var-rollout=web")),
        "{annotations:#}"
    );
    assert!(
        annotations["link_runbook"]
            .as_str()
            .is_some_and(|l| l.starts_with("https://wiki.example.com/")),
        "{annotations:#}"
    );
    assert!(
        alert["generatorURL"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://grafana.example.com/")),
        "{alert:#}"
    );
    let fingerprint = alert["fingerprint"].clone();
    let first_end: Timestamp = alert["endsAt"]
        .as_str()
        .expect("endsAt")
        .parse()
        .expect("time");
    // Active for four re-send intervals from the send.
    let validity = first_end.duration_since(t0).as_secs();
    assert!(
        (235..=241).contains(&validity),
        "endsAt {first_end} for a send at {t0}"
    );

    // The worker records it Sent and marks it firing: nothing is due until
    // the re-send interval has passed, then a keep-alive.
    let record = firing_record(
        sent_record(abort, t0),
        t0,
        ends_at(false, t0, RESEND),
        RESEND,
    );
    status.alerts = vec![record.clone()];
    assert!(due_now(&rollout, &status, t0 + seconds(30)).is_empty());
    let t1 = t0 + seconds(60);
    let items = due_now(&rollout, &status, t1);
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0].action, Action::KeepAlive);
    assert_eq!(items[0].occurrence.id, abort.occurrence.id);
    // The re-send goes out now (t1 is only what the record would say).
    let resent_at = Timestamp::now();
    let delivery = send(&am, &rollout, &status, &items[0], &extra, resent_at).await;
    assert_eq!(delivery.outcome, DeliveryOutcome::Delivered { status: 200 });
    // A retry of the same send (a restart cut the record short) changes nothing either.
    let delivery = send(&am, &rollout, &status, &items[0], &extra, resent_at).await;
    assert_eq!(delivery.outcome, DeliveryOutcome::Delivered { status: 200 });
    let still = am
        .wait_for(
            Duration::from_secs(10),
            "web",
            "the same alert with a later end",
            |a| {
                a.len() == 1
                    && a[0]["endsAt"]
                        .as_str()
                        .and_then(|t| t.parse::<Timestamp>().ok())
                        .is_some_and(|t| t > first_end)
            },
        )
        .await;
    assert_eq!(
        still[0]["fingerprint"], fingerprint,
        "one alert, same identity"
    );
    assert_eq!(still[0]["status"]["state"], "active");

    // Recovery: Healthy, no abort. The resolve is due (with the abort's
    // labels, severity `error` included) and no keep-alive any more.
    let mut healthy = status.clone();
    healthy.phase = Some(sluice::crd::RolloutPhase::Healthy);
    healthy.abort = None;
    let items = due_now(&rollout, &healthy, Timestamp::now());
    assert_eq!(items.len(), 1, "{items:#?}");
    let resolve = &items[0];
    assert_eq!(resolve.action, Action::Send);
    assert_eq!(resolve.occurrence.trigger.name(), "resolved");
    let delivery = send(&am, &rollout, &healthy, resolve, &extra, Timestamp::now()).await;
    assert_eq!(delivery.outcome, DeliveryOutcome::Delivered { status: 200 });
    // Ended alerts are not listed: had the labels differed, the firing one would still be.
    am.wait_for(
        Duration::from_secs(10),
        "web",
        "the alert resolved",
        <[Value]>::is_empty,
    )
    .await;

    // Once the resolve is recorded, nothing more is due: no keep-alive, no second resolve.
    let mut resolved = sent_record(resolve, Timestamp::now());
    resolved.event_id = resolve.occurrence.id.clone();
    healthy.alerts.push(resolved);
    let later = Timestamp::now() + seconds(3600);
    assert!(due_now(&rollout, &healthy, later).is_empty());
}

#[tokio::test]
async fn an_alert_alertmanager_refuses_is_rejected_without_retries() {
    let Some(am) = Alertmanager::start().await else {
        return;
    };
    let rollout = rollout();
    let now = Timestamp::now();
    let status = aborted(now - seconds(5));
    let items = due_now(&rollout, &status, now);
    assert_eq!(items.len(), 1);
    // A label name Alertmanager refuses (the worker checks spec.labels
    // first; here it goes through to show the answer is final).
    let extra = BTreeMap::from([("team-name".to_string(), "payments".to_string())]);
    assert!(sluice::alerts::alertmanager::check_labels(&extra).is_err());
    let delivery = send(&am, &rollout, &status, &items[0], &extra, now).await;
    assert_eq!(delivery.attempts, 1, "{delivery:?}");
    match &delivery.outcome {
        DeliveryOutcome::Rejected { status, detail } => {
            assert_eq!(*status, 400);
            assert!(detail.contains("team-name"), "{detail}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(am.alerts_of("web").await.is_empty());
}

/// The bcrypt hash (cost 4) of `s3cret-pass`, as Alertmanager's
/// `basic_auth_users` wants it (made with libxcrypt's `crypt`).
const PASSWORD_HASH: &str = "$2b$04$wseqmzdRVpPzPRlS7nLdgeONMNOi9XM2I5leb2Ik7mGrjjHJR74KO";

#[tokio::test]
async fn basic_auth_from_the_secret_gets_through_and_a_wrong_password_is_rejected_once() {
    let Some(am) = Alertmanager::start_with(Some(("sluice", "s3cret-pass", PASSWORD_HASH))).await
    else {
        return;
    };
    let rollout = rollout();
    let now = Timestamp::now();
    let status = aborted(now - seconds(5));
    let items = due_now(&rollout, &status, now);
    assert_eq!(items.len(), 1);
    let extra = BTreeMap::new();

    let wrong = authorization(Some("sluice"), Some("guess"), None).expect("header");
    let delivery = send_as(&am, &rollout, &status, &items[0], &extra, now, wrong).await;
    assert_eq!(delivery.attempts, 1, "a 401 is not retried: {delivery:?}");
    assert!(
        matches!(
            delivery.outcome,
            DeliveryOutcome::Rejected { status: 401, .. }
        ),
        "{delivery:?}"
    );
    let none = send_as(&am, &rollout, &status, &items[0], &extra, now, None).await;
    assert!(
        matches!(none.outcome, DeliveryOutcome::Rejected { status: 401, .. }),
        "{none:?}"
    );
    assert!(am.alerts_of("web").await.is_empty());

    let right = authorization(Some("sluice"), Some("s3cret-pass"), None).expect("header");
    let delivery = send_as(&am, &rollout, &status, &items[0], &extra, now, right).await;
    assert_eq!(delivery.outcome, DeliveryOutcome::Delivered { status: 200 });
    am.wait_for(Duration::from_secs(10), "web", "the alert", |a| {
        a.len() == 1
    })
    .await;
}
