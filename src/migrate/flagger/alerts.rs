//! Flagger `AlertProvider` → Sluice `AlertTarget` (and a Secret for a
//! plain-text webhook address).

use serde_json::{Value, json};

use crate::crd::AlertTarget;
use crate::migrate::report::{Fields, Report};
use crate::migrate::{Converted, Doc, metadata, yaml};

/// Convert a Flagger `AlertProvider` into an AlertTarget.
pub fn alert_provider(doc: &Doc, report: &mut Report) -> Converted {
    let mut out = Converted::default();
    let meta = metadata(doc, report);
    let mut top = Fields::new(doc.source.value.clone(), "", report);
    for key in ["apiVersion", "kind", "metadata", "status"] {
        top.take(key);
    }
    let mut spec = top.object("spec", report);
    top.finish(report, &[]);
    let kind = spec.string("type", report).unwrap_or_default();
    let address = spec.string("address", report);
    let mut secret_ref = spec.object("secretRef", report);
    let secret = secret_ref.string("name", report);
    secret_ref.finish(report, &[]);
    spec.finish(
        report,
        &[
            ("channel", "a Slack incoming webhook posts to the channel it was made for; Sluice does not override it"),
            ("username", "Sluice posts under the webhook's own name"),
            ("proxy", "Sluice uses the controller's HTTPS_PROXY environment, not a per-target proxy"),
        ],
    );
    let target_type = match kind.as_str() {
        "slack" => "Slack",
        "msteams" => "Teams",
        other => {
            report.dropped(
                "spec.type",
                format!("type {other:?}: Sluice formats alerts for Slack, Teams, PagerDuty and a signed JSON webhook; the document is left out (an AlertTarget of type Webhook with a relay is the nearest)"),
            );
            return out;
        }
    };
    let name = doc.name().to_string();
    let secret_name = match (secret, address) {
        (Some(secret), address) => {
            if address.is_some() {
                report.dropped(
                    "spec.address",
                    "secretRef wins (as in Flagger); the plain-text address is left out",
                );
            }
            report.attention(
                "spec.secretRef",
                format!("Flagger reads the URL from key `address` of Secret {secret}; Sluice reads key `url`: add it to the Secret"),
            );
            secret
        }
        (None, Some(address)) => {
            let secret = format!("{name}-alert-url");
            let mut value = json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret},
                "type": "Opaque",
                "stringData": {"url": address},
            });
            if let Some(ns) = doc.namespace() {
                value["metadata"]["namespace"] = json!(ns);
            }
            out.documents.push(yaml::to_yaml(&value));
            report.attention(
                "spec.address",
                format!("the webhook URL was in plain text; it is now in Secret {secret} in the output: keep it out of Git in plain text (SOPS, Sealed Secrets, External Secrets)"),
            );
            secret
        }
        (None, None) => {
            report.attention(
                "spec",
                format!("no address or secretRef (Flagger's global setting applies); create Secret {name} with key `url`"),
            );
            name.clone()
        }
    };
    let value = json!({
        "apiVersion": crate::crd::API_VERSION,
        "kind": "AlertTarget",
        "metadata": meta,
        "spec": {"type": target_type, "secretName": secret_name},
    });
    out.documents.insert(
        0,
        yaml::render_typed::<AlertTarget>(value, "AlertTarget", report),
    );
    out
}

/// A Canary's `analysis.alerts` as the Rollout's subscriptions: Flagger's
/// severity (`error`, `warn`, `info`) picks the events.
pub(super) fn subscriptions(
    analysis: &mut Fields,
    namespace: Option<&str>,
    report: &mut Report,
) -> Vec<Value> {
    let mut subscriptions = Vec::new();
    for (i, alert) in analysis.list("alerts", report).into_iter().enumerate() {
        let path = format!("spec.analysis.alerts[{i}]");
        let mut alert = Fields::new(alert, &path, report);
        alert.take("name");
        let severity = alert
            .string("severity", report)
            .unwrap_or_else(|| "info".into());
        let mut provider = alert.object("providerRef", report);
        let name = provider.string("name", report).unwrap_or_default();
        if let Some(ns) = provider.string("namespace", report)
            && Some(ns.as_str()) != namespace
        {
            report.attention(
                &format!("{path}.providerRef.namespace"),
                format!("AlertProvider {name} is in namespace {ns}: a Sluice AlertTarget must be in the Rollout's namespace (or use a ClusterAlertTarget with clusterScope: true)"),
            );
        }
        provider.finish(report, &[]);
        alert.finish(report, &[]);
        let events = match severity.as_str() {
            "error" => json!(["aborted", "revertFailed"]),
            "warn" => json!([
                "aborted",
                "revertFailed",
                "analysisError",
                "inconclusive",
                "paused"
            ]),
            _ => json!([
                "aborted",
                "revertFailed",
                "analysisError",
                "inconclusive",
                "paused",
                "promoted",
                "stepCompleted",
                "reverted"
            ]),
        };
        subscriptions.push(json!({"target": name, "events": events}));
    }
    subscriptions
}
