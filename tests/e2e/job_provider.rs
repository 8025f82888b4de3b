//! The `job` metric provider on the real control plane: the controller
//! creates real batch/v1 Jobs, kube-controller-manager's Job controller runs
//! them, and KWOK ends their pods (the `sluice-pod-exit` stage from
//! `tests/cluster/kwok-stages-extra/`: annotation `sluice.dev/kwok-exit`).
//! A completed Job passes a canary step or a blue-green pre-promotion
//! analysis, a failed one aborts with the Job's reason, and a controller
//! killed while a Job runs adopts that Job on restart instead of starting a
//! second.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sluice::analysis::job::RUN_UID_LABEL;
use sluice::crd::{AnalysisPhase, AnalysisRun, RolloutPhase};

use super::blue_green::{active_selects, rollout_doc};
use super::harness::{ControllerProcess, apply_value, cluster, wait_for};
use super::support::*;

const SETTLE: Duration = Duration::from_secs(120);

/// A template whose one measurement is a Job; KWOK ends its pod with `exit`
/// after it has run for `run_for` (a Go duration).
fn job_template(exit: &str, run_for: &str) -> serde_json::Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "smoke"},
        "spec": {
            "args": [{"name": "suite", "value": "checkout"}],
            "metrics": [{
                "name": "smoke-test",
                "interval": "2s",
                "count": 1,
                "provider": {"job": {
                    "metadata": {"labels": {"suite": "{{args.suite}}"}},
                    "timeout": "5m",
                    "spec": {
                        "backoffLimit": 0,
                        "template": {
                            "metadata": {"annotations": {
                                "sluice.dev/kwok-exit": exit,
                                "sluice.dev/kwok-run-for": run_for,
                            }},
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{
                                    "name": "smoke",
                                    "image": "registry.example.com/smoke:1",
                                    "args": ["--suite={{args.suite}}", "--revision={{revision}}"],
                                }],
                            },
                        },
                    },
                }},
            }],
        },
    })
}

/// The gateway canary with one analysis step, on `smoke`, between 25% and 100%.
fn with_job_step(doc: &mut serde_json::Value) {
    speed_up(doc);
    if doc["kind"] == "Rollout" {
        doc["spec"]["strategy"]["canary"]["steps"] = json!([
            {"setWeight": 25},
            {"analysis": {"templates": [{"templateName": "smoke"}]}},
            {"setWeight": 100},
        ]);
    }
}

/// A Healthy canary Rollout behind a fresh controller, with `template`; then `web:1.0.1` is shipped.
async fn canary_with_job(
    prefix: &str,
    template: serde_json::Value,
) -> (
    Client,
    String,
    String,
    ControllerProcess,
    std::path::PathBuf,
) {
    let (admin, ns, kubeconfig) = setup(prefix).await;
    let controller = ControllerProcess::start(&kubeconfig, &ns, prefix, &["--no-leader-election"]);
    apply_value(&admin, &ns, template).await;
    for file in ["services.yaml", "httproute.yaml", "rollout.yaml"] {
        apply_example(
            &admin,
            &ns,
            &format!("gateway-canary/{file}"),
            with_job_step,
        )
        .await;
    }
    let first = wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    set_image(&admin, &ns, "web", "registry.example.com/web:1.0.1").await;
    (admin, ns, stable, controller, kubeconfig)
}

async fn only_run(admin: &Client, ns: &str) -> AnalysisRun {
    let runs = Api::<AnalysisRun>::namespaced(admin.clone(), ns)
        .list(&Default::default())
        .await
        .expect("list runs");
    assert_eq!(runs.items.len(), 1, "one AnalysisRun");
    runs.items.into_iter().next().expect("a run")
}

/// The Jobs of `run`, found by the label Sluice puts on them.
async fn jobs_of(admin: &Client, ns: &str, run: &AnalysisRun) -> Vec<Job> {
    let uid = run.uid().expect("run uid");
    Api::<Job>::namespaced(admin.clone(), ns)
        .list(&ListParams::default().labels(&format!("{RUN_UID_LABEL}={uid}")))
        .await
        .expect("list jobs")
        .items
}

/// The namespace's AnalysisRun once it is in Error.
async fn run_in_error(admin: &Client, ns: &str) -> AnalysisRun {
    wait_for(SETTLE, "the run in Error", || {
        let (admin, ns) = (admin.clone(), ns.to_string());
        async move {
            let runs = Api::<AnalysisRun>::namespaced(admin, &ns)
                .list(&Default::default())
                .await
                .ok()?;
            let run = runs.items.into_iter().next()?;
            (run.status.as_ref()?.phase == Some(AnalysisPhase::Error)).then_some(run)
        }
    })
    .await
}

