//! `sluice rollout restart` on the real control plane: the controller, as
//! deploy/'s ServiceAccount with exactly its RBAC, evicts every pod through
//! the Eviction API while the real ReplicaSet controller recreates them (KWOK
//! makes them Ready); a PodDisruptionBudget that allows nothing holds it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use serde_json::json;
use sluice::crd::{Rollout, RolloutPhase};

use super::harness::{ControllerProcess, apply_value, cluster};
use super::rbac::service_account_kubeconfig;
use super::support::{
    apply_example, event_reasons, fresh_namespace, revisions, speed_up, wait_phase,
};

const REPLICAS: usize = 4;
const SETTLE: Duration = Duration::from_secs(90);

/// Live pods (not terminating) of the Rollout: (name, ready).
async fn live_pods(client: &Client, ns: &str) -> Vec<(String, bool)> {
    let api = Api::<Pod>::namespaced(client.clone(), ns);
    let pods = api
        .list(&ListParams::default().labels("app=api"))
        .await
        .expect("list pods");
    pods.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let ready = p
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            (p.metadata.name.unwrap_or_default(), ready)
        })
        .collect()
}

/// The fewest Ready pods seen while a restart runs, sampled every 150 ms.
struct ReadyWatch {
    lowest: usize,
    observations: usize,
}

impl Default for ReadyWatch {
    fn default() -> Self {
        ReadyWatch {
            lowest: REPLICAS,
            observations: 0,
        }
    }
}

impl ReadyWatch {
    /// One sample; fails the test when more than one pod is not Ready.
    async fn sample(&mut self, client: &Client, ns: &str) -> Vec<(String, bool)> {
        let pods = live_pods(client, ns).await;
        let ready = pods.iter().filter(|(_, r)| *r).count();
        self.lowest = self.lowest.min(ready);
        self.observations += 1;
        assert!(
            ready + 1 >= REPLICAS,
            "Ready pods dropped to {ready} of {REPLICAS}: {pods:?}"
        );
        pods
    }

