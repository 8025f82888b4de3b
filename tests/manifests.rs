//! Every manifest we ship parses and validates (examples, deploy, CRDs), and
//! the binary says which version and commit it is.
//!
//! Rollouts must survive a round trip through the Rust types unchanged (a
//! misspelled field would otherwise be pruned silently by the API server) and
//! pass the engine's own validation.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;
use sluice::crd::Rollout;

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// Drop nulls so that a round trip compares what was written.
fn without_nulls(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(without_nulls).collect())
        }
        other => other,
    }
}

fn check_rollout(path: &Path, doc: &Value) {
    let mut rollout: Rollout = round_trip(path, doc);
    rollout.metadata.namespace = Some("demo".into());
    if let Err(problems) = sluice::engine::spec::settings(&rollout) {
        panic!("{}: invalid Rollout: {problems:?}", path.display());
    }
}

/// `doc` parses as `T` and nothing is lost on the way back (a misspelled field would be).
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(path: &Path, doc: &Value) -> T {
    let as_json: serde_json::Value = serde_json::to_value(doc).unwrap_or_default();
    let parsed: T = serde_json::from_value(as_json.clone())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let back = without_nulls(serde_json::to_value(&parsed).unwrap_or_default());
    assert_eq!(
        back,
        without_nulls(as_json),
        "{}: fields lost in a round trip (misspelled?)",
        path.display()
    );
    parsed
}

#[test]
fn examples_parse_and_rollouts_are_valid() {
    let files = yaml_files("examples");
    assert!(files.len() >= 5, "examples missing: {files:?}");
    let mut rollouts = 0;
    for path in &files {
        for doc in documents(path) {
            assert!(
                doc.get("apiVersion").is_some() && doc.get("kind").is_some(),
                "{}: not a Kubernetes object",
                path.display()
            );
            match doc.get("kind").and_then(Value::as_str) {
                Some("Rollout") => {
                    check_rollout(path, &doc);
                    rollouts += 1;
                }
                Some("AlertTarget") => {
                    round_trip::<sluice::crd::AlertTarget>(path, &doc);
                }
                Some("ClusterAlertTarget") => {
                    round_trip::<sluice::crd::ClusterAlertTarget>(path, &doc);
                }
                _ => {}
            }
        }
    }
    assert!(
        rollouts >= 2,
        "expected a gateway and a replica-ratio Rollout"
    );
}

#[test]
fn gateway_example_routes_reference_the_rollout_services() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gateway-canary");
    let route = documents(&dir.join("httproute.yaml")).remove(0);
    let names: Vec<&str> = route["spec"]["rules"][0]["backendRefs"]
        .as_sequence()
        .map(|refs| refs.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["web-stable", "web-canary"]);
}

#[test]
fn deploy_manifests_parse_and_run_hardened() {
    let files = yaml_files("deploy");
    let mut kinds = Vec::new();
    for path in &files {
        for doc in documents(path) {
            let kind = doc
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if kind == "Deployment" {
                let json = serde_json::to_value(&doc).unwrap_or_default();
                let deployment: k8s_openapi::api::apps::v1::Deployment =
                    serde_json::from_value(json)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let pod = deployment
                    .spec
                    .and_then(|s| s.template.spec)
                    .expect("pod spec");
                assert_eq!(
                    pod.security_context.and_then(|s| s.run_as_non_root),
                    Some(true)
                );
                let container = &pod.containers[0];
                let security = container
                    .security_context
                    .clone()
                    .expect("container securityContext");
                assert_eq!(security.read_only_root_filesystem, Some(true));
                assert_eq!(security.allow_privilege_escalation, Some(false));
            }
            kinds.push(kind);
        }
    }
    for wanted in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Kustomization",
    ] {
        assert!(
            kinds.iter().any(|k| k == wanted),
            "deploy/ lacks a {wanted}: {kinds:?}"
        );
    }
}

#[test]
fn checked_in_crds_match_the_rust_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for (file, crd) in sluice::crd::all_crds() {
        let expected = sluice::crd::render_crd(&crd).expect("render");
        let actual = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            actual == expected,
            "crds/{file} drifted from the Rust types: run `cargo run --bin crdgen`"
        );
    }
}

