//! Argo `Rollout` → Sluice `Rollout`: canary steps, routing through the
//! Gateway API plugin, background and step analysis, blue-green.

use serde_json::{Map, Value, json};

use super::routes;
use crate::crd::workload_ref::DEPLOYMENT_KIND;
use crate::migrate::report::{Fields, Report, duration};
use crate::migrate::{Converted, Doc, metadata, yaml};

/// The Gateway API traffic-router plugin's name in `trafficRouting.plugins`.
const GATEWAY_PLUGIN: &str = "argoproj-labs/gatewayAPI";

const NO_ROUTER: &str = "Sluice drives Gateway API HTTPRoutes only; without a router the canary's share of traffic is its share of pods";

/// Rollout spec fields with no Sluice counterpart, and why.
const ROLLOUT_SPEC_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "minReadySeconds",
        "Sluice counts a pod as available once Ready; set readiness probes instead",
    ),
    (
        "paused",
        "pause with `sluice rollout pause` (an annotation), not a spec field",
    ),
    (
        "restartAt",
        "Sluice has no pod restarts; change the template (e.g. an annotation) to roll",
    ),
    (
        "rollbackWindow",
        "Sluice has no rollback window: a template equal to stable is always an instant rollback",
    ),
    (
        "analysis",
        "AnalysisRun history limits are fixed in Sluice (the newest 5 finished runs are kept)",
    ),
];

const CANARY_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "canaryMetadata",
        "Sluice adds no per-role labels or annotations to pods",
    ),
    (
        "stableMetadata",
        "Sluice adds no per-role labels or annotations to pods",
    ),
    (
        "antiAffinity",
        "Sluice sets no anti-affinity between revisions; put affinity in the pod template",
    ),
    (
        "dynamicStableScale",
        "Sluice keeps stable at full size with a router (capacity for an instant abort)",
    ),
    (
        "minPodsPerReplicaSet",
        "Sluice's canary has at least one pod; there is no other minimum",
    ),
    (
        "scaleDownDelayRevisionLimit",
        "Sluice scales every older revision down after scaleDownDelaySeconds",
    ),
    (
        "pingPong",
        "Sluice points the stable and canary Services at revisions instead of swapping two",
    ),
    (
        "analysisRunMetadata",
        "Sluice adds no labels or annotations to AnalysisRuns",
    ),
];

const BLUE_GREEN_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "previewMetadata",
        "Sluice adds no per-role labels or annotations to pods",
    ),
    (
        "activeMetadata",
        "Sluice adds no per-role labels or annotations to pods",
    ),
    (
        "antiAffinity",
        "Sluice sets no anti-affinity between revisions; put affinity in the pod template",
    ),
    (
        "scaleDownDelayRevisionLimit",
        "Sluice scales every older revision down after scaleDownDelaySeconds",
    ),
];

const STEP_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "experiment",
        "Sluice has no experiments; compare against a baseline with strategy.canary.baseline and a `compare` metric",
    ),
    (
        "setCanaryScale",
        "Sluice sizes the canary from the weight (ceil(replicas × weight / 100)); the step is left out",
    ),
    ("plugin", "Sluice has no step plugins; the step is left out"),
];

