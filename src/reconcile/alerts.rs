//! Running alert deliveries beside the reconcile loop.
//!
//! The reconcile only asks [`Alerter::consider`] whether a Rollout may have
//! alerts due (pure, in memory) and, if so, puts its key on a bounded queue.
//! A few workers take keys off the queue, one Rollout at a time each: they
//! read the Rollout afresh, decide what is due ([`crate::alerts::due`]),
//! record `Sending` in `status.alerts`, deliver, and record the result
//! ([`crate::alerts::state`] says what it means), all under the field manager
//! `sluice-alerts`. A full queue drops the key (and
//! counts it): the next reconcile puts it back, so nothing is lost, and the
//! traffic revert never waits for a webhook.
//!
//! An alert that cannot be delivered yet (receiver down, Secret missing, a
//! cluster-scoped target that does not list the namespace) is recorded
//! `Pending` with its next attempt; a timer queues the Rollout again then,
//! and a restarted controller finds the record and carries on. It is given
//! up only when the target's `retryFor` is over.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::warn;

use super::Io;
use super::alert_keep_alive::{About, keep_alive};
use super::alert_outgoing::outgoing;
use super::alert_targets::{FIELD_MANAGER, TargetError, read_target, record_target};
use super::observe::observe;
use super::status_write::apply_status;
use crate::alerts::state::{Slot, event_reason, target_reason};
use crate::alerts::{Action, DeliveryOutcome, Policy, Trigger, alertmanager, deliver, due};
use crate::crd::{AlertRecord, AlertState, AlertTargetType, Rollout, RolloutStatus};

/// Deliveries this process made, remembered in case recording them failed.
const REMEMBERED: usize = 10_000;

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
    /// Longest wait between two rounds of a pending alert.
    max_retry_interval: Duration,
    /// When each Rollout with pending alerts is next queued by a timer.
    wakes: Mutex<HashMap<String, Timestamp>>,
    /// Alerts pending now (`rollout key + event id + target` → target type), for the gauge.
    pending: Mutex<HashMap<String, AlertTargetType>>,
}

