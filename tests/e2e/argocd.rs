//! Argo CD's view of Sluice on the real control plane: the health scripts of
//! `integrations/argocd/` run under the real Lua interpreters on the live
//! Rollout and AnalysisRun at every phase a canary and a blue-green update
//! pass through, and each action's output is applied to the API server as
//! Argo CD applies it (a merge patch from the live object to the result),
//! with the controller's reaction observed. kstatus's rules (what Flux reads)
//! are checked on the same live objects.
//!
//! `SLUICE_WRITE_ARGOCD_FIXTURES=1` writes every captured object (without
//! managedFields) into the upstream-shaped `testdata/` directories, with
//! `health_test.yaml` and `actions/action_test.yaml` listing them; the fast
//! test `tests/argocd.rs` replays them.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sluice::crd::{AnalysisPhase, Rollout, RolloutPhase};

use super::argocd_book::*;
use super::argocd_lua as lua;
use super::blue_green::rollout_doc;
use super::harness::{ControllerProcess, apply_value, cluster, repo_root, wait_for};
use super::support::*;

const SETTLE: Duration = Duration::from_secs(90);

/// An AnalysisTemplate on the stack's Prometheus: `query` judged by `result < 1`.
fn template(name: &str, prometheus: &str, query: &str) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"metrics": [{
            "name": name,
            "interval": "2s",
            "initialDelay": "3s",
            "count": 1,
            "provider": {"prometheus": {"address": prometheus, "query": query}},
            "successCondition": "result < 1"
        }]}
    })
}

/// A template whose Prometheus never answers: every measurement is an error.
fn unreachable_template() -> Value {
    let mut doc = template("unreachable", "http://127.0.0.1:9", "vector(0)");
    doc["spec"]["metrics"][0]["consecutiveErrorLimit"] = json!(0);
    doc
}

/// A canary without a router (2 replicas) through every phase, driven only by
/// Argo CD actions.
fn canary_doc() -> Value {
    let text = std::fs::read_to_string(repo_root().join("examples/replica-ratio/rollout.yaml"))
        .expect("example");
    let mut doc: Value = serde_yaml_ng::from_str(&text).expect("yaml");
    doc["spec"]["replicas"] = json!(2);
    let canary = &mut doc["spec"]["strategy"]["canary"];
    canary["scaleDownDelaySeconds"] = json!(2);
    canary["abortScaleDownDelaySeconds"] = json!(2);
    canary["steps"] = json!([
        {"setWeight": 50},
        {"pause": {}},
        {"pause": {"duration": "1h"}},
        {"analysis": {"templates": [{"templateName": "no-data"}]}},
        {"setWeight": 100}
    ]);
    doc
}

