//! Test fixtures for the engine: Rollout builders and a tiny in-memory cluster.
//!
//! `Sim` applies a plan's writes to `Observed` the way the API server and the
//! ReplicaSet controller would (pods become ready at once unless held), so
//! whole rollouts can be replayed step by step with a fixed clock.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::json;

use super::claims;
use super::observed::{Lookup, Observed, RouteState, ServiceState};
use super::plan::{Plan, Write, plan};
use super::revisions;
use crate::crd::{
    AnalysisPhase, AnalysisRun, AnalysisRunStatus, CanaryStep, CanaryStrategy, GatewayApiRouting,
    PauseStep, Rollout, RolloutSpec, RolloutStrategy, TrafficRouting,
};

pub fn weight(w: i32) -> CanaryStep {
    CanaryStep {
        set_weight: Some(w),
        ..CanaryStep::default()
    }
}

pub fn pause(duration: Option<&str>) -> CanaryStep {
    CanaryStep {
        pause: Some(PauseStep {
            duration: duration.map(Into::into),
        }),
        ..CanaryStep::default()
    }
}

pub fn analysis(template: &str) -> CanaryStep {
    CanaryStep {
        analysis: Some(crate::crd::AnalysisStep {
            templates: vec![crate::crd::AnalysisTemplateRef {
                template_name: template.into(),
                cluster_scope: false,
            }],
            args: Vec::new(),
        }),
        ..CanaryStep::default()
    }
}

pub fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: Some(image.into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
    }
}

/// A Rollout `web` in namespace `demo`; `gateway` selects HTTPRoute routing.
pub fn rollout(replicas: i32, steps: Option<Vec<CanaryStep>>, gateway: bool) -> Rollout {
    let canary = CanaryStrategy {
        steps,
        stable_service: Some("web-stable".into()),
        canary_service: Some("web-canary".into()),
        traffic_routing: gateway.then(|| TrafficRouting {
            gateway_api: Some(GatewayApiRouting {
                http_route: "web".into(),
                grpc_route: None,
                namespace: None,
                rule_indexes: None,
            }),
            managed_routes: Vec::new(),
        }),
        ..CanaryStrategy::default()
    };
    let mut rollout = Rollout::new(
        "web",
        RolloutSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                match_expressions: None,
            },
            template: template("web:1"),
            revision_history_limit: None,
            progress_deadline_seconds: None,
            abort_on_progress_deadline: false,
            analysis_cannot_tell: None,
            strategy: RolloutStrategy {
                canary: Some(canary),
                blue_green: None,
            },
            git: None,
            alerts: None,
            restart_at: None,
            workload_ref: None,
        },
    );
    rollout.metadata.namespace = Some("demo".into());
    rollout.metadata.uid = Some("uid-web".into());
    rollout.metadata.generation = Some(1);
    rollout
}

/// A blue-green Rollout of `replicas` pods: active `web-stable`, preview
/// `web-canary`, optionally routed through the `web` HTTPRoute.
pub fn blue_green_rollout(
    replicas: i32,
    gateway: bool,
    edit: impl FnOnce(&mut crate::crd::BlueGreenStrategy),
) -> Rollout {
    let mut r = rollout(replicas, None, false);
    let mut strategy = crate::crd::BlueGreenStrategy {
        active_service: "web-stable".into(),
        preview_service: Some("web-canary".into()),
        traffic_routing: gateway.then(|| TrafficRouting {
            gateway_api: Some(GatewayApiRouting {
                http_route: "web".into(),
                grpc_route: None,
                namespace: None,
                rule_indexes: None,
            }),
            managed_routes: Vec::new(),
        }),
        ..Default::default()
    };
    edit(&mut strategy);
    r.spec.strategy = RolloutStrategy {
        canary: None,
        blue_green: Some(strategy),
    };
    r
}

/// An in-memory cluster that carries out plans.
pub struct Sim {
    pub rollout: Rollout,
    pub observed: Observed,
    pub now: Timestamp,
    /// Pods of these revisions never become ready.
    pub broken: Vec<String>,
    pub plans: Vec<Plan>,
}

