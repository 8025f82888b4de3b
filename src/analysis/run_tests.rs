//! `analysis::run`: metric plans, measurements and their phases.
use super::*;
use crate::crd::{Comparison, MetricProvider, PrometheusProvider};

fn threshold_metric() -> Metric {
    Metric {
        name: "error-ratio".into(),
        interval: Some("10s".into()),
        count: Some(3),
        failure_limit: Some(1),
        provider: MetricProvider {
            prometheus: Some(PrometheusProvider {
                address: "http://prometheus:9090".into(),
                query: Some("q".into()),
                ..Default::default()
            }),
            scrape: None,
            web: None,
            job: None,
        },
        success_condition: Some("result < 0.01".into()),
        ..Default::default()
    }
}

fn counts_metric() -> Metric {
    Metric {
        name: "errors-vs-baseline".into(),
        count: Some(20),
        provider: MetricProvider {
            prometheus: Some(PrometheusProvider {
                address: "http://prometheus:9090".into(),
                events: Some("e".into()),
                exposure: Some("x".into()),
                ..Default::default()
            }),
            scrape: None,
            web: None,
            job: None,
        },
        compare: Some(Comparison::default()),
        ..Default::default()
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[test]
fn threshold_fails_only_past_the_failure_limit_and_no_data_is_not_a_pass() {
    let plan = plan_metric("t", &threshold_metric()).expect("valid");
    let mut result = new_result(&plan);
    assert_eq!(next_due(&result, &plan, at(0)), Some(at(0)));
    record(
        &mut result,
        &plan,
        MeasurementOutcome::Value(Some(0.05)),
        at(0),
        0,
    );
    assert_eq!(
        result.phase,
        AnalysisPhase::Running,
        "one failure is within failureLimit 1"
    );
    assert_eq!(next_due(&result, &plan, at(0)), Some(at(10)));
    record(
        &mut result,
        &plan,
        MeasurementOutcome::Value(Some(0.002)),
        at(10),
        0,
    );
    record(
        &mut result,
        &plan,
        MeasurementOutcome::Value(Some(0.03)),
        at(20),
        0,
    );
    assert_eq!(result.phase, AnalysisPhase::Failed);
    assert_eq!(next_due(&result, &plan, at(0)), None);

    let mut empty = new_result(&plan);
    record(&mut empty, &plan, MeasurementOutcome::Value(None), at(0), 0);
    assert_eq!(empty.phase, AnalysisPhase::Inconclusive);
    let mut nan = new_result(&plan);
    record(
        &mut nan,
        &plan,
        MeasurementOutcome::Value(Some(f64::NAN)),
        at(0),
        0,
    );
    assert_eq!(
        nan.phase,
        AnalysisPhase::Inconclusive,
        "NaN (0/0) is no data"
    );
}

#[test]
fn query_errors_end_the_metric_only_after_the_consecutive_limit() {
    let mut metric = threshold_metric();
    metric.count = Some(10);
    let plan = plan_metric("t", &metric).expect("valid");
    let mut result = new_result(&plan);
    for i in 0..4 {
        record(
            &mut result,
            &plan,
            MeasurementOutcome::Error("bad_data: parse error".into()),
            at(i * 10),
            0,
        );
        assert_eq!(result.phase, AnalysisPhase::Running);
    }
    record(
        &mut result,
        &plan,
        MeasurementOutcome::Error("bad_data: parse error".into()),
        at(50),
        0,
    );
    assert_eq!(result.phase, AnalysisPhase::Error);
    assert_eq!(result.message.as_deref(), Some("bad_data: parse error"));

    // Reaching the count with nothing but errors is not a pass either.
    let plan = plan_metric("t", &threshold_metric()).expect("valid");
    let mut result = new_result(&plan);
    for i in 0..3 {
        record(
            &mut result,
            &plan,
            MeasurementOutcome::Error("unreachable".into()),
            at(i * 10),
            0,
        );
    }
    assert_eq!(result.phase, AnalysisPhase::Error);
}

#[test]
fn comparisons_decide_after_the_minimum_and_undecided_at_the_end_is_inconclusive() {
    let plan = plan_metric("t", &counts_metric()).expect("valid");
    let sample = |events: f64, exposure: f64| CountSample { events, exposure };
    let counts = |c: CountSample, b: CountSample| MeasurementOutcome::Counts {
        canary: c,
        baseline: b,
        canary_pods: vec![],
        baseline_pods: vec![],
    };
    let mut bad = new_result(&plan);
    for i in 0..6 {
        assert_eq!(
            bad.phase,
            AnalysisPhase::Running,
            "no verdict before 6 intervals"
        );
        record(
            &mut bad,
            &plan,
            counts(sample(60.0, 600.0), sample(27.0, 5400.0)),
            at(i * 30),
            1,
        );
    }
    assert_eq!(bad.phase, AnalysisPhase::Failed, "{:?}", bad.message);
    let judgement = bad.judgement.clone().expect("numbers");
    assert!(judgement.interval_low.unwrap_or(0.0) > 0.0, "{judgement:?}");
    assert_eq!(judgement.canary_events, Some(360.0));
    let message = bad.message.clone().unwrap_or_default();
    assert!(message.contains("(360 of 3600)"), "exact counts: {message}");

    let mut metric = counts_metric();
    metric.compare = Some(Comparison {
        tolerance: crate::crd::ComparisonTolerance {
            relative: Some(0.1),
            absolute: Some(0.005),
        },
        ..Default::default()
    });
    let plan = plan_metric("t", &metric).expect("valid");
    let mut few = new_result(&plan);
    for i in 0..20 {
        record(
            &mut few,
            &plan,
            counts(sample(0.0, 5.0), sample(0.0, 45.0)),
            at(i * 30),
            1,
        );
    }
    assert_eq!(few.phase, AnalysisPhase::Inconclusive, "{:?}", few.message);
    let message = few.message.clone().unwrap_or_default();
    assert!(message.contains("more requests per arm"), "{message}");
}

#[test]
fn counts_are_printed_as_measured_never_rounded() {
    // Issue #11: "2 of 10" beside 14.29%: increase() extrapolates to fractions.
    let plan = plan_metric("t", &counts_metric()).expect("valid");
    let mut result = new_result(&plan);
    record(
        &mut result,
        &plan,
        MeasurementOutcome::Counts {
            canary: CountSample {
                events: 1.43,
                exposure: 10.0,
            },
            baseline: CountSample {
                events: 2.0,
                exposure: 10.0,
            },
            canary_pods: vec![],
            baseline_pods: vec![],
        },
        at(0),
        1,
    );
    let message = result.message.unwrap_or_default();
    assert!(message.contains("14.30% (1.43 of 10)"), "{message}");
}

#[test]
fn a_missing_sample_drops_the_whole_pair() {
    // Issue #11: record() dropped canary and baseline NaNs separately, so one NaN
    // shifted every later pair off its interval.
    let mut metric = counts_metric();
    metric.provider.prometheus = Some(PrometheusProvider {
        address: "http://p".into(),
        query: Some("q".into()),
        ..Default::default()
    });
    metric.compare = Some(Comparison {
        kind: ComparisonKind::Samples,
        ..Default::default()
    });
    let plan = plan_metric("t", &metric).expect("valid");
    let mut result = new_result(&plan);
    let pairs = [(f64::NAN, 1.0), (2.0, f64::NAN), (1.0, 1.0), (1.0, 1.0)];
    for (i, (c, b)) in pairs.into_iter().enumerate() {
        let outcome = MeasurementOutcome::Samples {
            canary: vec![c],
            baseline: vec![b],
        };
        record(&mut result, &plan, outcome, at(i as i64 * 30), 1);
    }
    let stored: Vec<(Vec<f64>, Vec<f64>)> = result
        .measurements
        .iter()
        .map(|m| (m.canary_values.clone(), m.baseline_values.clone()))
        .collect();
    assert_eq!(stored[0], (vec![], vec![]));
    assert_eq!(stored[1], (vec![], vec![]));
    assert_eq!(stored[2], (vec![1.0], vec![1.0]));
    let judgement = result.judgement.expect("judged");
    assert_eq!(judgement.intervals, Some(2));
    assert_eq!(judgement.canary_size, 2.0);
}

#[test]
fn a_comparison_that_could_never_pass_is_refused() {
    let mut metric = counts_metric();
    metric.count = Some(5);
    let error = plan_metric("t", &metric).unwrap_err();
    assert!(error.contains("could never pass"), "{error}");
    metric.compare = Some(Comparison {
        minimum: Some(crate::crd::ComparisonMinimum {
            intervals: Some(5),
            duration: Some("2m".into()),
            requests: Some(100.0),
        }),
        ..Default::default()
    });
    assert!(plan_metric("t", &metric).is_ok());
}

#[test]
fn overall_fails_fast_and_ignores_dry_runs() {
    let plan = plan_metric("t", &threshold_metric()).expect("valid");
    let mut failing = new_result(&plan);
    failing.phase = AnalysisPhase::Failed;
    let running = new_result(&plan);
    assert_eq!(
        overall(&[failing.clone(), running.clone()]).0,
        AnalysisPhase::Failed
    );
    failing.dry_run = true;
    assert_eq!(overall(&[failing, running]).0, AnalysisPhase::Running);
}

#[test]
fn intervals_and_initial_delays_beyond_24h_are_refused() {
    for field in ["interval", "initialDelay"] {
        let mut metric = threshold_metric();
        if field == "interval" {
            metric.interval = Some("99999999999h".into());
        } else {
            metric.initial_delay = Some("25h".into());
        }
        let err = plan_metric("t", &metric).expect_err(field);
        assert!(err.contains(field) && err.contains("at most 24h"), "{err}");
    }
    let mut metric = threshold_metric();
    metric.interval = Some("24h".into());
    metric.initial_delay = Some("1d".into());
    assert!(plan_metric("t", &metric).is_ok(), "24h is allowed");
}

#[test]
fn a_run_still_running_past_its_deadline_is_inconclusive() {
    let plan = plan_metric("t", &threshold_metric()).expect("valid");
    // count 3 at 10s: (3 + 1) intervals, doubled, plus the slack.
    let due = deadline([&plan], at(0));
    assert_eq!(due, at(80 + DEADLINE_SLACK.as_secs() as i64));
    let results = vec![new_result(&plan)];
    assert_eq!(verdict_at(&results, due, at(79)).0, AnalysisPhase::Running);
    let (phase, message) = verdict_at(&results, due, due);
    assert_eq!(phase, AnalysisPhase::Inconclusive);
    assert!(message.contains("deadline"), "{message}");
    let mut done = new_result(&plan);
    for i in 0..3 {
        record(
            &mut done,
            &plan,
            MeasurementOutcome::Value(Some(0.001)),
            at(i * 10),
            0,
        );
    }
    assert_eq!(
        verdict_at(&[done], due, at(1_000_000)).0,
        AnalysisPhase::Successful,
        "a verdict stands after the deadline"
    );
    assert_eq!(
        deadline([&plan], Timestamp::MAX),
        Timestamp::MAX,
        "a hostile start time saturates"
    );
}

#[test]
fn invalid_metrics_say_what_to_fix() {
    let mut metric = threshold_metric();
    metric.success_condition = Some("result <<".into());
    assert!(
        plan_metric("t", &metric)
            .unwrap_err()
            .contains("metric t/error-ratio")
    );
    let mut metric = counts_metric();
    metric.provider.prometheus = Some(PrometheusProvider {
        address: "http://p".into(),
        ..Default::default()
    });
    assert!(plan_metric("t", &metric).unwrap_err().contains("events"));

    let mut metric = counts_metric();
    metric.provider = MetricProvider {
        prometheus: None,
        scrape: Some(crate::crd::ScrapeProvider {
            port: 8080,
            query: Some("latency".into()),
            ..Default::default()
        }),
        web: None,
        job: None,
    };
    metric.compare = Some(Comparison {
        kind: ComparisonKind::Samples,
        ..Default::default()
    });
    assert!(
        plan_metric("t", &metric)
            .unwrap_err()
            .contains("needs the prometheus provider"),
        "a scrape has no history for samples"
    );
}
