//! Cost of one `plan()` call at a step transition (pure CPU, no API server).
//!
//! `cargo bench --bench plan` prints the median of several batches; compare
//! runs on the same machine, as ratios, not as absolute numbers.

use std::hint::black_box;
use std::time::Instant;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSetStatus;
use serde_json::json;
use sluice::crd::{Rollout, RolloutPhase, RolloutStatus};
use sluice::engine::hash::pod_template_hash;
use sluice::engine::revisions::{DesiredReplicaSet, build};
use sluice::engine::{Lookup, Observed, RouteState, ServiceState, plan};

const ROLLOUT: &str = r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: web, namespace: demo, uid: u1, generation: 2}
spec:
  replicas: 10
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "web:2", ports: [{containerPort: 8080}]}]}
  strategy:
    canary:
      stableService: web-stable
      canaryService: web-canary
      trafficRouting: {gatewayAPI: {httpRoute: web}}
      steps: [{setWeight: 10}, {pause: {duration: 1m}}, {setWeight: 50}, {setWeight: 100}]
"#;

fn fixture() -> (Rollout, Observed) {
    let mut rollout: Rollout = serde_yaml_ng::from_str(ROLLOUT).expect("fixture");
    let canary = pod_template_hash(&rollout.spec.template);
    let mut stable_template = rollout.spec.template.clone();
    if let Some(c) = stable_template
        .spec
        .as_mut()
        .and_then(|s| s.containers.first_mut())
    {
        c.image = Some("web:1".into());
    }
    let stable = pod_template_hash(&stable_template);
    let mut observed = Observed::default();
    for (hash, template, replicas, number) in [
        (&stable, &stable_template, 10, 1),
        (&canary, &rollout.spec.template, 1, 2),
    ] {
        let desired = DesiredReplicaSet {
            hash: hash.clone(),
            template: template.clone(),
            replicas,
            number,
            scale_down_at: None,
        };
        let mut rs = build(&rollout, &desired);
        rs.status = Some(ReplicaSetStatus {
            replicas,
            ready_replicas: Some(replicas),
            available_replicas: Some(replicas),
            ..Default::default()
        });
        observed.replica_sets.push(rs);
    }
    for (service, hash) in [("web-stable", &stable), ("web-canary", &canary)] {
        let selector = [
            ("app".to_string(), "web".to_string()),
            ("sluice.dev/pod-template-hash".to_string(), hash.clone()),
        ]
        .into();
        observed.services.insert(
            service.into(),
            Lookup::Found(ServiceState {
                selector,
                owner: Some("web".into()),
                resource_version: Some("3".into()),
            }),
        );
    }
    observed.http_route = Some(Lookup::Found(RouteState {
        owner: Some(format!(
            "{}/web",
            rollout.metadata.namespace.as_deref().unwrap_or("default")
        )),
        resource_version: Some("9".into()),
        rules: json!([{"backendRefs": [{"name": "web-stable", "port": 80, "weight": 90}, {"name": "web-canary", "port": 80, "weight": 10}]}]),
        ..RouteState::default()
    }));
    rollout.status = Some(RolloutStatus {
        phase: Some(RolloutPhase::Progressing),
        stable_revision: Some(stable),
        canary_revision: Some(canary),
        current_step_index: Some(0),
        current_weight: 10,
        ..RolloutStatus::default()
    });
    (rollout, observed)
}

fn main() {
    let (rollout, observed) = fixture();
    let now = Timestamp::now();
    let check = plan(&rollout, &observed, now);
    assert_eq!(
        check.status.current_step_index,
        Some(1),
        "the fixture is a step transition"
    );
    let batch = 2_000;
    let mut per_call = Vec::new();
    for _ in 0..15 {
        let started = Instant::now();
        for _ in 0..batch {
            black_box(plan(black_box(&rollout), black_box(&observed), now));
        }
        per_call.push(started.elapsed().as_secs_f64() / f64::from(batch));
    }
    per_call.sort_by(f64::total_cmp);
    let median = per_call[per_call.len() / 2];
    let (low, high) = (per_call[0], per_call[per_call.len() - 1]);
    println!(
        "plan() at a step transition (10 replicas, gateway routing): median {:.1} µs, range {:.1}-{:.1} µs over 15 batches of {batch}",
        median * 1e6,
        low * 1e6,
        high * 1e6
    );
}
