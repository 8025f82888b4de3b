//! Controls that do what they say, on the real control plane: a retry
//! measures again and an abort stops its run, a monitoring outage holds the
//! canary (or rolls traffic back) without touching Git, a stuck update
//! aborts on its progress deadline and says why, and a known-bad image that
//! CI pushes again is refused and reverted in Git again.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use sluice::crd::{AnalysisPhase, AnalysisRun, Rollout, RolloutPhase};

use super::analysis::canary_with;
use super::blue_green::{SETTLE, active_selects, error_ratio_template, example, rollout_doc};
use super::harness::{
    ControllerProcess, admin_client, apply_value, cluster, free_port, repo_root, wait_for,
};
use super::support::*;

fn yaml(value: &serde_json::Value) -> String {
    serde_yaml_ng::to_string(value).expect("yaml")
}

async fn runs(admin: &kube::Client, ns: &str) -> Vec<AnalysisRun> {
    let api: Api<AnalysisRun> = Api::namespaced(admin.clone(), ns);
    api.list(&Default::default()).await.expect("runs").items
}

async fn run_named(admin: &kube::Client, ns: &str, name: &str) -> Option<AnalysisRun> {
    runs(admin, ns)
        .await
        .into_iter()
        .find(|r| r.metadata.name.as_deref() == Some(name))
}

/// A controller with a Git workspace, watching a fresh namespace; returns (namespace, controller).
async fn controller_with_git(prefix: &str) -> (String, ControllerProcess) {
    let (_, ns, kubeconfig) = setup(prefix).await;
    let workspace = cluster()
        .info
        .data_dir
        .join(format!("git-workspace-{ns}"))
        .display()
        .to_string();
    let controller = ControllerProcess::start(
        &kubeconfig,
        &ns,
        prefix,
        &["--no-leader-election", "--git-workspace", &workspace],
    );
    (ns, controller)
}

fn bare_repository(ns: &str) -> String {
    cluster()
        .info
        .data_dir
        .join(format!("git-{ns}"))
        .join("apps.git")
        .display()
        .to_string()
}

#[tokio::test]
async fn a_retry_after_a_post_promotion_abort_measures_again_and_an_abort_stops_the_run_at_once() {
    let (admin, ns, kubeconfig) = setup("controls-retry").await;
    let controller = ControllerProcess::start(
        &kubeconfig,
        &ns,
        "controls-retry",
        &["--no-leader-election"],
    );
    let prometheus = cluster().info.prometheus.clone().expect("prometheus");
    apply_value(&admin, &ns, error_ratio_template(&prometheus)).await;
    for file in ["services.yaml", "httproute.yaml"] {
        apply_example(&admin, &ns, &format!("blue-green/{file}"), |_| {}).await;
    }
    apply_value(&admin, &ns, rollout_doc(json!(null), json!("error-ratio"))).await;
    let first = wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    let old = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    let _traffic = start_trafficgen(&ns, 300);
    tokio::time::sleep(Duration::from_secs(3)).await;
    set_image(&admin, &ns, "web", "registry.example.com/web:1.0.1-err10").await;
    let aborted = wait_phase(&admin, &ns, "web", RolloutPhase::Aborted, SETTLE).await;
    let status = aborted.status.expect("status");
    let new = status.canary_revision.clone().expect("canary revision");
    let first_abort = status.abort.expect("abort");
    assert_eq!(
        first_abort.reason,
        "PostPromotionAnalysisFailed",
        "{}",
        controller.log_tail()
    );
    assert_eq!(
        active_selects(&admin, &ns).await.as_deref(),
        Some(old.as_str())
    );

    // Retry: a new run (attempt 2) that really measures, not the old Failed verdict again.
    let retried_at = jiff::Timestamp::now();
    annotate(&admin, &ns, "web", "sluice.dev/retry", "r1").await;
    let fresh = format!("web-{new}-post-2");
    let again = wait_for(SETTLE, "the retried update judged by a new run", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            let r = rollout(&admin, &ns, "web").await;
            let abort = r.status.as_ref()?.abort.clone()?;
            (abort.at.0 > first_abort.at.0).then_some(abort)
        }
    })
    .await;
    assert!(
        again.message.contains(&fresh),
        "judged by {fresh}: {}; log:\n{}",
        again.message,
        controller.log_tail()
    );
    let run = run_named(&admin, &ns, &fresh).await.expect("the new run");
    let run_status = run.status.expect("run status");
    assert_eq!(run_status.phase, Some(AnalysisPhase::Failed));
    let first_measured = run_status
        .metrics
        .iter()
        .flat_map(|m| &m.measurements)
        .map(|m| m.at.0)
        .min()
        .expect("the new run measured");
    assert!(first_measured > retried_at, "measured after the retry");
    assert_eq!(
        active_selects(&admin, &ns).await.as_deref(),
        Some(old.as_str())
    );

    // A healthy version: an operator's abort stops the run it waits on at once.
    set_image(&admin, &ns, "web", "registry.example.com/web:1.0.1").await;
    let running = wait_for(SETTLE, "a running post-promotion run", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            let r = rollout(&admin, &ns, "web").await;
            let current = r.status?.current_analysis?;
            let run = run_named(&admin, &ns, &current.name).await?;
            let measured = run
                .status
                .as_ref()?
                .metrics
                .iter()
                .any(|m| !m.measurements.is_empty());
            let running = run.status.as_ref()?.phase == Some(AnalysisPhase::Running);
            (measured && running).then_some(current.name)
        }
    })
    .await;
    annotate(&admin, &ns, "web", "sluice.dev/abort", "a1").await;
    let asked = Instant::now();
    wait_for(
        Duration::from_secs(10),
        "the running run terminated",
        || {
            let (admin, ns, running) = (admin.clone(), ns.clone(), running.clone());
            async move {
                let run = run_named(&admin, &ns, &running).await?;
                (run.status?.phase == Some(AnalysisPhase::Terminated)).then_some(())
            }
        },
    )
    .await;
    eprintln!(
        "controls: the running AnalysisRun was Terminated {} ms after the abort annotation",
        asked.elapsed().as_millis()
    );
    let aborted = wait_phase(&admin, &ns, "web", RolloutPhase::Aborted, SETTLE).await;
    let abort = aborted.status.and_then(|s| s.abort).expect("abort");
    assert_eq!(abort.reason, "AbortedByUser");
}

