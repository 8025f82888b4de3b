//! Traffic never reaches the wrong pods (issue #17), on the real control
//! plane: a GitOps re-apply of Services that still carry a selector, with
//! the controller stopped and running, during a canary and a blue-green
//! preview; two Rollouts naming the same Service; a deleted canary Service;
//! replica-ratio weights on few replicas.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use sluice::crd::{Rollout, RolloutPhase};
use sluice::engine::controls;

use super::blue_green::{error_ratio_template, rollout_doc};
use super::harness::{ControllerProcess, cluster, wait_for};
use super::rbac::service_account_kubeconfig;
use super::support::*;
use super::traffic_support::*;

#[tokio::test]
async fn a_gitops_reapply_never_puts_two_revisions_behind_a_canary_service() {
    let (admin, ns) = fresh_namespace("safety-canary").await;
    install_selector_policy(&admin, &ns).await;
    let kubeconfig = service_account_kubeconfig(&admin, &ns).await;
    let mut rollout_manifest: serde_json::Value =
        serde_yaml_ng::from_str(&example("gateway-canary", "rollout.yaml")).expect("yaml");
    speed_up(&mut rollout_manifest);
    rollout_manifest["spec"]["strategy"]["canary"]["steps"] =
        json!([{"setWeight": 25}, {"pause": {}}]);
    let gitops = GitOps::start(
        &ns,
        &[
            ("services.yaml", services_with_selector("gateway-canary")),
            (
                "httproute.yaml",
                example("gateway-canary", "httproute.yaml"),
            ),
            ("rollout.yaml", yaml(&rollout_manifest)),
            ("config.yaml", config("v1")),
        ],
    );
    let args = ["--no-leader-election"];
    let mut controller = ControllerProcess::start(&kubeconfig, &ns, "safety-canary", &args);
    let first = wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    gitops.bump("rollout.yaml", "web:1.0.0", "web:1.0.1", "web 1.0.1");
    let paused = wait_phase(&admin, &ns, "web", RolloutPhase::Paused, SETTLE).await;
    let canary = paused
        .status
        .and_then(|s| s.canary_revision)
        .expect("canary");
    let monitor = SelectionMonitor::start(&admin, &ns, &["web-stable", "web-canary"]);
    monitor.forbid("web-stable", &canary);

    // Controller down: the re-apply is refused by the admission policy.
    controller.kill();
    resync(&gitops, &admin, &ns, "v1", "v2").await;
    assert_eq!(
        selected_hash(&admin, &ns, "web-stable").await,
        Some(stable.clone())
    );
    assert_eq!(
        selected_hash(&admin, &ns, "web-canary").await,
        Some(canary.clone())
    );
    // Controller up: the same again, and the canary goes on.
    let _controller = ControllerProcess::start(&kubeconfig, &ns, "safety-canary-2", &args);
    resync(&gitops, &admin, &ns, "v2", "v3").await;
    let violations = monitor.stop();
    assert!(violations.is_empty(), "{violations:#?}");
    // Promotion: the stable Service moves to the canary, one revision at a time.
    let monitor = SelectionMonitor::start(&admin, &ns, &["web-stable", "web-canary"]);
    annotate(&admin, &ns, "web", controls::PROMOTE, "p1").await;
    let done = wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    assert_eq!(done.status.and_then(|s| s.stable_revision), Some(canary));

    let violations = monitor.stop();
    assert!(violations.is_empty(), "{violations:#?}");
    let output = gitops.sync_output();
    assert!(
        output.contains("SLUICE_GITOPS_REFUSED") && output.contains("is set by Sluice"),
        "the GitOps tool sees why: {output}"
    );
}

