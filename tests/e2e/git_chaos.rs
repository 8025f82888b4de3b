//! Exactly-once Git reverts under crashes, on the real control plane: four
//! Rollouts that live in one GitOps repository abort together while CI keeps
//! pushing to the branch, and the controller is killed (SIGKILL) ten times at
//! random moments around the aborts. Afterwards each aborted Rollout has
//! exactly one revert commit with its own trailer, touching only its own
//! files; exactly one `aborted` and one `reverted` alert; no record stuck in
//! `Reverting`/`Pushing`; no CI commit lost; and no canary weight above 0
//! once its abort was recorded. The figures are printed for the README.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use sluice::crd::{Rollout, RolloutPhase};
use sluice::engine::controls;
use sluice::reconcile::git_revert::ABORT_REVERT_ANNOTATION;

use super::harness::{
    BackgroundProcess, ControllerProcess, apply_value, cluster, repo_root, wait_for,
    workspace_binary,
};
use super::receiver::Receiver;
use super::support::*;

const APPS: usize = 4;
const KILLS: usize = 10;

fn yaml(value: &serde_json::Value) -> String {
    serde_yaml_ng::to_string(value).expect("yaml")
}

/// The gateway example renamed to `name`, pausing at 20% until aborted.
fn app_files(name: &str) -> Vec<(String, String)> {
    let example = |file: &str| {
        std::fs::read_to_string(repo_root().join("examples/gateway-canary").join(file))
            .expect("example")
            .replace("web", name)
    };
    let mut rollout: serde_json::Value =
        serde_yaml_ng::from_str(&example("rollout.yaml")).expect("yaml");
    speed_up(&mut rollout);
    // The image keeps the registry's `web` repository name per app, so each bump is distinct.
    rollout["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!(format!("registry.example.com/{name}:1.0.0"));
    rollout["spec"]["strategy"]["canary"]["steps"] =
        json!([{"setWeight": 20}, {"pause": {}}, {"setWeight": 100}]);
    rollout["spec"]["git"] =
        json!({"repositoryRef": {"name": "apps"}, "path": format!("apps/{name}")});
    rollout["spec"]["alerts"] =
        json!({"subscriptions": [{"target": "team-hook", "events": ["aborted", "reverted"]}]});
    vec![
        ("services.yaml".into(), example("services.yaml")),
        ("httproute.yaml".into(), example("httproute.yaml")),
        ("rollout.yaml".into(), yaml(&rollout)),
    ]
}

/// A bare repository with `apps/<app>/…` for every app, a CI clone, and a sync loop over `apps/`.
struct SharedRepo {
    bare: PathBuf,
    ci: PathBuf,
    _sync: BackgroundProcess,
}

impl SharedRepo {
    fn start(ns: &str, apps: &[String], repository: &serde_json::Value) -> SharedRepo {
        let root = cluster().info.data_dir.join(format!("git-{ns}"));
        std::fs::create_dir_all(&root).expect("root");
        git(&root, &["init", "-q", "--bare", "-b", "main", "apps.git"]);
        git(&root, &["clone", "-q", "apps.git", "ci"]);
        let (bare, ci) = (root.join("apps.git"), root.join("ci"));
        for app in apps {
            let dir = ci.join("apps").join(app);
            std::fs::create_dir_all(&dir).expect("dir");
            for (name, text) in app_files(app) {
                std::fs::write(dir.join(name), text).expect("write");
            }
        }
        std::fs::write(ci.join("apps/repository.yaml"), yaml(repository)).expect("write");
        std::fs::create_dir_all(ci.join("ci")).expect("dir");
        std::fs::write(ci.join("ci/build.txt"), "0\n").expect("write");
        git(&ci, &["add", "."]);
        git(&ci, &["commit", "-q", "-m", "apps 1.0.0"]);
        git(&ci, &["push", "-q", "origin", "main"]);
        let (bare_arg, work) = (
            bare.display().to_string(),
            root.join("sync").display().to_string(),
        );
        let sync = BackgroundProcess::start(
            &format!("{ns}-gitops-sync"),
            &workspace_binary("sluice-gitops-sync"),
            &[
                "--repo",
                &bare_arg,
                "--path",
                "apps",
                "--namespace",
                ns,
                "--work-dir",
                &work,
                "--interval",
                "500ms",
            ],
        );
        SharedRepo {
            bare,
            ci,
            _sync: sync,
        }
    }

    /// CI bumps `app` to 1.0.1 and pushes; returns the commit.
    fn bump(&self, app: &str) -> String {
        let path = self.ci.join("apps").join(app).join("rollout.yaml");
        let text = std::fs::read_to_string(&path).expect("read");
        let (from, to) = (format!("{app}:1.0.0"), format!("{app}:1.0.1"));
        std::fs::write(&path, text.replace(&from, &to)).expect("write");
        git(&self.ci, &["commit", "-q", "-am", &format!("{app} 1.0.1")]);
        git(&self.ci, &["push", "-q", "origin", "main"]);
        git(&self.ci, &["rev-parse", "HEAD"])
    }

    /// Commits on main whose trailer says they revert `sha`.
    fn reverts_of(&self, sha: &str) -> Vec<String> {
        let grep = format!("--grep=^Sluice-Reverts: {sha}$");
        git(&self.bare, &["log", "--format=%H", &grep, "main"])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A CI job pushing unrelated commits from its own clone until stopped;
/// returns the last commit it pushed (every `ci build` below it must stay on main).
fn ci_pusher(
    bare: PathBuf,
    root: PathBuf,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Option<String>> {
    std::thread::spawn(move || {
        let clone = root.join("ci-pusher");
        git(
            &root,
            &[
                "clone",
                "-q",
                &bare.display().to_string(),
                &clone.display().to_string(),
            ],
        );
        let mut last_pushed = None;
        let mut n = 1;
        while !stop.load(Ordering::Relaxed) && n <= 400 {
            std::fs::write(clone.join("ci/build.txt"), format!("{n}\n")).expect("write");
            git(&clone, &["commit", "-q", "-am", &format!("ci build {n}")]);
            let landed = std::process::Command::new("git")
                .arg("-C")
                .arg(&clone)
                .args(["push", "-q", "origin", "HEAD:main"])
                .output()
                .is_ok_and(|o| o.status.success());
            if landed {
                last_pushed = Some(git(&clone, &["rev-parse", "HEAD"]));
            } else {
                git(&clone, &["pull", "-q", "--rebase", "origin", "main"]);
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(fastrand::u64(200..800)));
        }
        last_pushed
    })
}

#[tokio::test]
async fn ten_kills_around_four_aborts_in_one_repository_revert_each_exactly_once() {
    let started = Instant::now();
    let receiver = Receiver::start(vec![]).await;
    let (admin, ns, kubeconfig) = setup("gitchaos").await;
    let workspace = cluster()
        .info
        .data_dir
        .join(format!("git-workspace-{ns}"))
        .display()
        .to_string();
    let args = [
        "--no-leader-election",
        "--git-workspace",
        workspace.as_str(),
    ];
    let mut controller = ControllerProcess::start(&kubeconfig, &ns, "chaos", &args);
    apply_value(
        &admin,
        &ns,
        json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "AlertTarget",
            "metadata": {"name": "team-hook"},
            "spec": {"type": "Webhook", "secretName": "team-hook"}
        }),
    )
    .await;
    apply_value(
        &admin,
        &ns,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "team-hook"},
            "stringData": {"url": format!("{}/hooks/team", receiver.url)}
        }),
    )
    .await;
    let apps: Vec<String> = (0..APPS).map(|i| format!("app-{i}")).collect();
    let root = cluster().info.data_dir.join(format!("git-{ns}"));
    let repository = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "GitRepository",
        "metadata": {"name": "apps"},
        "spec": {"url": root.join("apps.git").display().to_string(), "branch": "main",
                 "author": {"name": "Sluice", "email": "sluice@example.com"}}
    });
    let repo = SharedRepo::start(&ns, &apps, &repository);
    let mut stable = BTreeMap::new();
    for app in &apps {
        let healthy = wait_phase(
            &admin,
            &ns,
            app,
            RolloutPhase::Healthy,
            Duration::from_secs(120),
        )
        .await;
        let revision = healthy.status.and_then(|s| s.stable_revision);
        stable.insert(app.clone(), revision.expect("stable revision"));
    }
    let bumps: BTreeMap<String, String> = apps.iter().map(|a| (a.clone(), repo.bump(a))).collect();
    for app in &apps {
        wait_phase(
            &admin,
            &ns,
            app,
            RolloutPhase::Paused,
            Duration::from_secs(120),
        )
        .await;
    }

    // Watch the canary weights: none may rise above 0 once its abort is recorded.
    let max_weight_after_abort = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (admin, ns, apps) = (admin.clone(), ns.clone(), apps.clone());
        let (max, stop) = (max_weight_after_abort.clone(), stop.clone());
        tokio::spawn(async move {
            let api: Api<Rollout> = Api::namespaced(admin.clone(), &ns);
            let mut aborted = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                for app in &apps {
                    if !aborted.contains_key(app) {
                        let recorded = api.get(app).await.ok().and_then(|r| r.status?.abort);
                        if recorded.is_some() {
                            aborted.insert(app.clone(), ());
                        }
                        continue;
                    }
                    let canary = format!("{app}-canary");
                    if let Some(weight) = route_canary_weight(&admin, &ns, app, &canary).await {
                        max.fetch_max(weight, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            aborted.len()
        })
    };
    let ci_stop = Arc::new(AtomicBool::new(false));
    let pusher = ci_pusher(repo.bare.clone(), root.clone(), ci_stop.clone());

    // All four abort at once (an operator's abort that asks for the revert);
    // the kills start just before and go on while the reverts run.
    let kills_started = Instant::now();
    let mut aborts_sent = 0;
    let mut kills = 0;
    let mut kills_mid_revert = 0;
    let api: Api<Rollout> = Api::namespaced(admin.clone(), &ns);
    for round in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(200..2500))).await;
        if round == 1 {
            let token = jiff::Timestamp::now().to_string();
            let patch = json!({"metadata": {"annotations": {
                controls::ABORT: token, ABORT_REVERT_ANNOTATION: "true"
            }}});
            for app in &apps {
                api.patch(app, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .expect("abort");
                aborts_sent += 1;
            }
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..1500))).await;
        }
        // How often the kill lands while a revert is in flight (the interesting case).
        for app in &apps {
            let record = api.get(app).await.ok().and_then(|r| r.status?.git_revert);
            if record.is_some_and(|r| r.state.in_progress()) {
                kills_mid_revert += 1;
            }
        }
        controller.kill();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..1500))).await;
        controller = ControllerProcess::start(&kubeconfig, &ns, "chaos", &args);
    }
    let kill_window = kills_started.elapsed();

    // The last controller lives: every revert lands, syncs, and every Rollout comes home.
    let records = wait_for(
        Duration::from_secs(180),
        "every Rollout reverted in Git and Healthy on stable",
        || {
            let (api, apps, stable) = (api.clone(), apps.clone(), stable.clone());
            async move {
                let mut done = BTreeMap::new();
                for app in &apps {
                    let status = api.get(app).await.ok()?.status?;
                    let record = status.git_revert.clone()?;
                    let home = status.phase == Some(RolloutPhase::Healthy)
                        && status.stable_revision.as_deref() == stable.get(app).map(String::as_str);
                    if !(home && record.state.reverted()) {
                        return None;
                    }
                    done.insert(app.clone(), record);
                }
                Some(done)
            }
        },
    )
    .await;
    ci_stop.store(true, Ordering::Relaxed);
    let ci_last = tokio::task::spawn_blocking(move || pusher.join())
        .await
        .expect("join")
        .expect("pusher")
        .expect("CI pushed at least once");
    // Alerts may trail the record by a reconcile; then nothing more may come.
    wait_for(
        Duration::from_secs(60),
        "a reverted alert per Rollout",
        || {
            let n = receiver
                .received()
                .iter()
                .filter(|r| r.header("x-sluice-event").as_deref() == Some("reverted"))
                .count();
            async move { (n >= APPS).then_some(()) }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let watched = watcher.await.expect("watcher");

    let received = receiver.received();
    // A webhook carries X-Sluice-Event-Id so receivers deduplicate: a controller
    // killed between delivering and recording `Sent` may deliver again with
    // the same id, which is still one alert. Distinct ids are what must be one.
    let alerts_of = |app: &str, event: &str| {
        let ids: std::collections::BTreeSet<String> = received
            .iter()
            .filter(|r| r.header("x-sluice-event").as_deref() == Some(event))
            .filter(|r| r.json()["rollout"]["name"] == app)
            .filter_map(|r| r.header("x-sluice-event-id"))
            .collect();
        ids.len()
    };
    let mut reverts = 0;
    let mut distinct_alerts = 0;
    for app in &apps {
        let bump = &bumps[app];
        let record = &records[app];
        let found = repo.reverts_of(bump);
        assert_eq!(found.len(), 1, "{app}: one revert of {bump}: {found:?}");
        reverts += found.len();
        assert_eq!(record.reverted_commit.as_ref(), Some(bump), "{app}");
        assert_eq!(
            record.revert_commit.as_ref(),
            Some(&found[0]),
            "{app} records the commit that reverted its bump"
        );
        let message = git(&repo.bare, &["log", "-1", "--format=%B", &found[0]]);
        assert!(
            message.contains(&format!("Sluice-Rollout: {ns}/{app}")),
            "{message}"
        );
        let touched = git(&repo.bare, &["show", "--name-only", "--format=", &found[0]]);
        assert_eq!(touched, format!("apps/{app}/rollout.yaml"), "{app}");
        assert_eq!(alerts_of(app, "aborted"), 1, "{app}: one aborted alert");
        assert_eq!(alerts_of(app, "reverted"), 1, "{app}: one reverted alert");
        distinct_alerts += 2;
    }
    let ci_builds = |rev: &str| {
        git(&repo.bare, &["log", "--format=%s", "--grep=^ci build", rev])
            .lines()
            .count()
    };
    let (ci_pushes, ci_landed) = (ci_builds(&ci_last), ci_builds("main"));
    git(
        &repo.bare,
        &["merge-base", "--is-ancestor", &ci_last, "main"],
    );
    assert_eq!(ci_landed, ci_pushes, "no CI commit lost (no force-push)");
    for bump in bumps.values() {
        git(&repo.bare, &["merge-base", "--is-ancestor", bump, "main"]);
    }
    // Killed gits leave lock files; none may make a later revert fail.
    let log = std::fs::read_to_string(&controller.log).unwrap_or_default();
    for symptom in [
        "Unable to create",
        "could not lock config",
        "cannot lock ref",
    ] {
        assert!(
            !log.contains(symptom),
            "a lock error in the controller log: {symptom}"
        );
    }
    let max_weight = max_weight_after_abort.load(Ordering::Relaxed);
    assert_eq!(watched, APPS, "every abort was seen");
    assert_eq!(max_weight, 0, "weight 0 from each abort on");
    let count = |event: &str| {
        received
            .iter()
            .filter(|r| r.header("x-sluice-event").as_deref() == Some(event))
            .count()
    };
    eprintln!(
        "git chaos figures: kills={kills} (over {:.1}s; {kills_mid_revert} Rollout-records in Reverting/Pushing at a kill) aborts={aborts_sent} reverts={reverts} \
         distinct_alerts={distinct_alerts} deliveries: aborted={} reverted={} max_canary_weight_after_abort={max_weight} \
         ci_pushes={ci_pushes} ci_commits_on_main={ci_landed} total={:.1}s",
        kill_window.as_secs_f64(),
        count("aborted"),
        count("reverted"),
        started.elapsed().as_secs_f64()
    );
    drop(controller);
}
