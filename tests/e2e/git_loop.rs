//! The whole GitOps loop on the real control plane: CI pushes a bad image to
//! a Git branch, the sync loop applies it, the analysis fails the canary,
//! Sluice puts traffic back on stable and reverts the commit in Git, and the
//! sync loop brings the Rollout home.

use std::time::Duration;

use serde_json::json;
use sluice::crd::RolloutPhase;

use super::analysis::error_rate_template;
use super::harness::{
    BackgroundProcess, ControllerProcess, admin_client, cluster, ensure_crds, namespace, repo_root,
    wait_for, workspace_binary,
};
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
    let root = info.data_dir.join(format!("git-{ns}"));
    std::fs::create_dir_all(&root).expect("root");
    git(&root, &["init", "-q", "--bare", "-b", "main", "apps.git"]);
    git(&root, &["clone", "-q", "apps.git", "ci"]);
    let bare = root.join("apps.git").display().to_string();
    let ci = root.join("ci");
    let dir = ci.join("apps/web");
    std::fs::create_dir_all(&dir).expect("dir");
    for file in ["services.yaml", "httproute.yaml"] {
        std::fs::copy(
            repo_root().join("examples/gateway-canary").join(file),
            dir.join(file),
        )
        .expect("copy");
    }
    let mut manifest: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo_root().join("examples/gateway-canary/rollout.yaml"))
            .expect("example"),
    )
    .expect("yaml");
    speed_up(&mut manifest);
    manifest["spec"]["strategy"]["canary"]["steps"] = json!([
        {"setWeight": 25},
        {"analysis": {"templates": [{"templateName": "error-rate"}]}},
        {"setWeight": 100}
    ]);
    // The repository is a shared GitRepository the Rollout references.
    manifest["spec"]["git"] = json!({"repositoryRef": {"name": "apps"}, "path": "apps/web"});
    let repository = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "GitRepository",
        "metadata": {"name": "apps"},
        "spec": {"url": bare, "branch": "main", "author": {"name": "Sluice", "email": "sluice@example.com"}}
    });
    std::fs::write(dir.join("repository.yaml"), yaml(&repository)).expect("write");
    std::fs::write(dir.join("rollout.yaml"), yaml(&manifest)).expect("write");
    std::fs::write(
        dir.join("analysis.yaml"),
        yaml(&error_rate_template(&prometheus)),
    )
    .expect("write");
    git(&ci, &["add", "."]);
    git(&ci, &["commit", "-q", "-m", "web 1.0.0"]);
    git(&ci, &["push", "-q", "origin", "main"]);

    let work = root.join("sync").display().to_string();
    let _sync = BackgroundProcess::start(
        &format!("{ns}-gitops-sync"),
        &workspace_binary("sluice-gitops-sync"),
        &[
            "--repo",
            &bare,
            "--path",
            "apps/web",
            "--namespace",
            &ns,
            "--work-dir",
            &work,
            "--interval",
            "500ms",
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
    let text = std::fs::read_to_string(dir.join("rollout.yaml")).expect("read");
    std::fs::write(
        dir.join("rollout.yaml"),
        text.replace("web:1.0.0", "web:1.0.1-err10"),
    )
    .expect("write");
    git(&ci, &["commit", "-q", "-am", "web 1.0.1"]);
    git(&ci, &["push", "-q", "origin", "main"]);
    let bump = git(&ci, &["rev-parse", "HEAD"]);

    // Sluice aborts, reverts the commit, and the sync loop applies the revert.
    let home = wait_for(
        Duration::from_secs(150),
        "revert synced and Rollout Healthy",
        || {
            let (admin, ns, stable) = (admin.clone(), ns.clone(), stable.clone());
            async move {
                let r = rollout(&admin, &ns, "web").await;
                let s = r.status.clone()?;
                let reverted = s.git_revert.as_ref().is_some_and(|g| g.state == "Reverted");
                (reverted
                    && s.phase == Some(RolloutPhase::Healthy)
                    && s.stable_revision.as_ref() == Some(&stable))
                .then_some(r)
            }
        },
    )
    .await;
    let status = home.status.clone().expect("status");
    let record = status.git_revert.clone().expect("record");
    assert_eq!(
        record.reverted_commit.as_deref(),
        Some(bump.as_str()),
        "{}",
        controller.log_tail()
    );
    let head = git(
        &root.join("apps.git"),
        &["log", "-1", "--format=%H%n%B", "main"],
    );
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
    assert_eq!(
        git(
            &root.join("apps.git"),
            &[
                "log",
                "--format=%H",
                &format!("--grep=^Sluice-Reverts: {bump}$"),
                "main"
            ]
        )
        .lines()
        .count(),
        1,
        "exactly one revert"
    );
}
