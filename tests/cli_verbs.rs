//! The everyday verbs without a cluster: `sluice lint` on files and
//! standard input, `-o` and flag parsing, and what their help says.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(SLUICE)
        .args(args)
        .env_remove("KUBECONFIG")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sluice");
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or_default().as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("sluice output")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every YAML file under `dir`.
fn yaml_under(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path.display().to_string());
        }
    }
}

#[test]
fn the_shipped_examples_and_templates_lint_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    yaml_under(&root.join("examples"), &mut files);
    yaml_under(&root.join("analysis-templates"), &mut files);
    let args: Vec<&str> = std::iter::once("lint")
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = run(&args, None);
    assert!(out.status.success(), "{}", text(&out));
    let summary = String::from_utf8_lossy(&out.stdout);
    let checked: usize = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(checked >= 15, "{summary}");
}

const BAD: &str = "apiVersion: v1
kind: Service
metadata:
  name: web-stable
---
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 10
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: other
    spec:
      containers:
        - name: web
          image: web:1
  strategy:
    canary:
      steps:
        - setWeight: 50
        - pause: {duration: 1 minute}
        - setWeight: 20
";

#[test]
fn lint_names_file_line_and_column_and_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, BAD).expect("write");
    let name = file.display().to_string();
    let out = run(&["lint", &name], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let expected = [
        format!(
            "{name}:12:3: Rollout web: spec.selector app=web does not match the template labels"
        ),
        // Flow style: the nearest key, `pause`; admission's duration rule.
        format!(
            "{name}:27:11: Rollout web: spec.strategy.canary.steps[1].pause.duration: \"1 minute\": duration must look like 30s, 5m or 1h30m"
        ),
        format!("{name}:28:11: Rollout web: steps[2].setWeight 20 is lower than the earlier 50"),
    ];
    assert_eq!(lines.len(), expected.len(), "{stdout}");
    for (line, start) in lines.iter().zip(&expected) {
        assert!(line.starts_with(start.as_str()), "{line}\nexpected {start}");
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("sluice: 3 problem(s) found"));

    // The same from standard input.
    let piped = run(&["lint", "-"], Some(BAD));
    assert_eq!(piped.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&piped.stdout).starts_with("<stdin>:12:3: Rollout web:"),
        "{}",
        text(&piped)
    );
    // A missing file is a clear error, not a panic.
    let missing = run(&["lint", "/nonexistent/rollout.yaml"], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing).contains("cannot read /nonexistent/rollout.yaml"));
    assert!(!text(&missing).contains("panicked"));
}

#[test]
fn output_flags_are_checked_before_any_cluster_is_asked() {
    // (arguments, what the error names); none reaches for a kubeconfig.
    let cases: [(&[&str], &str); 5] = [
        (
            &["rollout", "list", "-o", "xml"],
            "possible values: text, json, yaml",
        ),
        (&["rollout", "get", "web", "--timeout", "5s"], "--watch"),
        (
            &["rollout", "status", "web", "--watch", "-o", "json"],
            "cannot be used with",
        ),
        (&["rollout", "set", "image", "web"], "CONTAINER=IMAGE"),
        (
            &["rollout", "undo", "web", "--to-revision", "two"],
            "invalid value 'two'",
        ),
    ];
    for (args, says) in cases {
        let out = run(args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    // A pair without `=` is a usage error too.
    let pair = run(&["rollout", "set", "image", "web", "web:2"], None);
    assert_eq!(pair.status.code(), Some(2), "{}", text(&pair));
    assert!(
        text(&pair).contains("\"web:2\" is not CONTAINER=IMAGE"),
        "{}",
        text(&pair)
    );
}

#[test]
fn help_says_what_git_means_for_set_image_and_undo() {
    let set = run(&["rollout", "set", "image", "--help"], None);
    let set = String::from_utf8_lossy(&set.stdout).into_owned();
    assert!(
        set.contains("Git") && set.contains("source of truth"),
        "{set}"
    );
    assert!(set.contains("sluice rollout set image web web=registry.example.com/web:1.4.2"));
    let undo = run(&["rollout", "undo", "--help"], None);
    let undo = String::from_utf8_lossy(&undo.stdout).into_owned();
    assert!(
        undo.contains("spec.git") && undo.contains("--spec-patch"),
        "{undo}"
    );
    let get = run(&["rollout", "get", "--help"], None);
    assert!(String::from_utf8_lossy(&get.stdout).contains("--watch --timeout 10m"));
}
