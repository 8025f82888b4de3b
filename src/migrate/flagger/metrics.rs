//! Flagger metrics: a Canary's checks inlined from MetricTemplates, a
//! MetricTemplate on its own, and the query placeholders of both.

use serde_json::{Value, json};

use crate::crd::AnalysisTemplate;
use crate::migrate::report::{Fields, Report, duration};
use crate::migrate::{Converted, Doc, metadata, yaml};

/// What every check of a Canary shares.
pub(super) struct Check<'a> {
    pub(super) interval: &'a str,
    pub(super) count: i64,
    pub(super) failure_limit: Option<i64>,
    pub(super) service: &'a str,
    pub(super) namespace: Option<&'a str>,
}

/// One `analysis.metrics[]` entry: a Sluice metric with the MetricTemplate's
/// query inlined and the threshold range as the success condition.
pub(super) fn canary_metric(
    value: Value,
    path: &str,
    check: Check<'_>,
    docs: &[Doc],
    args: &mut Vec<Value>,
    out: &mut Converted,
    report: &mut Report,
) -> Option<Value> {
    let mut m = Fields::new(value, path, report);
    let name = m.string("name", report).unwrap_or_default();
    let interval = m
        .take("interval")
        .and_then(|d| duration(d, &format!("{path}.interval"), report))
        .unwrap_or_else(|| check.interval.to_string());
    let mut range = m.object("thresholdRange", report);
    let min = range.take("min");
    let max = range.take("max");
    range.finish(report, &[]);
    let condition = match (&min, &max) {
        (Some(lo), Some(hi)) => format!("result >= {lo} && result <= {hi}"),
        (Some(lo), None) => format!("result >= {lo}"),
        (None, Some(hi)) => format!("result <= {hi}"),
        (None, None) => String::new(),
    };
    let mut template_ref = m.object("templateRef", report);
    let template_name = template_ref.string("name", report);
    let template_ns = template_ref.string("namespace", report);
    template_ref.finish(report, &[]);
    let variables = m.take("templateVariables");
    let inline_query = m.take("query").is_some();
    m.finish(report, &[]);

    let Some(template_name) = template_name else {
        if inline_query {
            report.dropped(
                &format!("{path}.query"),
                "inline queries are deprecated in Flagger; move the query into a MetricTemplate and reference it; the metric is left out",
            );
            return None;
        }
        report.dropped(
            path,
            format!("built-in metric {name:?}: its query depends on Flagger's mesh provider; write it as a MetricTemplate (or a Sluice AnalysisTemplate) and reference it"),
        );
        return None;
    };
    let ns = template_ns.as_deref().or(check.namespace);
    let Some(i) = docs
        .iter()
        .position(|d| d.api_group() == "flagger.app" && d.is("MetricTemplate", &template_name, ns))
    else {
        report.attention(
            &format!("{path}.templateRef"),
            format!("MetricTemplate {template_name} is not among the inputs; pass its file too (its query is inlined into the Sluice template); the metric is left out"),
        );
        return None;
    };
    out.consumed.push(i);
    let template = &docs[i].source.value["spec"];
    let provider = &template["provider"];
    let provider_type = provider["type"].as_str().unwrap_or("prometheus");
    if provider_type != "prometheus" {
        report.dropped(
            path,
            format!("MetricTemplate {template_name} uses provider {provider_type}; Sluice measures with Prometheus only; the metric is left out"),
        );
        return None;
    }
    let query = template["query"].as_str().unwrap_or("");
    let (query, needed) = translate_query(
        query,
        &format!("{path} (query of MetricTemplate {template_name})"),
        report,
    );
    for arg in needed {
        if args.iter().any(|a| a["name"] == arg.as_str()) {
            continue;
        }
        let value = match arg.as_str() {
            "service" => Some(check.service.to_string()),
            other => variables
                .as_ref()
                .and_then(|v| v[other].as_str())
                .map(str::to_string),
        };
        let mut declared = json!({"name": arg});
        match value {
            Some(v) => declared["value"] = json!(v),
            None => report.attention(
                path,
                format!("the query uses {{{{args.{arg}}}}} but templateVariables gives no {arg}; pass it in the Rollout's analysis args"),
            ),
        }
        args.push(declared);
    }
    let address = provider["address"].as_str().unwrap_or("");
    if address.is_empty() {
        report.attention(
            path,
            format!("MetricTemplate {template_name} has no provider.address (Flagger falls back to its -metrics-server flag); set provider.prometheus.address"),
        );
    }
    let mut metric = json!({
        "name": name,
        "interval": interval,
        "count": check.count,
        "provider": {"prometheus": {"address": address, "query": query}},
    });
    if let Some(limit) = check.failure_limit {
        metric["failureLimit"] = json!(limit);
    }
    if condition.is_empty() {
        report.attention(
            path,
            "no thresholdRange: the metric has no condition; add successCondition",
        );
    } else {
        metric["successCondition"] = json!(condition);
    }
    Some(metric)
}

