//! Upper bounds on what a spec may ask for, and clock arithmetic that
//! cannot overflow.
//!
//! The same bounds are CEL rules in the CRDs (checked at admission); the
//! engine checks them again because objects stored before the rules existed
//! (or written with a looser CRD) still reach the controller.

use std::time::Duration;

use jiff::Timestamp;
use kube::core::{Message, Rule};

/// Durations Sluice accepts: each unit at most once, largest first, e.g.
/// `1d12h`, `1h30m`, `90s`, `250ms` (what `humantime` reads, and a form the
/// bound rule below can take apart).
pub const DURATION_PATTERN: &str = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$";

/// Longest label value, and so longest Rollout name: the name labels
/// everything the Rollout owns and selects it in every lookup.
pub const MAX_NAME: usize = 63;
/// Most pods a Rollout may ask for. Kubernetes supports 150,000 pods per
/// cluster; the bound keeps every sum of replicas, surge and counts far from
/// `i32::MAX`.
pub const MAX_REPLICAS: i32 = 1_000_000;
/// Longest timed pause; wait longer with `pause: {}` (until promoted).
pub const MAX_PAUSE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Largest `*Seconds` field (progress deadline, scale-down and promotion delays): 30 days.
pub const MAX_SECONDS: i32 = 30 * 24 * 3600;
/// Longest `interval` and `initialDelay` of an analysis metric.
pub const MAX_ANALYSIS_WAIT: Duration = Duration::from_secs(24 * 3600);

/// `at + wait`, or the last representable instant when that is beyond it:
/// a deadline past year 9999 is never reached, which is what it means.
pub fn after(at: Timestamp, wait: Duration) -> Timestamp {
    at.checked_add(wait).unwrap_or(Timestamp::MAX)
}

/// Whole seconds from `now` until `at`, zero when `at` is past.
pub fn seconds_until(now: Timestamp, at: Timestamp) -> Duration {
    let left = at.duration_since(now).as_secs();
    Duration::from_secs(u64::try_from(left).unwrap_or(0))
}

/// The CEL rule that a duration (whole seconds, or a string) is at most
/// `max`. CEL's `duration()` reads Go durations, which have no days: the day
/// part is counted apart. A number too large for CEL's integers fails the
/// rule's evaluation, which the API server also reports as a rejection.
pub fn duration_at_most(max: Duration, field: &str) -> Rule {
    let days = "(self.contains('d') ? int(self.split('d')[0]) * 86400 : 0)";
    let rest = "(self.endsWith('d') ? 0 : duration(self.contains('d') ? self.split('d')[1] : self).getSeconds())";
    let max = max.as_secs();
    Rule::new(format!(
        "type(self) == int ? self <= {max} : (!self.matches('{DURATION_PATTERN}') || self == '' || {days} + {rest} <= {max})"
    ))
    .message(Message::Message(format!(
        "{field} must be at most {}",
        describe(Duration::from_secs(max))
    )))
}

/// The CEL rule that a duration is whole seconds, not negative, or a string
/// of Sluice's form (no backslashes in the pattern, so it needs no escaping
/// inside the CEL string).
pub fn duration_syntax() -> Rule {
    Rule::new(format!(
        "type(self) == int ? self >= 0 : (self != '' && self.matches('{DURATION_PATTERN}'))"
    ))
    .message(
        "duration must look like 30s, 5m or 1h30m, or be whole seconds such as 30 (not negative)",
    )
}

/// Read a duration such as `5m` or `1h30m` that may be at most `max`.
pub fn parse_duration(text: &str, max: Duration) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| {
        format!("{text:?}: {e} (write e.g. 30s, 5m, 1h30m, or whole seconds as a number)")
    })?;
    if duration > max {
        return Err(format!("{text:?} must be at most {}", describe(max)));
    }
    Ok(duration)
}

/// `value` unless it is above `max`, with a message naming `field`.
pub fn at_most(value: i32, max: i32, field: &str) -> Result<i32, String> {
    if value > max {
        return Err(format!("{field} is {value}, at most {max}"));
    }
    Ok(value)
}

/// Text for a bound in messages: `720h`, `24h`.
pub fn describe(bound: Duration) -> String {
    format!("{}h", bound.as_secs() / 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_past_the_end_of_time_saturates() {
        assert_eq!(
            after(Timestamp::MAX, Duration::from_secs(1)),
            Timestamp::MAX
        );
        let now = Timestamp::UNIX_EPOCH;
        assert_eq!(
            after(now, Duration::from_secs(5)),
            Timestamp::from_second(5).unwrap_or(now)
        );
        assert_eq!(
            seconds_until(Timestamp::MAX, now),
            Duration::ZERO,
            "a past instant is zero away"
        );
    }

    /// The CRDs state the same numbers as CEL rules; keep the two in step.
    #[test]
    fn the_crd_rules_carry_the_engine_bounds() {
        let crds = crate::crd::all_crds();
        let text = serde_json::to_string(&crds.iter().map(|(_, c)| c).collect::<Vec<_>>())
            .unwrap_or_default();
        for needle in [
            format!("self <= {MAX_REPLICAS}"),
            format!("self <= {MAX_SECONDS}"),
            format!("<= {}", MAX_PAUSE.as_secs()),
            format!("<= {}", MAX_ANALYSIS_WAIT.as_secs()),
            "size(self.metadata.name) <= 63".to_string(),
        ] {
            assert!(text.contains(&needle), "no CRD rule says {needle}");
        }
    }
}
