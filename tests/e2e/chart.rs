//! The Helm chart on a real API server: `helm install` is accepted, and
//! `helm uninstall` leaves no RBAC behind; plus helpers that install the
//! chart for other tests.
//!
//! Other tests may use [`install_chart`] to get the chart's RBAC and then run
//! the controller under the chart's ServiceAccount ([`chart_kubeconfig`]).
//! Cluster-scoped objects are named after the release (`<release>-sluice-controller`,
//! ...) unless the release is called `sluice`, which renders `deploy/`'s names:
//! tests never use that name (`support::setup` applies `deploy/`'s objects,
//! and tests run in parallel), [`release_for`] derives one from the namespace.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ListParams;
use kube::{Api, Client};

use sluice::crd::RolloutPhase;

use super::harness::{ControllerProcess, cluster, log_dir, namespace, repo_root};
use super::rbac::{kubeconfig_with_token, service_account_token};
use super::support::{apply_example, fresh_namespace, speed_up, wait_phase};

/// helm: `SLUICE_HELM`, else what `tests/cluster/build-helm.sh` builds (cached; it prints the path last).
pub fn helm() -> PathBuf {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(path) = std::env::var_os("SLUICE_HELM").filter(|p| !p.is_empty()) {
            return PathBuf::from(path);
        }
        let out = Command::new("bash")
            .arg(repo_root().join("tests/cluster/build-helm.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/cluster/build-helm.sh");
        assert!(out.status.success(), "tests/cluster/build-helm.sh failed");
        let text = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(text.lines().last().unwrap_or_default().trim())
    })
    .clone()
}

/// A release name of at most 53 characters (helm's limit) that is not
/// `sluice`, so that its cluster-scoped objects carry it.
pub fn release_for(namespace: &str, suffix: &str) -> String {
    let name = format!("{namespace}-{suffix}");
    assert!(name.len() <= 53, "release name {name} too long");
    name
}

