//! The condition language against what users write: Sluice's own spelling,
//! the conditions of the Argo Rollouts documentation (written here in their
//! documented syntax), evaluation on scalars, vectors, empty vectors and NaN,
//! and errors that point at the right line and column.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::condition::{Condition, ConditionError, Measured};

fn parse(text: &str) -> Condition {
    match Condition::parse_threshold(text) {
        Ok(condition) => condition,
        Err(e) => panic!("{text}: {e}"),
    }
}

fn refused(text: &str) -> ConditionError {
    match Condition::parse_threshold(text) {
        Ok(condition) => panic!("{text} must be refused, parsed as {condition:?}"),
        Err(e) => e,
    }
}

#[test]
fn sluice_spelling() {
    let cases: &[(&str, f64, bool)] = &[
        ("result < 0.01", 0.005, true),
        ("result < 0.01", 0.02, false),
        ("result >= 0.95 && result <= 1", 0.97, true),
        ("0.5 > result || result == 3", 3.0, true),
        ("!(result > 250)", 100.0, true),
        ("result != 1e-3", 0.0, true),
        ("result > -1.5", -1.0, true),
        ("result < 0.01", f64::NAN, false),
        ("result >= 0.01", f64::NAN, false),
        ("isNaN(result) || result == 0", f64::NAN, true),
    ];
    for (text, result, expected) in cases {
        assert_eq!(parse(text).holds(*result), *expected, "{text} at {result}");
    }
}

/// Conditions as the Argo Rollouts docs write them (analysis overview,
/// Prometheus, Datadog, Wavefront, Graphite and InfluxDB providers), on the
/// single number a Sluice threshold measures.
#[test]
fn argo_rollouts_documented_conditions_on_a_scalar() {
    let cases: &[(&str, f64, bool)] = &[
        ("result[0] >= 0.95", 0.97, true),
        ("result[0] >= 0.95", 0.90, false),
        ("result[0] <= 0.01", 0.02, false),
        ("result >= 0.95", 0.95, true),
        ("result < 0.05", 0.01, true),
        ("result <= 0.01", 0.01, true),
        ("result == 1", 1.0, true),
        ("len(result) == 0 || result[0] >= 0.95", 0.99, true),
        ("len(result) == 0 || result[0] >= 0.95", 0.5, false),
        ("len(result) > 0", 0.0, true),
        ("isNaN(result) || result >= 0.95", f64::NAN, true),
        ("isNaN(result[0]) || result[0] >= 0.95", f64::NAN, true),
        ("isNaN(result[0]) || result[0] >= 0.95", 0.5, false),
        ("default(result, 0) < 0.05", 0.01, true),
        ("default(result, 0) < 0.05", 0.5, false),
        ("default(result[0], 0) >= 0.9", 0.95, true),
        ("asInt(result) >= 1", 1.7, true),
        ("asInt(result) == 0", 0.9, true),
        ("asFloat(result) < 0.5", 0.4, true),
        ("result[0] > 0.9 and result[0] < 1.1", 1.0, true),
        ("result[0] > 0.9 and result[0] < 1.1", 1.2, false),
        ("result[0] < 0.1 or result[0] > 0.9", 0.95, true),
        ("not (result[0] > 1)", 0.5, true),
        ("not(result[0] > 1)", 2.0, false),
        ("not isNaN(result)", 1.0, true),
        ("isInf(result)", f64::INFINITY, true),
        ("isInf(result[0]) || result[0] < 5", 3.0, true),
        ("all(result, {# < 1})", 0.5, true),
        ("all(result, {# < 1})", 1.5, false),
        ("any(result, {# > 0})", 0.5, true),
        ("any(result, # > 0)", -0.5, false),
        ("none(result, {# > 0.05})", 0.01, true),
        ("all(result, {# >= 0.95 and # <= 1})", 0.97, true),
        ("all(result, {isNaN(#) or # < 1})", f64::NAN, true),
        // A multi-line YAML block scalar.
        ("result[0] >= 0.95\n  && result[0] <= 1", 0.99, true),
    ];
    for (text, result, expected) in cases {
        assert_eq!(parse(text).holds(*result), *expected, "{text} at {result}");
    }
}

