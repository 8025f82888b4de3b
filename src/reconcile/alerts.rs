//! Running alert deliveries beside the reconcile loop.
//!
//! The reconcile only asks [`Alerter::consider`] whether a Rollout may have
//! alerts due (pure, in memory) and, if so, puts its key on a bounded queue.
//! A few workers take keys off the queue, one Rollout at a time each: they
//! read the Rollout afresh, decide what is due ([`crate::alerts::due`]),
//! record `Sending` in `status.alerts`, deliver, and record the result, all
//! under the field manager `sluice-alerts`. A full queue drops the key (and
//! counts it): the next reconcile puts it back, so nothing is lost, and the
//! traffic revert never waits for a webhook.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::Context;
use super::git_revert::images;
use super::observe::observe;
use crate::alerts::message::{pagerduty, slack, teams};
use crate::alerts::{Action, Due, Outcome, Outgoing, Policy, TargetKey, build, deliver, due};
use crate::crd::{
    AlertRecord, AlertTarget, AlertTargetStatus, AlertTargetType, AnalysisPhase, AnalysisRun,
    ClusterAlertTarget, Rollout, RolloutStatus,
};

const FIELD_MANAGER: &str = "sluice-alerts";
const PAGERDUTY_EVENTS: &str = "https://events.pagerduty.com/v2/enqueue";
/// Deliveries this process made, remembered in case recording them failed.
const REMEMBERED: usize = 10_000;

/// A target as read from the cluster, without its secrets.
#[derive(Debug, Clone)]
struct TargetSettings {
    kind: AlertTargetType,
    secret: (String, String),
    endpoint: Option<String>,
    policy: Policy,
    status: AlertTargetStatus,
}

/// The queue, the workers' bookkeeping and the HTTP client.
pub struct Alerter {
    sender: mpsc::Sender<String>,
    receiver: tokio::sync::Mutex<mpsc::Receiver<String>>,
    /// Keys queued or being worked on; one worker per Rollout.
    queued: Mutex<HashSet<String>>,
    /// Keys asked for again while a worker had them.
    again: Mutex<HashSet<String>>,
    /// Target types seen, so `consider` can decide without the API.
    types: Mutex<HashMap<String, AlertTargetType>>,
    /// `rollout key + event id + target` delivered by this process.
    delivered: Mutex<HashSet<String>>,
    http: reqwest::Client,
    /// Overrides every target's retry delays (tests make them short).
    base_delay: Duration,
}

impl Alerter {
    /// An alerter whose queue holds `capacity` Rollouts.
    pub fn new(capacity: usize, base_delay: Duration) -> Alerter {
        crate::install_crypto_provider();
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let http = reqwest::Client::builder()
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Alerter {
            sender,
            receiver: tokio::sync::Mutex::new(receiver),
            queued: Mutex::default(),
            again: Mutex::default(),
            types: Mutex::default(),
            delivered: Mutex::default(),
            http,
            base_delay,
        }
    }

    /// Start `workers` delivery tasks.
    pub fn start(self: &Arc<Self>, ctx: &Arc<Context>, workers: usize) {
        for _ in 0..workers.max(1) {
            let (this, ctx) = (self.clone(), ctx.clone());
            tokio::spawn(async move {
                loop {
                    let next = this.receiver.lock().await.recv().await;
                    let Some(key) = next else { break };
                    ctx.metrics
                        .alert_queue_depth(this.sender.max_capacity() - this.sender.capacity());
                    loop {
                        this.process(&ctx, &key).await;
                        let more = this
                            .again
                            .lock()
                            .map(|mut a| a.remove(&key))
                            .unwrap_or(false);
                        if !more {
                            break;
                        }
                    }
                    if let Ok(mut queued) = this.queued.lock() {
                        queued.remove(&key);
                    }
                }
            });
        }
    }

    /// Queue `rollout` if `status` may have alerts due. Never waits.
    pub fn consider(&self, ctx: &Context, rollout: &Rollout, status: &RolloutStatus) {
        let Some(alerts) = &rollout.spec.alerts else {
            return;
        };
        if alerts.subscriptions.is_empty() {
            return;
        }
        let namespace = rollout.namespace().unwrap_or_default();
        // A target not read yet counts as PagerDuty, the type the most alerts are due for.
        let mut kinds = BTreeMap::new();
        if let Ok(types) = self.types.lock() {
            for target in crate::alerts::events::subscribed_targets(rollout, &namespace) {
                let kind = types
                    .get(&target.label())
                    .copied()
                    .unwrap_or(AlertTargetType::PagerDuty);
                kinds.insert(target, kind);
            }
        }
        if due(rollout, &namespace, status, &kinds, Timestamp::now()).is_empty() {
            return;
        }
        let key = format!("{namespace}/{}", rollout.name_any());
        {
            let Ok(mut queued) = self.queued.lock() else {
                return;
            };
            if queued.contains(&key) {
                if let Ok(mut again) = self.again.lock() {
                    again.insert(key);
                }
                return;
            }
            queued.insert(key.clone());
        }
        match self.sender.try_send(key.clone()) {
            Ok(()) => ctx
                .metrics
                .alert_queue_depth(self.sender.max_capacity() - self.sender.capacity()),
            Err(_) => {
                warn!(rollout = %key, "alert queue is full; the next reconcile queues this Rollout again");
                ctx.metrics.alert_queue_dropped();
                if let Ok(mut queued) = self.queued.lock() {
                    queued.remove(&key);
                }
            }
        }
    }