/// Rewrite Flagger's query placeholders into Sluice's; returns the query and
/// the template arguments it now needs.
fn translate_query(query: &str, path: &str, report: &mut Report) -> (String, Vec<String>) {
    let mut out = String::with_capacity(query.len());
    let mut needed = Vec::new();
    let mut rest = query;
    let mut selects_by_target = false;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = rest[start + 2..start + end].trim();
        let replacement = match name {
            "namespace" => "{{args.namespace}}".to_string(),
            "target" => {
                selects_by_target = true;
                "{{args.rollout}}".to_string()
            }
            "interval" => "{{interval}}".to_string(),
            "service" | "ingress" => {
                needed.push(name.to_string());
                format!("{{{{args.{name}}}}}")
            }
            other => match other.strip_prefix("variables.") {
                Some(var) => {
                    needed.push(var.to_string());
                    format!("{{{{args.{var}}}}}")
                }
                None => {
                    report.attention(
                        path,
                        format!("placeholder {{{{ {other} }}}} has no Sluice counterpart; kept as it is, the query will not render until it is replaced"),
                    );
                    format!("{{{{{other}}}}}")
                }
            },
        };
        out.push_str(&replacement);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    if selects_by_target {
        report.attention(
            path,
            "the query selects pods by the Deployment's name ({{ target }}, now {{args.rollout}}); under Sluice the stable and canary pods share that name prefix: select the canary with {{args.canary-hash}} on the pod-template-hash label",
        );
    }
    needed.dedup();
    (out, needed)
}

/// Convert a Flagger `MetricTemplate` into an AnalysisTemplate of one metric
/// whose threshold range is the arguments `min` and `max`. (A Canary in the
/// same input inlines the query instead, and this document is left out.)
pub fn metric_template(doc: &Doc, report: &mut Report) -> Converted {
    let mut out = Converted::default();
    let meta = metadata(doc, report);
    let mut top = Fields::new(doc.source.value.clone(), "", report);
    for key in ["apiVersion", "kind", "metadata", "status"] {
        top.take(key);
    }
    let mut spec = top.object("spec", report);
    top.finish(report, &[]);
    let mut provider = spec.object("provider", report);
    let kind = provider
        .string("type", report)
        .unwrap_or_else(|| "prometheus".into());
    let address = provider.string("address", report);
    if let Some(secret) = provider.take("secretRef") {
        let name = secret["name"].as_str().unwrap_or("");
        report.dropped(
            "spec.provider.secretRef",
            format!("Flagger reads username/password or a token from Secret {name}; set provider.prometheus.basicAuth (usernameSecret, passwordSecret) or bearerTokenSecret with those keys"),
        );
    }
    provider.finish(
        report,
        &[
            (
                "insecureSkipVerify",
                "Sluice always verifies TLS; give a CA with provider.prometheus.caSecret",
            ),
            (
                "region",
                "a CloudWatch setting; Sluice measures with Prometheus",
            ),
        ],
    );
    let query = spec.string("query", report).unwrap_or_default();
    spec.finish(report, &[]);
    if kind != "prometheus" {
        report.dropped(
            "spec.provider.type",
            format!(
                "provider {kind}: Sluice measures with Prometheus only; the document is left out"
            ),
        );
        return out;
    }
    if address.is_none() {
        report.attention(
            "spec.provider.address",
            "not set (Flagger falls back to its -metrics-server flag); set provider.prometheus.address",
        );
    }
    let (query, needed) = translate_query(&query, "spec.query", report);
    let mut args = vec![json!({"name": "min"}), json!({"name": "max"})];
    args.extend(needed.into_iter().map(|n| json!({"name": n})));
    let name = doc.name().to_string();
    let condition = "result >= {{args.min}} && result <= {{args.max}}";
    let value = json!({
        "apiVersion": crate::crd::API_VERSION,
        "kind": "AnalysisTemplate",
        "metadata": meta,
        "spec": {
            "args": args,
            "metrics": [{
                "name": name,
                "successCondition": condition,
                "provider": {"prometheus": {"address": address.unwrap_or_default(), "query": query}},
            }],
        },
    });
    out.documents.push(yaml::render_typed::<AnalysisTemplate>(
        value,
        "AnalysisTemplate",
        report,
    ));
    out
}
