//! The Git revert against real repositories: local bare repositories driven
//! by the real `git`, with hooks standing in for a busy or protected branch.

use std::path::{Path, PathBuf};
use std::process::Command;

use sluice::revert::{Identity, RevertOutcome, RevertRequest, Target, revert, revert_with};

const STABLE: &str = "registry.example.com/web:1.0.1";
const CANARY: &str = "registry.example.com/web:1.0.2";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
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

struct Repo {
    root: PathBuf,
    bare: PathBuf,
    clone: PathBuf,
}

impl Repo {
    fn new(name: &str) -> Repo {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let root =
            std::env::temp_dir().join(format!("sluice-git-{}-{name}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&root).expect("root");
        git(&root, &["init", "-q", "--bare", "-b", "main", "repo.git"]);
        git(&root, &["clone", "-q", "repo.git", "clone"]);
        Repo {
            bare: root.join("repo.git"),
            clone: root.join("clone"),
            root,
        }
    }

    /// Commit files (path, content) as CI would, and push; returns the commit.
    fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, text) in files {
            let file = self.clone.join(path);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("dirs");
            std::fs::write(file, text).expect("write");
        }
        git(&self.clone, &["add", "-A"]);
        git(&self.clone, &["commit", "-q", "-m", message]);
        git(&self.clone, &["push", "-q", "origin", "main"]);
        git(&self.clone, &["rev-parse", "HEAD"])
    }

    fn request(&self, path: &str) -> RevertRequest {
        RevertRequest {
            target: Target {
                url: self.bare.display().to_string(),
                branch: "main".into(),
                path: path.into(),
            },
            rollout: "shop/web".into(),
            canary_image: CANARY.into(),
            stable_image: STABLE.into(),
            reason: "analysis web-abc-2 Failed: canary 7.54% vs baseline 0.51% errors".into(),
            identity: Identity {
                name: "Sluice".into(),
                email: "sluice@example.com".into(),
            },
            workspace: self.root.join("workspace"),
            attempts: 4,
            git_env: Vec::new(),
            pull_request: None,
        }
    }

    fn head_file(&self, file: &str) -> String {
        git(&self.bare, &["show", &format!("main:{file}")])
    }

    fn head_message(&self) -> String {
        git(&self.bare, &["log", "-1", "--format=%B", "main"])
    }

    fn count_reverts_of(&self, sha: &str) -> usize {
        git(
            &self.bare,
            &[
                "log",
                "--format=%H",
                &format!("--grep=^Sluice-Reverts: {sha}$"),
                "main",
            ],
        )
        .lines()
        .count()
    }

    fn hook(&self, script: &str) {
        let path = self.bare.join("hooks/pre-receive");
        std::fs::write(&path, script).expect("hook");
        Command::new("chmod")
            .arg("+x")
            .arg(&path)
            .status()
            .expect("chmod");
    }
}

fn manifest(image: &str) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata:\n  name: web\nspec:\n  replicas: 4\n  template:\n    spec:\n      containers:\n        - name: web\n          image: {image}\n"
    )
}

#[tokio::test]
async fn a_plain_manifest_bump_is_reverted_with_trailers() {
    let repo = Repo::new("plain");
    repo.commit(&[("apps/web/rollout.yaml", &manifest(STABLE))], "web 1.0.1");
    let bump = repo.commit(&[("apps/web/rollout.yaml", &manifest(CANARY))], "web 1.0.2");
    let outcome = revert(&repo.request("apps/web")).await.expect("revert");
    let RevertOutcome::Reverted {
        reverted,
        fallback,
        bundled,
        revert: sha,
        pull_request: None,
    } = outcome
    else {
        panic!("expected a revert, got {outcome:?}");
    };
    assert_eq!(reverted, bump);
    assert!(!fallback && bundled.is_empty());
    assert_eq!(git(&repo.bare, &["rev-parse", "main"]), sha, "pushed");
    assert_eq!(
        repo.head_file("apps/web/rollout.yaml"),
        manifest(STABLE).trim_end()
    );
    let message = repo.head_message();
    assert!(message.starts_with("Revert \"web 1.0.2\""), "{message}");
    assert!(
        message.contains("canary 7.54% vs baseline 0.51%"),
        "{message}"
    );
    assert!(
        message.contains(&format!("Sluice-Reverts: {bump}")),
        "{message}"
    );
    assert!(message.contains("Sluice-Rollout: shop/web"), "{message}");
    assert_eq!(
        git(&repo.bare, &["log", "-1", "--format=%an <%ae>", "main"]),
        "Sluice <sluice@example.com>"
    );
}

