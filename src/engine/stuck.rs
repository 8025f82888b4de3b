//! Why a revision makes no progress, from its pods and its ReplicaSet:
//! unschedulable, image pull failures, crash loops, or simply not Ready.
//!
//! Pure, over what was observed; the progress-deadline message and the
//! abort on the deadline quote it so that the operator does not have to go
//! looking with `kubectl describe`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use super::hash::POD_TEMPLATE_HASH_LABEL;
use super::observed::Observed;
use super::revisions::ROLLOUT_LABEL;

/// Container waiting reasons that explain a pod that does not start.
const WAITING_PROBLEMS: [&str; 7] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// One line saying why pods of `revision` are not Ready, if any are not.
pub fn why(observed: &Observed, revision: &str) -> Option<String> {
    let mut causes: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut note = |cause: String, detail: String| {
        let entry = causes.entry(cause).or_insert((0, detail));
        entry.0 = entry.0.saturating_add(1);
    };
    for pod in observed.pods.iter().filter(|p| of_revision(p, revision)) {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some((cause, detail)) = pod_problem(pod) {
            note(cause, detail);
        }
    }
    // A ReplicaSet that cannot create pods at all (quota, admission) says so in its conditions.
    for rs in &observed.replica_sets {
        let labels = rs.metadata.labels.as_ref();
        let hash = labels.and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL));
        if hash.map(String::as_str) != Some(revision)
            || labels.and_then(|l| l.get(ROLLOUT_LABEL)).is_none()
        {
            continue;
        }
        let conditions = rs.status.as_ref().and_then(|s| s.conditions.as_ref());
        for condition in conditions.into_iter().flatten() {
            if condition.type_ == "ReplicaFailure" && condition.status == "True" {
                let reason = condition
                    .reason
                    .clone()
                    .unwrap_or_else(|| "ReplicaFailure".into());
                note(reason, condition.message.clone().unwrap_or_default());
            }
        }
    }
    if causes.is_empty() {
        return None;
    }
    let parts: Vec<String> = causes
        .into_iter()
        .map(|(cause, (count, detail))| {
            let pods = if count == 1 { "pod" } else { "pods" };
            let detail: String = detail.chars().take(200).collect();
            if detail.is_empty() {
                format!("{count} {pods} {cause}")
            } else {
                format!("{count} {pods} {cause} ({detail})")
            }
        })
        .collect();
    Some(format!("revision {revision}: {}", parts.join(", ")))
}

fn of_revision(pod: &Pod, revision: &str) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
        .is_some_and(|h| h == revision)
}

/// The first thing that keeps `pod` from being Ready, as (cause, detail).
fn pod_problem(pod: &Pod) -> Option<(String, String)> {
    let status = pod.status.as_ref()?;
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
    if condition("Ready").is_some_and(|c| c.status == "True") {
        return None;
    }
    if let Some(scheduled) = condition("PodScheduled").filter(|c| c.status == "False") {
        let reason = scheduled
            .reason
            .clone()
            .unwrap_or_else(|| "Unschedulable".into());
        return Some((reason, scheduled.message.clone().unwrap_or_default()));
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in containers {
        let waiting = container.state.as_ref().and_then(|s| s.waiting.as_ref());
        if let Some(waiting) = waiting
            && let Some(reason) = waiting.reason.as_deref()
            && WAITING_PROBLEMS.contains(&reason)
        {
            let detail = format!(
                "{}: {}",
                container.name,
                waiting.message.clone().unwrap_or_default()
            );
            return Some((reason.to_string(), detail));
        }
    }
    let phase = status.phase.clone().unwrap_or_else(|| "Pending".into());
    Some(("not Ready".into(), format!("phase {phase}")))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod(name: &str, revision: &str, status: PodStatus) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([(POD_TEMPLATE_HASH_LABEL.to_string(), revision.to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(status),
        }
    }

    fn condition(kind: &str, status: &str, reason: &str, message: &str) -> PodCondition {
        PodCondition {
            type_: kind.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            ..PodCondition::default()
        }
    }

    #[test]
    fn says_which_pods_are_stuck_and_why() {
        let unschedulable = PodStatus {
            phase: Some("Pending".into()),
            conditions: Some(vec![condition(
                "PodScheduled",
                "False",
                "Unschedulable",
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
            )]),
            ..PodStatus::default()
        };
        let pulling = PodStatus {
            phase: Some("Pending".into()),
            conditions: Some(vec![condition("PodScheduled", "True", "", "")]),
            container_statuses: Some(vec![ContainerStatus {
                name: "web".into(),
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("ImagePullBackOff".into()),
                        message: Some("Back-off pulling image \"web:nope\"".into()),
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        };
        let ready = PodStatus {
            conditions: Some(vec![condition("Ready", "True", "", "")]),
            ..PodStatus::default()
        };
        let observed = Observed {
            pods: vec![
                pod("a", "abc", unschedulable.clone()),
                pod("b", "abc", unschedulable),
                pod("c", "abc", pulling),
                pod("d", "abc", ready),
                pod("e", "other", PodStatus::default()),
            ],
            ..Observed::default()
        };
        let why = why(&observed, "abc").unwrap_or_default();
        assert!(
            why.contains("2 pods Unschedulable (0/1 nodes are available"),
            "{why}"
        );
        assert!(
            why.contains("1 pod ImagePullBackOff (web: Back-off pulling image"),
            "{why}"
        );
        assert!(
            !why.contains("not Ready"),
            "the Ready pod and other revisions do not count: {why}"
        );
        assert_eq!(super::why(&observed, "nothing"), None);
    }
}