fn eval(text: &str, values: &[f64]) -> Result<bool, String> {
    Condition::parse(text)
        .map_err(|e| e.to_string())?
        .evaluate(Measured::Vector(values))
        .map_err(|e| e.to_string())
}

#[test]
fn on_a_vector_index_len_and_quantifiers_work_and_a_whole_vector_is_not_a_number() {
    let v = [0.01, 0.2, 0.03];
    assert_eq!(eval("result[0] < 0.05", &v), Ok(true));
    assert_eq!(eval("result[1] < 0.05", &v), Ok(false));
    assert_eq!(eval("len(result) == 3", &v), Ok(true));
    assert_eq!(eval("all(result, {# < 0.05})", &v), Ok(false));
    assert_eq!(eval("any(result, {# > 0.1})", &v), Ok(true));
    assert_eq!(eval("none(result, {# > 0.5})", &v), Ok(true));
    assert_eq!(eval("default(result[7], 1) == 1", &v), Ok(true));
    let out_of_range = eval("result[3] < 1", &v).expect_err("no fourth value");
    assert!(
        out_of_range.contains("result[3] does not exist: result holds 3 values"),
        "{out_of_range}"
    );
    let whole = eval("result < 1", &v).expect_err("a vector is not a number");
    assert!(
        whole.contains("compare result[i] or use all()/any()"),
        "{whole}"
    );
    assert!(eval("isNaN(result)", &v).is_err());
    assert!(
        eval("default(result, 0) < 1", &v).is_err(),
        "default stands in only for a missing value"
    );
}

#[test]
fn on_an_empty_vector_all_holds_any_does_not_and_short_circuits_guard_indexing() {
    let empty: [f64; 0] = [];
    assert_eq!(eval("len(result) == 0", &empty), Ok(true));
    assert_eq!(eval("all(result, {# < 1})", &empty), Ok(true));
    assert_eq!(eval("any(result, {# > 0})", &empty), Ok(false));
    assert_eq!(eval("none(result, {# > 0})", &empty), Ok(true));
    assert_eq!(
        eval("len(result) == 0 || result[0] >= 0.95", &empty),
        Ok(true)
    );
    assert_eq!(
        eval("len(result) > 0 && result[0] >= 0.95", &empty),
        Ok(false)
    );
    assert_eq!(eval("default(result, 0) < 0.05", &empty), Ok(true));
    assert!(eval("result[0] >= 0.95", &empty).is_err());
}

#[test]
fn nan_fails_every_comparison_and_is_found_by_isnan_and_the_quantifiers() {
    let v = [0.5, f64::NAN];
    assert_eq!(
        eval("all(result, {# < 1})", &v),
        Ok(false),
        "NaN < 1 is false"
    );
    assert_eq!(eval("any(result, {isNaN(#)})", &v), Ok(true));
    assert_eq!(eval("isNaN(result[1])", &v), Ok(true));
    assert_eq!(eval("result[1] != result[1]", &v), Ok(true));
    for text in ["result < 1", "result > 1", "result == 1", "result <= 1"] {
        assert!(!parse(text).holds(f64::NAN), "{text}");
    }
    assert!(parse("result != 1").holds(f64::NAN));
    assert!(parse("isInf(result)").holds(f64::NEG_INFINITY));
    assert!(!parse("isInf(result)").holds(f64::NAN));
}

