//! `sluice migrate` on Argo Rollouts and Flagger manifests written in each
//! tool's documented format (`tests/migrate/`): what each converts to, that
//! the result is a valid Sluice object, that every field left out is
//! reported, that docs/migrating.md claims nothing the tests do not cover,
//! and the exit statuses of the binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use sluice::migrate::{Input, Outcome, Severity, migrate};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/migrate")
}

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .expect("tests/migrate")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    files
}

fn convert(name: &str) -> Outcome {
    let text = std::fs::read_to_string(fixture_dir().join(name)).expect("fixture");
    convert_text(name, &text)
}

/// Convert `text` as one input file called `name`.
fn convert_text(name: &str, text: &str) -> Outcome {
    migrate(&[Input {
        name: name.into(),
        text: text.into(),
    }])
    .expect("converts")
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("output is YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {docs:#?}"))
}

/// `document|path|severity` of every finding.
fn findings(outcome: &Outcome) -> Vec<String> {
    outcome
        .findings
        .iter()
        .map(|f| {
            format!(
                "{}|{}|{}",
                f.document,
                f.finding.path,
                match f.finding.severity {
                    Severity::Note => "note",
                    Severity::Attention => "attention",
                    Severity::Dropped => "dropped",
                }
            )
        })
        .collect()
}

/// Every field a fixture holds that Sluice cannot carry over is reported, and nothing else.
#[test]
fn each_fixture_reports_exactly_the_fields_it_cannot_carry_over() {
    let expected: &[(&str, &[&str])] = &[
        (
            "argo-analysis-template.yaml",
            &[
                "1|spec.args[3].valueFrom.fieldRef|dropped",
                "1|spec.metrics[0].provider.prometheus.insecure|dropped",
                "1|spec.metrics[1].count|attention",
                "1|spec.metrics[1].successCondition|attention",
                "1|spec.metrics[1].provider.web|dropped",
                "1|spec.metrics[2].successCondition|dropped",
                "1|spec.dryRun|dropped",
                "1|spec.measurementRetention|dropped",
            ],
        ),
        (
            "argo-blue-green.yaml",
            &[
                "2|status|note",
                "2|spec.strategy.blueGreen.previewMetadata|dropped",
                "2|spec.strategy.blueGreen.scaleDownDelayRevisionLimit|dropped",
            ],
        ),
        (
            "argo-canary.yaml",
            &[
                "1|metadata.annotations.rollout.argoproj.io/revision|note",
                "1|spec.strategy.canary.steps[2].analysis.args[0].valueFrom|dropped",
                "1|spec.strategy.canary.steps[4].setCanaryScale|dropped",
                "1|spec.strategy.canary.steps[7].setHeaderRoute.match[1].headerValue.prefix|note",
                "1|spec.strategy.canary.antiAffinity|dropped",
                "1|spec.minReadySeconds|dropped",
                "1||note",
                "2|spec.selector|note",
                "3|spec.selector|note",
            ],
        ),
        (
            "argo-cluster-analysis-template.yaml",
            &[
                "1|spec.metrics[0].successCondition|attention",
                "1|spec.metrics[0].provider.prometheus.headers|dropped",
            ],
        ),
        (
            "flagger-alert-providers.yaml",
            &[
                "1|spec.channel|dropped",
                "1|spec.username|dropped",
                "1|spec.secretRef|attention",
                "2|spec.proxy|dropped",
                "2|spec.address|attention",
                "3|spec.type|dropped",
            ],
        ),
        (
            "flagger-blue-green.yaml",
            &[
                "2|spec.targetRef|note",
                "2|spec.analysis.webhooks[0] (confirm-promotion)|dropped",
            ],
        ),
        (
            "flagger-gateway.yaml",
            &[
                "2|spec.targetRef|note",
                "2|spec.service.retries|dropped",
                "2|spec.analysis.metrics[0] (query of MetricTemplate error-rate)|attention",
                "2|spec.analysis.metrics[2]|dropped",
                "2|spec.analysis.webhooks[0] (rollout)|dropped",
                "2|spec.autoscalerRef|dropped",
                "2|spec.service|attention",
                "3|spec.query|attention",
                "4|spec.provider.secretRef|dropped",
                "4|spec.provider.insecureSkipVerify|dropped",
            ],
        ),
        (
            "flagger-none.yaml",
            &[
                "1|spec.targetRef|attention",
                "1||attention",
                "1|spec.analysis.metrics[0].query|dropped",
            ],
        ),
    ];
    for (file, want) in expected {
        let outcome = convert(file);
        let mut got = findings(&outcome);
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        got.sort();
        want.sort();
        pretty_assertions::assert_eq!(got, want, "{file}");
        assert!(outcome.needs_attention(), "{file}");
    }
}