#[tokio::test]
async fn kustomize_and_helm_bumps_are_reverted() {
    let repo = Repo::new("kustomize-helm");
    let kustomization = |tag: &str| {
        format!(
            "resources:\n  - rollout.yaml\nimages:\n  - name: registry.example.com/web\n    newTag: \"{tag}\"\n"
        )
    };
    let values = |tag: &str| {
        format!("image:\n  repository: registry.example.com/web\n  tag: {tag}\nreplicas: 4\n")
    };
    repo.commit(
        &[
            ("kustomize/web/kustomization.yaml", &kustomization("1.0.1")),
            (
                "kustomize/web/rollout.yaml",
                &manifest("registry.example.com/web"),
            ),
            ("helm/web/values.yaml", &values("1.0.1")),
        ],
        "initial",
    );
    repo.commit(
        &[("kustomize/web/kustomization.yaml", &kustomization("1.0.2"))],
        "kustomize: web 1.0.2",
    );
    repo.commit(
        &[("helm/web/values.yaml", &values("1.0.2"))],
        "helm: web 1.0.2",
    );
    for path in ["kustomize/web", "helm/web"] {
        let outcome = revert(&repo.request(path)).await.expect("revert");
        assert!(
            matches!(
                outcome,
                RevertOutcome::Reverted {
                    fallback: false,
                    ..
                }
            ),
            "{path}: {outcome:?}"
        );
    }
    assert_eq!(
        repo.head_file("kustomize/web/kustomization.yaml"),
        kustomization("1.0.1").trim_end()
    );
    assert_eq!(
        repo.head_file("helm/web/values.yaml"),
        values("1.0.1").trim_end()
    );
}

