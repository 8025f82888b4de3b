//! Starting the stack in order and waiting until each piece is really ready.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::pki;
use crate::procs::Procs;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the caller asked for.
pub struct Options {
    pub bin_dir: PathBuf,
    pub data_dir: PathBuf,
    pub nodes: usize,
    pub prometheus: bool,
}

fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn say(message: &str) {
    eprintln!("[testcluster] {message}");
}

fn args(list: &[String]) -> Vec<String> {
    list.to_vec()
}

/// Start everything; on error the components started so far are still in `procs`.
pub async fn start(
    options: &Options,
    procs: &mut Procs,
    scratch: &mut Vec<PathBuf>,
) -> Result<serde_json::Value, Error> {
    let data = &options.data_dir;
    let bin = |name: &str| options.bin_dir.join(name);
    let logs = data.join("logs");
    std::fs::create_dir_all(&logs)?;
    let pki = pki::generate(&data.join("pki"))?;
    let started = Instant::now();

    // etcd, on tmpfs when there is one: fsync-free and fast.
    let shm = Path::new("/dev/shm");
    let etcd_data = if shm.is_dir() {
        shm.join(format!("sluice-etcd-{}", std::process::id()))
    } else {
        data.join("etcd")
    };
    scratch.push(etcd_data.clone());
    let (etcd_port, peer_port) = (free_port()?, free_port()?);
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    procs.spawn(
        "etcd",
        &bin("etcd"),
        &args(&[
            "--name=default".into(),
            format!("--data-dir={}", etcd_data.display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
            "--unsafe-no-fsync=true".into(),
            "--log-level=warn".into(),
        ]),
        &logs,
    )?;
    wait_http(procs, "etcd", etcd_port, "/health", "\"health\":\"true\"").await?;
    say(&format!("etcd ready on {etcd_url}"));

    let api_port = free_port()?;
    let server = format!("https://127.0.0.1:{api_port}");
    let kubeconfig = data.join("kubeconfig");
    std::fs::write(&kubeconfig, pki::kubeconfig(&pki, &server))?;
    let p = |path: &Path| path.display().to_string();
    procs.spawn(
        "kube-apiserver",
        &bin("kube-apiserver"),
        &args(&[
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            format!("--cert-dir={}", data.join("pki").display()),
            format!("--tls-cert-file={}", p(&pki.serving_cert)),
            format!("--tls-private-key-file={}", p(&pki.serving_key)),
            format!("--client-ca-file={}", p(&pki.ca_cert)),
            format!("--service-account-issuer={server}"),
            format!("--service-account-key-file={}", p(&pki.sa_pub)),
            format!("--service-account-signing-key-file={}", p(&pki.sa_key)),
            "--authorization-mode=RBAC".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--endpoint-reconciler-type=none".into(),
            "--allow-privileged=true".into(),
            "--enable-priority-and-fairness=false".into(),
            "--v=1".into(),
        ]),
        &logs,
    )?;
    let client = client(&kubeconfig).await?;
    wait_until(
        procs,
        "kube-apiserver /readyz",
        Duration::from_secs(120),
        || {
            let client = client.clone();
            async move {
                let request = http::Request::get("/readyz").body(Vec::new()).ok()?;
                client
                    .request_text(request)
                    .await
                    .ok()
                    .filter(|body| body.trim() == "ok")
            }
        },
    )
    .await?;
    say(&format!(
        "kube-apiserver ready on {server} after {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    let version = client.apiserver_version().await?.git_version;

    let kc = format!("--kubeconfig={}", kubeconfig.display());
    let delegated = [
        kc.clone(),
        format!("--authentication-kubeconfig={}", kubeconfig.display()),
        format!("--authorization-kubeconfig={}", kubeconfig.display()),
    ];
    let mut kcm = delegated.to_vec();
    kcm.extend([
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", free_port()?),
        "--leader-elect=false".into(),
        format!("--service-account-private-key-file={}", p(&pki.sa_key)),
        format!("--root-ca-file={}", p(&pki.ca_cert)),
        format!("--cluster-signing-cert-file={}", p(&pki.ca_cert)),
        format!("--cluster-signing-key-file={}", p(&pki.ca_key)),
        "--use-service-account-credentials=true".into(),
        "--v=1".into(),
    ]);
    procs.spawn(
        "kube-controller-manager",
        &bin("kube-controller-manager"),
        &kcm,
        &logs,
    )?;
    let mut scheduler = delegated.to_vec();
    scheduler.extend([
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", free_port()?),
        "--leader-elect=false".into(),
    ]);
    procs.spawn("kube-scheduler", &bin("kube-scheduler"), &scheduler, &logs)?;

    // KWOK: fake nodes and pod lifecycles without a kubelet.
    let stages_dir = options
        .bin_dir
        .parent()
        .unwrap_or(Path::new("."))
        .join("kwok-stages");
    let mut stages = String::new();
    let yaml_files = |dir: &Path| -> std::io::Result<Vec<PathBuf>> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        entries.sort();
        Ok(entries)
    };
    let mut entries = yaml_files(&stages_dir)?;
    // Sluice's own stages live in the repository, so adding one needs no rebuild of the cache.
    entries.extend(yaml_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../kwok-stages-extra"),
    )?);
    for path in entries {
        stages.push_str("---\n");
        stages.push_str(&std::fs::read_to_string(path)?);
    }
    let kwok_config = data.join("kwok.yaml");
    std::fs::write(&kwok_config, stages)?;
    procs.spawn(
        "kwok",
        &bin("kwok"),
        &args(&[
            kc.clone(),
            format!("--config={}", kwok_config.display()),
            "--manage-all-nodes=false".into(),
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
            "--cidr=10.0.64.0/18".into(),
            "--node-ip=127.0.0.1".into(),
            // The heartbeat-with-lease stage refreshes node status only every ~10 min;
            // without a renewed Lease the node controller marks the nodes NotReady after
            // its grace period and evicts readiness from every pod.
            "--node-lease-duration-seconds=40".into(),
            format!("--server-address=127.0.0.1:{}", free_port()?),
        ]),
        &logs,
    )?;
    create_nodes(&client, options.nodes).await?;
    wait_until(procs, "fake nodes Ready", Duration::from_secs(60), || {
        let nodes: Api<Node> = Api::all(client.clone());
        let want = options.nodes;
        async move {
            let list = nodes.list(&Default::default()).await.ok()?;
            let ready = list.items.iter().filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
            (ready.count() >= want).then_some(())
        }
    })
    .await?;
    say(&format!("{} KWOK nodes Ready", options.nodes));

    install_gateway_api(
        procs,
        &client,
        &options
            .bin_dir
            .parent()
            .unwrap_or(Path::new("."))
            .join("gateway-api"),
    )
    .await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    wait_until(
        procs,
        "default ServiceAccount (token controller)",
        Duration::from_secs(60),
        || {
            let accounts = accounts.clone();
            async move { accounts.get_opt("default").await.ok().flatten().map(|_| ()) }
        },
    )
    .await?;

    let (prometheus, targets) = if options.prometheus {
        start_prometheus(procs, data, &logs).await?
    } else {
        (None, None)
    };
    say(&format!(
        "stack ready after {:.1}s (Kubernetes {version})",
        started.elapsed().as_secs_f64()
    ));
    Ok(json!({
        "kubeconfig": kubeconfig,
        "apiserver": server,
        "kubernetesVersion": version,
        "prometheus": prometheus,
        "prometheusTargetsDir": targets,
        "dataDir": data,
        "logsDir": logs,
        "binDir": options.bin_dir,
        "pid": std::process::id(),
    }))
}

async fn client(kubeconfig: &Path) -> Result<Client, Error> {
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    Ok(Client::try_from(config)?)
}

async fn create_nodes(client: &Client, count: usize) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    for index in 0..count {
        let name = format!("kwok-node-{index}");
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
                "labels": { "type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64" },
            },
            // The e2e suite keeps every test's namespace for its logs, so pods pile
            // up across ~80 tests: room for 500 per fake node, not a kubelet's 110.
            "status": {
                "capacity": { "cpu": "32", "memory": "256Gi", "pods": "500" },
                "allocatable": { "cpu": "32", "memory": "256Gi", "pods": "500" },
            },
        }))?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

