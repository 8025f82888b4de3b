//! The analysis loop: takes the measurements an AnalysisRun has due, judges
//! them, and writes the numbers and the verdict into the run's status, where
//! the Rollout's step is waiting for it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Secret, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::analysis_job::{DueJob, JOB_POLL};
use super::status_write::{ENGINE_MANAGER, apply_status, get_scoped};
use super::{Context, ERROR_RETRY};
use crate::analysis::measure::{Live, Prepared, Source, measure, prepare_metric};
use crate::analysis::prometheus::Credentials;
use crate::analysis::redact::Redactor;
use crate::analysis::run::{VerdictKind, deadline, new_result, next_due, record, verdict_at};
use crate::analysis::template::Bindings;
use crate::crd::{
    AnalysisPhase, AnalysisRun, AnalysisRunStatus, AnalysisTemplate, AnalysisTemplateSpec,
    ClusterAnalysisTemplate,
};

/// Why an analysis reconcile failed (the run's own problems go into its status instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the status of AnalysisRun {0}: {1}")]
    WriteStatus(String, #[source] kube::Error),
    /// The reconcile panicked (a bug); caught so that other runs go on.
    #[error("analysis reconcile panicked: {0}")]
    Panicked(String),
}

/// What stops a run before any measurement: reported as the run's Error verdict.
#[derive(Debug, thiserror::Error)]
enum Setup {
    #[error("template {0} not found")]
    TemplateMissing(String),
    #[error("cannot read template {0}: {1}")]
    TemplateRead(String, String),
    #[error("argument {0} has no value (give it in the Rollout step or the template)")]
    ArgMissing(String),
    #[error("cannot read Secret {0} key {1}: {2}")]
    Secret(String, String, String),
    #[error("{0}")]
    Invalid(String),
}

async fn secret_value(
    client: &Client,
    namespace: &str,
    selector: &SecretKeySelector,
) -> Result<String, Setup> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let fail = |m: String| Setup::Secret(selector.name.clone(), selector.key.clone(), m);
    let secret = api
        .get(&selector.name)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&selector.key))
        .ok_or_else(|| fail("no such key".into()))?;
    String::from_utf8(bytes.0.clone()).map_err(|_| fail("not UTF-8".into()))
}

/// The spec of template `name`: a ClusterAnalysisTemplate, or an
/// AnalysisTemplate of `namespace`.
async fn fetch_template(
    client: &Client,
    namespace: &str,
    name: &str,
    cluster_scope: bool,
) -> Result<AnalysisTemplateSpec, Setup> {
    let found = if cluster_scope {
        get_scoped::<ClusterAnalysisTemplate>(client, None, name)
            .await
            .map(|t| t.map(|t| t.spec.into()))
    } else {
        get_scoped::<AnalysisTemplate>(client, Some(namespace), name)
            .await
            .map(|t| t.map(|t| t.spec))
    };
    match found {
        Ok(Some(spec)) => Ok(spec),
        Ok(None) if cluster_scope => Err(Setup::TemplateMissing(format!(
            "ClusterAnalysisTemplate {name}"
        ))),
        Ok(None) => Err(Setup::TemplateMissing(format!(
            "AnalysisTemplate {namespace}/{name}"
        ))),
        Err(e) => Err(Setup::TemplateRead(name.to_string(), e.to_string())),
    }
}

/// `secrets` collects every Secret-sourced value read, for the [`Redactor`].
/// `secret_args` collects, per template, the names of its arguments read from Secrets.
async fn prepare(
    client: &Client,
    run: &AnalysisRun,
    secrets: &mut Vec<String>,
    secret_args: &mut BTreeMap<String, BTreeSet<String>>,
) -> Result<Vec<Prepared>, Setup> {
    let namespace = run.namespace().unwrap_or_else(|| "default".into());
    let mut prepared = Vec::new();
    for reference in &run.spec.templates {
        let name = &reference.template_name;
        let spec = fetch_template(client, &namespace, name, reference.cluster_scope).await?;
        let bound = crate::analysis::args::bind(&run.spec, &namespace, &spec.args)
            .map_err(Setup::ArgMissing)?;
        let mut args = bound.values;
        for (arg, selector) in bound.from_secrets {
            secret_args
                .entry(name.clone())
                .or_default()
                .insert(arg.to_string());
            let value = secret_value(client, &namespace, selector).await?;
            secrets.push(value.clone());
            args.insert(arg.to_string(), value);
        }
        for metric in &spec.metrics {
            let mut credentials = Credentials::default();
            if let Some(provider) = &metric.provider.prometheus {
                if let Some(selector) = &provider.bearer_token_secret {
                    let token = secret_value(client, &namespace, selector).await?;
                    secrets.push(token.clone());
                    credentials.bearer_token = Some(token);
                }
                if let Some(basic) = &provider.basic_auth {
                    let user = secret_value(client, &namespace, &basic.username_secret).await?;
                    let password = secret_value(client, &namespace, &basic.password_secret).await?;
                    secrets.extend([user.clone(), password.clone()]);
                    credentials.basic = Some((user, password));
                }
                if let Some(selector) = &provider.ca_secret {
                    credentials.ca_pem = Some(secret_value(client, &namespace, selector).await?);
                }
            }
            if let Some(web) = &metric.provider.web {
                for header in &web.headers {
                    if let Some(source) = &header.value_from {
                        let value =
                            secret_value(client, &namespace, &source.secret_key_ref).await?;
                        secrets.push(value.clone());
                        credentials.headers.insert(header.key.clone(), value);
                    }
                }
            }
            prepared
                .push(prepare_metric(name, metric, &args, credentials).map_err(Setup::Invalid)?);
        }
    }
    Ok(prepared)
}