#[tokio::test]
async fn a_bundled_commit_is_reverted_whole_and_the_message_says_so() {
    let repo = Repo::new("bundled");
    repo.commit(
        &[
            ("apps/web/rollout.yaml", &manifest(STABLE)),
            ("CHANGELOG.md", "1.0.1\n"),
        ],
        "web 1.0.1",
    );
    repo.commit(
        &[
            ("apps/web/rollout.yaml", &manifest(CANARY)),
            ("CHANGELOG.md", "1.0.2\n1.0.1\n"),
        ],
        "release 1.0.2",
    );
    let outcome = revert(&repo.request("apps/web")).await.expect("revert");
    let RevertOutcome::Reverted { bundled, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(bundled, vec!["CHANGELOG.md".to_string()]);
    assert_eq!(repo.head_file("CHANGELOG.md"), "1.0.1");
    assert!(repo.head_message().contains("also changed CHANGELOG.md"));
}

#[tokio::test]
async fn a_conflicting_later_change_falls_back_to_setting_the_image_back() {
    let repo = Repo::new("conflict");
    repo.commit(&[("apps/web/rollout.yaml", &manifest(STABLE))], "web 1.0.1");
    let bump = repo.commit(&[("apps/web/rollout.yaml", &manifest(CANARY))], "web 1.0.2");
    // Someone edits the same line afterwards: a plain revert cannot apply.
    let edited = manifest(CANARY).replace(CANARY, &format!("{CANARY} # pinned for the launch"));
    repo.commit(&[("apps/web/rollout.yaml", &edited)], "comment the image");
    let outcome = revert(&repo.request("apps/web")).await.expect("revert");
    assert!(
        matches!(outcome, RevertOutcome::Reverted { fallback: true, ref reverted, .. } if *reverted == bump),
        "{outcome:?}"
    );
    assert_eq!(
        repo.head_file("apps/web/rollout.yaml"),
        edited.replace(CANARY, STABLE).trim_end(),
        "only the image changed; the comment stays"
    );
    assert!(
        repo.head_message()
            .contains("conflicted with later changes")
    );
    assert_eq!(repo.count_reverts_of(&bump), 1);
}

#[tokio::test]
async fn a_branch_that_moves_during_the_push_is_retried_without_dropping_the_other_commit() {
    let repo = Repo::new("moving");
    repo.commit(
        &[
            ("apps/web/rollout.yaml", &manifest(STABLE)),
            ("other/app.yaml", "v: 1\n"),
        ],
        "start",
    );
    let bump = repo.commit(&[("apps/web/rollout.yaml", &manifest(CANARY))], "web 1.0.2");
    // While the first push is being received, a teammate's commit lands on
    // main: the push loses the race (the ref is no longer where it was).
    repo.hook(
        r#"#!/bin/sh
if [ -e moved ]; then exit 0; fi
touch moved
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
tree=$(git rev-parse main^{tree})
commit=$(echo "teammate's change" | git -c user.name=Tea -c user.email=t@example.com commit-tree "$tree" -p main)
git update-ref refs/heads/main "$commit"
exit 0
"#,
    );
    let outcome = revert(&repo.request("apps/web"))
        .await
        .expect("revert after a retry");
    assert!(
        matches!(outcome, RevertOutcome::Reverted { .. }),
        "{outcome:?}"
    );
    let log = git(&repo.bare, &["log", "--format=%s", "main"]);
    assert!(
        log.contains("teammate's change"),
        "the other commit stays: {log}"
    );
    assert_eq!(repo.count_reverts_of(&bump), 1);
    assert_eq!(
        repo.head_file("apps/web/rollout.yaml"),
        manifest(STABLE).trim_end()
    );
}

#[tokio::test]
async fn a_revert_is_pushed_exactly_once_across_a_failed_push_and_reruns() {
    let repo = Repo::new("once");
    repo.commit(&[("apps/web/rollout.yaml", &manifest(STABLE))], "web 1.0.1");
    let bump = repo.commit(&[("apps/web/rollout.yaml", &manifest(CANARY))], "web 1.0.2");
    // A protected branch: every push is declined and the branch does not move.
    repo.hook("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n");
    let error = revert(&repo.request("apps/web"))
        .await
        .expect_err("declined");
    assert!(error.to_string().contains("protected branch"), "{error}");
    assert_eq!(
        repo.count_reverts_of(&bump),
        0,
        "the local commit never reached the remote"
    );
    // The controller restarts; the branch is open again.
    std::fs::remove_file(repo.bare.join("hooks/pre-receive")).expect("unhook");
    let first = revert(&repo.request("apps/web")).await.expect("revert");
    let RevertOutcome::Reverted { revert: sha, .. } = first else {
        panic!("{first:?}");
    };
    let again = revert(&repo.request("apps/web")).await.expect("rerun");
    assert_eq!(
        again,
        RevertOutcome::AlreadyReverted {
            reverted: bump.clone(),
            revert: sha,
            pull_request: None
        }
    );
    assert_eq!(repo.count_reverts_of(&bump), 1);
}

#[tokio::test]
async fn nothing_is_reverted_when_git_already_moved_on() {
    let repo = Repo::new("moved-on");
    repo.commit(&[("apps/web/rollout.yaml", &manifest(STABLE))], "web 1.0.1");
    repo.commit(&[("apps/web/rollout.yaml", &manifest(CANARY))], "web 1.0.2");
    repo.commit(
        &[(
            "apps/web/rollout.yaml",
            &manifest("registry.example.com/web:1.0.3"),
        )],
        "web 1.0.3",
    );
    let outcome = revert(&repo.request("apps/web")).await.expect("look");
    assert!(
        matches!(outcome, RevertOutcome::NotNeeded { .. }),
        "{outcome:?}"
    );
    assert!(
        repo.head_file("apps/web/rollout.yaml").contains("1.0.3"),
        "a newer release is left alone"
    );
}

#[tokio::test]
async fn unreachable_repositories_and_missing_paths_are_clear_errors() {
    let repo = Repo::new("errors");
    repo.commit(&[("apps/web/rollout.yaml", &manifest(CANARY))], "web 1.0.2");
    let mut request = repo.request("apps/web");
    request.target.url = repo.root.join("no-such-repo.git").display().to_string();
    let error = revert(&request).await.expect_err("unreachable");
    assert!(error.to_string().contains("git fetch failed"), "{error}");
    let error = revert(&repo.request("apps/api"))
        .await
        .expect_err("missing path");
    assert!(
        error
            .to_string()
            .contains("path \"apps/api\" does not exist"),
        "{error}"
    );
}

// ---- Transports: SSH (a real sshd) and smart HTTP (git http-backend) ----

use std::collections::BTreeMap;
use std::time::Duration;

use sluice::revert::credentials::git_env;

#[path = "common/sshd.rs"]
mod sshd;
use sshd::{keygen, start_sshd, user};

#[tokio::test]
async fn over_ssh_a_good_key_reverts_and_a_wrong_key_or_unknown_host_is_a_clear_error() {
    let repo = Repo::new("ssh");
    repo.commit(&[("apps/web/rollout.yaml", &manifest(STABLE))], "web 1.0.1");
    let bump = repo.commit(&[("apps/web/rollout.yaml", &manifest(CANARY))], "web 1.0.2");
    let sshd = start_sshd(&repo.root);
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        user(),
        sshd.port,
        repo.bare.display()
    );
    let secret = |key: &[u8], known_hosts: &str| {
        BTreeMap::from([
            ("ssh-privatekey".to_string(), key.to_vec()),
            ("known_hosts".to_string(), known_hosts.as_bytes().to_vec()),
        ])
    };
    let attempt = |data: BTreeMap<String, Vec<u8>>, name: &str| {
        let mut request = repo.request("apps/web");
        request.target.url = url.clone();
        request.workspace = repo.root.join(format!("workspace-{name}"));
        // The key files live as long as the credentials do.
        let credentials = git_env(&data, &repo.root.join(format!("keys-{name}"))).expect("env");
        request.git_env = credentials.env.clone();
        (request, credentials)
    };

    let (request, _keys) = attempt(secret(&sshd.other_key, &sshd.known_hosts), "wrong");
    let wrong_key = revert(&request).await;
    let message = wrong_key.expect_err("a key sshd does not know").to_string();
    assert!(message.contains("Permission denied"), "{message}");
    let (request, _keys) = attempt(secret(&sshd.user_key, ""), "unknown");
    let unknown_host = revert(&request).await;
    let message = unknown_host
        .expect_err("strict host-key checking")
        .to_string();
    assert!(
        message.contains("Host key verification failed"),
        "{message}"
    );
    assert_eq!(repo.count_reverts_of(&bump), 0);

    let (request, _keys) = attempt(secret(&sshd.user_key, &sshd.known_hosts), "good");
    let outcome = revert(&request).await.expect("revert over SSH");
    assert!(
        matches!(outcome, RevertOutcome::Reverted { .. }),
        "{outcome:?}"
    );
    assert_eq!(repo.count_reverts_of(&bump), 1);
}

