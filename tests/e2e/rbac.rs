//! Run the controller as the ServiceAccount from `deploy/`, with exactly its RBAC.

use std::path::PathBuf;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::config::{AuthInfo, Kubeconfig};
use kube::{Api, Client};

use super::harness::{apply_yaml, cluster, repo_root};

/// Apply deploy/'s Namespace, ServiceAccount and RBAC, and write a kubeconfig that
/// authenticates with a token of that ServiceAccount.
pub async fn service_account_kubeconfig(admin: &Client, name: &str) -> PathBuf {
    for file in ["namespace.yaml", "serviceaccount.yaml", "rbac.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("deploy").join(file))
            .expect("deploy manifest");
        apply_yaml(admin, "sluice-system", &text).await;
    }
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), "sluice-system");
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: None,
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        }),
        ..TokenRequest::default()
    };
    let token = api
        .create_token_request("sluice-controller", &Default::default(), &request)
        .await
        .expect("token for sluice-controller")
        .status
        .expect("token status")
        .token
        .expect("token");
    let mut config = Kubeconfig::read_from(&cluster().info.kubeconfig).expect("admin kubeconfig");
    for named in &mut config.auth_infos {
        named.auth_info = Some(AuthInfo {
            token: Some(token.as_str().into()),
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
