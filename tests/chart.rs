//! The Helm chart (`charts/sluice/`) renders what `deploy/` installs.
//!
//! With default values, a release named `sluice` in `sluice-system` renders
//! exactly `kubectl kustomize deploy/` (CRDs included) but the Namespace, the
//! namespaced values render `deploy/namespaced/`, the schema refuses bad values
//! with helm's own error, and the chart's `crds/` never drift from `crds/`.
//!
//! Needs helm (built from the Go module proxy by `tests/cluster/build-helm.sh`,
//! cached; or `SLUICE_HELM`) and the test cluster's kubectl for `kubectl
//! kustomize` (`SLUICE_CLUSTER_CACHE`, as for the e2e suite). Missing tools fail
//! the test with a message saying how to get them: nothing is skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use pretty_assertions::assert_eq;
use serde_json::Value;

/// apiVersion, kind, namespace (empty when cluster-scoped), name.
type Key = (String, String, String, String);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join("charts/sluice")
}

/// helm: `SLUICE_HELM`, else the binary `tests/cluster/build-helm.sh` builds
/// (once, cached under ~/.cache/sluice/helm-<version>) and prints last.
fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(path) = std::env::var_os("SLUICE_HELM").filter(|p| !p.is_empty()) {
            return PathBuf::from(path);
        }
        let out = Command::new("bash")
            .arg(root().join("tests/cluster/build-helm.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/cluster/build-helm.sh (needs bash and go)");
        assert!(
            out.status.success(),
            "tests/cluster/build-helm.sh failed (it builds helm with Go from the module proxy); \
             or point SLUICE_HELM at a helm binary"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let path = PathBuf::from(text.lines().last().unwrap_or_default().trim());
        assert!(
            path.is_file(),
            "build-helm.sh printed no helm binary: {text}"
        );
        path
    })
}

/// kubectl of the test cluster's cache (it has kustomize built in).
fn kubectl() -> PathBuf {
    let cache = std::env::var_os("SLUICE_CLUSTER_CACHE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .expect(
            "SLUICE_CLUSTER_CACHE is not set: the chart test needs the test cluster's kubectl \
             (`export SLUICE_CLUSTER_CACHE=$(tests/cluster/build.sh | tail -1)`, as scripts/test.sh does)",
        );
    let kubectl = cache.join("bin/kubectl");
    assert!(
        kubectl.is_file(),
        "{} missing: run tests/cluster/build.sh",
        kubectl.display()
    );
    kubectl
}

/// Run a tool; Ok(stdout) on success, Err(stderr) on failure.
fn run(program: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `helm template <release> charts/sluice -n <namespace> --include-crds <extra>`.
fn template(release: &str, namespace: &str, extra: &[&str]) -> Result<String, String> {
    let chart = chart();
    let chart = chart.to_str().expect("utf-8 path");
    let mut args = vec![
        "template",
        release,
        chart,
        "--namespace",
        namespace,
        "--include-crds",
    ];
    args.extend_from_slice(extra);
    run(helm(), &args)
}

fn rendered(release: &str, namespace: &str, extra: &[&str]) -> BTreeMap<Key, Value> {
    let text = template(release, namespace, extra)
        .unwrap_or_else(|e| panic!("helm template {release} {extra:?}: {e}"));
    objects(&text)
}

/// Every document of a multi-document YAML text, keyed; a key seen twice fails.
fn objects(text: &str) -> BTreeMap<Key, Value> {
    let mut objects = BTreeMap::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let mut value: Value = serde::Deserialize::deserialize(doc).expect("YAML document");
        whole_numbers_as_integers(&mut value);
        if value.is_null() {
            continue;
        }
        let field = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let key = (
            field(&value["apiVersion"]),
            field(&value["kind"]),
            field(&value["metadata"]["namespace"]),
            field(&value["metadata"]["name"]),
        );
        assert!(!key.3.is_empty(), "object without a name: {value}");
        assert!(
            objects.insert(key.clone(), value).is_none(),
            "rendered twice: {key:?}"
        );
    }
    objects
}

/// `0.0` and `0` are one number (the CRDs say `minimum: 0.0`; kustomize re-emits it as `0`).
fn whole_numbers_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15) {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

/// `kubectl kustomize <dir>` without deploy/'s Namespace (a release's
/// namespace is helm's: `--create-namespace`).
fn kustomize(dir: &str) -> BTreeMap<Key, Value> {
    let text = run(
        &kubectl(),
        // Default load restrictions, as a user's `kubectl apply -k` has them.
        &["kustomize", dir],
    )
    .unwrap_or_else(|e| panic!("kubectl kustomize {dir}: {e}"));
    let mut objects = objects(&text);
    objects.retain(|key, _| key.1 != "Namespace");
    objects
}

fn of_kind<'a>(objects: &'a BTreeMap<Key, Value>, kind: &str) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|(key, _)| key.1 == kind)
        .map(|(_, value)| value)
        .collect()
}

