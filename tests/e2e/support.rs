//! Helpers shared by the end-to-end tests: reading Rollouts, routes and ReplicaSets.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use sluice::crd::{Rollout, RolloutPhase};

use super::harness::{
    BackgroundProcess, apply_value, apply_yaml, cluster, repo_root, wait_for, workspace_binary,
};

/// Read an example file and apply it, with `edit` applied to each document first.
pub async fn apply_example(
    client: &Client,
    namespace: &str,
    file: &str,
    edit: impl Fn(&mut serde_json::Value),
) {
    let text = std::fs::read_to_string(repo_root().join("examples").join(file)).expect("example");
    let mut out = String::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let mut value: serde_json::Value = serde::Deserialize::deserialize(doc).expect("yaml");
        if value.is_null() {
            continue;
        }
        edit(&mut value);
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&value).expect("yaml"));
    }
    apply_yaml(client, namespace, &out).await;
}

pub async fn rollout(client: &Client, namespace: &str, name: &str) -> Rollout {
    Api::<Rollout>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .expect("get rollout")
}

/// Wait until the Rollout reports `phase` for its current generation.
pub async fn wait_phase(
    client: &Client,
    namespace: &str,
    name: &str,
    phase: RolloutPhase,
    limit: Duration,
) -> Rollout {
    let api = Api::<Rollout>::namespaced(client.clone(), namespace);
    wait_for(limit, &format!("rollout {name} {phase}"), || {
        let api = api.clone();
        async move {
            let rollout = api.get(name).await.ok()?;
            let status = rollout.status.as_ref()?;
            (status.phase == Some(phase)
                && status.observed_generation == rollout.metadata.generation)
                .then_some(rollout)
        }
    })
    .await
}

/// Change the first container's image (what CI does through Git).
pub async fn set_image(client: &Client, namespace: &str, name: &str, image: &str) {
    let api = Api::<Rollout>::namespaced(client.clone(), namespace);
    let mut rollout = api.get(name).await.expect("get rollout");
    if let Some(container) = rollout
        .spec
        .template
        .spec
        .as_mut()
        .and_then(|s| s.containers.first_mut())
    {
        container.image = Some(image.into());
    }
    let patch = json!({ "spec": { "template": rollout.spec.template } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch image");
}

/// Annotate the Rollout (how the CLI's controls work).
pub async fn annotate(client: &Client, namespace: &str, name: &str, key: &str, value: &str) {
    let api = Api::<Rollout>::namespaced(client.clone(), namespace);
    let patch = json!({ "metadata": { "annotations": { key: value } } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
}

/// The canary's weight on the first rule of an HTTPRoute, as the API server stores it.
pub async fn route_canary_weight(
    client: &Client,
    namespace: &str,
    route: &str,
    canary: &str,
) -> Option<i64> {
    let resource = sluice::reconcile::observe::http_route_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let object = api.get(route).await.ok()?;
    let refs = object.data["spec"]["rules"][0]["backendRefs"]
        .as_array()?
        .clone();
    refs.iter()
        .find(|r| r["name"] == canary)
        .map(|r| r["weight"].as_i64().unwrap_or(1))
}

/// ReplicaSets of a Rollout: (hash, spec replicas, ready replicas).
pub async fn revisions(client: &Client, namespace: &str, name: &str) -> Vec<(String, i32, i32)> {
    let api = Api::<ReplicaSet>::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(&format!("sluice.dev/rollout={name}")))
        .await
        .expect("list rs");
    list.items
        .into_iter()
        .map(|rs| {
            let hash = rs
                .metadata
                .labels
                .clone()
                .unwrap_or_default()
                .get("sluice.dev/pod-template-hash")
                .cloned()
                .unwrap_or_default();
            let spec = rs.spec.and_then(|s| s.replicas).unwrap_or(0);
            let ready = rs.status.and_then(|s| s.ready_replicas).unwrap_or(0);
            (hash, spec, ready)
        })
        .collect()
}

/// Reasons of the Events recorded on a Rollout.
pub async fn event_reasons(client: &Client, namespace: &str, name: &str) -> Vec<String> {
    let api = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), namespace);
    let list = api.list(&ListParams::default()).await.expect("list events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

/// A Webhook AlertTarget `team-hook` whose URL, `{receiver}/hooks/team`, is
/// in a Secret of the same name.
pub async fn team_hook(client: &Client, namespace: &str, receiver: &str) {
    apply_value(
        client,
        namespace,
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "team-hook"},
            "stringData": {"url": format!("{receiver}/hooks/team")}
        }),
    )
    .await;
    apply_value(
        client,
        namespace,
        json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "AlertTarget",
            "metadata": {"name": "team-hook"},
            "spec": {"type": "Webhook", "secretName": "team-hook"}
        }),
    )
    .await;
}