/// Every converted Rollout passes the controller's own spec checks, every
/// template metric the checks made before measuring (conditions in Argo's
/// forms aside: another change teaches Sluice those), every AlertTarget its type.
#[test]
fn converted_objects_are_valid_sluice_objects() {
    for path in fixtures() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let outcome = convert(name);
        for doc in documents(&outcome.yaml) {
            if doc["apiVersion"] != sluice::crd::API_VERSION {
                continue;
            }
            match doc["kind"].as_str() {
                Some("Rollout") if name != "flagger-none.yaml" => {
                    let mut rollout: sluice::crd::Rollout =
                        serde_json::from_value(doc.clone()).expect("a Sluice Rollout");
                    rollout.metadata.namespace.get_or_insert("demo".into());
                    if let Err(problems) = sluice::engine::spec::settings(&rollout) {
                        panic!("{name}: {problems:?}");
                    }
                }
                Some("Rollout") => {
                    // No Deployment among its inputs: reported, and not a full Rollout.
                    let rollout: Result<sluice::crd::Rollout, _> =
                        serde_json::from_value(doc.clone());
                    let problems = rollout
                        .map(|r| sluice::engine::spec::settings(&r).err().unwrap_or_default())
                        .unwrap_or_else(|e| vec![e.to_string()]);
                    assert!(!problems.is_empty(), "{name}: a Rollout without a template");
                }
                Some("AnalysisTemplate" | "ClusterAnalysisTemplate") => {
                    let spec: sluice::crd::AnalysisTemplateSpec =
                        serde_json::from_value(doc["spec"].clone()).expect("template spec");
                    for metric in &spec.metrics {
                        let argo_forms = [
                            metric.success_condition.as_deref(),
                            metric.failure_condition.as_deref(),
                        ]
                        .into_iter()
                        .flatten()
                        .any(|c| c.contains('[') || c.contains("len(") || c.contains("all("));
                        if let Err(err) = sluice::analysis::run::plan_metric("t", metric)
                            && !argo_forms
                        {
                            panic!("{name}: {err}");
                        }
                    }
                }
                Some("AlertTarget") => {
                    serde_json::from_value::<sluice::crd::AlertTarget>(doc.clone())
                        .expect("an AlertTarget");
                }
                other => panic!("{name}: unexpected Sluice kind {other:?}"),
            }
        }
    }
}

#[test]
fn an_argo_grpc_canary_drives_its_grpc_route() {
    let outcome = convert("argo-grpc-canary.yaml");
    let docs = documents(&outcome.yaml);
    let canary = &find(&docs, "Rollout", "orders")["spec"]["strategy"]["canary"];
    assert_eq!(
        canary["trafficRouting"],
        json!({"gatewayAPI": {"grpcRoute": "orders"}})
    );
    assert_eq!(
        canary["steps"],
        json!([{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {"duration": "5m"}}])
    );
    // Everything in it has a Sluice counterpart: nothing to report.
    assert!(outcome.findings.is_empty(), "{:#?}", outcome.findings);
    assert!(!outcome.needs_attention());
}

