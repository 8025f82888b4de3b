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
        "  Stable:   {stable}{} ({} ready)",
        images(&status.stable_images),
        status.stable_ready_replicas
    );
    if let Some(canary) = &status.canary_revision {
        let _ = writeln!(
            out,
            "  Canary:   {canary}{} ({} ready)",
            images(&status.canary_images),
            status.canary_ready_replicas
        );
    }
    if let Some(run) = &status.current_analysis {
        let verdict = run.phase.unwrap_or_default();
        let detail = run
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let _ = writeln!(out, "  Analysis: {} {verdict}{detail}", run.name);
    }
    if let Some(run) = &status.background_analysis {
        let verdict = run.phase.unwrap_or_default();
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
    if let Some(bg) = &status.blue_green {
        let mut line = format!(
            "  BlueGreen: {} (active {}, preview {})",
            bg.stage,
            bg.active_revision.as_deref().unwrap_or("-"),
            bg.preview_revision.as_deref().unwrap_or("-")
        );
        if let Some(at) = &bg.auto_promote_at {
            line.push_str(&format!(", auto-promotion at {}", at.0));
        }
        if let Some(at) = &bg.scale_down_at {
            line.push_str(&format!(", old version scales down at {}", at.0));
        }
        let _ = writeln!(out, "{line}");
    }
    match (&status.restart_progress, &status.restarted_at) {
        (Some(progress), _) => {
            let _ = writeln!(out, "  Restart:  {progress}");
        }
        (None, Some(at)) => {
            let _ = writeln!(out, "  Restart:  done (every pod newer than {})", at.0);
        }
        (None, None) => {}
    }
    // Only the revert of the current release: a later promotion ends it.
    if let Some(git) = status.current_git_revert() {
        let what = match (&git.pull_request, &git.revert_commit) {
            (Some(pr), _) => format!(" {pr}"),
            (None, Some(commit)) => format!(" {commit}"),
            _ => String::new(),
        };
        let _ = writeln!(out, "  Git:      {}{what}", git.state);
    }
    for known in &status.aborted_revisions {
        let reverted = known
            .revert_commit
            .as_deref()
            .map(|c| format!(", reverted by {c}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  Known bad: {}{} ({} at {}{reverted}); refused until `sluice rollout retry`",
            known.revision,
            images(&known.images),
            known.reason,
            known.at.0
        );
    }
    // The last few alerts, newest last.
    for alert in status.alerts.iter().rev().take(5).rev() {
        let event = alert.event_id.split('/').next().unwrap_or_default();
        let attempts = match alert.attempts {
            1 => "1 attempt".to_string(),
            n => format!("{n} attempts"),
        };
        let _ = writeln!(
            out,
            "  Alert:    {event} → {} {} ({attempts})",
            alert.target, alert.state
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

/// ` [image, image]`, or nothing when the images are not known.
fn images(images: &[String]) -> String {
    if images.is_empty() {
        String::new()
    } else {
        format!(" [{}]", images.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{AlertRecord, AlertState, GitRevertStatus, RevertState, RolloutStatus};
    use crate::engine::testkit::rollout as test_rollout;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn status_shows_the_git_revert_and_the_latest_alerts() {
        let mut rollout = test_rollout(2, None, false);
        let record = |i: usize, state: AlertState| AlertRecord {
            event_id: format!("stepCompleted/c/{i}"),
            target: "AlertTarget/shop/team-slack".into(),
            state,
            attempts: 1,
            at: Time(jiff::Timestamp::UNIX_EPOCH),
            message: None,
            pending_since: None,
            next_attempt: None,
            active_until: None,
        };
        let mut alerts: Vec<AlertRecord> = (0..6).map(|i| record(i, AlertState::Sent)).collect();
        alerts.push(AlertRecord {
            event_id: "aborted/c/1".into(),
            state: AlertState::Failed,
            attempts: 5,
            ..record(0, AlertState::Failed)
        });
        rollout.status = Some(RolloutStatus {
            git_revert: Some(GitRevertStatus {
                state: RevertState::Reverted,
                canary_revision: "c".into(),
                revert_commit: Some("abc123".into()),
                ..Default::default()
            }),
            alerts,
            ..Default::default()
        });
        let text = render(&rollout);
        assert!(text.contains("  Git:      Reverted abc123\n"), "{text}");
        // A later healthy release: the revert belongs to the past.
        if let Some(status) = rollout.status.as_mut() {
            if let Some(git) = status.git_revert.as_mut() {
                git.last_attempt = Some(Time(jiff::Timestamp::UNIX_EPOCH));
            }
            status.last_promotion = Some(crate::crd::PromotionStatus {
                revision: "d".into(),
                previous: "s".into(),
                at: Time(jiff::Timestamp::from_second(60).unwrap_or_default()),
            });
            status.stable_images = vec!["registry.example.com/web:1.0.2".into()];
            status.stable_revision = Some("d".into());
        }
        let later = render(&rollout);
        assert!(!later.contains("  Git:"), "{later}");
        assert!(
            later.contains("  Stable:   d [registry.example.com/web:1.0.2]"),
            "{later}"
        );
        assert_eq!(text.matches("  Alert:").count(), 5, "{text}");
        assert!(
            text.contains(
                "  Alert:    aborted → AlertTarget/shop/team-slack Failed (5 attempts)\n"
            ),
            "{text}"
        );
    }
}
