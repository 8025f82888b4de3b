//! Property tests of what reads user input: durations, the Rollout spec's
//! validation and a first `plan` over any spec, and the condition language.
//! Each property runs a bounded number of generated cases and prints the
//! count (see `common/properties.rs`).

#[path = "common/properties.rs"]
mod properties;

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;
use serde_json::{Value, json};
use sluice::analysis::condition::Condition;
use sluice::crd::limits::{self, MAX_PAUSE, MAX_REPLICAS};
use sluice::crd::{Rollout, RolloutStatus};
use sluice::engine::spec::{self, Step};
use sluice::engine::{Observed, plan};

use properties::check;

/// Numbers at the edges as often as in between.
fn edgy_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(i32::MIN),
        Just(-1),
        Just(0),
        Just(1),
        Just(100),
        Just(MAX_REPLICAS),
        Just(MAX_REPLICAS + 1),
        Just(i32::MAX),
        any::<i32>(),
        0..2000i32,
    ]
}

/// Duration texts: well-formed, huge, and junk.
fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,14}(ms|s|m|h|d)",
        "([0-9]{1,4}d)?([0-9]{1,4}h)?([0-9]{1,5}m)?([0-9]{1,6}s)?",
        "[0-9.]{0,8}[a-z ]{0,4}[0-9]{0,8}[smhd]{0,2}",
        Just("99999999999h".to_string()),
        Just("720h".to_string()),
        Just("720h1s".to_string()),
        ".{0,12}",
    ]
}

#[test]
fn an_accepted_duration_is_never_above_its_bound() {
    check(
        "duration bound",
        4000,
        || (duration_text(), 0u64..3_000_000),
        |(text, max_secs)| {
            let max = Duration::from_secs(max_secs);
            if let Ok(duration) = limits::parse_duration(&text, max) {
                prop_assert!(duration <= max, "{text} read as {duration:?} > {max:?}");
            }
            Ok(())
        },
    );
}

/// The canonical form the CRD's CEL rule takes apart (days, then a Go
/// duration) means what `humantime` reads: the two checks agree.
#[test]
fn the_admission_form_of_a_duration_reads_the_same_in_the_engine() {
    let parts = || {
        (
            proptest::option::of(0u64..100),
            proptest::option::of(0u64..3000),
            proptest::option::of(0u64..100_000),
            proptest::option::of(0u64..1_000_000),
            proptest::option::of(0u64..1000),
        )
    };
    check("duration form", 2000, parts, |(d, h, m, s, ms)| {
        let mut text = String::new();
        let mut expected = Duration::ZERO;
        for (value, unit, seconds) in [(d, "d", 86_400), (h, "h", 3600), (m, "m", 60), (s, "s", 1)]
        {
            if let Some(n) = value {
                text.push_str(&format!("{n}{unit}"));
                expected += Duration::from_secs(n * seconds);
            }
        }
        if let Some(n) = ms {
            text.push_str(&format!("{n}ms"));
            expected += Duration::from_millis(n);
        }
        if text.is_empty() {
            return Ok(());
        }
        let pattern = regex::Regex::new(limits::DURATION_PATTERN)
            .map_err(|e| TestCaseError::fail(format!("pattern: {e}")))?;
        prop_assert!(
            pattern.is_match(&text),
            "{text} does not match the CRD pattern"
        );
        let read = limits::parse_duration(&text, MAX_PAUSE);
        if expected <= MAX_PAUSE {
            prop_assert_eq!(read, Ok(expected), "{}", text);
        } else {
            prop_assert!(read.is_err(), "{text} is above the bound");
        }
        Ok(())
    });
}

fn step() -> impl Strategy<Value = Value> {
    prop_oneof![
        edgy_i32().prop_map(|w| json!({"setWeight": w})),
        (0..=100i32).prop_map(|w| json!({"setWeight": w})),
        duration_text().prop_map(|d| json!({"pause": {"duration": d}})),
        Just(json!({"pause": {}})),
        Just(json!({"analysis": {"templates": [{"templateName": "errors"}]}})),
        Just(json!({"analysis": {"templates": []}})),
        Just(json!({})),
        Just(json!({"setWeight": 10, "pause": {}})),
    ]
}

fn int_or_percent() -> impl Strategy<Value = Value> {
    prop_oneof![
        edgy_i32().prop_map(Value::from),
        edgy_i32().prop_map(|p| Value::from(format!("{p}%"))),
        Just(Value::Null),
    ]
}