/// Run helm against the test cluster (`kubeconfig`), with its state in the cluster's data dir.
fn run_helm(kubeconfig: &Path, args: &[&str]) -> String {
    let home = cluster().info.data_dir.join("helm");
    let out = Command::new(helm())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("run helm");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `helm install <release> charts/sluice -n <namespace> --wait` with
/// `extra_set_args` (e.g. `["--set", "replicas=0"]`). The Service selector
/// policy is off unless `extra_set_args` turn it on: cluster-wide it would
/// refuse every other test's controller (its exemption names this release's
/// ServiceAccount only); with `watchNamespaces` its binding covers that
/// namespace only and is safe. `--wait` also waits for the Deployment's pods,
/// which KWOK makes Ready without running the image.
pub fn install_chart(kubeconfig: &Path, release: &str, namespace: &str, extra_set_args: &[&str]) {
    let chart = repo_root().join("charts/sluice");
    let mut args = vec![
        "install",
        release,
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        namespace,
        "--wait",
        "--timeout",
        "3m",
        "--set",
        "serviceSelectorPolicy.enabled=false",
    ];
    args.extend_from_slice(extra_set_args);
    run_helm(kubeconfig, &args);
}

/// `helm uninstall <release> -n <namespace> --wait`.
pub fn uninstall_chart(kubeconfig: &Path, release: &str, namespace: &str) {
    run_helm(
        kubeconfig,
        &["uninstall", release, "--namespace", namespace, "--wait"],
    );
}

/// The chart's ServiceAccount name for `release` (default values).
pub fn service_account(release: &str) -> String {
    if release.contains("sluice") {
        format!("{release}-controller")
    } else {
        format!("{release}-sluice-controller")
    }
}

/// A kubeconfig that authenticates with a token of the chart's ServiceAccount
/// (run the controller with it: `ControllerProcess::start(&path, ...)`).
pub async fn chart_kubeconfig(admin: &Client, release: &str, namespace: &str) -> PathBuf {
    let token = service_account_token(admin, namespace, &service_account(release)).await;
    kubeconfig_with_token(&token, &format!("chart-{release}"))
}

/// Names of the RBAC objects labelled with `release` that are left: cluster-wide and in `namespaces`.
async fn rbac_of(admin: &Client, release: &str, namespaces: &[&str]) -> Vec<String> {
    let params = ListParams::default().labels(&format!("app.kubernetes.io/instance={release}"));
    let mut left = Vec::new();
    let names = |items: Vec<Option<String>>, kind: &str| {
        items
            .into_iter()
            .map(|n| format!("{kind}/{}", n.unwrap_or_default()))
            .collect::<Vec<_>>()
    };
    let roles = Api::<ClusterRole>::all(admin.clone()).list(&params).await;
    left.extend(names(
        roles
            .expect("list ClusterRoles")
            .items
            .into_iter()
            .map(|o| o.metadata.name)
            .collect(),
        "ClusterRole",
    ));
    let bindings = Api::<ClusterRoleBinding>::all(admin.clone())
        .list(&params)
        .await;
    left.extend(names(
        bindings
            .expect("list ClusterRoleBindings")
            .items
            .into_iter()
            .map(|o| o.metadata.name)
            .collect(),
        "ClusterRoleBinding",
    ));
    for ns in namespaces {
        let roles = Api::<Role>::namespaced(admin.clone(), ns)
            .list(&params)
            .await;
        left.extend(names(
            roles
                .expect("list Roles")
                .items
                .into_iter()
                .map(|o| o.metadata.name)
                .collect(),
            "Role",
        ));
        let bindings = Api::<RoleBinding>::namespaced(admin.clone(), ns)
            .list(&params)
            .await;
        left.extend(names(
            bindings
                .expect("list RoleBindings")
                .items
                .into_iter()
                .map(|o| o.metadata.name)
                .collect(),
            "RoleBinding",
        ));
    }
    left
}

#[tokio::test]
async fn the_chart_installs_on_a_real_api_server_and_uninstalls_without_leftovers() {
    let (admin, ns) = fresh_namespace("chart").await;
    let watched = namespace(&admin, "chart-apps").await;
    let kubeconfig = cluster().info.kubeconfig.clone();
    let wide = release_for(&ns, "wide");
    let scoped = release_for(&ns, "scoped");

    // Cluster-wide, with the optional metrics Service and PDB; the image is
    // never pulled (KWOK nodes make pods Ready without a kubelet).
    install_chart(
        &kubeconfig,
        &wide,
        &ns,
        &[
            "--set",
            "image.repository=registry.invalid/sluice",
            "--set",
            "metrics.service.enabled=true,podDisruptionBudget.enabled=true",
        ],
    );
    // Namespaced, in the same namespace: a second release shares nothing with the first.
    install_chart(
        &kubeconfig,
        &scoped,
        &ns,
        &[
            "--set",
            &format!("watchNamespaces={{{watched}}}"),
            "--set",
            "serviceSelectorPolicy.enabled=true,replicas=1",
        ],
    );

    let base = format!("{wide}-sluice");
    let name = format!("{base}-controller");
    Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
        .get(&name)
        .await
        .expect("ServiceAccount");
    Api::<ClusterRole>::all(admin.clone())
        .get(&name)
        .await
        .expect("ClusterRole");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .get(&name)
        .await
        .expect("ClusterRoleBinding");
    Api::<Role>::namespaced(admin.clone(), &ns)
        .get(&format!("{base}-leader-election"))
        .await
        .expect("leader-election Role");
    Api::<Service>::namespaced(admin.clone(), &ns)
        .get(&format!("{name}-metrics"))
        .await
        .expect("metrics Service");
    Api::<PodDisruptionBudget>::namespaced(admin.clone(), &ns)
        .get(&name)
        .await
        .expect("PodDisruptionBudget");
    // helm --wait returned: both replicas are Ready (KWOK's doing, not the binary's).
    let deployment = Api::<Deployment>::namespaced(admin.clone(), &ns)
        .get(&name)
        .await
        .expect("Deployment");
    assert_eq!(
        deployment.status.and_then(|s| s.ready_replicas),
        Some(2),
        "the Deployment's pods are Ready"
    );
    for crd in Api::<CustomResourceDefinition>::all(admin.clone())
        .list(&ListParams::default())
        .await
        .expect("list CRDs")
        .items
        .into_iter()
        .filter(|c| c.spec.group == "sluice.dev")
    {
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "CRD {:?} established", crd.metadata.name);
    }

    let scoped_name = format!("{scoped}-sluice-controller");
    Api::<Role>::namespaced(admin.clone(), &watched)
        .get(&scoped_name)
        .await
        .expect("Role in the watched namespace");
    Api::<Role>::namespaced(admin.clone(), &ns)
        .get(&format!("{scoped_name}-home"))
        .await
        .expect("home Role");
    Api::<ClusterRole>::all(admin.clone())
        .get(&format!("{scoped_name}-namespaced"))
        .await
        .expect("namespaced ClusterRole");
    let policy = format!("{scoped}-sluice-service-selector");
    Api::<ValidatingAdmissionPolicy>::all(admin.clone())
        .get(&policy)
        .await
        .expect("ValidatingAdmissionPolicy");
    let binding = Api::<ValidatingAdmissionPolicyBinding>::all(admin.clone())
        .get(&policy)
        .await
        .expect("ValidatingAdmissionPolicyBinding");
    let selector = binding
        .spec
        .match_resources
        .and_then(|m| m.namespace_selector)
        .and_then(|s| s.match_labels)
        .unwrap_or_default();
    assert_eq!(
        selector.get("kubernetes.io/metadata.name"),
        Some(&watched),
        "the policy binds the watched namespace only"
    );
    let args = Api::<Deployment>::namespaced(admin.clone(), &ns)
        .get(&scoped_name)
        .await
        .expect("namespaced Deployment")
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers[0].args.clone().unwrap_or_default())
        .unwrap_or_default();
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--namespace" && w[1] == watched),
        "{args:?}"
    );
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--lease-name" && w[1] == scoped_name),
        "{args:?}"
    );

    // The real controller under the namespaced release's ServiceAccount, with
    // only the chart's RBAC: it takes the release's Lease and brings a Rollout
    // of the watched namespace to Healthy without a single "forbidden".
    let token = chart_kubeconfig(&admin, &scoped, &ns).await;
    let controller = ControllerProcess::start(
        &token,
        &watched,
        "chart-scoped",
        &["--lease-namespace", &ns, "--lease-name", &scoped_name],
    );
    for file in ["services.yaml", "httproute.yaml", "rollout.yaml"] {
        apply_example(
            &admin,
            &watched,
            &format!("gateway-canary/{file}"),
            speed_up,
        )
        .await;
    }
    wait_phase(
        &admin,
        &watched,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    let holder = Api::<Lease>::namespaced(admin.clone(), &ns)
        .get(&scoped_name)
        .await
        .expect("the release's Lease")
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some("chart-scoped"));
    drop(controller);
    let log = std::fs::read_to_string(log_dir().join(format!("{watched}-chart-scoped.log")))
        .unwrap_or_default();
    assert!(!log.contains("forbidden"), "{log}");

    let before = rbac_of(&admin, &wide, &[&ns]).await;
    assert_eq!(before.len(), 4, "{before:?}");
    uninstall_chart(&kubeconfig, &wide, &ns);
    uninstall_chart(&kubeconfig, &scoped, &ns);
    for release in [&wide, &scoped] {
        let left = rbac_of(&admin, release, &[&ns, &watched]).await;
        assert!(left.is_empty(), "{release} left {left:?}");
    }
    assert!(
        Api::<ValidatingAdmissionPolicy>::all(admin.clone())
            .get_opt(&policy)
            .await
            .expect("get policy")
            .is_none(),
        "the policy went with its release"
    );
    // CRDs in the chart's crds/ stay (helm never deletes them): Rollouts survive an uninstall.
    Api::<CustomResourceDefinition>::all(admin.clone())
        .get("rollouts.sluice.dev")
        .await
        .expect("the Rollout CRD stays");
}
