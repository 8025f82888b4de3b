//! Events on the real control plane: every step's note is its own Event,
//! `kubectl get events --sort-by=.lastTimestamp` lists them in the order they
//! happened, and an identical repeat is folded into one Event with a count.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;
use sluice::crd::{Rollout, RolloutPhase};

use super::harness::{ControllerProcess, cluster, wait_for};
use super::support::*;

const SETTLE: Duration = Duration::from_secs(90);
/// The example's steps: setWeight/pause ×3, then setWeight 100.
const STEPS: usize = 7;

fn kubectl() -> PathBuf {
    match std::env::var("SLUICE_CLUSTER_CACHE") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir).join("bin/kubectl"),
        _ => PathBuf::from("kubectl"),
    }
}

/// Messages of Sluice's Events on Rollout `web`, in `kubectl --sort-by` order.
fn kubectl_sorted_messages(namespace: &str) -> Vec<(String, String)> {
    let out = Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(&cluster().info.kubeconfig)
        .args(["get", "events", "-n", namespace, "--sort-by=.lastTimestamp"])
        .args([
            "--field-selector",
            "involvedObject.kind=Rollout,involvedObject.name=web",
            "-o",
            "custom-columns=LAST:.lastTimestamp,MESSAGE:.message",
            "--no-headers",
        ])
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (last, message) = line.trim().split_once(char::is_whitespace)?;
            Some((last.to_string(), message.trim().to_string()))
        })
        .collect()
}

/// The step number in "step 3/7 completed".
fn step_number(message: &str) -> Option<usize> {
    message
        .strip_prefix("step ")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// `kubectl get events --sort-by=.lastTimestamp` lists the steps in the order
/// they happened. The API keeps whole seconds, so steps completed within one
/// second tie and kubectl may list them either way; everything else is strict.
fn assert_in_step_order(namespace: &str, events: &[Event]) {
    // What happened: later steps never carry an earlier lastTimestamp.
    let mut by_step: Vec<(usize, jiff::Timestamp)> = events
        .iter()
        .filter_map(|e| {
            Some((
                step_number(e.message.as_deref()?)?,
                e.last_timestamp.as_ref()?.0,
            ))
        })
        .collect();
    by_step.sort();
    assert_eq!(by_step.len(), STEPS, "{events:?}");
    assert!(by_step.windows(2).all(|w| w[0].1 <= w[1].1), "{by_step:?}");
    // What kubectl shows.
    let sorted = kubectl_sorted_messages(namespace);
    let steps: Vec<(usize, jiff::Timestamp)> = sorted
        .iter()
        .filter_map(|(last, message)| Some((step_number(message)?, last.parse().ok()?)))
        .collect();
    assert_eq!(
        steps.len(),
        STEPS,
        "every step with a lastTimestamp: {sorted:?}"
    );
    for pair in steps.windows(2) {
        let ((earlier, at), (later, then)) = (pair[0], pair[1]);
        assert!(
            earlier < later || at == then,
            "step {earlier} listed before step {later}: {sorted:?}"
        );
    }
}

async fn step_events(admin: &kube::Client, ns: &str) -> Vec<Event> {
    Api::<Event>::namespaced(admin.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("StepCompleted"))
        .collect()
}

async fn roll_to(admin: &kube::Client, ns: &str, image: &str) {
    let before = rollout(admin, ns, "web").await.status.unwrap_or_default();
    set_image(admin, ns, "web", image).await;
    wait_for(SETTLE, &format!("{image} promoted"), || {
        let (admin, ns) = (admin.clone(), ns.to_string());
        let old = before.stable_revision.clone();
        async move {
            let status: Rollout = rollout(&admin, &ns, "web").await;
            let status = status.status.unwrap_or_default();
            (status.phase == Some(RolloutPhase::Healthy) && status.stable_revision != old)
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn step_events_are_distinct_sorted_by_last_timestamp_and_repeats_are_counted() {
    // The controller runs with the ServiceAccount and RBAC from deploy/.
    let (admin, ns, kubeconfig) = setup("events").await;
    let controller = ControllerProcess::start(&kubeconfig, &ns, "ev-1", &["--no-leader-election"]);
    for file in [
        "gateway-canary/services.yaml",
        "gateway-canary/httproute.yaml",
        "gateway-canary/rollout.yaml",
    ] {
        apply_example(&admin, &ns, file, speed_up).await;
    }
    wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;

    roll_to(&admin, &ns, "registry.example.com/web:1.0.1").await;
    // (a) Every step's note is its own Event, written once.
    let first = step_events(&admin, &ns).await;
    let mut notes: Vec<String> = first.iter().filter_map(|e| e.message.clone()).collect();
    notes.sort();
    let expected: Vec<String> = (1..=STEPS)
        .map(|i| format!("step {i}/{STEPS} completed"))
        .collect();
    assert_eq!(notes, expected, "{}", controller.log_tail());
    for event in &first {
        assert_eq!(event.count, Some(1), "{event:?}");
        assert!(event.last_timestamp.is_some(), "{event:?}");
        assert_eq!(
            event.source.as_ref().and_then(|s| s.component.as_deref()),
            Some("sluice")
        );
    }
    // (b) kubectl's sort by lastTimestamp gives the order the steps happened in.
    assert_in_step_order(&ns, &first);

    // (c) The same notes again within the window: folded, count 2, same Events.
    roll_to(&admin, &ns, "registry.example.com/web:1.0.2").await;
    let second = step_events(&admin, &ns).await;
    assert_eq!(second.len(), STEPS, "{second:?}");
    for event in &second {
        assert_eq!(event.count, Some(2), "{event:?}");
        assert!(
            event.first_timestamp.as_ref().map(|t| t.0)
                < event.last_timestamp.as_ref().map(|t| t.0),
            "{event:?}"
        );
    }
    assert_in_step_order(&ns, &second);
}
