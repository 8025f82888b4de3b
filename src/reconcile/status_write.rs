//! The one way Sluice writes `status` (a server-side apply of the given
//! fields under a named field manager) and reads one of its objects, for any
//! of its kinds, namespaced or cluster-scoped.
//!
//! Each writer owns a slice of status through its own manager (`sluice` the
//! state machine, `sluice-git` `status.gitRevert`, `sluice-alerts`
//! `status.alerts` and the targets' status), so none of them can clear what
//! another wrote.

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Field manager of the state machine (Rollout and AnalysisRun status).
pub const ENGINE_MANAGER: &str = "sluice";
/// Field manager of `status.gitRevert`.
pub const GIT_MANAGER: &str = "sluice-git";
/// Field manager of `status.alerts` and of alert targets' status.
pub const ALERTS_MANAGER: &str = "sluice-alerts";

/// Read object `name` of kind `K` in `namespace`, or cluster-wide when
/// `None`; `Ok(None)` when it does not exist.
pub async fn get_scoped<K>(
    client: &Client,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let found = scoped_api::<K>(client, namespace).get_opt(name).await?;
    found
        .map(|object| {
            serde_json::to_value(object)
                .and_then(serde_json::from_value::<K>)
                .map_err(kube::Error::SerdeError)
        })
        .transpose()
}

fn scoped_api<K: Resource<DynamicType = ()>>(
    client: &Client,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<K>(&());
    match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Apply `status` (only the fields it names) to object `name` of kind `K`,
/// in `namespace` or cluster-wide when `None`, as `manager`.
pub async fn apply_status<K>(
    client: &Client,
    namespace: Option<&str>,
    name: &str,
    manager: &str,
    status: Value,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()>,
{
    let api = scoped_api::<K>(client, namespace);
    let patch = status_patch::<K>(name, status);
    api.patch_status(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}

/// The apply body: type, name and the status fields.
fn status_patch<K: Resource<DynamicType = ()>>(name: &str, status: Value) -> Value {
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": { "name": name },
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ClusterAlertTarget, Rollout};

    #[test]
    fn the_body_names_the_kind_and_carries_only_the_given_fields() {
        let body = status_patch::<Rollout>("web", json!({ "alerts": [] }));
        assert_eq!(
            body,
            json!({
                "apiVersion": crate::crd::API_VERSION,
                "kind": "Rollout",
                "metadata": { "name": "web" },
                "status": { "alerts": [] },
            })
        );
        let cluster = status_patch::<ClusterAlertTarget>("pager", json!({}));
        assert_eq!(cluster["kind"], "ClusterAlertTarget");
    }
}
