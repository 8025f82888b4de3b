//! The threshold condition language: small, total and safe.
//!
//! Sluice's own spelling (`result < 0.01`, `result >= 0.95 && result <= 1`,
//! `!(result > 250)`, `isNaN(result) || result == 0`) and the common
//! Argo Rollouts (expr) spelling of the same ideas (`result[0] < 0.05`,
//! `len(result) > 0`, `and` / `or` / `not`, `isInf(result)`,
//! `all(result, {# < 1})`, `any(result, {# > 0})`, `default(result, 0)`)
//! parse to one small tree. No arithmetic, no strings, no variables, no
//! loops: anything else is refused with the construct and its line and
//! column. Conditions are parsed once (so a typo fails the run with a clear
//! message at its start) and evaluated per measurement.
//!
//! `result` is what a threshold metric measured. In Sluice that is always a
//! single number ([`Measured::Scalar`]): the query must return exactly one
//! series, and no data never reaches a condition (the metric's `noData`
//! decides). On a scalar, `result[0]` is the number, `len(result)` is 1 and
//! `all`/`any` test the one number, so Argo's vector-style conditions keep
//! their meaning. [`Measured::Vector`] gives the same language a list of
//! values (indexing out of range or comparing the whole vector is an
//! evaluation error, `len` counts, `all` of nothing holds, `any` of nothing
//! does not).

use super::condition_parse::Parser;

/// Longest condition text read. Admission allows 256 characters; this bound
/// also holds for templates stored without it, so that parsing, evaluating
/// and dropping a condition can never exhaust the stack.
pub(super) const MAX_CHARS: usize = 1024;
/// Deepest nesting of `(`, `!`/`not` and `all`/`any`/`none` bodies.
pub(super) const MAX_NESTING: usize = 32;

/// A parse error with the position it was found at (1-based, in characters),
/// for the controller's status and Events and for `sluice lint`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("condition {source_text:?}: {message} at {}", position(*line, *column))]
pub struct ConditionError {
    /// The condition (at most its first 64 characters when it is too long).
    pub source_text: String,
    /// What is wrong, e.g. `unsupported function 'filter'`.
    pub message: String,
    /// Line of the offending construct, 1 for a one-line condition.
    pub line: usize,
    /// Column of the offending construct within its line.
    pub column: usize,
}

fn position(line: usize, column: usize) -> String {
    if line == 1 {
        format!("column {column}")
    } else {
        format!("line {line}, column {column}")
    }
}

impl ConditionError {
    /// An error at character offset `at` (0-based) of `text`.
    pub(super) fn at(text: &str, at: usize, message: String) -> ConditionError {
        let before: Vec<char> = text.chars().take(at).collect();
        let line = 1 + before.iter().filter(|c| **c == '\n').count();
        let column = 1 + before.iter().rev().take_while(|c| **c != '\n').count();
        ConditionError {
            source_text: text.into(),
            message,
            line,
            column,
        }
    }
}

/// Evaluating a condition against a value it cannot describe, e.g.
/// `result[3]` of a two-value vector.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("condition cannot be evaluated: {0}")]
pub struct EvaluationError(pub String);

/// What a condition is evaluated against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measured<'a> {
    /// One number: every threshold measurement of Sluice.
    Scalar(f64),
    /// Several numbers, possibly none.
    Vector(&'a [f64]),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Compare {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// A reference to a measured number.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Ref {
    /// `result`: the scalar itself.
    Result,
    /// `result[i]`, with the offset of `i` for the scalar check of [`Condition::parse_threshold`].
    Index { index: usize, at: usize },
    /// `#`: the element an `all`/`any`/`none` body is looking at.
    Element,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Number(f64),
    Ref(Ref),
    /// `len(result)`.
    Len,
    /// `default(ref, n)`: `n` when `ref` does not exist.
    Default(Ref, f64),
    /// `asInt(ref)`: truncated toward zero.
    AsInt(Ref),
}

/// `all`, `any` or `none` of the measured values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Quantifier {
    All,
    Any,
    None,
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition(Node);

/// The condition tree.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Compare(Value, Compare, Value),
    IsNan(Ref),
    IsInf(Ref),
    Quantified(Quantifier, Box<Node>),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
}

impl Condition {
    /// Parse a condition.
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        if text.chars().count() > MAX_CHARS {
            let short: String = text.chars().take(64).collect();
            let mut error =
                ConditionError::at(&short, 0, format!("is longer than {MAX_CHARS} characters"));
            error.column = MAX_CHARS + 1;
            return Err(error);
        }
        Parser::new(text)?.condition().map(Condition)
    }

    /// Parse a threshold condition: one that can be evaluated on the single
    /// number every Sluice threshold measures (so `result[1]` is refused here,
    /// at the run's start, rather than at every measurement).
    pub fn parse_threshold(text: &str) -> Result<Condition, ConditionError> {
        let condition = Condition::parse(text)?;
        condition.0.check_scalar(text)?;
        Ok(condition)
    }

    /// Whether the condition holds for a single measured value. Comparisons
    /// with NaN are false. A condition from [`Condition::parse_threshold`]
    /// cannot fail on a scalar; any other failure counts as not holding.
    pub fn holds(&self, result: f64) -> bool {
        self.evaluate(Measured::Scalar(result)).unwrap_or(false)
    }

    /// Evaluate against `result`; `&&`/`||` short-circuit, so
    /// `len(result) == 0 || result[0] < 1` is fine on an empty vector.
    pub fn evaluate(&self, result: Measured<'_>) -> Result<bool, EvaluationError> {
        self.0.eval(result, None)
    }
}

