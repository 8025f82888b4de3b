//! Run the controller as the ServiceAccount from `deploy/`, with exactly its
//! RBAC; and the namespaced install (`deploy/namespaced/`), checked with
//! SubjectAccessReviews and a controller that runs with only that RBAC.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::config::{AuthInfo, Kubeconfig};
use kube::{Api, Client};
use sluice::crd::RolloutPhase;

use super::harness::{
    ControllerProcess, admin_client, apply_value, apply_yaml, cluster, ensure_crds, namespace,
    repo_root, wait_for,
};
use super::support::{apply_example, rollout, speed_up, wait_phase};

/// Apply deploy/'s Namespace, ServiceAccount and RBAC, and write a kubeconfig that
/// authenticates with a token of that ServiceAccount.
pub async fn service_account_kubeconfig(admin: &Client, name: &str) -> PathBuf {
    for file in [
        "base/namespace.yaml",
        "base/serviceaccount.yaml",
        "rbac.yaml",
    ] {
        let text = std::fs::read_to_string(repo_root().join("deploy").join(file))
            .expect("deploy manifest");
        apply_yaml(admin, "sluice-system", &text).await;
    }
    let token = service_account_token(admin, "sluice-system", "sluice-controller").await;
    kubeconfig_with_token(&token, name)
}

/// Apply deploy/namespaced/'s RBAC with the controller living in `home` and
/// watching `watched` (the manifests' `sluice-system` and `apps`), and write a
/// kubeconfig with a token of its ServiceAccount.
pub async fn namespaced_install_kubeconfig(admin: &Client, home: &str, watched: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("deploy/namespaced/rbac.yaml"))
        .expect("deploy/namespaced/rbac.yaml")
        .replace("namespace: sluice-system", &format!("namespace: {home}"))
        .replace("namespace: apps", &format!("namespace: {watched}"));
    // Each Role goes to the namespace its manifest names.
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc).expect("yaml");
        let ns = value["metadata"]["namespace"]
            .as_str()
            .unwrap_or(home)
            .to_string();
        apply_value(admin, &ns, value).await;
    }
    let account = std::fs::read_to_string(repo_root().join("deploy/base/serviceaccount.yaml"))
        .expect("deploy/base/serviceaccount.yaml")
        .replace("namespace: sluice-system", &format!("namespace: {home}"));
    apply_yaml(admin, home, &account).await;
    kubeconfig_for(admin, home, &format!("namespaced-{watched}")).await
}

/// A kubeconfig that authenticates as `sluice-controller` of namespace `home`.
async fn kubeconfig_for(admin: &Client, home: &str, name: &str) -> PathBuf {
    let token = service_account_token(admin, home, "sluice-controller").await;
    kubeconfig_with_token(&token, name)
}

/// A token of ServiceAccount `account` in `namespace` (an hour long), asked
/// again until the API server has the account (it may just have been applied).
pub async fn service_account_token(admin: &Client, namespace: &str, account: &str) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: None,
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        }),
        ..TokenRequest::default()
    };
    wait_for(Duration::from_secs(30), "a ServiceAccount token", || {
        let (api, request, account) = (api.clone(), request.clone(), account.to_string());
        async move {
            api.create_token_request(&account, &Default::default(), &request)
                .await
                .ok()?
                .status?
                .token
        }
    })
    .await
}

/// The admin kubeconfig with every user's credentials replaced by `token`,
/// written as `kubeconfig-<name>` in the cluster's data directory.
pub fn kubeconfig_with_token(token: &str, name: &str) -> PathBuf {
    let mut config = Kubeconfig::read_from(&cluster().info.kubeconfig).expect("admin kubeconfig");
    for named in &mut config.auth_infos {
        named.auth_info = Some(AuthInfo {
            token: Some(token.into()),
            ..AuthInfo::default()
        });
    }
    let path = cluster().info.data_dir.join(format!("kubeconfig-{name}"));
    std::fs::write(
        &path,
        serde_yaml_ng::to_string(&config).expect("serialize kubeconfig"),
    )
    .expect("write kubeconfig");
    path
}

/// Whether `user` may `verb` `resource` (`group/resource`) in `namespace` (cluster-wide when `None`).
async fn can(
    admin: &Client,
    user: &str,
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let (group, resource) = resource.split_once('/').unwrap_or(("", resource));
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.to_string()),
                resource: Some(resource.to_string()),
                verb: Some(verb.to_string()),
                namespace: namespace.map(str::to_string),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(admin.clone());
    api.create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

#[tokio::test]
async fn the_namespaced_install_reaches_only_the_watched_namespace() {
    let admin = admin_client().await;
    ensure_crds(&admin).await;
    let home = namespace(&admin, "nsctl-home").await;
    let watched = namespace(&admin, "nsctl-apps").await;
    let other = namespace(&admin, "nsctl-other").await;
    let kubeconfig = namespaced_install_kubeconfig(&admin, &home, &watched).await;
    let user = format!("system:serviceaccount:{home}:sluice-controller");

    // What the API server itself says the ServiceAccount may do.
    for (verb, resource, ns, allowed) in [
        ("get", "secrets", Some(watched.as_str()), true),
        ("get", "secrets", Some(home.as_str()), true),
        ("get", "secrets", Some("kube-system"), false),
        ("get", "secrets", Some(other.as_str()), false),
        ("list", "secrets", None, false),
        (
            "patch",
            "gateway.networking.k8s.io/httproutes",
            Some(watched.as_str()),
            true,
        ),
        (
            "patch",
            "gateway.networking.k8s.io/httproutes",
            Some(other.as_str()),
            false,
        ),
        (
            "patch",
            "gateway.networking.k8s.io/httproutes",
            Some("kube-system"),
            false,
        ),
        ("patch", "services", Some(other.as_str()), false),
        ("create", "apps/replicasets", Some(other.as_str()), false),
        // An adopted Deployment (workloadRef): read, and scaled through its
        // scale subresource only; never its spec, never another namespace's.
        ("watch", "apps/deployments", Some(watched.as_str()), true),
        ("get", "apps/deployments", Some(other.as_str()), false),
        ("patch", "apps/deployments", Some(watched.as_str()), false),
        ("list", "sluice.dev/rollouts", None, false),
        ("watch", "sluice.dev/rollouts", Some(watched.as_str()), true),
        ("get", "sluice.dev/clustergitrepositories", None, true),
    ] {
        assert_eq!(
            can(&admin, &user, verb, resource, ns).await,
            allowed,
            "{verb} {resource} in {ns:?}"
        );
    }

    // The controller with exactly that RBAC reconciles the watched namespace and nothing else.
    let controller = ControllerProcess::start(
        &kubeconfig,
        &watched,
        "namespaced",
        &["--no-leader-election", "--lease-namespace", &home],
    );
    for ns in [&watched, &other] {
        for file in ["services.yaml", "httproute.yaml", "rollout.yaml"] {
            apply_example(&admin, ns, &format!("gateway-canary/{file}"), speed_up).await;
        }
    }
    wait_phase(
        &admin,
        &watched,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let untouched = rollout(&admin, &other, "web").await;
    assert!(untouched.status.is_none(), "{:?}", untouched.status);
    let log = std::fs::read_to_string(&controller.log).unwrap_or_default();
    assert!(!log.contains("forbidden"), "{}", controller.log_tail());
}