    /// Sample until `status.restartedAt` is set; returns it.
    async fn until_restarted(
        &mut self,
        client: &Client,
        ns: &str,
        controller: &ControllerProcess,
    ) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
        let rollouts = Api::<Rollout>::namespaced(client.clone(), ns);
        let deadline = Instant::now() + Duration::from_secs(150);
        loop {
            self.sample(client, ns).await;
            let rollout = rollouts.get("api").await.expect("get rollout");
            if let Some(at) = rollout.status.as_ref().and_then(|s| s.restarted_at.clone()) {
                return at;
            }
            assert!(
                Instant::now() < deadline,
                "restart not done: {:?}; log:\n{}",
                rollout.status.and_then(|s| s.restart_progress),
                controller.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

/// A Healthy Rollout `api` of [`REPLICAS`] pods under a controller running
/// as deploy/'s ServiceAccount; returns the controller and the kubeconfig.
async fn healthy_rollout(
    admin: &Client,
    ns: &str,
    identity: &str,
) -> (ControllerProcess, std::path::PathBuf) {
    let kubeconfig = service_account_kubeconfig(admin, identity).await;
    let controller = ControllerProcess::start(&kubeconfig, ns, identity, &["--no-leader-election"]);
    apply_example(admin, ns, "replica-ratio/services.yaml", |_| {}).await;
    apply_example(admin, ns, "replica-ratio/rollout.yaml", |doc| {
        speed_up(doc);
        doc["spec"]["replicas"] = json!(REPLICAS);
        doc["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 50}, {"pause": {}}]);
    })
    .await;
    wait_phase(admin, ns, "api", RolloutPhase::Healthy, SETTLE).await;
    (controller, kubeconfig)
}

/// Names of the live pods of the Rollout.
async fn pod_names(client: &Client, ns: &str) -> BTreeSet<String> {
    live_pods(client, ns)
        .await
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// All [`REPLICAS`] pods are there and none of them is one of `original`.
async fn assert_every_pod_replaced(client: &Client, ns: &str, original: &BTreeSet<String>) {
    let now = pod_names(client, ns).await;
    assert_eq!(now.len(), REPLICAS, "{now:?}");
    assert!(
        now.is_disjoint(original),
        "every pod replaced: before {original:?}, after {now:?}"
    );
}

fn sluice(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("KUBECONFIG", &cluster().info.kubeconfig)
        .output()
        .expect("run sluice");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

#[tokio::test]
async fn restart_replaces_every_pod_without_a_new_revision_and_keeps_availability() {
    let (admin, ns) = fresh_namespace("restart").await;
    let (controller, _) = healthy_rollout(&admin, &ns, "restart").await;
    let healthy = wait_phase(&admin, &ns, "api", RolloutPhase::Healthy, SETTLE).await;
    let stable = healthy.status.and_then(|s| s.stable_revision);
    let replica_sets = |list: Vec<(String, i32, i32)>| -> Vec<(String, i32)> {
        list.into_iter()
            .map(|(hash, spec, _)| (hash, spec))
            .collect()
    };
    let revisions_before = replica_sets(revisions(&admin, &ns, "api").await);
    let original = pod_names(&admin, &ns).await;
    assert_eq!(original.len(), REPLICAS, "{original:?}");

    // A budget that allows no disruption: evictions are refused (429), never forced.
    let pdb = json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "api"},
        "spec": {"minAvailable": REPLICAS, "selector": {"matchLabels": {"app": "api"}}},
    });
    apply_value(&admin, &ns, pdb).await;
    let said = sluice(&["rollout", "restart", "api", "-n", &ns]);
    assert!(said.contains("restart requested now"), "{said}");
    let blocked_until = Instant::now() + Duration::from_secs(60);
    loop {
        if event_reasons(&admin, &ns, "api")
            .await
            .iter()
            .any(|r| r == "RestartBlocked")
        {
            break;
        }
        assert!(
            Instant::now() < blocked_until,
            "no RestartBlocked Event under a PDB that allows nothing; log:\n{}",
            controller.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let still = pod_names(&admin, &ns).await;
    assert_eq!(still, original, "a refused eviction must leave the pods");

    // The budget goes: the restart proceeds. Watch every moment of it.
    Api::<PodDisruptionBudget>::namespaced(admin.clone(), &ns)
        .delete("api", &DeleteParams::default())
        .await
        .expect("delete pdb");
    let rollouts = Api::<Rollout>::namespaced(admin.clone(), &ns);
    let mut watch = ReadyWatch::default();
    let restarted_at = watch.until_restarted(&admin, &ns, &controller).await;
    let lowest_ready = watch.lowest;
    let observations = watch.observations;
    let rollout = rollouts.get("api").await.expect("get rollout");
    assert_eq!(rollout.spec.restart_at, Some(restarted_at.clone()));
    assert_every_pod_replaced(&admin, &ns, &original).await;
    assert_eq!(
        replica_sets(revisions(&admin, &ns, "api").await),
        revisions_before,
        "no new ReplicaSet or revision"
    );
    let status = rollout.status.unwrap_or_default();
    assert_eq!(status.stable_revision, stable);
    assert_eq!(status.canary_revision, None);
    let reasons = event_reasons(&admin, &ns, "api").await;
    assert!(
        reasons.iter().filter(|r| *r == "PodRestarted").count() >= REPLICAS,
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r == "RestartDone"), "{reasons:?}");
    // The CLI wrote spec.restartAt under its own field manager.
    let managers: Vec<String> = rollout
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.to_string().contains("f:restartAt"))
        })
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["sluice-cli"]);
    wait_phase(&admin, &ns, "api", RolloutPhase::Healthy, SETTLE).await;
    eprintln!(
        "restart of {REPLICAS} pods: lowest Ready {lowest_ready}/{REPLICAS} over {observations} observations"
    );
}

/// The controller is SIGKILLed right after its first eviction and a new one
/// takes over: the restart finishes, every pod is replaced once, and no
/// moment has more than one pod missing, before, during or after the crash.
#[tokio::test]
async fn a_restart_interrupted_by_a_controller_crash_finishes_without_losing_capacity() {
    let (admin, ns) = fresh_namespace("restart-kill").await;
    let (mut controller, kubeconfig) = healthy_rollout(&admin, &ns, "restart-kill").await;
    let original = pod_names(&admin, &ns).await;
    sluice(&["rollout", "restart", "api", "-n", &ns]);
    let mut watch = ReadyWatch::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = watch.sample(&admin, &ns).await;
        if pods.iter().any(|(name, _)| !original.contains(name)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no pod was evicted; log:\n{}",
            controller.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    controller.kill();
    // Down for a while: the replacement becomes Ready, nothing else moves.
    for _ in 0..20 {
        watch.sample(&admin, &ns).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let successor = ControllerProcess::start(
        &kubeconfig,
        &ns,
        "restart-kill-2",
        &["--no-leader-election"],
    );
    watch.until_restarted(&admin, &ns, &successor).await;
    assert_every_pod_replaced(&admin, &ns, &original).await;
    // Replaced once: no pod the restart created was evicted again.
    let restarted = event_reasons(&admin, &ns, "api")
        .await
        .iter()
        .filter(|r| *r == "PodRestarted")
        .count();
    assert!(restarted >= REPLICAS, "{restarted} PodRestarted Events");
    eprintln!(
        "restart across a controller kill: lowest Ready {}/{REPLICAS} over {} observations, {restarted} PodRestarted Events",
        watch.lowest, watch.observations
    );
}
