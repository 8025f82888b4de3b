//! Flagger (`flagger.app/v1beta1`): Canary, MetricTemplate and AlertProvider.
//!
//! Flagger's model differs from Sluice's more than Argo's does: a Canary
//! points at a Deployment and generates the Services and route itself, and
//! its analysis is one loop of checks at a fixed interval. So a Canary
//! becomes a Rollout (the Deployment's selector and template folded in),
//! the Services and HTTPRoute Flagger would have generated, and an
//! AnalysisTemplate with its metrics inlined from the MetricTemplates.

use serde_json::{Map, Value, json};

use super::report::{Fields, Report, check_condition, duration};
use super::{Converted, Doc, metadata, yaml};
use crate::crd::{AlertTarget, AnalysisTemplate, Rollout};

const CANARY_SPEC_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "autoscalerRef",
        "Sluice does not manage an autoscaler; point the HorizontalPodAutoscaler at the Rollout (it has a scale subresource)",
    ),
    ("ingressRef", "Sluice drives Gateway API HTTPRoutes only"),
    ("routeRef", "Sluice drives Gateway API HTTPRoutes only"),
    ("upstreamRef", "Sluice drives Gateway API HTTPRoutes only"),
    (
        "skipAnalysis",
        "Sluice has no switch to skip analysis; remove the analysis steps instead",
    ),
    (
        "revertOnDeletion",
        "deleting a Sluice Rollout deletes its pods; the Services and route stay as in Git",
    ),
    (
        "suspend",
        "pause with `sluice rollout pause` (an annotation), not a spec field",
    ),
    (
        "metricsServer",
        "Sluice templates name their Prometheus address per metric; Flagger's built-in metrics are not converted",
    ),
];

const SERVICE_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "portDiscovery",
        "Sluice's Services carry the one port given; list more ports in them by hand",
    ),
    (
        "appProtocol",
        "set appProtocol on the Service ports by hand",
    ),
    (
        "trafficPolicy",
        "a service-mesh setting; Sluice drives Gateway API HTTPRoutes only",
    ),
    (
        "retries",
        "set retries on the HTTPRoute rule by hand (Gateway API retry, where the implementation has it)",
    ),
    ("timeout", "set timeouts on the HTTPRoute rule by hand"),
    (
        "headers",
        "add a header modifier filter to the HTTPRoute rule by hand",
    ),
    (
        "corsPolicy",
        "a service-mesh setting; add a CORS filter to the HTTPRoute by hand",
    ),
    ("match", "add matches to the HTTPRoute rule by hand"),
    (
        "rewrite",
        "add a URL rewrite filter to the HTTPRoute rule by hand",
    ),
    ("mirror", "Sluice does not mirror traffic"),
    (
        "gateways",
        "Istio gateways; Sluice drives Gateway API HTTPRoutes (gatewayRefs)",
    ),
    (
        "apex",
        "Sluice generates no apex Service; labels and annotations go on the Services by hand",
    ),
    (
        "primary",
        "labels and annotations go on the generated Services by hand",
    ),
    (
        "canary",
        "labels and annotations go on the generated Services by hand",
    ),
    (
        "backends",
        "a service-mesh setting Sluice has no counterpart for",
    ),
    (
        "delegation",
        "Istio delegation; Sluice drives Gateway API HTTPRoutes only",
    ),
];

const ANALYSIS_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "stepWeightPromotion",
        "Sluice promotes in one step after the last weight",
    ),
    ("mirror", "Sluice does not mirror traffic"),
    ("mirrorWeight", "Sluice does not mirror traffic"),
    (
        "match",
        "Sluice routes by weight only (no A/B testing on headers or cookies)",
    ),
    (
        "sessionAffinity",
        "Sluice routes by weight only (no cookie affinity)",
    ),
    (
        "primaryReadyThreshold",
        "Sluice waits for every pod of a step to be Ready",
    ),
    (
        "canaryReadyThreshold",
        "Sluice waits for every pod of a step to be Ready",
    ),
];

