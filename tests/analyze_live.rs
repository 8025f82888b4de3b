//! `sluice analyze --live` against a real HTTP server on 127.0.0.1: a web
//! metric is measured on the controller's schedule (one request per
//! interval, none before `initialDelay`), each measured value is printed,
//! and the verdict and exit status are the controller's. Without `--live`
//! a web metric is refused with a pointer to it.

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use serde_json::{Value, json};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// Requests seen by revision: the canary's n-th answer is `0.01 × n`, the
/// baseline's always 0.01.
#[derive(Default)]
struct Seen {
    canary: AtomicU32,
    baseline: AtomicU32,
}

async fn rate(State(seen): State<Arc<Seen>>, uri: Uri) -> axum::Json<Value> {
    let canary = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .any(|p| p == "rev=canary1");
    let value = match canary {
        true => f64::from(seen.canary.fetch_add(1, Ordering::SeqCst) + 1) / 100.0,
        _ => {
            seen.baseline.fetch_add(1, Ordering::SeqCst);
            0.01
        }
    };
    axum::Json(json!({"data": {"errorRatio": value}}))
}

/// The server's address and its request counters.
async fn server() -> (String, Arc<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let address = listener.local_addr().expect("address");
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new()
        .route("/rate", get(rate))
        .with_state(seen.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}"), seen)
}

/// A template with one web threshold metric.
fn template(dir: &std::path::Path, condition: &str, count: u32) -> PathBuf {
    let text = format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: web-live
spec:
  args:
    - name: base
  metrics:
    - name: error-ratio
      initialDelay: 2s
      interval: 1s
      count: {count}
      {condition}
      provider:
        web:
          url: "{{{{args.base}}}}/rate?rev={{{{revision}}}}"
          jsonPath: "$.data.errorRatio"
"#
    );
    let path = dir.join(format!("template-{count}.yaml"));
    std::fs::write(&path, text).expect("write template");
    path
}

async fn analyze(args: Vec<String>) -> Output {
    let run = tokio::process::Command::new(SLUICE)
        .arg("analyze")
        .args(args)
        .env_remove("KUBECONFIG")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("sluice analyze finished within a minute")
        .expect("run sluice")
}

fn args(file: &std::path::Path, base: &str, extra: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = [
        "-f",
        file.to_str().unwrap_or_default(),
        "-n",
        "shop",
        "--rollout",
        "web",
        "--canary",
        "canary1",
        "--baseline",
        "base1",
        "--arg",
        &format!("base={base}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    out.extend(extra.iter().map(|s| s.to_string()));
    out
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("sluice-analyze-live-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[tokio::test]
async fn live_web_measurements_follow_the_schedule_and_give_the_controllers_verdict() {
    let (base, seen) = server().await;
    let dir = scratch("pass");
    let file = template(&dir, "successCondition: result < 0.05", 3);

    let started = Instant::now();
    let out = analyze(args(&file, &base, &["--live"])).await;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // The measured values, in order, as the server answered them.
    let values: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("  20") && l.contains("error-ratio"))
        .filter_map(|l| l.split("result ").nth(1))
        .collect();
    assert_eq!(values, ["0.01", "0.02", "0.03"], "{stdout}");
    assert!(stdout.contains("measured live from"), "{stdout}");
    assert!(stdout.contains("verdict: Successful"), "{stdout}");
    assert_eq!(
        seen.canary.load(Ordering::SeqCst),
        3,
        "one request per measurement"
    );
    // initialDelay 2s, then 1s apart: the third at about 4s, not at once.
    assert!(
        elapsed >= Duration::from_millis(3900) && elapsed < Duration::from_secs(20),
        "{elapsed:?}"
    );

    // A failing condition: Failed on the first bad value, exit status non-zero.
    let file = template(&dir, "failureCondition: result > 0.035", 5);
    let out = analyze(args(&file, &base, &["--live"])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("verdict: Failed"), "{stdout}");
    assert!(
        stdout.contains("result 0.04"),
        "the canary's fourth answer: {stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn replaying_a_web_metric_is_refused_with_a_pointer_to_live_and_for_stops_early() {
    let (base, seen) = server().await;
    let dir = scratch("refuse");
    let file = template(&dir, "successCondition: result < 0.05", 30);
    let out = analyze(args(&file, &base, &["--since", "5m"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains(
            "metric error-ratio uses the web provider, which has no history to replay: add --live"
        ),
        "{stderr}"
    );
    assert_eq!(seen.canary.load(Ordering::SeqCst), 0, "nothing measured");

    // --for bounds a live run: 30 measurements would take 32s; in 3.5s
    // there is time for those at 2s and 3s.
    let out = analyze(args(&file, &base, &["--live", "--for", "3500ms"])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "no verdict yet: {stdout}");
    assert!(
        stdout.contains("(stopped after 2 of 30 measurements)"),
        "{stdout}"
    );
    assert!(stdout.contains("verdict: Running"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
