//! Argo `AnalysisTemplate` / `ClusterAnalysisTemplate` → Sluice's: arguments,
//! Prometheus and Job metrics (other providers are reported), conditions
//! passed through (a Job metric is judged by the Job's outcome and takes none).

use serde_json::{Value, json};

use crate::crd::{AnalysisTemplate, ClusterAnalysisTemplate};
use crate::migrate::report::{Fields, Report, check_condition, duration};
use crate::migrate::{Converted, Doc, metadata, yaml};

const PROVIDER_OTHER: &str = "Sluice measures with the Prometheus HTTP API (or a direct scrape of the pods) or a Job; this metric is left out";

/// Convert an Argo `AnalysisTemplate` or `ClusterAnalysisTemplate`.
pub fn analysis_template(doc: &Doc, report: &mut Report) -> Converted {
    let mut out = Converted::default();
    let kind = doc.kind().to_string();
    let meta = metadata(doc, report);
    let mut top = Fields::new(doc.source.value.clone(), "", report);
    for key in ["apiVersion", "kind", "metadata", "status"] {
        top.take(key);
    }
    let mut spec = top.object("spec", report);
    top.finish(report, &[]);

    let mut args = Vec::new();
    for (i, a) in spec.list("args", report).into_iter().enumerate() {
        let apath = format!("spec.args[{i}]");
        let mut a = Fields::new(a, &apath, report);
        let mut arg = json!({"name": a.string("name", report).unwrap_or_default()});
        if let Some(v) = a.string("value", report) {
            arg["value"] = Value::String(v);
        }
        if let Some(from) = a.take("valueFrom") {
            let fpath = format!("{apath}.valueFrom");
            let mut from = Fields::new(from, &fpath, report);
            if let Some(secret) = from.take("secretKeyRef") {
                arg["valueFrom"] = json!({"secretKeyRef": secret});
            }
            from.finish(
                report,
                &[(
                    "fieldRef",
                    "Sluice reads argument values from Secrets only; `namespace` is built in as {{args.namespace}}",
                )],
            );
        }
        a.finish(report, &[]);
        args.push(arg);
    }

    // `dryRun: [{metricName: x}]` marks metrics; `.*` marks all.
    let mut dry_run_names = Vec::new();
    for (i, d) in spec.list("dryRun", report).into_iter().enumerate() {
        match d["metricName"].as_str() {
            Some(name) => dry_run_names.push(name.to_string()),
            None => report.dropped(&format!("spec.dryRun[{i}]"), "no metricName"),
        }
    }

    let mut metrics = Vec::new();
    for (i, m) in spec.list("metrics", report).into_iter().enumerate() {
        if let Some(mut metric) = metric(m, &format!("spec.metrics[{i}]"), report) {
            let name = metric["name"].as_str().unwrap_or("").to_string();
            if dry_run_names.iter().any(|d| d == ".*" || *d == name) {
                metric["dryRun"] = Value::Bool(true);
            }
            metrics.push(metric);
        }
    }
    for name in dry_run_names.iter().filter(|d| *d != ".*") {
        if !metrics.iter().any(|m| m["name"] == name.as_str()) {
            report.dropped(
                "spec.dryRun",
                format!("metricName {name:?} matches no converted metric (Sluice has no patterns other than .*)"),
            );
        }
    }
    spec.finish(
        report,
        &[(
            "measurementRetention",
            "Sluice keeps every measurement of a run (bounded by count)",
        )],
    );
    if metrics.is_empty() {
        report.dropped(
            "spec.metrics",
            "no metric could be converted, and a Sluice template needs one; the document is left out",
        );
        return out;
    }
    let mut spec = json!({"metrics": metrics});
    if !args.is_empty() {
        spec["args"] = Value::Array(args);
    }
    let value = json!({
        "apiVersion": crate::crd::API_VERSION,
        "kind": kind,
        "metadata": meta,
        "spec": spec,
    });
    let text = if kind == "ClusterAnalysisTemplate" {
        yaml::render_typed::<ClusterAnalysisTemplate>(value, &kind, report)
    } else {
        yaml::render_typed::<AnalysisTemplate>(value, &kind, report)
    };
    out.documents.push(text);
    out
}

