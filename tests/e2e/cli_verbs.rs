//! The kubectl-style everyday verbs against the real API server and
//! controller: `list -A`, `get` (tree, `-o json`, `--watch` into a pipe),
//! `status -o yaml`, `set image`, and `undo` by a spec patch and through Git.

use std::process::Output;
use std::time::Duration;

use serde_json::json;
use sluice::cli::tree::CURRENT_MARK;
use sluice::crd::{Rollout, RolloutPhase};
use sluice::engine::controls;

use super::harness::{ControllerProcess, cluster, namespace, repo_root};
use super::support::{GitOps, annotate, apply_example, fresh_namespace, speed_up, wait_phase};

const SETTLE: Duration = Duration::from_secs(90);
const OLD: &str = "registry.example.com/api:2.4.0";
const NEW: &str = "registry.example.com/api:2.5.0";

/// Run sluice with the admin kubeconfig; bounded by the API calls it makes.
fn sluice(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("KUBECONFIG", &cluster().info.kubeconfig)
        .output()
        .expect("run sluice")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let out = sluice(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_of(args: &[&str]) -> serde_json::Value {
    let stdout = ok(args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

#[tokio::test]
async fn list_get_set_image_and_undo_work_on_a_live_rollout() {
    let (admin, ns) = fresh_namespace("verbs-a").await;
    let other = namespace(&admin, "verbs-b").await;
    let _controller = ControllerProcess::start(
        &cluster().info.kubeconfig,
        &ns,
        "verbs",
        &["--no-leader-election"],
    );
    for namespace in [&ns, &other] {
        apply_example(&admin, namespace, "replica-ratio/services.yaml", |_| {}).await;
        apply_example(&admin, namespace, "replica-ratio/rollout.yaml", |doc| {
            doc["spec"]["strategy"]["canary"]["steps"] =
                json!([{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]);
        })
        .await;
    }
    let first = wait_phase(&admin, &ns, "api", RolloutPhase::Healthy, SETTLE).await;
    let original = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable revision");

    // list -A: both namespaces; only the one with a controller is reconciled.
    let table = ok(&["rollout", "list", "-A"]);
    let row = |namespace: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(namespace))
            .unwrap_or_else(|| panic!("no row for {namespace}:\n{table}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert!(table.starts_with("NAMESPACE"), "{table}");
    assert_eq!(row(&ns)[1..5], ["api", "Canary", "Healthy", "-"], "{table}");
    assert_eq!(row(&ns)[6], OLD, "{table}");
    assert_eq!(row(&other)[3], "Unknown", "{table}");
    let listed = json_of(&["rollout", "list", "-n", &other, "-o", "json"]);
    assert_eq!(listed["kind"], "List");
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(listed["items"][0]["metadata"]["namespace"], other.as_str());

    // set image starts a new revision that the controller canaries.
    let set = ok(&[
        "rollout",
        "set",
        "image",
        "api",
        "-n",
        &ns,
        &format!("api={NEW}"),
    ]);
    assert!(set.contains("pod template images set"), "{set}");
    let paused = wait_phase(&admin, &ns, "api", RolloutPhase::Paused, SETTLE).await;
    let status = paused.status.unwrap_or_default();
    let canary = status.canary_revision.clone().expect("canary revision");
    assert_eq!(status.canary_images, [NEW]);

    // get: the tree with the current step marked, and the same as JSON.
    let tree = ok(&["rollout", "get", "api", "-n", &ns]);
    let marked: Vec<&str> = tree.lines().filter(|l| l.contains(CURRENT_MARK)).collect();
    assert_eq!(marked.len(), 1, "{tree}");
    assert!(marked[0].contains("2/4 pause (until promoted)"), "{tree}");
    assert!(
        tree.contains(&format!("{canary} (canary) [{NEW}]")),
        "{tree}"
    );
    assert!(
        tree.contains(&format!("{original} (stable) [{OLD}]")),
        "{tree}"
    );
    assert!(
        tree.contains(&format!("ReplicaSet api-{canary}  2/2 ready")),
        "{tree}"
    );
    assert!(tree.contains("Running (ready)"), "{tree}");
    let got = json_of(&["rollout", "get", "api", "-n", &ns, "-o", "json"]);
    assert_eq!(got["revisions"][0]["hash"], canary.as_str(), "{got}");
    assert_eq!(got["revisions"][0]["images"], json!([NEW]), "{got}");
    assert_eq!(got["revisions"][0]["roles"], json!(["canary"]), "{got}");
    assert_eq!(
        got["revisions"][0]["pods"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(got["revisions"][1]["images"], json!([OLD]), "{got}");
    assert_eq!(got["steps"][1]["state"], "current", "{got}");
    let live: Rollout =
        serde_yaml_ng::from_str(&ok(&["rollout", "status", "api", "-n", &ns, "-o", "yaml"]))
            .expect("status -o yaml is a Rollout");
    assert_eq!(
        live.status.map(|s| s.canary_images),
        Some(vec![NEW.to_string()])
    );

    // get --watch into a pipe: snapshots without escape codes, ended by --timeout.
    let started = std::time::Instant::now();
    let watched = ok(&[
        "rollout",
        "get",
        "api",
        "-n",
        &ns,
        "--watch",
        "--timeout",
        "3s",
    ]);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        watched.contains(CURRENT_MARK) && !watched.contains('\x1b'),
        "{watched}"
    );
    // On a terminal (a pty from util-linux `script`, a Debian base package):
    // each redraw clears the screen first, and the 2 s redraws repeat.
    let command = format!(
        "{} rollout get api -n {ns} --watch --timeout 5s",
        env!("CARGO_BIN_EXE_sluice")
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("KUBECONFIG", &cluster().info.kubeconfig)
        .output()
        .expect("run script");
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{}", text(&tty));
    let redraws = screen.matches("\x1b[H\x1b[2J").count();
    assert!(redraws >= 2, "{redraws} redraws: {screen:?}");

    // Clear errors, nothing changed.
    let bad = sluice(&["rollout", "set", "image", "api", "-n", &ns, "sidecar=x:1"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad).contains("no container \"sidecar\" (it has: api)"),
        "{}",
        text(&bad)
    );
    let nowhere = sluice(&["rollout", "undo", "api", "-n", &ns, "--to-revision", "99"]);
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(
        text(&nowhere).contains("there is no revision 99 (revisions: 1, 2)"),
        "{}",
        text(&nowhere)
    );
    assert!(!text(&bad).contains("panicked") && !text(&nowhere).contains("panicked"));

    // Promote the new image, then undo: the old template comes back exactly
    // (the same revision hash, its ReplicaSet reused) and is canaried.
    annotate(&admin, &ns, "api", controls::PROMOTE_FULL, "f1").await;
    let promoted = wait_phase(&admin, &ns, "api", RolloutPhase::Healthy, SETTLE).await;
    assert_eq!(
        promoted.status.and_then(|s| s.stable_revision),
        Some(canary.clone())
    );
    let undo = ok(&["rollout", "undo", "api", "-n", &ns]);
    assert!(undo.contains("undone by a spec patch"), "{undo}");
    assert!(
        undo.contains(&format!("ReplicaSet api-{original} is used again")),
        "{undo}"
    );
    let back = wait_phase(&admin, &ns, "api", RolloutPhase::Paused, SETTLE).await;
    let status = back.status.unwrap_or_default();
    assert_eq!(status.canary_revision.as_deref(), Some(original.as_str()));
    assert_eq!(status.canary_images, [OLD]);
    assert_eq!(status.stable_images, [NEW]);
}

/// With `spec.git`, `undo` reverts the commit that brought the current
/// image, and the GitOps sync brings the old revision back as itself.
#[tokio::test]
async fn undo_with_spec_git_reverts_the_image_commit() {
    let (admin, ns) = fresh_namespace("verbs-git").await;
    let _controller = ControllerProcess::start(
        &cluster().info.kubeconfig,
        &ns,
        "verbs-git",
        &["--no-leader-election"],
    );
    let example = |file: &str| {
        std::fs::read_to_string(repo_root().join("examples/gateway-canary").join(file))
            .expect("example")
    };
    let mut manifest: serde_json::Value =
        serde_yaml_ng::from_str(&example("rollout.yaml")).expect("yaml");
    speed_up(&mut manifest);
    manifest["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 20}, {"pause": {}}]);
    let bare = cluster()
        .info
        .data_dir
        .join(format!("git-{ns}"))
        .join("apps.git");
    manifest["spec"]["git"] = json!({"repository": bare.display().to_string(), "path": "apps/web"});
    let gitops = GitOps::start(
        &ns,
        &[
            ("services.yaml", example("services.yaml")),
            ("httproute.yaml", example("httproute.yaml")),
            (
                "rollout.yaml",
                serde_yaml_ng::to_string(&manifest).expect("yaml"),
            ),
        ],
    );
    let first = wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;
    let original = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable revision");
    let bump = gitops.bump("rollout.yaml", "web:1.0.0", "web:1.0.1", "web 1.0.1");
    wait_phase(&admin, &ns, "web", RolloutPhase::Paused, SETTLE).await;
    annotate(&admin, &ns, "web", controls::PROMOTE_FULL, "f1").await;
    wait_phase(&admin, &ns, "web", RolloutPhase::Healthy, SETTLE).await;

    let undo = ok(&["rollout", "undo", "web", "-n", &ns]);
    assert!(undo.contains("undone through Git"), "{undo}");
    assert!(undo.contains(&format!("reverts commit {bump}")), "{undo}");
    assert_eq!(
        gitops.reverts_of(&bump),
        1,
        "one revert commit on the branch"
    );
    // The sync applies the revert: the old revision is canaried again, as itself.
    let back = wait_phase(&admin, &ns, "web", RolloutPhase::Paused, SETTLE).await;
    let status = back.status.unwrap_or_default();
    assert_eq!(status.canary_revision.as_deref(), Some(original.as_str()));
    assert_eq!(status.canary_images, ["registry.example.com/web:1.0.0"]);
}
