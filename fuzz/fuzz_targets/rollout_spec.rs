//! Fuzz a Rollout as a tenant could store it: any JSON that deserializes
//! into the Rust types goes through validation and a first `plan` at a
//! fixed clock, which must not panic and must keep weights within 0-100.
#![no_main]

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use sluice::crd::Rollout;
use sluice::engine::{Observed, plan};

fuzz_target!(|data: &[u8]| {
    let Ok(rollout) = serde_json::from_slice::<Rollout>(data) else {
        return;
    };
    let now = Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
    let _ = sluice::engine::spec::settings(&rollout);
    let plan = plan(&rollout, &Observed::default(), now);
    assert!((0..=100).contains(&plan.status.current_weight));
    assert!((0..=100).contains(&plan.status.desired_weight));
});