impl Node {
    /// Refuse an index that a scalar `result` never has.
    fn check_scalar(&self, text: &str) -> Result<(), ConditionError> {
        let check_ref = |r: &Ref| match r {
            Ref::Index { index, at } if *index > 0 => Err(ConditionError::at(
                text,
                *at,
                format!(
                    "result[{index}] never exists: in Sluice `result` is the single value the query returned, so only result[0] (or plain `result`) refers to it"
                ),
            )),
            _ => Ok(()),
        };
        let check_value = |v: &Value| match v {
            Value::Ref(r) | Value::AsInt(r) => check_ref(r),
            // A missing element takes the default: never an error.
            Value::Default(..) | Value::Number(_) | Value::Len => Ok(()),
        };
        match self {
            Node::Compare(left, _, right) => {
                check_value(left)?;
                check_value(right)
            }
            Node::IsNan(r) | Node::IsInf(r) => check_ref(r),
            Node::Quantified(_, body) | Node::Not(body) => body.check_scalar(text),
            Node::And(a, b) | Node::Or(a, b) => {
                a.check_scalar(text)?;
                b.check_scalar(text)
            }
        }
    }

    fn eval(&self, result: Measured<'_>, element: Option<f64>) -> Result<bool, EvaluationError> {
        Ok(match self {
            Node::Compare(left, op, right) => {
                let (l, r) = (
                    value(left, result, element)?,
                    value(right, result, element)?,
                );
                match op {
                    Compare::Lt => l < r,
                    Compare::Le => l <= r,
                    Compare::Gt => l > r,
                    Compare::Ge => l >= r,
                    Compare::Eq => l == r,
                    Compare::Ne => l != r,
                }
            }
            Node::IsNan(r) => resolve(r, result, element)?.is_nan(),
            Node::IsInf(r) => resolve(r, result, element)?.is_infinite(),
            Node::Quantified(quantifier, body) => {
                let scalar;
                let values: &[f64] = match result {
                    Measured::Scalar(x) => {
                        scalar = [x];
                        &scalar
                    }
                    Measured::Vector(v) => v,
                };
                let mut matched = 0;
                for &x in values {
                    if body.eval(result, Some(x))? {
                        matched += 1;
                    } else if *quantifier == Quantifier::All {
                        return Ok(false);
                    }
                    if matched > 0 && *quantifier != Quantifier::All {
                        break;
                    }
                }
                match quantifier {
                    Quantifier::All => true,
                    Quantifier::Any => matched > 0,
                    Quantifier::None => matched == 0,
                }
            }
            Node::Not(inner) => !inner.eval(result, element)?,
            Node::And(a, b) => a.eval(result, element)? && b.eval(result, element)?,
            Node::Or(a, b) => a.eval(result, element)? || b.eval(result, element)?,
        })
    }
}

fn resolve(r: &Ref, result: Measured<'_>, element: Option<f64>) -> Result<f64, EvaluationError> {
    let fail = |m: String| Err(EvaluationError(m));
    match (r, result) {
        (Ref::Result, Measured::Scalar(x)) => Ok(x),
        (Ref::Result, Measured::Vector(v)) => fail(format!(
            "result holds {} values; compare result[i] or use all()/any()",
            v.len()
        )),
        (Ref::Index { index: 0, .. }, Measured::Scalar(x)) => Ok(x),
        (Ref::Index { index, .. }, Measured::Scalar(_)) => fail(format!(
            "result[{index}] does not exist: result is a single value"
        )),
        (Ref::Index { index, .. }, Measured::Vector(v)) => match v.get(*index) {
            Some(x) => Ok(*x),
            None => fail(format!(
                "result[{index}] does not exist: result holds {} values",
                v.len()
            )),
        },
        (Ref::Element, _) => match element {
            Some(x) => Ok(x),
            None => fail("`#` is only defined inside all(), any() or none()".into()),
        },
    }
}

fn value(v: &Value, result: Measured<'_>, element: Option<f64>) -> Result<f64, EvaluationError> {
    match v {
        Value::Number(n) => Ok(*n),
        Value::Ref(r) => resolve(r, result, element),
        Value::Len => Ok(match result {
            Measured::Scalar(_) => 1.0,
            Measured::Vector(v) => v.len() as f64,
        }),
        // Argo's `default(result, 0)` stands in for a missing value: an index
        // past the end, or an empty vector; a whole non-empty vector is still an error.
        Value::Default(r, fallback) => match (r, result) {
            (Ref::Index { .. }, _) | (Ref::Result, Measured::Vector([])) => {
                Ok(resolve(r, result, element).unwrap_or(*fallback))
            }
            _ => resolve(r, result, element),
        },
        Value::AsInt(r) => Ok(resolve(r, result, element)?.trunc()),
    }
}
