//! An [`Alert`] in each receiver's own format: Slack blocks, a Teams
//! Adaptive Card, a PagerDuty Events v2 event. Same facts, no I/O.

use serde_json::{Value, json};

use super::message::{Alert, metric_line, truncate};

/// The one-line title every format leads with.
fn title(alert: &Alert) -> String {
    let what = match alert.event {
        "aborted" => "aborted",
        "reverted" => "reverted in Git",
        "revertFailed" => "Git revert failed",
        "inconclusive" => "analysis inconclusive",
        "paused" => "paused",
        "promoted" => "promoted",
        "stepCompleted" => "step completed",
        "analysisError" => "analysis error",
        _ => "recovered",
    };
    format!(
        "Rollout {what}: {}/{}",
        alert.rollout.namespace, alert.rollout.name
    )
}

/// Facts shown as fields (Slack) or a fact set (Teams).
fn facts(alert: &Alert) -> Vec<(&'static str, String)> {
    let mut facts = vec![("Severity", alert.severity.to_string())];
    if let Some(image) = &alert.images.canary {
        facts.push(("Canary image", image.clone()));
    }
    if let Some(image) = &alert.images.stable {
        facts.push(("Stable image", image.clone()));
    }
    if let Some(step) = &alert.step {
        let of = step.total.map(|t| format!("/{t}")).unwrap_or_default();
        facts.push(("Step", format!("{}{of} at {}%", step.number, step.weight)));
    }
    if let Some(reason) = &alert.reason {
        facts.push(("Reason", reason.clone()));
    }
    if matches!(alert.event, "aborted" | "reverted" | "revertFailed") {
        let git = match (&alert.git.pull_request, &alert.git.revert_commit) {
            (Some(pr), _) => format!("{} ({pr})", alert.git.state),
            (None, Some(commit)) => format!("{} by {commit}", alert.git.state),
            _ => format!("{}: {}", alert.git.state, alert.git.message),
        };
        facts.push(("Git", git));
    }
    facts
}

fn metric_lines(alert: &Alert) -> Vec<String> {
    alert
        .analysis
        .iter()
        .flat_map(|a| a.metrics.iter().map(metric_line))
        .collect()
}

/// Slack incoming webhook body: Block Kit with a plain-text fallback.
pub fn slack(alert: &Alert) -> Value {
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&title(alert), 150)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&alert.summary, 3000)}}),
    ];
    let fields: Vec<Value> = facts(alert)
        .into_iter()
        .take(10)
        .map(|(k, v)| json!({"type": "mrkdwn", "text": truncate(&format!("*{k}*\n{v}"), 2000)}))
        .collect();
    blocks.push(json!({"type": "section", "fields": fields}));
    let metrics = metric_lines(alert);
    if !metrics.is_empty() {
        let text = format!("*Metrics*\n• {}", metrics.join("\n• "));
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, 3000)}}),
        );
    }
    if !alert.links.is_empty() {
        let buttons: Vec<Value> = alert
            .links
            .iter()
            .take(5)
            .map(|l| json!({"type": "button", "text": {"type": "plain_text", "text": truncate(&l.title, 75)}, "url": l.url}))
            .collect();
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("Sluice · event `{}`", alert.id)}]}));
    json!({"text": truncate(&alert.summary, 3000), "blocks": blocks})
}

/// Teams workflow webhook body: one Adaptive Card in a message.
pub fn teams(alert: &Alert) -> Value {
    let color = match alert.severity {
        "critical" | "error" => "Attention",
        "warning" => "Warning",
        _ => "Good",
    };
    let facts: Vec<Value> = facts(alert)
        .into_iter()
        .map(|(k, v)| json!({"title": k, "value": v}))
        .collect();
    let mut body = vec![
        json!({"type": "TextBlock", "text": title(alert), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true}),
        json!({"type": "TextBlock", "text": alert.summary, "wrap": true}),
        json!({"type": "FactSet", "facts": facts}),
    ];
    for line in metric_lines(alert) {
        body.push(json!({"type": "TextBlock", "text": line, "wrap": true, "fontType": "Monospace", "size": "Small"}));
    }
    let actions: Vec<Value> = alert
        .links
        .iter()
        .map(|l| json!({"type": "Action.OpenUrl", "title": l.title, "url": l.url}))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            }
        }]
    })
}

/// PagerDuty's dedup key for the incident an event opens.
pub fn dedup_key(alert: &Alert) -> String {
    let id = alert.resolves.as_deref().unwrap_or(&alert.id);
    truncate(
        &format!(
            "sluice/{}/{}/{id}",
            alert.rollout.namespace, alert.rollout.name
        ),
        255,
    )
}

/// PagerDuty Events API v2 body: `trigger`, or `resolve` for a recovery.
pub fn pagerduty(alert: &Alert, routing_key: &str) -> Value {
    if alert.resolves.is_some() {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key(alert),
        });
    }
    let links: Vec<Value> = alert
        .links
        .iter()
        .map(|l| json!({"href": l.url, "text": l.title}))
        .collect();
    let mut payload = json!({
        "summary": truncate(&alert.summary, 1024),
        "source": format!("{}/{}", alert.rollout.namespace, alert.rollout.name),
        "severity": alert.severity,
        "component": alert.rollout.name,
        "group": alert.rollout.namespace,
        "class": alert.event,
        "custom_details": alert,
    });
    if let Some(at) = &alert.occurred_at {
        payload["timestamp"] = json!(at);
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(alert),
        "client": "Sluice",
        "payload": payload,
        "links": links,
    })
}