/// The text of `file` in `examples/gateway-canary/`.
pub fn gateway_example(file: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples/gateway-canary").join(file))
        .expect("example")
}

/// Shorten every pause and delay of a Rollout document so that tests run in seconds.
pub fn speed_up(doc: &mut serde_json::Value) {
    if doc["kind"] != "Rollout" {
        return;
    }
    if doc["spec"]["strategy"]["blueGreen"].is_object() {
        let blue_green = &mut doc["spec"]["strategy"]["blueGreen"];
        blue_green["scaleDownDelaySeconds"] = json!(3);
        blue_green["abortScaleDownDelaySeconds"] = json!(3);
        blue_green["autoPromotionSeconds"] = json!(2);
        return;
    }
    let canary = &mut doc["spec"]["strategy"]["canary"];
    canary["scaleDownDelaySeconds"] = json!(3);
    canary["abortScaleDownDelaySeconds"] = json!(3);
    if let Some(steps) = canary["steps"].as_array_mut() {
        for step in steps {
            if step.get("pause").and_then(|p| p.get("duration")).is_some() {
                step["pause"]["duration"] = json!("2s");
            }
        }
    }
}

/// `sluice-trafficgen` for Rollout `web` in `namespace` at `rps`, registered with the stack's Prometheus.
pub fn start_trafficgen(namespace: &str, rps: u32) -> BackgroundProcess {
    start_trafficgen_with(namespace, rps, &[])
}

/// `start_trafficgen` with extra flags (e.g. `--smoke-service`).
pub fn start_trafficgen_with(namespace: &str, rps: u32, extra: &[&str]) -> BackgroundProcess {
    let targets = cluster()
        .info
        .prometheus_targets_dir
        .clone()
        .expect("Prometheus file_sd directory");
    let (rps, targets) = (rps.to_string(), targets.display().to_string());
    BackgroundProcess::start(
        &format!("{namespace}-trafficgen"),
        &workspace_binary("sluice-trafficgen"),
        &[
            "--namespace",
            namespace,
            "--rollout",
            "web",
            "--rps",
            &rps,
            "--prometheus-targets-dir",
            &targets,
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>(),
    )
}

/// Run git as CI would (its identity) in `dir`; stdout.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=CI", "-c", "user.email=ci@example.com"])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A GitOps repository (a local bare repository with a CI clone) whose
/// `apps/web` directory a `sluice-gitops-sync` loop applies to a namespace.
pub struct GitOps {
    pub bare: std::path::PathBuf,
    pub ci: std::path::PathBuf,
    pub dir: std::path::PathBuf,
    _sync: BackgroundProcess,
}

impl GitOps {
    /// Commit `files` (name, YAML) as `web 1.0.0` and start syncing them into `ns`.
    pub fn start(ns: &str, files: &[(&str, String)]) -> GitOps {
        let root = cluster().info.data_dir.join(format!("git-{ns}"));
        std::fs::create_dir_all(&root).expect("root");
        git(&root, &["init", "-q", "--bare", "-b", "main", "apps.git"]);
        git(&root, &["clone", "-q", "apps.git", "ci"]);
        let (bare, ci) = (root.join("apps.git"), root.join("ci"));
        let dir = ci.join("apps/web");
        std::fs::create_dir_all(&dir).expect("dir");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write");
        }
        git(&ci, &["add", "."]);
        git(&ci, &["commit", "-q", "-m", "web 1.0.0"]);
        git(&ci, &["push", "-q", "origin", "main"]);
        let (bare_arg, work) = (
            bare.display().to_string(),
            root.join("sync").display().to_string(),
        );
        let sync = BackgroundProcess::start(
            &format!("{ns}-gitops-sync"),
            &workspace_binary("sluice-gitops-sync"),
            &[
                "--repo",
                &bare_arg,
                "--path",
                "apps/web",
                "--namespace",
                ns,
                "--work-dir",
                &work,
                "--interval",
                "500ms",
            ],
        );
        GitOps {
            bare,
            ci,
            dir,
            _sync: sync,
        }
    }

    /// CI replaces `from` with `to` in the Rollout's file and pushes; returns the commit.
    pub fn bump(&self, file: &str, from: &str, to: &str, message: &str) -> String {
        let path = self.dir.join(file);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replace(from, to)).expect("write");
        git(&self.ci, &["commit", "-q", "-am", message]);
        git(&self.ci, &["push", "-q", "origin", "main"]);
        git(&self.ci, &["rev-parse", "HEAD"])
    }

    /// What the sync loop printed so far (`SLUICE_GITOPS_SYNCED`, `SLUICE_GITOPS_REFUSED` lines).
    pub fn sync_output(&self) -> String {
        self._sync.output()
    }

    /// Commits on the branch that carry `Sluice-Reverts: <sha>`.
    pub fn reverts_of(&self, sha: &str) -> usize {
        let grep = format!("--grep=^Sluice-Reverts: {sha}$");
        git(&self.bare, &["log", "--format=%H", &grep, "main"])
            .lines()
            .count()
    }
}

