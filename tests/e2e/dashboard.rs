//! The Grafana dashboard against the real thing: the stack's Prometheus
//! scrapes the controller through a canary that is promoted and one that
//! aborts (traffic back, Git revert, alert delivered), then every panel's
//! PromQL, taken from `integrations/grafana/sluice.json` with its template
//! variables put in, must return data. A deleted Rollout's series then go.

use std::time::{Duration, Instant};

use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;
use sluice::crd::{Rollout, RolloutPhase};

use super::analysis::error_rate_template;
use super::dashboard_file as board;
use super::harness::{ControllerProcess, cluster, http_get, wait_for};
use super::receiver::Receiver;
use super::support::*;

/// The result of one PromQL query, as (labels, values).
type Series = Vec<(serde_json::Value, Vec<f64>)>;

/// Seconds between the points of a range query.
const STEP: f64 = 5.0;

/// Run `expr` on Prometheus: an instant query, or a range query from `start`
/// (what Grafana runs for a time-series panel).
async fn promql(prometheus: &str, expr: &str, range_from: Option<f64>) -> Result<Series, String> {
    let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    let (path, params) = match range_from {
        Some(from) => {
            // Steps count back from now, so the last one is now: a series born
            // a moment ago (the last alert) is in the result, as on a dashboard.
            let steps = ((now - from) / STEP).ceil().max(1.0);
            let start = now - steps * STEP;
            (
                "query_range",
                vec![
                    ("query", expr.to_string()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{now:.3}")),
                    ("step", format!("{STEP}")),
                ],
            )
        }
        None => (
            "query",
            vec![("query", expr.to_string()), ("time", format!("{now:.3}"))],
        ),
    };
    let response = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/{path}"))
        .query(&params)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    let number = |pair: &serde_json::Value| {
        pair[1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let result = body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(result
        .iter()
        .map(|series| {
            let values = match series["values"].as_array() {
                Some(values) => values.iter().map(number).collect(),
                None => vec![number(&series["value"])],
            };
            (series["metric"].clone(), values)
        })
        .collect())
}

fn has_finite(series: &Series) -> bool {
    series
        .iter()
        .any(|(_, values)| values.iter().any(|v| v.is_finite()))
}

/// One value of the controller's own `/metrics`, e.g. a histogram's `_sum`.
fn scraped(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{sample} ")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn every_dashboard_panel_has_data_after_a_promoted_and_an_aborted_canary() {
    let started = jiff::Timestamp::now().as_second() as f64;
    let info = &cluster().info;
    let prometheus = info.prometheus.clone().expect("stack runs Prometheus");
    let receiver = Receiver::start(vec![]).await;
    let (admin, ns, kubeconfig) = setup("dashboard").await;
    let workspace = info.data_dir.join(format!("git-workspace-{ns}"));
    let workspace = workspace.display().to_string();
    let controller = ControllerProcess::start(
        &kubeconfig,
        &ns,
        "dashboard",
        &["--no-leader-election", "--git-workspace", &workspace],
    );
    let _scrape = controller.scraped_by_prometheus();

    team_hook(&admin, &ns, &receiver.url).await;
    let example = gateway_example;
    let yaml = |value: &serde_json::Value| serde_yaml_ng::to_string(value).expect("yaml");
    let mut manifest: serde_json::Value =
        serde_yaml_ng::from_str(&example("rollout.yaml")).expect("yaml");
    speed_up(&mut manifest);
    manifest["spec"]["strategy"]["canary"]["steps"] = json!([
        {"setWeight": 25},
        {"analysis": {"templates": [{"templateName": "error-rate"}]}},
        {"setWeight": 100}
    ]);
    manifest["spec"]["git"] = json!({"repositoryRef": {"name": "apps"}, "path": "apps/web"});
    manifest["spec"]["alerts"] =
        json!({"subscriptions": [{"target": "team-hook", "events": ["aborted", "reverted"]}]});
    let bare = info.data_dir.join(format!("git-{ns}")).join("apps.git");
    let repository = json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "GitRepository", "metadata": {"name": "apps"},
        "spec": {"url": bare.display().to_string(), "branch": "main",
                 "author": {"name": "Sluice", "email": "sluice@example.com"}}
    });
    let gitops = GitOps::start(
        &ns,
        &[
            ("services.yaml", example("services.yaml")),
            ("httproute.yaml", example("httproute.yaml")),
            ("repository.yaml", yaml(&repository)),
            ("rollout.yaml", yaml(&manifest)),
            ("analysis.yaml", yaml(&error_rate_template(&prometheus))),
        ],
    );
    let first = wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    let first_stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    let _traffic = start_trafficgen(&ns, 400);
    tokio::time::sleep(Duration::from_secs(4)).await;

    // A good version goes all the way.
    gitops.bump("rollout.yaml", "web:1.0.0", "web:1.0.1", "web 1.0.1");
    let api: Api<Rollout> = Api::namespaced(admin.clone(), &ns);
    let promoted = wait_for(Duration::from_secs(150), "web 1.0.1 promoted", || {
        let (api, first_stable) = (api.clone(), first_stable.clone());
        async move {
            let status = api.get("web").await.ok()?.status?;
            let stable = status.stable_revision?;
            (status.phase == Some(RolloutPhase::Healthy) && stable != first_stable)
                .then_some(stable)
        }
    })
    .await;

    // A bad one aborts: traffic back, the commit reverted, the alert sent.
    gitops.bump("rollout.yaml", "web:1.0.1", "web:1.0.2-err30", "web 1.0.2");
    wait_reverted_home(&admin, &ns, &promoted, Duration::from_secs(180)).await;
    wait_for(Duration::from_secs(60), "the aborted alert", || {
        let sent = receiver
            .received()
            .iter()
            .any(|r| r.header("x-sluice-event").as_deref() == Some("aborted"));
        async move { sent.then_some(()) }
    })
    .await;

    // Prometheus has scraped the end of the story.
    let settled = format!(
        r#"sluice_git_reverts_total{{namespace="{ns}",outcome="Reverted"}} > 0 and on () sluice_abort_to_alert_delivered_seconds_count > 0"#
    );
    let mut last = Ok(Vec::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        last = promql(&prometheus, &settled, None).await;
        if last.as_ref().is_ok_and(|s| !s.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        last.as_ref().is_ok_and(|s| !s.is_empty()),
        "Prometheus never saw the revert and the alert: {last:?}\n{}",
        controller.log_tail()
    );

    // A few more scrapes, so that rate windows hold two samples of the newest series.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dashboard = board::load();
    for (name, query) in board::variable_queries(&dashboard) {
        let query = board::substitute(&query, &[("namespace", &ns)]);
        let result = promql(&prometheus, &query, None).await.expect(&query);
        let values: Vec<String> = result
            .iter()
            .filter_map(|(labels, _)| labels[&name].as_str().map(str::to_string))
            .collect();
        let expected = if name == "namespace" {
            ns.as_str()
        } else {
            "web"
        };
        assert!(
            values.iter().any(|v| v == expected),
            "variable {name}: {query} gave {values:?}"
        );
    }
    let targets: Vec<serde_json::Value> = board::panels(&dashboard)
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .collect();
    let queries = board::queries(&dashboard);
    assert_eq!(queries.len(), targets.len());
    let mut empty = Vec::new();
    for (query, target) in queries.iter().zip(&targets) {
        let expr = board::substitute(&query.expr, &[("namespace", &ns), ("rollout", "web")]);
        let range = (target["instant"] != true).then_some(started);
        let what = format!(
            "panel {} \"{}\" {}: {expr}",
            query.panel_id, query.title, query.ref_id
        );
        match promql(&prometheus, &expr, range).await {
            Ok(series) if has_finite(&series) => eprintln!("ok   {what} ({} series)", series.len()),
            Ok(series) => empty.push(format!("{what}: no data ({series:?})")),
            Err(error) => empty.push(format!("{what}: {error}")),
        }
    }
    if !empty.is_empty() {
        let targets = http_get(&format!("{prometheus}/api/v1/targets")).await;
        let scraped = http_get(&format!("{}/metrics", controller.http)).await;
        panic!(
            "panels without data:\n{}\nsettled on: {last:?}\nPrometheus targets: {targets:?}\ncontroller's /metrics: {scraped:?}",
            empty.join("\n")
        );
    }

    // The latency figures behind the "After an abort" panel, for the record.
    let (_, text) = http_get(&format!("{}/metrics", controller.http))
        .await
        .expect("/metrics");
    for histogram in ["traffic_zero", "revert_pushed", "alert_delivered"] {
        let sample = |suffix: &str| {
            scraped(
                &text,
                &format!("sluice_abort_to_{histogram}_seconds_{suffix}"),
            )
        };
        eprintln!(
            "abort to {histogram}: {:?} s over {:?} observations",
            sample("sum"),
            sample("count")
        );
        assert_eq!(
            sample("count"),
            Some(1.0),
            "{histogram}: one abort, one observation"
        );
    }

    // A deleted Rollout takes its series with it (stop the sync, which would re-apply it).
    drop(gitops);
    api.delete("web", &DeleteParams::default())
        .await
        .expect("delete Rollout");
    let label = format!("namespace=\"{ns}\",rollout=\"web\"");
    wait_for(
        Duration::from_secs(30),
        "no series of the deleted Rollout",
        || {
            let (url, label) = (format!("{}/metrics", controller.http), label.clone());
            async move {
                let (_, text) = http_get(&url).await?;
                (!text.contains(&label)).then_some(())
            }
        },
    )
    .await;
}
