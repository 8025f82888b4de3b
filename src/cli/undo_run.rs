//! Running `sluice rollout undo`: by a spec patch, or through Git when the
//! Rollout has `spec.git` (Sluice's revert machinery, run from the CLI).

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use super::rollout::Error;
use super::undo::{choose, merge_diff, template_of};
use crate::crd::Rollout;
use crate::engine::hash::pod_template_hash;
use crate::engine::revisions::{ROLLOUT_LABEL, Revision};
use crate::revert::RevertOutcome;

/// Merge-patch the Rollout; a 409 (it changed since it was read) is `Error::Conflict`.
pub async fn patch_spec(api: &Api<Rollout>, name: &str, body: &Value) -> Result<(), Error> {
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(body))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Err(Error::Conflict(name.into())),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(Error::NotFound(name.into())),
        Err(err) => Err(err.into()),
    }
}

/// `sluice rollout undo NAME [--to-revision N] [--spec-patch]`.
pub async fn run(
    client: &Client,
    namespace: &str,
    name: &str,
    to: Option<i64>,
    spec_patch: bool,
) -> Result<(), Error> {
    let api: Api<Rollout> = Api::namespaced(client.clone(), namespace);
    let rollout = super::get::rollout(&api, name).await?;
    if let Some(reference) = &rollout.spec.workload_ref {
        return Err(super::undo::Error::AdoptsDeployment(reference.name.clone()).into());
    }
    let owned = ListParams::default().labels(&format!("{ROLLOUT_LABEL}={name}"));
    let replica_sets: Vec<ReplicaSet> = Api::<ReplicaSet>::namespaced(client.clone(), namespace)
        .list(&owned)
        .await?
        .items
        .into_iter()
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == rollout.metadata.uid.as_ref())
        })
        .collect();
    let revisions: Vec<Revision> = replica_sets
        .iter()
        .filter_map(Revision::from_replica_set)
        .collect();
    let current = pod_template_hash(&rollout.spec.template);
    let chosen = choose(&revisions, &current, to)?;
    let Some(rs) = replica_sets.iter().find(|rs| rs.name_any() == chosen.name) else {
        return Err(Error::NotFound(chosen.name.clone()));
    };
    let (template, exact) = template_of(rs, chosen, &rollout.spec.template);
    let images = images(&template).join(", ");
    if rollout.spec.git.is_some() && !spec_patch {
        return through_git(client, &rollout, &template, chosen.number).await;
    }
    let now = serde_json::to_value(&rollout.spec.template).unwrap_or_default();
    let then = serde_json::to_value(&template).unwrap_or_default();
    let body = json!({
        "metadata": { "resourceVersion": rollout.metadata.resource_version },
        "spec": { "template": merge_diff(&now, &then) },
    });
    patch_spec(&api, name, &body).await?;
    let how = if exact {
        format!("its ReplicaSet {} is used again", chosen.name)
    } else {
        "its ReplicaSet holds defaults the API server filled in that could not all be told apart, so it rolls out as a new revision".into()
    };
    crate::outln!(
        "rollout {name}: undone by a spec patch: the pod template of revision {} ({}) [{images}] is back in the Rollout; {how}",
        chosen.number,
        chosen.hash
    )?;
    if rollout.spec.git.is_some() {
        crate::outln!(
            "rollout {name}: note: spec.git is set, and the next GitOps sync puts the template from Git back"
        )?;
    }
    Ok(())
}

/// Revert, in the Rollout's Git repository, the commit that brought the
/// current image, so that Git sets the image of the revision chosen.
async fn through_git(
    client: &Client,
    rollout: &Rollout,
    target: &PodTemplateSpec,
    number: i64,
) -> Result<(), Error> {
    let name = rollout.name_any();
    let git_error = |why: String| Error::Git(name.clone(), why);
    let current = containers(&rollout.spec.template);
    let wanted = containers(target);
    let Some((now, then)) = current.iter().find_map(|(container, image)| {
        let then = wanted.iter().find(|(c, _)| c == container)?.1.clone();
        (&then != image).then(|| (image.clone(), then))
    }) else {
        return Err(git_error(format!(
            "revision {number} has the same images as the current template; a Git undo reverts an image commit (use --spec-patch to restore its template in the cluster)"
        )));
    };
    let workspace = tempfile::tempdir().map_err(|e| git_error(e.to_string()))?;
    let reason = format!(
        "an operator asked to undo to revision {number} (`sluice rollout undo`), image {then}"
    );
    // `prepared` holds the key files until the revert ends.
    let prepared = crate::reconcile::git_source::prepare_request(
        client,
        rollout,
        workspace.path(),
        (now.clone(), then.clone()),
        reason,
    )
    .await
    .map_err(git_error)?;
    let target = prepared.request.target.clone();
    let outcome = crate::revert::revert(&prepared.request)
        .await
        .map_err(|e| git_error(e.to_string()))?;
    let place = format!("branch {} of {}", target.branch, target.url);
    match outcome {
        RevertOutcome::Reverted {
            reverted,
            revert,
            pull_request,
            ..
        } => match pull_request {
            Some(url) => crate::outln!(
                "rollout {name}: undone through Git: pull request {url} reverts commit {reverted} ({now} → {then}); merge it and your GitOps tool syncs it"
            )?,
            None => crate::outln!(
                "rollout {name}: undone through Git: commit {revert} on {place} reverts commit {reverted} ({now} → {then}); your GitOps tool syncs it"
            )?,
        },
        RevertOutcome::AlreadyReverted {
            reverted, revert, ..
        } => crate::outln!(
            "rollout {name}: Git already reverts commit {reverted} (by {revert} on {place}); nothing pushed"
        )?,
        RevertOutcome::NotNeeded { reason } => {
            return Err(Error::NothingTo(
                name,
                format!("nothing to undo in Git: {reason}"),
            ));
        }
    }
    Ok(())
}

fn containers(template: &PodTemplateSpec) -> Vec<(String, String)> {
    template
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect()
}

fn images(template: &PodTemplateSpec) -> Vec<String> {
    containers(template).into_iter().map(|(_, i)| i).collect()
}
