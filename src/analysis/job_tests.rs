//! `analysis::job`: Job names, the Job built for a measurement, what an
//! observed Job means, and job metrics in the run's bookkeeping.
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::*;
use crate::analysis::run::{
    MeasurementOutcome, VerdictKind, deadline, new_result, plan_metric, record,
};
use crate::crd::{AnalysisPhase, JobMetadata, Metric, MetricProvider};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn provider() -> JobProvider {
    JobProvider {
        metadata: Some(JobMetadata {
            labels: BTreeMap::from([("team".into(), "{{args.team}}".into())]),
            annotations: BTreeMap::new(),
        }),
        spec: json!({
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "smoke",
                    "image": "curlimages/curl:8",
                    "args": ["http://{{args.service}}/healthz?rev={{revision}}"]
                }]
            }}
        }),
        timeout: None,
    }
}

fn job_metric(count: i32, failure_limit: i32) -> Metric {
    Metric {
        name: "smoke".into(),
        count: Some(count),
        failure_limit: Some(failure_limit),
        provider: MetricProvider {
            job: Some(provider()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn bindings() -> Bindings {
    Bindings {
        args: BTreeMap::from([
            ("team".into(), "shop".into()),
            ("service".into(), "web.shop".into()),
        ]),
        revision: Some("abc123".into()),
        interval: "30s".into(),
    }
}

fn owner() -> Owner<'static> {
    Owner {
        run_name: "web-abc123-2",
        run_uid: "0b7e-uid",
        namespace: "shop",
    }
}

fn with_condition(kind: &str, reason: &str, message: &str, created: Timestamp) -> Job {
    let mut job = build_job(
        &provider(),
        &bindings(),
        &BTreeSet::new(),
        &owner(),
        "smoke",
        0,
    )
    .expect("builds");
    job.metadata.creation_timestamp = Some(Time(created));
    job.status = Some(JobStatus {
        conditions: (!kind.is_empty()).then(|| {
            vec![JobCondition {
                type_: kind.into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                ..Default::default()
            }]
        }),
        ..Default::default()
    });
    job
}

#[test]
fn a_measurement_always_gets_the_same_job_name_and_each_measurement_its_own() {
    assert_eq!(job_name("web-abc123-2", "smoke", 0), "web-abc123-2-smoke-0");
    assert_eq!(
        job_name("web-abc123-2", "smoke", 0),
        job_name("web-abc123-2", "smoke", 0)
    );
    assert_ne!(
        job_name("web-abc123-2", "smoke", 0),
        job_name("web-abc123-2", "smoke", 1)
    );
}

#[test]
fn long_or_unusual_names_are_shortened_with_a_hash_and_stay_distinct() {
    let run = "a-very-long-rollout-name-that-fills-most-of-the-budget-abcdef1234-17";
    let first = job_name(run, "load-test", 0);
    let second = job_name(run, "load-test", 1);
    for name in [&first, &second] {
        assert!(name.len() <= 63, "{name} is {} long", name.len());
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
        assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
    }
    assert_ne!(first, second, "truncation must not merge two measurements");
    assert_eq!(first, job_name(run, "load-test", 0), "stable across calls");
    // A cleaned-up name differs from the name that was already clean.
    assert_ne!(
        job_name("r", "Smoke.Test", 0),
        job_name("r", "smoke-test", 0)
    );
    assert!(label_value("Smoke.Test").len() <= 63);
}

#[test]
fn the_job_is_in_the_runs_namespace_owned_by_the_run_labelled_and_filled_in() {
    let job = build_job(
        &provider(),
        &bindings(),
        &BTreeSet::new(),
        &owner(),
        "smoke",
        3,
    )
    .expect("builds");
    assert_eq!(job.metadata.name.as_deref(), Some("web-abc123-2-smoke-3"));
    assert_eq!(job.metadata.namespace.as_deref(), Some("shop"));
    let owners = job.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].kind, "AnalysisRun");
    assert_eq!(owners[0].uid, "0b7e-uid");
    let labels = job.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(RUN_UID_LABEL).map(String::as_str),
        Some("0b7e-uid")
    );
    assert_eq!(labels.get(METRIC_LABEL).map(String::as_str), Some("smoke"));
    assert_eq!(labels.get("team").map(String::as_str), Some("shop"));
    let spec = serde_json::to_value(job.spec).expect("serialises");
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["args"][0],
        "http://web.shop/healthz?rev=abc123"
    );
    assert_eq!(spec["backoffLimit"], 0);
}

#[test]
fn an_unknown_argument_or_a_spec_that_is_no_job_spec_is_a_clear_error() {
    let mut missing = bindings();
    missing.args.remove("service");
    let error = build_job(
        &provider(),
        &missing,
        &BTreeSet::new(),
        &owner(),
        "smoke",
        0,
    )
    .expect_err("unknown arg");
    assert!(error.to_string().contains("args.service"), "{error}");

    let mut bad = provider();
    bad.spec = json!({"template": {"spec": {"containers": "not a list"}}});
    let error = check_spec(&bad.spec).expect_err("not a JobSpec");
    assert!(error.contains("not a batch/v1 JobSpec"), "{error}");
    bad.spec = json!({"template": {"spec": {"containers": []}}});
    let error = check_spec(&bad.spec).expect_err("no container");
    assert!(error.contains("at least one container"), "{error}");
}

