//! The web provider against a real HTTP server on 127.0.0.1: headers from
//! Secrets, URL and body placeholders that cannot change the request,
//! JSONPath into the answer, timeouts and error statuses, and whole
//! measurements (threshold and Counts comparison) through `prepare_metric`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::http::Uri;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::analysis::measure::{Live, measure, prepare_metric};
use crate::analysis::prometheus::Credentials;
use crate::analysis::run::MeasurementOutcome;
use crate::crd::{
    Comparison, ComparisonKind, Metric, MetricProvider, WebHeader, WebHeaderSource, WebMethod,
};

const TOKEN: &str = "Bearer s3cret-token";

/// The decoded query parameters of `uri`.
fn query_of(uri: &Uri) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

async fn rate(headers: HeaderMap, uri: Uri) -> (StatusCode, Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "no token"})));
    }
    let q = query_of(&uri);
    let app = q.get("app").cloned().unwrap_or_default();
    (
        StatusCode::OK,
        Json(json!({"data": {"errorRate": 0.02, "app": app}})),
    )
}

async fn counts(uri: Uri) -> Json<Value> {
    let q = query_of(&uri);
    let rev = q.get("rev").cloned().unwrap_or_default();
    let (errors, requests) = if rev == "canary1" {
        (12, 1000)
    } else {
        (3, 990)
    };
    Json(json!({"revision": rev, "errors": errors, "requests": requests.to_string()}))
}

async fn echo(body: String) -> (StatusCode, Json<Value>) {
    match serde_json::from_str::<Value>(&body) {
        Ok(parsed) => (StatusCode::OK, Json(json!({"got": parsed, "value": 3}))),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.to_string()})),
        ),
    }
}

