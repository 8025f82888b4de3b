//! Alertmanager: the URL and auth from the Secret, the label set that must
//! not change within an incident, annotations, and the record's keep-alive.

use jiff::Timestamp;

use super::*;
use crate::alerts::events::{Occurrence, Trigger, occurrences};
use crate::alerts::message::{Input, build};
use crate::crd::{
    AbortStatus, AlertLink, AlertSeverity, AlertsSpec, Rollout, RolloutPhase, RolloutStatus,
};
use crate::engine::testkit::{rollout as test_rollout, weight};

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).expect("time")
}

fn aborted() -> (Rollout, RolloutStatus) {
    let mut rollout = test_rollout(4, Some(vec![weight(25), weight(50)]), true);
    rollout.metadata.namespace = Some("shop".into());
    rollout.spec.alerts = Some(AlertsSpec {
        subscriptions: Vec::new(),
        links: vec![
            AlertLink {
                title: "Dashboard (prod)".into(),
                url: "https://grafana.example.com/d/x?var-ro={rollout}".into(),
            },
            AlertLink {
                title: "Dashboard prod".into(),
                url: "https://grafana.example.com/d/y".into(),
            },
            AlertLink {
                title: "???".into(),
                url: "not a url".into(),
            },
        ],
    });
    let status = RolloutStatus {
        phase: Some(RolloutPhase::Aborted),
        stable_revision: Some("stable1".into()),
        canary_revision: Some("canary1".into()),
        abort: Some(AbortStatus {
            revision: "canary1".into(),
            reason: "AnalysisFailed".into(),
            message: "analysis web-canary1-1 failed".into(),
            at: Time(at(0)),
            step_index: 1,
            weight: 25,
            cannot_tell: false,
            keep_git: false,
        }),
        ..Default::default()
    };
    (rollout, status)
}

