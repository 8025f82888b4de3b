//! Analysis on the real control plane: Prometheus scrapes the traffic
//! generator, the controller judges canary against baseline, and the verdict
//! drives the rollout (a faulty canary aborts, a healthy one promotes).

use std::time::Duration;

use kube::Api;
use serde_json::json;
use sluice::crd::{AnalysisPhase, AnalysisRun, RolloutPhase};

use super::harness::{
    BackgroundProcess, ControllerProcess, admin_client, apply_value, cluster, wait_for,
};
use super::support::*;

pub fn error_rate_template(prometheus: &str) -> serde_json::Value {
    let selector =
        r#"namespace="{{args.namespace}}",app="{{args.rollout}}",pod_template_hash="{{revision}}""#;
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "error-rate"},
        "spec": {"metrics": [{
            "name": "errors-vs-baseline",
            "interval": "5s",
            "initialDelay": "5s",
            "count": 12,
            "provider": {"prometheus": {
                "address": prometheus,
                "events": format!("sum(increase(http_requests_total{{{selector},code=\"500\"}}[{{{{interval}}}}]))"),
                "exposure": format!("sum(increase(http_requests_total{{{selector}}}[{{{{interval}}}}]))"),
            }},
            "compare": {
                "kind": "Counts",
                "direction": "Increase",
                "tolerance": {"relative": 0.5, "absolute": 0.02},
                "confidence": 0.95,
                // 5 s intervals: a minute of test traffic stands in for the default 5m.
                "minimum": {"intervals": 6, "duration": "30s", "requests": 200}
            }
        }]}
    })
}

pub(super) fn with_analysis(doc: &mut serde_json::Value) {
    speed_up(doc);
    if doc["kind"] == "Rollout" {
        doc["spec"]["strategy"]["canary"]["steps"] = json!([
            {"setWeight": 25},
            {"analysis": {"templates": [{"templateName": "error-rate"}]}},
            {"setWeight": 50},
            {"pause": {"duration": "2s"}}
        ]);
    }
}

/// Start a canary of `image` behind an analysis step and return (namespace, stable hash, controller, traffic).
async fn canary_under_analysis(
    prefix: &str,
    image: &str,
) -> (String, String, ControllerProcess, BackgroundProcess) {
    canary_with(prefix, image, "gateway-canary", with_analysis).await
}

/// Background analysis from the first step, and a long pause it must cut short.
fn with_background_analysis(doc: &mut serde_json::Value) {
    speed_up(doc);
    if doc["kind"] == "Rollout" {
        let canary = &mut doc["spec"]["strategy"]["canary"];
        canary["steps"] =
            json!([{"setWeight": 25}, {"pause": {"duration": "1h"}}, {"setWeight": 100}]);
        canary["analysis"] = json!({"templates": [{"templateName": "error-rate"}]});
    }
}

/// Apply `examples/<example>` (edited) behind a fresh controller, put traffic on it, then ship `image`.
pub(super) async fn canary_with(
    prefix: &str,
    image: &str,
    example: &str,
    edit: fn(&mut serde_json::Value),
) -> (String, String, ControllerProcess, BackgroundProcess) {
    let info = &cluster().info;
    let prometheus = info.prometheus.clone().expect("stack runs Prometheus");
    // The controller runs with deploy/'s RBAC: templates, run status and all.
    let (admin, ns, kubeconfig) = setup(prefix).await;
    let controller = ControllerProcess::start(&kubeconfig, &ns, prefix, &["--no-leader-election"]);
    apply_value(&admin, &ns, error_rate_template(&prometheus)).await;
    for file in ["services.yaml", "httproute.yaml", "rollout.yaml"] {
        apply_example(&admin, &ns, &format!("{example}/{file}"), edit).await;
    }
    let first = wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    let traffic = start_trafficgen(&ns, 400);
    // Let Prometheus see the stable revision's traffic before the canary starts.
    tokio::time::sleep(Duration::from_secs(4)).await;
    set_image(&admin, &ns, "web", image).await;
    (ns, stable, controller, traffic)
}

async fn the_run(ns: &str) -> AnalysisRun {
    let api: Api<AnalysisRun> = Api::namespaced(admin_client().await, ns);
    let runs = api.list(&Default::default()).await.expect("list runs");
    runs.items.into_iter().next().expect("an AnalysisRun")
}