fn deployment(objects: &BTreeMap<Key, Value>) -> &Value {
    let found = of_kind(objects, "Deployment");
    assert_eq!(found.len(), 1, "one Deployment");
    found[0]
}

fn args(objects: &BTreeMap<Key, Value>) -> Vec<String> {
    deployment(objects)["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

fn image(objects: &BTreeMap<Key, Value>) -> String {
    deployment(objects)["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("image")
        .to_string()
}

fn assert_same_objects(chart: &BTreeMap<Key, Value>, expected: &BTreeMap<Key, Value>) {
    assert_eq!(
        chart.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the chart renders other objects than deploy/"
    );
    for (key, value) in expected {
        assert_eq!(&chart[key], value, "{key:?} differs from deploy/");
    }
}

#[test]
fn default_values_render_exactly_deploy() {
    let chart = rendered("sluice", "sluice-system", &[]);
    assert_same_objects(&chart, &kustomize("deploy"));
}

#[test]
fn namespaced_values_render_deploy_namespaced() {
    let chart = rendered(
        "sluice",
        "sluice-system",
        &["--set", "watchNamespaces={apps}"],
    );
    let mut expected = kustomize("deploy/namespaced");
    // Beyond deploy/namespaced/: the Service selector policy, bound to the
    // watched namespace only (other installs own the other namespaces).
    let mut extra: Vec<&Key> = chart
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    extra.sort();
    assert_eq!(
        extra.iter().map(|k| k.1.as_str()).collect::<Vec<_>>(),
        [
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding"
        ]
    );
    for key in extra {
        let value = chart[key].clone();
        if key.1 == "ValidatingAdmissionPolicyBinding" {
            assert_eq!(
                value["spec"]["matchResources"]["namespaceSelector"]["matchLabels"],
                serde_json::json!({"kubernetes.io/metadata.name": "apps"})
            );
        }
        expected.insert(key.clone(), value);
    }
    assert_same_objects(&chart, &expected);

    assert!(
        args(&chart)
            .windows(2)
            .any(|w| w == ["--namespace", "apps"])
    );
    // No ClusterRole grants a namespaced resource: only the cluster-scoped Sluice kinds.
    for role in of_kind(&chart, "ClusterRole") {
        for rule in role["rules"].as_array().expect("rules") {
            for resource in rule["resources"].as_array().expect("resources") {
                let resource = resource.as_str().expect("resource");
                assert!(
                    resource.starts_with("cluster"),
                    "ClusterRole {} grants {resource}",
                    role["metadata"]["name"]
                );
            }
        }
    }
    let roles: Vec<(String, String)> = of_kind(&chart, "Role")
        .iter()
        .map(|r| {
            let meta = &r["metadata"];
            (meta["namespace"].to_string(), meta["name"].to_string())
        })
        .collect();
    assert_eq!(roles.len(), 2, "{roles:?}");
}

#[test]
fn lint_strict_passes() {
    for extra in [&[][..], &["--set", "watchNamespaces={apps}"][..]] {
        let chart = chart();
        let mut args = vec!["lint", "--strict", chart.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        if let Err(e) = run(helm(), &args) {
            panic!("helm lint --strict {extra:?}: {e}");
        }
    }
}

#[test]
fn the_schema_and_the_templates_refuse_bad_values() {
    for (set, error) in [
        (
            &["--set-string", "replicas=two"][..],
            "at '/replicas': got string, want integer",
        ),
        (
            &["--set", "replica=2"],
            "additional properties 'replica' not allowed",
        ),
        (
            &["--set", "watchNamespaces={a,b}"],
            "at '/watchNamespaces': maxItems",
        ),
        (&["--set", "logFormat=xml"], "at '/logFormat'"),
        (&["--set", "image.digest=latest"], "at '/image/digest'"),
        // Secret values never go into values: a target names a Secret.
        (
            &[
                "--set-json",
                r#"gitRepositories=[{"name":"g","url":"https://x","password":"p"}]"#,
            ],
            "additional properties 'password' not allowed",
        ),
        (
            &[
                "--set-json",
                r#"alertTargets=[{"name":"a","type":"Slack","secretName":"s","url":"https://hooks"}]"#,
            ],
            "additional properties 'url' not allowed",
        ),
        (
            &["--set", "leaderElection.enabled=false"],
            "replicas > 1 needs leaderElection.enabled",
        ),
        (
            &["--set", "metrics.serviceMonitor.enabled=true"],
            "metrics.serviceMonitor.enabled needs metrics.service.enabled",
        ),
        (
            &[
                "--set",
                "podDisruptionBudget.enabled=true,podDisruptionBudget.minAvailable=1",
            ],
            "exactly one of maxUnavailable and minAvailable",
        ),
        (
            &["--set", "serviceAccount.create=false"],
            "serviceAccount.name is required",
        ),
        // A selector label from podLabels/commonLabels would make the pods
        // stop matching their Deployment's selector.
        (
            &[
                "--set-json",
                r#"podLabels={"app.kubernetes.io/instance":"y"}"#,
            ],
            "invalid propertyName 'app.kubernetes.io/instance'",
        ),
        (
            &[
                "--set-json",
                r#"commonLabels={"app.kubernetes.io/name":"x"}"#,
            ],
            "invalid propertyName 'app.kubernetes.io/name'",
        ),
    ] {
        match template("sluice", "sluice-system", set) {
            Ok(_) => panic!("helm template {set:?} succeeded"),
            Err(stderr) => assert!(
                stderr.contains(error),
                "helm template {set:?}: wanted {error:?} in:\n{stderr}"
            ),
        }
    }
}

#[test]
fn the_image_tag_defaults_to_the_app_version_and_a_digest_overrides_it() {
    let version = env!("CARGO_PKG_VERSION");
    let default = rendered("sluice", "sluice-system", &[]);
    assert_eq!(
        image(&default),
        format!("ghcr.io/sluice-dev/sluice:{version}")
    );
    let tagged = rendered(
        "sluice",
        "sluice-system",
        &["--set", "image.tag=0.2.0-rc.1"],
    );
    assert_eq!(image(&tagged), "ghcr.io/sluice-dev/sluice:0.2.0-rc.1");
    let digest = format!("sha256:{}", "ab".repeat(32));
    let pinned = rendered(
        "sluice",
        "sluice-system",
        &[
            "--set",
            "image.tag=0.2.0",
            "--set",
            &format!("image.digest={digest}"),
            "--set",
            "image.repository=registry.example/sluice",
        ],
    );
    assert_eq!(image(&pinned), format!("registry.example/sluice@{digest}"));
}

#[test]
fn two_releases_share_no_object_and_select_only_their_own_pods() {
    let a = rendered("team-a", "shared", &["--set", "watchNamespaces={a}"]);
    let b = rendered("team-b", "shared", &["--set", "watchNamespaces={b}"]);
    let crds = |k: &&Key| k.1 == "CustomResourceDefinition";
    let a_keys: Vec<&Key> = a.keys().filter(|k| !crds(k)).collect();
    assert!(a_keys.iter().all(|k| !b.contains_key(*k)), "{a_keys:?}");
    for key in &a_keys {
        assert!(key.3.starts_with("team-a-sluice-"), "{key:?}");
    }
    let spec = &deployment(&a)["spec"];
    assert_eq!(
        spec["selector"]["matchLabels"],
        serde_json::json!({"app.kubernetes.io/name": "sluice", "app.kubernetes.io/instance": "team-a"})
    );
    assert!(
        args(&a)
            .windows(2)
            .any(|w| w == ["--lease-name", "team-a-sluice-controller"])
    );
    // A release whose name says sluice keeps it as the base.
    let named = rendered("sluice-payments", "payments", &[]);
    assert!(named.contains_key(&(
        "rbac.authorization.k8s.io/v1".into(),
        "ClusterRole".into(),
        String::new(),
        "sluice-payments-controller".into()
    )));
}

#[test]
fn an_alertmanager_cluster_target_renders_with_its_labels_and_interval() {
    let objects = rendered(
        "sluice",
        "sluice-system",
        &[
            "--set-json",
            r#"alertTargets=[{"name":"am","type":"Alertmanager","secretName":"alertmanager","labels":{"cluster":"eu-1"},"resendInterval":"30s","allowedNamespaces":["*"]}]"#,
        ],
    );
    let target = of_kind(&objects, "ClusterAlertTarget")[0];
    assert_eq!(target["spec"]["type"], "Alertmanager");
    assert_eq!(target["spec"]["labels"]["cluster"], "eu-1");
    assert_eq!(target["spec"]["resendInterval"], "30s");
    assert_eq!(target["spec"]["secretNamespace"], "sluice-system");
}

#[test]
fn optional_objects_render_and_name_secrets_only() {
    let objects = rendered(
        "sluice",
        "sluice-system",
        &[
            "--set",
            "metrics.service.enabled=true,metrics.serviceMonitor.enabled=true,podDisruptionBudget.enabled=true",
            "--set",
            "replicas=1,leaderElection.enabled=false",
            "--set-json",
            r#"gitRepositories=[{"name":"gitops","url":"https://git.example/gitops.git","secretName":"gitops-credentials","allowedNamespaces":["*"]}]"#,
            "--set-json",
            r#"alertTargets=[{"name":"oncall","type":"PagerDuty","secretName":"pagerduty"}]"#,
            "--set-json",
            r#"extraEnv=[{"name":"RUST_LOG","value":"debug"}]"#,
            "--set",
            "extraArgs={--concurrency,16}",
        ],
    );
    for kind in [
        "Service",
        "ServiceMonitor",
        "PodDisruptionBudget",
        "ClusterGitRepository",
        "ClusterAlertTarget",
    ] {
        assert_eq!(of_kind(&objects, kind).len(), 1, "{kind}");
    }
    let service = of_kind(&objects, "Service")[0];
    assert_eq!(
        service["spec"]["selector"],
        serde_json::json!({"app.kubernetes.io/name": "sluice"})
    );
    let repo = of_kind(&objects, "ClusterGitRepository")[0];
    assert_eq!(repo["spec"]["secretName"], "gitops-credentials");
    assert_eq!(repo["spec"]["secretNamespace"], "sluice-system");
    let target = of_kind(&objects, "ClusterAlertTarget")[0];
    assert_eq!(target["spec"]["secretNamespace"], "sluice-system");
    assert_eq!(
        args(&objects),
        [
            "controller",
            "--log-format",
            "json",
            "--no-leader-election",
            "--concurrency",
            "16"
        ]
    );
    assert_eq!(
        deployment(&objects)["spec"]["template"]["spec"]["containers"][0]["env"][4],
        serde_json::json!({"name": "RUST_LOG", "value": "debug"})
    );
}

#[test]
fn chart_crds_are_identical_to_crds() {
    let listed = std::fs::read_to_string(root().join("crds/kustomization.yaml"))
        .expect("crds/kustomization.yaml");
    let listed: Value = serde_yaml_ng::from_str(&listed).expect("kustomization");
    let mut want: Vec<String> = listed["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("file name").to_string())
        .collect();
    want.sort();
    let mut have: Vec<String> = std::fs::read_dir(chart().join("crds"))
        .expect("charts/sluice/crds")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    have.sort();
    let fix = "cp crds/*.sluice.dev.yaml charts/sluice/crds/";
    assert_eq!(
        have, want,
        "charts/sluice/crds/ lists other files than crds/ ({fix})"
    );
    for file in want {
        let a = std::fs::read(root().join("crds").join(&file)).expect("crd");
        let b = std::fs::read(chart().join("crds").join(&file)).expect("chart crd");
        assert!(
            a == b,
            "charts/sluice/crds/{file} differs from crds/{file} ({fix})"
        );
    }
}

#[test]
fn chart_version_follows_cargo() {
    let text = std::fs::read_to_string(chart().join("Chart.yaml")).expect("Chart.yaml");
    let chart: Value = serde_yaml_ng::from_str(&text).expect("Chart.yaml");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["version"], version);
    assert_eq!(chart["appVersion"], version);
    assert_eq!(chart["apiVersion"], "v2");
}

/// `metricEgress` becomes the controller's fence flags, which the real binary
/// accepts; null keeps the binary's default list, [] clears it.
#[test]
fn metric_egress_values_become_flags_the_controller_accepts() {
    let controller_accepts = |args: &[String]| {
        let mut full: Vec<&str> = args.iter().map(String::as_str).collect();
        full.push("--help");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&full)
            .output()
            .expect("run sluice");
        assert!(
            out.status.success(),
            "{full:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let fence = |args: &[String]| -> Vec<String> {
        args.iter()
            .filter(|a| a.starts_with("--metric-"))
            .cloned()
            .collect()
    };
    let default = args(&rendered("sluice", "sluice-system", &[]));
    assert!(fence(&default).is_empty(), "{default:?}");
    let set = args(&rendered(
        "sluice",
        "sluice-system",
        &[
            "--set-json",
            r#"metricEgress={"denyCIDRs":["169.254.0.0/16","10.0.0.0/8"],"allowCIDRs":["10.96.0.0/12"]}"#,
        ],
    ));
    assert_eq!(
        fence(&set),
        [
            "--metric-deny-cidr=169.254.0.0/16,10.0.0.0/8",
            "--metric-allow-cidr=10.96.0.0/12"
        ]
    );
    controller_accepts(&set);
    let cleared = args(&rendered(
        "sluice",
        "sluice-system",
        &["--set-json", r#"metricEgress={"denyCIDRs":[]}"#],
    ));
    assert_eq!(fence(&cleared), ["--metric-deny-cidr"]);
    controller_accepts(&cleared);
    let refused = template(
        "sluice",
        "sluice-system",
        &[
            "--set-json",
            r#"metricEgress={"allowCIDRs":["everything"]}"#,
        ],
    )
    .expect_err("not a range");
    assert!(refused.contains("allowCIDRs"), "{refused}");
}