fn alert(rollout: &Rollout, status: &RolloutStatus, occurrence: &Occurrence) -> Alert {
    build(&Input {
        rollout,
        status,
        occurrence,
        severity: AlertSeverity::Critical,
        images: None,
        run: None,
    })
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_api_url_is_under_the_base_url_with_its_path_prefix() {
    let url = |base: &str| alerts_url(base).map(|u| u.to_string());
    assert_eq!(
        url("http://alertmanager.monitoring:9093"),
        Ok("http://alertmanager.monitoring:9093/api/v2/alerts".into())
    );
    assert_eq!(
        url(" https://ops.example.com/alertmanager "),
        Ok("https://ops.example.com/alertmanager/api/v2/alerts".into())
    );
    assert_eq!(
        url("https://ops.example.com/alertmanager/"),
        Ok("https://ops.example.com/alertmanager/api/v2/alerts".into())
    );
}

#[test]
fn a_malformed_url_is_a_clear_error_that_does_not_repeat_it() {
    for base in [
        "alertmanager:9093",
        "ftp://alertmanager.example.com",
        "http://",
        "https://am.example.com/?token=s3cret",
        "am.example.com/s3cret",
    ] {
        let error = alerts_url(base).expect_err(base).to_string();
        assert!(
            error.starts_with("`url` is not an http(s) base URL"),
            "{error}"
        );
        assert!(
            !error.contains("s3cret") && !error.contains(base),
            "{error}"
        );
    }
}

#[test]
fn auth_is_basic_or_bearer_never_half_or_both() {
    assert_eq!(authorization(None, None, None), Ok(None));
    assert_eq!(
        authorization(None, None, Some("t0ken")),
        Ok(Some("Bearer t0ken".into()))
    );
    // base64("sluice:pa ss")
    assert_eq!(
        authorization(Some("sluice"), Some("pa ss"), None),
        Ok(Some("Basic c2x1aWNlOnBhIHNz".into()))
    );
    assert_eq!(
        authorization(Some("sluice"), None, None),
        Err(ConfigError::HalfBasicAuth("username"))
    );
    assert_eq!(
        authorization(None, Some("pw"), Some("t")),
        Err(ConfigError::HalfBasicAuth("password"))
    );
    assert_eq!(
        authorization(Some("u"), Some("p"), Some("t")),
        Err(ConfigError::TwoAuths)
    );
}

#[test]
fn extra_labels_must_be_valid_names_and_not_sluices_own() {
    assert_eq!(check_labels(&map(&[("team", "a"), ("_x9", "b")])), Ok(()));
    for bad in ["team-name", "9lives", "", "é"] {
        assert!(
            matches!(
                check_labels(&map(&[(bad, "x")])),
                Err(ConfigError::BadLabel(..))
            ),
            "{bad:?}"
        );
    }
    let error = check_labels(&map(&[("severity", "low")])).expect_err("reserved");
    assert!(error.to_string().contains("Sluice sets it"), "{error}");
}

#[test]
fn the_label_set_is_the_same_for_the_first_send_a_resend_and_the_resolve() {
    let (rollout, status) = aborted();
    let abort = occurrences(&status).remove(0);
    let extra = map(&[("team", "payments"), ("severity", "ignored")]);
    let first = labels(&alert(&rollout, &status, &abort), &extra);
    assert_eq!(
        first,
        map(&[
            ("alertname", "SluiceRolloutAborted"),
            ("namespace", "shop"),
            ("rollout", "web"),
            ("revision", "canary1"),
            ("severity", "critical"),
            ("team", "payments"),
        ])
    );
    // Later the status moved on (weight, message), the labels did not.
    let mut later = status.clone();
    later.current_weight = 0;
    later.message = Some("traffic on stable".into());
    assert_eq!(labels(&alert(&rollout, &later, &abort), &extra), first);
    // The resolve names the abort it resolves and carries the same set.
    let mut healthy = status.clone();
    healthy.phase = Some(RolloutPhase::Healthy);
    healthy.abort = None;
    let resolve = Occurrence {
        trigger: Trigger::Resolve {
            event_id: abort.id.clone(),
        },
        id: format!("resolved/{}", abort.id),
        revision: "canary1".into(),
        at: None,
    };
    let resolved = alert(&rollout, &healthy, &resolve);
    assert_eq!(labels(&resolved, &extra), first);
}

#[test]
fn each_completed_step_is_its_own_alert() {
    let (rollout, status) = aborted();
    let step = |n: u32| Occurrence {
        trigger: Trigger::Event(AlertEvent::StepCompleted),
        id: format!("stepCompleted/canary1/{n}"),
        revision: "canary1".into(),
        at: None,
    };
    let one = labels(&alert(&rollout, &status, &step(0)), &BTreeMap::new());
    let two = labels(&alert(&rollout, &status, &step(1)), &BTreeMap::new());
    assert_eq!(one["alertname"], "SluiceStepCompleted");
    assert_eq!(one["step"], "0");
    assert_ne!(one, two);
}

#[test]
fn annotations_carry_the_facts_and_links_under_valid_names() {
    let (rollout, status) = aborted();
    let abort = occurrences(&status).remove(0);
    let alert = alert(&rollout, &status, &abort);
    let notes = annotations(&alert);
    assert!(notes["summary"].starts_with("Rollout shop/web aborted at step 2/2 (25% canary)"));
    assert_eq!(notes["description"], "analysis web-canary1-1 failed");
    assert_eq!(notes["reason"], "AnalysisFailed");
    assert_eq!(notes["event_id"], abort.id);
    assert_eq!(
        notes["link_dashboard_prod"],
        "https://grafana.example.com/d/x?var-ro=web"
    );
    // A title that clashes or has no letters gets a numbered name.
    assert_eq!(notes["link_2"], "https://grafana.example.com/d/y");
    assert_eq!(notes["link_3"], "not a url");
    let body = postable_alerts(&alert, &BTreeMap::new(), at(60), at(300));
    assert_eq!(body[0]["startsAt"], "2027-01-15T08:00:00Z");
    assert_eq!(body[0]["endsAt"], "2027-01-15T08:05:00Z");
    // generatorURL is the first link that is a URL.
    assert_eq!(
        body[0]["generatorURL"],
        "https://grafana.example.com/d/x?var-ro=web"
    );
}

#[test]
fn a_resolve_starts_and_ends_now() {
    let (rollout, mut status) = aborted();
    status.abort = None;
    let resolve = Occurrence {
        trigger: Trigger::Resolve {
            event_id: format!("aborted/canary1/{}", at(0).as_second()),
        },
        id: "resolved/x".into(),
        revision: "canary1".into(),
        at: None,
    };
    let alert = alert(&rollout, &status, &resolve);
    let now = at(600);
    let body = postable_alerts(
        &alert,
        &BTreeMap::new(),
        now,
        ends_at(true, now, DEFAULT_RESEND_INTERVAL),
    );
    assert_eq!(body[0]["startsAt"], body[0]["endsAt"]);
    assert_eq!(body[0]["endsAt"], now.to_string());
}

#[test]
fn an_incident_record_is_kept_firing_and_others_end_by_themselves() {
    let record = |event_id: &str, state| AlertRecord {
        event_id: event_id.into(),
        target: "AlertTarget/shop/am".into(),
        state,
        attempts: 1,
        at: Time(at(0)),
        message: Some("delivered".into()),
        pending_since: None,
        next_attempt: None,
        active_until: None,
    };
    let interval = Duration::from_secs(60);
    let end = ends_at(false, at(0), interval);
    assert_eq!(end, at(240));
    let firing = firing_record(
        record("aborted/c1/1", AlertState::Sent),
        at(0),
        end,
        interval,
    );
    assert_eq!(firing.next_attempt, Some(Time(at(60))));
    assert_eq!(firing.active_until, Some(Time(at(240))));
    assert!(
        firing
            .message
            .as_deref()
            .is_some_and(|m| m.contains("until the Rollout recovers")),
        "{firing:?}"
    );
    let promoted = firing_record(
        record("promoted/c1/1", AlertState::Sent),
        at(0),
        end,
        interval,
    );
    assert_eq!(promoted.next_attempt, None);
    assert_eq!(promoted.active_until, Some(Time(at(240))));
    let rejected = record("aborted/c1/1", AlertState::Failed);
    assert_eq!(
        firing_record(rejected.clone(), at(0), end, interval),
        rejected
    );
}

#[test]
fn a_resend_interval_below_a_second_is_raised() {
    assert_eq!(resend_interval(None), DEFAULT_RESEND_INTERVAL);
    assert_eq!(
        resend_interval(Some(Duration::from_millis(1))),
        MIN_RESEND_INTERVAL
    );
    assert_eq!(
        resend_interval(Some(Duration::from_secs(30))),
        Duration::from_secs(30)
    );
}
