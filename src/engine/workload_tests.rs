//! `workloadRef`: resolving the adopted Deployment, and the scale-down that
//! must never leave fewer pods serving than the Rollout promises, replayed on
//! the in-memory cluster with slow, flapping and externally scaled pods and
//! a controller killed between two writes.

use std::time::Duration;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::hash::{POD_TEMPLATE_HASH_LABEL, pod_template_hash};
use super::observed::Lookup;
use super::plan::{Write, plan};
use super::testkit::{Sim, rollout, template};
use super::workload::{
    ADOPTION_IN_PROGRESS, DEPLOYMENT_SCALED_DOWN, WORKLOAD_REF_INVALID, WorkloadState,
    deployment_target, resolve,
};
use crate::crd::{Rollout, RolloutPhase, ScaleDown, WorkloadRef};

fn reference(scale_down: ScaleDown) -> WorkloadRef {
    WorkloadRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "web".into(),
        scale_down: Some(scale_down),
    }
}

/// Rollout `web` adopting Deployment `web` (no template, no selector).
fn adopting(replicas: i32, scale_down: ScaleDown) -> Rollout {
    let mut r = rollout(replicas, None, true);
    r.spec.template = PodTemplateSpec::default();
    r.spec.selector = LabelSelector::default();
    r.spec.workload_ref = Some(reference(scale_down));
    r
}

fn deployment(image: &str, replicas: i32, available: i32) -> WorkloadState {
    WorkloadState {
        name: "web".into(),
        template: template(image),
        selector: LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: None,
        },
        replicas,
        available,
    }
}

fn sim(replicas: i32, scale_down: ScaleDown, max_unavailable: i32) -> Sim {
    let mut rollout = adopting(replicas, scale_down);
    if let Some(canary) = rollout.spec.strategy.canary.as_mut() {
        canary.max_unavailable = Some(IntOrString::Int(max_unavailable));
    }
    let mut sim = Sim::new(rollout);
    sim.observed.workload = Some(Lookup::Found(deployment("web:1", replicas, replicas)));
    sim
}

fn workload(sim: &Sim) -> WorkloadState {
    match &sim.observed.workload {
        Some(Lookup::Found(d)) => d.clone(),
        _ => WorkloadState::default(),
    }
}

fn workload_mut(sim: &mut Sim) -> &mut WorkloadState {
    match sim.observed.workload.as_mut() {
        Some(Lookup::Found(d)) => d,
        _ => panic!("the fixture has a Deployment"),
    }
}

/// Available pods the stable Service reaches: while it keeps its own
/// selector (`app=web`), the Deployment's and every Rollout pod; once
/// pointed, the pods of that one revision.
fn served(sim: &Sim) -> i32 {
    let selector = match sim.observed.services.get("web-stable") {
        Some(Lookup::Found(s)) => s.selector.clone(),
        _ => return 0,
    };
    let revisions = super::revisions::index(&sim.observed.replica_sets);
    match selector.get(POD_TEMPLATE_HASH_LABEL) {
        Some(hash) => revisions.get(hash).map(|r| r.available).unwrap_or(0),
        None => revisions
            .values()
            .map(|r| r.available)
            .sum::<i32>()
            .saturating_add(workload(sim).available),
    }
}

/// Set a ReplicaSet's pods: `ready` of them available (capped by its size).
fn set_ready(sim: &mut Sim, hash: &str, ready: impl Fn(i32, i32) -> i32) {
    for rs in &mut sim.observed.replica_sets {
        let labels = rs.metadata.labels.clone().unwrap_or_default();
        if labels.get(POD_TEMPLATE_HASH_LABEL).map(String::as_str) != Some(hash) {
            continue;
        }
        let wanted = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let status = rs.status.get_or_insert_with(Default::default);
        let now = status.available_replicas.unwrap_or(0).min(wanted);
        let next = ready(now, wanted).clamp(0, wanted);
        status.replicas = wanted;
        status.ready_replicas = Some(next);
        status.available_replicas = Some(next);
        status.observed_generation = Some(1);
        rs.metadata.generation = Some(1);
    }
}

/// One reconcile whose writes are carried out (only the first `keep` of
/// them when the controller is killed midway); returns the plan's writes.
fn reconcile(sim: &mut Sim, keep: Option<usize>) -> Vec<Write> {
    let plan = plan(&sim.rollout, &sim.observed, sim.now);
    let kept = keep.unwrap_or(plan.writes.len()).min(plan.writes.len());
    for write in &plan.writes[..kept] {
        sim.carry_out(write);
    }
    if keep.is_none() {
        sim.rollout.status = Some(plan.status.clone());
    }
    sim.now += Duration::from_secs(5);
    plan.writes
}

