//! Alert content and the four receivers' documented formats.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::alerts::events::occurrences;
use crate::crd::{
    AbortStatus, AlertsSpec, AnalysisPhase, AnalysisRunSpec, AnalysisRunStatus, GitSource,
    Judgement, MetricResult, RolloutPhase,
};
use crate::engine::testkit::{rollout as test_rollout, weight};

fn aborted() -> (Rollout, RolloutStatus, AnalysisRun) {
    let mut rollout = test_rollout(4, Some(vec![weight(25), weight(50)]), true);
    rollout.metadata.namespace = Some("shop".into());
    rollout.spec.alerts = Some(AlertsSpec {
        subscriptions: Vec::new(),
        links: vec![AlertLink {
            title: "Dashboard".into(),
            url: "https://grafana.example.com/d/x?var-ns={namespace}&var-ro={rollout}&from={timestampMs}".into(),
        }],
    });
    let status = RolloutStatus {
        phase: Some(RolloutPhase::Aborted),
        stable_revision: Some("stable1".into()),
        canary_revision: Some("canary1".into()),
        abort: Some(AbortStatus {
            revision: "canary1".into(),
            reason: "AnalysisFailed".into(),
            message: "analysis web-canary1-1 failed".into(),
            at: Time(Timestamp::from_second(1_800_000_000).expect("time")),
            step_index: 1,
            weight: 25,
            cannot_tell: false,
            keep_git: false,
        }),
        ..Default::default()
    };
    let mut run = AnalysisRun::new(
        "web-canary1-1",
        AnalysisRunSpec {
            rollout: "web".into(),
            canary_revision: "canary1".into(),
            stable_revision: "stable1".into(),
            ..Default::default()
        },
    );
    let metric = |name: &str, phase: AnalysisPhase, judgement: Option<Judgement>| MetricResult {
        name: name.into(),
        phase,
        judgement,
        ..Default::default()
    };
    run.status = Some(AnalysisRunStatus {
        phase: Some(AnalysisPhase::Failed),
        metrics: vec![
            metric("latency", AnalysisPhase::Successful, None),
            metric(
                "errors-vs-baseline",
                AnalysisPhase::Failed,
                Some(Judgement {
                    decision: "Worse".into(),
                    canary: Some(0.0981),
                    baseline: Some(0.00102),
                    estimate: Some(96.2),
                    interval_low: Some(41.5),
                    interval_high: Some(230.0),
                    e_value_worse: Some(1520.0),
                    threshold: 40.0,
                    ..Default::default()
                }),
            ),
        ],
        ..Default::default()
    });
    (rollout, status, run)
}

fn alert_for(rollout: &Rollout, status: &RolloutStatus, run: Option<&AnalysisRun>) -> Alert {
    let occurrence = occurrences(status).into_iter().next().expect("an event");
    build(&Input {
        rollout,
        status,
        occurrence: &occurrence,
        severity: AlertSeverity::Critical,
        images: Some(("web:1.0.1".into(), "web:1.0.0".into())),
        run,
    })
}

#[test]
fn the_aborted_alert_carries_the_numbers_images_step_and_git_state() {
    let (rollout, status, run) = aborted();
    let alert = alert_for(&rollout, &status, Some(&run));
    let body = serde_json::to_value(&alert).expect("json");
    assert_eq!(body["schemaVersion"], "sluice.dev/alert/v1");
    assert_eq!(body["event"], "aborted");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["id"], "aborted/canary1/1800000000");
    assert_eq!(body["rollout"]["namespace"], "shop");
    assert_eq!(body["images"]["canary"], "web:1.0.1");
    assert_eq!(body["images"]["stable"], "web:1.0.0");
    assert_eq!(body["step"]["number"], 2);
    assert_eq!(body["step"]["weight"], 25);
    assert_eq!(body["reason"], "AnalysisFailed");
    // Only the failed metric, with its numbers.
    let metrics = body["analysis"]["metrics"].as_array().expect("metrics");
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0]["name"], "errors-vs-baseline");
    assert_eq!(metrics[0]["estimate"], 96.2);
    assert_eq!(metrics[0]["intervalLow"], 41.5);
    assert_eq!(metrics[0]["eValue"], 1520.0);
    assert_eq!(metrics[0]["threshold"], 40.0);
    assert_eq!(body["git"]["state"], "NotConfigured");
    assert!(
        alert.summary.contains("estimate 96.2 [41.5, 230]")
            && alert.summary.contains("e-value 1520 (fails at 40)"),
        "{}",
        alert.summary
    );
    assert_eq!(
        body["links"][0]["url"],
        "https://grafana.example.com/d/x?var-ns=shop&var-ro=web&from=1800000000000"
    );
}

