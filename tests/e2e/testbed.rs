//! The simulated parts of the stack, checked against the real ones: Prometheus
//! scrapes the traffic generator and sees traffic split as the HTTPRoute says;
//! the GitOps sync loop applies what is pushed to a Git branch.

use std::time::Duration;

use serde_json::json;
use sluice::crd::RolloutPhase;

use super::harness::{
    BackgroundProcess, ControllerProcess, admin_client, cluster, wait_for, workspace_binary,
};
use super::support::*;

/// Instant query against the test Prometheus: value per `pod_template_hash`.
async fn per_revision(prometheus: &str, query: &str) -> Vec<(String, f64)> {
    let Ok(response) = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", query)])
        .timeout(Duration::from_secs(5))
        .send()
        .await
    else {
        return Vec::new();
    };
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            let hash = r["metric"]["pod_template_hash"].as_str()?.to_string();
            let value = r["value"][1].as_str()?.parse().ok()?;
            Some((hash, value))
        })
        .collect()
}

fn value_of(values: &[(String, f64)], hash: &str) -> Option<f64> {
    values.iter().find(|(h, _)| h == hash).map(|(_, v)| *v)
}

/// Stop at 25% and wait there for a promotion that never comes.
fn hold_at_25(doc: &mut serde_json::Value) {
    speed_up(doc);
    if doc["kind"] == "Rollout" {
        doc["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 25}, {"pause": {}}]);
    }
}

#[tokio::test]
async fn prometheus_sees_traffic_split_by_httproute_weight_and_canary_faults() {
    let info = &cluster().info;
    let prometheus = info.prometheus.clone().expect("stack runs Prometheus");
    let (admin, ns) = fresh_namespace("traffic").await;
    let _controller =
        ControllerProcess::start(&info.kubeconfig, &ns, "traffic", &["--no-leader-election"]);
    for file in [
        "gateway-canary/services.yaml",
        "gateway-canary/httproute.yaml",
        "gateway-canary/rollout.yaml",
    ] {
        apply_example(&admin, &ns, file, hold_at_25).await;
    }
    let first = wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    let _traffic = start_trafficgen(&ns, 200);

    // The canary answers 10% extra errors because of its tag.
    set_image(&admin, &ns, "web", "registry.example.com/web:1.0.1-err10").await;
    let paused = wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Paused,
        Duration::from_secs(60),
    )
    .await;
    let canary = paused
        .status
        .and_then(|s| s.canary_revision)
        .expect("canary revision");
    assert_eq!(
        route_canary_weight(&admin, &ns, "web", "web-canary").await,
        Some(25)
    );

    // Wait until a whole 20 s window lies inside the 25% step, then read the split.
    tokio::time::sleep(Duration::from_secs(22)).await;
    let selector = format!("namespace=\"{ns}\",app=\"web\"");
    let rates = wait_for(
        Duration::from_secs(30),
        "per-revision rates in Prometheus",
        || {
            let (prometheus, selector) = (prometheus.clone(), selector.clone());
            let (stable, canary) = (stable.clone(), canary.clone());
            async move {
                let rates = per_revision(
                    &prometheus,
                    &format!(
                        "sum by (pod_template_hash) (rate(http_requests_total{{{selector}}}[20s]))"
                    ),
                )
                .await;
                (value_of(&rates, &stable).is_some() && value_of(&rates, &canary).is_some())
                    .then_some(rates)
            }
        },
    )
    .await;
    let total: f64 = rates.iter().map(|(_, v)| v).sum();
    let canary_share = value_of(&rates, &canary).unwrap_or(0.0) / total;
    assert!(
        (0.20..0.30).contains(&canary_share),
        "canary share {canary_share:.3} of {total:.0} req/s, expected 0.25: {rates:?}"
    );
    assert!(
        (150.0..250.0).contains(&total),
        "total {total:.0} req/s, expected 200"
    );

    let errors = per_revision(
        &prometheus,
        &format!(
            "sum by (pod_template_hash) (rate(http_requests_total{{{selector},code=\"500\"}}[20s])) \
             / sum by (pod_template_hash) (rate(http_requests_total{{{selector}}}[20s]))"
        ),
    )
    .await;
    let canary_errors = value_of(&errors, &canary).unwrap_or(0.0);
    let stable_errors = value_of(&errors, &stable).unwrap_or(1.0);
    assert!(
        canary_errors > 0.06,
        "canary error ratio {canary_errors:.3}: {errors:?}"
    );
    assert!(
        stable_errors < 0.03,
        "stable error ratio {stable_errors:.3}: {errors:?}"
    );
}

fn rollout_image(rollout: &sluice::crd::Rollout) -> Option<String> {
    rollout
        .spec
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
}