fn stable_hash() -> String {
    pod_template_hash(&template("web:1"))
}

#[test]
fn the_deployment_gives_its_template_and_selector_and_a_rollout_without_one_is_as_before() {
    let plain = rollout(3, None, false);
    assert!(matches!(
        resolve(&plain, None),
        Ok(std::borrow::Cow::Borrowed(_))
    ));
    let adopting = adopting(3, ScaleDown::Progressively);
    let found = Lookup::Found(deployment("web:7", 3, 3));
    let resolved = resolve(&adopting, Some(&found)).expect("resolves");
    assert_eq!(resolved.spec.template, template("web:7"));
    assert_eq!(
        resolved.spec.selector.match_labels,
        Some([("app".to_string(), "web".to_string())].into())
    );
    // A selector of its own is kept.
    let mut own = adopting.clone();
    own.spec.selector.match_labels = Some([("tier".to_string(), "front".to_string())].into());
    let resolved = resolve(&own, Some(&found)).expect("resolves");
    assert_eq!(
        resolved.spec.selector.match_labels,
        Some([("tier".to_string(), "front".to_string())].into())
    );
    // ...and checked against the Deployment's template like any template.
    let mut sim = Sim::new(own);
    sim.observed.workload = Some(found);
    let planned = sim.tick(Duration::from_secs(1));
    assert_eq!(planned.status.phase, Some(RolloutPhase::Degraded));
    let message = planned.status.message.unwrap_or_default();
    assert!(
        message.contains("spec.selector tier=front does not match the template labels"),
        "{message}"
    );
    assert!(planned.writes.is_empty(), "{:?}", planned.writes);
}

#[test]
fn a_missing_deployment_a_wrong_kind_or_a_template_beside_it_is_a_clear_condition_and_nothing_is_written()
 {
    let mut wrong_kind = adopting(3, ScaleDown::Progressively);
    if let Some(r) = wrong_kind.spec.workload_ref.as_mut() {
        r.kind = "StatefulSet".into();
    }
    let mut both = adopting(3, ScaleDown::Progressively);
    both.spec.template = template("web:1");
    let cases = [
        (
            adopting(3, ScaleDown::Progressively),
            Some(Lookup::Missing),
            "Deployment \"web\" not found in namespace \"demo\"",
        ),
        (adopting(3, ScaleDown::Progressively), None, "not found"),
        (
            wrong_kind,
            Some(Lookup::Found(deployment("web:1", 3, 3))),
            "StatefulSet \"apps/v1\" cannot be adopted",
        ),
        (
            both,
            Some(Lookup::Found(deployment("web:1", 3, 3))),
            "set exactly one of spec.template and spec.workloadRef",
        ),
    ];
    let mut no_template = deployment("web:1", 3, 3);
    no_template.template = PodTemplateSpec::default();
    let mut expressions = deployment("web:1", 3, 3);
    expressions.selector.match_expressions = Some(vec![Default::default()]);
    let cases = cases.into_iter().chain([
        (
            adopting(3, ScaleDown::Progressively),
            Some(Lookup::Found(no_template)),
            "Deployment \"web\" has no pod template",
        ),
        (
            adopting(3, ScaleDown::Progressively),
            Some(Lookup::Found(expressions)),
            "set spec.selector.matchLabels on the Rollout",
        ),
    ]);
    for (rollout, workload, says) in cases {
        let mut sim = Sim::new(rollout);
        sim.observed.workload = workload;
        let planned = sim.tick(Duration::from_secs(1));
        assert!(planned.writes.is_empty(), "{:?}", planned.writes);
        assert_eq!(planned.status.phase, Some(RolloutPhase::Degraded));
        let ready = planned
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready");
        assert_eq!(ready.map(|c| c.reason.as_str()), Some(WORKLOAD_REF_INVALID));
        let message = planned.status.message.clone().unwrap_or_default();
        assert!(message.contains(says), "{message}");
        assert!(
            planned
                .events
                .iter()
                .any(|e| e.warning && e.reason == WORKLOAD_REF_INVALID)
        );
        // The same problem again is not a new Event.
        let again = sim.tick(Duration::from_secs(1));
        assert!(again.events.is_empty(), "{:?}", again.events);
    }
}

