//! Properties of `plan` over whole canaries: random steps, random operator
//! requests, analysis verdicts, broken pods and clock jumps, replayed on the
//! in-memory cluster. After every reconcile, the invariants users rely on
//! hold: weights stay within 0-100, an abort has taken all traffic off the
//! canary, and stable keeps the capacity the Rollout promises.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::controls;
use super::revisions;
use super::testkit::{Sim, analysis, pause, rollout, weight};
use crate::crd::{AnalysisPhase, CanaryStep, RolloutPhase};

/// Something that happens between two reconciles.
#[derive(Clone, Debug)]
enum Event {
    Wait(u64),
    Abort,
    Promote,
    PromoteFull,
    Retry,
    Paused(bool),
    NewImage(u8),
    Verdict(AnalysisPhase),
    BreakCanary,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (1u64..400).prop_map(Event::Wait),
        1 => Just(Event::Abort),
        2 => Just(Event::Promote),
        1 => Just(Event::PromoteFull),
        1 => Just(Event::Retry),
        1 => any::<bool>().prop_map(Event::Paused),
        1 => (2u8..5).prop_map(Event::NewImage),
        2 => prop::sample::select(vec![
            AnalysisPhase::Successful,
            AnalysisPhase::Failed,
            AnalysisPhase::Inconclusive,
            AnalysisPhase::Error,
        ])
        .prop_map(Event::Verdict),
        1 => Just(Event::BreakCanary),
    ]
}

fn steps() -> impl Strategy<Value = Vec<CanaryStep>> {
    let step = prop_oneof![
        (0..=100i32).prop_map(weight),
        (1u64..300).prop_map(|s| pause(Some(&format!("{s}s")))),
        Just(pause(None)),
        Just(analysis("errors")),
    ];
    proptest::collection::vec(step, 1..8).prop_map(|mut steps| {
        // Weights must not decrease: sort them in place, keeping the other steps where they are.
        let mut weights: Vec<i32> = steps.iter().filter_map(|s| s.set_weight).collect();
        weights.sort_unstable();
        let mut sorted = weights.into_iter();
        for step in &mut steps {
            if step.set_weight.is_some() {
                step.set_weight = sorted.next();
            }
        }
        steps
    })
}

fn token(n: usize) -> String {
    format!("t{n}")
}

/// Apply `event` (the `n`th) to the simulated cluster.
fn happen(sim: &mut Sim, n: usize, event: &Event) {
    match event {
        Event::Wait(seconds) => sim.now += Duration::from_secs(*seconds),
        Event::Abort => sim.annotate(controls::ABORT, &token(n)),
        Event::Promote => sim.annotate(controls::PROMOTE, &token(n)),
        Event::PromoteFull => sim.annotate(controls::PROMOTE_FULL, &token(n)),
        Event::Retry => sim.annotate(controls::RETRY, &token(n)),
        Event::Paused(on) => sim.annotate(controls::PAUSED, if *on { "true" } else { "false" }),
        Event::NewImage(i) => sim.set_image(&format!("web:{i}")),
        Event::Verdict(phase) => sim.set_analysis(*phase, "generated verdict"),
        Event::BreakCanary => {
            if let Some(canary) = sim
                .rollout
                .status
                .as_ref()
                .and_then(|s| s.canary_revision.clone())
            {
                sim.broken.push(canary);
            }
        }
    }
}

/// The invariants after one reconcile.
fn invariants(sim: &Sim, gateway: bool, replicas: i32) -> Result<(), TestCaseError> {
    let status = sim.rollout.status.clone().unwrap_or_default();
    prop_assert!((0..=100).contains(&status.current_weight));
    prop_assert!((0..=100).contains(&status.desired_weight));
    if !gateway {
        return Ok(());
    }
    let route = sim.route_weight();
    prop_assert!((0..=100).contains(&route), "route weight {route}");
    if status.phase == Some(RolloutPhase::Aborted) {
        prop_assert_eq!(
            route,
            0,
            "an abort takes all traffic off the canary at once"
        );
    }
    let index = revisions::index(&sim.observed.replica_sets);
    if let Some(stable) = status.stable_revision.as_ref().and_then(|h| index.get(h)) {
        prop_assert!(
            stable.desired >= replicas,
            "stable {} asks for {} pods of {replicas}",
            stable.hash,
            stable.desired
        );
    }
    Ok(())
}

#[test]
fn plan_keeps_its_promises_through_any_sequence_of_events() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let input = (
        1..12i32,
        steps(),
        any::<bool>(),
        0..3i32,
        proptest::collection::vec(event(), 1..40),
    );
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let ran = std::cell::Cell::new(0u32);
    let outcome = runner.run(&input, |(replicas, steps, gateway, unavailable, events)| {
        ran.set(ran.get() + 1);
        let mut r = rollout(replicas, Some(steps), gateway);
        if let Some(canary) = r.spec.strategy.canary.as_mut() {
            canary.max_unavailable = Some(IntOrString::Int(unavailable));
        }
        let mut sim = Sim::new(r);
        for _ in 0..10 {
            sim.tick(Duration::from_secs(1));
        }
        // Without a router, weights the replica count cannot honour are
        // refused up front (engine::ratio); such specs never roll out.
        prop_assume!(gateway || sim.phase() != Some(RolloutPhase::Degraded));
        prop_assert_eq!(sim.phase(), Some(RolloutPhase::Healthy));
        for (n, event) in events.iter().enumerate() {
            happen(&mut sim, n, event);
            sim.tick(Duration::from_secs(1));
            invariants(&sim, gateway, replicas)?;
        }
        // Whatever happened, an abort always reaches weight 0 on the next reconcile.
        sim.annotate(controls::ABORT, "final");
        sim.tick(Duration::from_secs(1));
        let status = sim.rollout.status.clone().unwrap_or_default();
        if status.canary_revision.is_some() {
            prop_assert_eq!(status.phase, Some(RolloutPhase::Aborted));
            if gateway {
                prop_assert_eq!(sim.route_weight(), 0);
            }
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("property plan over event sequences failed: {failure}");
    }
    eprintln!(
        "property plan over event sequences: {} cases passed",
        ran.get()
    );
}
