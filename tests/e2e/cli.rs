//! The CLI picks its cluster and namespace as kubectl does: the kubeconfig
//! (`KUBECONFIG` or `--kubeconfig`), its current context or `--context`, and
//! that context's namespace unless `-n` says otherwise.

use std::path::{Path, PathBuf};
use std::process::Output;

use kube::{Api, ResourceExt};
use sluice::crd::Rollout;

use super::harness::{apply_yaml, cluster, namespace};
use super::support::{apply_example, fresh_namespace};

/// The admin kubeconfig with contexts `a` (current) and `b`, on namespaces `ns_a` and `ns_b`.
fn two_context_kubeconfig(dir: &Path, ns_a: &str, ns_b: &str) -> PathBuf {
    let text = std::fs::read_to_string(&cluster().info.kubeconfig).expect("admin kubeconfig");
    let mut config: serde_json::Value = serde_yaml_ng::from_str(&text).expect("kubeconfig yaml");
    let context = config["contexts"][0]["context"].clone();
    let with_ns = |ns: &str| {
        let mut c = context.clone();
        c["namespace"] = ns.into();
        c
    };
    config["contexts"] = serde_json::json!([
        {"name": "a", "context": with_ns(ns_a)},
        {"name": "b", "context": with_ns(ns_b)},
    ]);
    config["current-context"] = "a".into();
    let path = dir.join("config");
    std::fs::write(
        &path,
        serde_yaml_ng::to_string(&config).expect("kubeconfig yaml"),
    )
    .expect("write kubeconfig");
    path
}

/// Run sluice with `KUBECONFIG` set to `kubeconfig` (or unset) and an empty
/// HOME, so that nothing else can be the configuration.
fn sluice(home: &Path, kubeconfig: Option<&Path>, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG");
    if let Some(path) = kubeconfig {
        command.env("KUBECONFIG", path);
    }
    command.output().expect("run sluice")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn the_cli_uses_the_kubeconfig_context_and_its_namespace() {
    let (admin, ns_a) = fresh_namespace("cli-a").await;
    let ns_b = namespace(&admin, "cli-b").await;
    for ns in [&ns_a, &ns_b] {
        apply_example(&admin, ns, "gateway-canary/rollout.yaml", |_| {}).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let config = two_context_kubeconfig(dir.path(), &ns_a, &ns_b);
    let path = config.to_string_lossy().into_owned();
    let shows = |ns: &str| format!("Rollout web (namespace {ns})");

    // (KUBECONFIG, arguments, namespace whose Rollout is shown)
    let cases: [(Option<&Path>, Vec<&str>, &str); 6] = [
        (Some(&config), vec!["rollout", "status", "web"], &ns_a),
        (
            Some(&config),
            vec!["--context", "b", "rollout", "status", "web"],
            &ns_b,
        ),
        // Global flags also after the subcommand.
        (
            Some(&config),
            vec!["rollout", "status", "web", "--context", "b"],
            &ns_b,
        ),
        (
            None,
            vec!["--kubeconfig", &path, "rollout", "status", "web"],
            &ns_a,
        ),
        (
            None,
            vec![
                "--kubeconfig",
                &path,
                "--context",
                "b",
                "rollout",
                "status",
                "web",
            ],
            &ns_b,
        ),
        // -n wins over the context's namespace.
        (
            Some(&config),
            vec!["--context", "b", "rollout", "status", "web", "-n", &ns_a],
            &ns_a,
        ),
    ];
    for (kubeconfig, args, expected) in cases {
        let out = sluice(&home, kubeconfig, &args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&shows(expected)),
            "{args:?}: {}",
            text(&out)
        );
    }

    // Without any kubeconfig there is no cluster, and it says so.
    let none = sluice(&home, None, &["rollout", "status", "web"]);
    assert_eq!(none.status.code(), Some(1), "{}", text(&none));
    assert!(!text(&none).contains("panicked"), "{}", text(&none));

    // A control acts on the Rollout of the chosen context only.
    let pause = sluice(
        &home,
        None,
        &[
            "--kubeconfig",
            &path,
            "--context",
            "b",
            "rollout",
            "pause",
            "web",
        ],
    );
    assert!(pause.status.success(), "{}", text(&pause));
    let paused = |ns: String| {
        let admin = admin.clone();
        async move {
            Api::<Rollout>::namespaced(admin, &ns)
                .get("web")
                .await
                .expect("rollout")
                .annotations()
                .get("sluice.dev/paused")
                .cloned()
        }
    };
    assert_eq!(paused(ns_b.clone()).await.as_deref(), Some("true"));
    assert_eq!(paused(ns_a.clone()).await, None);

    // analyze --template reads the template from the context's namespace.
    let template = std::fs::read_to_string(
        super::harness::repo_root().join("analysis-templates/error-rate-vs-baseline.yaml"),
    )
    .expect("template")
    .replace("kind: ClusterAnalysisTemplate", "kind: AnalysisTemplate")
    .replace("http://prometheus.monitoring:9090", "http://127.0.0.1:9");
    apply_yaml(&admin, &ns_b, &template).await;
    let analyze = |context: &'static str| {
        sluice(
            &home,
            Some(&config),
            &[
                "--context",
                context,
                "analyze",
                "--template",
                "error-rate-vs-baseline",
                "--canary",
                "c",
                "--baseline",
                "s",
                "--rollout",
                "web",
                "--since",
                "1m",
            ],
        )
    };
    let found = analyze("b");
    assert!(
        String::from_utf8_lossy(&found.stdout).contains("template error-rate-vs-baseline:"),
        "{}",
        text(&found)
    );
    let missing = analyze("a");
    assert!(
        text(&missing).contains("cannot read the template from the cluster"),
        "{}",
        text(&missing)
    );
}
