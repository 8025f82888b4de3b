//! A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`, or
//! the binary `SLUICE_ALERTMANAGER` names) on a free 127.0.0.1 port, for the
//! Alertmanager alert target's tests: a temporary config with a null
//! receiver and a 1 s `group_wait`, storage in a temp dir, no HA gossip
//! (`--cluster.listen-address=`), killed on drop. Startup waits at most
//! 20 s and every poll at most a given bound.
//!
//! A missing binary skips the test with a message, unless
//! `SLUICE_REQUIRE_ALERTMANAGER` is set (`scripts/test.sh` sets it right
//! after installing the package): then it fails.

// Each test crate that includes this file uses a different part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running Alertmanager, killed on drop.
pub struct Alertmanager {
    child: Child,
    pub url: String,
    /// Basic auth the API asks for, if any (user, password).
    auth: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    /// Start one on a free loopback port with a null receiver, or `None`
    /// (with a message) when the binary is missing and not required.
    pub async fn start() -> Option<Alertmanager> {
        Alertmanager::start_with(None).await
    }

    /// Like [`Alertmanager::start`], with the API behind basic auth:
    /// (user, password, bcrypt hash of the password) in `--web.config.file`.
    pub async fn start_with(basic_auth: Option<(&str, &str, &str)>) -> Option<Alertmanager> {
        let binary = std::env::var_os("SLUICE_ALERTMANAGER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus-alertmanager"));
        if !binary.exists() {
            let why = format!(
                "{} not found: install Debian's prometheus-alertmanager (tests/cluster/install-deps.sh)",
                binary.display()
            );
            if std::env::var_os("SLUICE_REQUIRE_ALERTMANAGER").is_some() {
                panic!("SLUICE_REQUIRE_ALERTMANAGER is set but {why}");
            }
            eprintln!("SKIPPED: {why}; set SLUICE_REQUIRE_ALERTMANAGER=1 to make this a failure");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: 'null'\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: 'null'\n",
        )
        .expect("config");
        let mut web_config = None;
        if let Some((user, _, hash)) = basic_auth {
            let path = dir.path().join("web.yml");
            std::fs::write(&path, format!("basic_auth_users:\n  {user}: '{hash}'\n"))
                .expect("web config");
            web_config = Some(format!("--web.config.file={}", path.display()));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).expect("log");
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Empty: no HA gossip, nothing listens beyond the API.
            .arg("--cluster.listen-address=")
            .args(web_config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start alertmanager");
        let am = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            auth: basic_auth.map(|(u, p, _)| (u.to_string(), p.to_string())),
            _dir: dir,
        };
        let ready = format!("{}/-/ready", am.url);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = am.get(&ready).timeout(Duration::from_secs(1)).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Some(am);
            }
            let log = std::fs::read_to_string(am._dir.path().join("alertmanager.log"))
                .unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "Alertmanager not ready within 20 s:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A GET with the API's credentials, if it has any.
    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let request = http().get(url);
        match &self.auth {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// Alerts Alertmanager lists for the Rollout (active ones; ended alerts are not listed).
    pub async fn alerts_of(&self, rollout: &str) -> Vec<Value> {
        let all: Value = self
            .get(&format!("{}/api/v2/alerts", self.url))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("GET /api/v2/alerts")
            .json()
            .await
            .expect("JSON");
        all.as_array()
            .expect("an array")
            .iter()
            .filter(|a| a["labels"]["rollout"] == rollout)
            .cloned()
            .collect()
    }

    /// Poll until `check` holds for the Rollout's alerts, at most `bound`.
    pub async fn wait_for(
        &self,
        bound: Duration,
        rollout: &str,
        what: &str,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + bound;
        loop {
            let alerts = self.alerts_of(rollout).await;
            if check(&alerts) {
                return alerts;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen within {bound:?}; Alertmanager lists {alerts:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn http() -> reqwest::Client {
    sluice::install_crypto_provider();
    reqwest::Client::new()
}