#[test]
fn unsupported_constructs_are_named_with_their_line_and_column() {
    let cases: &[(&str, &str, usize, usize)] = &[
        (
            "len(filter(result, {# > 1})) > 0",
            "unsupported function 'filter'",
            1,
            5,
        ),
        (
            "filter(result, {# > 1})",
            "unsupported function 'filter'",
            1,
            1,
        ),
        (
            "result < 0.01 && system('rm')",
            "unsupported function 'system'",
            1,
            18,
        ),
        (
            "result[0] * 100 < 5",
            "unsupported arithmetic operator '*'",
            1,
            11,
        ),
        (
            "result + 1 > 2",
            "unsupported arithmetic operator '+'",
            1,
            8,
        ),
        (
            "result.successRate >= 0.95",
            "unsupported field access '.successRate'",
            1,
            7,
        ),
        (
            "all(result[0].Values, {# <= 0.01})",
            "expected ',' and a condition on `#`, found '['",
            1,
            11,
        ),
        (
            "all(foo, {# <= 0.01})",
            "expected `result` as the list",
            1,
            5,
        ),
        ("result == \"true\"", "unsupported string literal", 1, 11),
        ("result.ok == true", "unsupported field access '.ok'", 1, 7),
        ("result > 0 and true", "unsupported literal 'true'", 1, 16),
        ("result[0] in [1, 2]", "unsupported operator 'in'", 1, 11),
        ("result > 0 ? 1 : 0", "unsupported operator '?'", 1, 12),
        ("foo < 1", "unknown name 'foo'", 1, 1),
        (
            "# < 1",
            "`#` is only defined inside all(), any() or none()",
            1,
            1,
        ),
        ("result[1] < 0.05", "result[1] never exists", 1, 8),
        ("result[-1] < 0.05", "an index must be a whole number", 1, 8),
        ("result < 0.01)", "unexpected ')'", 1, 14),
        ("result = 1", "unsupported operator '='", 1, 8),
        (
            "result <",
            "expected `result`, `result[0]`, `len(result)` or a number, found the end",
            1,
            9,
        ),
        ("1 < 2", "a comparison must involve `result`", 1, 3),
        ("", "found the end", 1, 1),
        (
            "result[0] >= 0.95\n  && foo(result)",
            "unsupported function 'foo'",
            2,
            6,
        ),
        ("all(result {# < 1})", "expected ','", 1, 12),
    ];
    for (text, message, line, column) in cases {
        let err = refused(text);
        assert!(err.message.contains(message), "{text}: {err}");
        assert_eq!((err.line, err.column), (*line, *column), "{text}: {err}");
    }
    let err = refused("len(filter(result, {# > 1})) > 0");
    assert!(
        err.to_string()
            .ends_with("unsupported function 'filter' at column 5"),
        "{err}"
    );
    let err = refused("result > 0\nor bad");
    assert!(err.to_string().ends_with("at line 2, column 4"), "{err}");
}

/// A random condition tree, written both ways.
#[derive(Clone, Debug)]
enum Expr {
    Compare(&'static str, f64),
    IsNan,
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    fn sluice(&self) -> String {
        match self {
            Expr::Compare(op, n) => format!("result {op} {n:?}"),
            Expr::IsNan => "isNaN(result)".into(),
            Expr::Not(e) => format!("!({})", e.sluice()),
            Expr::And(a, b) => format!("({}) && ({})", a.sluice(), b.sluice()),
            Expr::Or(a, b) => format!("({}) || ({})", a.sluice(), b.sluice()),
        }
    }

    fn argo(&self) -> String {
        match self {
            Expr::Compare(op, n) => format!("result[0] {op} {n:?}"),
            Expr::IsNan => "isNaN(result[0])".into(),
            Expr::Not(e) => format!("not ({})", e.argo()),
            Expr::And(a, b) => format!("({}) and ({})", a.argo(), b.argo()),
            Expr::Or(a, b) => format!("({}) or ({})", a.argo(), b.argo()),
        }
    }
}

fn expr() -> impl Strategy<Value = Expr> {
    let number = prop_oneof![-1e6..1e6f64, Just(0.0), Just(0.05), Just(1.0)];
    let ops = prop::sample::select(vec!["<", "<=", ">", ">=", "==", "!="]);
    let leaf = prop_oneof![
        (ops, number).prop_map(|(op, n)| Expr::Compare(op, n)),
        Just(Expr::IsNan),
    ];
    leaf.prop_recursive(5, 32, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
        ]
    })
}