/// The first Job of the only run, once there is one.
async fn first_job(admin: &Client, ns: &str) -> Job {
    wait_for(SETTLE, "the measurement's Job", || {
        let (admin, ns) = (admin.clone(), ns.to_string());
        async move {
            let runs = Api::<AnalysisRun>::namespaced(admin.clone(), &ns)
                .list(&Default::default())
                .await
                .ok()?;
            let run = runs.items.into_iter().next()?;
            jobs_of(&admin, &ns, &run).await.into_iter().next()
        }
    })
    .await
}

/// The one Job of the only run, its owner and its filled-in spec checked.
async fn the_job(admin: &Client, ns: &str) -> (AnalysisRun, Job) {
    let run = only_run(admin, ns).await;
    let jobs = jobs_of(admin, ns, &run).await;
    assert_eq!(jobs.len(), 1, "exactly one Job per measurement");
    let job = jobs.into_iter().next().expect("a job");
    let owner = job.owner_references().first().cloned().expect("owner");
    assert_eq!(
        (owner.kind.as_str(), Some(owner.uid)),
        ("AnalysisRun", run.uid())
    );
    assert_eq!(
        job.labels().get("suite").map(String::as_str),
        Some("checkout")
    );
    let args = serde_json::to_value(&job.spec).expect("spec")["template"]["spec"]["containers"][0]
        ["args"]
        .clone();
    assert_eq!(
        args,
        json!([
            "--suite=checkout",
            format!("--revision={}", run.spec.canary_revision)
        ])
    );
    (run, job)
}

#[tokio::test]
async fn a_completed_job_passes_the_canary_step_and_the_rollout_is_promoted() {
    let (admin, ns, stable, controller, _) =
        canary_with_job("job-pass", job_template("0", "2s")).await;
    let done = wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    let status = done.status.expect("status");
    assert_ne!(
        status.stable_revision.as_deref(),
        Some(stable.as_str()),
        "the canary became stable: {}",
        controller.log_tail()
    );
    let (run, job) = the_job(&admin, &ns).await;
    let run_status = run.status.expect("run status");
    assert_eq!(run_status.phase, Some(AnalysisPhase::Successful));
    let measurement = &run_status.metrics[0].measurements[0];
    assert_eq!(measurement.phase, AnalysisPhase::Successful);
    assert_eq!(
        measurement.message.as_deref(),
        Some(format!("Job {} completed", job.name_any()).as_str())
    );
}

#[tokio::test]
async fn a_failed_job_fails_the_analysis_and_aborts_with_the_jobs_reason() {
    let (admin, ns, stable, controller, _) =
        canary_with_job("job-fail", job_template("1", "2s")).await;
    let aborted = wait_for(SETTLE, "abort on a failed Job", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            let r = rollout(&admin, &ns, "web").await;
            (r.status.as_ref()?.phase == Some(RolloutPhase::Aborted)).then_some(r)
        }
    })
    .await;
    let status = aborted.status.expect("status");
    let abort = status.abort.expect("abort recorded");
    assert_eq!(abort.reason, "AnalysisFailed", "{}", controller.log_tail());
    assert_eq!(status.stable_revision.as_deref(), Some(stable.as_str()));
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-canary").await,
        Some(0)
    );
    let (run, job) = the_job(&admin, &ns).await;
    let run_status = run.status.expect("run status");
    assert_eq!(run_status.phase, Some(AnalysisPhase::Failed));
    let message = run_status.metrics[0].measurements[0]
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "Job {} failed: BackoffLimitExceeded",
            job.name_any()
        )),
        "the Job's own reason in the measurement: {message}"
    );
}

#[tokio::test]
async fn a_blue_green_pre_promotion_job_gates_the_switch() {
    let (admin, ns, kubeconfig) = setup("job-bluegreen").await;
    let controller =
        ControllerProcess::start(&kubeconfig, &ns, "job-bluegreen", &["--no-leader-election"]);
    apply_value(&admin, &ns, job_template("0", "3s")).await;
    for file in ["services.yaml", "httproute.yaml"] {
        apply_example(&admin, &ns, &format!("blue-green/{file}"), |_| {}).await;
    }
    apply_value(&admin, &ns, rollout_doc(json!("smoke"), json!(null))).await;
    let first = wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    let old = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    set_image(&admin, &ns, "web", "registry.example.com/web:1.0.1").await;
    // While the Job runs, the active Service stays on the old version.
    let job = first_job(&admin, &ns).await;
    assert_eq!(
        active_selects(&admin, &ns).await.as_deref(),
        Some(old.as_str()),
        "no switch before the Job completed"
    );
    let done = wait_for(SETTLE, "switch after the Job completed", || {
        let (admin, ns, old) = (admin.clone(), ns.clone(), old.clone());
        async move {
            let r = rollout(&admin, &ns, "web").await;
            let status = r.status.as_ref()?;
            (status.phase == Some(RolloutPhase::Healthy)
                && status.stable_revision.as_deref() != Some(old.as_str()))
            .then_some(r)
        }
    })
    .await;
    let new = done.status.and_then(|s| s.stable_revision);
    assert_eq!(
        active_selects(&admin, &ns).await,
        new,
        "{}",
        controller.log_tail()
    );
    let (run, adopted) = the_job(&admin, &ns).await;
    assert_eq!(adopted.uid(), job.uid());
    assert_eq!(
        run.status.and_then(|s| s.phase),
        Some(AnalysisPhase::Successful)
    );
}

