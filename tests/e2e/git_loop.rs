//! The whole GitOps loop on the real control plane: CI pushes a bad image to
//! a Git branch, the sync loop applies it, the analysis fails the canary,
//! Sluice puts traffic back on stable and reverts the commit in Git, and the
//! sync loop brings the Rollout home.

use std::time::Duration;

use kube::Api;
use serde_json::json;
use sluice::crd::{RevertState, Rollout, RolloutPhase};

use super::harness::{ControllerProcess, cluster, wait_for};
use super::receiver::Receiver;
use super::support::*;

fn yaml(value: &serde_json::Value) -> String {
    serde_yaml_ng::to_string(value).expect("yaml")
}

#[tokio::test]
async fn an_analysis_abort_reverts_the_image_commit_and_git_brings_the_rollout_home() {
    let info = &cluster().info;
    let prometheus = info.prometheus.clone().expect("prometheus");
    let (admin, ns, kubeconfig) = setup("gitloop").await;
    let git_workspace = info.data_dir.join(format!("git-workspace-{ns}"));
    let workspace_arg = git_workspace.display().to_string();
    let controller = ControllerProcess::start(
        &kubeconfig,
        &ns,
        "gitloop",
        &["--no-leader-election", "--git-workspace", &workspace_arg],
    );

    // The GitOps repository: the gateway example, an analysis step, and
    // spec.git referencing a shared GitRepository.
    let bare = info.data_dir.join(format!("git-{ns}")).join("apps.git");
    let gitops = gateway_gitops(
        &ns,
        &prometheus,
        json!({"url": bare.display().to_string(), "branch": "main",
               "author": {"name": "Sluice", "email": "sluice@example.com"}}),
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

/// A controller killed while it pushes the revert, back only after the GitOps
/// sync applied that revert (a failover takes longer than a sync): the record
/// it left in `Pushing` is settled from the branch, `GitReverted` turns True
/// with the revert that is really there, and `reverted` is alerted once.
#[tokio::test]
async fn a_controller_killed_mid_push_settles_the_revert_the_sync_already_applied() {
    let receiver = Receiver::start(vec![]).await;
    let (admin, ns, kubeconfig) = setup("gitpush").await;
    let workspace = info_dir(&format!("git-workspace-{ns}"));
    let args = [
        "--no-leader-election",
        "--git-workspace",
        workspace.as_str(),
    ];
    let mut controller = ControllerProcess::start(&kubeconfig, &ns, "gitpush", &args);
    team_hook(&admin, &ns, &receiver.url).await;
    let example = gateway_example;
    let mut manifest: serde_json::Value =
        serde_yaml_ng::from_str(&example("rollout.yaml")).expect("yaml");
    speed_up(&mut manifest);
    manifest["spec"]["strategy"]["canary"]["steps"] =
        json!([{"setWeight": 20}, {"pause": {}}, {"setWeight": 100}]);
    let bare_path = cluster()
        .info
        .data_dir
        .join(format!("git-{ns}"))
        .join("apps.git");
    manifest["spec"]["git"] =
        json!({"repository": bare_path.display().to_string(), "path": "apps/web"});
    manifest["spec"]["alerts"] =
        json!({"subscriptions": [{"target": "team-hook", "events": ["aborted", "reverted"]}]});
    let gitops = GitOps::start(
        &ns,
        &[
            ("services.yaml", example("services.yaml")),
            ("httproute.yaml", example("httproute.yaml")),
            ("rollout.yaml", yaml(&manifest)),
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
    let bump = gitops.bump("rollout.yaml", "web:1.0.0", "web:1.0.1", "web 1.0.1");
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Paused,
        Duration::from_secs(90),
    )
    .await;

    // The push lands on the branch, but the pusher never hears back: a
    // post-receive hook holds the connection until the test lets it go.
    let release = gitops.bare.join("release-push");
    let hook = gitops.bare.join("hooks/post-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ni=0\nwhile [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\n",
            release.display()
        ),
    )
    .expect("hook");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .expect("chmod");
    let abort = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["rollout", "abort", "web", "--revert", "-n", &ns])
        .env("KUBECONFIG", &cluster().info.kubeconfig)
        .output()
        .expect("sluice rollout abort");
    assert!(
        abort.status.success(),
        "{}",
        String::from_utf8_lossy(&abort.stderr)
    );

    // Pushing, the revert on the branch, and the sync has applied it.
    let api: Api<Rollout> = Api::namespaced(admin.clone(), &ns);
    let pushing = wait_for(Duration::from_secs(90), "the record in Pushing", || {
        let api = api.clone();
        async move {
            let record = api.get("web").await.ok()?.status?.git_revert?;
            (record.state == RevertState::Pushing).then_some(record)
        }
    })
    .await;
    let on_branch = wait_for(Duration::from_secs(30), "the revert on the branch", || {
        let found = git(
            &gitops.bare,
            &[
                "log",
                "--format=%H",
                &format!("--grep=^Sluice-Reverts: {bump}$"),
                "main",
            ],
        );
        async move { (!found.is_empty()).then_some(found) }
    })
    .await;
    assert_eq!(pushing.revert_commit.as_deref(), Some(on_branch.as_str()));
    wait_for(
        Duration::from_secs(90),
        "the sync applied the revert",
        || {
            let api = api.clone();
            let stable = stable.clone();
            async move {
                let status = api.get("web").await.ok()?.status?;
                (status.abort.is_none()
                    && status.phase == Some(RolloutPhase::Healthy)
                    && status.stable_revision.as_deref() == Some(stable.as_str()))
                .then_some(())
            }
        },
    )
    .await;

    // The controller dies mid-push; the hook lets go; a new controller starts.
    controller.kill();
    std::fs::write(&release, "").expect("release");
    let restarted = ControllerProcess::start(&kubeconfig, &ns, "gitpush", &args);
    let record = wait_for(Duration::from_secs(90), "GitReverted=True", || {
        let api = api.clone();
        async move {
            let status = api.get("web").await.ok()?.status?;
            let condition = status
                .conditions
                .iter()
                .find(|c| c.type_ == "GitReverted")?;
            (condition.status == "True").then_some(status.git_revert?)
        }
    })
    .await;
    assert_eq!(
        record.state,
        RevertState::Reverted,
        "{}",
        restarted.log_tail()
    );
    assert_eq!(record.reverted_commit.as_deref(), Some(bump.as_str()));
    assert_eq!(record.revert_commit.as_deref(), Some(on_branch.as_str()));
    assert_eq!(gitops.reverts_of(&bump), 1, "exactly one revert");
    wait_for(Duration::from_secs(60), "the reverted alert", || {
        let sent = receiver
            .received()
            .iter()
            .any(|r| r.header("x-sluice-event").as_deref() == Some("reverted"));
        async move { sent.then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let count = |event: &str| {
        receiver
            .received()
            .iter()
            .filter(|r| r.header("x-sluice-event").as_deref() == Some(event))
            .count()
    };
    assert_eq!(count("reverted"), 1, "one reverted alert");
    assert_eq!(count("aborted"), 1, "one aborted alert");
}

fn info_dir(name: &str) -> String {
    cluster().info.data_dir.join(name).display().to_string()
}
