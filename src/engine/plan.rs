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
use super::observed::{Lookup, Observed};
use super::reasons;
use super::revisions::{self, DesiredReplicaSet, Revision};
use super::route;
use super::spec::{self, Routing, Settings};
use crate::crd::limits::after;
use crate::crd::{
    AbortStatus, AnalysisPhase, AnalysisRunSpec, BlueGreenStage, Rollout, RolloutPhase,
    RolloutStatus,
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
    /// Set the canary share on the managed rules of an HTTPRoute.
    SetRouteWeights {
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

/// Decide what to do for `rollout` given what was `observed` at `now`.
pub fn plan(rollout: &Rollout, observed: &Observed, now: Timestamp) -> Plan {
    plan_with(rollout, spec::settings(rollout), observed, now)
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
        Err(problems) => return invalid(rollout, &old, &problems, now, INVALID_SPEC, None),
    };
    // Another Rollout's objects: refuse, and write nothing at all.
    let conflicts = claims::conflicts(rollout, &settings, observed);
    if !conflicts.is_empty() {
        return invalid(rollout, &old, &conflicts, now, REFERENCE_CONFLICT, None);
    }
    if let Err(problems) = check_references(&settings, observed) {
        // A broken reference: the stable backend is the safe state.
        let to_stable = canary_off_route(rollout, &settings, observed);
        return invalid(rollout, &old, &problems, now, INVALID_SPEC, to_stable);
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
        return again.finish();
    }
    planner.claim_references();
    planner.finish()
}

/// Condition reason of a spec (or a reference) that cannot be acted on.
pub use super::reasons::INVALID_SPEC;
/// Condition reason of a Rollout naming objects another Rollout routes through.
pub const REFERENCE_CONFLICT: &str = "ReferenceConflict";

/// The write that takes the canary (and baseline) share of the route to 0,
/// when a route this Rollout may write still gives them any.
fn canary_off_route(rollout: &Rollout, settings: &Settings, observed: &Observed) -> Option<Write> {
    let Routing::GatewayApi {
        namespace,
        name,
        rule_indexes,
    } = &settings.routing
    else {
        return None;
    };
    let Some(Lookup::Found(state)) = &observed.http_route else {
        return None;
    };
    let stable = settings.stable_service.as_deref()?;
    let canary = settings.canary_service.as_deref()?;
    let baseline = settings.baseline().and_then(|b| b.as_deref());
    let rules =
        route::managed_rules(state, rule_indexes.as_deref(), stable, canary, baseline).ok()?;
    let zero = route::rules_with_weight(state, &rules, stable, canary, baseline, 0);
    let ours = state
        .owner
        .as_deref()
        .is_none_or(|o| o == claims::route_claim(rollout));
    (ours && zero != state.rules).then(|| Write::SetRouteWeights {
        namespace: namespace.clone(),
        name: name.clone(),
        resource_version: state.resource_version.clone(),
        rules: zero,
        canary_weight: 0,
    })
}

/// Problems with objects the spec names (Services, HTTPRoute).
fn check_references(settings: &Settings, observed: &Observed) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for service in claims::referenced_services(settings) {
        if !matches!(observed.services.get(&service), Some(Lookup::Found(_))) {
            problems.push(format!("Service {service:?} not found"));
        }
    }
    if let Routing::GatewayApi {
        namespace,
        name,
        rule_indexes,
    } = &settings.routing
    {
        match &observed.http_route {
            _ if observed.http_route_refused.is_some() => {
                problems.extend(observed.http_route_refused.clone());
            }
            Some(Lookup::Found(state)) => {
                let stable = settings.stable_service.as_deref().unwrap_or_default();
                let canary = settings.canary_service.as_deref().unwrap_or_default();
                let baseline = settings.baseline().and_then(|b| b.as_deref());
                if let Err(problem) =
                    route::managed_rules(state, rule_indexes.as_deref(), stable, canary, baseline)
                {
                    problems.push(format!("HTTPRoute {namespace}/{name}: {problem}"));
                }
            }
            _ => problems.push(format!("HTTPRoute {namespace}/{name} not found")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

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
    fn steady(&mut self, stable: &str) {
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
        self.point_services(stable, stable);
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

    /// Point the stable and canary Services (those configured) at the given revisions.
    pub(super) fn point_services(&mut self, stable: &str, canary: &str) {
        let targets = [
            (self.settings.stable_service.clone(), stable),
            (self.settings.canary_service.clone(), canary),
        ];
        for (service, revision) in targets {
            let Some(service) = service else { continue };
            if self.service_selects(&service) != Some(revision) {
                self.writes.push(Write::SelectRevision {
                    service,
                    revision: revision.into(),
                });
            }
        }
    }

    /// The revision a Service selects now, as observed; `None` unless it is
    /// this Rollout's and selects exactly one revision of it (anything else,
    /// e.g. a selector a GitOps apply put back, is rewritten).
    pub(super) fn service_selects(&self, service: &str) -> Option<&str> {
        let Some(Lookup::Found(state)) = self.observed.services.get(service) else {
            return None;
        };
        let revision = state.selector.get(super::hash::POD_TEMPLATE_HASH_LABEL)?;
        let ours = state.owner.as_deref() == Some(claims::service_claim(self.rollout).as_str());
        (ours && state.selector == claims::service_selector(self.rollout, revision))
            .then_some(revision.as_str())
    }

    /// Mark the Services and the route this Rollout routes through as its own:
    /// claims go first, so a lost race stops the plan before any other write.
    fn claim_references(&mut self) {
        let me = claims::service_claim(self.rollout);
        let mut claims_first = Vec::new();
        for service in claims::referenced_services(&self.settings) {
            if let Some(Lookup::Found(state)) = self.observed.services.get(&service)
                && state.owner.as_deref() != Some(me.as_str())
            {
                claims_first.push(Write::ClaimService {
                    service,
                    resource_version: state.resource_version.clone(),
                });
            }
        }
        let route_unclaimed = matches!(&self.observed.http_route,
            Some(Lookup::Found(r)) if r.owner.as_deref() != Some(claims::route_claim(self.rollout).as_str()));
        let route_written = self
            .writes
            .iter()
            .any(|w| matches!(w, Write::SetRouteWeights { .. }));
        if route_unclaimed
            && !route_written
            && let Some(weight) = self.route_weight()
        {
            // Every route write carries the claim; write the weights as they are.
            self.force_route_weight(weight);
        }
        claims_first.append(&mut self.writes);
        self.writes = claims_first;
    }

    /// Observed canary share on the HTTPRoute, when routing through one.
    pub(super) fn route_weight(&self) -> Option<i32> {
        let (state, rules, stable, canary, baseline) = self.route_parts()?;
        Some(route::canary_weight(
            state, &rules, stable, canary, baseline,
        ))
    }

    /// Write the route's canary share if it differs from what is observed.
    pub(super) fn set_route_weight(&mut self, percent: i32) {
        let Some((state, rules, stable, canary, baseline)) = self.route_parts() else {
            return;
        };
        if route::canary_weight(state, &rules, stable, canary, baseline) == percent {
            return;
        }
        self.force_route_weight(percent);
    }

    /// Write the route's canary share even if it is already in place.
    fn force_route_weight(&mut self, percent: i32) {
        let Routing::GatewayApi {
            namespace, name, ..
        } = self.settings.routing.clone()
        else {
            return;
        };
        let Some((state, rules, stable, canary, baseline)) = self.route_parts() else {
            return;
        };
        let write = Write::SetRouteWeights {
            namespace,
            name,
            resource_version: state.resource_version.clone(),
            rules: route::rules_with_weight(state, &rules, stable, canary, baseline, percent),
            canary_weight: percent,
        };
        self.writes.push(write);
    }

    /// Lower the canary share to at most `percent`; never raises it.
    pub(super) fn route_weight_down_to(&mut self, percent: i32) {
        if self.route_weight().is_some_and(|w| w > percent) {
            self.set_route_weight(percent);
        }
    }

    #[allow(clippy::type_complexity)]
    fn route_parts(
        &self,
    ) -> Option<(
        &'a super::observed::RouteState,
        Vec<usize>,
        &str,
        &str,
        Option<&str>,
    )> {
        let Routing::GatewayApi { rule_indexes, .. } = &self.settings.routing else {
            return None;
        };
        let Some(Lookup::Found(state)) = self.observed.http_route.as_ref() else {
            return None;
        };
        let stable = self.settings.stable_service.as_deref()?;
        let canary = self.settings.canary_service.as_deref()?;
        let baseline = self.settings.baseline().and_then(|b| b.as_deref());
        let rules =
            route::managed_rules(state, rule_indexes.as_deref(), stable, canary, baseline).ok()?;
        Some((state, rules, stable, canary, baseline))
    }

    /// Scale down revisions that are neither stable nor canary once their delay is over; prune history.
    fn retire_old_revisions(&mut self) {
        let mut old: Vec<Revision> = self
            .revisions
            .values()
            .filter(|r| !self.kept.contains(&r.hash))
            .cloned()
            .collect();
        old.sort_by_key(|r| std::cmp::Reverse(r.number));
        let mut idle = 0usize;
        for rev in old {
            if rev.desired > 0 {
                let delay = self.retire_delay(&rev.hash);
                let due = rev.scale_down_at.unwrap_or_else(|| after(self.now, delay));
                let replicas = if due <= self.now { 0 } else { rev.desired };
                if replicas != rev.desired || rev.scale_down_at.is_none() {
                    let scale_down_at = (replicas > 0).then_some(due);
                    let desired = DesiredReplicaSet {
                        hash: rev.hash.clone(),
                        template: rev.template.clone(),
                        replicas,
                        number: rev.number,
                        scale_down_at,
                    };
                    self.writes.push(Write::ApplyReplicaSet(Box::new(desired)));
                }
                if replicas > 0 {
                    self.wake.push(due);
                }
            } else if rev.current == 0 {
                idle += 1;
                if idle > self.settings.revision_history_limit {
                    self.writes.push(Write::DeleteReplicaSet {
                        name: rev.name.clone(),
                    });
                }
            }
        }
    }

    /// How long an old revision keeps its pods once it stops being stable or canary.
    fn retire_delay(&self, hash: &str) -> Duration {
        let was_stable = self.old.stable_revision.as_deref() == Some(hash);
        if let spec::Strategy::BlueGreen(_) = self.settings.strategy {
            // Nothing routes to an old blue-green version: keep it warm for a switch back.
            return if was_stable {
                self.settings.scale_down_delay
            } else {
                self.settings.abort_scale_down_delay
            };
        }
        match self.settings.routing {
            // Without a router, live pods of an old revision still take a share of traffic.
            Routing::ReplicaRatio => Duration::ZERO,
            Routing::GatewayApi { .. } if was_stable => self.settings.scale_down_delay,
            Routing::GatewayApi { .. } => self.settings.abort_scale_down_delay,
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

    /// Terminate runs nothing waits on, and keep a bounded history of finished ones.
    fn analysis_housekeeping(&mut self) {
        // A settled or aborted rollout has no background analysis any more,
        // except the verdict that aborted it (on show, and for its alert).
        let verdict = self
            .status
            .background_analysis
            .as_ref()
            .and_then(|r| r.phase)
            .is_some_and(|p| {
                matches!(
                    p,
                    AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive
                )
            });
        let settled = matches!(
            self.outcome.phase,
            RolloutPhase::Healthy | RolloutPhase::Degraded
        );
        if settled || (self.outcome.phase == RolloutPhase::Aborted && !verdict) {
            self.status.background_analysis = None;
        }
        // An aborted rollout waits on nothing: its running analysis stops at once.
        let aborted = self.outcome.phase == RolloutPhase::Aborted;
        let waited_on = self
            .status
            .current_analysis
            .as_ref()
            .filter(|_| !aborted)
            .map(|r| r.name.clone());
        let background = self
            .status
            .background_analysis
            .as_ref()
            .filter(|_| !aborted)
            .map(|r| r.name.clone());
        let created: Vec<String> = self
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::CreateAnalysisRun { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        let mut finished = Vec::new();
        for run in &self.observed.analysis_runs {
            let Some(name) = run.metadata.name.clone() else {
                continue;
            };
            if waited_on.as_deref() == Some(name.as_str())
                || background.as_deref() == Some(name.as_str())
                || created.contains(&name)
            {
                continue;
            }
            let phase = run.status.as_ref().and_then(|s| s.phase);
            if phase.is_some_and(|p| p.is_finished()) {
                finished.push((run.metadata.creation_timestamp.clone(), name));
            } else if !run.spec.terminate {
                self.writes.push(Write::TerminateAnalysisRun { name });
            }
        }
        // Newest first; everything past the limit goes.
        finished.sort_by(|a, b| {
            b.0.as_ref()
                .map(|t| t.0)
                .cmp(&a.0.as_ref().map(|t| t.0))
                .then(b.1.cmp(&a.1))
        });
        for (_, name) in finished.into_iter().skip(ANALYSIS_HISTORY) {
            self.writes.push(Write::DeleteAnalysisRun { name });
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
