//! The web provider's fence against a real HTTP server on 127.0.0.1: a
//! redirect into the metadata range is refused before any connection, a name
//! that resolves into a denied range is refused at connect time, redirect
//! loops end, and an endless answer is cut off at the read limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::get;

use super::{EgressError, EgressPolicy};
use crate::analysis::template::Bindings;
use crate::analysis::web::{Web, WebError};
use crate::crd::WebProvider;

fn redirect(to: String) -> Response {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, to)
        .body(Body::empty())
        .unwrap_or_default()
}

/// A loopback server: `/value`, redirects, and an answer of 8 MiB sent in chunks.
async fn server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let app = axum::Router::new()
        .route("/value", get(|| async { r#"{"value": 1}"# }))
        .route(
            "/to-metadata",
            axum::routing::any(|| async {
                redirect("http://169.254.169.254/latest/meta-data/".into())
            }),
        )
        .route(
            "/to-mapped-metadata",
            get(|| async { redirect("http://[::ffff:169.254.169.254]/".into()) }),
        )
        .route(
            "/to-name",
            get(move || async move { redirect(format!("http://localhost:{port}/value")) }),
        )
        .route("/loop", get(|| async { redirect("/loop".into()) }))
        .route(
            "/endless",
            get(|| async {
                let chunk = vec![b' '; 64 * 1024];
                let chunks = (0..128).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
                Body::from_stream(futures::stream::iter(chunks))
            }),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, task)
}

async fn fetch(url: String, policy: EgressPolicy) -> Result<serde_json::Value, WebError> {
    let provider = WebProvider {
        url,
        json_path: Some("$.value".into()),
        ..WebProvider::default()
    };
    let web = Web::with_egress(
        &provider,
        Vec::new(),
        Duration::from_secs(5),
        Arc::new(policy),
    )
    .expect("web");
    let bindings = Bindings {
        args: Default::default(),
        revision: None,
        interval: "30s".into(),
    };
    web.fetch(&bindings).await
}

fn refused(result: Result<serde_json::Value, WebError>) -> EgressError {
    match result {
        Err(WebError::Refused(refused)) => refused,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_redirect_into_the_metadata_range_is_refused_without_connecting() {
    let (port, _server) = server().await;
    let started = Instant::now();
    for path in ["to-metadata", "to-mapped-metadata"] {
        let error = refused(
            fetch(
                format!("http://127.0.0.1:{port}/{path}"),
                EgressPolicy::default(),
            )
            .await,
        );
        assert!(
            error.to_string().contains("169.254.169.254")
                && error.to_string().contains("denied range 169.254.0.0/16"),
            "{error}"
        );
    }
    // Refused before a connection was tried: nothing answers at that address here,
    // so a connection attempt would have waited for the 5 s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // The URL itself pointing there is refused the same way.
    refused(
        fetch(
            "http://169.254.169.254/latest/meta-data/".into(),
            EgressPolicy::default(),
        )
        .await,
    );
}

#[tokio::test]
async fn a_name_resolving_into_a_denied_range_is_refused_at_connect_time() {
    let (port, _server) = server().await;
    let loopback_denied = || {
        EgressPolicy::new(
            vec![
                "127.0.0.0/8".parse().expect("cidr"),
                "::1/128".parse().expect("cidr"),
            ],
            vec![],
        )
    };
    // Directly, and as a redirect's hop from an allowed address.
    let direct = refused(fetch(format!("http://localhost:{port}/value"), loopback_denied()).await);
    assert!(direct.to_string().contains("localhost"), "{direct}");
    let only_ipv4_loopback_denied =
        EgressPolicy::new(vec!["127.0.0.2/32".parse().expect("cidr")], vec![]);
    let value = fetch(
        format!("http://127.0.0.1:{port}/to-name"),
        only_ipv4_loopback_denied,
    )
    .await
    .expect("allowed hop");
    assert_eq!(value["value"], 1);
    // An allow-list that does not contain loopback refuses even the literal.
    let elsewhere = EgressPolicy::new(vec![], vec!["10.0.0.0/8".parse().expect("cidr")]);
    let outside = refused(fetch(format!("http://127.0.0.1:{port}/value"), elsewhere).await);
    assert!(
        outside.to_string().contains("outside the allowed ranges"),
        "{outside}"
    );
}

#[tokio::test]
async fn redirect_loops_end_and_endless_answers_are_cut_off() {
    let (port, _server) = server().await;
    let looped = refused(
        fetch(
            format!("http://127.0.0.1:{port}/loop"),
            EgressPolicy::default(),
        )
        .await,
    );
    assert_eq!(looped, EgressError::TooManyRedirects);
    let endless = fetch(
        format!("http://127.0.0.1:{port}/endless"),
        EgressPolicy::default(),
    )
    .await
    .expect_err("8 MiB is more than the limit");
    assert!(endless.to_string().contains("bytes read"), "{endless}");
}

#[tokio::test]
async fn a_prometheus_address_is_fenced_the_same_way() {
    use crate::analysis::prometheus::{Credentials, Prometheus};
    let (port, _server) = server().await;
    let started = Instant::now();
    for address in [
        format!("http://127.0.0.1:{port}/to-metadata?"),
        "http://169.254.169.254".to_string(),
    ] {
        let prometheus = Prometheus::new(&address, Duration::from_secs(5), Credentials::default())
            .expect("client");
        let error = prometheus
            .instant("up", None)
            .await
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("the controller refuses to reach 169.254.169.254"),
            "{address}: {error}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_alert_target_into_the_metadata_range_is_never_posted_to() {
    use crate::alerts::deliver::{DeliveryOutcome, Outgoing, Policy, deliver};
    let (port, _server) = server().await;
    let client = super::guarded(reqwest::Client::builder(), &super::current_denied_only())
        .build()
        .expect("client");
    let policy = Policy {
        timeout: Duration::from_secs(5),
        max_attempts: 1,
        ..Policy::default()
    };
    let started = Instant::now();
    for url in [
        "http://169.254.169.254/hook".to_string(),
        format!("http://127.0.0.1:{port}/to-metadata"),
    ] {
        let out = Outgoing {
            url: url.clone(),
            body: b"{}".to_vec(),
            signing_key: None,
            authorization: None,
            event_id: "e1".into(),
            event: "RolloutAborted".into(),
        };
        let delivery = deliver(&client, &out, &policy).await;
        match delivery.outcome {
            DeliveryOutcome::GaveUp { detail } => assert!(
                detail.contains("the controller refuses to reach 169.254.169.254"),
                "{url}: {detail}"
            ),
            other => panic!("{url}: {other:?}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}