#[derive(Clone)]
struct SmartHttp {
    project_root: PathBuf,
    user: &'static str,
    expected: String,
}

/// One request to `git http-backend`, as a CGI gateway does it.
async fn smart_http(
    axum::extract::State(state): axum::extract::State<SmartHttp>,
    request: axum::http::Request<axum::body::Body>,
) -> axum::http::Response<axum::body::Body> {
    use axum::body::{Body, to_bytes};
    use axum::http::{Response, StatusCode};
    // Read what is needed before any await: a borrowed request (its body is not Sync) cannot cross one.
    let (authorization, content_type, encoding) = {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        (
            header("authorization"),
            header("content-type"),
            header("content-encoding"),
        )
    };
    if authorization != state.expected {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("WWW-Authenticate", "Basic realm=\"git\"")
            .body(Body::from("authentication required"))
            .unwrap_or_default();
    }
    let method = request.method().to_string();
    let path = request.uri().path().trim_start_matches("/git").to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let body = to_bytes(request.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let Ok(mut child) = tokio::process::Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", &state.project_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", content_type)
        .env("HTTP_CONTENT_ENCODING", encoding)
        .env("REMOTE_USER", state.user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        return Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::empty())
            .unwrap_or_default();
    };
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&body).await;
    }
    let raw = match child.wait_with_output().await {
        Ok(out) => out.stdout,
        Err(_) => Vec::new(),
    };
    // CGI: headers, a blank line, the body.
    let (at, gap) = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .unwrap_or((raw.len(), 0));
    let head = String::from_utf8_lossy(&raw[..at]).to_string();
    let mut response = Response::builder();
    for line in head.lines() {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("status") {
                let code: u16 = value
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(200);
                response = response.status(code);
            } else {
                response = response.header(name, value);
            }
        }
    }
    response
        .body(Body::from(raw[(at + gap).min(raw.len())..].to_vec()))
        .unwrap_or_default()
}