#[test]
fn an_argo_canary_keeps_its_steps_routing_and_analysis() {
    let outcome = convert("argo-canary.yaml");
    let docs = documents(&outcome.yaml);
    let rollout = find(&docs, "Rollout", "web");
    assert_eq!(rollout["apiVersion"], "sluice.dev/v1alpha1");
    assert_eq!(rollout["metadata"]["annotations"], json!({"team": "web"}));
    let spec = &rollout["spec"];
    assert_eq!(spec["replicas"], 4);
    assert_eq!(spec["revisionHistoryLimit"], 5);
    assert_eq!(spec["progressDeadlineSeconds"], 300);
    assert_eq!(spec["abortOnProgressDeadline"], true);
    let canary = &spec["strategy"]["canary"];
    assert_eq!(
        canary["steps"],
        json!([
            {"setWeight": 10},
            {"pause": {"duration": "30s"}},
            {"analysis": {"templates": [{"templateName": "latency", "clusterScope": true}]}},
            {"setWeight": 50},
            {"pause": {"duration": "1m"}},
            {"pause": {}},
            {"setHeaderRoute": {"name": "testers", "match": [
                {"headerName": "x-canary", "headerValue": {"exact": "internal"}},
                {"headerName": "x-team", "headerValue": {"regex": "^web\\-"}},
            ]}},
            {"setMirrorRoute": {"name": "shadow", "percentage": 20, "match": [
                {"method": {"exact": "GET"}, "path": {"prefix": "/api"}},
                {"headers": {"x-shadow": {"exact": "1"}}},
            ]}},
            {"setHeaderRoute": {"name": "testers"}},
            {"setMirrorRoute": {"name": "shadow"}},
            {"setWeight": 100},
        ])
    );
    assert_eq!(
        canary["trafficRouting"],
        json!({"gatewayAPI": {"httpRoute": "web", "namespace": "shop"},
               "managedRoutes": [{"name": "testers"}, {"name": "shadow"}]})
    );
    assert_eq!(
        canary["analysis"],
        json!({"templates": [{"templateName": "error-rate"}], "args": [{"name": "service-name", "value": "web-canary"}], "startingStep": 2})
    );
    for (key, value) in [
        ("stableService", json!("web-stable")),
        ("canaryService", json!("web-canary")),
        ("maxSurge", json!("25%")),
        ("maxUnavailable", json!(0)),
        ("scaleDownDelaySeconds", json!(30)),
        ("abortScaleDownDelaySeconds", json!(30)),
    ] {
        assert_eq!(canary[key], value, "{key}");
    }
    // The Services it names lose their selector; the route passes byte for byte, comment and all.
    for service in ["web-stable", "web-canary"] {
        let s = find(&docs, "Service", service);
        assert!(s["spec"]["selector"].is_null(), "{s}");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 8080);
    }
    assert!(outcome.yaml.starts_with(
        "---\n# The web shop front end: a canary on the Gateway API plugin.\n# Owned by team-web.\napiVersion: sluice.dev/v1alpha1\n"
    ));
    let source = std::fs::read_to_string(fixture_dir().join("argo-canary.yaml")).expect("fixture");
    let route = source.split("---\n").last().expect("route document");
    assert!(outcome.yaml.ends_with(route), "{}", outcome.yaml);
}

#[test]
fn an_argo_blue_green_from_a_workload_ref_keeps_the_reference_and_the_deployment() {
    let docs = documents(&convert("argo-blue-green.yaml").yaml);
    assert_eq!(docs.len(), 2, "the Deployment stays: {docs:#?}");
    let deployment = find(&docs, "Deployment", "checkout");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/checkout:2.0.0",
        "printed as written"
    );
    let rollout = find(&docs, "Rollout", "checkout");
    assert_eq!(rollout["metadata"]["namespace"], "shop");
    assert_eq!(rollout["spec"]["replicas"], 3);
    assert_eq!(
        rollout["spec"]["workloadRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout", "scaleDown": "onsuccess"}),
        "Argo's field carries over as is"
    );
    assert!(rollout["spec"].get("template").is_none());
    assert!(rollout["spec"].get("selector").is_none());
    let bg = &rollout["spec"]["strategy"]["blueGreen"];
    for (key, value) in [
        ("activeService", json!("checkout-active")),
        ("previewService", json!("checkout-preview")),
        ("previewReplicaCount", json!(1)),
        ("autoPromotionEnabled", json!(false)),
        ("autoPromotionSeconds", json!(30)),
        ("scaleDownDelaySeconds", json!(60)),
        ("abortScaleDownDelaySeconds", json!(30)),
    ] {
        assert_eq!(bg[key], value, "{key}");
    }
    assert_eq!(
        bg["prePromotionAnalysis"],
        json!({"templates": [{"templateName": "error-rate"}], "args": [{"name": "service-name", "value": "checkout-preview"}]})
    );
    assert_eq!(
        bg["postPromotionAnalysis"]["args"][0]["value"],
        "checkout-active"
    );
    assert!(rollout.get("status").is_none());
}

