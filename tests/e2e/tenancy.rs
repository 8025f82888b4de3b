//! Tenants stay apart, on the real control plane: a Rollout cannot move
//! another namespace's HTTPRoute without a ReferenceGrant there (and then
//! only backendRefs that point at its own Services), cannot push reverts or
//! page through cluster-scoped resources that do not list its namespace, and
//! a Secret-sourced analysis argument that Prometheus echoes back appears
//! nowhere Sluice writes.

use super::receiver;

use std::time::Duration;

use kube::Api;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;
use sluice::crd::{AnalysisRun, ClusterAlertTarget, ClusterGitRepository, RolloutPhase};

use super::alert_outage::abort_a_canary;
use super::harness::{
    ControllerProcess, admin_client, apply_value, cluster, ensure_crds, namespace, wait_for,
};
use super::rbac::service_account_kubeconfig;
use super::support::*;
use receiver::Receiver;

/// A controller for `ns` with deploy/'s RBAC.
async fn controller_for(
    admin: &kube::Client,
    ns: &str,
    name: &str,
    extra: &[&str],
) -> ControllerProcess {
    let kubeconfig = service_account_kubeconfig(admin, ns).await;
    let mut args = vec!["--no-leader-election"];
    args.extend_from_slice(extra);
    ControllerProcess::start(&kubeconfig, ns, name, &args)
}

/// `spec.rules[0].backendRefs` and `resourceVersion` of HTTPRoute `ns/web`.
async fn route_refs(admin: &kube::Client, ns: &str) -> (serde_json::Value, Option<String>) {
    let resource = sluice::reconcile::observe::http_route_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), ns, &resource);
    let route = api.get("web").await.expect("route");
    (
        route.data["spec"]["rules"][0]["backendRefs"].clone(),
        route.metadata.resource_version.clone(),
    )
}

async fn rollout_message(admin: &kube::Client, ns: &str) -> String {
    rollout(admin, ns, "web")
        .await
        .status
        .and_then(|s| s.message)
        .unwrap_or_default()
}

#[tokio::test]
async fn another_namespaces_route_needs_a_reference_grant_and_only_own_backends_move() {
    let admin = admin_client().await;
    ensure_crds(&admin).await;
    let team_a = namespace(&admin, "route-a").await;
    let team_b = namespace(&admin, "route-b").await;
    let controller = controller_for(&admin, &team_a, "route-a", &[]).await;
    // Team B's own route and Services, at 100% on its stable.
    for file in [
        "gateway-canary/services.yaml",
        "gateway-canary/httproute.yaml",
    ] {
        apply_example(&admin, &team_b, file, |_| {}).await;
    }
    let (b_refs, b_version) = route_refs(&admin, &team_b).await;
    apply_example(&admin, &team_a, "gateway-canary/services.yaml", |_| {}).await;
    let b = team_b.clone();
    apply_example(&admin, &team_a, "gateway-canary/rollout.yaml", move |doc| {
        speed_up(doc);
        doc["spec"]["strategy"]["canary"]["steps"] =
            json!([{"setWeight": 30}, {"pause": {}}, {"setWeight": 100}]);
        doc["spec"]["strategy"]["canary"]["trafficRouting"]["gatewayAPI"]["namespace"] =
            json!(b.clone());
    })
    .await;

    // No ReferenceGrant in B: refused, said so, B's route untouched.
    let refused = wait_phase(
        &admin,
        &team_a,
        "web",
        RolloutPhase::Degraded,
        Duration::from_secs(60),
    )
    .await;
    let message = refused.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains(&format!("no ReferenceGrant in {team_b}")),
        "{message}\n{}",
        controller.log_tail()
    );
    assert!(
        event_reasons(&admin, &team_a, "web")
            .await
            .contains(&"InvalidSpec".to_string())
    );
    assert_eq!(
        route_refs(&admin, &team_b).await,
        (b_refs.clone(), b_version.clone())
    );

    // A grant, but B's backendRefs are B's own Services of the same names: still not A's.
    apply_value(
        &admin,
        &team_b,
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
            "metadata": {"name": "sluice-rollouts"},
            "spec": {
                "from": [{"group": "sluice.dev", "kind": "Rollout", "namespace": team_a}],
                "to": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "web"}]
            }
        }),
    )
    .await;
    let a = team_a.clone();
    wait_for(
        Duration::from_secs(60),
        "refusal by namespace of the backendRefs",
        || {
            let (admin, a) = (admin.clone(), a.clone());
            async move {
                let message = rollout_message(&admin, &a).await;
                message.contains(&format!("in namespace {a}")).then_some(())
            }
        },
    )
    .await;
    assert_eq!(route_refs(&admin, &team_b).await, (b_refs, b_version));

    // B routes to A's Services explicitly (beside its own canary): A's weights move, B's do not.
    apply_value(
        &admin,
        &team_b,
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web"},
            "spec": {"parentRefs": [{"name": "public-gateway"}], "rules": [{"backendRefs": [
                {"name": "web-stable", "namespace": team_a, "port": 80, "weight": 100},
                {"name": "web-canary", "namespace": team_a, "port": 80, "weight": 0},
                {"name": "web-canary", "port": 80, "weight": 0}
            ]}]}
        }),
    )
    .await;
    wait_phase(
        &admin,
        &team_a,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    set_image(&admin, &team_a, "web", "registry.example.com/web:2").await;
    wait_phase(
        &admin,
        &team_a,
        "web",
        RolloutPhase::Paused,
        Duration::from_secs(90),
    )
    .await;
    let (refs, _) = route_refs(&admin, &team_b).await;
    assert_eq!(refs[0]["weight"], 70, "{refs}");
    assert_eq!(refs[1]["weight"], 30, "{refs}");
    assert_eq!(
        refs[2]["weight"], 0,
        "team B's own canary keeps its weight: {refs}"
    );
}

