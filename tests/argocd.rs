//! The Argo CD integration without a cluster: every fixture the end-to-end
//! suite captured from a live Rollout or AnalysisRun is replayed through the
//! real Lua interpreters (lua5.4, and lua5.1 when installed) against the
//! results listed in `health_test.yaml` and `actions/action_test.yaml`; the
//! discovery agrees with the CLI's own "nothing to do" rules; kstatus (Flux)
//! reads the same fixtures as documented; and `argocd-cm.yaml` is exactly the
//! `.lua` files, also once `kubectl kustomize` has applied it as a patch.

#[path = "common/argocd_lua.rs"]
mod argocd_lua;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use argocd_lua as lua;
use serde_json::Value;
use sluice::cli::rollout::{Verb, nothing_to_do};
use sluice::crd::RolloutStatus;

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixtures(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".yaml"))
                .collect()
        })
        .unwrap_or_default()
}

/// kstatus's reading of a Rollout with this Argo CD health, as the README states it.
fn flux_reading(argo: &str, obj: &Value) -> &'static str {
    match (argo, obj.get("status").is_some()) {
        (_, false) => "Current",
        ("Healthy", _) => "Current",
        ("Degraded", _) => "Failed",
        _ => "InProgress",
    }
}

#[test]
fn every_captured_object_has_the_health_listed_for_it() {
    for (kind, least) in [("Rollout", 8), ("AnalysisRun", 2)] {
        let dir = lua::customizations().join(kind);
        let list = read_yaml(&dir.join("health_test.yaml"));
        let tests = list["tests"].as_array().cloned().unwrap_or_default();
        assert!(
            tests.len() >= least,
            "{kind}: {} fixtures listed",
            tests.len()
        );
        let listed: BTreeSet<String> = tests
            .iter()
            .filter_map(|t| t["inputPath"].as_str())
            .map(|p| p.trim_start_matches("testdata/").to_string())
            .collect();
        assert_eq!(
            listed,
            fixtures(&dir.join("testdata")),
            "{kind}: every fixture is listed once"
        );
        let mut seen = BTreeSet::new();
        for test in &tests {
            let path = dir.join(test["inputPath"].as_str().unwrap_or_default());
            let obj = read_yaml(&path);
            assert!(
                obj["metadata"].get("managedFields").is_none(),
                "{}: managedFields stripped",
                path.display()
            );
            let (status, message) = lua::health(kind, &obj);
            assert_eq!(status, test["healthStatus"]["status"], "{}", path.display());
            assert_eq!(
                message,
                test["healthStatus"]["message"],
                "{}",
                path.display()
            );
            if kind == "Rollout" {
                assert_eq!(
                    lua::kstatus(&obj),
                    flux_reading(&status, &obj),
                    "kstatus of {}",
                    path.display()
                );
            }
            seen.insert(status);
        }
        if kind == "Rollout" {
            let all: BTreeSet<String> = ["Healthy", "Progressing", "Suspended", "Degraded"]
                .map(String::from)
                .into();
            assert_eq!(seen, all, "the Rollout fixtures cover every health status");
        }
    }
}