impl Alerter {
    /// An alerter whose queue holds `capacity` Rollouts.
    pub fn new(capacity: usize, base_delay: Duration, max_retry_interval: Duration) -> Alerter {
        crate::install_crypto_provider();
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let http = crate::egress::guarded(
            reqwest::Client::builder().user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION"))),
            &crate::egress::current_denied_only(),
        )
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
            max_retry_interval,
            wakes: Mutex::default(),
            pending: Mutex::default(),
        }
    }

    /// Start `workers` delivery tasks.
    pub fn start(self: &Arc<Self>, io: &Arc<Io>, workers: usize) {
        for _ in 0..workers.max(1) {
            let (this, io) = (self.clone(), io.clone());
            tokio::spawn(async move {
                loop {
                    let next = this.receiver.lock().await.recv().await;
                    let Some(key) = next else { break };
                    io.metrics
                        .alert_queue_depth(this.sender.max_capacity() - this.sender.capacity());
                    loop {
                        this.process(&io, &key).await;
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

    /// Queue `rollout` if `status` may have alerts due, or set a timer for
    /// its pending ones. Never waits.
    pub fn consider(self: &Arc<Self>, io: &Arc<Io>, rollout: &Rollout, status: &RolloutStatus) {
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
        let key = format!("{namespace}/{}", rollout.name_any());
        if due(rollout, &namespace, status, &kinds, Timestamp::now()).is_empty() {
            if let Some(at) = crate::alerts::events::next_retry(rollout, &namespace, status) {
                self.wake_at(io, key, at);
            }
            return;
        }
        self.enqueue(io, key);
    }

    /// Put `key` on the queue unless a worker has it (then it goes round again).
    fn enqueue(&self, io: &Io, key: String) {
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
            Ok(()) => io
                .metrics
                .alert_queue_depth(self.sender.max_capacity() - self.sender.capacity()),
            Err(_) => {
                warn!(rollout = %key, "alert queue is full; the next reconcile queues this Rollout again");
                io.metrics.alert_queue_dropped();
                if let Ok(mut queued) = self.queued.lock() {
                    queued.remove(&key);
                }
            }
        }
    }

    /// Queue `key` at `at` (at once when that has passed), unless a timer
    /// for it fires sooner already.
    fn wake_at(self: &Arc<Self>, io: &Arc<Io>, key: String, at: Timestamp) {
        {
            let Ok(mut wakes) = self.wakes.lock() else {
                return;
            };
            if wakes.get(&key).is_some_and(|set| *set <= at) {
                return;
            }
            wakes.insert(key.clone(), at);
        }
        let (this, io) = (self.clone(), io.clone());
        let wait = Timestamp::now().duration_until(at).unsigned_abs();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let mine = this
                .wakes
                .lock()
                .map(|mut wakes| match wakes.get(&key) {
                    Some(set) if *set == at => wakes.remove(&key).is_some(),
                    _ => false,
                })
                .unwrap_or(false);
            // A sooner timer replaced this one and does the work.
            if mine {
                this.enqueue(&io, key);
            }
        });
    }

    /// Remember which alerts are pending and publish the count per target type.
    fn set_pending(&self, io: &Io, memory: &str, kind: AlertTargetType, pending: bool) {
        let Ok(mut all) = self.pending.lock() else {
            return;
        };
        if pending {
            all.insert(memory.to_string(), kind);
        } else {
            all.remove(memory);
        }
        let count = all.values().filter(|k| **k == kind).count();
        io.metrics.alerts_pending(kind.as_str(), count);
    }

    async fn process(self: &Arc<Self>, io: &Arc<Io>, key: &str) {
        let Some((namespace, name)) = key.split_once('/') else {
            return;
        };
        let api: Api<Rollout> = Api::namespaced(io.client.clone(), namespace);
        let rollout = match api.get_opt(name).await {
            Ok(Some(rollout)) => rollout,
            Ok(None) => return,
            Err(e) => {
                warn!(rollout = %key, error = %e, "cannot read the Rollout to send its alerts");
                return;
            }
        };
        let status = rollout.status.clone().unwrap_or_default();
        let defaults = Policy {
            base_delay: self.base_delay,
            max_retry_interval: self.max_retry_interval,
            ..Policy::default()
        };
        let mut targets = BTreeMap::new();
        let mut unreadable = Vec::new();
        for target in crate::alerts::events::subscribed_targets(&rollout, namespace) {
            match read_target(io, &target, namespace, &defaults).await {
                Ok(settings) => {
                    if let Ok(mut types) = self.types.lock() {
                        types.insert(target.label(), settings.kind);
                    }
                    targets.insert(target, settings);
                }
                Err(error) => {
                    let message = error.to_string();
                    publish(io, &rollout, true, "AlertTargetUnavailable", &message).await;
                    unreadable.push(target.label());
                }
            }
        }
        let kinds = targets.iter().map(|(k, s)| (k.clone(), s.kind)).collect();
        let due = due(&rollout, namespace, &status, &kinds, Timestamp::now());
        if due.is_empty() {
            self.wake_for_pending(io, key, &rollout, &status, &unreadable);
            return;
        }
        // What the message needs: the images and the analysis behind the event.
        let settings = crate::engine::spec::settings(&rollout).ok();
        let observed = observe(&io.client, &rollout, settings.as_ref()).await.ok();
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
            // A pending (or interrupted) alert keeps its attempts and its start.
            let previous = records
                .iter()
                .find(|r| r.event_id == item.occurrence.id && r.target == label)
                .filter(|r| matches!(r.state, AlertState::Pending | AlertState::Sending));
            let was_pending = previous.is_some_and(|r| r.state == AlertState::Pending);
            let earlier_attempts = previous.map_or(0, |r| r.attempts.max(0));
            let slot = Slot {
                event_id: &item.occurrence.id,
                target: &label,
                event,
                earlier_attempts,
                pending_since: previous.and_then(|r| r.pending_since.as_ref().map(|t| t.0)),
            };
            if item.action == Action::KeepAlive {
                let about = About {
                    rollout: &rollout,
                    status: &status,
                    observed: observed.as_ref(),
                };
                if let Some(kept) =
                    keep_alive(io, &self.http, about, &item, settings, &records).await
                {
                    records = crate::alerts::events::upsert(&records, kept, &current);
                    write_records(io, &rollout, &records).await;
                }
                continue;
            }
            if already {
                // Delivered by this process but not recorded: record, do not resend.
                let now = Timestamp::now();
                let mut done = slot.record(
                    AlertState::Sent,
                    earlier_attempts.max(1),
                    Some("delivered".into()),
                    now,
                );
                if settings.kind == AlertTargetType::Alertmanager
                    && crate::alerts::events::opens_incident(&done.event_id)
                {
                    // When it ends there is unknown: send it again now.
                    done.next_attempt = Some(Time(now));
                }
                records = crate::alerts::events::upsert(&records, done, &current);
                if write_records(io, &rollout, &records).await {
                    self.set_pending(io, &memory, settings.kind, false);
                }
                continue;
            }
            if item.action == Action::MarkUnconfirmed {
                let note = format!(
                    "{event} alert to {label}: a restart interrupted its delivery and {kind} cannot deduplicate, so it is not sent again"
                );
                let unconfirmed = slot.record(
                    AlertState::Unconfirmed,
                    earlier_attempts,
                    Some(note.clone()),
                    Timestamp::now(),
                );
                records = crate::alerts::events::upsert(&records, unconfirmed, &current);
                if write_records(io, &rollout, &records).await {
                    self.set_pending(io, &memory, settings.kind, false);
                    io.metrics.alert(kind, event, "unconfirmed");
                    publish(io, &rollout, true, "AlertUnconfirmed", &note).await;
                }
                continue;
            }
            let prepared_at = Timestamp::now();
            let prepared = match &settings.refusal {
                Some(refusal) => Err(TargetError::Refused(refusal.clone())),
                None => {
                    let observed = observed.as_ref();
                    outgoing(
                        io,
                        &rollout,
                        &status,
                        &item,
                        settings,
                        observed,
                        prepared_at,
                    )
                    .await
                }
            };
            let outgoing = match prepared {
                Ok(outgoing) => outgoing,
                Err(error) => {
                    let problem = error.to_string();
                    let target_problem = match error {
                        TargetError::SpecInvalid { .. } => "SpecInvalid",
                        _ => "SecretInvalid",
                    };
                    // Nothing was sent: wait for the configuration to be fixed.
                    let now = Timestamp::now();
                    let waiting = slot.undelivered(
                        &problem,
                        earlier_attempts,
                        &settings.policy,
                        now,
                        now,
                        fastrand::f64(),
                    );
                    let (state, note) =
                        (waiting.state, waiting.message.clone().unwrap_or_default());
                    records = crate::alerts::events::upsert(&records, waiting, &current);
                    if write_records(io, &rollout, &records).await {
                        self.count_undelivered(
                            io,
                            &memory,
                            settings.kind,
                            event,
                            was_pending,
                            state,
                        );
                    }
                    publish(io, &rollout, true, "AlertTargetUnavailable", &note).await;
                    if settings.refusal.is_none() {
                        record_target(io, &item.target, settings, false, target_problem, &note)
                            .await;
                    }
                    continue;
                }
            };
            let started = Timestamp::now();
            let mut sending = slot.record(AlertState::Sending, earlier_attempts, None, started);
            sending.pending_since = Some(Time(slot.pending_since.unwrap_or(started)));
            records = crate::alerts::events::upsert(&records, sending, &current);
            if !write_records(io, &rollout, &records).await {
                // Without the record a restart could send it twice: try again later.
                continue;
            }
            let delivery = deliver(&self.http, &outgoing, &settings.policy).await;
            io.metrics.alert_attempts(kind, &delivery.attempt_results);
            let result_record = slot.delivered(
                &delivery.outcome,
                delivery.attempts,
                &settings.policy,
                started,
                Timestamp::now(),
                fastrand::f64(),
            );
            let result_record = if settings.kind == AlertTargetType::Alertmanager {
                let resolves = matches!(item.occurrence.trigger, Trigger::Resolve { .. });
                let interval = settings.resend_interval;
                let ends_at = alertmanager::ends_at(resolves, prepared_at, interval);
                alertmanager::firing_record(result_record, prepared_at, ends_at, interval)
            } else {
                result_record
            };
            if result_record.state == AlertState::Sent
                && let Ok(mut delivered) = self.delivered.lock()
            {
                if delivered.len() >= REMEMBERED {
                    delivered.clear();
                }
                delivered.insert(memory.clone());
            }
            let state = result_record.state;
            let note = result_record.message.clone().unwrap_or_default();
            records = crate::alerts::events::upsert(&records, result_record, &current);
            for _ in 0..3 {
                if write_records(io, &rollout, &records).await {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let ok = state == AlertState::Sent;
            match (&delivery.outcome, state) {
                (DeliveryOutcome::Delivered { .. }, _) => {
                    self.set_pending(io, &memory, settings.kind, false);
                    io.metrics.alert(kind, event, "delivered");
                    if event == crate::crd::AlertEvent::Aborted.as_str()
                        && let Some(abort) = &status.abort
                        && abort.revision == item.occurrence.revision
                    {
                        io.metrics.abort_alert_delivered(abort.at.0);
                    }
                }
                (DeliveryOutcome::Rejected { .. }, _) => {
                    self.set_pending(io, &memory, settings.kind, false);
                    io.metrics.alert(kind, event, "rejected");
                }
                (DeliveryOutcome::GaveUp { .. }, state) => {
                    self.count_undelivered(io, &memory, settings.kind, event, was_pending, state);
                }
            }
            publish(io, &rollout, !ok, event_reason(state), &note).await;
            record_target(io, &item.target, settings, ok, target_reason(state), &note).await;
        }
        let mut after = status;
        after.alerts = records;
        self.wake_for_pending(io, key, &rollout, &after, &unreadable);
    }

    /// Set a timer for the next round of the Rollout's pending alerts and
    /// Alertmanager re-sends, if any (see [`crate::alerts::events::next_wake`]).
    fn wake_for_pending(
        self: &Arc<Self>,
        io: &Arc<Io>,
        key: &str,
        rollout: &Rollout,
        status: &RolloutStatus,
        unreadable: &[String],
    ) {
        let namespace = rollout.namespace().unwrap_or_default();
        let later = alertmanager::later(Timestamp::now(), self.max_retry_interval);
        let next = crate::alerts::events::next_wake(rollout, &namespace, status, unreadable, later);
        if let Some(at) = next {
            self.wake_at(io, key.to_string(), at);
        }
    }

    /// Metrics for an alert that was not delivered in this round.
    fn count_undelivered(
        &self,
        io: &Io,
        memory: &str,
        kind: AlertTargetType,
        event: &'static str,
        was_pending: bool,
        state: AlertState,
    ) {
        let pending = state == AlertState::Pending;
        self.set_pending(io, memory, kind, pending);
        if pending && !was_pending {
            io.metrics.alert(kind.as_str(), event, "pending");
        } else if !pending {
            io.metrics.alert(kind.as_str(), event, "gave_up");
        }
    }
}

/// Write `status.alerts`; false when the API server refused.
async fn write_records(io: &Io, rollout: &Rollout, records: &[AlertRecord]) -> bool {
    let namespace = rollout.namespace().unwrap_or_default();
    let status = json!({ "alerts": records });
    match apply_status::<Rollout>(
        &io.client,
        Some(&namespace),
        &rollout.name_any(),
        FIELD_MANAGER,
        status,
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

async fn publish(io: &Io, rollout: &Rollout, warning: bool, reason: &str, note: &str) {
    super::publish_as(io, rollout, "Alert", warning, reason, note).await
}
