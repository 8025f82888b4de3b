//! What the Argo CD end-to-end test keeps and how it acts: the `Book` of
//! captured live objects (checked with the real Lua interpreters and
//! kstatus's rules as they are captured, written as fixtures on request),
//! running an action as Argo CD does, and small readers of the live Rollout.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sluice::crd::{AnalysisRun, Rollout, RolloutPhase};

use super::argocd_lua::{self as lua, kstatus};
use super::harness::wait_for;
use super::support::rollout;

const SETTLE: Duration = Duration::from_secs(90);

/// Everything captured, to be written as fixtures at the end.
#[derive(Default)]
pub(super) struct Book {
    /// (kind, fixture name, object, Argo CD status, message).
    pub(super) health: Vec<(String, String, Value, String, String)>,
    /// (fixture name, discovery output).
    pub(super) discovery: Vec<(String, Value)>,
    /// (action, input fixture name, output fixture name, output).
    pub(super) actions: Vec<(String, String, String, Value)>,
}

impl Book {
    /// Check Argo CD's and kstatus's view of `live` and record it as `name`.
    pub(super) fn capture(&mut self, kind: &str, name: &str, live: &Value, expected: &str) {
        let obj = lua::fixture_of(live.clone());
        let (status, message) = lua::health(kind, &obj);
        assert_eq!(status, expected, "{kind} {name}: {message}\n{obj:#}");
        let flux = kstatus(&obj);
        let flux_expected = match (expected, obj.get("status").is_some()) {
            // No status yet: no condition kstatus knows, so it assumes Current.
            (_, false) => "Current",
            ("Healthy", _) => "Current",
            ("Degraded", _) => "Failed",
            _ => "InProgress",
        };
        if kind == "Rollout" {
            assert_eq!(flux, flux_expected, "kstatus of {name}");
        }
        eprintln!("argocd: {kind} {name}: {status} ({message}); kstatus {flux}");
        self.health
            .push((kind.into(), name.into(), obj.clone(), status, message));
        if kind == "Rollout" {
            let actions = lua::run(
                &lua::customizations().join("Rollout/actions/discovery.lua"),
                &obj,
            );
            self.discovery.push((name.into(), actions));
        }
    }

    /// Write the fixtures and the two test lists, when asked to.
    pub(super) fn write(&self) {
        if std::env::var("SLUICE_WRITE_ARGOCD_FIXTURES").as_deref() != Ok("1") {
            return;
        }
        let root = lua::customizations();
        for dir in [
            "Rollout/testdata",
            "AnalysisRun/testdata",
            "Rollout/actions/testdata",
        ] {
            let dir = root.join(dir);
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    if entry.path().extension().is_some_and(|e| e == "yaml") {
                        std::fs::remove_file(entry.path()).expect("remove old fixture");
                    }
                }
            }
            std::fs::create_dir_all(&dir).expect("testdata dir");
        }
        let yaml = |value: &Value| serde_yaml_ng::to_string(value).expect("yaml");
        let mut tests: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for (kind, name, obj, status, message) in &self.health {
            std::fs::write(
                root.join(kind).join(format!("testdata/{name}.yaml")),
                yaml(obj),
            )
            .expect("write fixture");
            tests.entry(kind).or_default().push(json!({
                "healthStatus": {"status": status, "message": message},
                "inputPath": format!("testdata/{name}.yaml"),
            }));
        }
        for (kind, list) in tests {
            std::fs::write(
                root.join(kind).join("health_test.yaml"),
                yaml(&json!({"tests": list})),
            )
            .expect("write health_test.yaml");
        }
        let discovery: Vec<Value> = self
            .discovery
            .iter()
            .map(|(name, actions)| {
                let result: Vec<Value> = actions
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(action, a)| {
                        let mut entry = json!({"name": action});
                        if let (Some(e), Some(a)) = (entry.as_object_mut(), a.as_object()) {
                            e.extend(a.clone());
                        }
                        entry
                    })
                    .collect();
                json!({"inputPath": format!("../testdata/{name}.yaml"), "result": result})
            })
            .collect();
        let mut action_tests = Vec::new();
        for (action, input, output, obj) in &self.actions {
            std::fs::write(
                root.join(format!("Rollout/actions/testdata/{output}.yaml")),
                yaml(obj),
            )
            .expect("write action output");
            action_tests.push(json!({
                "action": action,
                "inputPath": format!("../testdata/{input}.yaml"),
                "expectedOutputPath": format!("testdata/{output}.yaml"),
            }));
        }
        std::fs::write(
            root.join("Rollout/actions/action_test.yaml"),
            yaml(&json!({"discoveryTests": discovery, "actionTests": action_tests})),
        )
        .expect("write action_test.yaml");
    }
}