/// The GitOps repository of the whole-loop tests, synced into `ns`: the
/// gateway example with an analysis step between 25% and 100%, `spec.git`
/// referencing GitRepository `apps` (whose `spec` is `repository`), and the
/// error-rate template on `prometheus`.
pub fn gateway_gitops(ns: &str, prometheus: &str, repository: serde_json::Value) -> GitOps {
    let example = |file: &str| {
        std::fs::read_to_string(repo_root().join("examples/gateway-canary").join(file))
            .expect("example")
    };
    let yaml = |value: &serde_json::Value| serde_yaml_ng::to_string(value).expect("yaml");
    let mut manifest: serde_json::Value =
        serde_yaml_ng::from_str(&example("rollout.yaml")).expect("yaml");
    speed_up(&mut manifest);
    manifest["spec"]["strategy"]["canary"]["steps"] = json!([
        {"setWeight": 25},
        {"analysis": {"templates": [{"templateName": "error-rate"}]}},
        {"setWeight": 100}
    ]);
    manifest["spec"]["git"] = json!({"repositoryRef": {"name": "apps"}, "path": "apps/web"});
    let repository = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "GitRepository",
        "metadata": {"name": "apps"},
        "spec": repository
    });
    GitOps::start(
        ns,
        &[
            ("services.yaml", example("services.yaml")),
            ("httproute.yaml", example("httproute.yaml")),
            ("repository.yaml", yaml(&repository)),
            ("rollout.yaml", yaml(&manifest)),
            (
                "analysis.yaml",
                yaml(&super::analysis::error_rate_template(prometheus)),
            ),
        ],
    )
}

/// Wait until the Git revert is recorded and the Rollout is Healthy on `stable` again.
pub async fn wait_reverted_home(
    admin: &Client,
    ns: &str,
    stable: &str,
    limit: Duration,
) -> Rollout {
    let started = std::time::Instant::now();
    loop {
        let r = rollout(admin, ns, "web").await;
        if let Some(s) = r.status.as_ref() {
            let reverted = s
                .git_revert
                .as_ref()
                .is_some_and(|g| g.state == sluice::crd::RevertState::Reverted);
            if reverted
                && s.phase == Some(RolloutPhase::Healthy)
                && s.stable_revision.as_deref() == Some(stable)
            {
                return r;
            }
        }
        // On timeout, say what the Rollout looked like: which condition was missing.
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for the revert synced and Rollout Healthy on stable {stable}; \
             last status: {}",
            serde_json::to_string(&r.status).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An admin client and a fresh namespace named after `prefix`, with the CRDs installed.
pub async fn fresh_namespace(prefix: &str) -> (Client, String) {
    let admin = super::harness::admin_client().await;
    super::harness::ensure_crds(&admin).await;
    let ns = super::harness::namespace(&admin, prefix).await;
    (admin, ns)
}

/// What almost every end-to-end test starts from: an admin client, a fresh
/// namespace with the CRDs installed, and the kubeconfig of `deploy/`'s
/// ServiceAccount bound in that namespace (the controller runs with it).
pub async fn setup(prefix: &str) -> (Client, String, std::path::PathBuf) {
    let (admin, ns) = fresh_namespace(prefix).await;
    let kubeconfig = super::rbac::service_account_kubeconfig(&admin, &ns).await;
    (admin, ns, kubeconfig)
}