/// A Rollout whose every number and duration is drawn at random.
fn any_rollout() -> impl Strategy<Value = Rollout> {
    let canary = (
        proptest::option::of(proptest::collection::vec(step(), 0..12)),
        int_or_percent(),
        int_or_percent(),
        any::<bool>(),
        edgy_i32(),
    )
        .prop_map(|(steps, surge, unavailable, gateway, delay)| {
            let mut canary = json!({
                "stableService": "web-stable",
                "canaryService": "web-canary",
                "maxSurge": surge,
                "maxUnavailable": unavailable,
                "scaleDownDelaySeconds": delay,
                "abortScaleDownDelaySeconds": delay,
            });
            if let Some(steps) = steps {
                canary["steps"] = Value::from(steps);
            }
            if gateway {
                canary["trafficRouting"] = json!({"gatewayAPI": {"httpRoute": "web"}});
            }
            json!({"canary": canary})
        });
    let blue_green = (edgy_i32(), edgy_i32(), edgy_i32()).prop_map(|(preview, auto, delay)| {
        json!({"blueGreen": {
            "activeService": "web-stable",
            "previewService": "web-canary",
            "previewReplicaCount": preview,
            "autoPromotionSeconds": auto,
            "scaleDownDelaySeconds": delay,
        }})
    });
    (
        edgy_i32(),
        edgy_i32(),
        edgy_i32(),
        prop_oneof![canary, blue_green],
        "[a-z]{1,70}",
    )
        .prop_filter_map(
            "the JSON must fit the Rust types",
            |(replicas, history, deadline, strategy, name)| {
                serde_json::from_value(json!({
                    "apiVersion": "sluice.dev/v1alpha1",
                    "kind": "Rollout",
                    "metadata": {"name": name, "namespace": "demo", "generation": 1},
                    "spec": {
                        "replicas": replicas,
                        "revisionHistoryLimit": history,
                        "progressDeadlineSeconds": deadline,
                        "selector": {"matchLabels": {"app": "web"}},
                        "template": {
                            "metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "web", "image": "web:1"}]}
                        },
                        "strategy": strategy,
                    }
                }))
                .ok()
            },
        )
}

#[test]
fn validation_accepts_only_specs_within_every_bound() {
    check("spec validation", 1500, any_rollout, |rollout| {
        let Ok(settings) = spec::settings(&rollout) else {
            return Ok(());
        };
        prop_assert!((0..=MAX_REPLICAS).contains(&settings.replicas));
        prop_assert!(settings.max_surge >= 0 && settings.max_unavailable >= 0);
        let month = Duration::from_secs(30 * 24 * 3600);
        for delay in [
            settings.progress_deadline,
            settings.scale_down_delay,
            settings.abort_scale_down_delay,
        ] {
            prop_assert!(delay <= month, "{delay:?}");
        }
        let mut last = 0;
        for step in settings.steps() {
            match step {
                Step::SetWeight(w) => {
                    prop_assert!(
                        (0..=100).contains(w) && *w >= last,
                        "weights {w} after {last}"
                    );
                    last = *w;
                }
                Step::Pause(Some(d)) => prop_assert!(*d <= MAX_PAUSE),
                _ => {}
            }
        }
        Ok(())
    });
}

/// Status times anywhere in jiff's range, the end of time included.
fn any_time() -> impl Strategy<Value = Time> {
    prop_oneof![
        Just(Timestamp::MAX),
        Just(Timestamp::MIN),
        (-377_705_023_201i64..=253_402_207_200)
            .prop_map(|s| { Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH) }),
    ]
    .prop_map(Time)
}

#[test]
fn plan_never_panics_and_keeps_weights_within_0_and_100() {
    let input = || {
        (
            any_rollout(),
            any_time(),
            any_time(),
            proptest::option::of(edgy_i32()),
            "[a-z0-9]{0,10}",
        )
    };
    check(
        "plan on any spec and status",
        1500,
        input,
        |(mut rollout, started, progress, step_index, canary)| {
            rollout.status = Some(RolloutStatus {
                step_started_at: Some(started),
                last_progress_at: Some(progress),
                current_step_index: step_index,
                canary_revision: (!canary.is_empty()).then_some(canary),
                ..RolloutStatus::default()
            });
            let now = Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
            let plan = plan(&rollout, &Observed::default(), now);
            prop_assert!((0..=100).contains(&plan.status.current_weight));
            prop_assert!((0..=100).contains(&plan.status.desired_weight));
            if rollout.metadata.name.as_ref().is_some_and(|n| n.len() > 63) {
                prop_assert!(
                    plan.status
                        .message
                        .unwrap_or_default()
                        .contains("63 characters"),
                    "a long name is reported"
                );
            }
            Ok(())
        },
    );
}

