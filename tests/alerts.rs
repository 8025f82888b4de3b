//! Alert delivery against a real local HTTP receiver: formats on the wire,
//! the webhook signature, retries and back-off on 5xx and timeouts, 429 with
//! `Retry-After`, and no retry on other 4xx. Bounded: at most a handful of
//! requests and a few seconds each.

#[path = "common/receiver.rs"]
mod receiver;

use std::time::Duration;

use hmac::{Hmac, Mac};
use receiver::{Answer, Receiver};
use sha2::Sha256;
use sluice::alerts::deliver::{EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use sluice::alerts::{DeliveryOutcome, Outgoing, Policy, deliver};

fn client() -> reqwest::Client {
    sluice::install_crypto_provider();
    reqwest::Client::new()
}

fn outgoing(url: &str, key: Option<&str>) -> Outgoing {
    Outgoing {
        url: format!("{url}/hooks/T000/B000/XXXXSECRET"),
        body: br#"{"schemaVersion":"sluice.dev/alert/v1","event":"aborted"}"#.to_vec(),
        signing_key: key.map(|k| k.as_bytes().to_vec()),
        authorization: None,
        event_id: "aborted/abc/1".into(),
        event: "aborted".into(),
    }
}

fn fast() -> Policy {
    Policy {
        timeout: Duration::from_millis(500),
        max_attempts: 4,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(2),
        max_retry_after: Duration::from_secs(5),
        ..Policy::default()
    }
}

#[tokio::test]
async fn webhook_requests_are_signed_over_timestamp_and_body() {
    let receiver = Receiver::start(vec![]).await;
    let out = outgoing(&receiver.url, Some("shared-secret"));
    let delivery = deliver(&client(), &out, &fast()).await;
    assert_eq!(delivery.outcome, DeliveryOutcome::Delivered { status: 200 });
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let request = &got[0];
    assert_eq!(request.body, out.body);
    assert_eq!(request.path, "/hooks/T000/B000/XXXXSECRET");
    assert_eq!(request.json()["event"], "aborted");
    assert_eq!(
        request.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        request.header(EVENT_ID_HEADER).as_deref(),
        Some("aborted/abc/1")
    );
    let timestamp = request.header(TIMESTAMP_HEADER).expect("timestamp header");
    let now = jiff::Timestamp::now().as_second();
    let sent: i64 = timestamp.parse().expect("unix seconds");
    assert!((now - sent).abs() < 60, "timestamp {sent} vs now {now}");
    // A receiver verifies with nothing but HMAC-SHA256 and the shared secret.
    let mut mac = Hmac::<Sha256>::new_from_slice(b"shared-secret").expect("key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        request.header(SIGNATURE_HEADER),
        Some(format!("sha256={expected}"))
    );
    // A tampered body no longer matches.
    let mut mac = Hmac::<Sha256>::new_from_slice(b"shared-secret").expect("key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(b"{\"event\":\"promoted\"}");
    let tampered: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_ne!(
        request.header(SIGNATURE_HEADER),
        Some(format!("sha256={tampered}"))
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_growing_back_off() {
    let receiver = Receiver::start(vec![
        Answer::status(500),
        Answer::status(502),
        Answer::status(503),
    ])
    .await;
    let delivery = deliver(&client(), &outgoing(&receiver.url, None), &fast()).await;
    assert_eq!(delivery.outcome, DeliveryOutcome::Delivered { status: 200 });
    assert_eq!(delivery.attempts, 4);
    assert_eq!(delivery.attempt_results, ["5xx", "5xx", "5xx", "2xx"]);
    let got = receiver.received();
    assert_eq!(got.len(), 4);
    // Back-off 200 ms, 400 ms, 800 ms, each jittered down to no less than half.
    let gaps: Vec<Duration> = got.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, floor) in gaps.iter().zip([100, 200, 400]) {
        assert!(*gap >= Duration::from_millis(floor), "gaps {gaps:?}");
    }
    assert!(gaps[2] < Duration::from_secs(3), "gaps {gaps:?}");
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_is_given_up_after_max_attempts() {
    let receiver = Receiver::start(vec![Answer::status(500); 10]).await;
    let delivery = deliver(&client(), &outgoing(&receiver.url, None), &fast()).await;
    assert_eq!(delivery.attempts, 4);
    assert_eq!(receiver.received().len(), 4);
    match delivery.outcome {
        DeliveryOutcome::GaveUp { detail } => {
            assert!(detail.starts_with("HTTP 500"), "{detail}");
            assert!(!detail.contains("SECRET"), "the URL leaked: {detail}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
}

#[tokio::test]
async fn timeouts_are_retried() {
    let slow = Answer {
        delay: Duration::from_secs(2),
        ..Answer::status(200)
    };
    let receiver = Receiver::start(vec![slow]).await;
    let delivery = deliver(&client(), &outgoing(&receiver.url, None), &fast()).await;
    assert_eq!(delivery.outcome, DeliveryOutcome::Delivered { status: 200 });
    assert_eq!(delivery.attempt_results, ["timeout", "2xx"]);
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let limited = Answer {
        retry_after: Some("1".into()),
        ..Answer::status(429)
    };
    let receiver = Receiver::start(vec![limited]).await;
    let delivery = deliver(&client(), &outgoing(&receiver.url, None), &fast()).await;
    assert_eq!(delivery.outcome, DeliveryOutcome::Delivered { status: 200 });
    assert_eq!(delivery.attempt_results, ["429", "2xx"]);
    let got = receiver.received();
    let gap = got[1].at - got[0].at;
    // Retry-After (1 s) wins over the 200 ms back-off.
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_gives_up_instead_of_waiting() {
    let limited = Answer {
        retry_after: Some("3600".into()),
        ..Answer::status(429)
    };
    let receiver = Receiver::start(vec![limited]).await;
    let delivery = deliver(&client(), &outgoing(&receiver.url, None), &fast()).await;
    assert_eq!(receiver.received().len(), 1);
    match delivery.outcome {
        DeliveryOutcome::GaveUp { detail } => {
            assert!(detail.contains("Retry-After 3600s"), "{detail}")
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let bad = Answer {
        body: "invalid_payload".into(),
        ..Answer::status(400)
    };
    let receiver = Receiver::start(vec![bad]).await;
    let delivery = deliver(&client(), &outgoing(&receiver.url, None), &fast()).await;
    assert_eq!(
        delivery.outcome,
        DeliveryOutcome::Rejected {
            status: 400,
            detail: "HTTP 400: invalid_payload".into()
        }
    );
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn an_unreachable_receiver_is_retried_and_the_error_hides_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let out = outgoing(&format!("http://127.0.0.1:{port}"), None);
    let delivery = deliver(&client(), &out, &fast()).await;
    assert_eq!(delivery.attempts, 4);
    assert!(delivery.attempt_results.iter().all(|r| *r == "network"));
    match delivery.outcome {
        DeliveryOutcome::GaveUp { detail } => {
            assert!(detail.starts_with("cannot connect"), "{detail}");
            assert!(
                !detail.contains("SECRET") && !detail.contains("hooks"),
                "{detail}"
            );
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
}