/// Convert an Argo `Rollout`.
pub fn rollout(doc: &Doc, report: &mut Report) -> Converted {
    let mut out = Converted::default();
    let meta = metadata(doc, report);
    let mut top = Fields::new(doc.source.value.clone(), "", report);
    for key in ["apiVersion", "kind", "metadata", "status"] {
        top.take(key);
    }
    let mut spec = top.object("spec", report);
    top.finish(report, &[]);

    let mut sluice = Map::new();
    for key in [
        "replicas",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
    ] {
        if let Some(v) = spec.take(key) {
            sluice.insert(key.into(), v);
        }
    }
    if let Some(v) = spec.take("progressDeadlineAbort") {
        sluice.insert("abortOnProgressDeadline".into(), v);
    }
    for key in ["selector", "template"] {
        if let Some(v) = spec.take(key) {
            sluice.insert(key.into(), v);
        }
    }
    if let Some(reference) = spec.take("workloadRef") {
        workload(&reference, &mut sluice, report);
    }

    let mut strategy = spec.object("strategy", report);
    let canary = strategy.take("canary");
    let blue_green = strategy.take("blueGreen");
    strategy.finish(report, &[]);
    let sluice_strategy = match (canary, blue_green) {
        (Some(canary), _) => {
            json!({"canary": canary_strategy(canary, &mut out.owned_services, report)})
        }
        (None, Some(bg)) => {
            json!({"blueGreen": blue_green_strategy(bg, &mut out.owned_services, report)})
        }
        (None, None) => {
            report.attention(
                "spec.strategy",
                "no canary or blueGreen strategy; Sluice needs one (the output has an empty canary: the default steps)",
            );
            json!({"canary": {}})
        }
    };
    sluice.insert("strategy".into(), sluice_strategy);
    spec.finish(report, ROLLOUT_SPEC_UNSUPPORTED);

    let value = json!({
        "apiVersion": crate::crd::API_VERSION,
        "kind": "Rollout",
        "metadata": meta,
        "spec": sluice,
    });
    out.documents.push(yaml::render_rollout(value, report));
    out
}

/// `workloadRef`: carried over as is (Sluice reads the same field with the
/// same spelling and adopts the Deployment as Argo does); a kind Sluice does
/// not adopt needs attention. The Deployment, when among the inputs, is
/// printed as written: the Rollout keeps reading its template.
fn workload(reference: &Value, sluice: &mut Map<String, Value>, report: &mut Report) {
    let mut fields = Fields::new(reference.clone(), "spec.workloadRef", report);
    let mut out = Map::new();
    for key in ["apiVersion", "kind", "name", "scaleDown"] {
        if let Some(v) = fields.take(key) {
            out.insert(key.into(), v);
        }
    }
    fields.finish(report, &[]);
    let kind = out.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind != DEPLOYMENT_KIND {
        report.attention(
            "spec.workloadRef.kind",
            format!(
                "Sluice adopts Deployments only, not a {kind}: copy its selector and pod template into spec.selector and spec.template instead"
            ),
        );
    }
    sluice.insert("workloadRef".into(), Value::Object(out));
}

fn canary_strategy(value: Value, services: &mut Vec<String>, report: &mut Report) -> Value {
    let path = "spec.strategy.canary";
    let mut canary = Fields::new(value, path, report);
    let mut out = Map::new();
    for key in ["stableService", "canaryService"] {
        if let Some(v) = canary.string(key, report) {
            services.push(v.clone());
            out.insert(key.into(), Value::String(v));
        }
    }
    for key in [
        "maxSurge",
        "maxUnavailable",
        "scaleDownDelaySeconds",
        "abortScaleDownDelaySeconds",
    ] {
        if let Some(v) = canary.take(key) {
            out.insert(key.into(), v);
        }
    }
    if let Some(routing) = canary.take("trafficRouting")
        && let Some(routing) = traffic_routing(routing, &format!("{path}.trafficRouting"), report)
    {
        out.insert("trafficRouting".into(), routing);
    }
    if let Some(analysis) = canary.take("analysis") {
        let apath = format!("{path}.analysis");
        let mut fields = Fields::new(analysis, &apath, report);
        let starting = fields.take("startingStep");
        if let Some(mut background) = analysis_refs(&mut fields, &apath, report) {
            if let Some(step) = starting {
                background["startingStep"] = step;
            }
            out.insert("analysis".into(), background);
        }
        fields.finish(report, ANALYSIS_UNSUPPORTED);
    }
    // Always a list: without steps Argo promotes at once, and so does Sluice
    // with `steps: []` (leaving them out would mean Sluice's default steps).
    let converted: Vec<Value> = canary
        .list("steps", report)
        .into_iter()
        .enumerate()
        .filter_map(|(i, step)| canary_step(step, &format!("{path}.steps[{i}]"), report))
        .collect();
    out.insert("steps".into(), Value::Array(converted));
    canary.finish(report, CANARY_UNSUPPORTED);
    Value::Object(out)
}

