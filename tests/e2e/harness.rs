//! The end-to-end harness: one real control plane per test binary, one namespace per test.
//!
//! The stack (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
//! KWOK, Prometheus) is started by `sluice-testcluster` from
//! `tests/cluster/`. Its stdin is our lifeline: when this process exits for
//! any reason the pipe closes and the supervisor tears everything down.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::{Api, Client, Config};
use serde::Deserialize;

/// What `sluice-testcluster` reports in `cluster.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    pub kubeconfig: PathBuf,
    pub apiserver: String,
    pub kubernetes_version: String,
    pub prometheus: Option<String>,
    pub prometheus_targets_dir: Option<PathBuf>,
    pub data_dir: PathBuf,
}

/// The running stack.
pub struct Cluster {
    pub info: ClusterInfo,
    _lifeline: Mutex<ChildStdin>,
    _supervisor: Mutex<Child>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// A binary of another workspace member (built by `cargo build --workspace`, as scripts/test.sh does).
pub fn workspace_binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directory for logs of this run's processes.
pub fn log_dir() -> PathBuf {
    let dir = repo_root().join("target/e2e-logs");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// The stack, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start_cluster)
}

fn start_cluster() -> Cluster {
    let cache = match std::env::var("SLUICE_CLUSTER_CACHE") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let out = Command::new("bash")
                .arg(repo_root().join("tests/cluster/build.sh"))
                .stderr(Stdio::inherit())
                .output()
                .expect("run tests/cluster/build.sh");
            assert!(out.status.success(), "tests/cluster/build.sh failed");
            let text = String::from_utf8_lossy(&out.stdout);
            PathBuf::from(
                text.lines()
                    .last()
                    .expect("build.sh prints the cache directory")
                    .trim(),
            )
        }
    };
    let bin_dir = cache.join("bin");
    let supervisor = workspace_binary("sluice-testcluster");
    let data_dir = std::env::temp_dir().join(format!("sluice-e2e-{}", std::process::id()));
    let mut child = Command::new(&supervisor)
        .args(["run", "--prometheus", "--lifeline-stdin", "--nodes", "3"])
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--data-dir")
        .arg(&data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::create(log_dir().join("testcluster.log"))
                .map(Stdio::from)
                .unwrap_or(Stdio::inherit()),
        )
        .spawn()
        .expect("start sluice-testcluster");
    let lifeline = child.stdin.take().expect("stdin piped");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut ready = None;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(path) = line.strip_prefix("SLUICE_CLUSTER_READY ") {
            ready = Some(PathBuf::from(path.trim()));
            break;
        }
    }
    let Some(path) = ready else {
        let log = std::fs::read_to_string(log_dir().join("testcluster.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "the test cluster did not start:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    };
    let info: ClusterInfo =
        serde_json::from_slice(&std::fs::read(&path).expect("read cluster.json"))
            .expect("parse cluster.json");
    eprintln!(
        "e2e: Kubernetes {} at {} (data {})",
        info.kubernetes_version,
        info.apiserver,
        info.data_dir.display()
    );
    Cluster {
        info,
        _lifeline: Mutex::new(lifeline),
        _supervisor: Mutex::new(child),
    }
}

/// A client with admin rights on the test cluster.
pub async fn admin_client() -> Client {
    client_for(&cluster().info.kubeconfig).await
}

/// A client from a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// The CRD schema is shared by every test of the run: a test that installs
/// looser CRDs (an older release's, in `robustness`) holds this for writing,
/// and every other install of the current CRDs waits for it, so no test
/// restores the bounds in the middle of another's.
pub static CRD_SCHEMA: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Install (or update) the CRDs from `crds/` and wait until they are served,
/// unless a test has loosened them: then once it has put them back.
pub async fn ensure_crds(client: &Client) {
    let _current = CRD_SCHEMA.read().await;
    install_current_crds(client).await;
}

/// [`ensure_crds`] for a test that already holds [`CRD_SCHEMA`].
pub async fn install_current_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in sluice::crd::all_crds() {
        let name = crd.metadata.name.clone().expect("crd name");
        api.patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply CRD");
        wait_for(
            Duration::from_secs(30),
            &format!("CRD {name} established"),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    let conditions = crd.status?.conditions?;
                    conditions
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                }
            },
        )
        .await;
    }
}