#[test]
fn argo_analysis_templates_keep_prometheus_metrics_and_leave_out_the_rest() {
    let docs = documents(&convert("argo-analysis-template.yaml").yaml);
    let template = find(&docs, "AnalysisTemplate", "error-rate");
    assert_eq!(
        template["spec"]["args"],
        json!([
            {"name": "service-name"},
            {"name": "prometheus-port", "value": "9090"},
            {"name": "api-token", "valueFrom": {"secretKeyRef": {"name": "prometheus-token", "key": "token"}}},
            {"name": "pod-namespace"},
        ])
    );
    let metrics = template["spec"]["metrics"].as_array().expect("metrics");
    assert_eq!(
        metrics.len(),
        2,
        "the web metric is left out, the job metric kept"
    );
    // Argo's job provider has Sluice's spelling: labels, annotations and the JobSpec as written.
    let smoke = &metrics[1];
    assert_eq!(smoke["name"], "smoke-test");
    assert_eq!(
        smoke["count"], 1,
        "Argo runs a Job metric without interval once"
    );
    assert!(
        smoke.get("successCondition").is_none(),
        "judged by the Job's outcome"
    );
    assert_eq!(
        smoke["provider"]["job"]["metadata"],
        json!({"labels": {"team": "checkout"}, "annotations": {"owner": "{{args.service-name}}"}})
    );
    assert_eq!(smoke["provider"]["job"]["spec"]["backoffLimit"], 1);
    assert_eq!(
        smoke["provider"]["job"]["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["run-smoke-test", "http://{{args.service-name}}"])
    );
    let m = &metrics[0];
    for (key, value) in [
        ("interval", json!("1m")),
        ("initialDelay", json!("30s")),
        ("count", json!(5)),
        ("failureLimit", json!(1)),
        ("inconclusiveLimit", json!(2)),
        ("consecutiveErrorLimit", json!(3)),
        (
            "successCondition",
            json!("len(result) == 0 || result[0] < 0.05"),
        ),
        ("failureCondition", json!("result[0] >= 0.1")),
    ] {
        assert_eq!(m[key], value, "{key}");
    }
    let prom = &m["provider"]["prometheus"];
    assert_eq!(
        prom["address"],
        "http://prometheus.monitoring:{{args.prometheus-port}}"
    );
    assert_eq!(prom["timeout"], "20s");
    assert!(
        prom["query"]
            .as_str()
            .unwrap_or("")
            .contains("{{args.service-name}}")
    );

    let docs = documents(&convert("argo-cluster-analysis-template.yaml").yaml);
    let cluster = find(&docs, "ClusterAnalysisTemplate", "latency");
    assert_eq!(cluster["spec"]["metrics"][0]["count"], 10);
    assert!(cluster["metadata"].get("namespace").is_none());
}

#[test]
fn a_dry_run_list_marks_metrics_by_name_or_all() {
    let text = "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: t}\nspec:\n  dryRun: [{metricName: '.*'}]\n  metrics:\n    - {name: a, count: 1, successCondition: result < 1, provider: {prometheus: {address: 'http://p:9090', query: up}}}\n";
    let outcome = convert_text("t", text);
    assert!(!outcome.needs_attention(), "{:?}", outcome.findings);
    let docs = documents(&outcome.yaml);
    assert_eq!(docs[0]["spec"]["metrics"][0]["dryRun"], true);
}

#[test]
fn a_flagger_gateway_canary_becomes_a_rollout_its_services_route_and_template() {
    let docs = documents(&convert("flagger-gateway.yaml").yaml);
    let kinds: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap_or(""),
                d["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "Rollout/podinfo",
            "AnalysisTemplate/podinfo-metrics",
            "Service/podinfo-primary",
            "Service/podinfo-canary",
            "HTTPRoute/podinfo",
        ],
        "the Deployment and MetricTemplates are folded in"
    );
    let rollout = find(&docs, "Rollout", "podinfo");
    assert_eq!(rollout["metadata"]["namespace"], "test");
    assert_eq!(rollout["spec"]["replicas"], 2);
    assert_eq!(rollout["spec"]["progressDeadlineSeconds"], 60);
    let canary = &rollout["spec"]["strategy"]["canary"];
    let weights: Vec<i64> = canary["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["setWeight"].as_i64())
        .collect();
    assert_eq!(weights, [10, 20, 30, 40, 50]);
    assert_eq!(canary["steps"][1], json!({"pause": {"duration": "1m"}}));
    assert_eq!(canary["stableService"], "podinfo-primary");
    assert_eq!(canary["canaryService"], "podinfo-canary");
    assert_eq!(
        canary["trafficRouting"]["gatewayAPI"]["httpRoute"],
        "podinfo"
    );
    assert_eq!(
        canary["analysis"]["templates"][0]["templateName"],
        "podinfo-metrics"
    );
    assert_eq!(
        rollout["spec"]["alerts"]["subscriptions"][0],
        json!({"target": "on-call", "events": ["aborted", "revertFailed"]})
    );
    assert_eq!(
        rollout["spec"]["alerts"]["subscriptions"][1]["events"]
            .as_array()
            .map(Vec::len),
        Some(8)
    );

    let template = find(&docs, "AnalysisTemplate", "podinfo-metrics");
    assert_eq!(
        template["spec"]["args"],
        json!([{"name": "quantile", "value": "0.99"}, {"name": "service", "value": "podinfo"}])
    );
    let metrics = template["spec"]["metrics"].as_array().expect("metrics");
    assert_eq!(metrics.len(), 2, "the built-in metric is left out");
    assert_eq!(metrics[0]["successCondition"], "result <= 1");
    assert_eq!(
        metrics[1]["successCondition"],
        "result >= 0 && result <= 500"
    );
    for m in metrics {
        assert_eq!(m["failureLimit"], 4, "threshold 5");
        assert_eq!(m["count"], 5, "one check per weight");
        assert_eq!(m["interval"], "1m");
        assert_eq!(
            m["provider"]["prometheus"]["address"],
            "http://prometheus.istio-system:9090"
        );
    }
    let query = metrics[0]["provider"]["prometheus"]["query"]
        .as_str()
        .unwrap_or("");
    assert!(
        query.contains("destination_workload_namespace=\"{{args.namespace}}\""),
        "{query}"
    );
    assert!(
        query.contains("destination_workload=\"{{args.rollout}}\""),
        "{query}"
    );
    assert!(query.contains("[{{interval}}]"), "{query}");
    assert!(!query.contains("{{ "), "{query}");
    let latency = metrics[1]["provider"]["prometheus"]["query"]
        .as_str()
        .unwrap_or("");
    assert!(
        latency.starts_with("histogram_quantile({{args.quantile}},"),
        "{latency}"
    );

    let route = find(&docs, "HTTPRoute", "podinfo");
    assert_eq!(
        route["spec"]["parentRefs"],
        json!([{"name": "gateway", "namespace": "istio-ingress"}])
    );
    assert_eq!(route["spec"]["hostnames"], json!(["podinfo.example.com"]));
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"],
        json!([
            {"name": "podinfo-primary", "port": 9898, "weight": 100},
            {"name": "podinfo-canary", "port": 9898, "weight": 0},
        ])
    );
    let service = find(&docs, "Service", "podinfo-canary");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http", "port": 9898, "targetPort": 9898}])
    );
    assert!(service["spec"]["selector"].is_null());
}