/// Convert a Flagger `Canary` into a Rollout, its Services and route, and a template.
pub fn canary(doc: &Doc, docs: &[Doc], report: &mut Report) -> Converted {
    let mut out = Converted::default();
    let mut meta = metadata(doc, report);
    let mut top = Fields::new(doc.source.value.clone(), "", report);
    for key in ["apiVersion", "kind", "metadata", "status"] {
        top.take(key);
    }
    let mut spec = top.object("spec", report);
    top.finish(report, &[]);
    let namespace = doc.namespace();

    let provider = spec.string("provider", report).unwrap_or_default();
    let gateway = provider.starts_with("gatewayapi");
    let target = spec.object("targetRef", report);
    let (target_name, target_kind) = {
        let mut target = target;
        let name = target.string("name", report).unwrap_or_default();
        let kind = target
            .string("kind", report)
            .unwrap_or_else(|| "Deployment".into());
        target.take("apiVersion");
        target.finish(report, &[]);
        (name, kind)
    };
    // The Rollout takes the Deployment's name: `{{ target }}` in Flagger's queries is it.
    meta["name"] = Value::String(target_name.clone());

    let mut rollout = Map::new();
    let found = docs
        .iter()
        .position(|d| target_kind == "Deployment" && d.is("Deployment", &target_name, namespace));
    match found {
        Some(i) => {
            let deployment = &docs[i].source.value["spec"];
            for key in ["replicas", "revisionHistoryLimit", "selector", "template"] {
                if !deployment[key].is_null() {
                    rollout.insert(key.into(), deployment[key].clone());
                }
            }
            out.consumed.push(i);
            report.note(
                "spec.targetRef",
                format!(
                    "Deployment {target_name} ({}: document {}) became Rollout {target_name} and is left out of the output; delete the Deployment and {target_name}-primary once the Rollout runs",
                    docs[i].file, docs[i].index
                ),
            );
        }
        None => report.attention(
            "spec.targetRef",
            format!(
                "{target_kind} {target_name} is not among the inputs: a Sluice Rollout holds the pod template; pass the Deployment's file too, or copy its replicas, selector and template into the Rollout"
            ),
        ),
    }
    if let Some(v) = spec.take("progressDeadlineSeconds") {
        rollout.insert("progressDeadlineSeconds".into(), v);
    }

    // Services and route as Flagger would have generated them.
    let mut service = spec.object("service", report);
    let service_name = service
        .string("name", report)
        .unwrap_or_else(|| target_name.clone());
    let port = service.take("port").unwrap_or(json!(80));
    let target_port = service.take("targetPort").unwrap_or_else(|| port.clone());
    let port_name = service
        .string("portName", report)
        .unwrap_or_else(|| "http".into());
    let gateway_refs = service.take("gatewayRefs");
    let hosts = service.take("hosts");
    if !gateway {
        for (key, value) in [("gatewayRefs", &gateway_refs), ("hosts", &hosts)] {
            if value.is_some() {
                report.dropped(
                    &format!("spec.service.{key}"),
                    "used only with the gatewayapi provider",
                );
            }
        }
    }
    service.finish(report, SERVICE_UNSUPPORTED);
    let (stable, canary_service) = (
        format!("{service_name}-primary"),
        format!("{service_name}-canary"),
    );
    let service_doc = |name: &str, selector: Option<&Value>| {
        let mut value = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": [{"name": port_name, "port": port, "targetPort": target_port}]},
        });
        if let Some(ns) = namespace {
            value["metadata"]["namespace"] = json!(ns);
        }
        if let Some(selector) = selector {
            value["spec"]["selector"] = selector.clone();
        }
        yaml::to_yaml(&value)
    };

    // Analysis: the weights, the checks, the alerts.
    let mut analysis = spec.object("analysis", report);
    let interval = analysis
        .take("interval")
        .and_then(|d| duration(d, "spec.analysis.interval", report))
        .unwrap_or_else(|| "1m".into());
    let threshold = analysis.int("threshold", report);
    let max_weight = analysis.int("maxWeight", report).unwrap_or(50);
    let step_weight = analysis.int("stepWeight", report);
    let step_weights: Vec<i64> = analysis
        .list("stepWeights", report)
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    let iterations = analysis.int("iterations", report);
    let weights: Vec<i64> = if !step_weights.is_empty() {
        step_weights
    } else if let Some(step) = step_weight.filter(|s| *s > 0) {
        let mut weights = Vec::new();
        let mut w = 0;
        while w < max_weight {
            w = (w + step).min(max_weight);
            weights.push(w);
        }
        weights
    } else {
        Vec::new()
    };
    let blue_green = weights.is_empty();
    if !blue_green && iterations.is_some() {
        report.dropped(
            "spec.analysis.iterations",
            "with stepWeight the checks run once per weight; iterations are for A/B testing and blue/green",
        );
    }
    let checks = if blue_green {
        iterations.unwrap_or(1)
    } else {
        weights.len() as i64
    }
    .clamp(1, 200);

    let template_name = format!("{}-metrics", doc.name());
    let metrics_docs = analysis.list("metrics", report);
    let mut metrics = Vec::new();
    let mut template_args: Vec<Value> = Vec::new();
    for (i, metric) in metrics_docs.into_iter().enumerate() {
        let path = format!("spec.analysis.metrics[{i}]");
        if let Some(m) = canary_metric(
            metric,
            &path,
            Check {
                interval: &interval,
                count: checks,
                failure_limit: threshold.map(|t| (t - 1).max(0)),
                service: &service_name,
                namespace,
            },
            docs,
            &mut template_args,
            &mut out,
            report,
        ) {
            metrics.push(m);
        }
    }
    let analysis_ref =
        (!metrics.is_empty()).then(|| json!({"templates": [{"templateName": template_name}]}));

    let mut subscriptions = Vec::new();
    for (i, alert) in analysis.list("alerts", report).into_iter().enumerate() {
        let path = format!("spec.analysis.alerts[{i}]");
        let mut alert = Fields::new(alert, &path, report);
        alert.take("name");
        let severity = alert
            .string("severity", report)
            .unwrap_or_else(|| "info".into());
        let mut provider = alert.object("providerRef", report);
        let name = provider.string("name", report).unwrap_or_default();
        if let Some(ns) = provider.string("namespace", report)
            && Some(ns.as_str()) != namespace
        {
            report.attention(
                &format!("{path}.providerRef.namespace"),
                format!("AlertProvider {name} is in namespace {ns}: a Sluice AlertTarget must be in the Rollout's namespace (or use a ClusterAlertTarget with clusterScope: true)"),
            );
        }
        provider.finish(report, &[]);
        alert.finish(report, &[]);
        let events = match severity.as_str() {
            "error" => json!(["aborted", "revertFailed"]),
            "warn" => json!([
                "aborted",
                "revertFailed",
                "analysisError",
                "inconclusive",
                "paused"
            ]),
            _ => json!([
                "aborted",
                "revertFailed",
                "analysisError",
                "inconclusive",
                "paused",
                "promoted",
                "stepCompleted",
                "reverted"
            ]),
        };
        subscriptions.push(json!({"target": name, "events": events}));
    }
    for (i, hook) in analysis.list("webhooks", report).into_iter().enumerate() {
        let kind = hook["type"].as_str().unwrap_or("rollout");
        let reason = match kind {
            "confirm-rollout" | "confirm-promotion" | "confirm-traffic-increase" => {
                "Sluice has no webhook gates; a `pause: {}` step waits for `sluice rollout promote` instead"
            }
            "rollback" => "Sluice has no rollback hook; abort with `sluice rollout abort`",
            "event" => "subscribe an AlertTarget of type Webhook to the Rollout's events instead",
            _ => {
                "Sluice runs no webhooks or load tests during analysis; generate load outside, measure with a template"
            }
        };
        report.dropped(&format!("spec.analysis.webhooks[{i}] ({kind})"), reason);
    }
    analysis.finish(report, ANALYSIS_UNSUPPORTED);
    spec.finish(report, CANARY_SPEC_UNSUPPORTED);

    // The strategy.
    let strategy = if blue_green {
        out.owned_services
            .extend([service_name.clone(), canary_service.clone()]);
        let mut bg = json!({"activeService": service_name, "previewService": canary_service});
        if let Some(a) = &analysis_ref {
            bg["prePromotionAnalysis"] = a.clone();
        }
        out.documents.push(service_doc(&service_name, None));
        out.documents.push(service_doc(&canary_service, None));
        json!({"blueGreen": bg})
    } else {
        let mut steps = Vec::new();
        for w in &weights {
            steps.push(json!({"setWeight": w}));
            steps.push(json!({"pause": {"duration": interval}}));
        }
        let mut canary = json!({"steps": steps});
        if let Some(a) = &analysis_ref {
            canary["analysis"] = a.clone();
        }
        if gateway {
            out.owned_services
                .extend([stable.clone(), canary_service.clone()]);
            canary["stableService"] = json!(stable);
            canary["canaryService"] = json!(canary_service);
            canary["trafficRouting"] = json!({"gatewayAPI": {"httpRoute": service_name}});
            out.documents.push(service_doc(&stable, None));
            out.documents.push(service_doc(&canary_service, None));
            let mut route = json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": service_name},
                "spec": {
                    "parentRefs": gateway_refs.clone().unwrap_or(json!([])),
                    "rules": [{"backendRefs": [
                        {"name": stable, "port": port, "weight": 100},
                        {"name": canary_service, "port": port, "weight": 0},
                    ]}],
                },
            });
            if let Some(ns) = namespace {
                route["metadata"]["namespace"] = json!(ns);
            }
            if let Some(hosts) = &hosts {
                route["spec"]["hostnames"] = hosts.clone();
            }
            out.documents.push(yaml::to_yaml(&route));
            report.attention(
                "spec.service",
                format!(
                    "Flagger's apex Service {service_name} (primary pods only) has no Sluice counterpart: in-cluster clients should call {stable} or go through the Gateway"
                ),
            );
        } else {
            if !provider.is_empty() {
                report.dropped(
                    "spec.provider",
                    format!("provider {provider}: Sluice drives Gateway API HTTPRoutes only; without a router the canary's share of traffic is its share of pods"),
                );
            }
            // Replica ratio: one Service reaching every revision.
            let selector = rollout.get("selector").map(|s| s["matchLabels"].clone());
            out.documents
                .push(service_doc(&service_name, selector.as_ref()));
        }
        json!({"canary": canary})
    };
    rollout.insert("strategy".into(), strategy);
    if !subscriptions.is_empty() {
        rollout.insert("alerts".into(), json!({"subscriptions": subscriptions}));
    }

    let value = json!({
        "apiVersion": crate::crd::API_VERSION,
        "kind": "Rollout",
        "metadata": meta,
        "spec": rollout,
    });
    let mut documents = vec![yaml::render_typed::<Rollout>(value, "Rollout", report)];
    if !metrics.is_empty() {
        let mut template_meta = json!({"name": template_name});
        if let Some(ns) = namespace {
            template_meta["namespace"] = json!(ns);
        }
        let mut spec = json!({"metrics": metrics});
        if !template_args.is_empty() {
            spec["args"] = Value::Array(template_args);
        }
        let template = json!({
            "apiVersion": crate::crd::API_VERSION,
            "kind": "AnalysisTemplate",
            "metadata": template_meta,
            "spec": spec,
        });
        documents.push(yaml::render_typed::<AnalysisTemplate>(
            template,
            "AnalysisTemplate",
            report,
        ));
    }
    documents.append(&mut out.documents);
    out.documents = documents;
    out
}

