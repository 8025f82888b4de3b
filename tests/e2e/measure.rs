//! Measurements, not assertions on speed: run them by hand with
//! `cargo test --test e2e footprint -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use serde_json::json;
use sluice::crd::RolloutPhase;
use sluice::engine::controls;

use super::harness::{ControllerProcess, cluster, http_get, wait_for};
use super::support::*;

/// Sum and count of the reconcile-duration histogram.
async fn reconcile_totals(url: &str) -> (f64, f64) {
    let (_, text) = http_get(&format!("{url}/metrics"))
        .await
        .unwrap_or_default();
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    (
        value("sluice_reconcile_duration_seconds_sum"),
        value("sluice_reconcile_duration_seconds_count"),
    )
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
#[ignore = "measurement: cargo test --test e2e footprint -- --ignored --nocapture"]
async fn footprint_idle_rss_and_step_transition_time() {
    let (admin, ns) = fresh_namespace("measure").await;
    let controller = ControllerProcess::start(
        &cluster().info.kubeconfig,
        &ns,
        "measure",
        &["--no-leader-election"],
    );
    for file in [
        "gateway-canary/services.yaml",
        "gateway-canary/httproute.yaml",
    ] {
        apply_example(&admin, &ns, file, |_| {}).await;
    }
    apply_example(&admin, &ns, "gateway-canary/rollout.yaml", |doc| {
        doc["spec"]["strategy"]["canary"]["steps"] =
            json!([{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]);
    })
    .await;
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    set_image(&admin, &ns, "web", "registry.example.com/web:1.0.1").await;
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Paused,
        Duration::from_secs(90),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = rss_kib(controller.pid());
    let (sum_before, count_before) = reconcile_totals(&controller.http).await;
    let started = Instant::now();
    annotate(&admin, &ns, "web", controls::PROMOTE, "m1").await;
    wait_for(Duration::from_secs(60), "weight 50 on the route", || {
        let admin = admin.clone();
        let ns = ns.clone();
        async move {
            (route_canary_weight(&admin, &ns, "web", "web-canary").await == Some(50)).then_some(())
        }
    })
    .await;
    let to_weight = started.elapsed();
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Paused,
        Duration::from_secs(60),
    )
    .await;
    let (sum_after, count_after) = reconcile_totals(&controller.http).await;
    let reconciles = count_after - count_before;
    let mean_ms = if reconciles > 0.0 {
        (sum_after - sum_before) / reconciles * 1000.0
    } else {
        0.0
    };
    println!("controller idle RSS: {:.1} MiB", idle as f64 / 1024.0);
    println!(
        "step transition 10% -> 50%: {reconciles} reconciles, mean {mean_ms:.1} ms each; promote to weight on the route: {} ms",
        to_weight.as_millis()
    );
    assert!(idle > 0 && reconciles > 0.0);
}