#[test]
fn flagger_iterations_without_weights_become_blue_green() {
    let docs = documents(&convert("flagger-blue-green.yaml").yaml);
    let rollout = find(&docs, "Rollout", "api");
    assert_eq!(
        rollout["spec"]["strategy"]["blueGreen"],
        json!({"activeService": "api", "previewService": "api-canary"})
    );
    assert_eq!(
        find(&docs, "Service", "api")["spec"]["ports"][0]["targetPort"],
        8080
    );
    find(&docs, "Service", "api-canary");
}

#[test]
fn a_flagger_canary_without_a_provider_splits_by_pods() {
    let docs = documents(&convert("flagger-none.yaml").yaml);
    let rollout = find(&docs, "Rollout", "worker");
    let canary = &rollout["spec"]["strategy"]["canary"];
    let weights: Vec<i64> = canary["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["setWeight"].as_i64())
        .collect();
    assert_eq!(weights, [5, 20, 60]);
    assert!(canary.get("trafficRouting").is_none());
    find(&docs, "Service", "worker-svc");
}

#[test]
fn flagger_alert_providers_become_alert_targets() {
    let docs = documents(&convert("flagger-alert-providers.yaml").yaml);
    assert_eq!(
        find(&docs, "AlertTarget", "on-call")["spec"],
        json!({"type": "Slack", "secretName": "on-call-url"})
    );
    assert_eq!(
        find(&docs, "AlertTarget", "dev-team")["spec"],
        json!({"type": "Teams", "secretName": "dev-team-alert-url"})
    );
    let secret = find(&docs, "Secret", "dev-team-alert-url");
    assert_eq!(
        secret["stringData"]["url"],
        "https://example.webhook.office.com/webhookb2/abc"
    );
    assert_eq!(secret["metadata"]["namespace"], "test");
    assert!(
        docs.iter().all(|d| d["metadata"]["name"] != "chat"),
        "discord is left out"
    );
}

#[test]
fn a_flagger_metric_template_alone_takes_its_range_as_arguments() {
    let text =
        std::fs::read_to_string(fixture_dir().join("flagger-gateway.yaml")).expect("fixture");
    let only_template = text.split("---\n").last().expect("last document");
    let outcome = convert_text("t", only_template);
    let docs = documents(&outcome.yaml);
    let template = find(&docs, "AnalysisTemplate", "latency");
    assert_eq!(
        template["spec"]["args"],
        json!([{"name": "min"}, {"name": "max"}, {"name": "quantile"}, {"name": "service"}])
    );
    assert_eq!(
        template["spec"]["metrics"][0]["successCondition"],
        "result >= {{args.min}} && result <= {{args.max}}"
    );
}

#[test]
fn an_unknown_field_is_reported_never_dropped_silently() {
    let text = "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: w}\nspec:\n  selector: {matchLabels: {app: w}}\n  template:\n    metadata: {labels: {app: w}}\n    spec:\n      containers: [{name: w, image: w:1, bogusField: 1}]\n  strategy:\n    canary:\n      steps: [{setWeight: 10}, {fancyStep: {}}]\n      shinyNewOption: true\n";
    let outcome = convert_text("in.yaml", text);
    let got = findings(&outcome);
    for path in [
        "1|spec.strategy.canary.steps[1].fancyStep|dropped",
        "1|spec.strategy.canary.shinyNewOption|dropped",
        "1|spec.template.spec.containers[0].bogusField|dropped",
    ] {
        assert!(got.contains(&path.to_string()), "{path} not in {got:?}");
    }
    let line = outcome.findings[0].to_string();
    assert!(
        line.starts_with("in.yaml: document 1 (Rollout/w): "),
        "{line}"
    );
}

#[test]
fn a_clean_argo_rollout_converts_without_findings() {
    let text = "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: w}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: w}}\n  template:\n    metadata: {labels: {app: w}}\n    spec:\n      containers: [{name: w, image: w:1}]\n  strategy:\n    canary:\n      steps: [{setWeight: 50}, {pause: {duration: 10}}]\n";
    let outcome = convert_text("in.yaml", text);
    assert!(outcome.findings.is_empty(), "{:?}", outcome.findings);
    assert!(outcome.yaml.contains("duration: 10s"), "{}", outcome.yaml);
}

// ---- docs/migrating.md ----

/// (heading fragment, kinds) of each table in docs/migrating.md.
const SECTIONS: &[(&str, &[&str])] = &[
    ("Argo Rollouts `Rollout`", &["argoproj.io:Rollout"]),
    (
        "Argo Rollouts `AnalysisTemplate`",
        &[
            "argoproj.io:AnalysisTemplate",
            "argoproj.io:ClusterAnalysisTemplate",
        ],
    ),
    ("Flagger `Canary`", &["flagger.app:Canary"]),
    ("Flagger `MetricTemplate`", &["flagger.app:MetricTemplate"]),
    ("Flagger `AlertProvider`", &["flagger.app:AlertProvider"]),
];

/// Concrete paths (`spec.metrics[1].provider.web`) where `segments` exist in `value`.
fn resolve(value: &Value, segments: &[&str], prefix: String, out: &mut Vec<String>) {
    let Some((first, rest)) = segments.split_first() else {
        out.push(prefix);
        return;
    };
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match first.strip_suffix("[]") {
        Some(key) => {
            for (i, item) in value[key].as_array().into_iter().flatten().enumerate() {
                resolve(item, rest, format!("{}[{i}]", join(key)), out);
            }
        }
        None => {
            if value.get(first).is_some_and(|v| !v.is_null()) {
                resolve(&value[*first], rest, join(first), out);
            }
        }
    }
}

/// Every field the tables say is carried over appears in a fixture, and every
/// field they say is not carried over is reported wherever a fixture has it.
#[test]
fn the_migration_tables_match_the_fixtures_and_the_reports() {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/migrating.md"))
            .expect("docs/migrating.md");
    // Every fixture document with its findings.
    let mut sources: Vec<(String, Value, Vec<String>)> = Vec::new();
    for path in fixtures() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let text = std::fs::read_to_string(&path).expect("fixture");
        let outcome = convert(&name);
        for (i, doc) in documents(&text).into_iter().enumerate() {
            let api = doc["apiVersion"]
                .as_str()
                .unwrap_or("")
                .split('/')
                .next()
                .unwrap_or("")
                .to_string();
            let kind = format!("{api}:{}", doc["kind"].as_str().unwrap_or(""));
            let reported = outcome
                .findings
                .iter()
                .filter(|f| f.document == i + 1)
                .map(|f| f.finding.path.clone())
                .collect();
            sources.push((kind, doc, reported));
        }
    }
    let mut section: Option<&[&str]> = None;
    let (mut carried, mut unsupported) = (0, 0);
    for line in guide.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = SECTIONS
                .iter()
                .find(|(h, _)| heading.contains(h))
                .map(|(_, k)| *k);
            continue;
        }
        let Some(kinds) = section else { continue };
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let field = cells[1]
            .trim_start_matches('`')
            .split('`')
            .next()
            .unwrap_or("");
        let field = if field.starts_with("strategy.") {
            format!("spec.{field}")
        } else {
            field.to_string()
        };
        let segments: Vec<&str> = field.split('.').collect();
        // The plugin's name has a dot-free slash; nothing else needs care.
        let mut found = Vec::new();
        for (kind, doc, reported) in &sources {
            if !kinds.contains(&kind.as_str()) {
                continue;
            }
            let mut paths = Vec::new();
            resolve(doc, &segments, String::new(), &mut paths);
            found.extend(paths.into_iter().map(|p| (p, reported)));
        }
        if cells[2] == "—" {
            unsupported += 1;
            for (path, reported) in &found {
                assert!(
                    reported.iter().any(|r| r.starts_with(path.as_str())),
                    "{field}: the guide says it is not carried over, but {path} is not reported ({reported:?})"
                );
            }
        } else {
            carried += 1;
            assert!(
                !found.is_empty(),
                "{field}: the guide says it is carried over, but no fixture has it"
            );
        }
    }
    assert!(
        carried >= 70 && unsupported >= 30,
        "tables parsed: {carried} carried, {unsupported} not"
    );
}

