//! Locating and reverting the canary's commit in a large repository.
//!
//! `cargo bench --bench git_revert` builds (once, cached under
//! `target/bench-git/`) a bare repository with 100,000 commits over 10,000
//! files, where the image bump sits 1,000 commits below the head, then
//! times in one run:
//! - Sluice's `revert` from a cold workspace (it fetches the whole history),
//! - Sluice's `revert` from a warm workspace (an incremental fetch, as in a
//!   running controller),
//! - the same revert by hand with the CLI, told the commit to revert:
//!   `git clone --no-local`, `git revert`, `git push` (cold) and `git revert`,
//!   `git push` in an up-to-date clone (warm).
//!
//! Between runs the branch is reset to its original head.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sluice::revert::{Identity, RevertOutcome, RevertRequest, Target, revert};

const COMMITS: usize = 100_000;
const FILES: usize = 10_000;
const BUMP_BELOW_HEAD: usize = 1_000;
const STABLE: &str = "registry.example.com/web:1.0.1";
const CANARY: &str = "registry.example.com/web:1.0.2";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Bench",
            "-c",
            "user.email=bench@example.com",
        ])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn manifest(image: &str) -> String {
    format!(
        "kind: Rollout\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: {image}\n"
    )
}

/// The bare repository, built once with `git fast-import` and repacked with
/// bitmaps, as a Git host keeps it.
fn repository(root: &Path) -> PathBuf {
    let bare = root.join(format!("repo-{COMMITS}-{FILES}.git"));
    if bare.join("refs/heads/main").exists() || bare.join("packed-refs").exists() {
        return bare;
    }
    let started = Instant::now();
    std::fs::create_dir_all(root).expect("root");
    let _ = std::fs::remove_dir_all(&bare);
    git(
        root,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            bare.to_str().expect("utf-8"),
        ],
    );
    let mut import = Command::new("git")
        .arg("--git-dir")
        .arg(&bare)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("fast-import");
    let mut stream = std::io::BufWriter::new(import.stdin.take().expect("stdin"));
    let mut commit = |n: usize, message: &str, files: &[(String, String)]| {
        let mut out = format!(
            "commit refs/heads/main\nmark :{n}\ncommitter CI <ci@example.com> {} +0000\ndata {}\n{message}\n",
            1_700_000_000 + n,
            message.len()
        );
        if n > 1 {
            out.push_str(&format!("from :{}\n", n - 1));
        }
        for (path, text) in files {
            out.push_str(&format!(
                "M 100644 inline {path}\ndata {}\n{text}\n",
                text.len()
            ));
        }
        stream.write_all(out.as_bytes()).expect("write");
    };
    let mut initial: Vec<(String, String)> = (0..FILES - 1)
        .map(|i| {
            (
                format!("services/s{:04}/config.yaml", i),
                format!("version: 0\nid: {i}\n"),
            )
        })
        .collect();
    initial.push(("apps/web/rollout.yaml".into(), manifest(STABLE)));
    commit(1, "initial", &initial);
    let bump_at = COMMITS - BUMP_BELOW_HEAD;
    for n in 2..=COMMITS {
        if n == bump_at {
            commit(
                n,
                "web 1.0.2",
                &[("apps/web/rollout.yaml".into(), manifest(CANARY))],
            );
        } else {
            let i = (n * 7919) % (FILES - 1);
            commit(
                n,
                &format!("service s{i:04}: version {n}"),
                &[(
                    format!("services/s{i:04}/config.yaml"),
                    format!("version: {n}\nid: {i}\n"),
                )],
            );
        }
    }
    drop(stream);
    assert!(import.wait().expect("fast-import").success());
    git(&bare, &["repack", "-adq", "--write-bitmap-index"]);
    eprintln!(
        "built {} in {:.1} s",
        bare.display(),
        started.elapsed().as_secs_f64()
    );
    bare
}

fn request(bare: &Path, workspace: &Path) -> RevertRequest {
    RevertRequest {
        target: Target {
            url: bare.display().to_string(),
            branch: "main".into(),
            path: "apps/web".into(),
        },
        rollout: "bench/web".into(),
        canary_image: CANARY.into(),
        stable_image: STABLE.into(),
        reason: "benchmark".into(),
        identity: Identity {
            name: "Sluice".into(),
            email: "sluice@example.com".into(),
        },
        workspace: workspace.to_path_buf(),
        attempts: 3,
        git_env: Vec::new(),
        pull_request: None,
    }
}

fn seconds(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-git");
    let bare = repository(&root);
    let head = git(&bare, &["rev-parse", "main"]);
    let bump = git(
        &bare,
        &[
            "log",
            "--format=%H",
            "-n",
            "1",
            "--grep=^web 1.0.2$",
            "main",
        ],
    );
    let reset = || git(&bare, &["update-ref", "refs/heads/main", &head]);
    println!("# cargo bench --bench git_revert");
    println!(
        "{COMMITS} commits, {FILES} files, the bump {BUMP_BELOW_HEAD} commits below the head\n"
    );

    let workspace = root.join("workspace");
    let _ = std::fs::remove_dir_all(&workspace);
    let started = Instant::now();
    let outcome = revert(&request(&bare, &workspace)).await.expect("revert");
    let sluice_cold = seconds(started);
    assert!(
        matches!(outcome, RevertOutcome::Reverted { ref reverted, .. } if *reverted == bump),
        "{outcome:?}"
    );
    reset();
    let mut sluice_warm = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let outcome = revert(&request(&bare, &workspace)).await.expect("revert");
        sluice_warm.push(seconds(started));
        assert!(
            matches!(outcome, RevertOutcome::Reverted { .. }),
            "{outcome:?}"
        );
        reset();
    }

    let clone = root.join("cli-clone");
    let _ = std::fs::remove_dir_all(&clone);
    let started = Instant::now();
    git(
        &root,
        &[
            "clone",
            "-q",
            // Transfer objects as from a server, as Sluice's fetch does (not hard links).
            "--no-local",
            bare.to_str().expect("utf-8"),
            clone.to_str().expect("utf-8"),
        ],
    );
    git(&clone, &["revert", "--no-edit", &bump]);
    git(&clone, &["push", "-q", "origin", "HEAD:main"]);
    let cli_cold = seconds(started);
    reset();
    let mut cli_warm = Vec::new();
    for _ in 0..3 {
        git(&clone, &["fetch", "-q", "origin"]);
        git(&clone, &["reset", "-q", "--hard", "origin/main"]);
        let started = Instant::now();
        git(&clone, &["revert", "--no-edit", &bump]);
        git(&clone, &["push", "-q", "origin", "HEAD:main"]);
        cli_warm.push(seconds(started));
        reset();
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (sw, cw) = (median(&mut sluice_warm), median(&mut cli_warm));
    println!("| | cold (fetches the history) | warm (median of 3) |");
    println!("|---|---|---|");
    println!("| Sluice: find the commit, revert, push | {sluice_cold:.2} s | {sw:.2} s |");
    println!(
        "| git CLI, told the commit: revert, push (cold: + clone --no-local) | {cli_cold:.2} s | {cw:.2} s |"
    );
    println!(
        "| ratio Sluice / CLI | {:.1} | {:.1} |",
        sluice_cold / cli_cold,
        sw / cw
    );
}
