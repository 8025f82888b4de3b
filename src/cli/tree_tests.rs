use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::*;
use crate::crd::{AnalysisPhase, AnalysisRunSpec, AnalysisRunStatus, RolloutPhase, RolloutStatus};
use crate::engine::hash::pod_template_hash;
use crate::engine::testkit::{analysis, pause, replica_set, rollout, template, weight};

fn pod(name: &str, rs: &ReplicaSet, ready: bool) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: Some(vec![OwnerReference {
                kind: "ReplicaSet".into(),
                name: rs.name_any(),
                uid: rs.metadata.uid.clone().unwrap_or_default(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        status: Some(PodStatus {
            phase: Some("Running".into()),
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

#[test]
fn the_tree_nests_pods_and_runs_under_their_revision_and_marks_the_current_step() {
    let mut web = rollout(
        1,
        Some(vec![
            weight(20),
            analysis("error-rate"),
            pause(None),
            weight(100),
        ]),
        true,
    );
    let stable_hash = pod_template_hash(&template("web:1"));
    let canary_hash = pod_template_hash(&template("web:2"));
    web.status = Some(RolloutStatus {
        phase: Some(RolloutPhase::Paused),
        stable_revision: Some(stable_hash.clone()),
        canary_revision: Some(canary_hash.clone()),
        current_step_index: Some(2),
        current_weight: 20,
        ..RolloutStatus::default()
    });
    let mut old = replica_set(&web, "web:1", 1, 1);
    old.metadata.uid = Some("uid-old".into());
    let mut new = replica_set(&web, "web:2", 1, 2);
    new.metadata.uid = Some("uid-new".into());
    let run = AnalysisRun {
        metadata: ObjectMeta {
            name: Some(format!("web-{canary_hash}-1")),
            ..ObjectMeta::default()
        },
        spec: AnalysisRunSpec {
            rollout: "web".into(),
            step_index: 1,
            canary_revision: canary_hash.clone(),
            stable_revision: stable_hash.clone(),
            ..AnalysisRunSpec::default()
        },
        status: Some(AnalysisRunStatus {
            phase: Some(AnalysisPhase::Successful),
            message: Some("error rate 0.1% vs 0.1%".into()),
            ..AnalysisRunStatus::default()
        }),
    };
    let pods = [pod("web-a", &old, true), pod("web-b", &new, false)];
    let tree = Tree::build(&web, &[old, new], &pods, &[run]);

    let states: Vec<&str> = tree.steps.iter().map(|s| s.state).collect();
    assert_eq!(states, ["done", "done", "current", "pending"]);
    assert_eq!(tree.revisions.len(), 2);
    let (newest, oldest) = (&tree.revisions[0], &tree.revisions[1]);
    assert_eq!(
        (newest.revision, newest.roles.as_slice()),
        (2, &["canary"][..])
    );
    assert_eq!(newest.images, ["web:2"]);
    assert_eq!(newest.pods.len(), 1);
    assert!(!newest.pods[0].ready);
    assert_eq!(newest.analysis_runs.len(), 1);
    assert_eq!(newest.analysis_runs[0].phase, "Successful");
    assert_eq!(oldest.roles, ["stable"]);
    assert!(oldest.analysis_runs.is_empty());

    let text = tree.render();
    let current: Vec<&str> = text.lines().filter(|l| l.contains(CURRENT_MARK)).collect();
    assert_eq!(
        current,
        [format!("  ▶ 3/4 pause (until promoted)   {CURRENT_MARK}")],
        "{text}"
    );
    assert!(text.contains("├─ revision 2 "), "{text}");
    assert!(text.contains("Pod web-b  Running (not ready)"), "{text}");
    assert!(
        text.contains("Successful: error rate 0.1% vs 0.1%"),
        "{text}"
    );
    // The JSON form carries the same facts.
    let json = serde_json::to_value(&tree).unwrap_or_default();
    assert_eq!(json["revisions"][0]["images"][0], "web:2");
    assert_eq!(json["steps"][2]["state"], "current");
}

#[test]
fn a_rollout_not_reconciled_yet_has_no_revisions_and_no_current_step() {
    let web = rollout(1, None, false);
    let tree = Tree::build(&web, &[], &[], &[]);
    assert!(tree.steps.iter().all(|s| s.state == "pending"));
    let text = tree.render();
    assert!(text.contains("Unknown (not reconciled yet)"), "{text}");
    assert!(text.contains("(none yet)"), "{text}");
    assert!(!text.contains(CURRENT_MARK), "{text}");
}