#[tokio::test]
async fn gitops_sync_applies_each_new_head_and_survives_a_broken_commit() {
    let info = &cluster().info;
    let (admin, ns) = fresh_namespace("gitops").await;
    let _controller =
        ControllerProcess::start(&info.kubeconfig, &ns, "gitops", &["--no-leader-election"]);

    let root = info.data_dir.join(format!("git-{ns}"));
    let (bare, clone) = (root.join("app.git"), root.join("clone"));
    std::fs::create_dir_all(&root).expect("git dir");
    git(&root, &["init", "-q", "--bare", "-b", "main", "app.git"]);
    git(&root, &["clone", "-q", "app.git", "clone"]);
    let manifests = clone.join("apps/web");
    std::fs::create_dir_all(&manifests).expect("manifests dir");
    for file in ["services.yaml", "httproute.yaml", "rollout.yaml"] {
        let text = std::fs::read_to_string(
            super::harness::repo_root()
                .join("examples/gateway-canary")
                .join(file),
        )
        .expect("example");
        let mut out = String::new();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let mut value: serde_json::Value = serde::Deserialize::deserialize(doc).expect("yaml");
            speed_up(&mut value);
            out.push_str("---\n");
            out.push_str(&serde_yaml_ng::to_string(&value).expect("yaml"));
        }
        std::fs::write(manifests.join(file), out).expect("write manifest");
    }
    git(&clone, &["add", "."]);
    git(&clone, &["commit", "-q", "-m", "web 1.0.0"]);
    git(&clone, &["push", "-q", "origin", "main"]);

    let bare_arg = bare.display().to_string();
    let work_arg = root.join("sync-work").display().to_string();
    let sync = BackgroundProcess::start(
        &format!("{ns}-gitops-sync"),
        &workspace_binary("sluice-gitops-sync"),
        &[
            "--repo",
            &bare_arg,
            "--branch",
            "main",
            "--path",
            "apps/web",
            "--namespace",
            &ns,
            "--work-dir",
            &work_arg,
            "--interval",
            "500ms",
        ],
    );
    let first = wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    assert!(sync.output().contains(&format!(
        "SLUICE_GITOPS_SYNCED {}",
        git(&clone, &["rev-parse", "HEAD"])
    )));
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");

    // A commit that does not parse is reported and skipped; the cluster keeps the last good state.
    std::fs::write(manifests.join("broken.yaml"), "kind: [unterminated\n").expect("write");
    git(&clone, &["add", "."]);
    git(&clone, &["commit", "-q", "-m", "broken"]);
    git(&clone, &["push", "-q", "origin", "main"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !sync.output().contains(&git(&clone, &["rev-parse", "HEAD"])),
        "a broken commit was reported synced"
    );

    // CI bumps the image and repairs the file: the next head syncs and a canary runs to the end.
    std::fs::remove_file(manifests.join("broken.yaml")).expect("rm");
    let rollout_file = manifests.join("rollout.yaml");
    let text = std::fs::read_to_string(&rollout_file).expect("read");
    std::fs::write(&rollout_file, text.replace("web:1.0.0", "web:1.0.1")).expect("write");
    git(&clone, &["commit", "-q", "-am", "web 1.0.1"]);
    git(&clone, &["push", "-q", "origin", "main"]);
    let head = git(&clone, &["rev-parse", "HEAD"]);
    let promoted = wait_for(Duration::from_secs(120), "new image promoted", || {
        let (admin, ns, stable) = (admin.clone(), ns.clone(), stable.clone());
        async move {
            let now = rollout(&admin, &ns, "web").await;
            let status = now.status.clone()?;
            (status.phase == Some(RolloutPhase::Healthy)
                && status.stable_revision.as_ref() != Some(&stable))
            .then_some(now)
        }
    })
    .await;
    assert_eq!(
        rollout_image(&promoted).as_deref(),
        Some("registry.example.com/web:1.0.1")
    );
    assert!(
        sync.output()
            .contains(&format!("SLUICE_GITOPS_SYNCED {head}"))
    );
}

/// KWOK's nodes must keep their Leases fresh: otherwise the node controller marks
/// them NotReady after its grace period and every pod loses readiness mid-test.
#[tokio::test]
async fn fake_nodes_renew_their_leases() {
    use k8s_openapi::api::coordination::v1::Lease;
    let admin = admin_client().await;
    let leases: kube::Api<Lease> = kube::Api::namespaced(admin, "kube-node-lease");
    let renewed = |lease: Option<Lease>| lease.and_then(|l| l.spec?.renew_time).map(|t| t.0);
    let first = wait_for(Duration::from_secs(30), "a Lease for kwok-node-0", || {
        let leases = leases.clone();
        async move { renewed(leases.get_opt("kwok-node-0").await.ok().flatten()) }
    })
    .await;
    for node in ["kwok-node-1", "kwok-node-2"] {
        assert!(
            renewed(leases.get_opt(node).await.ok().flatten()).is_some(),
            "{node} has no Lease"
        );
    }
    wait_for(
        Duration::from_secs(40),
        "kwok-node-0's Lease renewed",
        || {
            let leases = leases.clone();
            async move {
                renewed(leases.get_opt("kwok-node-0").await.ok().flatten())
                    .filter(|t| *t > first)
                    .map(|_| ())
            }
        },
    )
    .await;
}
