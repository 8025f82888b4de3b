//! The pure core: `plan(rollout, observed, now) -> Plan`.
//!
//! No I/O here. The plan lists the writes to make (in order), the new
//! status, the Events to emit and when to look again. Every decision is a
//! function of the spec, the persisted status, the observed cluster and the
//! clock passed in, which is what makes it testable with fixed fixtures.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::claims;
use super::conditions::{self, PlanOutcome};
use super::controls::{self, Requests};
use super::hash::pod_template_hash;
use super::observed::Observed;
use super::pointing::{canary_off_route, check_references};
use super::reasons;
use super::revisions::{self, DesiredReplicaSet, Revision};
use super::spec::{self, Settings};
use crate::crd::{
    AbortStatus, AnalysisRunSpec, BlueGreenStage, Rollout, RolloutPhase, RolloutStatus,
};

/// How often a settled rollout is looked at again without any event.
pub const SETTLED_RESYNC: Duration = Duration::from_secs(300);
/// How often an in-flight rollout is looked at again without any event.
pub const IN_FLIGHT_RESYNC: Duration = Duration::from_secs(15);
/// How often an invalid rollout is looked at again (references may appear).
pub const INVALID_RESYNC: Duration = Duration::from_secs(60);

/// One write to the cluster, in the order the plan lists them.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Server-side apply this ReplicaSet (created if absent).
    ApplyReplicaSet(Box<DesiredReplicaSet>),
    /// Delete an old ReplicaSet beyond the history limit.
    DeleteReplicaSet {
        /// ReplicaSet name.
        name: String,
    },
    /// Mark a Service as routing for this Rollout, only if it is unchanged
    /// since it was read (two Rollouts racing for it: one wins).
    ClaimService {
        /// Service name.
        service: String,
        /// The resourceVersion that was read, as a precondition.
        resource_version: Option<String>,
    },
    /// Point a Service's selector at a revision (the Rollout's labels plus its hash).
    SelectRevision {
        /// Service name.
        service: String,
        /// Pod-template hash to select.
        revision: String,
    },
    /// Set the canary share on the managed rules of an HTTPRoute or GRPCRoute
    /// (and the header route and mirror wanted now).
    SetRouteWeights {
        /// HTTPRoute or GRPCRoute.
        kind: super::spec::RouteKind,
        /// HTTPRoute namespace.
        namespace: String,
        /// HTTPRoute name.
        name: String,
        /// The resourceVersion that was read, as a precondition.
        resource_version: Option<String>,
        /// Complete `spec.rules` to apply.
        rules: serde_json::Value,
        /// Canary share in percent, for logs.
        canary_weight: i32,
    },
    /// Create the AnalysisRun a step waits on.
    CreateAnalysisRun {
        /// AnalysisRun name.
        name: String,
        /// Its spec.
        spec: AnalysisRunSpec,
    },
    /// Stop a run nothing waits on any more.
    TerminateAnalysisRun {
        /// AnalysisRun name.
        name: String,
    },
    /// Delete a finished run beyond the history limit.
    DeleteAnalysisRun {
        /// AnalysisRun name.
        name: String,
    },
    /// Set the replicas of the Deployment the Rollout adopts
    /// (`spec.workloadRef`), through its scale subresource.
    ScaleDeployment {
        /// Deployment name (the Rollout's namespace).
        name: String,
        /// Replicas to set.
        replicas: i32,
    },
    /// Evict a pod through the Eviction API for a restart (`spec.restartAt`);
    /// its ReplicaSet recreates it. A refusal (PodDisruptionBudget) is retried later.
    EvictPod {
        /// Pod name.
        name: String,
    },
}

/// Finished AnalysisRuns kept per Rollout (the newest; older ones are deleted).
pub const ANALYSIS_HISTORY: usize = 5;

/// A Kubernetes Event to emit on the Rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    /// Warning rather than Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human note.
    pub note: String,
}

/// Everything one reconcile decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Writes, in order.
    pub writes: Vec<Write>,
    /// The status to persist.
    pub status: RolloutStatus,
    /// Events to emit.
    pub events: Vec<PlannedEvent>,
    /// When to reconcile again at the latest.
    pub requeue_after: Duration,
    /// Set when this plan aborts the canary: the hook point for Git revert and alerts.
    pub newly_aborted: Option<AbortStatus>,
}

