//! What the traffic generator reads from the API server: the Rollout, its
//! HTTPRoute or GRPCRoute weights (or, without a router, its Ready pods; for a blue-green
//! Rollout, the pods behind its active Service), and the image of each
//! revision.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use serde_json::Value;

use crate::route_match::{RequestHeader, mirrors, rule_for};
use crate::split::{Backend, Shares, shares};

/// The label Sluice puts on every pod of a revision.
pub const HASH_LABEL: &str = "sluice.dev/pod-template-hash";

/// One look at the cluster.
#[derive(Debug, Default, Clone)]
pub struct View {
    pub shares: Shares,
    /// Image of the first container, per pod-template hash.
    pub images: BTreeMap<String, String>,
    /// "httproute/<name>", "grpcroute/<name>", "service/<name>" or "replica-ratio".
    pub source: String,
    /// Where smoke-test requests go: the Ready pods behind the smoke Service.
    pub smoke: Shares,
    /// Copies of the plain requests: per hash, the fraction of them mirrored there.
    pub mirrored: Shares,
    /// Per configured header, in order: where the requests carrying it go.
    pub headers: Vec<HeaderRouting>,
}

/// Where the requests carrying one header go (by the route rule that
/// matches it; the plain split without a router), and what is mirrored.
#[derive(Debug, Default, Clone)]
pub struct HeaderRouting {
    pub shares: Shares,
    pub mirrored: Shares,
}

pub fn rollout_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("sluice.dev", "v1alpha1", "Rollout"),
        "rollouts",
    )
}

/// A Gateway API route resource: `("HTTPRoute", "httproutes")` or the GRPCRoute pair.
fn route_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind),
        plural,
    )
}