fn canary_step(value: Value, path: &str, report: &mut Report) -> Option<Value> {
    let mut step = Fields::new(value, path, report);
    let converted = if let Some(weight) = step.take("setWeight") {
        Some(json!({"setWeight": weight}))
    } else if let Some(pause) = step.take("pause") {
        let ppath = format!("{path}.pause");
        let mut fields = Fields::new(pause, &ppath, report);
        let pause = match fields.take("duration") {
            Some(d) => match duration(d, &format!("{ppath}.duration"), report) {
                Some(d) => json!({"duration": d}),
                None => json!({}),
            },
            None => json!({}),
        };
        fields.finish(report, &[]);
        Some(json!({"pause": pause}))
    } else if let Some(route) = step.take("setHeaderRoute") {
        let rpath = format!("{path}.setHeaderRoute");
        Some(json!({"setHeaderRoute": routes::header_route(route, &rpath, report)}))
    } else if let Some(mirror) = step.take("setMirrorRoute") {
        let mpath = format!("{path}.setMirrorRoute");
        Some(json!({"setMirrorRoute": routes::mirror_route(mirror, &mpath, report)}))
    } else if let Some(analysis) = step.take("analysis") {
        let apath = format!("{path}.analysis");
        let mut fields = Fields::new(analysis, &apath, report);
        let refs = analysis_refs(&mut fields, &apath, report);
        fields.finish(report, ANALYSIS_UNSUPPORTED);
        refs.map(|a| json!({"analysis": a}))
    } else {
        None
    };
    step.finish(report, STEP_UNSUPPORTED);
    converted
}

const ANALYSIS_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "dryRun",
        "set `dryRun: true` on the metric in the Sluice AnalysisTemplate instead",
    ),
    (
        "measurementRetention",
        "Sluice keeps every measurement of a run (bounded by count)",
    ),
    (
        "analysisRunMetadata",
        "Sluice adds no labels or annotations to AnalysisRuns",
    ),
];

/// `templates` and `args` of an analysis (step, background or promotion).
fn analysis_refs(fields: &mut Fields, path: &str, report: &mut Report) -> Option<Value> {
    let mut templates = Vec::new();
    for (i, t) in fields.list("templates", report).into_iter().enumerate() {
        let tpath = format!("{path}.templates[{i}]");
        let mut t = Fields::new(t, &tpath, report);
        let Some(name) = t.string("templateName", report) else {
            report.dropped(&tpath, "no templateName");
            continue;
        };
        let mut reference = json!({"templateName": name});
        if let Some(scope) = t.take("clusterScope") {
            reference["clusterScope"] = scope;
        }
        t.finish(report, &[]);
        templates.push(reference);
    }
    let mut args = Vec::new();
    for (i, a) in fields.list("args", report).into_iter().enumerate() {
        let apath = format!("{path}.args[{i}]");
        let mut a = Fields::new(a, &apath, report);
        let name = a.string("name", report).unwrap_or_default();
        let mut arg = json!({"name": name});
        if let Some(v) = a.string("value", report) {
            arg["value"] = Value::String(v);
        }
        if let Some(from) = a.take("valueFrom") {
            let hint = match from["podTemplateHashValue"].as_str() {
                Some("Stable") => "use the built-in {{args.stable-hash}} in the template instead",
                Some("Latest") => "use the built-in {{args.canary-hash}} in the template instead",
                _ => {
                    "Sluice step arguments are literal values; give the value, or read it from a Secret in the template's args"
                }
            };
            report.dropped(&format!("{apath}.valueFrom"), hint);
            if arg.get("value").is_none() {
                // An argument without a value would fail the run: leave it out.
                a.finish(report, &[]);
                continue;
            }
        }
        a.finish(report, &[]);
        args.push(arg);
    }
    if templates.is_empty() {
        report.dropped(path, "an analysis without templates; left out");
        return None;
    }
    let mut out = json!({"templates": templates});
    if !args.is_empty() {
        out["args"] = Value::Array(args);
    }
    Some(out)
}