/// Decide what to do for `rollout` given what was `observed` at `now`
/// (with `workloadRef`, the Deployment's template taken from `observed`).
pub fn plan(rollout: &Rollout, observed: &Observed, now: Timestamp) -> Plan {
    match super::workload::resolve(rollout, observed.workload.as_ref()) {
        Ok(resolved) => plan_with(&resolved, spec::settings(&resolved), observed, now),
        Err(problems) => unresolved(rollout, &problems, now),
    }
}

/// Plan for a Rollout whose `workloadRef` cannot be used (see
/// `workload::resolve`): report it, write nothing, do not hot-loop.
pub fn unresolved(rollout: &Rollout, problems: &[String], now: Timestamp) -> Plan {
    let old = rollout.status.clone().unwrap_or_default();
    let reason = super::workload::WORKLOAD_REF_INVALID;
    invalid(rollout, &old, problems, now, reason, None)
}

/// [`plan`] with the spec already validated (`spec::settings(rollout)`), as
/// the reconcile does once for both its reads and its plan.
pub fn plan_with(
    rollout: &Rollout,
    settings: Result<Settings, Vec<String>>,
    observed: &Observed,
    now: Timestamp,
) -> Plan {
    let old = rollout.status.clone().unwrap_or_default();
    let settings = match settings {
        Ok(settings) => settings,
        Err(problems) => {
            return invalid(rollout, &old, &problems, now, reasons::INVALID_SPEC, None);
        }
    };
    // Another Rollout's objects: refuse, and write nothing at all.
    let conflicts = claims::conflicts(rollout, &settings, observed);
    if !conflicts.is_empty() {
        return invalid(rollout, &old, &conflicts, now, REFERENCE_CONFLICT, None);
    }
    if let Err(problems) = check_references(&settings, observed) {
        // A broken reference: the stable backend is the safe state.
        let to_stable = canary_off_route(rollout, &settings, observed);
        return invalid(
            rollout,
            &old,
            &problems,
            now,
            reasons::INVALID_SPEC,
            to_stable,
        );
    }
    let mut planner = Planner::new(rollout, observed, now, settings.clone(), old.clone());
    planner.run();
    // An abort on the progress deadline is planned again from the start, so
    // that it is carried out like any other abort in the same pass.
    if let Some(message) = planner.deadline_abort_due() {
        let mut again = Planner::new(rollout, observed, now, settings, old);
        again.forced_abort = Some(message);
        again.run();
        again.claim_references();
        again.restart_pods();
        let adopted = again.adopt_workload();
        return with_event(again.finish(), adopted);
    }
    planner.claim_references();
    planner.restart_pods();
    let adopted = planner.adopt_workload();
    with_event(planner.finish(), adopted)
}

/// `plan` with one more Event at the end.
fn with_event(mut plan: Plan, event: Option<PlannedEvent>) -> Plan {
    plan.events.extend(event);
    plan
}

/// Condition reason of a Rollout naming objects another Rollout routes through.
pub const REFERENCE_CONFLICT: &str = "ReferenceConflict";

/// Appended to the message of the plan that takes the canary off the route.
const CANARY_OFF_NOTE: &str = "; the canary's route weight is set to 0 until this is fixed";

/// Plan for a spec that cannot be acted on: report it, touch nothing but the
/// canary's route weight (`to_stable`), do not hot-loop.
fn invalid(
    rollout: &Rollout,
    old: &RolloutStatus,
    problems: &[String],
    now: Timestamp,
    reason: &str,
    to_stable: Option<Write>,
) -> Plan {
    let mut message = match reason {
        REFERENCE_CONFLICT => format!("refused: {}", problems.join("; ")),
        _ => format!("invalid spec: {}", problems.join("; ")),
    };
    let mut status = old.clone();
    if to_stable.is_some() {
        status.current_weight = 0;
        message.push_str(CANARY_OFF_NOTE);
    }
    let outcome = PlanOutcome {
        phase: RolloutPhase::Degraded,
        reason: reason.into(),
        message: message.clone(),
    };
    status.observed_generation = rollout.metadata.generation;
    status.phase = Some(RolloutPhase::Degraded);
    status.message = Some(message.clone());
    status.conditions =
        conditions::conditions(&outcome, rollout.metadata.generation, &old.conditions, now);
    // The same problem once more is not news (the weight note comes and goes with the write).
    let unchanged = old.message.as_deref().is_some_and(|m| {
        m.trim_end_matches(CANARY_OFF_NOTE) == message.trim_end_matches(CANARY_OFF_NOTE)
    });
    let events = if unchanged {
        Vec::new()
    } else {
        vec![PlannedEvent {
            warning: true,
            reason: reason.into(),
            note: message,
        }]
    };
    Plan {
        writes: to_stable.into_iter().collect(),
        status,
        events,
        requeue_after: INVALID_RESYNC,
        newly_aborted: None,
    }
}