/// A stand-in for Prometheus on 127.0.0.1 that rejects every query and
/// repeats it in the error, as Prometheus does for a parse error.
async fn echoing_prometheus() -> String {
    let handler = |body: String| async move {
        let form = body.replace('+', " ");
        let query = form
            .split('&')
            .find_map(|pair| pair.strip_prefix("query="))
            .unwrap_or_default();
        let query = percent_encoding::percent_decode_str(query)
            .decode_utf8_lossy()
            .to_string();
        let answer = json!({
            "status": "error", "errorType": "bad_data",
            "error": format!("1:1: parse error: unexpected character in {query:?}"),
        });
        (axum::http::StatusCode::BAD_REQUEST, answer.to_string())
    };
    let app = axum::Router::new().route("/api/v1/{*path}", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[tokio::test]
async fn a_secret_argument_echoed_by_prometheus_appears_nowhere_sluice_writes() {
    const SECRET: &str = "tok-3f9a7c1e-do-not-leak";
    let prometheus = echoing_prometheus().await;
    let (admin, ns) = fresh_namespace("redact").await;
    let controller = controller_for(&admin, &ns, "redact", &[]).await;
    apply_value(
        &admin,
        &ns,
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tenant-token"},
            "stringData": {"token": SECRET}
        }),
    )
    .await;
    apply_value(&admin, &ns, json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "leaky"},
        "spec": {
            "args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "tenant-token", "key": "token"}}}],
            "metrics": [{
                "name": "errors", "interval": "2s", "count": 3, "consecutiveErrorLimit": 1,
                "successCondition": "result < 1",
                "provider": {"prometheus": {
                    "address": prometheus,
                    "query": "sum(rate(http_requests_total{tenant=\"{{args.token}}\"}[1m]))"
                }}
            }]
        }
    }))
    .await;
    for file in [
        "gateway-canary/services.yaml",
        "gateway-canary/httproute.yaml",
    ] {
        apply_example(&admin, &ns, file, |_| {}).await;
    }
    apply_example(&admin, &ns, "gateway-canary/rollout.yaml", |doc| {
        speed_up(doc);
        doc["spec"]["strategy"]["canary"]["steps"] = json!([
            {"setWeight": 25},
            {"analysis": {"templates": [{"templateName": "leaky"}]}},
            {"setWeight": 100}
        ]);
    })
    .await;
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    set_image(&admin, &ns, "web", "registry.example.com/web:2").await;

    // The provider's error is stored (redacted) and the run ends in Error.
    let runs: Api<AnalysisRun> = Api::namespaced(admin.clone(), &ns);
    let run = wait_for(Duration::from_secs(90), "the run's error stored", || {
        let runs = runs.clone();
        async move {
            let list = runs.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(|r| {
                serde_json::to_string(&r.status)
                    .unwrap_or_default()
                    .contains("parse error")
            })
        }
    })
    .await;
    let stored = serde_json::to_string(&run.status).expect("json");
    assert!(stored.contains("<redacted>"), "{stored}");
    // An Error verdict cannot tell: the Rollout holds (analysisCannotTell: Hold).
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Paused,
        Duration::from_secs(60),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Nowhere: AnalysisRun and Rollout status, Events, the controller's log.
    let runs_text =
        serde_json::to_string(&runs.list(&ListParams::default()).await.expect("runs").items)
            .expect("json");
    assert!(!runs_text.contains(SECRET), "AnalysisRun: {runs_text}");
    let rollout_text = serde_json::to_string(&rollout(&admin, &ns, "web").await).expect("json");
    assert!(!rollout_text.contains(SECRET), "Rollout: {rollout_text}");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), &ns);
    let events_text = serde_json::to_string(
        &events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items,
    )
    .expect("json");
    assert!(!events_text.contains(SECRET), "Events: {events_text}");
    let log = std::fs::read_to_string(&controller.log).expect("log");
    assert!(log.contains("parse error") || runs_text.contains("parse error"));
    assert!(!log.contains(SECRET), "controller log leaks the secret");
}