// ---- the binary ----

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(SLUICE)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sluice");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .expect("stdin");
    }
    child.wait_with_output().expect("sluice output")
}

#[test]
fn the_binary_reads_stdin_and_exits_3_when_something_was_left_out() {
    let text = std::fs::read_to_string(fixture_dir().join("argo-canary.yaml")).expect("fixture");
    let out = run(&["migrate", "-"], Some(&text));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "-: document 1 (Rollout/web): spec.strategy.canary.antiAffinity: not carried over: "
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("4 finding(s) need attention (exit status 3)"),
        "{stderr}"
    );
    let docs = documents(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(docs.len(), 4);

    // -q hides the notes, not the rest.
    let quiet = run(&["migrate", "-q", "tests/migrate/argo-canary.yaml"], None);
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(!stderr.contains(": note: "), "{stderr}");
    assert!(stderr.contains("not carried over"), "{stderr}");
}

#[test]
fn the_binary_exits_0_on_a_clean_conversion_and_1_on_bad_yaml() {
    let clean = "apiVersion: argoproj.io/v1alpha1\nkind: ClusterAnalysisTemplate\nmetadata: {name: t}\nspec:\n  metrics:\n    - {name: a, interval: 30, count: 3, failureCondition: result > 1, provider: {prometheus: {address: 'http://p:9090', query: up}}}\n";
    let out = run(&["migrate", "-"], Some(clean));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("interval: 30s"));

    let bad = run(
        &["migrate", "tests/migrate/argo-canary.yaml", "-"],
        Some("a: 1\n---\nb: [unclosed\n"),
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(bad.stdout.is_empty(), "nothing is printed for a bad input");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("-: document 2:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let missing = run(&["migrate", "no-such-file.yaml"], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read no-such-file.yaml"));
}

#[test]
fn migrate_help_ends_with_examples() {
    let out = run(&["migrate", "--help"], None);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Exit status: 0 converted cleanly, 3"),
        "{help}"
    );
    assert!(
        help.trim_end()
            .lines()
            .rev()
            .take(5)
            .any(|l| l.contains("sluice migrate")),
        "{help}"
    );
    assert!(help.contains("Examples:"), "{help}");
}