#[test]
fn rollout_crd_carries_admission_rules() {
    let crd = serde_json::to_string(&sluice::crd::all_crds()[0].1).unwrap_or_default();
    for rule in [
        "setWeight must be between 0 and 100",
        "exactly one strategy",
        "duration must look like",
        "each step sets exactly one",
    ] {
        assert!(crd.contains(rule), "CEL rule missing: {rule}");
    }
}

/// Every `format` in the CRD schemas is one the API server knows; an unknown one
/// (schemars writes `uint32` for `u32`) makes `kubectl apply` print a warning.
#[test]
fn crd_schemas_use_only_formats_kubernetes_knows() {
    const KNOWN: &[&str] = &[
        "int32",
        "int64",
        "float",
        "double",
        "byte",
        "date",
        "date-time",
        "password",
        "int-or-string",
        "duration",
        "uri",
        "email",
        "hostname",
        "ipv4",
        "ipv6",
        "cidr",
        "mac",
        "uuid",
        "binary",
    ];
    fn walk(value: &serde_json::Value, path: &str, bad: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(format)) = map.get("format")
                    && !KNOWN.contains(&format.as_str())
                {
                    bad.push(format!("{path}: {format}"));
                }
                for (key, child) in map {
                    walk(child, &format!("{path}.{key}"), bad);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{path}[{i}]"), bad);
                }
            }
            _ => {}
        }
    }
    let mut bad = Vec::new();
    for (name, crd) in sluice::crd::all_crds() {
        let json = serde_json::to_value(&crd).expect("crd json");
        walk(&json, name, &mut bad);
    }
    assert!(bad.is_empty(), "unknown formats: {bad:?}");
}

/// Every ready-made template parses as its kind and every metric passes the
/// checks the controller makes before measuring (durations, conditions, queries).
#[test]
fn analysis_templates_are_valid() {
    let files = yaml_files("analysis-templates");
    assert!(files.len() >= 3, "{files:?}");
    for path in files {
        for doc in documents(&path) {
            let json = without_nulls(serde_json::to_value(&doc).expect("json"));
            let spec: sluice::crd::AnalysisTemplateSpec = match json["kind"].as_str() {
                Some("ClusterAnalysisTemplate") => {
                    serde_json::from_value::<sluice::crd::ClusterAnalysisTemplate>(json.clone())
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                        .spec
                        .into()
                }
                Some("AnalysisTemplate") => {
                    serde_json::from_value::<sluice::crd::AnalysisTemplate>(json.clone())
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                        .spec
                }
                other => panic!("{}: unexpected kind {other:?}", path.display()),
            };
            for metric in &spec.metrics {
                sluice::analysis::run::plan_metric("t", metric)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
    }
}

#[test]
fn the_service_selector_policy_exempts_exactly_the_controllers_service_account() {
    let policy = documents(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/service-selector-policy.yaml"),
    );
    let account =
        documents(&Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/base/serviceaccount.yaml"))
            .into_iter()
            .find(|d| d["kind"].as_str() == Some("ServiceAccount"))
            .expect("ServiceAccount");
    let username = format!(
        "system:serviceaccount:{}:{}",
        account["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default(),
        account["metadata"]["name"].as_str().unwrap_or_default()
    );
    let kinds: Vec<&str> = policy.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding"
        ]
    );
    let json = serde_json::to_value(&policy[0]).unwrap_or_default();
    let parsed: k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy =
        serde_json::from_value(json).expect("a ValidatingAdmissionPolicy");
    let conditions = parsed
        .spec
        .and_then(|s| s.match_conditions)
        .unwrap_or_default();
    assert!(
        conditions.iter().any(|c| c.expression.contains(&username)),
        "the policy must exempt {username}: {conditions:?}"
    );
    assert!(
        conditions.iter().any(|c| c
            .expression
            .contains(sluice::engine::claims::SERVICE_CLAIM_LABEL)),
        "the policy keys on the claim label"
    );
}

#[test]
fn version_prints_the_cargo_version_and_the_commit_it_was_built_from() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--version")
        .output()
        .expect("run sluice --version");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = format!("sluice {} (", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&expected), "{text}");
    // Built in a Git checkout (as here and in CI): a hexadecimal commit, not `unknown`.
    let commit = text
        .trim()
        .trim_start_matches(&expected)
        .trim_end_matches(')');
    assert!(
        commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{text}"
    );
}