#[tokio::test]
async fn a_controller_killed_while_a_job_runs_adopts_that_job_on_restart() {
    let (admin, ns, stable, mut first, kubeconfig) =
        canary_with_job("job-restart", job_template("0", "25s")).await;
    let job = first_job(&admin, &ns).await;
    first.kill();
    // Long enough that a restarted controller sees the measurement "due" again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let second =
        ControllerProcess::start(&kubeconfig, &ns, "job-restart-2", &["--no-leader-election"]);
    let done = wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    assert_ne!(
        done.status.and_then(|s| s.stable_revision).as_deref(),
        Some(stable.as_str()),
        "{}",
        second.log_tail()
    );
    let (run, adopted) = the_job(&admin, &ns).await;
    assert_eq!(adopted.uid(), job.uid(), "the same Job, not a second one");
    let metric = &run.status.expect("status").metrics[0];
    assert_eq!(metric.count, 1, "one measurement from one Job");
    assert_eq!(metric.phase, AnalysisPhase::Successful);
}

#[tokio::test]
async fn an_abort_while_a_job_runs_deletes_that_job() {
    let (admin, ns, stable, controller, _) =
        canary_with_job("job-abort", job_template("0", "10m")).await;
    let job = first_job(&admin, &ns).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["rollout", "abort", "web", "-n", &ns])
        .env("KUBECONFIG", &cluster().info.kubeconfig)
        .output()
        .expect("sluice rollout abort");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs: Api<Job> = Api::namespaced(admin.clone(), &ns);
    let name = job.name_any();
    wait_for(SETTLE, "the running Job deleted", || {
        let (jobs, name) = (jobs.clone(), name.clone());
        async move { jobs.get_opt(&name).await.ok()?.is_none().then_some(()) }
    })
    .await;
    let run = only_run(&admin, &ns).await;
    assert_eq!(
        run.status.and_then(|s| s.phase),
        Some(AnalysisPhase::Terminated),
        "{}",
        controller.log_tail()
    );
    let status = rollout(&admin, &ns, "web").await.status.expect("status");
    assert_eq!(status.stable_revision.as_deref(), Some(stable.as_str()));
}

#[tokio::test]
async fn a_job_the_api_server_refuses_is_an_error_with_its_reason_and_an_event() {
    let mut template = job_template("0", "2s");
    let metric = &mut template["spec"]["metrics"][0];
    metric["consecutiveErrorLimit"] = json!(0);
    // A JobSpec in shape, refused by the API server's validation.
    metric["provider"]["job"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    let (admin, ns, _stable, controller, _) = canary_with_job("job-refused", template).await;
    let run = run_in_error(&admin, &ns).await;
    let status = run.status.clone().expect("status");
    let message = status.metrics[0].measurements[0]
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        message.starts_with("cannot create Job ")
            && message.contains("spec.template.spec.restartPolicy"),
        "the API server's reason in the measurement: {message}\n{}",
        controller.log_tail()
    );
    assert!(
        jobs_of(&admin, &ns, &run).await.is_empty(),
        "no Job was created"
    );
    let reasons = event_reasons(&admin, &ns, &run.name_any()).await;
    assert!(
        reasons.iter().any(|r| r == "AnalysisJobCreateFailed"),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_job_past_its_timeout_is_deleted_and_the_measurement_is_an_error() {
    let mut template = job_template("0", "10m");
    let metric = &mut template["spec"]["metrics"][0];
    metric["consecutiveErrorLimit"] = json!(0);
    metric["provider"]["job"]["timeout"] = json!("6s");
    let (admin, ns, _stable, controller, _) = canary_with_job("job-timeout", template).await;
    let job = first_job(&admin, &ns).await;
    let run = run_in_error(&admin, &ns).await;
    let message = run.status.clone().expect("status").metrics[0].measurements[0]
        .message
        .clone()
        .unwrap_or_default();
    assert_eq!(
        message,
        format!("Job {} did not finish within 6s; deleted", job.name_any()),
        "{}",
        controller.log_tail()
    );
    let jobs: Api<Job> = Api::namespaced(admin.clone(), &ns);
    let name = job.name_any();
    wait_for(SETTLE, "the timed-out Job deleted", || {
        let (jobs, name) = (jobs.clone(), name.clone());
        async move { jobs.get_opt(&name).await.ok()?.is_none().then_some(()) }
    })
    .await;
    let reasons = event_reasons(&admin, &ns, &run.name_any()).await;
    assert!(
        reasons.iter().any(|r| r == "AnalysisJobTimedOut"),
        "{reasons:?}"
    );
}