/// `git http-backend` behind a local server with basic auth: smart HTTP as Git hosts serve it.
async fn serve_smart_http(
    project_root: PathBuf,
    user: &'static str,
    password: &'static str,
) -> (u16, tokio::task::JoinHandle<()>) {
    use base64::Engine;
    let state = SmartHttp {
        project_root,
        user,
        expected: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        ),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let app = axum::Router::new().fallback(smart_http).with_state(state);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, server)
}

#[tokio::test]
async fn over_smart_http_a_good_token_reverts_and_a_wrong_one_is_a_clear_error() {
    let repo = Repo::new("http");
    repo.commit(&[("apps/web/rollout.yaml", &manifest(STABLE))], "web 1.0.1");
    let bump = repo.commit(&[("apps/web/rollout.yaml", &manifest(CANARY))], "web 1.0.2");
    let (port, server) = serve_smart_http(repo.root.clone(), "sluice", "t0ken").await;
    let url = format!("http://127.0.0.1:{port}/git/repo.git");
    let attempt = |password: &str, name: &str| {
        let data = BTreeMap::from([
            ("username".to_string(), b"sluice".to_vec()),
            ("password".to_string(), password.as_bytes().to_vec()),
        ]);
        let mut request = repo.request("apps/web");
        request.target.url = url.clone();
        request.workspace = repo.root.join(format!("workspace-{name}"));
        request.git_env = git_env(&data, &repo.root.join("keys")).expect("env").env;
        request
    };
    let denied = revert(&attempt("wrong", "wrong"))
        .await
        .expect_err("bad token");
    let message = denied.to_string();
    assert!(
        message.contains("401") || message.contains("Authentication failed"),
        "{message}"
    );
    let outcome = revert(&attempt("t0ken", "good"))
        .await
        .expect("revert over HTTP");
    assert!(
        matches!(outcome, RevertOutcome::Reverted { .. }),
        "{outcome:?}"
    );
    assert_eq!(repo.count_reverts_of(&bump), 1);
    assert!(!message.contains("t0ken"), "the token is never in an error");
    server.abort();
}

// ---- Pull-request mode against a local forge that records what it is asked ----

use sluice::revert::pull_request::{Provider, PullRequestSettings};