async fn canary_phases(book: &mut Book, client: &Client, ns: &str, controller: &ControllerProcess) {
    let name = "api";
    let r = wait_status(client, ns, name, "api Healthy", |r| {
        phase_is(r, RolloutPhase::Healthy)
    })
    .await;
    book.capture("Rollout", "healthy_stable", &r, "Healthy");

    set_image(client, ns, name, "registry.example.com/api:2.5.0").await;
    let r = wait_status(client, ns, name, "api paused at step 2", |r| {
        pause_reason(r) == "PauseStep"
    })
    .await;
    book.capture("Rollout", "suspended_pauseStep", &r, "Suspended");
    run_action(book, client, ns, name, "promote", "suspended_pauseStep").await;

    let r = wait_status(client, ns, name, "api in the timed pause", |r| {
        step(r) == 2 && phase_is(r, RolloutPhase::Progressing)
    })
    .await;
    book.capture("Rollout", "progressing_timedPause", &r, "Progressing");
    run_action(book, client, ns, name, "pause", "progressing_timedPause").await;
    let r = wait_status(client, ns, name, "api held by the operator", |r| {
        pause_reason(r) == "PausedByUser"
    })
    .await;
    book.capture("Rollout", "suspended_pausedByUser", &r, "Suspended");
    run_action(book, client, ns, name, "resume", "suspended_pausedByUser").await;
    let r = wait_status(client, ns, name, "api resumed", |r| {
        step(r) == 2 && phase_is(r, RolloutPhase::Progressing)
    })
    .await;
    book.capture("Rollout", "progressing_resumed", &r, "Progressing");
    run_action(book, client, ns, name, "promote", "progressing_resumed").await;

    // The analysis step: a query with no data cannot tell.
    let run_name = wait_for(SETTLE, "the step's AnalysisRun", || async move {
        let r = rollout(client, ns, name).await;
        let current = r.status?.current_analysis?;
        Some(current.name)
    })
    .await;
    let run = live(client, ns, "AnalysisRun", &run_name).await;
    if run["status"]["phase"]
        .as_str()
        .is_none_or(|p| p == "Pending" || p == "Running")
    {
        book.capture("AnalysisRun", "progressing_running", &run, "Progressing");
    }
    let r = wait_status(
        client,
        ns,
        name,
        "api held on an inconclusive analysis",
        |r| pause_reason(r) == "AnalysisInconclusive",
    )
    .await;
    book.capture("Rollout", "suspended_analysisInconclusive", &r, "Suspended");
    let run = live(client, ns, "AnalysisRun", &run_name).await;
    assert_eq!(run["status"]["phase"], AnalysisPhase::Inconclusive.as_str());
    book.capture("AnalysisRun", "suspended_inconclusive", &run, "Suspended");

    run_action(
        book,
        client,
        ns,
        name,
        "abort",
        "suspended_analysisInconclusive",
    )
    .await;
    let r = wait_status(client, ns, name, "api aborted", |r| {
        phase_is(r, RolloutPhase::Aborted)
    })
    .await;
    book.capture("Rollout", "degraded_abortedByUser", &r, "Degraded");
    let aborted = rollout(client, ns, name).await;
    let abort = aborted
        .status
        .as_ref()
        .and_then(|s| s.abort.clone())
        .expect("abort record");
    assert_eq!(abort.reason, "AbortedByUser", "{}", controller.log_tail());

    run_action(book, client, ns, name, "retry", "degraded_abortedByUser").await;
    let r = wait_status(
        client,
        ns,
        name,
        "api retried, at the pause step again",
        |r| {
            pause_reason(r) == "PauseStep"
                && r.status
                    .as_ref()
                    .is_some_and(|s| s.abort.is_none() && s.attempt >= 2)
        },
    )
    .await;
    book.capture("Rollout", "suspended_retriedPauseStep", &r, "Suspended");
    run_action(
        book,
        client,
        ns,
        name,
        "promote-full",
        "suspended_retriedPauseStep",
    )
    .await;
    let r = wait_status(client, ns, name, "api promoted in full", |r| {
        phase_is(r, RolloutPhase::Healthy)
    })
    .await;
    book.capture("Rollout", "healthy_promotedFull", &r, "Healthy");
    let promoted = rollout(client, ns, name).await;
    let stable_images = promoted.status.map(|s| s.stable_images).unwrap_or_default();
    assert_eq!(stable_images, ["registry.example.com/api:2.5.0"]);
}