    async fn process(&self, ctx: &Context, key: &str) {
        let Some((namespace, name)) = key.split_once('/') else {
            return;
        };
        let api: Api<Rollout> = Api::namespaced(ctx.client.clone(), namespace);
        let rollout = match api.get_opt(name).await {
            Ok(Some(rollout)) => rollout,
            Ok(None) => return,
            Err(e) => {
                warn!(rollout = %key, error = %e, "cannot read the Rollout to send its alerts");
                return;
            }
        };
        let status = rollout.status.clone().unwrap_or_default();
        let mut targets = BTreeMap::new();
        for target in crate::alerts::events::subscribed_targets(&rollout, namespace) {
            match read_target(ctx, &target).await {
                Ok(settings) => {
                    if let Ok(mut types) = self.types.lock() {
                        types.insert(target.label(), settings.kind);
                    }
                    targets.insert(target, settings);
                }
                Err(message) => {
                    publish(ctx, &rollout, true, "AlertTargetUnavailable", &message).await;
                }
            }
        }
        let kinds = targets.iter().map(|(k, s)| (k.clone(), s.kind)).collect();
        let due = due(&rollout, namespace, &status, &kinds, Timestamp::now());
        if due.is_empty() {
            return;
        }
        // What the message needs: the images and the analysis behind the event.
        let observed = observe(&ctx.client, &rollout).await.ok();
        let mut records = status.alerts.clone();
        let current = crate::alerts::occurrences(&status);
        for item in due {
            let Some(settings) = targets.get_mut(&item.target) else {
                continue;
            };
            let label = item.target.label();
            let memory = format!("{key} {} {label}", item.occurrence.id);
            let already = self
                .delivered
                .lock()
                .map(|d| d.contains(&memory))
                .unwrap_or(false);
            let event = item.occurrence.trigger.name();
            let kind = settings.kind.as_str();
            let record = |state: &str, attempts: i32, message: Option<String>| AlertRecord {
                event_id: item.occurrence.id.clone(),
                target: label.clone(),
                state: state.into(),
                attempts,
                at: Time(Timestamp::now()),
                message,
            };
            if already {
                // Delivered by this process but not recorded: record, do not resend.
                let done = record("Sent", 1, Some("delivered".into()));
                records = crate::alerts::events::upsert(&records, done, &current);
                let _ = write_records(ctx, &rollout, &records).await;
                continue;
            }
            if item.action == Action::MarkUnconfirmed {
                let note = format!(
                    "{event} alert to {label}: a restart interrupted its delivery and {kind} cannot deduplicate, so it is not sent again"
                );
                let unconfirmed = record("Unconfirmed", 0, Some(note.clone()));
                records = crate::alerts::events::upsert(&records, unconfirmed, &current);
                if write_records(ctx, &rollout, &records).await {
                    ctx.metrics.alert(kind, event, "unconfirmed");
                    publish(ctx, &rollout, true, "AlertUnconfirmed", &note).await;
                }
                continue;
            }
            let outgoing = match self
                .outgoing(ctx, &rollout, &status, &item, settings, observed.as_ref())
                .await
            {
                Ok(outgoing) => outgoing,
                Err(message) => {
                    // A configuration problem: not recorded, so fixing it sends the alert.
                    publish(ctx, &rollout, true, "AlertTargetUnavailable", &message).await;
                    record_target(
                        ctx,
                        &item.target,
                        settings,
                        false,
                        "SecretInvalid",
                        &message,
                    )
                    .await;
                    continue;
                }
            };
            records = crate::alerts::events::upsert(&records, record("Sending", 0, None), &current);
            if !write_records(ctx, &rollout, &records).await {
                // Without the record a restart could send it twice: try again later.
                continue;
            }
            let mut policy = settings.policy;
            policy.base_delay = self.base_delay;
            let delivery = deliver(&self.http, &outgoing, &policy).await;
            ctx.metrics.alert_attempts(kind, &delivery.attempt_results);
            let attempts = i32::try_from(delivery.attempts).unwrap_or(i32::MAX);
            let tries = if attempts == 1 {
                "1 attempt".to_string()
            } else {
                format!("{attempts} attempts")
            };
            let (state, result, note) = match &delivery.outcome {
                Outcome::Delivered { status } => (
                    "Sent",
                    "delivered",
                    format!("{event} alert delivered to {label} (HTTP {status}, {tries})"),
                ),
                Outcome::Rejected { detail, .. } => (
                    "Failed",
                    "rejected",
                    format!("{event} alert to {label} rejected, not retried: {detail}"),
                ),
                Outcome::GaveUp { detail } => (
                    "Failed",
                    "gave_up",
                    format!("{event} alert to {label} given up after {tries}: {detail}"),
                ),
            };
            if state == "Sent"
                && let Ok(mut delivered) = self.delivered.lock()
            {
                if delivered.len() >= REMEMBERED {
                    delivered.clear();
                }
                delivered.insert(memory);
            }
            records = crate::alerts::events::upsert(
                &records,
                record(state, attempts, Some(note.clone())),
                &current,
            );
            for _ in 0..3 {
                if write_records(ctx, &rollout, &records).await {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            ctx.metrics.alert(kind, event, result);
            let ok = state == "Sent";
            publish(
                ctx,
                &rollout,
                !ok,
                if ok { "AlertSent" } else { "AlertFailed" },
                &note,
            )
            .await;
            let reason = if ok { "Delivering" } else { "DeliveryFailing" };
            record_target(ctx, &item.target, settings, ok, reason, &note).await;
        }
    }

    /// Read the target's Secret and render the body for its type.
    async fn outgoing(
        &self,
        ctx: &Context,
        rollout: &Rollout,
        status: &RolloutStatus,
        item: &Due,
        settings: &TargetSettings,
        observed: Option<&crate::engine::Observed>,
    ) -> Result<Outgoing, String> {
        let (secret_ns, secret_name) = &settings.secret;
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), secret_ns);
        let secret = secrets.get(secret_name).await.map_err(|e| {
            format!(
                "cannot read Secret {secret_ns}/{secret_name} of {}: {e}",
                item.target.label()
            )
        })?;
        let data = secret.data.unwrap_or_default();
        let value = |key: &str| {
            data.get(key)
                .map(|v| String::from_utf8_lossy(&v.0).trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let missing = |key: &str| {
            format!(
                "Secret {secret_ns}/{secret_name} of {} has no `{key}` key",
                item.target.label()
            )
        };
        let revision = &item.occurrence.revision;
        let stable = status.stable_revision.clone().unwrap_or_default();
        let found_images = observed.and_then(|o| images(o, revision, &stable));
        let run = observed.and_then(|o| analysis_run(o, status, revision));
        let alert = build(&crate::alerts::Input {
            rollout,
            status,
            occurrence: &item.occurrence,
            severity: item.severity,
            images: found_images,
            run,
        });
        let (url, body, signing_key) = match settings.kind {
            AlertTargetType::Slack => (
                value("url").ok_or_else(|| missing("url"))?,
                slack(&alert),
                None,
            ),
            AlertTargetType::Teams => (
                value("url").ok_or_else(|| missing("url"))?,
                teams(&alert),
                None,
            ),
            AlertTargetType::PagerDuty => {
                let key = value("routingKey").ok_or_else(|| missing("routingKey"))?;
                let url = settings
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| PAGERDUTY_EVENTS.into());
                (url, pagerduty(&alert, &key), None)
            }
            AlertTargetType::Webhook => (
                value("url").ok_or_else(|| missing("url"))?,
                serde_json::to_value(&alert).unwrap_or_default(),
                value("signingKey").map(String::into_bytes),
            ),
        };
        Ok(Outgoing {
            url,
            body: serde_json::to_vec(&body).unwrap_or_default(),
            signing_key,
            event_id: item.occurrence.id.clone(),
            event: item.occurrence.trigger.name().into(),
        })
    }
}

/// The AnalysisRun behind the event: the failed (or erroring) run of the revision.
fn analysis_run<'a>(
    observed: &'a crate::engine::Observed,
    status: &RolloutStatus,
    revision: &str,
) -> Option<&'a AnalysisRun> {
    let named = [&status.current_analysis, &status.background_analysis]
        .into_iter()
        .flatten()
        .map(|r| r.name.clone())
        .collect::<Vec<_>>();
    let runs = || {
        observed
            .analysis_runs
            .iter()
            .filter(|r| r.spec.canary_revision == revision)
    };
    let phase = |r: &AnalysisRun| r.status.as_ref().and_then(|s| s.phase);
    runs()
        .find(|r| matches!(phase(r), Some(AnalysisPhase::Failed | AnalysisPhase::Error)))
        .or_else(|| runs().find(|r| named.contains(&r.name_any())))
}