#[test]
fn discovery_and_actions_give_what_action_test_yaml_lists() {
    let dir = lua::customizations().join("Rollout/actions");
    let list = read_yaml(&dir.join("action_test.yaml"));
    let discovery = list["discoveryTests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!discovery.is_empty());
    for test in &discovery {
        let obj = read_yaml(&dir.join(test["inputPath"].as_str().unwrap_or_default()));
        let actions = lua::run(&dir.join("discovery.lua"), &obj);
        let expected = test["result"].as_array().cloned().unwrap_or_default();
        assert_eq!(expected.len(), lua::ACTIONS.len(), "{}", test["inputPath"]);
        for entry in expected {
            let name = entry["name"].as_str().unwrap_or_default();
            let got = &actions[name];
            assert_eq!(
                got["disabled"], entry["disabled"],
                "{name} on {}",
                test["inputPath"]
            );
            assert_eq!(
                got["iconClass"], entry["iconClass"],
                "{name} on {}",
                test["inputPath"]
            );
        }
    }
    let tests = list["actionTests"].as_array().cloned().unwrap_or_default();
    let covered: BTreeSet<&str> = tests.iter().filter_map(|t| t["action"].as_str()).collect();
    assert_eq!(
        covered,
        lua::ACTIONS.into(),
        "every action has a test on a live object"
    );
    for test in &tests {
        let action = test["action"].as_str().unwrap_or_default();
        let input = read_yaml(&dir.join(test["inputPath"].as_str().unwrap_or_default()));
        let expected =
            read_yaml(&dir.join(test["expectedOutputPath"].as_str().unwrap_or_default()));
        let output = lua::action(action, &input);
        assert_eq!(output, expected, "{action} on {}", test["inputPath"]);
        // What changed, said independently of the recorded output.
        let patch = lua::merge_patch(&input, &output);
        let rv = input["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        let token = Value::from(format!("argocd-{rv}"));
        let want = match action {
            "pause" => serde_json::json!({"sluice.dev/paused": "true"}),
            "resume" => serde_json::json!({"sluice.dev/paused": null}),
            other => serde_json::json!({ format!("sluice.dev/{other}"): token }),
        };
        assert_eq!(
            patch,
            serde_json::json!({"metadata": {"annotations": want}}),
            "{action} on {}",
            test["inputPath"]
        );
    }
}

#[test]
fn discovery_offers_exactly_what_the_cli_would_act_on() {
    let dir = lua::customizations().join("Rollout/testdata");
    for name in fixtures(&dir) {
        let obj = read_yaml(&dir.join(&name));
        let status: Option<RolloutStatus> = obj
            .get("status")
            .map(|s| serde_json::from_value(s.clone()).expect("a Sluice status"));
        let disabled = lua::discovery(&obj);
        let verb = |kind: &str| {
            let name = "x".to_string();
            match kind {
                "promote" => Verb::Promote { name, full: false },
                "promote-full" => Verb::Promote { name, full: true },
                "abort" => Verb::Abort {
                    name,
                    revert: false,
                    no_revert: false,
                },
                _ => Verb::Retry { name },
            }
        };
        for action in ["promote", "promote-full", "abort", "retry"] {
            let cli_refuses = nothing_to_do(&verb(action), status.as_ref()).is_some();
            assert_eq!(
                disabled.get(action),
                Some(&cli_refuses),
                "{action} on {name}"
            );
        }
        let paused = obj["metadata"]["annotations"]["sluice.dev/paused"] == "true";
        assert_eq!(disabled.get("resume"), Some(&!paused), "resume on {name}");
    }
}

fn literal(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    text.lines()
        .map(|line| {
            if line.is_empty() {
                "\n".to_string()
            } else {
                format!("{pad}{line}\n")
            }
        })
        .collect()
}

fn lua_file(relative: &str) -> String {
    let path = lua::customizations().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `argocd-cm.yaml` as it must be: the `.lua` files, verbatim, under Argo CD's keys.
fn render_argocd_cm() -> String {
    let mut out = String::from(
        "# Generated from resource_customizations/sluice.dev/**/*.lua by tests/argocd.rs;\n\
         # do not edit (SLUICE_UPDATE_ARGOCD_CM=1 cargo test --test argocd rewrites it).\n\
         # A strategic-merge patch for Argo CD's ConfigMap argocd-cm: see kustomization.yaml.\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd # where Argo CD runs\ndata:\n",
    );
    for kind in ["Rollout", "AnalysisRun"] {
        out.push_str(&format!(
            "  resource.customizations.health.sluice.dev_{kind}: |\n"
        ));
        out.push_str(&literal(&lua_file(&format!("{kind}/health.lua")), 4));
    }
    out.push_str("  resource.customizations.actions.sluice.dev_Rollout: |\n    discovery.lua: |\n");
    out.push_str(&literal(&lua_file("Rollout/actions/discovery.lua"), 6));
    out.push_str("    definitions:\n");
    for action in lua::ACTIONS {
        out.push_str(&format!("      - name: {action}\n        action.lua: |\n"));
        out.push_str(&literal(
            &lua_file(&format!("Rollout/actions/{action}/action.lua")),
            10,
        ));
    }
    out
}

fn argocd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/argocd")
}

/// The keys of a parsed argocd-cm `data` hold the `.lua` files byte for byte.
fn assert_data_is_the_lua_files(data: &Value, origin: &str) {
    for kind in ["Rollout", "AnalysisRun"] {
        let key = format!("resource.customizations.health.sluice.dev_{kind}");
        assert_eq!(
            data[&key],
            lua_file(&format!("{kind}/health.lua")),
            "{origin}: {key}"
        );
    }
    let actions: Value = serde_yaml_ng::from_str(
        data["resource.customizations.actions.sluice.dev_Rollout"]
            .as_str()
            .unwrap_or_default(),
    )
    .expect("the actions value is YAML");
    assert_eq!(
        actions["discovery.lua"],
        lua_file("Rollout/actions/discovery.lua"),
        "{origin}"
    );
    let definitions = actions["definitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = definitions
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, lua::ACTIONS, "{origin}");
    for d in &definitions {
        let name = d["name"].as_str().unwrap_or_default();
        assert_eq!(
            d["action.lua"],
            lua_file(&format!("Rollout/actions/{name}/action.lua")),
            "{origin}: {name}"
        );
    }
}

#[test]
fn argocd_cm_is_the_lua_files_byte_for_byte() {
    let path = argocd_dir().join("argocd-cm.yaml");
    let expected = render_argocd_cm();
    if std::env::var("SLUICE_UPDATE_ARGOCD_CM").as_deref() == Ok("1") {
        std::fs::write(&path, &expected).expect("write argocd-cm.yaml");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{} is stale: run SLUICE_UPDATE_ARGOCD_CM=1 cargo test --test argocd",
        path.display()
    );
    let parsed = read_yaml(&path);
    assert_data_is_the_lua_files(&parsed["data"], "argocd-cm.yaml");
}

/// A kubectl with kustomize built in: the test stack's, else the one on PATH.
fn kubectl() -> Option<PathBuf> {
    let cached =
        std::env::var_os("SLUICE_CLUSTER_CACHE").map(|c| PathBuf::from(c).join("bin/kubectl"));
    cached.filter(|p| p.exists()).or_else(|| {
        Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| PathBuf::from("kubectl"))
    })
}

#[test]
fn the_kustomize_patch_adds_the_scripts_and_keeps_existing_settings() {
    let Some(kubectl) = kubectl() else {
        eprintln!("SKIPPED: no kubectl (with kustomize) here");
        return;
    };
    // The shipped kustomization points at Argo CD's install.yaml online; here
    // the same patch goes onto a stand-in argocd-cm holding a setting of its own.
    let shipped = read_yaml(&argocd_dir().join("kustomization.yaml"));
    assert_eq!(shipped["patches"][0]["path"], "argocd-cm.yaml");
    let dir = std::env::temp_dir().join(format!("sluice-argocd-kustomize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::copy(
        argocd_dir().join("argocd-cm.yaml"),
        dir.join("argocd-cm.yaml"),
    )
    .expect("copy patch");
    std::fs::write(
        dir.join("base.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\ndata:\n  url: https://argocd.example.com\n",
    )
    .expect("base");
    std::fs::write(
        dir.join("kustomization.yaml"),
        "resources: [base.yaml]\npatches:\n  - path: argocd-cm.yaml\n",
    )
    .expect("kustomization");
    let out = Command::new(&kubectl)
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("run kubectl kustomize");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built: Value = serde_yaml_ng::from_slice(&out.stdout).expect("kustomize output");
    assert_eq!(built["data"]["url"], "https://argocd.example.com");
    assert_eq!(built["metadata"]["namespace"], "argocd");
    assert_data_is_the_lua_files(&built["data"], "kustomize output");
}

#[test]
fn the_scripts_stay_within_lua_5_1() {
    // gopher-lua is Lua 5.1: no integer division, bit operators or goto.
    let mut scripts = vec![
        lua::health_script("Rollout"),
        lua::health_script("AnalysisRun"),
    ];
    scripts.push(lua::customizations().join("Rollout/actions/discovery.lua"));
    scripts.extend(lua::ACTIONS.map(lua::action_script));
    let method_call = regex::Regex::new(r"[\w)\]]:\w+\s*\(").expect("regex");
    for script in scripts {
        let text = std::fs::read_to_string(&script).expect("script");
        // Nor the libraries Argo CD leaves closed for argocd-cm scripts
        // (string methods included: `s:find(...)` needs the string library).
        for line in text.lines() {
            let code = line.split("--").next().unwrap_or_default();
            for banned in [
                "//", "goto ", "<<", ">>", " & ", " | ", "::", "string.", "math.", "io.", "debug.",
            ] {
                assert!(
                    !code.contains(banned),
                    "{}: `{banned}` in {line}",
                    script.display()
                );
            }
            assert!(
                !method_call.is_match(code),
                "{}: a method call in {line}",
                script.display()
            );
        }
        if let Ok(out) = Command::new("luac5.1").arg("-p").arg(&script).output() {
            assert!(
                out.status.success(),
                "luac5.1 -p {}: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Build `tests/argocd-gopher-lua` (gopher-lua set up as Argo CD sets it up),
/// if Go is here; the binary's path.
fn gopher_lua() -> Option<PathBuf> {
    let go_here = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !go_here {
        return None;
    }
    let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).join("argocd-gopher-lua");
    let mut child = Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/argocd-gopher-lua"))
        .spawn()
        .expect("start go build");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                assert!(
                    status.success(),
                    "go build of tests/argocd-gopher-lua failed"
                );
                return Some(binary);
            }
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            _ => {
                let _ = child.kill();
                panic!("go build of tests/argocd-gopher-lua took over 5 minutes");
            }
        }
    }
}

/// Run `script` on `obj` with Argo CD's interpreter.
fn run_gopher(binary: &Path, script: &Path, obj: &Value) -> Value {
    let input = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "argocd-object-{}-{:?}.json",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&input, obj.to_string()).expect("write object");
    let out = Command::new(binary)
        .arg(script)
        .arg(&input)
        .output()
        .expect("run argocd-gopher-lua");
    let _ = std::fs::remove_file(&input);
    assert!(
        out.status.success(),
        "gopher-lua on {}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from argocd-gopher-lua")
}

#[test]
fn argo_cds_own_interpreter_gives_the_listed_results() {
    let Some(binary) = gopher_lua() else {
        eprintln!("SKIPPED: no Go toolchain to build gopher-lua");
        return;
    };
    let mut runs = 0;
    for kind in ["Rollout", "AnalysisRun"] {
        let dir = lua::customizations().join(kind);
        let list = read_yaml(&dir.join("health_test.yaml"));
        for test in list["tests"].as_array().cloned().unwrap_or_default() {
            let path = dir.join(test["inputPath"].as_str().unwrap_or_default());
            let hs = run_gopher(&binary, &lua::health_script(kind), &read_yaml(&path));
            assert_eq!(hs, test["healthStatus"], "{}", path.display());
            runs += 1;
        }
    }
    let dir = lua::customizations().join("Rollout/actions");
    let list = read_yaml(&dir.join("action_test.yaml"));
    for test in list["discoveryTests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let obj = read_yaml(&dir.join(test["inputPath"].as_str().unwrap_or_default()));
        let actions = run_gopher(&binary, &dir.join("discovery.lua"), &obj);
        for entry in test["result"].as_array().cloned().unwrap_or_default() {
            let name = entry["name"].as_str().unwrap_or_default();
            assert_eq!(
                actions[name]["disabled"], entry["disabled"],
                "{name} on {}",
                test["inputPath"]
            );
        }
        runs += 1;
    }
    for test in list["actionTests"].as_array().cloned().unwrap_or_default() {
        let action = test["action"].as_str().unwrap_or_default();
        let input = read_yaml(&dir.join(test["inputPath"].as_str().unwrap_or_default()));
        let expected =
            read_yaml(&dir.join(test["expectedOutputPath"].as_str().unwrap_or_default()));
        let output = run_gopher(&binary, &lua::action_script(action), &input);
        // Argo CD patches with the difference; compare that, as numbers come
        // back from gopher-lua as floats.
        assert_eq!(
            lua::merge_patch(&input, &output),
            lua::merge_patch(&input, &expected),
            "{action} on {}",
            test["inputPath"]
        );
        runs += 1;
    }
    eprintln!("gopher-lua (Argo CD's interpreter, Argo CD's libraries): {runs} script runs agree");
}
