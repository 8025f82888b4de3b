//! The small state machines kept in `Rollout.status` besides the phase: the
//! Git revert, each alert delivery and the blue-green stage.
//!
//! Each is serialised exactly as the strings earlier versions wrote, so
//! stored status keeps working; the CRD lists the allowed values.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Writes `as_str` for `Display`, so messages and logs use the stored name.
macro_rules! display_as_str {
    ($name:ident) => {
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Where the Git revert of an aborted canary stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RevertState {
    /// The revert commit is being made.
    #[default]
    Reverting,
    /// Both commits are known and the push is under way.
    Pushing,
    /// The revert commit is on the branch.
    Reverted,
    /// Someone else already reverted the image commit.
    AlreadyReverted,
    /// Nothing to revert (the branch no longer carries the canary's image).
    NotNeeded,
    /// This abort does not revert (an operator's abort refused it, for example); the message says why.
    Skipped,
    /// The last attempt failed; it is retried.
    Failed,
}

impl RevertState {
    /// The name used in status, Events and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            RevertState::Reverting => "Reverting",
            RevertState::Pushing => "Pushing",
            RevertState::Reverted => "Reverted",
            RevertState::AlreadyReverted => "AlreadyReverted",
            RevertState::NotNeeded => "NotNeeded",
            RevertState::Skipped => "Skipped",
            RevertState::Failed => "Failed",
        }
    }

    /// Nothing more will happen to this revert.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RevertState::Reverted
                | RevertState::AlreadyReverted
                | RevertState::NotNeeded
                | RevertState::Skipped
        )
    }

    /// A revert is being made or pushed right now.
    pub fn in_progress(self) -> bool {
        matches!(self, RevertState::Reverting | RevertState::Pushing)
    }

    /// The branch no longer carries the canary's image because of a revert.
    pub fn reverted(self) -> bool {
        matches!(self, RevertState::Reverted | RevertState::AlreadyReverted)
    }
}

display_as_str!(RevertState);

/// Where one alert for one event and one target stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    /// Recorded before the first attempt, so a restart knows one may be under way.
    Sending,
    /// Delivered.
    Sent,
    /// Not delivered yet: retried at `nextAttempt` until the target's `retryFor` is over.
    Pending,
    /// Rejected by the receiver, or given up.
    Failed,
    /// A restart cut a delivery short and the receiver cannot deduplicate, so
    /// it is not sent again.
    Unconfirmed,
}

impl AlertState {
    /// The name used in status, Events and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Sending => "Sending",
            AlertState::Sent => "Sent",
            AlertState::Pending => "Pending",
            AlertState::Failed => "Failed",
            AlertState::Unconfirmed => "Unconfirmed",
        }
    }
}

display_as_str!(AlertState);

/// Where a blue-green update stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BlueGreenStage {
    /// Scaling the new version up behind the preview Service.
    #[default]
    Preview,
    /// Judging the preview before any user traffic reaches it.
    PrePromotionAnalysis,
    /// Waiting for a promotion (by a human or by `autoPromotionSeconds`).
    AwaitingPromotion,
    /// The active Service is moving to the new version.
    Switching,
    /// Judging the new version while it takes all traffic.
    PostPromotionAnalysis,
    /// The update was aborted; the active Service stays on the old version.
    Aborted,
    /// The new version is active and has passed its post-promotion analysis.
    Promoted,
}

impl BlueGreenStage {
    /// The name used in status, Events and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            BlueGreenStage::Preview => "Preview",
            BlueGreenStage::PrePromotionAnalysis => "PrePromotionAnalysis",
            BlueGreenStage::AwaitingPromotion => "AwaitingPromotion",
            BlueGreenStage::Switching => "Switching",
            BlueGreenStage::PostPromotionAnalysis => "PostPromotionAnalysis",
            BlueGreenStage::Aborted => "Aborted",
            BlueGreenStage::Promoted => "Promoted",
        }
    }
}

display_as_str!(BlueGreenStage);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_strings_read_back_as_the_same_states() {
        // Status written by earlier versions must keep deserialising.
        for state in [
            RevertState::Reverting,
            RevertState::Pushing,
            RevertState::Reverted,
            RevertState::AlreadyReverted,
            RevertState::NotNeeded,
            RevertState::Skipped,
            RevertState::Failed,
        ] {
            let json = format!("\"{}\"", state.as_str());
            assert_eq!(serde_json::to_string(&state).ok(), Some(json.clone()));
            assert_eq!(serde_json::from_str::<RevertState>(&json).ok(), Some(state));
        }
        for state in [
            AlertState::Sending,
            AlertState::Sent,
            AlertState::Pending,
            AlertState::Failed,
            AlertState::Unconfirmed,
        ] {
            let json = format!("\"{}\"", state.as_str());
            assert_eq!(serde_json::from_str::<AlertState>(&json).ok(), Some(state));
        }
        for stage in [
            BlueGreenStage::Preview,
            BlueGreenStage::PrePromotionAnalysis,
            BlueGreenStage::AwaitingPromotion,
            BlueGreenStage::Switching,
            BlueGreenStage::PostPromotionAnalysis,
            BlueGreenStage::Aborted,
            BlueGreenStage::Promoted,
        ] {
            let json = format!("\"{}\"", stage.as_str());
            assert_eq!(
                serde_json::from_str::<BlueGreenStage>(&json).ok(),
                Some(stage)
            );
        }
    }
}