async fn write_status(
    client: &Client,
    run: &AnalysisRun,
    status: &AnalysisRunStatus,
    redactor: &Redactor,
) -> Result<(), Error> {
    let namespace = run.namespace().unwrap_or_else(|| "default".into());
    let mut status = json!(status);
    // A provider may have echoed a Secret-sourced value into a message.
    redactor.json(&mut status);
    apply_status::<AnalysisRun>(
        client,
        Some(&namespace),
        &run.name_any(),
        ENGINE_MANAGER,
        status,
    )
    .await
    .map_err(|e| Error::WriteStatus(run.name_any(), e))
}

/// Reconcile one AnalysisRun: measure what is due, judge, write status, come back when the next measurement is due.
pub async fn reconcile(run: Arc<AnalysisRun>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    match super::isolate::isolate(reconcile_run(run, ctx.clone())).await {
        Ok(result) => result,
        Err(panic) => {
            ctx.io.metrics.failed("AnalysisPanicked", started.elapsed());
            Err(Error::Panicked(panic))
        }
    }
}

async fn reconcile_run(run: Arc<AnalysisRun>, ctx: Arc<Context>) -> Result<Action, Error> {
    let mut status = run.status.clone().unwrap_or_default();
    if status.phase.is_some_and(|p| p.is_finished()) {
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    if run.spec.terminate {
        // Before the status: a crash in between tries again.
        super::analysis_job::delete_running(&ctx, &run).await;
        status.phase = Some(AnalysisPhase::Terminated);
        status.message = Some("terminated: the rollout no longer waits on this run".into());
        write_status(&ctx.io.client, &run, &status, &Redactor::default()).await?;
        ctx.io.metrics.analysis_finished(
            &run.namespace().unwrap_or_default(),
            &run.spec.rollout,
            AnalysisPhase::Terminated,
        );
        return Ok(Action::await_change());
    }
    let (mut secrets, mut secret_args) = (Vec::new(), BTreeMap::new());
    let prepared = prepare(&ctx.io.client, &run, &mut secrets, &mut secret_args).await;
    let redactor = Redactor::new(&secrets);
    let prepared = match prepared {
        Ok(p) => p,
        Err(setup) => {
            let error = redactor.text(&setup.to_string());
            warn!(run = %run.name_any(), %error, "analysis cannot start");
            status.phase = Some(AnalysisPhase::Error);
            status.message = Some(error);
            write_status(&ctx.io.client, &run, &status, &redactor).await?;
            ctx.io.metrics.analysis_finished(
                &run.namespace().unwrap_or_default(),
                &run.spec.rollout,
                AnalysisPhase::Error,
            );
            return Ok(Action::await_change());
        }
    };
    // A start in the future (a hostile or broken status) would hold every measurement back.
    let started = status
        .started_at
        .as_ref()
        .map(|t| t.0)
        .filter(|t| *t <= now)
        .unwrap_or(now);
    status.started_at = Some(Time(started));
    status.baseline = Some(if run.spec.dedicated_baseline {
        format!(
            "dedicated baseline {} (the stable template, started with the canary at its size)",
            run.spec.stable_revision
        )
    } else {
        format!(
            "stable pods {} (no dedicated baseline)",
            run.spec.stable_revision
        )
    });
    if status.metrics.len() != prepared.len() {
        status.metrics = prepared.iter().map(|p| new_result(&p.plan)).collect();
    }
    let comparisons = prepared
        .iter()
        .filter(|p| !p.plan.metric.dry_run && p.plan.verdict.is_comparison())
        .count();
    // (metric, verdict of its new measurement), counted once the status is written.
    let mut measured = Vec::new();
    // Metrics whose Job still runs: read back every JOB_POLL, not when "due".
    let mut job_running = vec![false; prepared.len()];
    let job_keys = job_metric_keys(&prepared);
    let no_secrets = BTreeSet::new();
    let namespace = run.namespace().unwrap_or_else(|| "default".into());
    for (i, (p, result)) in prepared.iter().zip(status.metrics.iter_mut()).enumerate() {
        if next_due(result, &p.plan, started).is_some_and(|due| due <= now) {
            let outcome = match (&p.source, &p.plan.verdict) {
                (Source::Job(provider), VerdictKind::Job { timeout }) => {
                    let bindings = Bindings {
                        revision: Some(run.spec.canary_revision.clone()),
                        ..p.bindings.clone()
                    };
                    let due = DueJob {
                        provider,
                        bindings: &bindings,
                        secret_args: secret_args.get(&p.plan.template).unwrap_or(&no_secrets),
                        metric: &job_keys[i],
                        index: result.count,
                        timeout: *timeout,
                    };
                    match super::analysis_job::step(&ctx, &run, &due, now).await {
                        Some(outcome) => outcome,
                        None => {
                            job_running[i] = true;
                            continue;
                        }
                    }
                }
                _ => {
                    let live = Live {
                        client: &ctx.io.client,
                        namespace: &namespace,
                        previous: result.measurements.last(),
                    };
                    measure(
                        p,
                        &run.spec.canary_revision,
                        &run.spec.stable_revision,
                        now,
                        Some(&live),
                    )
                    .await
                }
            };
            record(result, &p.plan, outcome, now, comparisons);
            let verdict = result.measurements.last().map(|m| m.phase);
            measured.push((result.name.clone(), verdict.unwrap_or(AnalysisPhase::Error)));
        }
    }
    let deadline = deadline(prepared.iter().map(|p| &p.plan), started);
    let (phase, message) = verdict_at(&status.metrics, deadline, now);
    let finished_now = phase.is_finished() && status.phase != Some(phase);
    let changed = status.phase != Some(phase) || !measured.is_empty();
    status.phase = Some(phase);
    status.message = Some(message.clone());
    if finished_now && prepared.iter().any(|p| matches!(p.source, Source::Job(_))) {
        // Another metric decided the run: Jobs still running are not waited for.
        super::analysis_job::delete_running(&ctx, &run).await;
    }
    if changed {
        write_status(&ctx.io.client, &run, &status, &redactor).await?;
        let metrics = &ctx.io.metrics;
        for (metric, verdict) in &measured {
            metrics.measured(&namespace, &run.spec.rollout, metric, *verdict);
        }
        if finished_now {
            metrics.analysis_finished(&namespace, &run.spec.rollout, phase);
        }
        if phase.is_finished() {
            let message = redactor.text(&message);
            info!(run = %run.name_any(), verdict = phase.as_str(), %message, "analysis finished");
        }
    }
    if phase.is_finished() {
        return Ok(Action::await_change());
    }
    let polls = job_running
        .iter()
        .any(|running| *running)
        .then(|| crate::crd::limits::after(now, JOB_POLL));
    let next = prepared
        .iter()
        .zip(status.metrics.iter())
        .zip(&job_running)
        .filter(|(_, running)| !**running)
        .filter_map(|((p, r), _)| next_due(r, &p.plan, started))
        .chain([deadline])
        .chain(polls)
        .min()
        .unwrap_or(now);
    let wait = (next - now)
        .try_into()
        .ok()
        .and_then(|s: jiff::SignedDuration| Duration::try_from(s).ok())
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_millis(500));
    Ok(Action::requeue(wait))
}

/// The name each job metric's Jobs carry: the metric's, or `template-metric`
/// where two templates of the run share a metric name (their Jobs must differ).
fn job_metric_keys(prepared: &[Prepared]) -> Vec<String> {
    prepared
        .iter()
        .map(|p| {
            let name = &p.plan.metric.name;
            let shared = prepared
                .iter()
                .filter(|other| &other.plan.metric.name == name)
                .count()
                > 1;
            if shared {
                format!("{}-{name}", p.plan.template)
            } else {
                name.clone()
            }
        })
        .collect()
}

/// Failed reconciles (status writes) are retried after a pause.
pub fn error_policy(run: Arc<AnalysisRun>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(run = %run.name_any(), error = %error, "analysis reconcile failed");
    match error {
        Error::Panicked(_) => Action::requeue(super::PANIC_RETRY),
        _ => Action::requeue(ERROR_RETRY),
    }
}