async fn blue_green_phases(book: &mut Book, client: &Client, ns: &str) {
    let name = "web";
    wait_status(client, ns, name, "web Healthy", |r| {
        phase_is(r, RolloutPhase::Healthy)
    })
    .await;
    let old = rollout(client, ns, name)
        .await
        .status
        .and_then(|s| s.stable_revision);
    set_image(client, ns, name, "registry.example.com/web:1.0.1").await;
    let r = wait_status(client, ns, name, "web waiting for promotion", |r| {
        pause_reason(r) == "AwaitingPromotion"
    })
    .await;
    book.capture(
        "Rollout",
        "suspended_blueGreenAwaitingPromotion",
        &r,
        "Suspended",
    );
    let pre = blue_green_of(client, ns, name)
        .await
        .and_then(|b| b.pre_promotion_analysis)
        .expect("pre-promotion run");
    let run = live(client, ns, "AnalysisRun", &pre.name).await;
    book.capture("AnalysisRun", "healthy_successful", &run, "Healthy");
    run_action(
        book,
        client,
        ns,
        name,
        "promote",
        "suspended_blueGreenAwaitingPromotion",
    )
    .await;

    // Switched: the post-promotion analysis runs while the old version stays warm.
    let post = wait_for(
        SETTLE,
        "web's post-promotion run measuring",
        || async move {
            let post = blue_green_of(client, ns, name)
                .await?
                .post_promotion_analysis?;
            let run = live_opt(client, ns, &post.name).await?;
            (run["status"]["phase"] == "Running").then_some(post.name)
        },
    )
    .await;
    let r = live(client, ns, "Rollout", name).await;
    book.capture(
        "Rollout",
        "progressing_blueGreenPostPromotionAnalysis",
        &r,
        "Progressing",
    );
    run_action(
        book,
        client,
        ns,
        name,
        "abort",
        "progressing_blueGreenPostPromotionAnalysis",
    )
    .await;
    let r = wait_status(client, ns, name, "web aborted after the switch", |r| {
        phase_is(r, RolloutPhase::Aborted)
    })
    .await;
    book.capture("Rollout", "degraded_blueGreenAbortedByUser", &r, "Degraded");
    let back = rollout(client, ns, name)
        .await
        .status
        .and_then(|s| s.stable_revision);
    assert_eq!(back, old, "the abort keeps the old version stable");
    let post = post.as_str();
    let run = wait_for(SETTLE, "the post-promotion run terminated", || async move {
        let run = live_opt(client, ns, post).await?;
        (run["status"]["phase"] == AnalysisPhase::Terminated.as_str()).then_some(run)
    })
    .await;
    book.capture("AnalysisRun", "healthy_terminated", &run, "Healthy");

    run_action(
        book,
        client,
        ns,
        name,
        "retry",
        "degraded_blueGreenAbortedByUser",
    )
    .await;
    let r = wait_status(client, ns, name, "web previewed again", |r| {
        pause_reason(r) == "AwaitingPromotion"
            && r.status.as_ref().is_some_and(|s| s.abort.is_none())
    })
    .await;
    book.capture("Rollout", "suspended_blueGreenRetried", &r, "Suspended");
    run_action(
        book,
        client,
        ns,
        name,
        "promote-full",
        "suspended_blueGreenRetried",
    )
    .await;
    let r = wait_status(client, ns, name, "web switched in full and Healthy", |r| {
        phase_is(r, RolloutPhase::Healthy)
            && r.status.as_ref().and_then(|s| s.stable_revision.clone()) != old
    })
    .await;
    book.capture("Rollout", "healthy_blueGreenPromotedFull", &r, "Healthy");
}

/// A replica-ratio canary named `name` with its own Services and these steps.
async fn small_canary(client: &Client, ns: &str, name: &str, steps: Value) -> Value {
    apply_example(client, ns, "replica-ratio/services.yaml", |doc| {
        let own = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .replacen("api", name, 1);
        doc["metadata"]["name"] = json!(own);
        if doc["spec"]["selector"]["app"].is_string() {
            doc["spec"]["selector"]["app"] = json!(name);
        }
    })
    .await;
    let mut doc = canary_doc();
    doc["metadata"]["name"] = json!(name);
    doc["spec"]["selector"]["matchLabels"]["app"] = json!(name);
    doc["spec"]["template"]["metadata"]["labels"]["app"] = json!(name);
    doc["spec"]["strategy"]["canary"]["stableService"] = json!(format!("{name}-stable"));
    doc["spec"]["strategy"]["canary"]["canaryService"] = json!(format!("{name}-canary"));
    doc["spec"]["strategy"]["canary"]["steps"] = steps;
    doc
}