/// Working state of one planning pass.
pub(super) struct Planner<'a> {
    pub(super) rollout: &'a Rollout,
    pub(super) observed: &'a Observed,
    pub(super) now: Timestamp,
    pub(super) settings: Settings,
    pub(super) old: RolloutStatus,
    pub(super) status: RolloutStatus,
    pub(super) revisions: BTreeMap<String, Revision>,
    pub(super) writes: Vec<Write>,
    pub(super) events: Vec<PlannedEvent>,
    pub(super) wake: Vec<Timestamp>,
    pub(super) outcome: PlanOutcome,
    pub(super) newly_aborted: Option<AbortStatus>,
    /// Revisions given their final shape already; the rest are old.
    pub(super) kept: Vec<String>,
    /// True while waiting by design (pause, analysis), which does not count against the deadline.
    pub(super) waiting_by_design: bool,
    /// An operator acknowledged an inconclusive background analysis: start a new run.
    pub(super) restart_background: bool,
    /// The progress deadline passed and `abortOnProgressDeadline` is set: abort with this message.
    pub(super) forced_abort: Option<String>,
    /// Header route and mirror every route write carries; none (the safe
    /// state) unless a canary step in progress sets them.
    pub(super) route_extras: super::route_extras::RouteExtras,
}

impl<'a> Planner<'a> {
    fn new(
        rollout: &'a Rollout,
        observed: &'a Observed,
        now: Timestamp,
        settings: Settings,
        old: RolloutStatus,
    ) -> Self {
        let mut status = old.clone();
        status.observed_generation = rollout.metadata.generation;
        status.traffic_routing = Some(settings.routing.label());
        Planner {
            rollout,
            observed,
            now,
            settings,
            status,
            old,
            revisions: revisions::index(&observed.replica_sets),
            writes: Vec::new(),
            events: Vec::new(),
            wake: Vec::new(),
            outcome: PlanOutcome {
                phase: RolloutPhase::Progressing,
                reason: "Reconciling".into(),
                message: String::new(),
            },
            newly_aborted: None,
            kept: Vec::new(),
            waiting_by_design: false,
            restart_background: false,
            forced_abort: None,
            route_extras: Default::default(),
        }
    }

    fn run(&mut self) {
        let requests = controls::read(
            self.rollout.metadata.annotations.as_ref(),
            &self.old.handled_controls,
        );
        self.status.handled_controls = requests.tokens.clone();
        let desired = pod_template_hash(&self.rollout.spec.template);
        let stable = self
            .old
            .stable_revision
            .clone()
            .unwrap_or_else(|| desired.clone());
        self.status.stable_revision = Some(stable.clone());
        let strategy = self.settings.strategy.clone();
        let recorded = self.old.strategy.clone();
        let in_flight = self.old.canary_revision.as_deref() == Some(desired.as_str());
        if in_flight
            && desired != stable
            && self.old.abort.is_none()
            && recorded.as_deref().is_some_and(|r| r != strategy.name())
        {
            // The update restarts under the new strategy from its first stage;
            // both first stages keep the stable version at full size and traffic on it.
            self.event(
                false,
                reasons::STRATEGY_CHANGED,
                format!(
                    "strategy changed from {} to {} while {desired} was in flight; starting it over under {}",
                    recorded.unwrap_or_default(),
                    strategy.name(),
                    strategy.name()
                ),
            );
            self.old.canary_revision = None;
            self.old.current_step_index = None;
            self.old.blue_green = None;
            self.old.current_analysis = None;
            self.status.background_analysis = None;
        }
        self.status.strategy = Some(strategy.name().to_string());
        self.note_reverts();
        if desired == stable {
            self.steady(&stable);
        } else if !in_flight && self.adoption_holds_updates() {
            self.hold_for_adoption(&stable, &desired);
        } else if !self.refuse_known_bad(&stable, &desired, &requests) {
            match &strategy {
                spec::Strategy::Canary(_) => {
                    self.status.blue_green = None;
                    self.canary(&stable, &desired, &requests)
                }
                spec::Strategy::BlueGreen(settings) => {
                    self.blue_green(&stable, &desired, &requests, settings)
                }
            }
        }
        self.retire_old_revisions();
    }

