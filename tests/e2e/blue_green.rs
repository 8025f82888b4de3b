//! Blue-green on the real control plane: the switch happens only when every
//! new pod is Ready, a failing pre-promotion analysis never switches, and a
//! failing post-promotion analysis switches back within one analysis
//! interval while Sluice reverts the image commit in Git.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use serde_json::json;
use sluice::crd::{AnalysisPhase, AnalysisRun, RolloutPhase};

use super::harness::{ControllerProcess, admin_client, apply_value, cluster, repo_root, wait_for};
use super::support::*;

pub(super) const SETTLE: Duration = Duration::from_secs(90);

/// A threshold on one revision's 5xx ratio: under 3% passes, above fails.
pub(super) fn error_ratio_template(prometheus: &str) -> serde_json::Value {
    let selector =
        r#"namespace="{{args.namespace}}",app="{{args.rollout}}",pod_template_hash="{{revision}}""#;
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "error-ratio"},
        "spec": {"metrics": [{
            "name": "error-ratio",
            "interval": "3s",
            "initialDelay": "5s",
            "count": 6,
            "inconclusiveLimit": 6,
            "provider": {"prometheus": {
                "address": prometheus,
                "query": format!("sum(rate(http_requests_total{{{selector},code=\"500\"}}[10s])) / sum(rate(http_requests_total{{{selector}}}[10s]))"),
            }},
            "successCondition": "result < 0.03"
        }]}
    })
}

/// `examples/blue-green/<file>` as text.
pub(super) fn example(file: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples/blue-green").join(file)).expect("example")
}

/// The example Rollout, sped up, with the given analyses (none when null).
pub(super) fn rollout_doc(pre: serde_json::Value, post: serde_json::Value) -> serde_json::Value {
    let mut doc: serde_json::Value =
        serde_yaml_ng::from_str(&example("rollout.yaml")).expect("yaml");
    speed_up(&mut doc);
    let blue_green = &mut doc["spec"]["strategy"]["blueGreen"];
    let set = |value: serde_json::Value| match value {
        serde_json::Value::Null => None,
        name => Some(json!({"templates": [{"templateName": name}]})),
    };
    match set(pre) {
        Some(v) => blue_green["prePromotionAnalysis"] = v,
        None => {
            blue_green
                .as_object_mut()
                .map(|o| o.remove("prePromotionAnalysis"));
        }
    }
    match set(post) {
        Some(v) => blue_green["postPromotionAnalysis"] = v,
        None => {
            blue_green
                .as_object_mut()
                .map(|o| o.remove("postPromotionAnalysis"));
        }
    }
    doc
}

pub(super) async fn active_selects(admin: &kube::Client, ns: &str) -> Option<String> {
    let services: Api<Service> = Api::namespaced(admin.clone(), ns);
    let service = services.get("web-active").await.ok()?;
    service
        .spec?
        .selector?
        .get("sluice.dev/pod-template-hash")
        .cloned()
}

/// Apply the example (with `doc` as the Rollout) behind a fresh controller; Healthy on web:1.0.0.
async fn healthy_blue_green(
    prefix: &str,
    doc: serde_json::Value,
) -> (String, String, ControllerProcess) {
    let (admin, ns, kubeconfig) = setup(prefix).await;
    let controller = ControllerProcess::start(&kubeconfig, &ns, prefix, &["--no-leader-election"]);
    if let Some(prometheus) = cluster().info.prometheus.clone() {
        apply_value(&admin, &ns, error_ratio_template(&prometheus)).await;
    }
    for file in ["services.yaml", "httproute.yaml"] {
        apply_example(&admin, &ns, &format!("blue-green/{file}"), |_| {}).await;
    }
    apply_value(&admin, &ns, doc).await;
    let first = wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    (ns, stable, controller)
}

#[tokio::test]
async fn a_healthy_blue_green_switches_only_once_every_new_pod_is_ready() {
    let (ns, old, controller) =
        healthy_blue_green("bluegreen-ok", rollout_doc(json!(null), json!(null))).await;
    let admin = admin_client().await;
    set_image(&admin, &ns, "web", "registry.example.com/web:1.0.1").await;
    let started = Instant::now();
    let mut preview_size_seen = false;
    let mut switched_to = None;
    // Watch the active Service and the new ReplicaSet side by side.
    while started.elapsed() < SETTLE {
        let active = active_selects(&admin, &ns).await;
        let revisions = revisions(&admin, &ns, "web").await;
        for (hash, desired, ready) in &revisions {
            if *hash != old && *desired == 2 {
                preview_size_seen = true;
            }
            if Some(hash) == active.as_ref() && *hash != old {
                assert_eq!(
                    (*desired, *ready),
                    (4, 4),
                    "the active Service selected {hash} before all its pods were Ready; log:\n{}",
                    controller.log_tail()
                );
                switched_to = Some(hash.clone());
            }
        }
        let r = rollout(&admin, &ns, "web").await;
        let status = r.status.clone().unwrap_or_default();
        if status.phase == Some(RolloutPhase::Healthy)
            && status.stable_revision.as_ref() != Some(&old)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new = switched_to.expect("the active Service switched");
    assert!(
        preview_size_seen,
        "the preview ran at previewReplicaCount (2) first"
    );
    let r = rollout(&admin, &ns, "web").await;
    let status = r.status.expect("status");
    assert_eq!(status.stable_revision.as_deref(), Some(new.as_str()));
    assert_eq!(status.last_promotion.map(|p| p.previous), Some(old.clone()));
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-preview").await,
        Some(0)
    );
    // The old version stays warm for scaleDownDelaySeconds (3 s here), then goes.
    wait_for(Duration::from_secs(30), "old version scaled down", || {
        let (admin, ns, old) = (admin.clone(), ns.clone(), old.clone());
        async move {
            let revisions = revisions(&admin, &ns, "web").await;
            revisions
                .iter()
                .any(|(h, desired, _)| *h == old && *desired == 0)
                .then_some(())
        }
    })
    .await;
    let reasons = event_reasons(&admin, &ns, "web").await;
    for reason in ["BlueGreenStarted", "Switched", "Promoted"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} missing: {reasons:?}"
        );
    }
}

