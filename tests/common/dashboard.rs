//! The Grafana dashboard in `integrations/grafana/sluice.json` read the way
//! Grafana reads it: every panel's PromQL, with template variables put in,
//! so that a new panel is checked by the tests without touching them.

// Each test crate that includes this file uses a different part of it.
#![allow(dead_code)]

use std::path::PathBuf;

/// One query of one panel.
#[derive(Clone, Debug)]
pub struct PanelQuery {
    pub panel_id: i64,
    pub title: String,
    pub ref_id: String,
    pub expr: String,
}

/// Grafana's own variables and what the tests put in for them: a 5-minute
/// rate window and a 1-hour dashboard range cover a whole e2e run.
pub const BUILT_INS: [(&str, &str); 3] = [
    ("$__rate_interval", "5m"),
    ("$__interval", "15s"),
    ("$__range", "1h"),
];

pub fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("integrations/grafana/sluice.json")
}

/// The dashboard JSON.
pub fn load() -> serde_json::Value {
    let text = std::fs::read_to_string(path()).expect("read integrations/grafana/sluice.json");
    serde_json::from_str(&text).expect("sluice.json is JSON")
}

/// Every panel, rows' nested panels included.
pub fn panels(dashboard: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().cloned().unwrap_or_default() {
        all.extend(panel["panels"].as_array().cloned().unwrap_or_default());
        all.push(panel);
    }
    all
}

/// Every query of every panel.
pub fn queries(dashboard: &serde_json::Value) -> Vec<PanelQuery> {
    panels(dashboard)
        .iter()
        .flat_map(|panel| {
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            targets.into_iter().map(move |target| PanelQuery {
                panel_id: panel["id"].as_i64().unwrap_or(-1),
                title: panel["title"].as_str().unwrap_or_default().to_string(),
                ref_id: target["refId"].as_str().unwrap_or_default().to_string(),
                expr: target["expr"].as_str().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// The template variables' PromQL: Grafana's `label_values(expr, label)` as
/// the equivalent `group by (label) (expr)`.
pub fn variable_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let list = dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    list.iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let name = v["name"].as_str().unwrap_or_default().to_string();
            let query = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .unwrap_or_default();
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .unwrap_or_else(|| panic!("variable {name}: not label_values(...): {query}"));
            let (expr, label) = inner
                .rsplit_once(',')
                .unwrap_or_else(|| panic!("variable {name}: no label in {query}"));
            (
                name,
                format!("group by ({}) ({})", label.trim(), expr.trim()),
            )
        })
        .collect()
}

/// `expr` with `$name` / `${name}` of `values` and Grafana's built-ins put in.
pub fn substitute(expr: &str, values: &[(&str, &str)]) -> String {
    let mut out = expr.to_string();
    for (name, value) in BUILT_INS {
        out = out.replace(name, value);
    }
    for (name, value) in values {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}