#[test]
fn the_target_replaces_pod_for_pod_and_never_scales_up() {
    let d = deployment("web:1", 5, 5);
    let cases = [
        (ScaleDown::Progressively, 0, false, None),
        (ScaleDown::Progressively, 2, false, Some(3)),
        (ScaleDown::Progressively, 5, true, Some(0)),
        (ScaleDown::Progressively, 9, true, Some(0)),
        (ScaleDown::OnSuccess, 4, false, None),
        (ScaleDown::OnSuccess, 5, true, Some(0)),
        (ScaleDown::Never, 5, true, None),
    ];
    for (scale_down, available, healthy, want) in cases {
        assert_eq!(
            deployment_target(scale_down, 5, &d, available, healthy),
            want,
            "{scale_down:?} with {available} available"
        );
    }
    // A Deployment someone scaled below what is missing is never scaled up.
    let small = deployment("web:1", 1, 1);
    assert_eq!(
        deployment_target(ScaleDown::Progressively, 5, &small, 2, false),
        None
    );
}

#[test]
fn progressively_the_deployment_goes_as_the_rollouts_pods_come_and_the_service_moves_last() {
    let mut sim = sim(4, ScaleDown::Progressively, 0);
    let stable = stable_hash();
    let mut lowest = served(&sim);
    let mut seen_targets = Vec::new();
    for _ in 0..40 {
        let writes = reconcile(&mut sim, None);
        for w in &writes {
            if let Write::ScaleDeployment { replicas, .. } = w {
                seen_targets.push(*replicas);
            }
        }
        lowest = lowest.min(served(&sim));
        // One pod of the Rollout becomes available per pass.
        set_ready(&mut sim, &stable, |now, _| now + 1);
        lowest = lowest.min(served(&sim));
    }
    assert_eq!(lowest, 4, "never fewer than 4 pods serve");
    assert_eq!(seen_targets, vec![3, 2, 1, 0]);
    assert_eq!(workload(&sim).replicas, 0);
    assert_eq!(sim.phase(), Some(RolloutPhase::Healthy));
    assert_eq!(sim.selector_of("web-stable"), Some(stable));
}

#[test]
fn onsuccess_keeps_the_deployment_until_healthy_and_never_leaves_it_alone() {
    for (scale_down, end) in [(ScaleDown::OnSuccess, 0), (ScaleDown::Never, 3)] {
        let mut sim = sim(3, scale_down, 0);
        let stable = stable_hash();
        let mut replicas_seen = Vec::new();
        for _ in 0..10 {
            let planned = plan(&sim.rollout, &sim.observed, sim.now);
            let healthy = planned.status.phase == Some(RolloutPhase::Healthy);
            for w in &planned.writes {
                sim.carry_out(w);
                if let Write::ScaleDeployment { replicas, .. } = w {
                    assert!(healthy, "{scale_down:?} scales only once Healthy");
                    assert!(
                        planned
                            .events
                            .iter()
                            .any(|e| e.reason == DEPLOYMENT_SCALED_DOWN),
                        "an Event says so"
                    );
                    // The phase change still has its own Event.
                    assert!(planned.events.iter().any(|e| e.reason == "RolloutHealthy"));
                    assert_eq!(*replicas, 0);
                }
            }
            sim.rollout.status = Some(planned.status);
            replicas_seen.push(workload(&sim).replicas);
            assert!(served(&sim) >= 3);
            set_ready(&mut sim, &stable, |now, _| now + 1);
        }
        assert_eq!(
            workload(&sim).replicas,
            end,
            "{scale_down:?}: {replicas_seen:?}"
        );
        assert_eq!(sim.phase(), Some(RolloutPhase::Healthy));
    }
}

#[test]
fn a_new_deployment_template_after_the_adoption_starts_a_canary_and_during_it_waits() {
    let mut sim = sim(2, ScaleDown::Progressively, 0);
    let stable = stable_hash();
    reconcile(&mut sim, None);
    // Mid-adoption: one of two pods available; `kubectl set image deployment/web`.
    set_ready(&mut sim, &stable, |_, _| 1);
    workload_mut(&mut sim).template = template("web:2");
    let writes = reconcile(&mut sim, None);
    let status = sim.rollout.status.clone().unwrap_or_default();
    assert_eq!(status.canary_revision, None, "{writes:?}");
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.reason == ADOPTION_IN_PROGRESS)
    );
    assert!(served(&sim) >= 2);
    // Once the Rollout serves it all, the new template goes out as a canary.
    set_ready(&mut sim, &stable, |_, wanted| wanted);
    reconcile(&mut sim, None);
    reconcile(&mut sim, None);
    let status = sim.rollout.status.clone().unwrap_or_default();
    assert_eq!(status.stable_revision.as_deref(), Some(stable.as_str()));
    assert_eq!(
        status.canary_revision,
        Some(pod_template_hash(&template("web:2")))
    );
    assert_eq!(workload(&sim).replicas, 0);
}