/// The live object as the API server returns it (no typed round trip).
pub(super) async fn live(client: &Client, ns: &str, kind: &str, name: &str) -> Value {
    let resource = match kind {
        "Rollout" => ApiResource::erase::<Rollout>(&()),
        _ => ApiResource::erase::<AnalysisRun>(&()),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    serde_json::to_value(api.get(name).await.expect("get live object")).expect("json")
}

/// Run `action` on the live Rollout `name` as Argo CD does: the script's
/// result becomes a merge patch against the object. The patch must
/// touch only the control annotations; the result is recorded against the
/// fixture `input` (captured just before).
pub(super) async fn run_action(
    book: &mut Book,
    client: &Client,
    ns: &str,
    name: &str,
    action: &str,
    input: &str,
) {
    // The object as captured: Argo CD too acts on its cached copy of the live object.
    let obj = book
        .health
        .iter()
        .find(|(_, fixture, ..)| fixture == input)
        .map(|(_, _, obj, ..)| obj.clone())
        .expect("the input was captured");
    let disabled = lua::discovery(&obj);
    assert_eq!(
        disabled.get(action),
        Some(&false),
        "{action} is offered on {input}: {disabled:?}"
    );
    let result = lua::action(action, &obj);
    let patch = lua::merge_patch(&obj, &result);
    let touched: Vec<&String> = patch
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .collect();
    assert_eq!(
        touched,
        ["metadata"],
        "{action} changes only metadata: {patch}"
    );
    let annotations = patch["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(
        patch["metadata"].as_object().is_some_and(|m| m.len() == 1) && !annotations.is_empty(),
        "{action} changes only annotations: {patch}"
    );
    assert!(
        annotations.keys().all(|k| k.starts_with("sluice.dev/")),
        "{action} changes only Sluice's control annotations: {patch}"
    );
    eprintln!("argocd: action {action} on {input}: merge patch {patch}");
    Api::<Rollout>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("apply the action's result");
    book.actions.push((
        action.into(),
        input.into(),
        format!("{input}_{action}"),
        result,
    ));
}

/// Wait until the Rollout's current generation shows `phase` and `ok` holds.
pub(super) async fn wait_status(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    ok: impl Fn(&Rollout) -> bool,
) -> Value {
    wait_for(SETTLE, what, || {
        let (client, ns) = (client.clone(), ns.to_string());
        let ok = &ok;
        async move {
            let r = rollout(&client, &ns, name).await;
            let status = r.status.as_ref()?;
            (status.observed_generation == r.metadata.generation && ok(&r)).then_some(())
        }
    })
    .await;
    live(client, ns, "Rollout", name).await
}

pub(super) fn phase_is(r: &Rollout, phase: RolloutPhase) -> bool {
    r.status.as_ref().and_then(|s| s.phase) == Some(phase)
}

pub(super) fn step(r: &Rollout) -> i32 {
    r.status
        .as_ref()
        .and_then(|s| s.current_step_index)
        .unwrap_or(-1)
}

pub(super) fn pause_reason(r: &Rollout) -> &str {
    r.status
        .as_ref()
        .and_then(|s| s.pause_reason.as_deref())
        .unwrap_or("")
}

pub(super) async fn blue_green_of(
    client: &Client,
    ns: &str,
    name: &str,
) -> Option<sluice::crd::BlueGreenStatus> {
    rollout(client, ns, name).await.status?.blue_green
}

pub(super) async fn live_opt(client: &Client, ns: &str, run: &str) -> Option<Value> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<AnalysisRun>(&()));
    serde_json::to_value(api.get(run).await.ok()?).ok()
}
