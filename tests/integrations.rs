//! The monitoring integrations, checked without a cluster: the Prometheus
//! rules with Debian's `promtool` (syntax and unit tests with input series),
//! the Grafana dashboard against Grafana's documented dashboard JSON model,
//! and every metric name both of them use against what the controller exports.
//!
//! There is no Grafana here: the dashboard is checked for the model's
//! structure, not loaded by a real Grafana. Its queries run against a real
//! Prometheus in the e2e test `dashboard`.

#[path = "common/dashboard.rs"]
mod dashboard;

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::process::Command;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice::crd::{AbortStatus, AnalysisPhase, RevertState, RolloutPhase, RolloutStatus};
use sluice::metrics::Metrics;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Debian's promtool (`SLUICE_PROMTOOL` overrides); missing is a failure, not a skip.
fn promtool(args: &[&str]) -> String {
    let program = std::env::var("SLUICE_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let out = Command::new(&program)
        .args(args)
        .current_dir(root().join("integrations/prometheus"))
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} not found ({e}): install Debian's prometheus package (tests/cluster/install-deps.sh)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_prometheus_rules_are_valid() {
    let text = promtool(&["check", "rules", "rules.yaml"]);
    assert!(text.contains("SUCCESS: 8 rules found"), "{text}");
}

#[test]
fn every_alert_fires_on_its_input_series_and_stays_quiet_otherwise() {
    let text = promtool(&["test", "rules", "rules_test.yaml"]);
    assert!(text.contains("SUCCESS"), "{text}");
    // Every alert of rules.yaml has a test, both ways (`exp_alerts: []` and a firing one).
    let rules = std::fs::read_to_string(root().join("integrations/prometheus/rules.yaml"))
        .expect("rules.yaml");
    let tests = std::fs::read_to_string(root().join("integrations/prometheus/rules_test.yaml"))
        .expect("rules_test.yaml");
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 6, "{alerts:?}");
    for alert in alerts {
        let cases: Vec<&str> = tests
            .split("alertname: ")
            .skip(1)
            .filter(|case| case.starts_with(&format!("{alert}\n")))
            .collect();
        let quiet = cases
            .iter()
            .filter(|c| c.contains("exp_alerts: []"))
            .count();
        let firing = cases.iter().filter(|c| c.contains("exp_labels:")).count();
        assert!(
            quiet >= 1 && firing >= 1,
            "{alert}: {quiet} quiet, {firing} firing cases"
        );
    }
}

fn int(value: &serde_json::Value, what: &str) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("{what} is not an integer: {value}"))
}