/// What every check of a Canary shares.
struct Check<'a> {
    interval: &'a str,
    count: i64,
    failure_limit: Option<i64>,
    service: &'a str,
    namespace: Option<&'a str>,
}

/// One `analysis.metrics[]` entry: a Sluice metric with the MetricTemplate's
/// query inlined and the threshold range as the success condition.
fn canary_metric(
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
    m.take("query");
    m.finish(report, &[]);

    let Some(template_name) = template_name else {
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
    check_condition(condition, "spec", report);
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

/// Convert a Flagger `AlertProvider` into an AlertTarget.
pub fn alert_provider(doc: &Doc, report: &mut Report) -> Converted {
    let mut out = Converted::default();
    let meta = metadata(doc, report);
    let mut top = Fields::new(doc.source.value.clone(), "", report);
    for key in ["apiVersion", "kind", "metadata", "status"] {
        top.take(key);
    }
    let mut spec = top.object("spec", report);
    top.finish(report, &[]);
    let kind = spec.string("type", report).unwrap_or_default();
    let address = spec.string("address", report);
    let mut secret_ref = spec.object("secretRef", report);
    let secret = secret_ref.string("name", report);
    secret_ref.finish(report, &[]);
    spec.finish(
        report,
        &[
            ("channel", "a Slack incoming webhook posts to the channel it was made for; Sluice does not override it"),
            ("username", "Sluice posts under the webhook's own name"),
            ("proxy", "Sluice uses the controller's HTTPS_PROXY environment, not a per-target proxy"),
        ],
    );
    let target_type = match kind.as_str() {
        "slack" => "Slack",
        "msteams" => "Teams",
        other => {
            report.dropped(
                "spec.type",
                format!("type {other:?}: Sluice formats alerts for Slack, Teams, PagerDuty and a signed JSON webhook; the document is left out (an AlertTarget of type Webhook with a relay is the nearest)"),
            );
            return out;
        }
    };
    let name = doc.name().to_string();
    let secret_name = match (secret, address) {
        (Some(secret), address) => {
            if address.is_some() {
                report.dropped(
                    "spec.address",
                    "secretRef wins (as in Flagger); the plain-text address is left out",
                );
            }
            report.attention(
                "spec.secretRef",
                format!("Flagger reads the URL from key `address` of Secret {secret}; Sluice reads key `url`: add it to the Secret"),
            );
            secret
        }
        (None, Some(address)) => {
            let secret = format!("{name}-alert-url");
            let mut value = json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret},
                "type": "Opaque",
                "stringData": {"url": address},
            });
            if let Some(ns) = doc.namespace() {
                value["metadata"]["namespace"] = json!(ns);
            }
            out.documents.push(yaml::to_yaml(&value));
            report.attention(
                "spec.address",
                format!("the webhook URL was in plain text; it is now in Secret {secret} in the output: keep it out of Git in plain text (SOPS, Sealed Secrets, External Secrets)"),
            );
            secret
        }
        (None, None) => {
            report.attention(
                "spec",
                format!("no address or secretRef (Flagger's global setting applies); create Secret {name} with key `url`"),
            );
            name.clone()
        }
    };
    let value = json!({
        "apiVersion": crate::crd::API_VERSION,
        "kind": "AlertTarget",
        "metadata": meta,
        "spec": {"type": target_type, "secretName": secret_name},
    });
    out.documents.insert(
        0,
        yaml::render_typed::<AlertTarget>(value, "AlertTarget", report),
    );
    out
}
