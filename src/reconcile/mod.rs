//! One reconcile: observe → plan → apply → status → events.
//!
//! The only place where the pure engine meets the API server. Errors are
//! typed per cause so that `/metrics` and logs say what failed, and a failed
//! reconcile is retried with a delay rather than in a hot loop.

pub mod alert_keep_alive;
pub mod alert_outgoing;
pub mod alert_targets;
pub mod alerts;
pub mod analysis;
pub mod analysis_job;
pub mod apply;
pub mod events;
pub mod git_revert;
pub mod git_source;
pub mod isolate;
pub mod observe;
pub mod pods;
pub mod status_write;
pub mod workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::crd::Rollout;
use crate::engine::{self, Write};
use crate::metrics::Metrics;

/// Delay before a failed reconcile is retried.
pub const ERROR_RETRY: Duration = Duration::from_secs(10);
/// After writing, look again soon to observe the effect.
pub const AFTER_WRITE: Duration = Duration::from_secs(2);
/// Delay before a reconcile that panicked is tried again: long enough that a
/// poisoned object costs little, short enough that a fix is picked up soon.
pub const PANIC_RETRY: Duration = Duration::from_secs(60);

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a kind of object failed.
    #[error("cannot read {0}: {1}")]
    Read(&'static str, #[source] kube::Error),
    /// Writing an object failed.
    #[error("cannot write {0} {1}: {2}")]
    Write(&'static str, String, #[source] kube::Error),
    /// The reconcile panicked (a bug); caught so that other objects go on.
    #[error("reconcile panicked: {0}")]
    Panicked(String),
}

impl Error {
    /// Short label for metrics.
    pub fn metric_label(&self) -> String {
        match self {
            Error::Read(kind, _) => format!("Read{}", kind.replace(' ', "")),
            Error::Write(kind, _, _) => format!("Write{}", kind.replace(' ', "")),
            Error::Panicked(_) => "Panicked".into(),
        }
    }
}

/// What every part of the controller talks to the world through: the API,
/// the metrics and Events. The Git and alert workers get only this.
pub struct Io {
    /// API client.
    pub client: Client,
    /// The same identity without the client's retry of 429: an eviction
    /// refused by a PodDisruptionBudget comes back as a refusal at once.
    pub evictions: Client,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Publishes core/v1 Events, folding exact repeats into a count.
    pub events: events::EventWriter,
}

/// Shared state of the controller.
pub struct Context {
    pub io: Arc<Io>,
    /// Reverts the image commit in Git after an abort.
    pub git: Arc<git_revert::GitReverter>,
    /// Sends alerts about the Rollouts' events.
    pub alerts: Arc<alerts::Alerter>,
}

/// Reconcile one Rollout.
pub async fn reconcile(rollout: Arc<Rollout>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    if rollout.meta().deletion_timestamp.is_some() {
        ctx.io.metrics.forget_rollout(
            &rollout.namespace().unwrap_or_default(),
            &rollout.name_any(),
        );
        return Ok(Action::await_change());
    }
    let result = match isolate::isolate(reconcile_inner(&rollout, &ctx)).await {
        Ok(result) => result,
        Err(panic) => {
            report_panic(&ctx, &rollout, &panic).await;
            Err(Error::Panicked(panic))
        }
    };
    match &result {
        Ok(_) => ctx.io.metrics.reconciled(started.elapsed()),
        Err(err) => ctx
            .io
            .metrics
            .failed(&err.metric_label(), started.elapsed()),
    }
    result
}

async fn reconcile_inner(rollout: &Rollout, ctx: &Arc<Context>) -> Result<Action, Error> {
    // With `workloadRef`, the Deployment's template first: everything after
    // plans the Rollout as if it carried that template.
    let workload = if rollout.name_any().len() > crate::crd::limits::MAX_NAME {
        None
    } else {
        workload::observe(&ctx.io.client, rollout).await?
    };
    match engine::workload::resolve(rollout, workload.as_ref()) {
        Ok(resolved) => reconcile_resolved(&resolved, workload, ctx).await,
        Err(problems) => {
            let plan = engine::plan::unresolved(rollout, &problems, Timestamp::now());
            carry_out(rollout, ctx, &engine::Observed::default(), plan).await
        }
    }
}

async fn reconcile_resolved(
    rollout: &Rollout,
    workload: Option<engine::Lookup<engine::workload::WorkloadState>>,
    ctx: &Arc<Context>,
) -> Result<Action, Error> {
    // A name too long for a label value cannot be looked up by label (the
    // API server refuses the selector): the plan reports it as InvalidSpec
    // without reading the cluster.
    // The spec is validated once: the reads and the plan share the result.
    let settings = engine::spec::settings(rollout);
    let now = Timestamp::now();
    let observed = if rollout.name_any().len() > crate::crd::limits::MAX_NAME {
        engine::Observed::default()
    } else {
        let mut observed =
            observe::observe(&ctx.io.client, rollout, settings.as_ref().ok()).await?;
        observed.pods = pods::in_flight(&ctx.io.client, rollout).await?;
        observed.restart_pods = pods::for_restart(&ctx.io.client, rollout, now).await?;
        observed.workload = workload;
        observed
    };
    let plan = engine::plan::plan_with(rollout, settings, &observed, now);
    carry_out(rollout, ctx, &observed, plan).await
}

/// Apply `plan`'s writes, then the status, the Events, Git and the alerts.
async fn carry_out(
    rollout: &Rollout,
    ctx: &Arc<Context>,
    observed: &engine::Observed,
    plan: engine::Plan,
) -> Result<Action, Error> {
    let key = format!(
        "{}/{}",
        rollout.namespace().unwrap_or_default(),
        rollout.name_any()
    );
    let mut eviction_refused = false;
    for write in &plan.writes {
        log_write(&key, write);
        if let Write::EvictPod { name } = write {
            eviction_refused |= !restart_pod(ctx, rollout, name).await;
            continue;
        }
        if let Err(err) = apply::apply(&ctx.io.client, rollout, write).await {
            publish(ctx, rollout, true, "WriteFailed", &err.to_string()).await;
            return Err(err);
        }
    }
    let status_changed = rollout.status.as_ref() != Some(&plan.status);
    if status_changed {
        apply::write_status(&ctx.io.client, rollout, &plan.status).await?;
    }
    for event in &plan.events {
        publish(ctx, rollout, event.warning, &event.reason, &event.note).await;
    }
    ctx.io.metrics.rollout_status(
        &rollout.namespace().unwrap_or_default(),
        &rollout.name_any(),
        rollout.status.as_ref(),
        &plan.status,
    );
    // After the traffic writes: Git never delays them.
    let git_retry = ctx.git.consider(&ctx.io, rollout, observed, &plan.status);
    ctx.alerts.consider(&ctx.io, rollout, &plan.status);
    let mut requeue = if plan.writes.is_empty() {
        plan.requeue_after
    } else {
        plan.requeue_after.min(AFTER_WRITE)
    };
    if let Some(wait) = git_retry {
        requeue = requeue.min(wait);
    }
    if eviction_refused {
        // A PodDisruptionBudget said no: ask again later, not in a hot loop.
        requeue = requeue.max(EVICTION_RETRY);
    }
    Ok(Action::requeue(requeue))
}

/// Delay before an eviction refused by a PodDisruptionBudget is tried again.
pub const EVICTION_RETRY: Duration = Duration::from_secs(10);

/// Evict one pod for a restart and say how it went in an Event; true when
/// it is on its way out. A refusal or an error never fails the reconcile:
/// the status and the other writes matter more, and the next pass retries.
async fn restart_pod(ctx: &Context, rollout: &Rollout, pod: &str) -> bool {
    use engine::restart::{POD_RESTARTED, RESTART_BLOCKED};
    let namespace = rollout.namespace().unwrap_or_else(|| "default".into());
    let retry = EVICTION_RETRY.as_secs();
    let (warning, reason, note, moving) = match pods::evict(&ctx.io.evictions, &namespace, pod)
        .await
    {
        Ok(pods::Eviction::Accepted) => (
            false,
            POD_RESTARTED,
            format!(
                "evicted pod {pod} for the restart; its ReplicaSet replaces it (same revision)"
            ),
            true,
        ),
        Ok(pods::Eviction::Gone) => return true,
        Ok(pods::Eviction::Refused(why)) => (
            true,
            RESTART_BLOCKED,
            format!(
                "eviction of pod {pod} refused (a PodDisruptionBudget allows no disruption now: {why}); retrying in {retry}s, never by force"
            ),
            false,
        ),
        Err(err) => (
            true,
            RESTART_BLOCKED,
            format!("cannot evict pod {pod} for the restart: {err}; retrying in {retry}s"),
            false,
        ),
    };
    publish(ctx, rollout, warning, reason, &note).await;
    moving
}

/// Put a caught panic on the Rollout: a `Degraded` condition and a Warning
/// Event saying what happened. Best effort: the status write may fail too.
async fn report_panic(ctx: &Context, rollout: &Rollout, panic: &str) {
    let message = format!(
        "the controller failed on this Rollout (a bug, please report it): {panic}; retrying every {}s",
        PANIC_RETRY.as_secs()
    );
    let old = rollout.status.clone().unwrap_or_default();
    let outcome = engine::conditions::PlanOutcome {
        phase: crate::crd::RolloutPhase::Degraded,
        reason: crate::engine::reasons::RECONCILE_PANICKED.into(),
        message: message.clone(),
    };
    let mut status = old.clone();
    status.phase = Some(outcome.phase);
    status.message = Some(message.clone());
    status.conditions = engine::conditions::conditions(
        &outcome,
        rollout.metadata.generation,
        &old.conditions,
        Timestamp::now(),
    );
    if let Err(err) = isolate::isolate(apply::write_status(&ctx.io.client, rollout, &status))
        .await
        .unwrap_or_else(|panic| Err(Error::Panicked(panic)))
    {
        warn!(rollout = %rollout.name_any(), error = %err, "cannot record the panic in status");
    }
    publish(
        ctx,
        rollout,
        true,
        crate::engine::reasons::RECONCILE_PANICKED,
        &message,
    )
    .await;
}

fn log_write(key: &str, write: &Write) {
    match write {
        Write::ApplyReplicaSet(rs) => {
            info!(rollout = key, revision = %rs.hash, replicas = rs.replicas, "scale ReplicaSet")
        }
        Write::DeleteReplicaSet { name } => {
            info!(rollout = key, replicaset = %name, "prune ReplicaSet")
        }
        Write::ClaimService { service, .. } => {
            info!(rollout = key, %service, "claim Service for this Rollout")
        }
        Write::SelectRevision { service, revision } => {
            info!(rollout = key, %service, %revision, "point Service")
        }
        Write::SetRouteWeights {
            kind,
            name,
            canary_weight,
            ..
        } => {
            info!(rollout = key, route = %name, kind = kind.kind(), canary_weight, "set route weights")
        }
        Write::CreateAnalysisRun { name, .. } => {
            info!(rollout = key, analysisrun = %name, "create AnalysisRun")
        }
        Write::TerminateAnalysisRun { name } => {
            info!(rollout = key, analysisrun = %name, "terminate AnalysisRun: nothing waits on it")
        }
        Write::DeleteAnalysisRun { name } => {
            info!(rollout = key, analysisrun = %name, "delete AnalysisRun beyond the history limit")
        }
        Write::EvictPod { name } => {
            info!(rollout = key, pod = %name, "evict pod for a restart")
        }
        Write::ScaleDeployment { name, replicas } => {
            info!(rollout = key, deployment = %name, replicas, "scale down the adopted Deployment")
        }
    }
}

async fn publish(ctx: &Context, rollout: &Rollout, warning: bool, reason: &str, note: &str) {
    publish_as(&ctx.io, rollout, "Reconcile", warning, reason, note).await
}

/// Log `note` and publish it as an Event on `rollout` for `action`.
pub(crate) async fn publish_as(
    io: &Io,
    rollout: &Rollout,
    action: &str,
    warning: bool,
    reason: &str,
    note: &str,
) {
    if warning {
        warn!(rollout = %rollout.name_any(), reason, "{note}");
    } else {
        info!(rollout = %rollout.name_any(), reason, "{note}");
    }
    io.events
        .publish(rollout, action, warning, reason, note)
        .await;
}

/// What to do after a failed reconcile: log it and retry later, never hot-loop.
pub fn error_policy(rollout: Arc<Rollout>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(rollout = %rollout.name_any(), error = %error, "reconcile failed");
    match error {
        Error::Panicked(_) => Action::requeue(PANIC_RETRY),
        _ => Action::requeue(ERROR_RETRY),
    }
}