/// Analyses that cannot measure, then one that fails: held, promoted past, aborted.
async fn failing_phases(book: &mut Book, client: &Client, ns: &str) {
    let name = "bad";
    wait_status(client, ns, name, "bad Healthy", |r| {
        phase_is(r, RolloutPhase::Healthy)
    })
    .await;
    set_image(client, ns, name, "registry.example.com/api:2.5.0-bad").await;
    let r = wait_status(client, ns, name, "bad held on an analysis error", |r| {
        pause_reason(r) == "AnalysisError"
    })
    .await;
    book.capture("Rollout", "suspended_analysisError", &r, "Suspended");
    let errored = rollout(client, ns, name)
        .await
        .status
        .and_then(|s| s.current_analysis)
        .expect("run");
    let run = live(client, ns, "AnalysisRun", &errored.name).await;
    book.capture("AnalysisRun", "degraded_error", &run, "Degraded");
    // Promote goes on without the verdict, to an analysis that fails.
    run_action(book, client, ns, name, "promote", "suspended_analysisError").await;
    let r = wait_status(client, ns, name, "bad aborted on its analysis", |r| {
        phase_is(r, RolloutPhase::Aborted)
    })
    .await;
    book.capture("Rollout", "degraded_analysisFailed", &r, "Degraded");
    let status = rollout(client, ns, name).await.status.expect("status");
    assert_eq!(
        status.abort.map(|a| a.reason).as_deref(),
        Some("AnalysisFailed")
    );
    let failed = status
        .current_analysis
        .map(|a| a.name)
        .unwrap_or_else(|| format!("{name}-unknown"));
    if let Some(run) = live_opt(client, ns, &failed).await {
        book.capture("AnalysisRun", "degraded_failed", &run, "Degraded");
    }
}

/// A new version no node accepts: Degraded once its progress deadline passes.
async fn stuck_phases(book: &mut Book, client: &Client, ns: &str) {
    let name = "stuck";
    wait_status(client, ns, name, "stuck Healthy", |r| {
        phase_is(r, RolloutPhase::Healthy)
    })
    .await;
    let patch = json!({"spec": {"template": {"spec": {
        "nodeSelector": {"sluice.dev/no-such-node": "true"},
        "containers": [{"name": "api", "image": "registry.example.com/api:2.5.0"}]
    }}}});
    Api::<Rollout>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch template");
    let r = wait_status(client, ns, name, "stuck past its deadline", |r| {
        phase_is(r, RolloutPhase::Degraded)
    })
    .await;
    book.capture(
        "Rollout",
        "degraded_progressDeadlineExceeded",
        &r,
        "Degraded",
    );
    run_action(
        book,
        client,
        ns,
        name,
        "abort",
        "degraded_progressDeadlineExceeded",
    )
    .await;
    let r = wait_status(client, ns, name, "stuck aborted", |r| {
        phase_is(r, RolloutPhase::Aborted)
    })
    .await;
    book.capture("Rollout", "degraded_stuckAbortedByUser", &r, "Degraded");
}

