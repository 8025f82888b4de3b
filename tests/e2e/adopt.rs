//! `workloadRef` on the real control plane: a Deployment serving through a
//! Service is adopted by a Rollout while the real Deployment and ReplicaSet
//! controllers (KWOK making pods Ready) do their part, and the Ready pods
//! behind the Service are sampled every 150 ms through the whole of it, a
//! controller restart midway included.
//! The controller runs as deploy/'s ServiceAccount, with exactly its RBAC.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use sluice::crd::{Rollout, RolloutPhase};

use super::harness::{ControllerProcess, wait_for};
use super::support::{apply_example, event_reasons, setup, wait_phase};

const REPLICAS: i32 = 6;
const SETTLE: Duration = Duration::from_secs(120);

/// Pods Ready, not terminating, that the Service `name` selects right now.
async fn serving(client: &Client, ns: &str, name: &str) -> Option<usize> {
    let service = Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .ok()?;
    let selector = service.spec.and_then(|s| s.selector).unwrap_or_default();
    if selector.is_empty() {
        return Some(0);
    }
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&labels.join(",")))
        .await
        .ok()?;
    Some(
        pods.items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count(),
    )
}

/// `spec.replicas` and available pods of a Deployment.
async fn deployment(client: &Client, ns: &str, name: &str) -> (i32, i32) {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .expect("get deployment");
    (
        d.spec.and_then(|s| s.replicas).unwrap_or(1),
        d.status.and_then(|s| s.available_replicas).unwrap_or(0),
    )
}

/// Samples the Service's Ready pods (and what `extra` checks) every 150 ms until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, usize)>,
}

impl Sampler {
    fn start(client: &Client, ns: &str, service: &str) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (client, ns, service, flag) = (
            client.clone(),
            ns.to_string(),
            service.to_string(),
            stop.clone(),
        );
        let task = tokio::spawn(async move {
            let mut lowest = usize::MAX;
            let mut samples = 0;
            while !flag.load(Ordering::SeqCst) {
                if let Some(ready) = serving(&client, &ns, &service).await {
                    lowest = lowest.min(ready);
                    samples += 1;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            (lowest, samples)
        });
        Sampler { stop, task }
    }

    /// The lowest count seen, and how many samples were taken.
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("sampler")
    }
}

/// Scheduling gate on every pod of the adopted template: KWOK makes a pod
/// Ready the moment it is scheduled, far faster than any real pod starts.
const SLOW_START_GATE: &str = "e2e.sluice.dev/slow-start";
/// How long a gated pod waits before [`SlowStart`] lets it be scheduled.
const START_TIME: Duration = Duration::from_millis(700);

/// Plays the slow part of a pod's start: lets one gated pod be scheduled
/// (removes its scheduling gate) every `START_TIME`, until dropped.
struct SlowStart(tokio::task::JoinHandle<()>);

impl SlowStart {
    fn start(client: &Client, ns: &str) -> SlowStart {
        let api = Api::<Pod>::namespaced(client.clone(), ns);
        SlowStart(tokio::spawn(async move {
            loop {
                tokio::time::sleep(START_TIME).await;
                let Ok(pods) = api.list(&ListParams::default()).await else {
                    continue;
                };
                let gated = pods.items.iter().find(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && p.spec
                            .as_ref()
                            .and_then(|s| s.scheduling_gates.as_ref())
                            .is_some_and(|g| !g.is_empty())
                });
                if let Some(name) = gated.and_then(|p| p.metadata.name.clone()) {
                    let patch = json!({"spec": {"schedulingGates": null}});
                    let _ = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await;
                }
            }
        }))
    }
}

