//! The `job` provider's I/O: creates the Job of a due measurement, reads it
//! back until it completes or fails, deletes it past its timeout, and deletes
//! a run's running Jobs once nothing waits on the run.
//!
//! The decisions are [`crate::analysis::job`]'s; this file only talks to the
//! API server. A Job is only ever created in the run's own namespace.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use super::Context;
use crate::analysis::job::{
    JobState, JobStep, Owner, RUN_UID_LABEL, build_job, job_name, job_state, next_step,
};
use crate::analysis::run::MeasurementOutcome;
use crate::analysis::template::Bindings;
use crate::crd::{AnalysisRun, JobProvider};

/// How often a running Job is read back.
pub const JOB_POLL: Duration = Duration::from_secs(3);

/// Event reason when a measurement's Job cannot be created.
const JOB_CREATE_FAILED: &str = "AnalysisJobCreateFailed";
/// Event reason when a Job ran past its timeout and was deleted.
const JOB_TIMED_OUT: &str = "AnalysisJobTimedOut";

/// One due measurement of a job metric.
pub struct DueJob<'a> {
    pub provider: &'a JobProvider,
    /// The metric's arguments, `{{revision}}` set to the canary.
    pub bindings: &'a Bindings,
    /// Arguments of the metric's template read from Secrets: never put into a Job.
    pub secret_args: &'a BTreeSet<String>,
    /// The metric's name, or `template-metric` where two templates share it.
    pub metric: &'a str,
    /// 0-based index of the measurement: the Job's name depends on it.
    pub index: i32,
    pub timeout: Duration,
}

/// Advance the measurement `due` of `run`: its outcome once the Job finished
/// (or could not run), `None` while it runs.
pub async fn step(
    ctx: &Context,
    run: &AnalysisRun,
    due: &DueJob<'_>,
    now: Timestamp,
) -> Option<MeasurementOutcome> {
    let namespace = run.namespace().unwrap_or_else(|| "default".into());
    let run_name = run.name_any();
    let run_uid = run.uid().unwrap_or_default();
    let name = job_name(&run_name, due.metric, due.index);
    let api: Api<Job> = Api::namespaced(ctx.io.client.clone(), &namespace);
    let found = match api.get_opt(&name).await {
        Ok(found) => found,
        Err(error) => {
            // Not a measurement: the Job may well be running, and counting an
            // error would start the next measurement's Job beside it.
            warn!(run = %run_name, job = %name, %error, "cannot read the analysis Job; trying again");
            return None;
        }
    };
    match next_step(found.as_ref(), &name, &run_uid, due.timeout, now) {
        JobStep::Wait => None,
        JobStep::Create => {
            let owner = Owner {
                run_name: &run_name,
                run_uid: &run_uid,
                namespace: &namespace,
            };
            let job = match build_job(
                due.provider,
                due.bindings,
                due.secret_args,
                &owner,
                due.metric,
                due.index,
            ) {
                Ok(job) => job,
                Err(error) => {
                    return Some(create_failed(ctx, run, &name, &error.to_string()).await);
                }
            };
            match api.create(&PostParams::default(), &job).await {
                Ok(_) => {
                    info!(run = %run_name, job = %name, "analysis Job created");
                    None
                }
                // Created by an earlier reconcile whose answer was lost: read it next time.
                Err(kube::Error::Api(response)) if response.code == 409 => None,
                Err(kube::Error::Api(response)) => {
                    let why = format!("{} ({})", response.message, response.reason);
                    Some(create_failed(ctx, run, &name, &why).await)
                }
                Err(error) => Some(create_failed(ctx, run, &name, &error.to_string()).await),
            }
        }
        JobStep::Finished { completed, message } => {
            Some(MeasurementOutcome::JobFinished { completed, message })
        }
        JobStep::TimedOut(message) => {
            delete(&api, &name).await;
            ctx.io
                .events
                .publish(run, "DeleteJob", true, JOB_TIMED_OUT, &message)
                .await;
            Some(MeasurementOutcome::Error(message))
        }
        JobStep::Foreign(message) => Some(MeasurementOutcome::Error(message)),
    }
}

/// Report a Job that could not be created (quota, invalid spec, RBAC): a
/// warning Event on the run and an Error measurement with the reason.
async fn create_failed(
    ctx: &Context,
    run: &AnalysisRun,
    name: &str,
    why: &str,
) -> MeasurementOutcome {
    let message = format!("cannot create Job {name}: {why}");
    warn!(run = %run.name_any(), %message, "analysis Job not created");
    ctx.io
        .events
        .publish(run, "CreateJob", true, JOB_CREATE_FAILED, &message)
        .await;
    MeasurementOutcome::Error(message)
}

/// Delete Job `name` and, in the background, its pods; a Job already gone is fine.
async fn delete(api: &Api<Job>, name: &str) {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => info!(job = %name, "analysis Job deleted"),
        Err(kube::Error::Api(response)) if response.code == 404 => {}
        Err(error) => warn!(job = %name, %error, "cannot delete the analysis Job"),
    }
}

/// Delete the run's Jobs that still run: nothing will judge them any more.
/// Finished Jobs stay for inspection until the run is deleted with them.
pub async fn delete_running(ctx: &Context, run: &AnalysisRun) {
    let Some(uid) = run.uid() else {
        return;
    };
    let namespace = run.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Job> = Api::namespaced(ctx.io.client.clone(), &namespace);
    let jobs = match api
        .list(&ListParams::default().labels(&format!("{RUN_UID_LABEL}={uid}")))
        .await
    {
        Ok(list) => list.items,
        Err(error) => {
            warn!(run = %run.name_any(), %error, "cannot list the run's analysis Jobs to stop them");
            return;
        }
    };
    for job in jobs {
        if job_state(&job) == JobState::Running && job.metadata.deletion_timestamp.is_none() {
            delete(&api, &job.name_any()).await;
        }
    }
}