#[tokio::test]
async fn a_gitops_reapply_and_the_revert_sync_never_switch_a_failed_blue_green_preview() {
    let info = &cluster().info;
    let prometheus = info.prometheus.clone().expect("prometheus");
    let (admin, ns) = fresh_namespace("safety-bg").await;
    install_selector_policy(&admin, &ns).await;
    let kubeconfig = service_account_kubeconfig(&admin, &ns).await;
    let workspace = info.data_dir.join(format!("git-workspace-{ns}"));
    let workspace_arg = workspace.display().to_string();
    let _controller = ControllerProcess::start(
        &kubeconfig,
        &ns,
        "safety-bg",
        &["--no-leader-election", "--git-workspace", &workspace_arg],
    );
    let mut manifest = rollout_doc(json!("error-ratio"), json!(null));
    manifest["spec"]["git"] = json!({"repositoryRef": {"name": "apps"}, "path": "apps/web"});
    let bare = info.data_dir.join(format!("git-{ns}")).join("apps.git");
    let repository = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "GitRepository",
        "metadata": {"name": "apps"},
        "spec": {"url": bare.display().to_string(), "branch": "main",
                 "author": {"name": "Sluice", "email": "sluice@example.com"}}
    });
    let gitops = GitOps::start(
        &ns,
        &[
            ("services.yaml", services_with_selector("blue-green")),
            ("httproute.yaml", example("blue-green", "httproute.yaml")),
            ("repository.yaml", yaml(&repository)),
            ("analysis.yaml", yaml(&error_ratio_template(&prometheus))),
            ("rollout.yaml", yaml(&manifest)),
            ("config.yaml", config("v1")),
        ],
    );
    let first = wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    let _traffic = start_trafficgen_with(
        &ns,
        200,
        &["--smoke-service", "web-preview", "--smoke-rps", "100"],
    );
    let monitor = SelectionMonitor::start(&admin, &ns, &["web-active", "web-preview"]);
    gitops.bump("rollout.yaml", "web:1.0.0", "web:1.0.1-err10", "web 1.0.1");
    let preview = wait_for(SETTLE, "preview selects the new version", || {
        let (admin, ns, stable) = (admin.clone(), ns.clone(), stable.clone());
        async move {
            selected_hash(&admin, &ns, "web-preview")
                .await
                .filter(|h| *h != stable)
        }
    })
    .await;
    monitor.forbid("web-active", &preview);
    // A re-apply during the preview.
    resync(&gitops, &admin, &ns, "v1", "v2").await;
    // The analysis fails; Sluice reverts the commit and the sync applies the revert.
    wait_reverted_home(&admin, &ns, &stable, Duration::from_secs(150)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let violations = monitor.stop();
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(selected_hash(&admin, &ns, "web-active").await, Some(stable));
    assert!(
        gitops.sync_output().contains("SLUICE_GITOPS_REFUSED"),
        "the re-applies were refused"
    );
}

