//! The restart (`spec.restartAt`): which pods go, when, and never below availability.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::hash::{POD_TEMPLATE_HASH_LABEL, pod_template_hash};
use super::plan::{Write, plan};
use super::restart::{Group, Next, PodView, RESTART_DONE, held_because, next};
use super::testkit::{replica_set, rollout, template};
use crate::crd::{Rollout, RolloutPhase, RolloutStatus};

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn pod(name: &str, created: i64, ready: bool) -> PodView {
    PodView {
        name: name.into(),
        created: t(created),
        ready,
        terminating: false,
    }
}

fn group(desired: i32, pods: Vec<PodView>) -> Vec<Group> {
    vec![Group {
        revision: "abc".into(),
        desired,
        pods,
    }]
}

#[test]
fn old_pods_go_one_at_a_time_oldest_first() {
    let pods = group(
        3,
        vec![
            pod("b", -50, true),
            pod("a", -90, true),
            pod("c", -10, true),
        ],
    );
    assert_eq!(
        next(Some(t(0)), None, &pods, 0, t(5)),
        Next::Evict(vec!["a".into()])
    );
}

#[test]
fn a_ready_pod_is_never_evicted_while_one_is_missing() {
    // "a" was evicted: it terminates and its replacement is not Ready yet.
    let mut terminating = pod("a", -90, true);
    terminating.terminating = true;
    let pods = group(
        3,
        vec![
            terminating,
            pod("b", -50, true),
            pod("c", -10, true),
            pod("new", 3, false),
        ],
    );
    assert_eq!(
        next(Some(t(0)), None, &pods, 0, t(5)),
        Next::WaitForReady { left: 2 }
    );
    // Replacement Ready: the next old pod goes.
    let pods = group(
        3,
        vec![
            pod("b", -50, true),
            pod("c", -10, true),
            pod("new", 3, true),
        ],
    );
    assert_eq!(
        next(Some(t(0)), None, &pods, 0, t(6)),
        Next::Evict(vec!["b".into()])
    );
}

#[test]
fn max_unavailable_widens_the_batch_but_never_beyond_it() {
    let pods = group(
        4,
        (0..4)
            .map(|i| pod(&format!("p{i}"), -100 + i, true))
            .collect(),
    );
    assert_eq!(
        next(Some(t(0)), None, &pods, 2, t(1)),
        Next::Evict(vec!["p0".into(), "p1".into()])
    );
    // One already missing: only one more may go.
    let pods = group(
        4,
        (1..4)
            .map(|i| pod(&format!("p{i}"), -100 + i, true))
            .collect(),
    );
    assert_eq!(
        next(Some(t(0)), None, &pods, 2, t(1)),
        Next::Evict(vec!["p1".into()])
    );
}

#[test]
fn a_large_max_unavailable_never_empties_a_small_replica_set() {
    let pods = group(2, vec![pod("a", -90, true), pod("b", -50, true)]);
    assert_eq!(
        next(Some(t(0)), None, &pods, 5, t(1)),
        Next::Evict(vec!["a".into()])
    );
}

#[test]
fn an_unready_old_pod_goes_first_and_costs_no_availability() {
    // Two Ready pods of three: no Ready pod may go, but the broken old one may.
    let pods = group(
        3,
        vec![pod("a", -90, true), pod("b", -50, false), pod("c", 2, true)],
    );
    assert_eq!(
        next(Some(t(0)), None, &pods, 0, t(5)),
        Next::Evict(vec!["b".into()])
    );
}

#[test]
fn a_future_restart_at_is_waited_for() {
    let pods = group(2, vec![pod("a", -90, true), pod("b", -50, true)]);
    assert_eq!(
        next(Some(t(600)), None, &pods, 0, t(0)),
        Next::WaitUntil(t(600))
    );
}

#[test]
fn done_when_every_pod_is_newer_and_ready() {
    let pods = group(2, vec![pod("a", 10, true), pod("b", 20, true)]);
    assert_eq!(next(Some(t(0)), None, &pods, 0, t(30)), Next::Done);
    // Newer but one not Ready yet: not done.
    let pods = group(2, vec![pod("a", 10, true), pod("b", 20, false)]);
    assert_eq!(
        next(Some(t(0)), None, &pods, 0, t(30)),
        Next::WaitForReady { left: 0 }
    );
    // Done once: the same restartAt does nothing again; a newer one does.
    let old = group(2, vec![pod("a", -10, true), pod("b", -20, true)]);
    assert_eq!(next(Some(t(0)), Some(t(0)), &old, 0, t(30)), Next::Idle);
    assert_eq!(
        next(Some(t(1)), Some(t(0)), &old, 0, t(30)),
        Next::Evict(vec!["b".into()])
    );
    assert_eq!(next(None, None, &old, 0, t(30)), Next::Idle);
}