async fn read_target(ctx: &Context, target: &TargetKey) -> Result<TargetSettings, String> {
    let parse = |timeout: &Option<String>, attempts: Option<i32>| {
        let defaults = Policy::default();
        Policy {
            timeout: timeout
                .as_deref()
                .and_then(|t| humantime::parse_duration(t).ok())
                .unwrap_or(defaults.timeout),
            max_attempts: attempts
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(defaults.max_attempts),
            ..defaults
        }
    };
    match &target.namespace {
        Some(ns) => {
            let api: Api<AlertTarget> = Api::namespaced(ctx.client.clone(), ns);
            let found = api
                .get(&target.name)
                .await
                .map_err(|e| unreadable(target, &e))?;
            Ok(TargetSettings {
                kind: found.spec.type_,
                secret: (ns.clone(), found.spec.secret_name.clone()),
                endpoint: found.spec.endpoint.clone(),
                policy: parse(&found.spec.timeout, found.spec.max_attempts),
                status: found.status.unwrap_or_default(),
            })
        }
        None => {
            let api: Api<ClusterAlertTarget> = Api::all(ctx.client.clone());
            let found = api
                .get(&target.name)
                .await
                .map_err(|e| unreadable(target, &e))?;
            Ok(TargetSettings {
                kind: found.spec.type_,
                secret: (
                    found.spec.secret_namespace.clone(),
                    found.spec.secret_name.clone(),
                ),
                endpoint: found.spec.endpoint.clone(),
                policy: parse(&found.spec.timeout, found.spec.max_attempts),
                status: found.status.unwrap_or_default(),
            })
        }
    }
}