#[test]
fn git_state_says_why_there_is_no_revert_yet() {
    let (mut rollout, status, _) = aborted();
    rollout.spec.git = Some(GitSource {
        repository: Some("https://git.example.com/apps.git".into()),
        path: "apps/web".into(),
        ..Default::default()
    });
    let alert = alert_for(&rollout, &status, None);
    assert_eq!(alert.git.state, "Pending");
    assert!(
        alert.git.message.contains("has not started"),
        "{}",
        alert.git.message
    );
}

#[test]
fn slack_gets_block_kit_with_a_text_fallback() {
    let (rollout, status, run) = aborted();
    let body = slack(&alert_for(&rollout, &status, Some(&run)));
    assert!(body["text"].as_str().expect("text").contains("aborted"));
    let blocks = body["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[0]["text"]["text"], "Rollout aborted: shop/web");
    let fields = blocks[2]["fields"].as_array().expect("fields");
    assert!(fields.len() <= 10);
    assert!(fields.iter().all(|f| f["type"] == "mrkdwn"));
    assert!(
        fields
            .iter()
            .any(|f| f["text"] == "*Canary image*\nweb:1.0.1")
    );
    let metrics = blocks[3]["text"]["text"].as_str().expect("metrics");
    assert!(metrics.contains("errors-vs-baseline Failed"), "{metrics}");
    let actions = blocks
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("link buttons");
    assert_eq!(actions["elements"][0]["type"], "button");
    assert_eq!(actions["elements"][0]["text"]["text"], "Dashboard");
}

#[test]
fn teams_gets_an_adaptive_card_message() {
    let (rollout, status, run) = aborted();
    let body = teams(&alert_for(&rollout, &status, Some(&run)));
    assert_eq!(body["type"], "message");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert!(attachment["contentUrl"].is_null());
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert_eq!(card["body"][0]["color"], "Attention");
    assert_eq!(card["body"][2]["type"], "FactSet");
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
}

#[test]
fn pagerduty_gets_a_trigger_then_a_resolve_with_the_same_dedup_key() {
    let (rollout, status, run) = aborted();
    let alert = alert_for(&rollout, &status, Some(&run));
    let body = pagerduty(&alert, "R0UT1NGKEY");
    assert_eq!(body["routing_key"], "R0UT1NGKEY");
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(
        body["dedup_key"],
        "sluice/shop/web/aborted/canary1/1800000000"
    );
    let payload = &body["payload"];
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["source"], "shop/web");
    assert_eq!(payload["class"], "aborted");
    assert!(payload["summary"].as_str().expect("summary").len() <= 1024);
    assert_eq!(
        payload["custom_details"]["analysis"]["metrics"][0]["estimate"],
        96.2
    );
    assert_eq!(payload["timestamp"], "2027-01-15T08:00:00Z");
    assert_eq!(body["links"][0]["text"], "Dashboard");

    let mut healthy = status.clone();
    healthy.phase = Some(RolloutPhase::Healthy);
    healthy.abort = None;
    healthy.alerts = vec![crate::crd::AlertRecord {
        event_id: alert.id.clone(),
        target: "AlertTarget/shop/pd".into(),
        state: crate::crd::AlertState::Sent,
        attempts: 1,
        at: Time(Timestamp::UNIX_EPOCH),
        message: None,
        pending_since: None,
        next_attempt: None,
        active_until: None,
    }];
    let resolve = alert_for(&rollout, &healthy, None);
    assert_eq!(resolve.event, "resolved");
    let body = pagerduty(&resolve, "R0UT1NGKEY");
    assert_eq!(body["event_action"], "resolve");
    assert_eq!(
        body["dedup_key"],
        "sluice/shop/web/aborted/canary1/1800000000"
    );
    assert!(body.get("payload").is_none());
}

#[test]
fn numbers_are_short_and_readable() {
    let line = metric_line(&MetricInfo {
        name: "p99".into(),
        phase: "Failed".into(),
        canary: Some(0.123456),
        baseline: Some(1234567.0),
        p_value: Some(0.0000123),
        ..Default::default()
    });
    assert_eq!(
        line,
        "p99 Failed: canary 0.1235 vs baseline 1.235e6, p = 1.230e-5"
    );
}