#[tokio::test]
async fn a_monitoring_outage_holds_the_canary_then_rolls_traffic_back_without_touching_git() {
    let admin = admin_client().await;
    let (ns, controller) = controller_with_git("controls-outage").await;
    let gateway = |file: &str| {
        std::fs::read_to_string(repo_root().join("examples/gateway-canary").join(file))
            .expect("example")
    };
    let mut manifest: serde_json::Value =
        serde_yaml_ng::from_str(&gateway("rollout.yaml")).expect("yaml");
    speed_up(&mut manifest);
    manifest["spec"]["strategy"]["canary"]["steps"] = json!([
        {"setWeight": 25},
        {"analysis": {"templates": [{"templateName": "error-rate"}]}},
        {"setWeight": 100}
    ]);
    manifest["spec"]["git"] = json!({"repository": bare_repository(&ns), "path": "apps/web"});
    // Prometheus is down: nothing listens at this address.
    let down = format!("http://127.0.0.1:{}", free_port());
    let mut template = super::analysis::error_rate_template(&down);
    template["spec"]["metrics"][0]["interval"] = json!("2s");
    template["spec"]["metrics"][0]["initialDelay"] = json!("1s");
    template["spec"]["metrics"][0]["consecutiveErrorLimit"] = json!(1);
    let gitops = GitOps::start(
        &ns,
        &[
            ("services.yaml", gateway("services.yaml")),
            ("httproute.yaml", gateway("httproute.yaml")),
            ("rollout.yaml", yaml(&manifest)),
            ("analysis.yaml", yaml(&template)),
        ],
    );
    wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    let bump = gitops.bump("rollout.yaml", "web:1.0.0", "web:1.0.1", "web 1.0.1");

    // Default (Hold): paused where it is, 25% on the canary, a Warning Event, Git untouched.
    let held = wait_phase(&admin, &ns, "web", RolloutPhase::Paused, SETTLE).await;
    let status = held.status.expect("status");
    assert_eq!(
        status.pause_reason.as_deref(),
        Some("AnalysisError"),
        "{:?}; log:\n{}",
        status.message,
        controller.log_tail()
    );
    assert!(
        status.abort.is_none(),
        "an outage is no verdict on the canary"
    );
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-canary").await,
        Some(25),
        "traffic held where it was"
    );
    let reasons = event_reasons(&admin, &ns, "web").await;
    assert!(
        reasons.iter().any(|r| r == "AnalysisCannotTell"),
        "{reasons:?}"
    );

    // The team switches the Rollout to RollbackTraffic through Git.
    let text = std::fs::read_to_string(gitops.dir.join("rollout.yaml")).expect("read");
    let mut doc: serde_json::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    doc["spec"]["analysisCannotTell"] = json!("RollbackTraffic");
    std::fs::write(gitops.dir.join("rollout.yaml"), yaml(&doc)).expect("write");
    git(
        &gitops.ci,
        &[
            "commit",
            "-q",
            "-am",
            "roll traffic back when we cannot tell",
        ],
    );
    git(&gitops.ci, &["push", "-q", "origin", "main"]);
    let rolled_back = wait_phase(&admin, &ns, "web", RolloutPhase::Aborted, SETTLE).await;
    let status = rolled_back.status.expect("status");
    let abort = status.abort.clone().expect("abort");
    assert_eq!(abort.reason, "AnalysisError");
    assert!(abort.keep_git && abort.cannot_tell, "{abort:?}");
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-canary").await,
        Some(0)
    );
    // The Git task records why it leaves Git alone; no revert commit ever appears.
    let skipped = wait_for(Duration::from_secs(30), "Git revert skipped", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            let s = rollout(&admin, &ns, "web").await.status?;
            s.git_revert
                .filter(|g| g.state == sluice::crd::RevertState::Skipped)
        }
    })
    .await;
    assert!(
        skipped
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("could not tell"),
        "{skipped:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(gitops.reverts_of(&bump), 0, "CI's commit stays in Git");
}