#[tokio::test]
async fn a_canary_with_ten_percent_errors_fails_analysis_and_aborts() {
    let (ns, stable, controller, _traffic) =
        canary_under_analysis("analysis-bad", "registry.example.com/web:1.0.1-err10").await;
    let admin = admin_client().await;
    let aborted = wait_for(Duration::from_secs(90), "abort on failed analysis", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            let r = rollout(&admin, &ns, "web").await;
            (r.status.as_ref()?.phase == Some(RolloutPhase::Aborted)).then_some(r)
        }
    })
    .await;
    let status = aborted.status.expect("status");
    let abort = status.abort.expect("abort recorded");
    assert_eq!(abort.reason, "AnalysisFailed", "{}", controller.log_tail());
    assert_eq!(status.stable_revision.as_deref(), Some(stable.as_str()));
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-canary").await,
        Some(0)
    );
    let run = the_run(&ns).await.status.expect("run status");
    assert_eq!(run.phase, Some(AnalysisPhase::Failed));
    let metric = &run.metrics[0];
    let judgement = metric
        .judgement
        .clone()
        .expect("numbers behind the verdict");
    assert_eq!(judgement.decision, "Worse");
    // The anytime-valid interval of the rate difference lies wholly beyond the 2-point tolerance.
    assert!(
        judgement.interval_low.unwrap_or(0.0) > 0.02,
        "{judgement:?}"
    );
    assert!(
        judgement.canary.unwrap_or(0.0) > 0.05,
        "canary error rate {judgement:?}"
    );
    assert!(
        judgement.baseline.unwrap_or(1.0) < 0.03,
        "baseline error rate {judgement:?}"
    );
    assert!(
        metric.measurements.len() < 12,
        "decided early, after {} measurements",
        metric.measurements.len()
    );
    let reasons = event_reasons(&admin, &ns, "web").await;
    assert!(reasons.iter().any(|r| r == "AnalysisFailed"), "{reasons:?}");

    // `sluice analyze` replays the same template over the run's own window and reaches the same verdict.
    let run = the_run(&ns).await;
    let run_status = run.status.clone().expect("status");
    let until = run_status.metrics[0]
        .measurements
        .last()
        .map(|m| m.at.0)
        .expect("a measurement");
    let started = run_status.started_at.clone().expect("started").0;
    // The window starts where the run started: analyze replays the controller's schedule from there.
    let since = format!(
        "{}s",
        (until - started)
            .total(jiff::Unit::Second)
            .unwrap_or(0.0)
            .ceil() as i64
    );
    let prometheus = cluster().info.prometheus.clone().expect("prometheus");
    let file = super::harness::log_dir().join(format!("{ns}-template.yaml"));
    std::fs::write(
        &file,
        serde_json::to_string(&error_rate_template(&prometheus)).expect("json"),
    )
    .expect("write template");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["analyze", "--file"])
        .arg(&file)
        .args(["--namespace", &ns, "--rollout", "web", "--since", &since])
        .args(["--until", &until.to_string()])
        .args([
            "--canary",
            &run.spec.canary_revision,
            "--baseline",
            &run.spec.stable_revision,
        ])
        .output()
        .await
        .expect("run sluice analyze");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("verdict: Failed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("canary"), "{stdout}");
}

#[tokio::test]
async fn a_healthy_canary_passes_analysis_early_and_promotes() {
    let (ns, stable, controller, _traffic) =
        canary_under_analysis("analysis-good", "registry.example.com/web:1.0.1").await;
    let admin = admin_client().await;
    let promoted = wait_for(Duration::from_secs(120), "promotion after analysis", || {
        let (admin, ns, stable) = (admin.clone(), ns.clone(), stable.clone());
        async move {
            let r = rollout(&admin, &ns, "web").await;
            let s = r.status.clone()?;
            (s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.as_ref() != Some(&stable))
                .then_some(r)
        }
    })
    .await;
    assert!(
        promoted.status.and_then(|s| s.abort).is_none(),
        "{}",
        controller.log_tail()
    );
    let run = the_run(&ns).await.status.expect("run status");
    assert_eq!(
        run.phase,
        Some(AnalysisPhase::Successful),
        "{:?}",
        run.message
    );
    let metric = &run.metrics[0];
    assert_eq!(
        metric.judgement.as_ref().map(|j| j.decision.as_str()),
        Some("NotWorse")
    );
    assert!(
        metric.measurements.len() < 12,
        "promoted before the planned count"
    );
}

