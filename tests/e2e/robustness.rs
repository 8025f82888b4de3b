//! Bad input on the real control plane: the API server refuses what is out
//! of bounds, and objects stored before the bounds existed (written here
//! through a briefly loosened CRD, as an older Sluice release would have
//! admitted them) get a clear condition without stopping the controller
//! from serving a healthy Rollout beside them.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt};
use serde_json::{Value, json};
use sluice::crd::{AnalysisPhase, AnalysisRun, AnalysisTemplate, Rollout, RolloutPhase};

use super::harness::{
    CRD_SCHEMA, ControllerProcess, admin_client, apply_value, cluster, http_get,
    install_current_crds, namespace, wait_for,
};
use super::support::*;

const SETTLE: Duration = Duration::from_secs(90);

/// The replica-ratio example as JSON, named `name`, with `steps`.
fn rollout_doc(name: &str, steps: Value) -> Value {
    let text = std::fs::read_to_string(
        super::harness::repo_root().join("examples/replica-ratio/rollout.yaml"),
    )
    .expect("example");
    let mut doc: Value = serde_yaml_ng::from_str(&text).expect("yaml");
    doc["metadata"]["name"] = json!(name);
    doc["spec"]["replicas"] = json!(2);
    doc["spec"]["strategy"]["canary"]["steps"] = steps;
    doc["spec"]["strategy"]["canary"]["scaleDownDelaySeconds"] = json!(2);
    doc
}

/// A server-side dry-run create: the API server's whole admission, nothing stored.
async fn admission(client: &Client, ns: &str, doc: Value) -> Result<(), String> {
    let kind = doc["kind"].as_str().unwrap_or_default().to_string();
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let result = if kind == "Rollout" {
        let object: Rollout = serde_json::from_value(doc).map_err(|e| e.to_string())?;
        Api::<Rollout>::namespaced(client.clone(), ns)
            .create(&params, &object)
            .await
            .map(|_| ())
    } else {
        let object: AnalysisTemplate = serde_json::from_value(doc).map_err(|e| e.to_string())?;
        Api::<AnalysisTemplate>::namespaced(client.clone(), ns)
            .create(&params, &object)
            .await
            .map(|_| ())
    };
    result.map_err(|e| e.to_string())
}

fn template_doc(interval: &str, initial_delay: &str) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "slow"},
        "spec": {"metrics": [{
            "name": "errors",
            "interval": interval,
            "initialDelay": initial_delay,
            "count": 3,
            "provider": {"prometheus": {"address": "http://127.0.0.1:9", "query": "vector(0)"}},
            "successCondition": "result < 0.01"
        }]}
    })
}

#[tokio::test]
async fn durations_counts_and_names_beyond_their_bounds_are_refused_at_admission() {
    let admin = admin_client().await;
    // Relies on the bounds: no test may loosen them meanwhile.
    let _schema = CRD_SCHEMA.read().await;
    install_current_crds(&admin).await;
    let ns = namespace(&admin, "bounds").await;
    let pause = |d: &str| json!([{"setWeight": 10}, {"pause": {"duration": d}}]);
    let refused = [
        (
            rollout_doc("huge-pause", pause("99999999999h")),
            "pause.duration must be at most 720h",
        ),
        (rollout_doc("pause-31d", pause("31d")), "at most 720h"),
        (rollout_doc("pause-721h", pause("720h1s")), "at most 720h"),
        (
            rollout_doc("decimal", pause("1.5h")),
            "duration must look like 30s, 5m or 1h30m",
        ),
        (
            {
                let mut doc = rollout_doc("huge-replicas", pause("1s"));
                doc["spec"]["replicas"] = json!(2147483647);
                doc
            },
            "replicas must be at most 1000000",
        ),
        (
            {
                let mut doc = rollout_doc("huge-deadline", pause("1s"));
                doc["spec"]["progressDeadlineSeconds"] = json!(2147483647);
                doc
            },
            "progressDeadlineSeconds must be at most 2592000",
        ),
        (
            rollout_doc(&"n".repeat(64), pause("1s")),
            "name must be at most 63 characters",
        ),
        (
            template_doc("99999999999h", "0s"),
            "interval must be at most 24h",
        ),
        (
            template_doc("30s", "1d1s"),
            "initialDelay must be at most 24h",
        ),
    ];
    for (doc, message) in refused {
        let name = doc["metadata"]["name"].clone();
        let err = admission(&admin, &ns, doc)
            .await
            .expect_err(&format!("{name} must be refused"));
        assert!(err.contains(message), "{name}: {err}");
    }
    let accepted = [
        rollout_doc("pause-30d", pause("30d")),
        rollout_doc("pause-720h", pause("720h")),
        rollout_doc("pause-mixed", pause("1d12h30m15s250ms")),
        rollout_doc(&"n".repeat(63), pause("5m")),
        template_doc("24h", "1d"),
    ];
    for doc in accepted {
        let name = doc["metadata"]["name"].clone();
        if let Err(err) = admission(&admin, &ns, doc).await {
            panic!("{name} must be admitted: {err}");
        }
    }
}

