//! The controller as a pod runs it. The chart is installed on the real API
//! server; the controller is started from the container image's root
//! filesystem (see [`super::pod_root`]) with the chart's Deployment's own
//! command, arguments and environment, the in-cluster configuration
//! (`KUBERNETES_SERVICE_HOST/PORT` and the chart's ServiceAccount token), as
//! the image's non-root user on a read-only root. It carries a canary
//! through, then reverts a bad image commit over SSH with the image's own
//! `git` and `ssh`.

use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use sluice::crd::RolloutPhase;

use super::chart::{install_chart, release_for};
use super::harness::{apply_value, cluster, free_port, log_dir, repo_root, wait_for};
use super::pod_root::{PodRoot, ServiceAccountFiles};
use super::rbac::service_account_token;
use super::sshd::start_sshd;
use super::support::*;

/// The image under test: `SLUICE_IMAGE`, or what `scripts/image.sh` builds (cached).
fn image() -> String {
    if let Ok(image) = std::env::var("SLUICE_IMAGE")
        && !image.is_empty()
    {
        return image;
    }
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/image.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/image.sh");
    assert!(out.status.success(), "scripts/image.sh failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("scripts/image.sh prints the image last")
        .trim()
        .to_string()
}

/// The cluster's CA, as the admin kubeconfig carries it.
fn cluster_ca() -> Vec<u8> {
    let config =
        kube::config::Kubeconfig::read_from(&cluster().info.kubeconfig).expect("kubeconfig");
    let named = config
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .expect("a cluster");
    if let Some(data) = named.certificate_authority_data {
        use base64::Engine;
        return base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("certificate-authority-data");
    }
    std::fs::read(named.certificate_authority.expect("certificate-authority")).expect("CA file")
}

/// The pod's environment: the Deployment's `env` (field references resolved as
/// the kubelet would) and what the kubelet adds for in-cluster clients.
fn pod_env(container: &Container, pod: &str, namespace: &str) -> Vec<(String, String)> {
    // https://HOST:PORT (the stack's API server listens on 127.0.0.1).
    let server = cluster()
        .info
        .apiserver
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let (host, port) = server.rsplit_once(':').expect("API server host:port");
    let mut env = vec![
        ("KUBERNETES_SERVICE_HOST".to_string(), host.to_string()),
        ("KUBERNETES_SERVICE_PORT".to_string(), port.to_string()),
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        ("HOSTNAME".to_string(), pod.to_string()),
        ("RUST_LOG".to_string(), "info,sluice=debug".to_string()),
    ];
    for var in container.env.iter().flatten() {
        let value = match (
            &var.value,
            var.value_from.as_ref().and_then(|f| f.field_ref.as_ref()),
        ) {
            (Some(value), _) => value.clone(),
            (None, Some(field)) if field.field_path == "metadata.name" => pod.to_string(),
            (None, Some(field)) if field.field_path == "metadata.namespace" => {
                namespace.to_string()
            }
            other => panic!("env {} from {other:?}: not resolvable here", var.name),
        };
        env.push((var.name.clone(), value));
    }
    env
}

#[tokio::test]
async fn the_image_run_as_its_pod_carries_a_canary_and_reverts_over_ssh_with_its_own_git() {
    let image = image();
    let info = &cluster().info;
    let prometheus = info.prometheus.clone().expect("prometheus");
    let (admin, ns) = fresh_namespace("image").await;
    let home = super::harness::namespace(&admin, "imagehome").await;

    // The chart, watching `ns` from `home` (its namespaced mode: nothing of it
    // is shared with other tests running at the same time).
    let release = release_for(&home, "sluice");
    let watch = format!("watchNamespaces={{{ns}}}");
    install_chart(&info.kubeconfig, &release, &home, &["--set", &watch]);
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &home);
    let deployment = deployments
        .list(&ListParams::default())
        .await
        .expect("list deployments")
        .items
        .into_iter()
        .next()
        .expect("the chart's Deployment");
    let pod_spec = deployment
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod spec");
    let container = pod_spec.containers.first().cloned().expect("a container");
    let account = pod_spec
        .service_account_name
        .clone()
        .expect("the chart names a ServiceAccount");
    let token = service_account_token(&admin, &home, &account).await;
    let uid = pod_spec
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        .or(container
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_user))
        .expect("the chart sets runAsUser");
    let gid = pod_spec
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_group)
        .unwrap_or(uid);
    assert!(
        container
            .security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem)
            == Some(true),
        "the chart's container has a read-only root, as the pod root here is"
    );
    let empty_dirs: Vec<String> = container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.clone())
        .collect();

    // The pod: the image's files, the chart's mounts, the in-cluster environment.
    let pod_name = format!("{release}-controller-0");
    let dir = info.data_dir.join(format!("pod-{ns}"));
    let ca = cluster_ca();
    let pod = PodRoot::new(
        &image,
        &format!("sluice-e2e-{ns}"),
        &dir,
        &ServiceAccountFiles {
            token: &token,
            ca: &ca,
            namespace: &home,
        },
        &empty_dirs.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let port = free_port();
    // As the kubelet does: the container's `command` replaces the image's
    // ENTRYPOINT, its `args` the image's CMD.
    let mut command = container
        .command
        .clone()
        .unwrap_or_else(|| pod.entrypoint.clone());
    command.extend(container.args.iter().flatten().cloned());
    command.extend(["--listen".to_string(), format!("127.0.0.1:{port}")]);
    let log = log_dir().join(format!("{ns}-image-controller.log"));
    let mut controller = pod.spawn(
        &format!("{uid}:{gid}"),
        &command,
        &pod_env(&container, &pod_name, &home),
        &log,
    );
    let log_tail = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };

    // Git over SSH: the GitRepository's Secret holds the key and known_hosts.
    let sshd = start_sshd(&dir);
    let bare = info.data_dir.join(format!("git-{ns}")).join("apps.git");
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        super::sshd::user(),
        sshd.port,
        bare.display()
    );
    apply_value(
        &admin,
        &ns,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "git-ssh"},
            "stringData": {
                "ssh-privatekey": String::from_utf8_lossy(&sshd.user_key),
                "known_hosts": sshd.known_hosts,
            }
        }),
    )
    .await;
    let gitops = gateway_gitops(
        &ns,
        &prometheus,
        json!({"url": url, "branch": "main", "secretName": "git-ssh",
               "author": {"name": "Sluice", "email": "sluice@example.com"}}),
    );
    let first = wait_phase(
        &admin,
        &ns,
        "web",
        RolloutPhase::Healthy,
        Duration::from_secs(90),
    )
    .await;
    let first_stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");
    let _traffic = start_trafficgen(&ns, 400);
    tokio::time::sleep(Duration::from_secs(4)).await;

    // A good release goes through every step.
    gitops.bump("rollout.yaml", "web:1.0.0", "web:1.0.1", "web 1.0.1");
    let stable = wait_for(
        Duration::from_secs(120),
        "the good release promoted",
        || {
            let (admin, ns, first_stable) = (admin.clone(), ns.clone(), first_stable.clone());
            async move {
                let s = rollout(&admin, &ns, "web").await.status?;
                let stable = s.stable_revision?;
                (s.phase == Some(RolloutPhase::Healthy) && stable != first_stable).then_some(stable)
            }
        },
    )
    .await;
    assert!(
        controller.running(),
        "the controller is running: {}",
        log_tail()
    );

    // A bad one is aborted and its commit reverted over SSH.
    let bump = gitops.bump("rollout.yaml", "web:1.0.1", "web:1.0.2-err10", "web 1.0.2");
    let home_again = wait_reverted_home(&admin, &ns, &stable, Duration::from_secs(150)).await;
    let record = home_again
        .status
        .and_then(|s| s.git_revert)
        .expect("revert record");
    assert_eq!(
        record.reverted_commit.as_deref(),
        Some(bump.as_str()),
        "{}",
        log_tail()
    );
    let head = git(&gitops.bare, &["log", "-1", "--format=%H%n%an%n%B", "main"]);
    assert!(head.contains(&format!("Sluice-Reverts: {bump}")), "{head}");
    assert!(
        head.contains("\nSluice\n"),
        "authored by the repository's author: {head}"
    );
    assert_eq!(gitops.reverts_of(&bump), 1, "exactly one revert");
    let sshd_log = std::fs::read_to_string(&sshd.log).unwrap_or_default();
    assert!(
        sshd_log.contains("Accepted publickey"),
        "the revert went over SSH: {sshd_log}"
    );

    // It ran as the pod's user, not as root.
    let status = std::fs::read_to_string(format!("/proc/{}/status", controller.id()))
        .expect("controller still running");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or_default();
    assert!(
        uid_line.split_whitespace().nth(1) == Some(&uid.to_string()),
        "{uid_line}"
    );
}