    /// Nothing in flight: the stable revision at full size with all traffic.
    pub(super) fn steady(&mut self, stable: &str) {
        if let Some(dropped) = self.old.canary_revision.clone().filter(|c| c != stable) {
            let note = match &self.old.abort {
                Some(_) => format!(
                    "template is back on stable revision {stable}; aborted canary {dropped} is retired"
                ),
                None => format!(
                    "template is back on stable revision {stable}: instant rollback, canary {dropped} dropped without steps"
                ),
            };
            self.event(false, "RolledBack", note);
        }
        self.status.canary_revision = None;
        self.status.current_step_index = None;
        self.status.step_label = None;
        self.status.step_started_at = None;
        self.status.abort = None;
        self.status.pause_reason = None;
        self.status.current_analysis = None;
        self.status.desired_weight = 0;
        // A blue-green promotion stays on show until the old version is gone.
        self.status.blue_green = self.old.blue_green.clone().filter(|b| {
            b.stage == BlueGreenStage::Promoted
                && b.scale_down_at.as_ref().is_some_and(|at| at.0 > self.now)
        });
        let replicas = self.settings.replicas;
        self.ensure_revision(stable, replicas);
        self.route_weight_down_to(0);
        // An adopted Deployment's pods serve through the stable Service
        // until this revision can carry all of it.
        let adopting = self
            .settings
            .stable_service
            .as_deref()
            .is_some_and(|s| self.adopting_through(s));
        if !adopting || self.stable_complete(stable) {
            self.point_services(stable, stable);
        }
        self.status.current_weight = 0;
        let rev = self.revisions.get(stable);
        let available = rev.map(|r| r.available).unwrap_or(0);
        if available >= replicas && rev.is_some_and(|r| !r.stale && r.current == replicas) {
            let message = format!(
                "stable revision {stable} serves all traffic with {available}/{replicas} pods available"
            );
            self.set_outcome(RolloutPhase::Healthy, "RolloutHealthy", message);
        } else {
            let message =
                format!("scaling stable revision {stable}: {available}/{replicas} pods available");
            self.set_outcome(RolloutPhase::Progressing, "ScalingStable", message);
        }
    }

    /// Apply the ReplicaSet for `hash` at `replicas` (creating it from the template if new).
    pub(super) fn ensure_revision(&mut self, hash: &str, replicas: i32) {
        self.kept.push(hash.to_string());
        let (template, number) = match self.revisions.get(hash) {
            Some(rev) => (rev.template.clone(), rev.number),
            None => {
                let newest = self.revisions.values().map(|r| r.number).max();
                let next = newest.unwrap_or(0).saturating_add(1);
                (self.rollout.spec.template.clone(), next)
            }
        };
        let unchanged = self
            .revisions
            .get(hash)
            .is_some_and(|r| r.desired == replicas && r.scale_down_at.is_none() && r.number > 0);
        if !unchanged {
            let desired = DesiredReplicaSet {
                hash: hash.into(),
                template,
                replicas,
                number,
                scale_down_at: None,
            };
            self.writes.push(Write::ApplyReplicaSet(Box::new(desired)));
        }
    }

    /// Keep the dedicated baseline (if configured) at `replicas` pods of the
    /// stable template, and its Service on it. Returns whether it is ready.
    pub(super) fn ensure_baseline(&mut self, stable: &str, replicas: i32) -> bool {
        let Some(service) = self.settings.baseline().cloned() else {
            return true;
        };
        let Some(stable_rev) = self.revisions.get(stable).cloned() else {
            return false;
        };
        let hash = super::spec::baseline_hash(stable);
        self.kept.push(hash.clone());
        let current = self.revisions.get(&hash);
        let unchanged = current.is_some_and(|r| r.desired == replicas && r.scale_down_at.is_none());
        let ready = current.is_some_and(|r| r.available >= replicas && !r.stale);
        if !unchanged {
            let desired = DesiredReplicaSet {
                hash: hash.clone(),
                template: stable_rev.template,
                replicas,
                // The stable's number: the baseline is not a newer revision.
                number: stable_rev.number,
                scale_down_at: None,
            };
            self.writes.push(Write::ApplyReplicaSet(Box::new(desired)));
        }
        if let Some(service) = service
            && self.service_selects(&service) != Some(hash.as_str())
        {
            self.writes.push(Write::SelectRevision {
                service,
                revision: hash,
            });
            return false;
        }
        ready
    }

