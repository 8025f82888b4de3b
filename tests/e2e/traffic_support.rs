//! Helpers of the traffic-safety tests: Services as teams keep them in Git,
//! deploy/'s admission policy bound to one namespace, a monitor of what each
//! Service reaches (as kube-proxy would route), and a GitOps re-apply.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use sluice_testbed::cluster_view::is_ready;

use super::harness::{apply_value, apply_yaml, repo_root, wait_for};
use super::support::GitOps;

pub const SETTLE: Duration = Duration::from_secs(90);
const HASH: &str = "sluice.dev/pod-template-hash";

pub fn yaml(value: &serde_json::Value) -> String {
    serde_yaml_ng::to_string(value).expect("yaml")
}

pub fn example(dir: &str, file: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples").join(dir).join(file)).expect("example")
}

/// The example's Services as many teams keep them in Git today: with
/// `selector: {app: web}`, which a re-apply puts back over Sluice's.
pub fn services_with_selector(dir: &str) -> String {
    let mut out = String::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&example(dir, "services.yaml")) {
        let mut value: serde_json::Value = serde::Deserialize::deserialize(doc).expect("yaml");
        if value.is_null() {
            continue;
        }
        value["spec"]["selector"] = json!({"app": "web"});
        out.push_str("---\n");
        out.push_str(&yaml(&value));
    }
    out
}

pub fn config(version: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  version: {version}\n"
    )
}

/// deploy/'s admission policy, bound to `ns` only (other tests share the cluster).
pub async fn install_selector_policy(admin: &Client, ns: &str) {
    let text = std::fs::read_to_string(repo_root().join("deploy/service-selector-policy.yaml"))
        .expect("policy");
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let mut value: serde_json::Value = serde::Deserialize::deserialize(doc).expect("yaml");
        if value["kind"] == "ValidatingAdmissionPolicyBinding" {
            value["metadata"]["name"] = json!(format!("sluice-service-selector-{ns}"));
            value["spec"]["matchResources"] = json!({"namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": ns}}});
        }
        apply_value(admin, ns, value).await;
    }
    // The policy is in force once it refuses a selector change on a claimed Service.
    let services: Api<Service> = Api::namespaced(admin.clone(), ns);
    apply_yaml(
        admin,
        ns,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: policy-probe\n  labels:\n    sluice.dev/rollout: probe\nspec:\n  selector:\n    app: probe\n  ports:\n    - port: 80\n",
    )
    .await;
    let mut attempt = 0u32;
    wait_for(Duration::from_secs(60), "admission policy in force", || {
        let services = services.clone();
        attempt += 1;
        async move {
            // A new value each time: an unchanged selector is allowed.
            let patch = json!({"spec": {"selector": {"app": format!("other-{attempt}")}}});
            match services
                .patch(
                    "policy-probe",
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Err(kube::Error::Api(status)) if status.code == 403 || status.code == 422 => {
                    Some(())
                }
                _ => None,
            }
        }
    })
    .await;
}

/// Watches what each Service selects, as kube-proxy would route: the Ready
/// pods matching its selector. Records every moment a Service selects more
/// than one revision, or a forbidden one.
pub struct SelectionMonitor {
    violations: Arc<Mutex<Vec<String>>>,
    forbidden: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SelectionMonitor {
    pub fn start(admin: &Client, ns: &str, watched: &[&str]) -> Self {
        let violations = Arc::new(Mutex::new(Vec::new()));
        let forbidden: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
        let banned = forbidden.clone();
        let (services, pods): (Api<Service>, Api<Pod>) = (
            Api::namespaced(admin.clone(), ns),
            Api::namespaced(admin.clone(), ns),
        );
        let watched: Vec<String> = watched.iter().map(|s| s.to_string()).collect();
        let seen = violations.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            loop {
                for name in &watched {
                    let Ok(service) = services.get(name).await else {
                        continue;
                    };
                    let selector = service.spec.and_then(|s| s.selector).unwrap_or_default();
                    let labels: Vec<String> =
                        selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let Ok(list) = pods
                        .list(&ListParams::default().labels(&labels.join(",")))
                        .await
                    else {
                        continue;
                    };
                    let revisions: BTreeSet<String> = list
                        .items
                        .iter()
                        .filter(|p| is_ready(p))
                        .filter_map(|p| p.metadata.labels.as_ref()?.get(HASH).cloned())
                        .collect();
                    let bad = banned.lock().is_ok_and(|list| {
                        list.iter().any(|(s, h)| s == name && revisions.contains(h))
                    });
                    if (revisions.len() > 1 || bad)
                        && let Ok(mut v) = seen.lock()
                    {
                        v.push(format!(
                            "{:?}: Service {name} selector {selector:?} reaches {revisions:?}",
                            started.elapsed()
                        ));
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        SelectionMonitor {
            violations,
            forbidden,
            task,
        }
    }

    /// From now on, `service` must never reach `revision`.
    pub fn forbid(&self, service: &str, revision: &str) {
        if let Ok(mut list) = self.forbidden.lock() {
            list.push((service.into(), revision.into()));
        }
    }

    pub fn stop(self) -> Vec<String> {
        self.task.abort();
        self.violations
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }
}

pub async fn selected_hash(admin: &Client, ns: &str, service: &str) -> Option<String> {
    let services: Api<Service> = Api::namespaced(admin.clone(), ns);
    services
        .get(service)
        .await
        .ok()?
        .spec?
        .selector?
        .get(HASH)
        .cloned()
}

/// Push `version` of the ConfigMap to Git and wait until the sync loop applied it:
/// every object in the directory has been re-applied by then.
pub async fn resync(gitops: &GitOps, admin: &Client, ns: &str, from: &str, to: &str) {
    let (from_line, to_line) = (format!("version: {from}"), format!("version: {to}"));
    gitops.bump("config.yaml", &from_line, &to_line, &format!("config {to}"));
    let maps: Api<ConfigMap> = Api::namespaced(admin.clone(), ns);
    wait_for(SETTLE, &format!("config {to} synced"), || {
        let maps = maps.clone();
        let to = to.to_string();
        async move {
            let map = maps.get("web-config").await.ok()?;
            (map.data?.get("version")? == &to).then_some(())
        }
    })
    .await;
    // A moment for anything the re-apply changed to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
}
