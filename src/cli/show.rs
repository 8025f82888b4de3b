//! Rendering a Rollout's status for people.

use std::fmt::Write as _;

use kube::ResourceExt;

use crate::crd::Rollout;

/// Multi-line summary of a Rollout.
pub fn render(rollout: &Rollout) -> String {
    let mut out = String::new();
    let status = rollout.status.clone().unwrap_or_default();
    let phase = status
        .phase
        .map(|p| p.to_string())
        .unwrap_or_else(|| "Unknown (not reconciled yet)".into());
    let ns = rollout.namespace().unwrap_or_default();
    let _ = writeln!(out, "Rollout {} (namespace {ns})", rollout.name_any());
    let _ = writeln!(out, "  Phase:    {phase}");
    if let Some(message) = &status.message {
        let _ = writeln!(out, "  Message:  {message}");
    }
    if let Some(step) = &status.step_label {
        let _ = writeln!(out, "  Step:     {step}");
    }
    let routing = status.traffic_routing.as_deref().unwrap_or("-");
    let _ = writeln!(
        out,
        "  Weight:   canary {}% (step wants {}%), routing: {routing}",
        status.current_weight, status.desired_weight
    );
    let stable = status.stable_revision.as_deref().unwrap_or("-");
    let _ = writeln!(
        out,
        "  Stable:   {stable} ({} ready)",
        status.stable_ready_replicas
    );
    if let Some(canary) = &status.canary_revision {
        let _ = writeln!(
            out,
            "  Canary:   {canary} ({} ready)",
            status.canary_ready_replicas
        );
    }
    if let Some(run) = &status.current_analysis {
        let verdict = run.phase.as_deref().unwrap_or("Pending");
        let detail = run
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let _ = writeln!(out, "  Analysis: {} {verdict}{detail}", run.name);
    }
    if let Some(run) = &status.background_analysis {
        let verdict = run.phase.as_deref().unwrap_or("Pending");
        let detail = run
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let _ = writeln!(out, "  Background: {} {verdict}{detail}", run.name);
    }
    if let Some(abort) = &status.abort {
        let _ = writeln!(
            out,
            "  Aborted:  {} at step {} ({}): {}",
            abort.reason,
            abort.step_index.saturating_add(1),
            abort.at.0,
            abort.message
        );
    }
    let conditions: Vec<String> = status
        .conditions
        .iter()
        .map(|c| format!("{}={} ({})", c.type_, c.status, c.reason))
        .collect();
    if !conditions.is_empty() {
        let _ = writeln!(out, "  Conditions: {}", conditions.join(", "));
    }
    out
}