    /// Hash the analysis compares the canary with: the dedicated baseline, or stable.
    pub(super) fn analysis_baseline(&self, stable: &str) -> (String, bool) {
        match self.settings.baseline() {
            Some(_) => (super::spec::baseline_hash(stable), true),
            None => (stable.to_string(), false),
        }
    }

    pub(super) fn set_outcome(&mut self, phase: RolloutPhase, reason: &str, message: String) {
        self.outcome = PlanOutcome {
            phase,
            reason: reason.into(),
            message,
        };
    }

    pub(super) fn event(&mut self, warning: bool, reason: &str, note: String) {
        self.events.push(PlannedEvent {
            warning,
            reason: reason.into(),
            note,
        });
    }

    fn finish(mut self) -> Plan {
        self.count_replicas();
        self.status.stable_images = self
            .status
            .stable_revision
            .as_deref()
            .map(|r| self.images_of(r))
            .unwrap_or_default();
        self.status.canary_images = self
            .status
            .canary_revision
            .as_deref()
            .map(|r| self.images_of(r))
            .unwrap_or_default();
        self.analysis_housekeeping();
        self.check_deadline();
        let phase = self.outcome.phase;
        if self.old.phase != Some(phase) && self.events.is_empty() {
            let warning = matches!(phase, RolloutPhase::Degraded | RolloutPhase::Aborted);
            let note = self.outcome.message.clone();
            self.event(warning, &self.outcome.reason.clone(), note);
        }
        self.status.phase = Some(phase);
        self.status.message = Some(self.outcome.message.clone());
        self.status.conditions = conditions::conditions(
            &self.outcome,
            self.rollout.metadata.generation,
            &self.old.conditions,
            self.now,
        );
        if let Some(git) = conditions::git_condition(
            self.old.current_git_revert(),
            self.rollout.metadata.generation,
            &self.old.conditions,
            self.now,
        ) {
            self.status.conditions.push(git);
        }
        let fallback = if phase == RolloutPhase::Healthy {
            SETTLED_RESYNC
        } else {
            IN_FLIGHT_RESYNC
        };
        let requeue_after = self
            .wake
            .iter()
            .filter_map(|at| at.duration_since(self.now).try_into().ok())
            .map(|d: Duration| d.saturating_add(Duration::from_millis(500)))
            .chain([fallback])
            .min()
            .unwrap_or(fallback);
        Plan {
            writes: self.writes,
            status: self.status,
            events: self.events,
            requeue_after,
            newly_aborted: self.newly_aborted,
        }
    }

    pub(super) fn count_replicas(&mut self) {
        // Counts read from the cluster: a sum must not overflow.
        let revs = self.revisions.values();
        self.status.replicas = revs.clone().fold(0, |sum, r| sum.saturating_add(r.current));
        self.status.ready_replicas = revs.fold(0, |sum, r| sum.saturating_add(r.ready));
        let ready_of = |hash: &Option<String>| {
            hash.as_ref()
                .and_then(|h| self.revisions.get(h))
                .map(|r| r.ready)
                .unwrap_or(0)
        };
        self.status.stable_ready_replicas = ready_of(&self.status.stable_revision);
        self.status.canary_ready_replicas = ready_of(&self.status.canary_revision);
        let updated = self
            .status
            .canary_revision
            .clone()
            .or_else(|| self.status.stable_revision.clone());
        self.status.updated_replicas = updated
            .as_ref()
            .and_then(|h| self.revisions.get(h))
            .map(|r| r.current)
            .unwrap_or(0);
        let selector = self
            .rollout
            .spec
            .selector
            .match_labels
            .clone()
            .unwrap_or_default();
        self.status.selector = Some(
            selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
}

/// `requests` is used by the canary path; re-exported for its signature.
pub(super) type ControlRequests = Requests;
