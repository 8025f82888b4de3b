//! The `sluice` binary as users meet it, without a cluster: the kubectl plugin
//! name, help with examples on every command, completion scripts, man pages,
//! and a quiet end when the reader of its output goes away.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use clap::CommandFactory;
use sluice::cli::Cli;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run sluice")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every command path below the root, e.g. `["rollout", "status"]`.
fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_string());
            walk(sub, &path, out);
            out.push(path);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &[], &mut out);
    assert!(out.len() >= 12, "{out:?}");
    out
}

/// A temporary directory with `kubectl-sluice` linked to the built binary, as it is installed.
fn plugin_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let link = dir.path().join("kubectl-sluice");
    std::os::unix::fs::symlink(SLUICE, &link).expect("symlink kubectl-sluice");
    (dir, link)
}

#[test]
fn as_kubectl_sluice_the_usage_says_kubectl_sluice() {
    let (_dir, plugin) = plugin_dir();
    let help = run(&plugin, &["--help"]);
    assert!(help.status.success());
    assert!(
        stdout(&help).contains("Usage: kubectl sluice [OPTIONS] <COMMAND>"),
        "{}",
        stdout(&help)
    );
    let status = run(&plugin, &["rollout", "status", "--help"]);
    assert!(
        stdout(&status).contains("Usage: kubectl sluice rollout status"),
        "{}",
        stdout(&status)
    );
    // Errors too.
    let typo = run(&plugin, &["rollout", "stat"]);
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert_eq!(typo.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("Usage: kubectl sluice rollout"), "{stderr}");
    // Called by its own name, it is `sluice`.
    let plain = run(SLUICE, &["--help"]);
    assert!(stdout(&plain).contains("Usage: sluice [OPTIONS] <COMMAND>"));
}

/// kubectl from the test cluster's cache, or on PATH.
fn kubectl() -> Option<PathBuf> {
    let cached = std::env::var_os("SLUICE_CLUSTER_CACHE")
        .map(|dir| Path::new(&dir).join("bin/kubectl"))
        .filter(|p| p.exists());
    cached.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("kubectl"))
                .find(|p| p.exists())
        })
    })
}

#[test]
fn kubectl_finds_and_runs_the_plugin() {
    let Some(kubectl) = kubectl() else {
        eprintln!("no kubectl (set SLUICE_CLUSTER_CACHE): skipping the plugin discovery check");
        return;
    };
    let (dir, _plugin) = plugin_dir();
    let path = std::env::join_paths(
        std::iter::once(dir.path().to_path_buf()).chain(
            std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .unwrap_or_default(),
        ),
    )
    .expect("PATH");
    let out = Command::new(&kubectl)
        .args(["sluice", "--version"])
        .env("PATH", &path)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version = stdout(&out);
    assert!(
        version.starts_with(&format!("sluice {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let list = Command::new(&kubectl)
        .args(["plugin", "list"])
        .env("PATH", &path)
        .output()
        .expect("kubectl plugin list");
    assert!(
        stdout(&list).contains("kubectl-sluice"),
        "{}",
        stdout(&list)
    );
    let help = Command::new(&kubectl)
        .args(["sluice", "rollout", "--help"])
        .env("PATH", &path)
        .output()
        .expect("kubectl sluice rollout --help");
    assert!(
        stdout(&help).contains("Usage: kubectl sluice rollout"),
        "{}",
        stdout(&help)
    );
}

#[test]
fn every_command_has_an_example_in_its_help() {
    let mut paths = command_paths();
    paths.push(Vec::new());
    for path in paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = run(SLUICE, &args);
        assert!(out.status.success(), "{args:?}");
        let text = stdout(&out);
        assert!(
            text.contains("\nExample"),
            "{args:?} has no example:\n{text}"
        );
    }
}

#[test]
fn the_bash_completion_is_valid_bash_and_knows_the_commands() {
    let out = run(SLUICE, &["completion", "bash"]);
    assert!(out.status.success());
    let script = stdout(&out);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("sluice.bash");
    std::fs::write(&file, &script).expect("write script");
    let check = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash -n");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for path in command_paths() {
        let name = path.last().expect("a name");
        assert!(script.contains(name.as_str()), "{name} missing");
    }
    assert!(script.contains("complete -F _sluice"), "{script}");
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = run(SLUICE, &["completion", shell]);
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    // As the plugin, the script completes `kubectl-sluice`.
    let (_dir, plugin) = plugin_dir();
    let plugin_script = stdout(&run(&plugin, &["completion", "bash"]));
    assert!(plugin_script.contains("kubectl-sluice"), "{plugin_script}");
}

#[test]
fn the_man_page_names_every_command() {
    let out = run(SLUICE, &["man"]);
    assert!(out.status.success());
    let page = stdout(&out);
    assert!(page.contains(".TH sluice 1"), "{page}");
    for path in command_paths() {
        let name = format!("sluice {}", path.join(" "));
        assert!(page.contains(&name), "{name} missing from the man page");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out_dir = dir.path().join("man1");
    let out_dir_text = out_dir.to_string_lossy().into_owned();
    let written = run(SLUICE, &["man", "--out-dir", &out_dir_text]);
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    let mut expected = vec!["sluice.1".to_string()];
    expected.extend(
        command_paths()
            .iter()
            .map(|p| format!("sluice-{}.1", p.join("-"))),
    );
    for file in expected {
        let text =
            std::fs::read_to_string(out_dir.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(text.contains(".TH"), "{file}");
    }
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    let mut child = Command::new(SLUICE)
        .arg("crds")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sluice crds");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("read a line");
    assert_eq!(first, "---\n");
    // The reader is gone (as `| head -1`): the CRDs are far more than a pipe holds.
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr piped")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_controller_follows_kubeconfig_and_context_and_names_a_missing_context() {
    // A context that is not in the kubeconfig is an error naming it, never a
    // quiet fall-back to whichever cluster KUBECONFIG or the pod points at.
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: here\n  cluster: {server: 'https://127.0.0.1:1'}\n\
         users:\n- name: me\n  user: {token: t}\ncontexts:\n- name: here\n  context: {cluster: here, user: me}\n\
         current-context: here\n",
    )
    .expect("kubeconfig");
    let path = kubeconfig.display().to_string();
    let out = run(
        SLUICE,
        &[
            "--kubeconfig",
            &path,
            "controller",
            "--context",
            "elsewhere",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("elsewhere"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