/// `trafficRouting`: the Gateway API plugin becomes `gatewayAPI` and
/// `managedRoutes` stays; every other router is reported (the Rollout then
/// splits by replica ratio).
fn traffic_routing(value: Value, path: &str, report: &mut Report) -> Option<Value> {
    let mut routing = Fields::new(value, path, report);
    let managed = routing.list("managedRoutes", report);
    let managed = routes::managed_routes(managed, &routing.at("managedRoutes"), report);
    let mut plugins = routing.object("plugins", report);
    let gateway = plugins.take(GATEWAY_PLUGIN).and_then(|config| {
        let gpath = format!("{path}.plugins.{GATEWAY_PLUGIN}");
        let mut config = Fields::new(config, &gpath, report);
        let mut route = config.string("httpRoute", report);
        let routes = config.list("httpRoutes", report);
        for (i, r) in routes.into_iter().enumerate() {
            let rpath = format!("{gpath}.httpRoutes[{i}]");
            let mut r = Fields::new(r, &rpath, report);
            let name = r.string("name", report);
            if route.is_none() {
                route = name;
            } else {
                report.dropped(
                    &rpath,
                    "Sluice drives one HTTPRoute per Rollout; only the first is carried over",
                );
            }
            r.finish(
                report,
                &[(
                    "useHeaderRoutes",
                    "Sluice puts its header routes on the one route it drives",
                )],
            );
        }
        let namespace = config.string("namespace", report);
        let grpc_route = config.string("grpcRoute", report);
        config.finish(
            report,
            &[
                (
                    "grpcRoutes",
                    "Sluice drives one route per Rollout: write grpcRoute with one name",
                ),
                ("tcpRoute", "Sluice drives HTTPRoutes only"),
                ("tcpRoutes", "Sluice drives HTTPRoutes only"),
                ("configMap", "Sluice keeps no route state in a ConfigMap"),
            ],
        );
        let mut out = match (route, grpc_route) {
            (Some(http), Some(_)) => {
                report.dropped(
                    &format!("{gpath}.grpcRoute"),
                    "Sluice drives one route per Rollout; the HTTPRoute is kept",
                );
                json!({"httpRoute": http})
            }
            (Some(http), None) => json!({"httpRoute": http}),
            (None, Some(grpc)) => json!({"grpcRoute": grpc}),
            (None, None) => return None,
        };
        if let Some(ns) = namespace {
            out["namespace"] = Value::String(ns);
        }
        Some(out)
    });
    plugins.finish(report, &[]);
    routing.finish(
        report,
        &[
            ("istio", NO_ROUTER),
            ("nginx", NO_ROUTER),
            ("alb", NO_ROUTER),
            ("smi", NO_ROUTER),
            ("ambassador", NO_ROUTER),
            ("traefik", NO_ROUTER),
            ("apisix", NO_ROUTER),
            ("appMesh", NO_ROUTER),
            ("maxTrafficWeight", "Sluice weights are percentages (0-100)"),
        ],
    );
    let mut out = json!({ "gatewayAPI": gateway? });
    if !managed.is_empty() {
        out["managedRoutes"] = Value::Array(managed);
    }
    Some(out)
}

fn blue_green_strategy(value: Value, services: &mut Vec<String>, report: &mut Report) -> Value {
    let path = "spec.strategy.blueGreen";
    let mut bg = Fields::new(value, path, report);
    let mut out = Map::new();
    for key in ["activeService", "previewService"] {
        if let Some(v) = bg.string(key, report) {
            services.push(v.clone());
            out.insert(key.into(), Value::String(v));
        }
    }
    for key in [
        "previewReplicaCount",
        "autoPromotionEnabled",
        "autoPromotionSeconds",
        "scaleDownDelaySeconds",
        "abortScaleDownDelaySeconds",
    ] {
        if let Some(v) = bg.take(key) {
            out.insert(key.into(), v);
        }
    }
    for key in ["prePromotionAnalysis", "postPromotionAnalysis"] {
        if let Some(analysis) = bg.take(key) {
            let apath = format!("{path}.{key}");
            let mut fields = Fields::new(analysis, &apath, report);
            if let Some(refs) = analysis_refs(&mut fields, &apath, report) {
                out.insert(key.into(), refs);
            }
            fields.finish(report, ANALYSIS_UNSUPPORTED);
        }
    }
    bg.finish(report, BLUE_GREEN_UNSUPPORTED);
    Value::Object(out)
}