/// The gateway example rolled out, then `web:1.0.1` held by a pause at 25%.
async fn canary_held_at_25(admin: &Client, ns: &str) -> Rollout {
    for file in ["services.yaml", "httproute.yaml"] {
        apply_example(admin, ns, &format!("gateway-canary/{file}"), |_| {}).await;
    }
    apply_example(admin, ns, "gateway-canary/rollout.yaml", |doc| {
        speed_up(doc);
        doc["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 25}, {"pause": {}}]);
    })
    .await;
    wait_phase(admin, ns, "web", RolloutPhase::Healthy, SETTLE).await;
    set_image(admin, ns, "web", "registry.example.com/web:1.0.1").await;
    wait_phase(admin, ns, "web", RolloutPhase::Paused, SETTLE).await
}

#[tokio::test]
async fn without_the_policy_a_reset_selector_is_repaired_on_the_service_event() {
    let (admin, ns, kubeconfig) = setup("safety-watch").await;
    let _controller =
        ControllerProcess::start(&kubeconfig, &ns, "safety-watch", &["--no-leader-election"]);
    let paused = canary_held_at_25(&admin, &ns).await;
    let stable = paused
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    // Let the reconciles that follow the Paused status settle: the next
    // periodic one is then more than 10 s away.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // What a GitOps tool's server-side apply of a Service with a selector does.
    let services: Api<Service> = Api::namespaced(admin.clone(), &ns);
    let manifest = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-stable"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
    services
        .patch(
            "web-stable",
            &PatchParams::apply("argocd-controller").force(),
            &Patch::Apply(&manifest),
        )
        .await
        .expect("re-apply");
    let started = Instant::now();
    // Well before the next periodic reconcile: the Service event triggers the repair.
    wait_for(Duration::from_secs(4), "selector repaired", || {
        let (admin, ns, stable) = (admin.clone(), ns.clone(), stable.clone());
        async move {
            (selected_hash(&admin, &ns, "web-stable").await == Some(stable)).then_some(())
        }
    })
    .await;
    eprintln!(
        "selector repaired {:?} after the re-apply",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_second_rollout_naming_the_same_services_and_route_is_refused() {
    let (admin, ns, kubeconfig) = setup("safety-shared").await;
    let _controller =
        ControllerProcess::start(&kubeconfig, &ns, "safety-shared", &["--no-leader-election"]);
    for file in ["services.yaml", "httproute.yaml", "rollout.yaml"] {
        apply_example(&admin, &ns, &format!("gateway-canary/{file}"), speed_up).await;
    }
    let first = wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    // Another team copies the manifest for its own application.
    apply_example(&admin, &ns, "gateway-canary/rollout.yaml", |doc| {
        speed_up(doc);
        doc["metadata"]["name"] = json!("shop");
        doc["spec"]["selector"]["matchLabels"]["app"] = json!("shop");
        doc["spec"]["template"]["metadata"]["labels"]["app"] = json!("shop");
        doc["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!("registry.example.com/shop:3.0.0");
    })
    .await;
    let refused = wait_phase(&admin, &ns, "shop", RolloutPhase::Degraded, SETTLE).await;
    let status = refused.status.expect("status");
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("Degraded condition");
    assert_eq!(degraded.reason, "ReferenceConflict");
    assert!(
        degraded
            .message
            .contains("routes traffic for Rollout \"web\""),
        "{}",
        degraded.message
    );
    wait_for(Duration::from_secs(30), "ReferenceConflict Event", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            event_reasons(&admin, &ns, "shop")
                .await
                .iter()
                .any(|r| r == "ReferenceConflict")
                .then_some(())
        }
    })
    .await;
    // Give a wrong write time to happen; none may.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        revisions(&admin, &ns, "shop").await.is_empty(),
        "shop wrote nothing"
    );
    for service in ["web-stable", "web-canary"] {
        assert_eq!(
            selected_hash(&admin, &ns, service).await,
            Some(stable.clone())
        );
    }
    let web = rollout(&admin, &ns, "web").await;
    assert_eq!(
        web.status.and_then(|s| s.phase),
        Some(RolloutPhase::Healthy)
    );
}

#[tokio::test]
async fn a_deleted_canary_service_takes_the_canary_weight_to_zero_at_once() {
    let (admin, ns, kubeconfig) = setup("safety-missing").await;
    let _controller = ControllerProcess::start(
        &kubeconfig,
        &ns,
        "safety-missing",
        &["--no-leader-election"],
    );
    canary_held_at_25(&admin, &ns).await;
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-canary").await,
        Some(25)
    );
    let services: Api<Service> = Api::namespaced(admin.clone(), &ns);
    services
        .delete("web-canary", &DeleteParams::default())
        .await
        .expect("delete");
    let started = Instant::now();
    // Well inside the 60 s re-check of an invalid spec: the deletion itself triggers it.
    wait_for(Duration::from_secs(10), "canary weight 0", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            (route_canary_weight(&admin, &ns, "web", "web-canary").await == Some(0)).then_some(())
        }
    })
    .await;
    eprintln!("canary weight 0 {:?} after the deletion", started.elapsed());
    let degraded = wait_phase(&admin, &ns, "web", RolloutPhase::Degraded, SETTLE).await;
    let message = degraded.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains("\"web-canary\" not found") && message.contains("weight is set to 0"),
        "{message}"
    );
    // The Service comes back: the canary gets its weight again.
    apply_example(&admin, &ns, "gateway-canary/services.yaml", |_| {}).await;
    wait_for(SETTLE, "canary weight back to 25", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            (route_canary_weight(&admin, &ns, "web", "web-canary").await == Some(25)).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn replica_ratio_never_takes_stable_below_its_share() {
    let (admin, ns, kubeconfig) = setup("safety-ratio").await;
    let _controller =
        ControllerProcess::start(&kubeconfig, &ns, "safety-ratio", &["--no-leader-election"]);
    apply_example(&admin, &ns, "replica-ratio/services.yaml", |_| {}).await;
    let with = |replicas: i32, tag: &'static str| {
        move |doc: &mut serde_json::Value| {
            doc["spec"]["replicas"] = json!(replicas);
            doc["spec"]["template"]["spec"]["containers"][0]["image"] =
                json!(format!("registry.example.com/api:{tag}"));
            doc["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 10}, {"pause": {}}]);
        }
    };
    apply_example(&admin, &ns, "replica-ratio/rollout.yaml", with(4, "2.4.0")).await;
    let first = wait_phase(&admin, &ns, "api", RolloutPhase::Healthy, SETTLE).await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    set_image(&admin, &ns, "api", "registry.example.com/api:2.5.0").await;
    let paused = wait_phase(&admin, &ns, "api", RolloutPhase::Paused, SETTLE).await;
    let status = paused.status.expect("status");
    let canary = status.canary_revision.clone().expect("canary");
    let mut revs = revisions(&admin, &ns, "api").await;
    revs.sort();
    let mut expected = vec![(stable.clone(), 4, 4), (canary, 1, 1)];
    expected.sort();
    assert_eq!(
        revs, expected,
        "stable keeps all 4 pods at 10%; the canary pod is the surge"
    );
    assert_eq!(status.current_weight, 20, "the share the pods really give");
    // One replica: 10% cannot be honoured; refused, nothing scaled.
    apply_example(&admin, &ns, "replica-ratio/rollout.yaml", with(1, "2.5.0")).await;
    let refused = wait_phase(&admin, &ns, "api", RolloutPhase::Degraded, SETTLE).await;
    let message = refused.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains("setWeight 10 cannot be honoured with 1 replicas"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        revisions(&admin, &ns, "api")
            .await
            .iter()
            .any(|(h, desired, _)| *h == stable && *desired == 4),
        "stable is not scaled away"
    );
}
