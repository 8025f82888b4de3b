//! A bounded property runner shared by the property-test files: runs a
//! property over a fixed number of generated inputs and prints how many ran,
//! so CI logs show the count. `PROPTEST_CASES=N` changes every count (a long
//! local run is the stable-toolchain stand-in for fuzzing);
//! `PROPTEST_RNG_SEED=N` replays a run.

use std::cell::Cell;
use std::fmt::Debug;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Stack for the runner: generated Rollouts (whole pod templates) are large,
/// and an unoptimized build keeps several copies per frame of the strategy
/// combinators, more than a test thread's 2 MiB.
const RUNNER_STACK: usize = 32 << 20;

/// Check `property` on `default_cases` inputs drawn from the strategy that
/// `strategy` builds, on a thread with a stack large enough for the generators.
pub fn check<S>(
    name: &str,
    default_cases: u32,
    strategy: impl FnOnce() -> S + Send + 'static,
    property: impl Fn(S::Value) -> Result<(), TestCaseError> + Send + 'static,
) where
    S: Strategy,
    S::Value: Debug,
{
    let name = name.to_string();
    let runner = std::thread::Builder::new()
        .stack_size(RUNNER_STACK)
        .spawn(move || run(&name, default_cases, strategy(), property))
        .map(|thread| thread.join());
    match runner {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(err) => panic!("cannot start the property runner: {err}"),
    }
}

fn run<S>(
    name: &str,
    default_cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let ran = Cell::new(0u64);
    let outcome = runner.run(&strategy, |value| {
        ran.set(ran.get() + 1);
        property(value)
    });
    if let Err(failure) = outcome {
        panic!("property {name} failed: {failure}");
    }
    eprintln!("property {name}: {} cases passed", ran.get());
}