impl Drop for SlowStart {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The Deployment (and its Services) from examples/adopt-deployment, all its
/// pods Ready; with `slow_start`, its pods (and so the Rollout's) start one by one.
async fn serving_deployment(admin: &Client, ns: &str, slow_start: bool) {
    apply_example(admin, ns, "adopt-deployment/deployment.yaml", |doc| {
        if slow_start && doc["kind"] == "Deployment" {
            doc["spec"]["template"]["spec"]["schedulingGates"] =
                json!([{ "name": SLOW_START_GATE }]);
        }
    })
    .await;
    wait_for(SETTLE, "the Deployment's pods Ready", || async {
        let (_, available) = deployment(admin, ns, "shop").await;
        let ready = serving(admin, ns, "shop").await?;
        (available == REPLICAS && ready >= REPLICAS as usize).then_some(())
    })
    .await;
}

/// The Rollout from examples/adopt-deployment with `scaleDown` and `stable` as its stable Service.
async fn adopt(admin: &Client, ns: &str, scale_down: &str, stable: &str) {
    apply_example(admin, ns, "adopt-deployment/rollout.yaml", |doc| {
        doc["spec"]["workloadRef"]["scaleDown"] = json!(scale_down);
        doc["spec"]["strategy"]["canary"]["stableService"] = json!(stable);
    })
    .await;
}

#[tokio::test]
async fn a_serving_deployment_is_adopted_progressively_without_a_moment_of_fewer_ready_pods() {
    let (admin, ns, kubeconfig) = setup("adopt-prog").await;
    let mut controller =
        ControllerProcess::start(&kubeconfig, &ns, "adopt", &["--no-leader-election"]);
    let _slow = SlowStart::start(&admin, &ns);
    serving_deployment(&admin, &ns, true).await;
    // The Rollout takes over the very Service users reach (what a Gateway
    // API user names as stableService): Sluice rewrites its selector midway.
    let sampler = Sampler::start(&admin, &ns, "shop");
    let started = Instant::now();
    adopt(&admin, &ns, "progressively", "shop").await;
    let rollouts = Api::<Rollout>::namespaced(admin.clone(), &ns);
    let mut replicas_seen = vec![REPLICAS];
    let deadline = Instant::now() + SETTLE;
    let mut restarted = false;
    let rollout = loop {
        let (replicas, _) = deployment(&admin, &ns, "shop").await;
        if replicas_seen.last() != Some(&replicas) {
            replicas_seen.push(replicas);
        }
        if !restarted && replicas <= REPLICAS / 2 {
            // Killed mid-adoption; a new process picks up from the cluster alone.
            controller.kill();
            tokio::time::sleep(Duration::from_secs(2)).await;
            controller =
                ControllerProcess::start(&kubeconfig, &ns, "adopt-2", &["--no-leader-election"]);
            restarted = true;
        }
        let rollout = rollouts.get("shop").await.expect("get rollout");
        let phase = rollout.status.as_ref().and_then(|s| s.phase);
        if phase == Some(RolloutPhase::Healthy) && replicas == 0 {
            break rollout;
        }
        assert!(
            Instant::now() < deadline,
            "adoption not done: phase {phase:?}, Deployment at {replicas}; log:\n{}",
            controller.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    let took = started.elapsed();
    assert!(restarted, "the controller was restarted mid-adoption");
    let (lowest, samples) = sampler.finish().await;
    eprintln!(
        "progressive adoption of {REPLICAS} pods in {took:?}: lowest Ready behind the Service {lowest}/{REPLICAS} \
         over {samples} samples; Deployment replicas went {replicas_seen:?}"
    );
    assert!(samples >= 10, "too few samples ({samples}) to say anything");
    assert!(
        lowest >= REPLICAS as usize,
        "Ready pods behind the Service dropped to {lowest} (promised {REPLICAS}); log:\n{}",
        controller.log_tail()
    );
    assert!(
        replicas_seen.len() > 2,
        "scaled down in steps, not at once: {replicas_seen:?}"
    );
    let status = rollout.status.clone().unwrap_or_default();
    let stable = status.stable_revision.clone().unwrap_or_default();
    let service = Api::<Service>::namespaced(admin.clone(), &ns)
        .get("shop")
        .await
        .expect("service");
    let selector = service.spec.and_then(|s| s.selector).unwrap_or_default();
    assert_eq!(
        selector.get("sluice.dev/pod-template-hash"),
        Some(&stable),
        "{selector:?}"
    );
    assert_eq!(serving(&admin, &ns, "shop").await, Some(REPLICAS as usize));
    let reasons = event_reasons(&admin, &ns, "shop").await;
    assert!(
        reasons.iter().any(|r| r == "DeploymentScaledDown"),
        "{reasons:?}"
    );

    // `kubectl set image deployment/shop ...`: a canary of the new template.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "shop", "image": "registry.example.com/shop:1.1.0"}]}}}});
    Api::<Deployment>::namespaced(admin.clone(), &ns)
        .patch("shop", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("set image");
    let canary = wait_for(
        SETTLE,
        "a canary of the Deployment's new template",
        || async {
            let rollout = Api::<Rollout>::namespaced(admin.clone(), &ns)
                .get("shop")
                .await
                .ok()?;
            let status = rollout.status?;
            (status.phase == Some(RolloutPhase::Paused))
                .then_some(status)
                .filter(|s| s.canary_revision.is_some())
        },
    )
    .await;
    assert_ne!(canary.canary_revision.as_deref(), Some(stable.as_str()));
    assert_eq!(canary.stable_revision.as_deref(), Some(stable.as_str()));
    assert!(
        canary
            .canary_images
            .iter()
            .any(|i| i.contains("registry.example.com/shop:1.1.0")),
        "{:?}",
        canary.canary_images
    );
    assert_eq!(
        deployment(&admin, &ns, "shop").await.0,
        0,
        "the adopted Deployment stays at 0"
    );
}

#[tokio::test]
async fn onsuccess_keeps_the_deployment_until_the_rollout_is_healthy() {
    let (admin, ns, kubeconfig) = setup("adopt-ok").await;
    let controller = ControllerProcess::start(&kubeconfig, &ns, "adopt", &["--no-leader-election"]);
    let _slow = SlowStart::start(&admin, &ns);
    serving_deployment(&admin, &ns, true).await;
    let sampler = Sampler::start(&admin, &ns, "shop");
    adopt(&admin, &ns, "onsuccess", "shop-stable").await;
    let rollouts = Api::<Rollout>::namespaced(admin.clone(), &ns);
    let deadline = Instant::now() + SETTLE;
    let mut checks = 0;
    loop {
        // Read the Deployment first: if it is scaled down, the Rollout was Healthy before.
        let (replicas, _) = deployment(&admin, &ns, "shop").await;
        let phase = rollouts
            .get("shop")
            .await
            .ok()
            .and_then(|r| r.status)
            .and_then(|s| s.phase);
        if replicas == 0 {
            assert_eq!(phase, Some(RolloutPhase::Healthy));
            break;
        }
        assert_eq!(replicas, REPLICAS, "only 0 once Healthy, nothing between");
        checks += 1;
        assert!(
            Instant::now() < deadline,
            "the Deployment was never scaled down (phase {phase:?}); log:\n{}",
            controller.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let (lowest, samples) = sampler.finish().await;
    eprintln!(
        "onsuccess adoption: Deployment kept {REPLICAS} replicas over {checks} checks until Healthy; \
         lowest Ready behind the Service {lowest}/{REPLICAS} over {samples} samples"
    );
    assert!(checks > 0 && samples >= 5);
    assert!(lowest >= REPLICAS as usize, "dropped to {lowest}");
}

#[tokio::test]
async fn never_leaves_the_deployment_and_a_missing_one_is_a_clear_condition_until_it_exists() {
    let (admin, ns, kubeconfig) = setup("adopt-never").await;
    let controller = ControllerProcess::start(&kubeconfig, &ns, "adopt", &["--no-leader-election"]);
    // The Rollout first: the Deployment it names does not exist yet.
    adopt(&admin, &ns, "never", "shop-stable").await;
    let rollouts = Api::<Rollout>::namespaced(admin.clone(), &ns);
    let degraded = wait_for(SETTLE, "WorkloadRefInvalid condition", || async {
        let status = rollouts.get("shop").await.ok()?.status?;
        status
            .conditions
            .iter()
            .any(|c| c.reason == "WorkloadRefInvalid")
            .then_some(status)
    })
    .await;
    assert_eq!(degraded.phase, Some(RolloutPhase::Degraded));
    let message = degraded.message.unwrap_or_default();
    assert!(
        message.contains(&format!(
            "Deployment \"shop\" not found in namespace \"{ns}\""
        )),
        "{message}"
    );
    let reasons = event_reasons(&admin, &ns, "shop").await;
    assert!(
        reasons.iter().any(|r| r == "WorkloadRefInvalid"),
        "{reasons:?}"
    );
    assert!(
        super::support::revisions(&admin, &ns, "shop")
            .await
            .is_empty(),
        "nothing is created without the Deployment"
    );

    // The Deployment appears (its watch reconciles the Rollout): adopted, and left alone.
    serving_deployment(&admin, &ns, false).await;
    wait_phase(&admin, &ns, "shop", RolloutPhase::Healthy, SETTLE).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        deployment(&admin, &ns, "shop").await,
        (REPLICAS, REPLICAS),
        "scaleDown: never leaves the Deployment as it is; log:\n{}",
        controller.log_tail()
    );
    let revisions = super::support::revisions(&admin, &ns, "shop").await;
    assert_eq!(revisions.len(), 1, "{revisions:?}");
    assert_eq!(revisions[0].2, REPLICAS, "{revisions:?}");
    // `shop` spans both; `shop-stable` was pointed at the Rollout's revision.
    assert_eq!(
        serving(&admin, &ns, "shop").await,
        Some(2 * REPLICAS as usize)
    );
    assert_eq!(
        serving(&admin, &ns, "shop-stable").await,
        Some(REPLICAS as usize)
    );
}