#[test]
fn complete_passes_failed_fails_with_the_jobs_reason_and_running_waits() {
    let name = "web-abc123-2-smoke-0";
    let minute = Duration::from_secs(60);
    let done = with_condition("Complete", "", "", at(0));
    assert_eq!(
        next_step(Some(&done), name, "0b7e-uid", minute, at(5)),
        JobStep::Finished {
            completed: true,
            message: format!("Job {name} completed")
        }
    );
    let failed = with_condition(
        "Failed",
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
        at(0),
    );
    assert_eq!(
        next_step(Some(&failed), name, "0b7e-uid", minute, at(5)),
        JobStep::Finished {
            completed: false,
            message: format!(
                "Job {name} failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
            )
        }
    );
    let running = with_condition("", "", "", at(0));
    assert_eq!(
        next_step(Some(&running), name, "0b7e-uid", minute, at(59)),
        JobStep::Wait
    );
    assert_eq!(
        next_step(None, name, "0b7e-uid", minute, at(59)),
        JobStep::Create
    );
}

#[test]
fn a_job_past_its_timeout_is_timed_out_and_one_of_someone_else_is_never_judged() {
    let name = "web-abc123-2-smoke-0";
    let minute = Duration::from_secs(60);
    let running = with_condition("", "", "", at(0));
    let JobStep::TimedOut(message) = next_step(Some(&running), name, "0b7e-uid", minute, at(60))
    else {
        panic!("past the timeout");
    };
    assert!(message.contains("did not finish within 1m"), "{message}");
    // A clock behind the Job's creation does not time it out.
    assert_eq!(
        next_step(Some(&running), name, "0b7e-uid", minute, at(-30)),
        JobStep::Wait
    );
    // Same name, another owner: e.g. a Job a tenant created to pass the analysis.
    let done = with_condition("Complete", "", "", at(0));
    assert!(matches!(
        next_step(Some(&done), name, "another-uid", minute, at(5)),
        JobStep::Foreign(_)
    ));
}

#[test]
fn job_metrics_are_judged_by_outcome_with_the_failure_limit_and_count() {
    let plan = plan_metric("t", &job_metric(3, 1)).expect("valid");
    assert!(matches!(plan.verdict, VerdictKind::Job { timeout } if timeout == DEFAULT_TIMEOUT));
    assert!(!plan.verdict.is_comparison());
    let mut result = new_result(&plan);
    let finished = |completed| MeasurementOutcome::JobFinished {
        completed,
        message: format!(
            "Job x {}",
            if completed {
                "completed"
            } else {
                "failed: BackoffLimitExceeded"
            }
        ),
    };
    record(&mut result, &plan, finished(false), at(0), 0);
    assert_eq!(
        result.phase,
        AnalysisPhase::Running,
        "one failure is within failureLimit 1"
    );
    assert_eq!(
        result.measurements[0].message.as_deref(),
        Some("Job x failed: BackoffLimitExceeded")
    );
    record(&mut result, &plan, finished(true), at(30), 0);
    record(&mut result, &plan, finished(true), at(60), 0);
    assert_eq!(result.phase, AnalysisPhase::Successful);

    let plan = plan_metric("t", &job_metric(1, 0)).expect("valid");
    let mut result = new_result(&plan);
    record(&mut result, &plan, finished(false), at(0), 0);
    assert_eq!(result.phase, AnalysisPhase::Failed);

    let mut result = new_result(&plan);
    record(
        &mut result,
        &plan,
        MeasurementOutcome::Error("Job timed out".into()),
        at(0),
        0,
    );
    assert_eq!(result.phase, AnalysisPhase::Error, "never a silent pass");
}

#[test]
fn a_job_metric_refuses_conditions_and_gives_the_run_time_for_its_jobs() {
    let mut metric = job_metric(1, 0);
    metric.success_condition = Some("result == 1".into());
    let error = plan_metric("t", &metric).expect_err("conditions make no sense");
    assert!(error.contains("judged by the Job's outcome"), "{error}");

    let mut metric = job_metric(2, 0);
    if let Some(job) = metric.provider.job.as_mut() {
        job.timeout = Some("1h".into());
    }
    let plan = plan_metric("t", &metric).expect("valid");
    let end = deadline([&plan], at(0));
    assert!(
        end >= at(2 * 3600),
        "two one-hour Jobs must fit before the deadline, got {end}"
    );
}

#[test]
fn an_argument_from_a_secret_is_never_written_into_a_job() {
    let secret = BTreeSet::from(["service".to_string()]);
    let error = build_job(&provider(), &bindings(), &secret, &owner(), "smoke", 0)
        .expect_err("the Secret's value would be in the Job in clear");
    assert!(
        error
            .to_string()
            .contains("argument service comes from a Secret"),
        "{error}"
    );
    // Secret arguments the Job does not use are no obstacle.
    let unused = BTreeSet::from(["api-token".to_string()]);
    assert!(build_job(&provider(), &bindings(), &unused, &owner(), "smoke", 0).is_ok());
}