#[test]
fn a_refused_eviction_is_asked_again_never_skipped() {
    // The PDB refused "a": nothing changed in the cluster, so the next pass asks again for "a".
    let pods = group(2, vec![pod("a", -90, true), pod("b", -50, true)]);
    let first = next(Some(t(0)), None, &pods, 0, t(5));
    let again = next(Some(t(0)), None, &pods, 0, t(15));
    assert_eq!(first, Next::Evict(vec!["a".into()]));
    assert_eq!(again, first);
}

#[test]
fn restarts_wait_while_unsafe() {
    assert!(held_because(false, RolloutPhase::Healthy, false, false, false).is_none());
    assert!(held_because(false, RolloutPhase::Progressing, false, false, false).is_none());
    assert!(held_because(true, RolloutPhase::Paused, false, false, false).is_none());
    for held in [
        held_because(true, RolloutPhase::Progressing, false, false, false),
        held_because(true, RolloutPhase::Aborted, true, false, false),
        held_because(true, RolloutPhase::Paused, false, true, false),
        held_because(false, RolloutPhase::Healthy, false, false, true),
    ] {
        assert!(held.is_some());
    }
}

// Through the whole plan.

fn real_pod(hash: &str, name: &str, created: i64, ready: bool) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            creation_timestamp: Some(Time(t(created))),
            labels: Some(
                [
                    ("app".to_string(), "web".to_string()),
                    (POD_TEMPLATE_HASH_LABEL.to_string(), hash.to_string()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        status: Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
        ..Pod::default()
    }
}

fn healthy(restart_at: Option<i64>) -> (Rollout, super::Observed, String) {
    let mut web = rollout(3, None, true);
    web.spec.restart_at = restart_at.map(|s| Time(t(s)));
    let hash = pod_template_hash(&template("web:1"));
    web.status = Some(RolloutStatus {
        stable_revision: Some(hash.clone()),
        phase: Some(RolloutPhase::Healthy),
        ..RolloutStatus::default()
    });
    // Sim's cluster: the Services and the HTTPRoute the Rollout names.
    let mut observed = super::testkit::Sim::new(web.clone()).observed;
    observed.replica_sets = vec![replica_set(&web, "web:1", 3, 1)];
    (web, observed, hash)
}

fn evictions(writes: &[Write]) -> Vec<String> {
    writes
        .iter()
        .filter_map(|w| match w {
            Write::EvictPod { name } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_plan_evicts_one_old_pod_and_writes_no_replica_set() {
    let (web, mut observed, hash) = healthy(Some(0));
    observed.restart_pods = vec![
        real_pod(&hash, "web-1", -300, true),
        real_pod(&hash, "web-2", -200, true),
        real_pod(&hash, "web-3", -100, true),
    ];
    let plan = plan(&web, &observed, t(10));
    assert_eq!(
        evictions(&plan.writes),
        vec!["web-1".to_string()],
        "{:?} {:?}",
        plan.status.message,
        plan.writes
    );
    assert!(
        !plan
            .writes
            .iter()
            .any(|w| matches!(w, Write::ApplyReplicaSet(_))),
        "a restart makes no new revision: {:?}",
        plan.writes
    );
    assert!(plan.status.restart_progress.is_some());
    assert_eq!(plan.status.restarted_at, None);
}

#[test]
fn the_plan_waits_for_a_future_restart_and_wakes_at_it() {
    let (web, mut observed, hash) = healthy(Some(120));
    observed.restart_pods = vec![real_pod(&hash, "web-1", -300, true)];
    let plan = plan(&web, &observed, t(0));
    assert!(evictions(&plan.writes).is_empty());
    assert!(
        plan.requeue_after.as_secs() <= 121 && plan.requeue_after.as_secs() >= 119,
        "{:?}",
        plan.requeue_after
    );
}

#[test]
fn the_plan_records_the_restart_done_once_and_keeps_the_spec() {
    let (mut web, mut observed, hash) = healthy(Some(0));
    observed.restart_pods = (1..=3)
        .map(|i| real_pod(&hash, &format!("web-n{i}"), 5 + i, true))
        .collect();
    let done = plan(&web, &observed, t(30));
    assert!(evictions(&done.writes).is_empty());
    assert_eq!(done.status.restarted_at, Some(Time(t(0))));
    assert_eq!(done.status.restart_progress, None);
    assert!(done.events.iter().any(|e| e.reason == RESTART_DONE));
    web.status = Some(done.status);
    let after = plan(&web, &observed, t(40));
    assert!(!after.events.iter().any(|e| e.reason == RESTART_DONE));
    assert_eq!(web.spec.restart_at, Some(Time(t(0))));
}