/// `crd` without the bounds this release added: what an older release installed.
fn loosened(crd: CustomResourceDefinition) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(rules)) = map.get_mut("x-kubernetes-validations") {
                    rules.retain(|r| {
                        let message = r["message"].as_str().unwrap_or_default();
                        !message.contains("at most")
                    });
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(crd).expect("crd json");
    value["metadata"] = json!({"name": value["metadata"]["name"]});
    strip(&mut value);
    value
}

/// Install `crd` (as JSON) with server-side apply.
async fn install_crd(client: &Client, crd: &Value) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd["metadata"]["name"].as_str().expect("name");
    api.patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(crd))
        .await
        .expect("apply CRD");
}

/// Lift the bounds this release added, as an older release's CRDs would.
async fn loosen_crds(client: &Client) {
    for crd in [Rollout::crd(), AnalysisTemplate::crd()] {
        install_crd(client, &loosened(crd)).await;
    }
}

/// Store `doc` once the API server serves the loosened schema (it takes a moment).
async fn store_loosely(client: &Client, ns: &str, doc: Value) {
    wait_for(
        Duration::from_secs(30),
        "the loosened schema admits it",
        || {
            let client = client.clone();
            let doc = doc.clone();
            let ns = ns.to_string();
            async move {
                let admitted = admission(&client, &ns, doc.clone()).await.is_ok();
                if admitted {
                    apply_value(&client, &ns, doc).await;
                }
                admitted.then_some(())
            }
        },
    )
    .await;
}

/// Put the current CRDs back and wait until their bounds hold again.
async fn restore_crds(client: &Client, ns: &str) {
    install_current_crds(client).await;
    wait_for(Duration::from_secs(30), "the bounds are back", || {
        let client = client.clone();
        let ns = ns.to_string();
        async move {
            let doc = rollout_doc("probe", json!([{"pause": {"duration": "99999999999h"}}]));
            admission(&client, &ns, doc).await.is_err().then_some(())
        }
    })
    .await;
}

fn degraded_condition(rollout: &Rollout) -> Option<(String, String)> {
    let status = rollout.status.as_ref()?;
    let condition = status.conditions.iter().find(|c| c.type_ == "Degraded")?;
    (condition.status == "True").then(|| (condition.reason.clone(), condition.message.clone()))
}