#[tokio::test]
async fn background_analysis_aborts_a_bad_canary_during_a_long_pause() {
    let (ns, stable, controller, _traffic) = canary_with(
        "analysis-bg",
        "registry.example.com/web:1.0.1-err10",
        "gateway-canary",
        with_background_analysis,
    )
    .await;
    let admin = admin_client().await;
    let aborted = wait_for(
        Duration::from_secs(90),
        "abort by background analysis",
        || {
            let (admin, ns) = (admin.clone(), ns.clone());
            async move {
                let r = rollout(&admin, &ns, "web").await;
                (r.status.as_ref()?.phase == Some(RolloutPhase::Aborted)).then_some(r)
            }
        },
    )
    .await;
    let status = aborted.status.expect("status");
    let abort = status.abort.expect("abort");
    assert_eq!(
        abort.reason,
        "BackgroundAnalysisFailed",
        "{}",
        controller.log_tail()
    );
    assert_eq!(status.stable_revision.as_deref(), Some(stable.as_str()));
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-canary").await,
        Some(0)
    );
    let run = the_run(&ns).await;
    assert!(run.spec.background);
    assert_eq!(
        run.status.and_then(|s| s.phase),
        Some(AnalysisPhase::Failed)
    );
}

/// The dedicated-baseline example, with the test's fast analysis step.
fn baseline_example(doc: &mut serde_json::Value) {
    speed_up(doc);
    if doc["kind"] == "Rollout" {
        doc["spec"]["strategy"]["canary"]["steps"] = json!([
            {"setWeight": 25},
            {"analysis": {"templates": [{"templateName": "error-rate"}]}},
            {"setWeight": 100}
        ]);
    }
}

#[tokio::test]
async fn a_dedicated_baseline_takes_the_canarys_share_and_is_what_the_analysis_compares() {
    let (ns, stable, controller, _traffic) = canary_with(
        "baseline",
        "registry.example.com/web:1.0.1",
        "gateway-canary-baseline",
        baseline_example,
    )
    .await;
    let admin = admin_client().await;
    let baseline = format!("{stable}-baseline");

    // While the analysis runs: 50 / 25 / 25 on stable / canary / baseline.
    let weights = wait_for(
        Duration::from_secs(60),
        "baseline weight on the route",
        || {
            let (admin, ns) = (admin.clone(), ns.clone());
            async move {
                let canary = route_canary_weight(&admin, &ns, "web", "web-canary").await?;
                let baseline = route_canary_weight(&admin, &ns, "web", "web-baseline").await?;
                let stable = route_canary_weight(&admin, &ns, "web", "web-stable").await?;
                (canary == 25).then_some((stable, canary, baseline))
            }
        },
    )
    .await;
    assert_eq!(weights, (50, 25, 25), "{}", controller.log_tail());
    assert!(
        revisions(&admin, &ns, "web")
            .await
            .contains(&(baseline.clone(), 1, 1)),
        "one baseline pod beside one canary pod: {:?}",
        revisions(&admin, &ns, "web").await
    );

    let promoted = wait_for(Duration::from_secs(120), "promotion", || {
        let (admin, ns, stable) = (admin.clone(), ns.clone(), stable.clone());
        async move {
            let r = rollout(&admin, &ns, "web").await;
            let s = r.status.clone()?;
            (s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.as_ref() != Some(&stable))
                .then_some(r)
        }
    })
    .await;
    assert!(
        promoted.status.and_then(|s| s.abort).is_none(),
        "{}",
        controller.log_tail()
    );
    let run = the_run(&ns).await;
    assert!(run.spec.dedicated_baseline);
    assert_eq!(run.spec.stable_revision, baseline);
    let status = run.status.expect("run status");
    assert_eq!(
        status.phase,
        Some(AnalysisPhase::Successful),
        "{:?}",
        status.message
    );
    assert!(
        status
            .baseline
            .unwrap_or_default()
            .contains("dedicated baseline")
    );
    let judgement = status.metrics[0].judgement.clone().expect("numbers");
    assert!(
        judgement.baseline_size > 0.0,
        "the baseline pods served traffic: {judgement:?}"
    );
    // Once promoted, the baseline is retired.
    wait_for(Duration::from_secs(30), "baseline scaled down", || {
        let (admin, ns, baseline) = (admin.clone(), ns.clone(), baseline.clone());
        async move {
            revisions(&admin, &ns, "web")
                .await
                .contains(&(baseline, 0, 0))
                .then_some(())
        }
    })
    .await;
}