/// A server on loopback; dropped with the returned guard's task.
async fn server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = axum::Router::new()
        .route("/rate", get(rate))
        .route("/counts", get(counts))
        .route("/echo", post(echo))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "database down") }),
        )
        .route("/text", get(|| async { "all good" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}"), task)
}

fn provider(url: String) -> WebProvider {
    WebProvider {
        url,
        json_path: Some("{$.data.errorRate}".into()),
        ..WebProvider::default()
    }
}

fn bindings(args: &[(&str, &str)]) -> Bindings {
    Bindings {
        args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        revision: None,
        interval: "30s".into(),
    }
}

#[test]
fn json_paths_select_one_number() {
    let json = json!({
        "data": {"rate": 0.5, "text": " 2.5 ", "ok": true, "none": null,
                 "list": [1, 2], "obj": {"a": 1}, "word": "high"},
        "items": [{"v": 1}, {"v": 2}]
    });
    let at = |path: &str| number_at(&json, path);
    assert_eq!(at("$.data.rate"), Ok(Some(0.5)));
    assert_eq!(at("{$.data.rate}"), Ok(Some(0.5)), "Argo's kubectl form");
    assert_eq!(at("$.data.text"), Ok(Some(2.5)));
    assert_eq!(at("$.data.ok"), Ok(Some(1.0)));
    assert_eq!(at("$.data.none"), Ok(None), "null is no data");
    assert_eq!(at("$.data.missing"), Ok(None), "no match is no data");
    assert_eq!(at("$.data.list[1]"), Ok(Some(2.0)));
    assert_eq!(at("$.items[?@.v > 1].v"), Ok(Some(2.0)));
    let error = |path: &str| at(path).expect_err(path).to_string();
    assert!(
        error("$.items[*].v").contains("matched 2 values"),
        "{}",
        error("$.items[*].v")
    );
    assert!(error("$.data.list").contains("is a list"));
    assert!(error("$.data.obj").contains("is an object"));
    assert!(error("$.data.word").contains("\"high\" is not a number"));
    assert!(error("$.data[").starts_with("web provider: JSONPath \"$.data[\""));
}

#[tokio::test]
async fn a_real_endpoint_with_a_secret_header_and_placeholders() {
    let (base, task) = server().await;
    let timeout = Duration::from_secs(5);
    let headers = vec![("Authorization".to_string(), TOKEN.to_string())];

    // GET, with an argument that would break the query string unescaped.
    let web = Web::new(
        &provider(format!("{base}/rate?app={{{{args.app}}}}")),
        headers.clone(),
        timeout,
    )
    .expect("web");
    let json = web
        .fetch(&bindings(&[("app", "a b&c=d")]))
        .await
        .expect("answer");
    assert_eq!(
        json["data"]["app"],
        json!("a b&c=d"),
        "the value arrived whole"
    );
    assert_eq!(number_at(&json, "{$.data.errorRate}"), Ok(Some(0.02)));

    // A placeholder that begins the URL is its base, inserted as written.
    let based = Web::new(
        &provider("{{args.base}}/rate?app={{args.app}}".into()),
        headers.clone(),
        timeout,
    )
    .expect("web");
    let json = based
        .fetch(&bindings(&[("base", &base), ("app", "x/y?z")]))
        .await
        .expect("answer");
    assert_eq!(json["data"]["app"], json!("x/y?z"));

    // Without the header: the status and the server's words.
    let bare = Web::new(&provider(format!("{base}/rate")), Vec::new(), timeout).expect("web");
    let err = bare.fetch(&bindings(&[])).await.expect_err("401");
    assert!(
        matches!(&err, WebError::Status(401, body) if body.contains("no token")),
        "{err}"
    );

    // POST: the body's placeholder is JSON string content, so the body stays JSON.
    let post = WebProvider {
        method: Some(WebMethod::Post),
        body: Some(r#"{"service": "{{args.svc}}", "window": "{{interval}}"}"#.into()),
        ..provider(format!("{base}/echo"))
    };
    let web = Web::new(&post, Vec::new(), timeout).expect("web");
    let json = web
        .fetch(&bindings(&[("svc", "x\"}, \"evil\": {\"")]))
        .await
        .expect("echo");
    assert_eq!(json["got"]["service"], json!("x\"}, \"evil\": {\""));
    assert_eq!(json["got"]["window"], json!("30s"));
    assert!(json["got"].get("evil").is_none());

    // Errors a user can act on.
    let fetch = |path: &str, timeout: Duration| {
        let web = Web::new(&provider(format!("{base}{path}")), Vec::new(), timeout).expect("web");
        async move { web.fetch(&bindings(&[])).await }
    };
    let err = fetch("/fail", timeout).await.expect_err("500");
    assert_eq!(err.to_string(), "web provider: HTTP 500: database down");
    let err = fetch("/text", timeout).await.expect_err("not JSON");
    assert!(
        err.to_string()
            .starts_with("web provider: the answer is not JSON"),
        "{err}"
    );
    let started = std::time::Instant::now();
    let err = fetch("/slow", Duration::from_millis(300))
        .await
        .expect_err("timeout");
    assert!(
        matches!(err, WebError::Request(ref m) if m.contains("timed out")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout held"
    );
    let err = fetch("/unknown-placeholder?x={{nope}}", timeout)
        .await
        .expect_err("placeholder");
    assert!(
        err.to_string().contains("url: query uses {{nope}}"),
        "{err}"
    );
    let invalid = Web::new(
        &provider(base.clone()),
        vec![("X-Bad".into(), "a\nb".into())],
        timeout,
    );
    assert!(matches!(invalid, Err(WebError::Invalid(m)) if m.contains("X-Bad")));
    task.abort();
}

fn web_metric(provider: WebProvider) -> Metric {
    Metric {
        name: "error-rate".into(),
        provider: MetricProvider {
            web: Some(provider),
            ..MetricProvider::default()
        },
        success_condition: Some("result[0] < {{args.max}}".into()),
        ..Metric::default()
    }
}

/// A client that is never called: the web provider needs none, but a live
/// measurement carries one.
fn unused_client() -> kube::Client {
    crate::install_crypto_provider();
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
    kube::Client::try_from(config).expect("client")
}

#[tokio::test]
async fn a_web_metric_measures_like_a_prometheus_one() {
    let (base, task) = server().await;
    let client = unused_client();
    let live = Live {
        client: &client,
        namespace: "shop",
        previous: None,
    };
    // Threshold, the token from a Secret (as the controller reads it).
    let metric = web_metric(WebProvider {
        headers: vec![WebHeader {
            key: "Authorization".into(),
            value: None,
            value_from: Some(WebHeaderSource::default()),
        }],
        timeout: Some(5.into()),
        ..provider(format!("{base}/rate?app={{{{args.rollout}}}}"))
    });
    let args = BTreeMap::from([
        ("max".to_string(), "0.05".to_string()),
        ("rollout".to_string(), "web".to_string()),
    ]);
    let credentials = Credentials {
        headers: BTreeMap::from([("Authorization".to_string(), TOKEN.to_string())]),
        ..Credentials::default()
    };
    let prepared = prepare_metric("tpl", &metric, &args, credentials).expect("valid");
    assert!(
        !format!("{prepared:?}").contains("s3cret"),
        "no secret in Debug"
    );
    let outcome = measure(
        &prepared,
        "canary1",
        "stable1",
        Timestamp::now(),
        Some(&live),
    )
    .await;
    assert!(
        matches!(outcome, MeasurementOutcome::Value(Some(v)) if v == 0.02),
        "{outcome:?}"
    );
    let replay = measure(&prepared, "canary1", "stable1", Timestamp::now(), None).await;
    assert!(
        matches!(replay, MeasurementOutcome::Error(ref m) if m.contains("replaying a past window"))
    );
    let missing =
        prepare_metric("tpl", &metric, &args, Credentials::default()).expect_err("no secret");
    assert!(
        missing.contains("header Authorization: its Secret was not read"),
        "{missing}"
    );

    // Counts comparison: one request per revision, `{{revision}}` in the URL.
    let counts = Metric {
        success_condition: None,
        compare: Some(Comparison {
            kind: ComparisonKind::Counts,
            ..Comparison::default()
        }),
        count: Some(10),
        ..web_metric(WebProvider {
            url: format!("{base}/counts?rev={{{{revision}}}}"),
            json_path: None,
            events_json_path: Some("$.errors".into()),
            exposure_json_path: Some("$.requests".into()),
            ..WebProvider::default()
        })
    };
    let prepared = prepare_metric("tpl", &counts, &args, Credentials::default()).expect("valid");
    let outcome = measure(
        &prepared,
        "canary1",
        "stable1",
        Timestamp::now(),
        Some(&live),
    )
    .await;
    let MeasurementOutcome::Counts {
        canary, baseline, ..
    } = outcome
    else {
        panic!("counts: {outcome:?}");
    };
    assert_eq!((canary.events, canary.exposure), (12.0, 1000.0));
    assert_eq!((baseline.events, baseline.exposure), (3.0, 990.0));

    // Missing fields are named at the start, as for Prometheus.
    let Metric { provider, .. } = counts.clone();
    let mut no_exposure = counts;
    no_exposure.provider = MetricProvider {
        web: provider.web.map(|w| WebProvider {
            exposure_json_path: None,
            ..w
        }),
        ..MetricProvider::default()
    };
    let err =
        prepare_metric("tpl", &no_exposure, &args, Credentials::default()).expect_err("invalid");
    assert!(
        err.contains("a Counts comparison needs provider.web.eventsJsonPath and provider.web.exposureJsonPath"),
        "{err}"
    );
    task.abort();
}