#[tokio::test]
async fn a_cluster_alert_target_pages_only_for_listed_namespaces() {
    let receiver = Receiver::start(vec![]).await;
    let (admin, ns) = fresh_namespace("tenant-alerts").await;
    let _controller = controller_for(&admin, &ns, "tenant-alerts", &[]).await;
    apply_value(
        &admin,
        &ns,
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "platform-pager"},
            "stringData": {"url": format!("{}/platform", receiver.url)}
        }),
    )
    .await;
    // The platform's target, listing some other namespace only.
    let name = format!("{ns}-platform");
    let targets: Api<ClusterAlertTarget> = Api::all(admin.clone());
    let target = |allowed: Vec<String>| {
        json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "ClusterAlertTarget",
            "metadata": {"name": name},
            "spec": {"type": "Webhook", "secretName": "platform-pager", "secretNamespace": ns,
                     "allowedNamespaces": allowed}
        })
    };
    targets
        .patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&target(vec!["someone-else".into()])),
        )
        .await
        .expect("apply ClusterAlertTarget");
    let alerts =
        json!({"subscriptions": [{"target": name, "clusterScope": true, "events": ["aborted"]}]});
    abort_a_canary(&admin, &ns, alerts).await;

    // Refused: a Pending record and an Event that say what to add; nothing sent.
    let label = format!("ClusterAlertTarget/{name}");
    let record = wait_for(
        Duration::from_secs(60),
        "a Pending record naming allowedNamespaces",
        || {
            let (admin, ns, label) = (admin.clone(), ns.clone(), label.clone());
            async move {
                let status = rollout(&admin, &ns, "web").await.status?;
                status
                    .alerts
                    .into_iter()
                    .find(|r| r.target == label && r.state == sluice::crd::AlertState::Pending)
            }
        },
    )
    .await;
    let message = record.message.unwrap_or_default();
    assert!(
        message.contains("spec.allowedNamespaces") && message.contains(&ns),
        "{message}"
    );
    assert!(
        event_reasons(&admin, &ns, "web")
            .await
            .contains(&"AlertTargetUnavailable".to_string())
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        receiver.received().is_empty(),
        "an unlisted namespace paged"
    );

    // The platform lists the namespace: the waiting alert goes out, once.
    targets
        .patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&target(vec![ns.clone()])),
        )
        .await
        .expect("list the namespace");
    wait_for(Duration::from_secs(60), "the alert once listed", || {
        let got = receiver.received().len();
        async move { (got >= 1).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(receiver.received().len(), 1);
    let _ = targets.delete(&name, &Default::default()).await;
}

#[tokio::test]
async fn a_cluster_git_repository_reverts_only_for_listed_namespaces() {
    let info = &cluster().info;
    let (admin, ns) = fresh_namespace("tenant-git").await;
    let workspace = info
        .data_dir
        .join(format!("git-workspace-{ns}"))
        .display()
        .to_string();
    let controller =
        controller_for(&admin, &ns, "tenant-git", &["--git-workspace", &workspace]).await;
    let example = |file: &str| {
        std::fs::read_to_string(
            super::harness::repo_root()
                .join("examples/gateway-canary")
                .join(file),
        )
        .expect("example")
    };
    let name = format!("{ns}-platform-repo");
    let mut manifest: serde_json::Value =
        serde_yaml_ng::from_str(&example("rollout.yaml")).expect("yaml");
    speed_up(&mut manifest);
    manifest["spec"]["strategy"]["canary"]["steps"] =
        json!([{"setWeight": 30}, {"pause": {}}, {"setWeight": 100}]);
    manifest["spec"]["git"] = json!({
        "repositoryRef": {"name": name, "clusterScope": true}, "path": "apps/web"
    });
    let yaml = |v: &serde_json::Value| serde_yaml_ng::to_string(v).expect("yaml");
    let gitops = GitOps::start(
        &ns,
        &[
            ("services.yaml", example("services.yaml")),
            ("httproute.yaml", example("httproute.yaml")),
            ("rollout.yaml", yaml(&manifest)),
        ],
    );
    let repos: Api<ClusterGitRepository> = Api::all(admin.clone());
    let repo = |allowed: Vec<String>| {
        json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "ClusterGitRepository",
            "metadata": {"name": name},
            "spec": {"url": gitops.bare.display().to_string(), "branch": "main",
                     "allowedNamespaces": allowed}
        })
    };
    repos
        .patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&repo(Vec::new())),
        )
        .await
        .expect("apply ClusterGitRepository");
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    let bump = gitops.bump("rollout.yaml", "web:1.0.0", "web:2.0.0", "web 2.0.0");
    wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Paused,
        Duration::from_secs(90),
    )
    .await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["rollout", "abort", "web", "--revert", "-n", &ns])
        .env("KUBECONFIG", &info.kubeconfig)
        .output()
        .expect("sluice rollout abort");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Not listed: the revert fails with what to add, and nothing is pushed.
    let failed = wait_for(Duration::from_secs(60), "the revert refused", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            let git = rollout(&admin, &ns, "web").await.status?.git_revert?;
            (git.state == sluice::crd::RevertState::Failed).then_some(git)
        }
    })
    .await;
    let message = failed.message.unwrap_or_default();
    assert!(
        message.contains("spec.allowedNamespaces") && message.contains(&ns),
        "{message}"
    );
    assert_eq!(gitops.reverts_of(&bump), 0, "{}", controller.log_tail());

    // Listed: the next retry reverts, exactly once.
    repos
        .patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&repo(vec![ns.clone()])),
        )
        .await
        .expect("list the namespace");
    wait_for(Duration::from_secs(120), "the revert once listed", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            let git = rollout(&admin, &ns, "web").await.status?.git_revert?;
            (git.state == sluice::crd::RevertState::Reverted).then_some(())
        }
    })
    .await;
    assert_eq!(gitops.reverts_of(&bump), 1, "{}", controller.log_tail());
    let _ = repos.delete(&name, &Default::default()).await;
}