fn unreadable(target: &TargetKey, error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 404 => {
            format!(
                "{} does not exist: alerts for it wait until it does",
                target.label()
            )
        }
        other => format!("cannot read {}: {other}", target.label()),
    }
}

/// Write `status.alerts`; false when the API server refused.
async fn write_records(ctx: &Context, rollout: &Rollout, records: &[AlertRecord]) -> bool {
    let api: Api<Rollout> =
        Api::namespaced(ctx.client.clone(), &rollout.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": { "name": rollout.name_any() },
        "status": { "alerts": records },
    });
    match api
        .patch_status(
            &rollout.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => true,
        Err(e) => {
            warn!(rollout = %rollout.name_any(), error = %e, "cannot record alert state");
            false
        }
    }
}

/// Keep the target's `Ready` condition and failure count current.
async fn record_target(
    ctx: &Context,
    target: &TargetKey,
    settings: &mut TargetSettings,
    ok: bool,
    reason: &str,
    note: &str,
) {
    let old = &settings.status;
    let now = Time(Timestamp::now());
    let status_word = if ok { "True" } else { "False" };
    let since = old
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == status_word)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    let status = AlertTargetStatus {
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: status_word.into(),
            reason: reason.into(),
            message: note.chars().take(1000).collect(),
            observed_generation: None,
            last_transition_time: since,
        }],
        consecutive_failures: if ok {
            0
        } else {
            old.consecutive_failures.saturating_add(1)
        },
        last_delivered: if ok {
            Some(now.clone())
        } else {
            old.last_delivered.clone()
        },
        last_failed: if ok {
            old.last_failed.clone()
        } else {
            Some(now)
        },
        last_error: if ok {
            old.last_error.clone()
        } else {
            Some(note.chars().take(500).collect())
        },
    };
    let (kind, result) = match &target.namespace {
        Some(ns) => {
            let api: Api<AlertTarget> = Api::namespaced(ctx.client.clone(), ns);
            let patch = json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "AlertTarget", "metadata": {"name": target.name}, "status": status});
            (
                "AlertTarget",
                api.patch_status(
                    &target.name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
                .map(|_| ()),
            )
        }
        None => {
            let api: Api<ClusterAlertTarget> = Api::all(ctx.client.clone());
            let patch = json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "ClusterAlertTarget", "metadata": {"name": target.name}, "status": status});
            (
                "ClusterAlertTarget",
                api.patch_status(
                    &target.name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
                .map(|_| ()),
            )
        }
    };
    if let Err(e) = result {
        debug!(target = %target.label(), error = %e, "cannot update {kind} status");
    }
    settings.status = status;
}

async fn publish(ctx: &Context, rollout: &Rollout, warning: bool, reason: &str, note: &str) {
    super::publish_as(ctx, rollout, "Alert", warning, reason, note).await
}