/// Something that happens between two reconciles of an adoption.
#[derive(Clone, Debug)]
enum Happening {
    /// Up to n more of every Rollout ReplicaSet's pods become available.
    PodsReady(i32),
    /// n available pods of the stable revision go unready.
    PodsUnready(i32),
    /// Someone else sets the Deployment's replicas.
    DeploymentScaled(i32),
    /// The Deployment's new pods (after a scale-up by someone) become available.
    DeploymentPodsReady,
    /// The controller dies after carrying out only the first n writes of a plan.
    KilledAfter(usize),
}

fn happening() -> impl Strategy<Value = Happening> {
    prop_oneof![
        4 => (0..3i32).prop_map(Happening::PodsReady),
        1 => (1..3i32).prop_map(Happening::PodsUnready),
        1 => (0..12i32).prop_map(Happening::DeploymentScaled),
        1 => Just(Happening::DeploymentPodsReady),
        1 => (0..4usize).prop_map(Happening::KilledAfter),
    ]
}

#[test]
fn adoption_never_serves_fewer_pods_than_promised_whatever_happens() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let input = (
        1..10i32,
        0..3i32,
        prop::sample::select(vec![
            ScaleDown::Progressively,
            ScaleDown::OnSuccess,
            ScaleDown::Never,
        ]),
        proptest::collection::vec(happening(), 1..40),
    );
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let result = runner.run(
        &input,
        |(replicas, max_unavailable, scale_down, happenings)| {
            let max_unavailable = max_unavailable.min(replicas - 1);
            let promised = replicas - max_unavailable;
            let mut sim = sim(replicas, scale_down, max_unavailable);
            let stable = stable_hash();
            for happening in happenings {
                let mut keep = None;
                match happening {
                    Happening::PodsReady(n) => set_ready(&mut sim, &stable, |now, _| now + n),
                    Happening::PodsUnready(n) => set_ready(&mut sim, &stable, |now, _| now - n),
                    Happening::DeploymentScaled(n) => {
                        let d = workload_mut(&mut sim);
                        d.replicas = n;
                        d.available = d.available.min(n);
                    }
                    Happening::DeploymentPodsReady => {
                        let d = workload_mut(&mut sim);
                        d.available = d.replicas;
                    }
                    Happening::KilledAfter(n) => keep = Some(n),
                }
                let before = served(&sim);
                let replicas_before = workload(&sim).replicas;
                let writes = reconcile(&mut sim, keep);
                let after = served(&sim);
                // Whatever the cluster did, the plan never takes serving pods
                // below the promise (nor lower still when it was below already).
                let scales: Vec<&Write> = writes
                    .iter()
                    .filter(|w| {
                        matches!(
                            w,
                            Write::ScaleDeployment { .. } | Write::SelectRevision { .. }
                        )
                    })
                    .collect();
                prop_assert!(
                    after >= before.min(promised),
                    "served {before} → {after} (promised {promised}) after {scales:?}"
                );
                for write in &writes {
                    if let Write::ScaleDeployment { replicas: to, .. } = write {
                        prop_assert!(
                            *to < replicas_before,
                            "only ever scales down: {replicas_before} → {to}"
                        );
                        prop_assert!(scale_down != ScaleDown::Never);
                    }
                }
            }
            // Left alone with pods that become ready, every adoption completes.
            for _ in 0..(replicas + 10) {
                set_ready(&mut sim, &stable, |_, wanted| wanted);
                reconcile(&mut sim, None);
            }
            prop_assert_eq!(sim.phase(), Some(RolloutPhase::Healthy));
            prop_assert!(served(&sim) >= replicas);
            if scale_down != ScaleDown::Never {
                prop_assert_eq!(workload(&sim).replicas, 0);
            }
            Ok(())
        },
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn a_workload_ref_reaches_no_other_namespace() {
    // A `namespace` in the reference is not a field: it is dropped (the API
    // server prunes it too), and the write names the Deployment only.
    let hostile: WorkloadRef = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
        "namespace": "kube-system", "scaleDown": "progressively"
    }))
    .expect("parses");
    let text = serde_json::to_string(&hostile).unwrap_or_default();
    assert!(!text.contains("kube-system"), "{text}");
    let mut sim = sim(1, ScaleDown::Progressively, 0);
    sim.rollout.spec.workload_ref = Some(hostile);
    sim.tick(Duration::from_secs(1));
    let planned = sim.tick(Duration::from_secs(1));
    assert!(
        planned.writes.iter().any(|w| *w
            == Write::ScaleDeployment {
                name: "web".into(),
                replicas: 0
            }),
        "{:?}",
        planned.writes
    );
    let event = planned
        .events
        .iter()
        .find(|e| e.reason == DEPLOYMENT_SCALED_DOWN);
    assert!(
        event.is_some_and(|e| !e.warning && e.note.contains("from 1 to 0")),
        "{:?}",
        planned.events
    );
}