/// A fresh namespace for one test.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let suffix: u32 = rand_suffix();
    let name = format!("e2e-{prefix}-{suffix:05}");
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    // The ServiceAccount admission needs the default ServiceAccount before pods can be created.
    let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), &name);
    wait_for(Duration::from_secs(30), "default ServiceAccount", || {
        let sa = sa.clone();
        async move { sa.get_opt("default").await.ok().flatten().map(|_| ()) }
    })
    .await;
    name
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ std::process::id().rotate_left(7)) % 100_000
}

/// Server-side apply every document of a YAML text into `namespace`.
pub async fn apply_yaml(client: &Client, namespace: &str, text: &str) {
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc).expect("yaml");
        if value.is_null() {
            continue;
        }
        apply_value(client, namespace, value).await;
    }
}

/// Server-side apply one object given as JSON.
pub async fn apply_value(client: &Client, namespace: &str, value: serde_json::Value) {
    let object: DynamicObject = serde_json::from_value(value).expect("object");
    let types = object.types.clone().expect("apiVersion and kind");
    let gvk = GroupVersionKind::try_from(&types).expect("gvk");
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .expect("discover kind");
    let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
        Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    let name = object.metadata.name.clone().expect("name");
    api.patch(
        &name,
        &PatchParams::apply("e2e").force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {} {name}: {e}", gvk.kind));
}

/// Poll `probe` every 200 ms until it yields a value or `limit` passes.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A `sluice controller` process, killed when dropped.
pub struct ControllerProcess {
    child: Child,
    pub http: String,
    pub log: PathBuf,
}

impl ControllerProcess {
    /// Start the real binary with `kubeconfig`, watching `namespace`.
    pub fn start(
        kubeconfig: &Path,
        namespace: &str,
        identity: &str,
        extra: &[&str],
    ) -> ControllerProcess {
        let port = free_port();
        let log = log_dir().join(format!("{namespace}-{identity}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args([
                "controller",
                "--namespace",
                namespace,
                "--identity",
                identity,
            ])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,sluice=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start sluice controller");
        ControllerProcess {
            child,
            http: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// Have the stack's Prometheus scrape this controller's `/metrics`
    /// (file-based discovery, job `sluice-controller`) until the guard drops.
    pub fn scraped_by_prometheus(&self) -> ScrapeTarget {
        let dir = cluster()
            .info
            .prometheus_targets_dir
            .clone()
            .expect("Prometheus file_sd directory");
        let address = self.http.trim_start_matches("http://");
        let name = format!("controller-{}", address.replace([':', '.'], "-"));
        let body = serde_json::json!([{
            "targets": [address],
            "labels": {"job": "sluice-controller"},
        }]);
        // Written aside and renamed, so Prometheus never reads half a file.
        let (partial, file) = (
            dir.join(format!("{name}.partial")),
            dir.join(format!("{name}.json")),
        );
        std::fs::write(&partial, body.to_string()).expect("write scrape target");
        std::fs::rename(&partial, &file).expect("publish scrape target");
        ScrapeTarget { file }
    }

    /// Process id, for measurements.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kill at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Prometheus scrape target registered in the stack's file_sd directory; removed when dropped.
pub struct ScrapeTarget {
    file: PathBuf,
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// GET a URL and return the body (plain HTTP on loopback).
pub async fn http_get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let code = response.status().as_u16();
    Some((code, response.text().await.ok()?))
}

/// A helper process (traffic generator, GitOps sync), killed when dropped.
pub struct BackgroundProcess {
    child: Child,
    /// Its stdout, captured to a file.
    pub stdout: PathBuf,
}

impl BackgroundProcess {
    pub fn start(name: &str, program: &Path, args: &[&str]) -> BackgroundProcess {
        let stdout = log_dir().join(format!("{name}.out"));
        let stderr = log_dir().join(format!("{name}.log"));
        let child = Command::new(program)
            .args(args)
            .env("KUBECONFIG", &cluster().info.kubeconfig)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        BackgroundProcess { child, stdout }
    }

    /// Lines it printed on stdout so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }
}

impl Drop for BackgroundProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