async fn install_gateway_api(procs: &mut Procs, client: &Client, dir: &Path) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for file in files {
        for doc in serde_yaml_ng::Deserializer::from_str(&std::fs::read_to_string(&file)?) {
            let value: serde_json::Value = serde::Deserialize::deserialize(doc)?;
            if value.get("kind").and_then(|k| k.as_str()) != Some("CustomResourceDefinition") {
                continue;
            }
            let crd: CustomResourceDefinition = serde_json::from_value(value)?;
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(
                &name,
                &PatchParams::apply("sluice-testcluster").force(),
                &Patch::Apply(&crd),
            )
            .await?;
            names.push(name);
        }
    }
    for name in &names {
        wait_until(
            procs,
            &format!("CRD {name} Established"),
            Duration::from_secs(30),
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
        .await?;
    }
    say(&format!("Gateway API CRDs installed: {}", names.len()));
    Ok(())
}

async fn start_prometheus(
    procs: &mut Procs,
    data: &Path,
    logs: &Path,
) -> Result<(Option<String>, Option<PathBuf>), Error> {
    let binary = std::env::var_os("SLUICE_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    if !binary.exists() {
        return Err(format!(
            "Prometheus not found at {} (run tests/cluster/install-deps.sh)",
            binary.display()
        )
        .into());
    }
    let dir = data.join("prometheus");
    let targets = dir.join("targets");
    std::fs::create_dir_all(&targets)?;
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: sluice-test\n  file_sd_configs:\n  - files: ['{}/*.json']\n    refresh_interval: 1s\n",
        targets.display()
    );
    std::fs::write(dir.join("prometheus.yml"), config)?;
    let port = free_port()?;
    procs.spawn(
        "prometheus",
        &binary,
        &args(&[
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--storage.tsdb.retention.time=2h".into(),
            "--log.level=warn".into(),
        ]),
        logs,
    )?;
    wait_http(procs, "prometheus", port, "/-/ready", "Ready").await?;
    say(&format!("Prometheus ready on 127.0.0.1:{port}"));
    Ok((Some(format!("http://127.0.0.1:{port}")), Some(targets)))
}

/// Poll a plain-HTTP endpoint on 127.0.0.1 until its body contains `expect`.
async fn wait_http(
    procs: &mut Procs,
    what: &str,
    port: u16,
    path: &str,
    expect: &str,
) -> Result<(), Error> {
    wait_until(procs, what, Duration::from_secs(60), || async move {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await.ok()?;
        body.contains(expect).then_some(())
    })
    .await
}

/// Poll `probe` until it yields, a component dies, or `limit` passes.
async fn wait_until<T, F, Fut>(
    procs: &mut Procs,
    what: &str,
    limit: Duration,
    mut probe: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if let Some(dead) = procs.exited() {
            return Err(format!("{dead} exited while waiting for {what}").into());
        }
        if started.elapsed() > limit {
            return Err(format!("timed out after {limit:?} waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