#[tokio::test]
async fn a_poisoned_rollout_stored_before_the_bounds_does_not_stop_a_healthy_one() {
    let (admin, ns) = fresh_namespace("poison").await;
    apply_example(&admin, &ns, "replica-ratio/services.yaml", |_| {}).await;
    let long_name = "l".repeat(64);
    let schema = CRD_SCHEMA.write().await;
    loosen_crds(&admin).await;
    let poisoned = rollout_doc(
        "poisoned",
        json!([{"setWeight": 50}, {"pause": {"duration": "99999999999h"}}, {"setWeight": 100}]),
    );
    store_loosely(&admin, &ns, poisoned).await;
    let long = rollout_doc(&long_name, json!([{"setWeight": 50}, {"setWeight": 100}]));
    store_loosely(&admin, &ns, long).await;
    apply_value(
        &admin,
        &ns,
        rollout_doc(
            "healthy",
            json!([{"setWeight": 50}, {"pause": {"duration": "2s"}}, {"setWeight": 100}]),
        ),
    )
    .await;
    let controller = ControllerProcess::start(
        &cluster().info.kubeconfig,
        &ns,
        "poison-1",
        &["--no-leader-election"],
    );
    wait_phase(&admin, &ns, "healthy", RolloutPhase::Healthy, SETTLE).await;
    wait_for(SETTLE, "the poisoned Rollout is looked at", || {
        let admin = admin.clone();
        let ns = ns.clone();
        async move {
            let r = rollout(&admin, &ns, "poisoned").await;
            (r.status?.observed_generation == r.metadata.generation).then_some(())
        }
    })
    .await;
    // A new image reaches the poisoned one while the old schema still admits
    // it (its steps are not ratcheted): its pause is where the controller
    // used to panic (`started + 99999999999h`), on every restart.
    set_image(&admin, &ns, "poisoned", "registry.example.com/api:2.5.0").await;
    restore_crds(&admin, &ns).await;
    drop(schema);
    set_image(&admin, &ns, "healthy", "registry.example.com/api:2.5.0").await;
    let first = rollout(&admin, &ns, "healthy").await;
    let before = first.status.and_then(|s| s.stable_revision);
    wait_for(SETTLE, "the healthy Rollout promotes its canary", || {
        let admin = admin.clone();
        let ns = ns.clone();
        let before = before.clone();
        async move {
            let status = rollout(&admin, &ns, "healthy").await.status?;
            (status.phase == Some(RolloutPhase::Healthy)
                && status.stable_revision != before
                && status.canary_revision.is_none())
            .then_some(())
        }
    })
    .await;
    for (name, expected) in [
        (
            "poisoned",
            "steps[1].pause.duration \"99999999999h\" must be at most 720h",
        ),
        (long_name.as_str(), "longer than 63 characters"),
    ] {
        let stuck = wait_for(SETTLE, &format!("{name} reports InvalidSpec"), || {
            let admin = admin.clone();
            let ns = ns.clone();
            async move { degraded_condition(&rollout(&admin, &ns, name).await) }
        })
        .await;
        assert_eq!(stuck.0, "InvalidSpec", "{name}: {}", stuck.1);
        assert!(stuck.1.contains(expected), "{name}: {}", stuck.1);
        assert!(
            event_reasons(&admin, &ns, name)
                .await
                .iter()
                .any(|r| r == "InvalidSpec"),
            "{name}: an InvalidSpec Event"
        );
    }
    assert!(
        revisions(&admin, &ns, "poisoned").await.is_empty(),
        "nothing is created for the poisoned Rollout"
    );
    let health = http_get(&format!("{}/healthz", controller.http)).await;
    assert_eq!(
        health.map(|(code, _)| code),
        Some(200),
        "the controller is still up:\n{}",
        controller.log_tail()
    );
    assert!(
        !controller.log_tail().contains("panicked"),
        "{}",
        controller.log_tail()
    );
}

#[tokio::test]
async fn an_analysis_stored_with_an_endless_interval_ends_instead_of_stalling() {
    let (admin, ns) = fresh_namespace("endless").await;
    apply_example(&admin, &ns, "replica-ratio/services.yaml", |_| {}).await;
    let schema = CRD_SCHEMA.write().await;
    loosen_crds(&admin).await;
    store_loosely(&admin, &ns, template_doc("99999999999h", "0s")).await;
    restore_crds(&admin, &ns).await;
    drop(schema);
    apply_value(
        &admin,
        &ns,
        rollout_doc(
            "api",
            json!([{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "slow"}]}}, {"setWeight": 100}]),
        ),
    )
    .await;
    let controller = ControllerProcess::start(
        &cluster().info.kubeconfig,
        &ns,
        "endless-1",
        &["--no-leader-election"],
    );
    let first = wait_phase(&admin, &ns, "api", RolloutPhase::Healthy, SETTLE).await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    set_image(&admin, &ns, "api", "registry.example.com/api:2.5.0").await;
    let runs: Api<AnalysisRun> = Api::namespaced(admin.clone(), &ns);
    let run = wait_for(SETTLE, "the AnalysisRun ends", || {
        let runs = runs.clone();
        async move {
            let list = runs.list(&Default::default()).await.ok()?;
            list.items.into_iter().find(|r| {
                r.status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .is_some_and(|p| p.is_finished())
            })
        }
    })
    .await;
    let status = run.status.unwrap_or_default();
    assert_eq!(status.phase, Some(AnalysisPhase::Error));
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains("interval \"99999999999h\" must be at most 24h"),
        "{message}"
    );
    // An Error verdict cannot tell: the Rollout holds for a human
    // (analysisCannotTell: Hold), stable untouched, Git untouched.
    let held = wait_phase(&admin, &ns, "api", RolloutPhase::Paused, SETTLE).await;
    let status = held.status.unwrap_or_default();
    assert_eq!(status.stable_revision, Some(stable));
    assert!(status.abort.is_none(), "an Error never aborts by default");
    drop(controller);
}