#[tokio::test]
async fn argo_cd_health_and_actions_follow_the_live_rollout_through_every_phase() {
    let (admin, ns, kubeconfig) = setup("argocd").await;
    let prometheus = cluster().info.prometheus.clone().expect("prometheus");
    apply_value(
        &admin,
        &ns,
        template("no-data", &prometheus, "sluice_argocd_no_such_series"),
    )
    .await;
    apply_value(&admin, &ns, template("passes", &prometheus, "vector(0)")).await;
    apply_example(&admin, &ns, "replica-ratio/services.yaml", |_| {}).await;
    for file in ["services.yaml", "httproute.yaml"] {
        apply_example(&admin, &ns, &format!("blue-green/{file}"), |_| {}).await;
    }
    // Passes, but takes a minute: long enough to abort while it measures.
    let mut slow = template("slow", &prometheus, "vector(0)");
    slow["spec"]["metrics"][0]["count"] = json!(30);
    apply_value(&admin, &ns, slow).await;
    apply_value(&admin, &ns, unreachable_template()).await;
    apply_value(&admin, &ns, template("fails", &prometheus, "vector(5)")).await;
    let mut blue_green = rollout_doc(json!("passes"), json!("slow"));
    blue_green["spec"]["replicas"] = json!(2);
    blue_green["spec"]["strategy"]["blueGreen"]["previewReplicaCount"] = json!(1);
    blue_green["spec"]["strategy"]["blueGreen"]["autoPromotionEnabled"] = json!(false);
    apply_value(&admin, &ns, blue_green).await;
    apply_value(&admin, &ns, canary_doc()).await;
    let bad = small_canary(
        &admin,
        &ns,
        "bad",
        json!([
            {"setWeight": 50},
            {"analysis": {"templates": [{"templateName": "unreachable"}]}},
            {"analysis": {"templates": [{"templateName": "fails"}]}},
            {"setWeight": 100}
        ]),
    )
    .await;
    apply_value(&admin, &ns, bad).await;
    let mut stuck = small_canary(
        &admin,
        &ns,
        "stuck",
        json!([{"setWeight": 50}, {"setWeight": 100}]),
    )
    .await;
    stuck["spec"]["progressDeadlineSeconds"] = json!(8);
    apply_value(&admin, &ns, stuck).await;

    // Before any controller saw it: no status at all.
    let mut book = Book::default();
    let unseen = live(&admin, &ns, "Rollout", "api").await;
    book.capture("Rollout", "progressing_noStatus", &unseen, "Progressing");

    let mut controller =
        ControllerProcess::start(&kubeconfig, &ns, "argocd", &["--no-leader-election"]);
    let (mut bg_book, mut bad_book, mut stuck_book) =
        (Book::default(), Book::default(), Book::default());
    tokio::join!(
        canary_phases(&mut book, &admin, &ns, &controller),
        blue_green_phases(&mut bg_book, &admin, &ns),
        failing_phases(&mut bad_book, &admin, &ns),
        stuck_phases(&mut stuck_book, &admin, &ns),
    );
    for other in [bg_book, bad_book, stuck_book] {
        book.health.extend(other.health);
        book.discovery.extend(other.discovery);
        book.actions.extend(other.actions);
    }

    // A spec change no controller has seen yet: the status is about an older generation.
    controller.kill();
    set_image(&admin, &ns, "api", "registry.example.com/api:2.6.0").await;
    let stale = live(&admin, &ns, "Rollout", "api").await;
    assert_ne!(
        stale["status"]["observedGeneration"],
        stale["metadata"]["generation"]
    );
    book.capture(
        "Rollout",
        "progressing_generationNotObserved",
        &stale,
        "Progressing",
    );
    book.write();
    argocd_cm_merges_into_a_live_configmap(&admin).await;
}

/// The README's `kubectl -n argocd patch configmap argocd-cm --type merge
/// --patch-file integrations/argocd/argocd-cm.yaml`, as the API server takes
/// it: Argo CD's own settings stay, Sluice's scripts arrive verbatim.
async fn argocd_cm_merges_into_a_live_configmap(client: &Client) {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use kube::api::PostParams;
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "argocd"}})).expect("namespace");
    // Another run on this control plane may have made them already.
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "argocd");
    let existing: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "argocd-cm"},
        "data": {"url": "https://argocd.example.com"}
    }))
    .expect("configmap");
    let _ = api.create(&PostParams::default(), &existing).await;
    let text = std::fs::read_to_string(repo_root().join("integrations/argocd/argocd-cm.yaml"))
        .expect("argocd-cm.yaml");
    let patch: Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let patched = api
        .patch("argocd-cm", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("merge argocd-cm.yaml into argocd-cm");
    let data = patched.data.unwrap_or_default();
    assert_eq!(
        data.get("url").map(String::as_str),
        Some("https://argocd.example.com")
    );
    for kind in ["Rollout", "AnalysisRun"] {
        let script = std::fs::read_to_string(lua::health_script(kind)).expect("health.lua");
        let key = format!("resource.customizations.health.sluice.dev_{kind}");
        assert_eq!(data.get(&key), Some(&script), "{key}");
    }
    assert!(data.contains_key("resource.customizations.actions.sluice.dev_Rollout"));
    eprintln!("argocd: argocd-cm.yaml merged into a live argocd-cm; its own url setting kept");
}