/// The dashboard JSON model (grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/).
#[test]
fn the_dashboard_follows_the_grafana_json_model() {
    let board = dashboard::load();
    assert!(board["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        board["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty() && u.len() <= 40)
    );
    assert!(int(&board["schemaVersion"], "schemaVersion") >= 36);
    assert!(board["time"]["from"].is_string() && board["time"]["to"].is_string());
    assert!(
        board["id"].is_null(),
        "an exported dashboard carries no instance id"
    );

    let variables = board["templating"]["list"]
        .as_array()
        .expect("templating.list");
    let mut names = HashSet::new();
    for variable in variables {
        let name = variable["name"].as_str().expect("variable name");
        assert!(names.insert(name.to_string()), "variable {name} twice");
        let kind = variable["type"].as_str().expect("variable type");
        assert!(
            [
                "query",
                "datasource",
                "custom",
                "constant",
                "interval",
                "textbox"
            ]
            .contains(&kind),
            "{name}: type {kind}"
        );
    }
    for wanted in ["datasource", "namespace", "rollout"] {
        assert!(names.contains(wanted), "no {wanted} variable");
    }

    let panels = dashboard::panels(&board);
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut ids = HashSet::new();
    let mut boxes = Vec::new();
    for panel in &panels {
        let id = int(&panel["id"], "panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        let title = panel["title"].as_str().unwrap_or_default();
        let kind = panel["type"].as_str().expect("panel type");
        assert!(
            [
                "row",
                "timeseries",
                "stat",
                "table",
                "bargauge",
                "state-timeline",
                "gauge",
                "piechart",
                "text"
            ]
            .contains(&kind),
            "panel {id}: type {kind}"
        );
        let grid = &panel["gridPos"];
        let (x, y, w, h) = (
            int(&grid["x"], "gridPos.x"),
            int(&grid["y"], "gridPos.y"),
            int(&grid["w"], "gridPos.w"),
            int(&grid["h"], "gridPos.h"),
        );
        assert!(
            x >= 0 && y >= 0 && w >= 1 && h >= 1 && x + w <= 24,
            "panel {id} ({title}): gridPos {grid}"
        );
        boxes.push((id, x, y, w, h));
        if kind == "row" {
            assert!(panel["targets"].is_null(), "row {id} has queries");
            continue;
        }
        assert!(!title.is_empty(), "panel {id} has no title");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} ({title}) has no query");
        let mut refs = HashSet::new();
        for target in targets {
            let ref_id = target["refId"].as_str().expect("refId");
            assert!(refs.insert(ref_id), "panel {id}: refId {ref_id} twice");
            let expr = target["expr"].as_str().expect("expr");
            assert!(!expr.trim().is_empty(), "panel {id} {ref_id}: empty expr");
            assert_eq!(target["datasource"]["uid"], "${datasource}", "panel {id}");
        }
    }
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            let apart =
                a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1 || a.2 + a.4 <= b.2 || b.2 + b.4 <= a.2;
            assert!(apart, "panels {} and {} overlap: {a:?} {b:?}", a.0, b.0);
        }
    }

    // Every `$variable` a query uses is defined, or one of Grafana's built-ins.
    let defined: Vec<(String, String)> = names.iter().map(|n| (n.clone(), "x".into())).collect();
    let values: Vec<(&str, &str)> = defined
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    for query in dashboard::queries(&board) {
        let put = dashboard::substitute(&query.expr, &values);
        assert!(
            !put.contains('$'),
            "panel {} ({}) {}: unknown variable in {}",
            query.panel_id,
            query.title,
            query.ref_id,
            query.expr
        );
    }
    for (name, query) in dashboard::variable_queries(&board) {
        assert!(query.contains("sluice_"), "variable {name}: {query}");
    }
}

/// Names that look like `sluice_…` metrics in `text` (recording rules, `sluice:…`, are not).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    for (at, _) in text.match_indices("sluice_") {
        if at > 0 && ident(bytes[at - 1]) {
            continue;
        }
        let end = text[at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| at + n);
        names.insert(text[at..end].to_string());
    }
    names
}

/// Sample names the controller exports once every kind of event happened.
fn exported() -> BTreeSet<String> {
    let metrics = Metrics::default();
    let at = Time(Timestamp::now());
    let before = RolloutStatus {
        phase: Some(RolloutPhase::Progressing),
        stable_revision: Some("s1".into()),
        canary_revision: Some("c1".into()),
        current_step_index: Some(1),
        step_started_at: Some(at.clone()),
        current_weight: 25,
        ..RolloutStatus::default()
    };
    let mut after = before.clone();
    after.phase = Some(RolloutPhase::Aborted);
    after.current_weight = 0;
    after.abort = Some(AbortStatus {
        revision: "c1".into(),
        reason: "AnalysisFailed".into(),
        message: "worse".into(),
        at: at.clone(),
        step_index: 1,
        weight: 25,
        cannot_tell: false,
        keep_git: false,
    });
    metrics.rollout_status("shop", "web", Some(&before), &after);
    metrics.measured("shop", "web", "errors", AnalysisPhase::Failed);
    metrics.analysis_finished("shop", "web", AnalysisPhase::Failed);
    metrics.git_revert("shop", "web", RevertState::Reverted, Some(at.0));
    metrics.abort_alert_delivered(at.0);
    metrics.alert("Webhook", "aborted", "delivered");
    metrics.alert_attempts("Webhook", &["2xx"]);
    metrics.alerts_pending("Webhook", 0);
    metrics.failed("ReadReplicaSets", std::time::Duration::from_millis(1));
    metrics
        .render()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_dashboard_and_the_rules_use_only_metrics_the_controller_exports() {
    let exported = exported();
    let board = std::fs::read_to_string(dashboard::path()).expect("dashboard");
    let rules =
        std::fs::read_to_string(root().join("integrations/prometheus/rules.yaml")).expect("rules");
    for (what, text) in [("dashboard", board), ("rules.yaml", rules)] {
        let used = metric_names(&text);
        assert!(used.len() >= 5, "{what}: {used:?}");
        let unknown: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
        assert!(
            unknown.is_empty(),
            "{what} uses metrics the controller does not export: {unknown:?}\nexported: {exported:?}"
        );
    }
}
