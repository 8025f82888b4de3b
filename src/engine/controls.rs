//! Operator controls: requests made by annotating the Rollout.
//!
//! `promote`, `promote-full`, `abort` and `retry` are one-shot requests: the
//! annotation holds a token (the CLI writes a timestamp) and the controller
//! acts when the token differs from the one recorded in
//! `status.handledControls`. `paused` is a state: the rollout holds while the
//! annotation is `"true"`. Annotations rather than spec fields keep GitOps
//! tools from seeing drift in the spec.

use std::collections::BTreeMap;

use crate::crd::ControlTokens;

/// Annotation requesting one step forward (past a pause, an analysis, or a wait).
pub const PROMOTE: &str = "sluice.dev/promote";
/// Annotation requesting promotion to 100% at once, skipping the remaining steps.
pub const PROMOTE_FULL: &str = "sluice.dev/promote-full";
/// Annotation requesting an abort: traffic back to stable now.
pub const ABORT: &str = "sluice.dev/abort";
/// Annotation requesting a retry of an aborted canary from its first step.
pub const RETRY: &str = "sluice.dev/retry";
/// Annotation that holds the rollout in place while `"true"`.
pub const PAUSED: &str = "sluice.dev/paused";

/// Requests that are new since the last reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    /// One step forward.
    pub promote: bool,
    /// All the way to 100%.
    pub promote_full: bool,
    /// Abort.
    pub abort: bool,
    /// Retry an aborted canary.
    pub retry: bool,
    /// Held by an operator.
    pub paused: bool,
    /// Tokens to record as handled.
    pub tokens: ControlTokens,
}

/// Read the control annotations against the tokens already handled.
pub fn read(annotations: Option<&BTreeMap<String, String>>, handled: &ControlTokens) -> Requests {
    let empty = BTreeMap::new();
    let annotations = annotations.unwrap_or(&empty);
    let token = |key: &str| annotations.get(key).filter(|v| !v.is_empty()).cloned();
    let fresh =
        |key: &str, seen: &Option<String>| token(key).is_some_and(|t| Some(&t) != seen.as_ref());
    Requests {
        promote: fresh(PROMOTE, &handled.promote),
        promote_full: fresh(PROMOTE_FULL, &handled.promote_full),
        abort: fresh(ABORT, &handled.abort),
        retry: fresh(RETRY, &handled.retry),
        paused: annotations.get(PAUSED).is_some_and(|v| v == "true"),
        tokens: ControlTokens {
            promote: token(PROMOTE).or_else(|| handled.promote.clone()),
            promote_full: token(PROMOTE_FULL).or_else(|| handled.promote_full.clone()),
            abort: token(ABORT).or_else(|| handled.abort.clone()),
            retry: token(RETRY).or_else(|| handled.retry.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_acts_once() {
        let annotations = BTreeMap::from([(PROMOTE.to_string(), "t1".to_string())]);
        let first = read(Some(&annotations), &ControlTokens::default());
        assert!(first.promote && !first.abort);
        let second = read(Some(&annotations), &first.tokens);
        assert!(!second.promote, "the same token must not promote twice");
        let annotations = BTreeMap::from([(PROMOTE.to_string(), "t2".to_string())]);
        assert!(read(Some(&annotations), &first.tokens).promote);
    }

    #[test]
    fn paused_is_a_state() {
        let annotations = BTreeMap::from([(PAUSED.to_string(), "true".to_string())]);
        assert!(read(Some(&annotations), &ControlTokens::default()).paused);
        let annotations = BTreeMap::from([(PAUSED.to_string(), "false".to_string())]);
        assert!(!read(Some(&annotations), &ControlTokens::default()).paused);
    }
}