#[derive(Clone, Default)]
struct Forge {
    created: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    auth: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

async fn forge(
    axum::extract::State(forge): axum::extract::State<Forge>,
    request: axum::http::Request<axum::body::Body>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let auth = ["authorization", "private-token"]
        .iter()
        .filter_map(|h| request.headers().get(*h).and_then(|v| v.to_str().ok()))
        .map(str::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    if let Ok(mut seen) = forge.auth.lock() {
        seen.push(auth);
    }
    let Ok(mut created) = forge.created.lock() else {
        return json_answer(serde_json::json!([]));
    };
    if method == axum::http::Method::POST {
        let mut pr: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let url = format!("https://forge.example.com{path}/{}", created.len() + 1);
        pr["html_url"] = serde_json::json!(url);
        pr["web_url"] = serde_json::json!(url);
        let head = pr
            .get("head")
            .cloned()
            .or(pr.get("source_branch").cloned())
            .unwrap_or_default();
        pr["head"] = serde_json::json!({"ref": head});
        created.push(pr.clone());
        return json_answer(pr);
    }
    json_answer(serde_json::Value::Array(created.clone()))
}

fn json_answer(value: serde_json::Value) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
}

#[tokio::test]
async fn pull_request_mode_opens_one_request_per_revert_on_github_gitlab_and_gitea() {
    let state = Forge::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let app = axum::Router::new()
        .fallback(forge)
        .with_state(state.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    for (provider, expected_auth) in [
        (Provider::GitHub, "Bearer s3cret"),
        (Provider::GitLab, "s3cret"),
        (Provider::Gitea, "token s3cret"),
    ] {
        if let (Ok(mut created), Ok(mut auth)) = (state.created.lock(), state.auth.lock()) {
            created.clear();
            auth.clear();
        }
        let repo = Repo::new(&format!("pr-{provider:?}"));
        repo.commit(&[("apps/web/rollout.yaml", &manifest(STABLE))], "web 1.0.1");
        let bump = repo.commit(&[("apps/web/rollout.yaml", &manifest(CANARY))], "web 1.0.2");
        let main_before = git(&repo.bare, &["rev-parse", "main"]);
        let mut request = repo.request("apps/web");
        request.pull_request = Some(PullRequestSettings {
            provider,
            api_url: format!("http://127.0.0.1:{port}/api"),
            repository: "acme/deploy".into(),
            token: "s3cret".into(),
        });
        let outcome = revert(&request).await.expect("revert as a pull request");
        let RevertOutcome::Reverted {
            pull_request: Some(url),
            revert: sha,
            ..
        } = outcome
        else {
            panic!("{provider:?}: {outcome:?}");
        };
        assert_eq!(
            git(&repo.bare, &["rev-parse", "main"]),
            main_before,
            "the protected branch is untouched"
        );
        let branch = format!("sluice/revert-{}", &bump[..12]);
        assert_eq!(
            git(&repo.bare, &["rev-parse", &branch]),
            sha,
            "the revert waits on its own branch"
        );
        let created = state.created.lock().map(|c| c.clone()).unwrap_or_default();
        assert_eq!(created.len(), 1, "{provider:?}: {created:?}");
        assert_eq!(created[0]["title"], "Revert \"web 1.0.2\"");
        let base = created[0]
            .get("base")
            .or(created[0].get("target_branch"))
            .cloned();
        assert_eq!(base, Some(serde_json::json!("main")));
        let body = created[0]
            .get("body")
            .or(created[0].get("description"))
            .cloned()
            .unwrap_or_default();
        assert!(
            body.as_str()
                .unwrap_or("")
                .contains(&format!("Sluice-Reverts: {bump}")),
            "{body}"
        );
        assert!(
            state
                .auth
                .lock()
                .map(|a| a.iter().all(|h| h == expected_auth))
                .unwrap_or(false),
            "{provider:?} auth header"
        );
        // A restart retries: the branch and the request are found, nothing new is opened.
        let again = revert(&request).await.expect("rerun");
        assert_eq!(
            again,
            RevertOutcome::AlreadyReverted {
                reverted: bump.clone(),
                revert: sha,
                pull_request: Some(url)
            },
            "{provider:?}"
        );
        assert_eq!(
            state.created.lock().map(|c| c.len()).unwrap_or(0),
            1,
            "{provider:?}: no second request"
        );
    }
    server.abort();
}

#[tokio::test]
async fn both_commits_are_known_to_the_caller_before_the_push() {
    let repo = Repo::new("before-push");
    repo.commit(&[("apps/web/rollout.yaml", &manifest(STABLE))], "web 1.0.1");
    let bump = repo.commit(&[("apps/web/rollout.yaml", &manifest(CANARY))], "web 1.0.2");
    let mut seen = Vec::new();
    let outcome = revert_with(&repo.request("apps/web"), |reverted, revert| {
        // At this moment the remote does not have the revert yet.
        let on_remote = git(&repo.bare, &["rev-parse", "main"]);
        seen.push((reverted, revert.clone(), on_remote != revert));
        async {}
    })
    .await
    .expect("revert");
    let RevertOutcome::Reverted { revert: sha, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(seen, vec![(bump, sha, true)]);
}

#[tokio::test]
async fn with_a_signing_key_the_revert_commit_is_signed_and_verifies() {
    let repo = Repo::new("signed");
    repo.commit(&[("apps/web/rollout.yaml", &manifest(STABLE))], "web 1.0.1");
    repo.commit(&[("apps/web/rollout.yaml", &manifest(CANARY))], "web 1.0.2");
    let key = repo.root.join("signing");
    keygen(&key);
    let data = std::collections::BTreeMap::from([(
        sluice::revert::credentials::SIGNING_KEY.to_string(),
        std::fs::read(&key).expect("key"),
    )]);
    let mut request = repo.request("apps/web");
    let credentials =
        sluice::revert::credentials::git_env(&data, &repo.root.join("keys")).expect("env");
    request.git_env = credentials.env.clone();
    let outcome = revert(&request).await.expect("revert");
    let RevertOutcome::Reverted { revert: sha, .. } = outcome else {
        panic!("expected a revert, got {outcome:?}");
    };
    // Verify as a forge would: the committer's email and the public key as an allowed signer.
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let allowed = repo.root.join("allowed_signers");
    std::fs::write(&allowed, format!("sluice@example.com {public}")).expect("allowed signers");
    git(&repo.clone, &["fetch", "-q", "origin"]);
    let config = format!("gpg.ssh.allowedSignersFile={}", allowed.display());
    let status = git(
        &repo.clone,
        &["-c", &config, "log", "-1", "--format=%G? %GS", &sha],
    );
    assert_eq!(
        status, "G sluice@example.com",
        "a good signature by the committer"
    );
    // A commit CI made is unsigned: the check can tell the difference.
    let unsigned = git(
        &repo.clone,
        &[
            "-c",
            &config,
            "log",
            "-1",
            "--format=%G?",
            &format!("{sha}~1"),
        ],
    );
    assert_eq!(unsigned, "N");
}

// ---- Several Rollouts in one repository (issue #12, item 1) ----

/// Four Rollouts of one repository abort together while CI keeps pushing:
/// each records the commit that reverts its own bump, each revert touches
/// only its own directory, and no revert fails on a lock of the shared clone.
#[tokio::test]
async fn reverts_of_several_rollouts_in_one_repository_each_record_their_own_commit() {
    const ROLLOUTS: usize = 5;
    let repo = Repo::new("shared");
    let image = |i: usize, version: &str| format!("registry.example.com/app-{i}:{version}");
    let initial: Vec<(String, String)> = (0..ROLLOUTS)
        .map(|i| {
            (
                format!("apps/app-{i}/rollout.yaml"),
                manifest(&image(i, "1.0.1")),
            )
        })
        .chain([("ci/build.txt".to_string(), "0\n".to_string())])
        .collect();
    let files: Vec<(&str, &str)> = initial
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    repo.commit(&files, "initial");
    let bumps: Vec<String> = (0..ROLLOUTS)
        .map(|i| {
            repo.commit(
                &[(
                    &format!("apps/app-{i}/rollout.yaml"),
                    &manifest(&image(i, "1.0.2")),
                )],
                &format!("app-{i} 1.0.2"),
            )
        })
        .collect();
    // CI keeps committing elsewhere in the repository from its own clone.
    let ci_clone = repo.root.join("ci-pusher");
    git(
        &repo.root,
        &["clone", "-q", "repo.git", &ci_clone.display().to_string()],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pusher = {
        let (stop, dir) = (stop.clone(), ci_clone.clone());
        std::thread::spawn(move || {
            // The last build whose push succeeded: a push carries every
            // earlier build too (one that lost a race is rebased and rides
            // along with the next push), so builds 1..=confirmed must be there.
            let mut confirmed = 0;
            for n in 1..=40 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                std::fs::write(dir.join("ci/build.txt"), format!("{n}\n")).expect("write");
                git(&dir, &["commit", "-q", "-am", &format!("ci build {n}")]);
                let pushed_now = Command::new("git")
                    .arg("-C")
                    .arg(&dir)
                    .args(["push", "-q", "origin", "main"])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if pushed_now {
                    confirmed = n;
                } else {
                    git(&dir, &["pull", "-q", "--rebase", "origin", "main"]);
                }
                std::thread::sleep(Duration::from_millis(fastrand::u64(20..120)));
            }
            confirmed
        })
    };
    let tasks: Vec<_> = (0..ROLLOUTS)
        .map(|i| {
            let mut request = repo.request(&format!("apps/app-{i}"));
            request.rollout = format!("shop/app-{i}");
            request.canary_image = image(i, "1.0.2");
            request.stable_image = image(i, "1.0.1");
            request.attempts = 12;
            tokio::spawn(async move { revert(&request).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("join"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let confirmed = pusher.join().expect("pusher");
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let outcome = outcome.unwrap_or_else(|e| panic!("app-{i}: {e}"));
        let RevertOutcome::Reverted {
            reverted,
            revert: sha,
            fallback: false,
            ..
        } = outcome
        else {
            panic!("app-{i}: expected a plain revert, got {outcome:?}");
        };
        assert_eq!(reverted, bumps[i], "app-{i} reverted its own bump");
        let message = git(&repo.bare, &["log", "-1", "--format=%B", &sha]);
        assert!(
            message.contains(&format!("Sluice-Reverts: {}", bumps[i]))
                && message.contains(&format!("Sluice-Rollout: shop/app-{i}")),
            "app-{i} recorded {sha}, which is another Rollout's revert:\n{message}"
        );
        let touched = git(&repo.bare, &["show", "--name-only", "--format=", &sha]);
        assert_eq!(
            touched,
            format!("apps/app-{i}/rollout.yaml"),
            "app-{i}'s revert touches only its own files"
        );
        assert_eq!(repo.count_reverts_of(&bumps[i]), 1, "app-{i}");
        assert_eq!(
            repo.head_file(&format!("apps/app-{i}/rollout.yaml")),
            manifest(&image(i, "1.0.1")).trim_end()
        );
    }
    let ci_commits = git(
        &repo.bare,
        &["log", "--format=%s", "--grep=^ci build", "main"],
    );
    let mut builds: Vec<usize> = ci_commits
        .lines()
        .filter_map(|subject| subject.strip_prefix("ci build ")?.parse().ok())
        .collect();
    builds.sort_unstable();
    assert!(confirmed > 0, "CI pushed while the reverts ran");
    assert_eq!(
        builds,
        (1..=confirmed).collect::<Vec<_>>(),
        "every CI build that was pushed is on the branch once, none lost or doubled"
    );
}

/// A translated locale (here German, as `LANGUAGE=de` selects) must not turn
/// a lost push race into a hard error: git's messages are read in `C`.
#[tokio::test]
async fn a_push_race_is_retried_whatever_the_locale() {
    let repo = Repo::new("locale");
    repo.commit(
        &[
            ("apps/web/rollout.yaml", &manifest(STABLE)),
            ("other/app.yaml", "v: 1\n"),
        ],
        "web 1.0.1",
    );
    let bump = repo.commit(&[("apps/web/rollout.yaml", &manifest(CANARY))], "web 1.0.2");
    let mut request = repo.request("apps/web");
    request.git_env = vec![
        ("LANGUAGE".into(), "de".into()),
        ("LC_ALL".into(), "C.UTF-8".into()),
        ("LANG".into(), "de_DE.UTF-8".into()),
    ];
    // CI pushes between the revert's fetch and its push: a client-side rejection.
    let mut raced = false;
    let outcome = revert_with(&request, |_, _| {
        if !raced {
            raced = true;
            repo.commit(&[("other/app.yaml", "v: 2\n")], "teammate's change");
        }
        async {}
    })
    .await
    .expect("revert after a retry");
    assert!(
        matches!(outcome, RevertOutcome::Reverted { .. }),
        "{outcome:?}"
    );
    assert_eq!(repo.count_reverts_of(&bump), 1);
    assert_eq!(
        repo.head_file("other/app.yaml"),
        "v: 2",
        "CI's commit stays"
    );
    // Errors users read are in one language too.
    request.target.url = repo.root.join("missing.git").display().to_string();
    let error = revert(&request).await.expect_err("unreachable");
    assert!(error.to_string().contains("fatal:"), "{error}");
}

/// `sluice rollout undo` (its own workspace, its own reason) and the
/// controller's abort revert of the same image commit, started together: in
/// every round exactly one revert commit lands and the other side reports
/// that Git already says it, whoever wins.
#[tokio::test]
async fn an_undo_racing_the_abort_revert_of_the_same_commit_lands_one_revert() {
    let mut winners = std::collections::BTreeMap::new();
    for round in 0..12 {
        let repo = Repo::new(&format!("undo-race-{round}"));
        repo.commit(&[("apps/web/rollout.yaml", &manifest(STABLE))], "web 1.0.1");
        let bump = repo.commit(&[("apps/web/rollout.yaml", &manifest(CANARY))], "web 1.0.2");
        let abort = repo.request("apps/web");
        let undo = RevertRequest {
            reason: "an operator asked to undo to revision 1 (`sluice rollout undo`)".into(),
            workspace: repo.root.join("undo-workspace"),
            ..repo.request("apps/web")
        };
        let (by_abort, by_undo) = tokio::join!(revert(&abort), revert(&undo));
        let outcomes = [by_abort.expect("abort side"), by_undo.expect("undo side")];
        assert_eq!(
            repo.count_reverts_of(&bump),
            1,
            "round {round}: {outcomes:?}"
        );
        assert!(
            repo.head_file("apps/web/rollout.yaml").contains(STABLE),
            "round {round}"
        );
        let reverted: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, RevertOutcome::Reverted { .. }))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(reverted.len(), 1, "round {round}: {outcomes:?}");
        let other = &outcomes[1 - reverted[0]];
        assert!(
            matches!(
                other,
                RevertOutcome::AlreadyReverted { .. } | RevertOutcome::NotNeeded { .. }
            ),
            "round {round}: {other:?}"
        );
        *winners.entry(reverted[0]).or_insert(0) += 1;
        let _ = std::fs::remove_dir_all(&repo.root);
    }
    eprintln!("winners (0 abort, 1 undo): {winners:?}");
}
