//! `sluice rollout set image`: change a container's image in the Rollout's
//! pod template, as `kubectl argo rollouts set image` does.
//!
//! One JSON merge patch of the container lists, carrying the
//! `resourceVersion` it was computed from, so a concurrent change is refused
//! (409 Conflict) rather than overwritten.

use k8s_openapi::api::core::v1::Container;
use kube::Api;
use serde_json::{Value, json};

use crate::crd::Rollout;

/// `sluice rollout set image NAME CONTAINER=IMAGE…`.
pub async fn run(
    api: &Api<Rollout>,
    name: &str,
    pairs: &[(String, String)],
) -> Result<(), super::rollout::Error> {
    let images: Vec<String> = pairs.iter().map(|(c, i)| format!("{c}={i}")).collect();
    let rollout = super::get::rollout(api, name).await?;
    let Some(body) = patch(&rollout, pairs)? else {
        crate::outln!(
            "rollout {name}: the images are already {}",
            images.join(" ")
        )?;
        return Ok(());
    };
    super::undo_run::patch_spec(api, name, &body).await?;
    crate::outln!(
        "rollout {name}: pod template images set ({}); the new revision rolls out by the Rollout's strategy",
        images.join(" ")
    )?;
    Ok(())
}

/// Why the images could not be set.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("{0:?} is not CONTAINER=IMAGE")]
    Syntax(String),
    #[error("the pod template has no container {name:?} (it has: {have})")]
    NoContainer { name: String, have: String },
    #[error(
        "the Rollout runs the pod template of Deployment {0:?} (spec.workloadRef): set the image there, e.g. `kubectl set image deployment/{0} ...` or in Git"
    )]
    AdoptsDeployment(String),
}

/// Parse `CONTAINER=IMAGE`; `*=IMAGE` sets every container.
pub fn parse_pair(text: &str) -> Result<(String, String), Error> {
    match text.split_once('=') {
        Some((name, image)) if !name.is_empty() && !image.is_empty() && !image.contains('=') => {
            Ok((name.to_string(), image.to_string()))
        }
        _ => Err(Error::Syntax(text.into())),
    }
}

/// [`parse_pair`] for clap, so a bad pair is a usage error before any cluster is asked.
pub fn parse_arg(text: &str) -> Result<(String, String), String> {
    parse_pair(text).map_err(|e| e.to_string())
}

/// The merge patch that sets `pairs` on `rollout`'s containers and init
/// containers; `None` when every image is already what is asked.
pub fn patch(rollout: &Rollout, pairs: &[(String, String)]) -> Result<Option<Value>, Error> {
    if let Some(reference) = &rollout.spec.workload_ref {
        return Err(Error::AdoptsDeployment(reference.name.clone()));
    }
    let pod = rollout.spec.template.spec.clone().unwrap_or_default();
    let mut containers = pod.containers;
    let mut init = pod.init_containers.unwrap_or_default();
    for (name, image) in pairs {
        let mut found = false;
        for container in containers.iter_mut().chain(init.iter_mut()) {
            if name == "*" || &container.name == name {
                container.image = Some(image.clone());
                found = true;
            }
        }
        if !found {
            let have: Vec<&str> = containers
                .iter()
                .chain(init.iter())
                .map(|c| c.name.as_str())
                .collect();
            return Err(Error::NoContainer {
                name: name.clone(),
                have: have.join(", "),
            });
        }
    }
    let before = rollout.spec.template.spec.clone().unwrap_or_default();
    let unchanged = |now: &[Container], then: &[Container]| now == then;
    if unchanged(&containers, &before.containers)
        && unchanged(&init, &before.init_containers.unwrap_or_default())
    {
        return Ok(None);
    }
    let mut spec = json!({ "containers": containers });
    if !init.is_empty() {
        spec["initContainers"] = json!(init);
    }
    Ok(Some(json!({
        "metadata": { "resourceVersion": rollout.metadata.resource_version },
        "spec": { "template": { "spec": spec } },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit::rollout;

    #[test]
    fn pairs_parse_and_bad_ones_say_why() {
        assert_eq!(parse_pair("web=web:2"), Ok(("web".into(), "web:2".into())));
        assert_eq!(
            parse_pair("web=registry:5000/web:2"),
            Ok(("web".into(), "registry:5000/web:2".into()))
        );
        for bad in ["web", "=web:2", "web=", "a=b=c"] {
            assert_eq!(parse_pair(bad), Err(Error::Syntax(bad.into())), "{bad}");
        }
    }

    #[test]
    fn the_patch_sets_the_named_container_and_keeps_the_rest() {
        let mut web = rollout(1, None, false);
        web.metadata.resource_version = Some("42".into());
        let result = patch(&web, &[("web".into(), "web:2".into())]);
        let Ok(Some(body)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(body["metadata"]["resourceVersion"], "42");
        assert_eq!(
            body["spec"]["template"]["spec"]["containers"][0]["image"],
            "web:2"
        );
        assert_eq!(
            body["spec"]["template"]["spec"]["containers"][0]["name"],
            "web"
        );
        assert_eq!(patch(&web, &[("web".into(), "web:1".into())]), Ok(None));
        let missing = patch(&web, &[("sidecar".into(), "x:1".into())]);
        assert_eq!(
            missing,
            Err(Error::NoContainer {
                name: "sidecar".into(),
                have: "web".into()
            })
        );
    }

    #[test]
    fn a_rollout_adopting_a_deployment_points_to_the_deployment() {
        let mut adopting = rollout(1, None, false);
        adopting.spec.template = Default::default();
        adopting.spec.workload_ref = Some(crate::crd::WorkloadRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "shop".into(),
            scale_down: None,
        });
        let refused = patch(&adopting, &[("web".into(), "web:2".into())]);
        assert_eq!(refused, Err(Error::AdoptsDeployment("shop".into())));
        let said = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(said.contains("kubectl set image deployment/shop"), "{said}");
    }
}