/// Argo's spelling means exactly what Sluice's does, on a scalar, on the
/// one-value vector Argo's Prometheus provider passes, and element-wise under `all`.
#[test]
fn argo_spelling_means_the_same_as_sluice_spelling() {
    let values = prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(0.0),
        Just(0.05),
        -1e6..1e6f64,
    ];
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&(expr(), values), |(expr, x)| {
        let (sluice, argo) = (expr.sluice(), expr.argo());
        let fail = |e: ConditionError| TestCaseError::fail(e.to_string());
        let expected = Condition::parse(&sluice).map_err(fail)?.holds(x);
        let argo_condition = Condition::parse_threshold(&argo).map_err(fail)?;
        prop_assert_eq!(argo_condition.holds(x), expected, "{} at {}", argo, x);
        let one = [x];
        prop_assert_eq!(
            argo_condition.evaluate(Measured::Vector(&one)),
            Ok(expected),
            "{} on [{}]",
            argo,
            x
        );
        let body = sluice.replace("result", "#");
        let all = Condition::parse(&format!("all(result, {{{body}}})")).map_err(fail)?;
        prop_assert_eq!(all.evaluate(Measured::Vector(&[x, x])), Ok(expected));
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// Random text never panics the parser or the evaluator, and every error
/// points inside the text (or just past its end).
#[test]
fn any_text_parses_or_fails_at_a_position_inside_it() {
    let text = prop_oneof![
        ".{0,48}",
        "(result|\\[0\\]|\\[1\\]|len|all|any|none|isNaN|isInf|default|and|or|not|#|\\{|\\}|,|\\(|\\)|!|&&|\\|\\||<|>=|==|0\\.5|-|\\.| |\n){0,30}",
    ];
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&text, |text| {
        match Condition::parse(&text) {
            Ok(condition) => {
                for values in [&[][..], &[f64::NAN, 1.0][..]] {
                    let _ = condition.evaluate(Measured::Vector(values));
                }
                let _ = condition.holds(0.5);
            }
            Err(e) => {
                let lines: Vec<&str> = text.split('\n').collect();
                prop_assert!(e.line >= 1 && e.line <= lines.len(), "{}", e);
                let width = lines[e.line - 1].chars().count();
                prop_assert!(e.column >= 1 && e.column <= width + 1, "{:?}: {}", text, e);
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// The controller refuses such a metric when the run starts: the message
/// (the AnalysisRun's status, then the Rollout's condition and Event) names
/// the metric, the construct and its column in the user's text, also when
/// the condition takes a threshold from an argument.
#[test]
fn a_run_with_an_unsupported_condition_says_which_metric_and_where() {
    use std::collections::BTreeMap;

    use crate::analysis::measure::prepare_metric;
    use crate::crd::{Metric, MetricProvider, PrometheusProvider};

    let metric = Metric {
        name: "errors".into(),
        provider: MetricProvider {
            prometheus: Some(PrometheusProvider {
                address: "http://127.0.0.1:9".into(),
                query: Some("vector(0)".into()),
                ..Default::default()
            }),
            scrape: None,
            web: None,
            job: None,
        },
        success_condition: Some("result < {{args.max}} and filter(result) > 0".into()),
        ..Default::default()
    };
    let args = BTreeMap::from([("max".to_string(), "0.05".to_string())]);
    let error = match prepare_metric("tpl", &metric, &args, Default::default()) {
        Ok(_) => panic!("an unsupported function must be refused"),
        Err(error) => error,
    };
    assert!(
        error.starts_with("metric tpl/errors: condition "),
        "{error}"
    );
    assert!(
        error.ends_with("unsupported function 'filter' at column 27")
            && error.contains("\"result < {{args.max}} and filter(result) > 0\""),
        "{error}"
    );
    let fine = Metric {
        success_condition: Some("result[0] < {{args.max}} and not isNaN(result)".into()),
        ..metric
    };
    assert!(prepare_metric("tpl", &fine, &args, Default::default()).is_ok());
}
