//! Flagger `Canary` → a Rollout, the Services and HTTPRoute Flagger
//! generated, and an AnalysisTemplate of its metrics.

use serde_json::{Map, Value, json};

use super::metrics::{Check, canary_metric};
use crate::crd::AnalysisTemplate;
use crate::migrate::report::{Fields, Report, duration};
use crate::migrate::{Converted, Doc, metadata, yaml};

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
        None if target_kind != "Deployment" => report.attention(
            "spec.targetRef",
            format!(
                "{target_kind} {target_name}: Sluice Rollouts roll out a pod template as ReplicaSets, as a Deployment does; copy the template into the Rollout"
            ),
        ),
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

    let subscriptions = super::alerts::subscriptions(&mut analysis, namespace, report);
    report_webhooks(&mut analysis, report);
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
    let mut documents = vec![yaml::render_rollout(value, report)];
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

/// Flagger's webhooks (gates, load tests, hooks): none has a Sluice counterpart.
fn report_webhooks(analysis: &mut Fields, report: &mut Report) {
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
}