impl Sim {
    pub fn new(rollout: Rollout) -> Sim {
        let gateway = rollout
            .spec
            .strategy
            .canary
            .as_ref()
            .is_some_and(|c| c.traffic_routing.is_some())
            || rollout
                .spec
                .strategy
                .blue_green
                .as_ref()
                .is_some_and(|b| b.traffic_routing.is_some());
        let baseline = rollout
            .spec
            .strategy
            .canary
            .as_ref()
            .is_some_and(|c| c.baseline.is_some());
        let mut observed = Observed::default();
        for service in ["web-stable", "web-canary", "web-baseline"] {
            observed.services.insert(
                service.into(),
                Lookup::Found(ServiceState {
                    selector: [("app".to_string(), "web".to_string())].into(),
                    ..ServiceState::default()
                }),
            );
        }
        if gateway {
            observed.http_route = Some(Lookup::Found(RouteState {
                owner: None,
                resource_version: Some("1".into()),
                rules: json!([{ "backendRefs": [
                    {"name": "web-stable", "port": 80, "weight": 100},
                    {"name": "web-canary", "port": 80, "weight": 0}]}]),
                ..RouteState::default()
            }));
            if baseline
                && let Some(Lookup::Found(route)) = observed.http_route.as_mut()
                && let Some(refs) = route.rules[0]["backendRefs"].as_array_mut()
            {
                refs.push(json!({"name": "web-baseline", "port": 80, "weight": 0}));
            }
        }
        Sim {
            rollout,
            observed,
            now: Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH),
            broken: Vec::new(),
            plans: Vec::new(),
        }
    }

    /// Plan once, carry out the writes, persist the status, advance the clock by `tick`.
    pub fn tick(&mut self, tick: Duration) -> Plan {
        let plan = plan(&self.rollout, &self.observed, self.now);
        for write in &plan.writes {
            self.carry_out(write);
        }
        self.rollout.status = Some(plan.status.clone());
        self.now += tick;
        self.settle_pods();
        self.plans.push(plan.clone());
        plan
    }

    /// Tick until `done` holds or `limit` ticks pass; returns the number of ticks.
    pub fn run_until(
        &mut self,
        tick: Duration,
        limit: usize,
        done: impl Fn(&Sim) -> bool,
    ) -> usize {
        for n in 0..limit {
            if done(self) {
                return n;
            }
            self.tick(tick);
        }
        panic!(
            "condition not reached in {limit} ticks; status: {:#?}",
            self.rollout.status
        );
    }

    pub fn set_image(&mut self, image: &str) {
        self.rollout.spec.template = template(image);
        self.rollout.metadata.generation = self.rollout.metadata.generation.map(|g| g + 1);
    }

    pub fn annotate(&mut self, key: &str, value: &str) {
        self.rollout
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
    }

    pub fn phase(&self) -> Option<crate::crd::RolloutPhase> {
        self.rollout.status.as_ref().and_then(|s| s.phase)
    }

    pub fn route_weight(&self) -> i64 {
        match &self.observed.http_route {
            Some(Lookup::Found(r)) => r.rules[0]["backendRefs"][1]["weight"]
                .as_i64()
                .unwrap_or(-1),
            _ => -1,
        }
    }

    /// Weight of a backendRef of the first rule, by Service name.
    pub fn backend_weight(&self, service: &str) -> i64 {
        match &self.observed.http_route {
            Some(Lookup::Found(r)) => r.rules[0]["backendRefs"]
                .as_array()
                .and_then(|refs| refs.iter().find(|b| b["name"] == service))
                .and_then(|b| b["weight"].as_i64())
                .unwrap_or(-1),
            _ => -1,
        }
    }

    pub fn replicas_of(&self, hash: &str) -> Option<i32> {
        revisions::index(&self.observed.replica_sets)
            .get(hash)
            .map(|r| r.desired)
    }

    pub fn selector_of(&self, service: &str) -> Option<String> {
        match self.observed.services.get(service) {
            Some(Lookup::Found(s)) => s
                .selector
                .get(super::hash::POD_TEMPLATE_HASH_LABEL)
                .cloned(),
            _ => None,
        }
    }

    /// Give the background runs a verdict, as the analysis loop would.
    pub fn set_background_analysis(&mut self, phase: AnalysisPhase, message: &str) {
        for run in &mut self.observed.analysis_runs {
            if run.spec.background && !run.spec.terminate {
                run.status = Some(AnalysisRunStatus {
                    phase: Some(phase),
                    message: Some(message.into()),
                    ..Default::default()
                });
            }
        }
    }

    pub fn set_analysis(&mut self, phase: AnalysisPhase, message: &str) {
        for run in &mut self.observed.analysis_runs {
            run.status = Some(AnalysisRunStatus {
                phase: Some(phase),
                message: Some(message.into()),
                ..Default::default()
            });
        }
    }

    pub fn carry_out(&mut self, write: &Write) {
        match write {
            Write::ApplyReplicaSet(desired) => {
                let mut rs = revisions::build(&self.rollout, desired);
                let name = rs.metadata.name.clone();
                let old = self
                    .observed
                    .replica_sets
                    .iter()
                    .position(|r| r.metadata.name == name);
                let previous = old.map(|i| self.observed.replica_sets.remove(i));
                rs.status = previous.and_then(|p| p.status);
                rs.metadata.generation = Some(1);
                self.observed.replica_sets.push(rs);
            }
            Write::DeleteReplicaSet { name } => self
                .observed
                .replica_sets
                .retain(|r| r.metadata.name.as_ref() != Some(name)),
            Write::ClaimService { service, .. } => {
                if let Some(Lookup::Found(state)) = self.observed.services.get_mut(service) {
                    state.owner = Some(claims::service_claim(&self.rollout));
                }
            }
            Write::SelectRevision { service, revision } => {
                if let Some(Lookup::Found(state)) = self.observed.services.get_mut(service) {
                    state.owner = Some(claims::service_claim(&self.rollout));
                    state.selector = claims::service_selector(&self.rollout, revision);
                }
            }
            Write::SetRouteWeights { rules, .. } => {
                if let Some(Lookup::Found(state)) = self.observed.http_route.as_mut() {
                    state.rules = rules.clone();
                    state.owner = Some(claims::route_claim(&self.rollout));
                }
            }
            Write::CreateAnalysisRun { name, spec } => {
                let mut run = AnalysisRun::new(name, spec.clone());
                // The API server stamps creation; the history keeps the newest.
                run.metadata.creation_timestamp = Some(
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(self.now),
                );
                run.status = Some(AnalysisRunStatus {
                    phase: Some(AnalysisPhase::Running),
                    ..Default::default()
                });
                self.observed.analysis_runs.push(run);
            }
            // The analysis loop's part: a terminated run stops with that phase.
            Write::TerminateAnalysisRun { name } => {
                for run in &mut self.observed.analysis_runs {
                    if run.metadata.name.as_deref() == Some(name.as_str()) {
                        run.spec.terminate = true;
                        run.status = Some(AnalysisRunStatus {
                            phase: Some(AnalysisPhase::Terminated),
                            ..Default::default()
                        });
                    }
                }
            }
            Write::DeleteAnalysisRun { name } => self
                .observed
                .analysis_runs
                .retain(|r| r.metadata.name.as_deref() != Some(name.as_str())),
            // The Deployment controller: pods beyond the new count go at once.
            Write::ScaleDeployment { replicas, .. } => {
                if let Some(Lookup::Found(deployment)) = self.observed.workload.as_mut() {
                    deployment.replicas = *replicas;
                    deployment.available = deployment.available.min(*replicas);
                }
            }
            Write::EvictPod { name } => self
                .observed
                .restart_pods
                .retain(|p| p.metadata.name.as_deref() != Some(name.as_str())),
        }
    }

    /// The ReplicaSet controller: pods exist and are ready as asked (broken revisions never ready).
    fn settle_pods(&mut self) {
        for rs in &mut self.observed.replica_sets {
            let wanted = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let hash = rs
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(super::hash::POD_TEMPLATE_HASH_LABEL))
                .cloned()
                .unwrap_or_default();
            let ready = if self.broken.contains(&hash) {
                0
            } else {
                wanted
            };
            rs.status = Some(ReplicaSetStatus {
                replicas: wanted,
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                observed_generation: Some(1),
                ..ReplicaSetStatus::default()
            });
        }
    }
}

/// A ReplicaSet fixture for hand-built observations.
pub fn replica_set(rollout: &Rollout, image: &str, replicas: i32, number: i64) -> ReplicaSet {
    let template = template(image);
    let hash = super::hash::pod_template_hash(&template);
    let mut rs = revisions::build(
        rollout,
        &revisions::DesiredReplicaSet {
            hash,
            template,
            replicas,
            number,
            scale_down_at: None,
        },
    );
    rs.status = Some(ReplicaSetStatus {
        replicas,
        ready_replicas: Some(replicas),
        available_replicas: Some(replicas),
        ..ReplicaSetStatus::default()
    });
    rs
}
