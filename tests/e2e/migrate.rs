//! `sluice migrate` output on the real control plane: every converted test
//! manifest passes a server-side dry run (the CRDs' schemas and CEL rules,
//! the Gateway API CRDs), and a converted Argo canary runs to Healthy under
//! the controller.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use sluice::crd::RolloutPhase;

use super::harness::{ControllerProcess, apply_yaml, cluster, repo_root};
use super::support::*;

/// `sluice migrate` on `file` (or stdin text), as a user runs it: stdout and exit status.
fn migrate(file: &Path, stdin: Option<&str>) -> (String, Option<i32>) {
    use std::io::Write;
    let arg = if stdin.is_some() {
        "-".into()
    } else {
        file.display().to_string()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["migrate", "-q", &arg])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("run sluice migrate");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .expect("stdin");
    }
    let out = child.wait_with_output().expect("sluice migrate");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

fn documents(yaml: &str) -> Vec<serde_json::Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .filter(|v: &serde_json::Value| !v.is_null())
        .collect()
}

/// Server-side apply `value` into `namespace` as a dry run: the API server validates, nothing is stored.
async fn dry_run(
    client: &Client,
    namespace: &str,
    mut value: serde_json::Value,
) -> Result<(), String> {
    let object: DynamicObject = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let types = object.types.clone().ok_or("no apiVersion/kind")?;
    let gvk = GroupVersionKind::try_from(&types).map_err(|e| e.to_string())?;
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| e.to_string())?;
    let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
        value["metadata"]["namespace"] = namespace.into();
        Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    let object: DynamicObject = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let name = object.metadata.name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply("e2e-migrate").dry_run(),
        &Patch::Apply(&object),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn every_converted_manifest_passes_a_server_side_dry_run() {
    let (admin, ns) = fresh_namespace("migrate-dry").await;
    let dir = repo_root().join("tests/migrate");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/migrate")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut accepted = 0;
    for file in &files {
        let (yaml, status) = migrate(file, None);
        // Every fixture but the GRPCRoute one has findings (exit status 3).
        let clean = file.ends_with("argo-grpc-canary.yaml");
        assert_eq!(
            status,
            Some(if clean { 0 } else { 3 }),
            "{}: findings decide the exit status",
            file.display()
        );
        for doc in documents(&yaml) {
            let what = format!(
                "{}: {} {}",
                file.display(),
                doc["kind"].as_str().unwrap_or("?"),
                doc["metadata"]["name"].as_str().unwrap_or("?")
            );
            let result = dry_run(&admin, &ns, doc).await;
            if file.ends_with("flagger-none.yaml") && what.contains("Rollout") {
                // Its Deployment was not among the inputs: reported, and the API server agrees.
                let err = result.expect_err("an incomplete Rollout is refused");
                assert!(
                    err.contains("selector") || err.contains("template"),
                    "{what}: {err}"
                );
                continue;
            }
            result.unwrap_or_else(|e| panic!("{what}: refused: {e}"));
            accepted += 1;
        }
    }
    // Every document of every fixture's output but the one incomplete Rollout
    // (the Deployment an Argo workloadRef names among them).
    assert_eq!(accepted, 21, "objects accepted");
}

#[tokio::test]
async fn a_converted_argo_canary_runs_to_healthy_under_sluice() {
    // Only notes (status, the Services' selectors): a clean conversion.
    run_converted_canary(
        "argo-canary-run.yaml",
        Some(0),
        ("web", "web-canary", "registry.example.com/web:1.0.1"),
    )
    .await;
}

#[tokio::test]
async fn a_converted_flagger_canary_runs_to_healthy_under_sluice() {
    // Status 3: Flagger's apex Service has no counterpart (reported).
    run_converted_canary(
        "flagger-canary-run.yaml",
        Some(3),
        ("shop", "shop-canary", "registry.example.com/shop:1.0.1"),
    )
    .await;
}

/// Convert `tests/migrate/e2e/<fixture>`, apply it, and carry a new image
/// (`rollout`, its canary Service, the image) through the converted steps
/// (weights 25 and 50) and analysis to Healthy.
async fn run_converted_canary(
    fixture: &str,
    expected_status: Option<i32>,
    (name, canary_service, image): (&str, &str, &str),
) {
    let prometheus = cluster()
        .info
        .prometheus
        .clone()
        .expect("stack runs Prometheus");
    let source = std::fs::read_to_string(repo_root().join("tests/migrate/e2e").join(fixture))
        .expect("fixture")
        .replace("PROMETHEUS_ADDRESS", &prometheus);
    let (yaml, status) = migrate(Path::new("-"), Some(&source));
    assert_eq!(status, expected_status, "{yaml}");

    let (admin, ns, kubeconfig) = setup("migrate-run").await;
    let controller =
        ControllerProcess::start(&kubeconfig, &ns, "migrate", &["--no-leader-election"]);
    apply_yaml(&admin, &ns, &yaml).await;
    let first = wait_phase(
        &admin,
        &ns,
        name,
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");

    set_image(&admin, &ns, name, image).await;
    // The route's canary weight, every 100 ms, until the new version is stable.
    let mut weights: Vec<i64> = Vec::new();
    let started = std::time::Instant::now();
    loop {
        if let Some(w) = route_canary_weight(&admin, &ns, name, canary_service).await
            && weights.last() != Some(&w)
        {
            weights.push(w);
        }
        let status = rollout(&admin, &ns, name).await.status.unwrap_or_default();
        if status.phase == Some(RolloutPhase::Healthy)
            && status.stable_revision.as_ref() != Some(&stable)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no promotion; weights {weights:?}\n{}",
            controller.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        weights,
        // No setWeight: 100 step: promotion takes the canary weight straight back to 0.
        vec![0, 25, 50, 0],
        "the converted steps' weights on the HTTPRoute\n{}",
        controller.log_tail()
    );
    let reasons = event_reasons(&admin, &ns, name).await;
    for reason in ["StepCompleted", "Promoted"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "Event {reason} missing: {reasons:?}\n{}",
            controller.log_tail()
        );
    }
    // The analysis measured against the real Prometheus and passed.
    let runs: Api<sluice::crd::AnalysisRun> = Api::namespaced(admin.clone(), &ns);
    let runs = runs.list(&Default::default()).await.expect("runs");
    assert!(
        runs.items
            .iter()
            .any(|r| r.status.as_ref().and_then(|s| s.phase)
                == Some(sluice::crd::AnalysisPhase::Successful)),
        "no successful AnalysisRun\n{}",
        controller.log_tail()
    );
    assert_eq!(
        route_canary_weight(&admin, &ns, name, canary_service).await,
        Some(0)
    );
}