#[tokio::test]
async fn a_failing_pre_promotion_analysis_never_switches() {
    let (ns, old, controller) = healthy_blue_green(
        "bluegreen-pre",
        rollout_doc(json!("error-ratio"), json!(null)),
    )
    .await;
    let admin = admin_client().await;
    // Users hit the active Service; smoke tests hit the preview.
    let _traffic = start_trafficgen_with(
        &ns,
        200,
        &["--smoke-service", "web-preview", "--smoke-rps", "100"],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    set_image(&admin, &ns, "web", "registry.example.com/web:1.0.1-err10").await;
    let started = Instant::now();
    let aborted = loop {
        assert!(
            started.elapsed() < SETTLE,
            "no abort; log:\n{}",
            controller.log_tail()
        );
        assert_eq!(
            active_selects(&admin, &ns).await.as_deref(),
            Some(old.as_str()),
            "the active Service left the old version"
        );
        assert_eq!(
            route_canary_weight(&admin, &ns, "web", "web-preview").await,
            Some(0)
        );
        let r = rollout(&admin, &ns, "web").await;
        if r.status.as_ref().and_then(|s| s.phase) == Some(RolloutPhase::Aborted) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = aborted.status.expect("status");
    let abort = status.abort.expect("abort");
    assert_eq!(
        abort.reason, "PrePromotionAnalysisFailed",
        "{}",
        abort.message
    );
    let pre = status
        .blue_green
        .and_then(|b| b.pre_promotion_analysis)
        .expect("pre-promotion run in status");
    assert_eq!(pre.phase, Some(sluice::crd::AnalysisPhase::Failed));
    // The preview never grew past previewReplicaCount.
    let revisions = revisions(&admin, &ns, "web").await;
    assert!(
        revisions
            .iter()
            .all(|(h, desired, _)| *h == old || *desired <= 2),
        "{revisions:?}"
    );
}

#[tokio::test]
async fn a_failing_post_promotion_analysis_switches_back_at_once_and_the_revert_lands_in_git() {
    let info = &cluster().info;
    let prometheus = info.prometheus.clone().expect("prometheus");
    let (admin, ns, kubeconfig) = setup("bluegreen-post").await;
    let workspace = info
        .data_dir
        .join(format!("git-workspace-{ns}"))
        .display()
        .to_string();
    let controller = ControllerProcess::start(
        &kubeconfig,
        &ns,
        "bluegreen-post",
        &["--no-leader-election", "--git-workspace", &workspace],
    );
    let bare = info.data_dir.join(format!("git-{ns}")).join("apps.git");
    let mut doc = rollout_doc(json!(null), json!("error-ratio"));
    doc["spec"]["git"] = json!({"repository": bare.display().to_string(), "path": "apps/web"});
    let yaml = |v: &serde_json::Value| serde_yaml_ng::to_string(v).expect("yaml");
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
    let _traffic = start_trafficgen(&ns, 300);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bump = gitops.bump("rollout.yaml", "web:1.0.0", "web:1.0.1-err10", "web 1.0.1");

    // Watch the switch, the verdict and the switch back.
    let runs: Api<AnalysisRun> = Api::namespaced(admin.clone(), &ns);
    let started = Instant::now();
    let (mut switched, mut failed_at) = (false, None);
    let back_at = loop {
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "no switch back; log:\n{}",
            controller.log_tail()
        );
        let active = active_selects(&admin, &ns).await;
        if active.as_deref().is_some_and(|a| a != old) {
            switched = true;
        }
        if failed_at.is_none() {
            let list = runs.list(&Default::default()).await.expect("runs");
            let failed = list.items.iter().any(|r| {
                r.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.ends_with("-post"))
                    && r.status.as_ref().and_then(|s| s.phase) == Some(AnalysisPhase::Failed)
            });
            if failed {
                failed_at = Some(Instant::now());
            }
        }
        if switched && active.as_deref() == Some(old.as_str()) {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let failed_at = failed_at.unwrap_or(back_at);
    let delay = back_at.saturating_duration_since(failed_at);
    assert!(
        delay <= Duration::from_secs(3),
        "switched back {delay:?} after the verdict; the analysis interval is 3 s"
    );
    eprintln!(
        "blue-green: switched back {} ms after the post-promotion verdict was observed",
        delay.as_millis()
    );
    // The Service moves before the reconcile's status write lands: read the
    // abort once it is recorded (it stays until the revert brings the Rollout home).
    let abort = wait_for(Duration::from_secs(10), "the abort in status", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move { rollout(&admin, &ns, "web").await.status?.abort }
    })
    .await;
    assert_eq!(abort.reason, "PostPromotionAnalysisFailed");

    // Sluice reverts the commit; the sync loop brings the Rollout home on the old image.
    let home = wait_reverted_home(&admin, &ns, &old, Duration::from_secs(120)).await;
    assert_eq!(gitops.reverts_of(&bump), 1, "exactly one revert in Git");
    let image = home
        .spec
        .template
        .spec
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.image);
    assert_eq!(image.as_deref(), Some("registry.example.com/web:1.0.0"));
    assert_eq!(
        active_selects(&admin, &ns).await.as_deref(),
        Some(old.as_str())
    );
}