fn label_selector(labels: &serde_json::Map<String, Value>) -> String {
    labels
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// A pod kube-proxy sends traffic to: Ready and not terminating.
pub fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn ready_hashes(pods: &Api<Pod>, selector: &str) -> Result<Vec<String>> {
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .with_context(|| format!("list pods {selector}"))?;
    Ok(list
        .items
        .iter()
        .filter(|p| is_ready(p))
        .filter_map(|p| p.metadata.labels.as_ref()?.get(HASH_LABEL).cloned())
        .collect())
}

/// The Ready pods behind Service `name`, as a backend of `weight`.
async fn service_backend(
    services: &Api<Service>,
    pods: &Api<Pod>,
    name: &str,
    weight: f64,
) -> Result<Backend> {
    let service = services
        .get(name)
        .await
        .with_context(|| format!("get Service {name}"))?;
    let selector = service
        .spec
        .and_then(|s| s.selector)
        .map(|s| {
            s.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let hashes = if selector.is_empty() {
        Vec::new()
    } else {
        ready_hashes(pods, &selector).await?
    };
    Ok(Backend {
        weight,
        ready_pod_hashes: hashes,
    })
}

/// Where the requests of one rule go, and what that rule mirrors.
struct RuleTraffic {
    backends: Vec<Backend>,
    mirrored: Shares,
}

async fn rule_traffic(
    services: &Api<Service>,
    pods: &Api<Pod>,
    rule: &Value,
) -> Result<RuleTraffic> {
    let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
    let mut backends = Vec::new();
    for backend_ref in refs {
        let Some(service_name) = backend_ref["name"].as_str() else {
            continue;
        };
        // Gateway API: an omitted weight means 1.
        let weight = backend_ref["weight"].as_f64().unwrap_or(1.0);
        backends.push(service_backend(services, pods, service_name, weight).await?);
    }
    let mut mirrored = Shares::new();
    for mirror in mirrors(rule) {
        let copies = shares(&[service_backend(services, pods, &mirror.service, 1.0).await?]);
        for (hash, share) in copies {
            *mirrored.entry(hash).or_default() += share * mirror.fraction;
        }
    }
    Ok(RuleTraffic { backends, mirrored })
}

/// Read the live traffic split of Rollout `name` in `namespace`; smoke
/// requests go to Service `smoke_service`, if given; requests carrying
/// each of `headers` are routed by the route rule that matches it.
pub async fn look(
    client: &Client,
    namespace: &str,
    name: &str,
    smoke_service: Option<&str>,
    headers: &[RequestHeader],
) -> Result<View> {
    let rollouts: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &rollout_resource());
    let rollout = rollouts
        .get(name)
        .await
        .with_context(|| format!("get Rollout {namespace}/{name}"))?;
    let spec = &rollout.data["spec"];
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let strategy = &spec["strategy"];
    let blue_green = &strategy["blueGreen"];
    let gateway = if blue_green.is_object() {
        &blue_green["trafficRouting"]["gatewayAPI"]
    } else {
        &strategy["canary"]["trafficRouting"]["gatewayAPI"]
    };

    let mut routed = None;
    // An HTTPRoute or a GRPCRoute: the same rules, backendRefs and filters.
    let named = match (gateway["httpRoute"].as_str(), gateway["grpcRoute"].as_str()) {
        (Some(name), _) if !name.is_empty() => Some((name, "HTTPRoute", "httproutes", "httproute")),
        (_, Some(name)) => Some((name, "GRPCRoute", "grpcroutes", "grpcroute")),
        _ => None,
    };
    let (backends, source) = if let Some((route_name, kind, plural, label)) = named {
        let route_ns = gateway["namespace"].as_str().unwrap_or(namespace);
        let routes: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), route_ns, &route_resource(kind, plural));
        let route = routes
            .get(route_name)
            .await
            .with_context(|| format!("get {kind} {route_ns}/{route_name}"))?;
        let services: Api<Service> = Api::namespaced(client.clone(), route_ns);
        // Users are modelled as hitting the first rule (the one the examples
        // route); those carrying a header, the rule that matches it.
        let rules = route.data["spec"]["rules"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let plain = rule_traffic(
            &services,
            &pods,
            &rules.first().cloned().unwrap_or_default(),
        )
        .await?;
        let mut by_header = Vec::with_capacity(headers.len());
        for header in headers {
            let routing = match rules.get(rule_for(&rules, Some(header))) {
                Some(rule) => {
                    let traffic = rule_traffic(&services, &pods, rule).await?;
                    HeaderRouting {
                        shares: shares(&traffic.backends),
                        mirrored: traffic.mirrored,
                    }
                }
                None => HeaderRouting {
                    shares: shares(&plain.backends),
                    mirrored: plain.mirrored.clone(),
                },
            };
            by_header.push(routing);
        }
        routed = Some((plain.mirrored, by_header));
        (plain.backends, format!("{label}/{route_name}"))
    } else if let Some(active) = blue_green["activeService"].as_str() {
        // Blue-green without a router: users reach whatever the active Service selects.
        let services: Api<Service> = Api::namespaced(client.clone(), namespace);
        let backend = service_backend(&services, &pods, active, 1.0).await?;
        (vec![backend], format!("service/{active}"))
    } else {
        let labels = spec["selector"]["matchLabels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let hashes = ready_hashes(&pods, &label_selector(&labels)).await?;
        (
            vec![Backend {
                weight: 1.0,
                ready_pod_hashes: hashes,
            }],
            "replica-ratio".to_string(),
        )
    };
    let smoke = match smoke_service {
        Some(service) => {
            let services: Api<Service> = Api::namespaced(client.clone(), namespace);
            shares(&[service_backend(&services, &pods, service, 1.0).await?])
        }
        None => Shares::default(),
    };

    let replica_sets: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(client.clone(), namespace);
    let mut images = BTreeMap::new();
    for rs in replica_sets
        .list(&ListParams::default().labels(&format!("sluice.dev/rollout={name}")))
        .await
        .context("list ReplicaSets")?
        .items
    {
        let hash = rs
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HASH_LABEL))
            .cloned();
        let image = rs
            .spec
            .and_then(|s| s.template)
            .and_then(|t| t.spec)
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.image);
        if let (Some(hash), Some(image)) = (hash, image) {
            images.insert(hash, image);
        }
    }
    let plain = shares(&backends);
    let (mirrored, headers) = routed.unwrap_or_else(|| {
        let same = HeaderRouting {
            shares: plain.clone(),
            mirrored: Shares::new(),
        };
        (Shares::new(), vec![same; headers.len()])
    });
    Ok(View {
        shares: plain,
        images,
        source,
        smoke,
        mirrored,
        headers,
    })
}