#[tokio::test]
async fn a_stuck_canary_aborts_on_its_progress_deadline_says_why_and_loses_its_pods() {
    fn stuck_on_deadline(doc: &mut serde_json::Value) {
        speed_up(doc);
        if doc["kind"] == "Rollout" {
            doc["spec"]["progressDeadlineSeconds"] = json!(15);
            doc["spec"]["abortOnProgressDeadline"] = json!(true);
        }
    }
    let (ns, stable, controller, _traffic) = canary_with(
        "controls-deadline",
        "registry.example.com/web:1.0.0",
        "gateway-canary",
        stuck_on_deadline,
    )
    .await;
    let admin = admin_client().await;
    // A new version whose pods no node accepts.
    let api: Api<Rollout> = Api::namespaced(admin.clone(), &ns);
    let patch = json!({"spec": {"template": {"spec": {
        "nodeSelector": {"sluice.dev/no-such-node": "true"},
        "containers": [{"name": "web", "image": "registry.example.com/web:1.0.1"}]
    }}}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch template");
    let aborted = wait_phase(&admin, &ns, "web", RolloutPhase::Aborted, SETTLE).await;
    let status = aborted.status.expect("status");
    let abort = status.abort.clone().expect("abort");
    assert_eq!(
        abort.reason,
        "ProgressDeadlineExceeded",
        "{}",
        controller.log_tail()
    );
    assert!(
        abort.message.contains("no progress for 15s"),
        "{}",
        abort.message
    );
    assert!(
        abort.message.contains("Unschedulable"),
        "says why: {}",
        abort.message
    );
    assert_eq!(status.stable_revision.as_deref(), Some(stable.as_str()));
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-canary").await,
        Some(0)
    );
    let canary = status.canary_revision.clone().expect("canary");
    // Its ReplicaSet goes to 0 with the abort, and its pending pods go.
    let replica_sets: Api<ReplicaSet> = Api::namespaced(admin.clone(), &ns);
    let rs = replica_sets
        .list(&ListParams::default())
        .await
        .expect("replica sets")
        .items
        .into_iter()
        .find(|rs| rs.labels().get("sluice.dev/pod-template-hash") == Some(&canary))
        .expect("canary ReplicaSet");
    assert_eq!(
        rs.spec.and_then(|s| s.replicas),
        Some(0),
        "scaled down at once"
    );
    wait_for(Duration::from_secs(30), "stuck pods gone", || {
        let (admin, ns, canary) = (admin.clone(), ns.clone(), canary.clone());
        async move {
            let pods: Api<Pod> = Api::namespaced(admin, &ns);
            let params =
                ListParams::default().labels(&format!("sluice.dev/pod-template-hash={canary}"));
            pods.list(&params)
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;
    let reasons = event_reasons(&admin, &ns, "web").await;
    assert!(
        reasons.iter().any(|r| r == "ProgressDeadlineExceeded"),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_known_bad_image_pushed_again_is_refused_and_reverted_again() {
    let admin = admin_client().await;
    let (ns, controller) = controller_with_git("controls-knownbad").await;
    let prometheus = cluster().info.prometheus.clone().expect("prometheus");
    let mut doc = rollout_doc(json!("error-ratio"), json!(null));
    doc["spec"]["git"] = json!({"repository": bare_repository(&ns), "path": "apps/web"});
    let gitops = GitOps::start(
        &ns,
        &[
            ("services.yaml", example("services.yaml")),
            ("httproute.yaml", example("httproute.yaml")),
            ("rollout.yaml", yaml(&doc)),
            ("analysis.yaml", yaml(&error_ratio_template(&prometheus))),
        ],
    );
    let first = wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    let old = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    let _traffic = start_trafficgen_with(
        &ns,
        200,
        &["--smoke-service", "web-preview", "--smoke-rps", "100"],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bump = gitops.bump("rollout.yaml", "web:1.0.0", "web:1.0.1-err10", "web 1.0.1");
    wait_reverted_home(&admin, &ns, &old, Duration::from_secs(150)).await;
    assert_eq!(gitops.reverts_of(&bump), 1, "{}", controller.log_tail());
    let runs_before = runs(&admin, &ns).await.len();

    // Image automation (with Sluice's revert pulled) commits the same bad tag again.
    git(&gitops.ci, &["pull", "-q", "--ff-only", "origin", "main"]);
    let again = gitops.bump(
        "rollout.yaml",
        "web:1.0.0",
        "web:1.0.1-err10",
        "web 1.0.1 (again)",
    );
    let refused = wait_for(SETTLE, "the known-bad revision refused", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            let r = rollout(&admin, &ns, "web").await;
            let abort = r.status.as_ref()?.abort.clone()?;
            (abort.reason == "KnownBadRevision").then_some(r)
        }
    })
    .await;
    let status = refused.status.expect("status");
    let abort = status.abort.expect("abort");
    assert!(
        abort.message.contains("web:1.0.1-err10"),
        "{}",
        abort.message
    );
    assert_eq!(
        status.aborted_revisions.len(),
        1,
        "{:?}",
        status.aborted_revisions
    );
    assert_eq!(
        active_selects(&admin, &ns).await.as_deref(),
        Some(old.as_str())
    );
    // Refused, not re-judged: no new run, no preview pods.
    assert_eq!(
        runs(&admin, &ns).await.len(),
        runs_before,
        "no run read or created"
    );
    // The preview left from the first abort goes after its delay; nothing scales it up.
    wait_for(Duration::from_secs(15), "no preview pods", || {
        let (admin, ns, old) = (admin.clone(), ns.clone(), old.clone());
        async move {
            let preview = revisions(&admin, &ns, "web").await;
            preview
                .iter()
                .all(|(h, desired, _)| *h == old || *desired == 0)
                .then_some(())
        }
    })
    .await;
    // And Git is set right again: the new commit is reverted too.
    let home = wait_for(
        Duration::from_secs(150),
        "second revert synced home",
        || {
            let (admin, ns, old, again) = (admin.clone(), ns.clone(), old.clone(), again.clone());
            async move {
                let r = rollout(&admin, &ns, "web").await;
                let s = r.status.clone()?;
                let reverted = s
                    .git_revert
                    .as_ref()
                    .is_some_and(|g| g.reverted_commit.as_deref() == Some(again.as_str()));
                (reverted
                    && s.phase == Some(RolloutPhase::Healthy)
                    && s.stable_revision.as_deref() == Some(old.as_str()))
                .then_some(r)
            }
        },
    )
    .await;
    assert_eq!(gitops.reverts_of(&again), 1, "{}", controller.log_tail());
    let reasons = event_reasons(&admin, &ns, "web").await;
    assert!(
        reasons.iter().any(|r| r == "KnownBadRevision"),
        "{reasons:?}"
    );
    let remembered = home.status.expect("status").aborted_revisions;
    assert!(
        remembered[0].revert_commit.is_some(),
        "the revert is remembered: {remembered:?}"
    );
}
