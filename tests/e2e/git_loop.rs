//! The whole GitOps loop on the real control plane: CI pushes a bad image to
//! a Git branch, the sync loop applies it, the analysis fails the canary,
//! Sluice puts traffic back on stable and reverts the commit in Git, and the
//! sync loop brings the Rollout home.

use std::time::Duration;

use serde_json::json;
use sluice::crd::RolloutPhase;

use super::analysis::error_rate_template;
use super::harness::{ControllerProcess, admin_client, cluster, ensure_crds, namespace, repo_root};
use super::rbac::service_account_kubeconfig;
use super::support::*;

fn yaml(value: &serde_json::Value) -> String {
    serde_yaml_ng::to_string(value).expect("yaml")
}

#[tokio::test]
async fn an_analysis_abort_reverts_the_image_commit_and_git_brings_the_rollout_home() {
    let info = &cluster().info;
    let prometheus = info.prometheus.clone().expect("prometheus");
    let admin = admin_client().await;
    ensure_crds(&admin).await;
    let ns = namespace(&admin, "gitloop").await;
    let kubeconfig = service_account_kubeconfig(&admin, &ns).await;
    let git_workspace = info.data_dir.join(format!("git-workspace-{ns}"));
    let workspace_arg = git_workspace.display().to_string();
    let controller = ControllerProcess::start(
        &kubeconfig,
        &ns,
        "gitloop",
        &["--no-leader-election", "--git-workspace", &workspace_arg],
    );

    // The GitOps repository: the gateway example, an analysis step, and spec.git.
    let example = |file: &str| {
        std::fs::read_to_string(repo_root().join("examples/gateway-canary").join(file))
            .expect("example")
    };
    let mut manifest: serde_json::Value =
        serde_yaml_ng::from_str(&example("rollout.yaml")).expect("yaml");
    speed_up(&mut manifest);
    manifest["spec"]["strategy"]["canary"]["steps"] = json!([
        {"setWeight": 25},
        {"analysis": {"templates": [{"templateName": "error-rate"}]}},
        {"setWeight": 100}
    ]);
    // The repository is a shared GitRepository the Rollout references.
    manifest["spec"]["git"] = json!({"repositoryRef": {"name": "apps"}, "path": "apps/web"});
    let bare_path = info.data_dir.join(format!("git-{ns}")).join("apps.git");
    let bare = bare_path.display().to_string();
    let repository = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "GitRepository",
        "metadata": {"name": "apps"},
        "spec": {"url": bare, "branch": "main", "author": {"name": "Sluice", "email": "sluice@example.com"}}
    });
    let gitops = GitOps::start(
        &ns,
        &[
            ("services.yaml", example("services.yaml")),
            ("httproute.yaml", example("httproute.yaml")),
            ("repository.yaml", yaml(&repository)),
            ("rollout.yaml", yaml(&manifest)),
            ("analysis.yaml", yaml(&error_rate_template(&prometheus))),
        ],
    );
    let first = wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    let _traffic = start_trafficgen(&ns, 400);
    tokio::time::sleep(Duration::from_secs(4)).await;

    // CI ships an image that answers 10% errors.
    let bump = gitops.bump("rollout.yaml", "web:1.0.0", "web:1.0.1-err10", "web 1.0.1");

    // Sluice aborts, reverts the commit, and the sync loop applies the revert.
    let home = wait_reverted_home(&admin, &ns, &stable, Duration::from_secs(150)).await;
    let status = home.status.clone().expect("status");
    let record = status.git_revert.clone().expect("record");
    assert_eq!(
        record.reverted_commit.as_deref(),
        Some(bump.as_str()),
        "{}",
        controller.log_tail()
    );
    let head = git(&gitops.bare, &["log", "-1", "--format=%H%n%B", "main"]);
    assert!(
        head.starts_with(record.revert_commit.as_deref().unwrap_or("?")),
        "{head}"
    );
    assert!(head.contains(&format!("Sluice-Reverts: {bump}")), "{head}");
    assert!(
        head.contains("AnalysisFailed"),
        "the reason is in the message: {head}"
    );
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "GitReverted")
        .expect("GitReverted condition");
    assert_eq!(condition.status, "True");
    assert!(condition.message.contains(&bump), "{}", condition.message);
    let image = home
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone());
    assert_eq!(
        image.as_deref(),
        Some("registry.example.com/web:1.0.0"),
        "Git and the cluster agree"
    );
    let reasons = event_reasons(&admin, &ns, "web").await;
    assert!(reasons.iter().any(|r| r == "GitReverted"), "{reasons:?}");
    assert_eq!(gitops.reverts_of(&bump), 1, "exactly one revert");
}
