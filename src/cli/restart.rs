//! `sluice rollout restart NAME [--in DURATION]`: ask the controller to
//! restart the Rollout's pods without a new revision, by setting
//! `spec.restartAt` (as `kubectl argo rollouts restart` does).
//!
//! One JSON merge patch under its own field manager, so a GitOps engine
//! that takes over `kubectl`'s fields (Flux) leaves it alone.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::rollout::Error;
use crate::crd::Rollout;

/// Field manager of the CLI's `spec.restartAt` writes.
pub const FIELD_MANAGER: &str = "sluice-cli";

/// The merge patch that asks for a restart at `at`.
pub fn patch(at: Timestamp) -> Value {
    json!({ "spec": { "restartAt": at.to_string() } })
}

/// When the restart is due: now, or `delay` from now.
pub fn due(now: Timestamp, delay: Option<Duration>) -> Timestamp {
    let delay = delay
        .and_then(|d| SignedDuration::try_from(d).ok())
        .unwrap_or(SignedDuration::ZERO);
    // Pods' creation times are kept to the second: rounding up makes every
    // pod that exists now older than the restart (a pod created in the same
    // second counts as new), and the controller waits for that second.
    let at = now.saturating_add(delay).unwrap_or(now);
    let whole = at.as_second();
    let up = if at.subsec_nanosecond() > 0 {
        whole.saturating_add(1)
    } else {
        whole
    };
    Timestamp::from_second(up).unwrap_or(at)
}

/// `sluice rollout restart NAME [--in DURATION]`.
pub async fn run(api: &Api<Rollout>, name: &str, delay: Option<Duration>) -> Result<(), Error> {
    let at = due(Timestamp::now(), delay);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    match api.patch(name, &params, &Patch::Merge(&patch(at))).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {
            return Err(Error::NotFound(name.into()));
        }
        Err(err) => return Err(err.into()),
    }
    let when = match delay {
        Some(d) if !d.is_zero() => format!("at {at} (in {})", humantime::format_duration(d)),
        _ => "now".into(),
    };
    crate::outln!(
        "rollout {name}: restart requested {when} (spec.restartAt={at}); pods created before it are evicted one at a time while their ReplicaSet has its pods Ready; no new revision. `sluice rollout status {name}` shows the progress, status.restartedAt the end"
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_is_due_at_the_next_whole_second_so_every_existing_pod_is_older() {
        let now = Timestamp::from_millisecond(1_800_000_000_750).unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(due(now, None).as_second(), 1_800_000_001);
        assert_eq!(
            due(now, Some(Duration::from_secs(600))).as_second(),
            1_800_000_601
        );
        let whole = Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(due(whole, None), whole);
        assert_eq!(
            patch(due(now, None)),
            json!({"spec": {"restartAt": "2027-01-15T08:00:01Z"}})
        );
    }
}