fn metric(value: Value, path: &str, report: &mut Report) -> Option<Value> {
    let mut m = Fields::new(value, path, report);
    let name = m.string("name", report).unwrap_or_default();
    let mut out = json!({"name": name});
    for key in ["interval", "initialDelay"] {
        if let Some(d) = m.take(key).and_then(|d| duration(d, &m.at(key), report)) {
            out[key] = Value::String(d);
        }
    }
    for key in [
        "count",
        "failureLimit",
        "inconclusiveLimit",
        "consecutiveErrorLimit",
    ] {
        if let Some(n) = m.int(key, report) {
            out[key] = json!(n);
        }
    }
    let mut provider = m.object("provider", report);
    let job = provider.take("job");
    if job.is_some() && out.get("count").is_none() && out.get("interval").is_none() {
        // Argo runs a Job metric without an interval once.
        out["count"] = json!(1);
    }
    if out.get("count").is_none() {
        report.attention(
            &m.at("count"),
            "not set: Argo measures until the rollout ends (with an interval) or once; Sluice takes 5 measurements. Set count",
        );
    }
    for key in ["successCondition", "failureCondition"] {
        if let Some(c) = m.string(key, report) {
            if job.is_some() {
                report.dropped(
                    &m.at(key),
                    "a job metric is judged by the Job's outcome (Argo ignores the condition too)",
                );
                continue;
            }
            check_condition(&c, &m.at(key), report);
            out[key] = Value::String(c);
        }
    }
    let prometheus = provider.take("prometheus").map(|p| {
        let ppath = format!("{path}.provider.prometheus");
        let mut p = Fields::new(p, &ppath, report);
        let mut prom = json!({});
        for key in ["address", "query"] {
            if let Some(v) = p.string(key, report) {
                prom[key] = Value::String(v);
            }
        }
        if let Some(t) = p.take("timeout").and_then(|t| duration(t, &p.at("timeout"), report)) {
            prom["timeout"] = Value::String(t);
        }
        p.finish(
            report,
            &[
                ("insecure", "Sluice always verifies TLS; give a CA with provider.prometheus.caSecret"),
                ("headers", "Sluice sends no custom headers; use bearerTokenSecret or basicAuth for credentials"),
                ("authentication", "Sluice has no SigV4 or OAuth2; use bearerTokenSecret or basicAuth"),
            ],
        );
        prom
    });
    let others: Vec<String> = provider_keys(&mut provider);
    for other in &others {
        report.dropped(&format!("{path}.provider.{other}"), PROVIDER_OTHER);
    }
    provider.finish(report, &[]);
    m.finish(report, &[]);
    let job = job.map(|j| job_provider(j, &format!("{path}.provider.job"), report));
    match (prometheus, job) {
        (Some(p), _) => {
            out["provider"] = json!({"prometheus": p});
            Some(out)
        }
        (None, Some(job)) => {
            out["provider"] = json!({"job": job});
            Some(out)
        }
        (None, None) => {
            if others.is_empty() {
                report.dropped(
                    &format!("{path}.provider"),
                    "no provider; the metric is left out",
                );
            }
            None
        }
    }
}

/// Argo's `job` provider: the same spelling (`metadata.labels`,
/// `metadata.annotations`, a batch/v1 JobSpec), so it carries over as written.
fn job_provider(value: Value, path: &str, report: &mut Report) -> Value {
    let mut j = Fields::new(value, path, report);
    let mut job = json!({});
    if let Some(meta) = j.take("metadata") {
        let mpath = format!("{path}.metadata");
        let mut meta = Fields::new(meta, &mpath, report);
        let mut out = json!({});
        for key in ["labels", "annotations"] {
            if let Some(map) = meta.take(key) {
                out[key] = map;
            }
        }
        meta.finish(report, &[]);
        if out.as_object().is_some_and(|o| !o.is_empty()) {
            job["metadata"] = out;
        }
    }
    job["spec"] = j.take("spec").unwrap_or_else(|| json!({}));
    j.finish(report, &[]);
    job
}

/// Take every remaining provider (web, datadog, ...) out of `provider`.
fn provider_keys(provider: &mut Fields) -> Vec<String> {
    let known = [
        "web",
        "datadog",
        "newRelic",
        "wavefront",
        "kayenta",
        "cloudWatch",
        "graphite",
        "influxdb",
        "skywalking",
        "plugin",
    ];
    known
        .iter()
        .filter(|k| provider.take(k).is_some())
        .map(|k| k.to_string())
        .collect()
}
