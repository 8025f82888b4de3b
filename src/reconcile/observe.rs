//! Observe: read the cluster state that belongs to one Rollout.
//!
//! Missing objects are data (`Lookup::Missing`) for the planner to judge;
//! only transport and permission failures are errors.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client, Resource, ResourceExt};

use super::Error;
use crate::crd::{AnalysisRun, Rollout};
use crate::engine::claims;
use crate::engine::claims::{ROUTE_CLAIM_ANNOTATION, SERVICE_CLAIM_LABEL};
use crate::engine::revisions::ROLLOUT_LABEL;
use crate::engine::route;
use crate::engine::spec::{RouteKind, Routing, Settings};
use crate::engine::{Lookup, Observed, RouteState, ServiceState};

/// The Gateway API HTTPRoute resource (v1).
pub fn http_route_resource() -> ApiResource {
    route_resource(RouteKind::Http)
}

/// The Gateway API route resource of `kind` (v1: HTTPRoute and GRPCRoute).
pub fn route_resource(kind: RouteKind) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind.kind()),
        kind.plural(),
    )
}

/// Gather everything `plan` needs for `rollout`.
/// `settings` is the Rollout's validated spec; without it (an invalid spec)
/// only what the Rollout owns is read, since the plan acts on nothing else.
pub async fn observe(
    client: &Client,
    rollout: &Rollout,
    settings: Option<&Settings>,
) -> Result<Observed, Error> {
    let namespace = rollout.namespace().unwrap_or_else(|| "default".into());
    let name = rollout.name_any();
    let selector = format!("{ROLLOUT_LABEL}={name}");
    let owned = |refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]| {
        refs.iter()
            .any(|o| Some(&o.uid) == rollout.meta().uid.as_ref())
    };
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
    let replica_sets = rs_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| Error::Read("ReplicaSets", e))?
        .items
        .into_iter()
        .filter(|rs| owned(rs.owner_references()))
        .collect();
    let run_api: Api<AnalysisRun> = Api::namespaced(client.clone(), &namespace);
    let analysis_runs = run_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| Error::Read("AnalysisRuns", e))?
        .items
        .into_iter()
        .filter(|r| owned(r.owner_references()))
        .collect();
    let mut observed = Observed {
        replica_sets,
        analysis_runs,
        ..Observed::default()
    };
    let svc_api: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let rollout_api: Api<Rollout> = Api::namespaced(client.clone(), &namespace);
    let Some(settings) = settings else {
        return Ok(observed);
    };
    for service in claims::referenced_services(settings) {
        let found = svc_api
            .get_opt(&service)
            .await
            .map_err(|e| Error::Read("Services", e))?;
        let state = match found {
            Some(svc) => {
                let claim = svc.labels().get(SERVICE_CLAIM_LABEL).cloned();
                Lookup::Found(ServiceState {
                    owner: live_claim(&rollout_api, rollout, claim).await?,
                    resource_version: svc.resource_version(),
                    selector: svc.spec.and_then(|s| s.selector).unwrap_or_default(),
                })
            }
            None => Lookup::Missing,
        };
        observed.services.insert(service, state);
    }
    if let Routing::GatewayApi {
        kind,
        namespace: route_namespace,
        name,
        ..
    } = settings.routing.clone()
    {
        if route_namespace != namespace
            && !route_granted(client, &route_namespace, &namespace, kind, &name).await?
        {
            // Gateway API's rule: another namespace's route needs its consent.
            observed.http_route_refused = Some(route::kind_refusal(
                &namespace,
                kind.kind(),
                &route_namespace,
                &name,
            ));
            return Ok(observed);
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &route_namespace, &route_resource(kind));
        let found = match api.get_opt(&name).await {
            Ok(found) => found,
            // Gateway API CRDs not installed: the route cannot exist.
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(e) => {
                let what = match kind {
                    RouteKind::Http => "HTTPRoutes",
                    RouteKind::Grpc => "GRPCRoutes",
                };
                return Err(Error::Read(what, e));
            }
        };
        let claim = match &found {
            Some(route) => route.annotations().get(ROUTE_CLAIM_ANNOTATION).cloned(),
            None => None,
        };
        let owner = match claim.as_deref().and_then(|c| c.split_once('/')) {
            Some((claim_ns, claim_name)) => {
                let api: Api<Rollout> = Api::namespaced(client.clone(), claim_ns);
                live_claim(&api, rollout, Some(claim_name.to_string()))
                    .await?
                    .map(|name| format!("{claim_ns}/{name}"))
            }
            None => None,
        };
        observed.http_route = Some(match found {
            Some(route) => Lookup::Found(RouteState {
                kind,
                owner,
                resource_version: route.resource_version(),
                rules: route
                    .data
                    .get("spec")
                    .and_then(|s| s.get("rules"))
                    .cloned()
                    .unwrap_or_default(),
                namespace: route_namespace.clone(),
                service_namespace: namespace.clone(),
            }),
            None => Lookup::Missing,
        });
    }
    Ok(observed)
}

/// The Gateway API ReferenceGrant resource (v1beta1, served by every release).
fn reference_grant_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1beta1", "ReferenceGrant"),
        "referencegrants",
    )
}

/// Whether a ReferenceGrant in `route_namespace` lets Rollouts of
/// `rollout_namespace` use the route `name` of `kind`. No ReferenceGrant CRD means no grant.
async fn route_granted(
    client: &Client,
    route_namespace: &str,
    rollout_namespace: &str,
    kind: RouteKind,
    name: &str,
) -> Result<bool, Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), route_namespace, &reference_grant_resource());
    let grants = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(e) => return Err(Error::Read("ReferenceGrants", e)),
    };
    let grants: Vec<serde_json::Value> = grants
        .into_iter()
        .map(|g| serde_json::Value::Object(g.data.as_object().cloned().unwrap_or_default()))
        .collect();
    Ok(route::kind_granted(
        &grants,
        rollout_namespace,
        kind.kind(),
        name,
    ))
}

/// The claimed Rollout's name if it still exists (this Rollout always does);
/// the claim of a deleted Rollout is stale and may be taken over.
async fn live_claim(
    api: &Api<Rollout>,
    rollout: &Rollout,
    claim: Option<String>,
) -> Result<Option<String>, Error> {
    let Some(name) = claim else { return Ok(None) };
    let same_namespace = api.namespace() == rollout.namespace().as_deref();
    if same_namespace && name == rollout.name_any() {
        return Ok(Some(name));
    }
    let exists = api
        .get_metadata_opt(&name)
        .await
        .map_err(|e| Error::Read("Rollouts", e))?
        .is_some();
    Ok(exists.then_some(name))
}