/// A condition tree, rendered to text by the test itself.
#[derive(Clone, Debug)]
enum Expr {
    Compare(bool, &'static str, f64),
    IsNan,
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    fn text(&self) -> String {
        match self {
            Expr::Compare(true, op, n) => format!("result {op} {n:?}"),
            Expr::Compare(false, op, n) => format!("{n:?} {op} result"),
            Expr::IsNan => "isNaN(result)".into(),
            Expr::Not(e) => format!("!({})", e.text()),
            Expr::And(a, b) => format!("({}) && ({})", a.text(), b.text()),
            Expr::Or(a, b) => format!("({}) || ({})", a.text(), b.text()),
        }
    }

    fn holds(&self, x: f64) -> bool {
        let cmp = |l: f64, op: &str, r: f64| match op {
            "<" => l < r,
            "<=" => l <= r,
            ">" => l > r,
            ">=" => l >= r,
            "==" => l == r,
            _ => l != r,
        };
        match self {
            Expr::Compare(true, op, n) => cmp(x, op, *n),
            Expr::Compare(false, op, n) => cmp(*n, op, x),
            Expr::IsNan => x.is_nan(),
            Expr::Not(e) => !e.holds(x),
            Expr::And(a, b) => a.holds(x) && b.holds(x),
            Expr::Or(a, b) => a.holds(x) || b.holds(x),
        }
    }
}

fn any_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        any::<f64>(),
        -10.0..10.0f64,
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    let finite = prop_oneof![-1e6..1e6f64, Just(0.0), Just(0.01), Just(1e300)];
    let leaf = prop_oneof![
        (
            any::<bool>(),
            prop::sample::select(vec!["<", "<=", ">", ">=", "==", "!="]),
            finite,
        )
            .prop_map(|(left, op, n)| Expr::Compare(left, op, n)),
        Just(Expr::IsNan),
    ];
    leaf.prop_recursive(6, 40, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
        ]
    })
}

#[test]
fn conditions_mean_what_they_say_for_every_value() {
    check(
        "condition semantics",
        2000,
        || (expr(), proptest::collection::vec(any_number(), 1..8)),
        |(expr, values)| {
            let text = expr.text();
            let parsed =
                Condition::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            for x in values {
                prop_assert_eq!(parsed.holds(x), expr.holds(x), "{} at {}", text, x);
            }
            Ok(())
        },
    );
}

#[test]
fn any_condition_text_parses_or_fails_without_a_panic() {
    let text = || {
        prop_oneof![
            ".{0,64}",
            "[()!<>=&| 0-9.e+-]{0,64}",
            "(result|isNaN|\\(|\\)|!|&&|\\|\\||<|>=|==|1e308|-|\\.| ){0,40}",
        ]
    };
    check("condition parser", 2000, text, |text| {
        if let Ok(condition) = Condition::parse(&text) {
            for x in [f64::NAN, f64::INFINITY, 0.0, -1.0, 1e308] {
                let _ = condition.holds(x);
            }
        }
        Ok(())
    });
}

/// Admission caps conditions at 256 characters, but a template stored before
/// (or through a looser CRD) reaches the parser at any length.
#[test]
fn a_deeply_nested_condition_is_refused_not_a_stack_overflow() {
    for depth in [40, 300, 100_000] {
        let text = format!("{}result > 0{}", "(".repeat(depth), ")".repeat(depth));
        let nots = format!("{}result > 0", "!".repeat(depth));
        let chain = vec!["result > 0"; depth].join(" && ");
        for text in [text, nots, chain] {
            if text.contains('&') && depth < 100 {
                assert!(Condition::parse(&text).is_ok(), "a flat chain is fine");
                continue;
            }
            let err = Condition::parse(&text).expect_err("too deep or too long");
            let message = err.to_string();
            assert!(
                message.contains("nested deeper than 32") || message.contains("longer than 1024"),
                "{message}"
            );
            assert!(
                message.len() < 1200,
                "the message quotes at most the first 1024 characters"
            );
        }
    }
    let nested = format!("{}result > 0{}", "(".repeat(32), ")".repeat(32));
    assert!(Condition::parse(&nested).is_ok(), "32 levels are allowed");
}
