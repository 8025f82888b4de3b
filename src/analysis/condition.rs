//! The threshold condition language: small, total and safe.
//!
//! `result < 0.01`, `result >= 0.95 && result <= 1`, `!(result > 250)`,
//! `isNaN(result) || result == 0`. Only the measured value (`result`),
//! numbers, comparisons, `&&`, `||`, `!` and parentheses exist: no calls
//! other than `isNaN`, no variables, no loops. Conditions are parsed once
//! (so a typo fails the run with a clear message at its start) and evaluated
//! per measurement.

use std::fmt;

/// Longest condition text read. Admission allows 256 characters; this bound
/// also holds for templates stored without it, so that parsing, evaluating
/// and dropping a condition can never exhaust the stack.
const MAX_CHARS: usize = 1024;
/// Deepest nesting of `(` and `!`.
const MAX_NESTING: usize = 32;

/// A parse error with the position it was found at.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("condition {source_text:?}: {message} at column {column}")]
pub struct ConditionError {
    pub source_text: String,
    pub message: String,
    pub column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Compare {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Result,
    Number(f64),
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare(Comparison),
    IsNan,
    Not(Box<Condition>),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
}

/// A comparison between two values.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    left: Value,
    op: Compare,
    right: Value,
}

impl Condition {
    /// Parse a condition.
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        if text.chars().count() > MAX_CHARS {
            return Err(ConditionError {
                source_text: text.chars().take(64).collect(),
                message: format!("is longer than {MAX_CHARS} characters"),
                column: MAX_CHARS + 1,
            });
        }
        let mut parser = Parser {
            text,
            tokens: tokenize(text)?,
            pos: 0,
            depth: 0,
        };
        let condition = parser.or()?;
        if let Some((column, token)) = parser.tokens.get(parser.pos) {
            return Err(parser.error(format!("unexpected {token}"), *column));
        }
        Ok(condition)
    }

    /// Evaluate against a measured value. Comparisons with NaN are false.
    pub fn holds(&self, result: f64) -> bool {
        let value = |v: &Value| match v {
            Value::Result => result,
            Value::Number(n) => *n,
        };
        match self {
            Condition::Compare(c) => {
                let (l, r) = (value(&c.left), value(&c.right));
                match c.op {
                    Compare::Lt => l < r,
                    Compare::Le => l <= r,
                    Compare::Gt => l > r,
                    Compare::Ge => l >= r,
                    Compare::Eq => l == r,
                    Compare::Ne => l != r,
                }
            }
            Condition::IsNan => result.is_nan(),
            Condition::Not(inner) => !inner.holds(result),
            Condition::And(a, b) => a.holds(result) && b.holds(result),
            Condition::Or(a, b) => a.holds(result) || b.holds(result),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Result,
    IsNan,
    Number(f64),
    Op(Compare),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Result => write!(f, "`result`"),
            Token::IsNan => write!(f, "`isNaN`"),
            Token::Number(n) => write!(f, "number {n}"),
            Token::Op(op) => write!(f, "operator {op:?}"),
            Token::And => write!(f, "`&&`"),
            Token::Or => write!(f, "`||`"),
            Token::Not => write!(f, "`!`"),
            Token::Open => write!(f, "`(`"),
            Token::Close => write!(f, "`)`"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ConditionError> {
    let error = |message: String, column: usize| ConditionError {
        source_text: text.into(),
        message,
        column,
    };
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let next = chars.get(i + 1).copied();
        let two = |t: Token| (t, 2);
        let (token, width) = match (c, next) {
            (' ' | '\t' | '\n', _) => {
                i += 1;
                continue;
            }
            ('<', Some('=')) => two(Token::Op(Compare::Le)),
            ('>', Some('=')) => two(Token::Op(Compare::Ge)),
            ('=', Some('=')) => two(Token::Op(Compare::Eq)),
            ('!', Some('=')) => two(Token::Op(Compare::Ne)),
            ('&', Some('&')) => two(Token::And),
            ('|', Some('|')) => two(Token::Or),
            ('<', _) => (Token::Op(Compare::Lt), 1),
            ('>', _) => (Token::Op(Compare::Gt), 1),
            ('!', _) => (Token::Not, 1),
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            (c, _) if c.is_ascii_digit() || c == '.' || c == '-' => {
                let start = i;
                let mut end = i + 1;
                while end < chars.len()
                    && (chars[end].is_ascii_alphanumeric()
                        || chars[end] == '.'
                        || ((chars[end] == '-' || chars[end] == '+')
                            && matches!(chars[end - 1], 'e' | 'E')))
                {
                    end += 1;
                }
                let literal: String = chars[start..end].iter().collect();
                let number = literal
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| error(format!("{literal:?} is not a number"), column))?;
                (Token::Number(number), end - start)
            }
            (c, _) if c.is_ascii_alphabetic() => {
                let start = i;
                let mut end = i + 1;
                while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_')
                {
                    end += 1;
                }
                let word: String = chars[start..end].iter().collect();
                let token = match word.as_str() {
                    "result" => Token::Result,
                    "isNaN" => Token::IsNan,
                    _ => {
                        return Err(error(
                            format!(
                                "unknown name {word:?} (only `result` and `isNaN(result)` exist)"
                            ),
                            column,
                        ));
                    }
                };
                (token, end - start)
            }
            (c, _) => return Err(error(format!("unexpected character {c:?}"), column)),
        };
        tokens.push((column, token));
        i += width;
    }
    Ok(tokens)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(usize, Token)>,
    pos: usize,
    /// Open `(` and `!` around the current position.
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, message: String, column: usize) -> ConditionError {
        ConditionError {
            source_text: self.text.into(),
            message,
            column,
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn column(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map(|(c, _)| *c)
            .unwrap_or(self.text.chars().count() + 1)
    }

    fn or(&mut self) -> Result<Condition, ConditionError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            let right = self.and()?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, ConditionError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            let right = self.unary()?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Condition, ConditionError> {
        match self.peek() {
            Some(Token::Not) => {
                self.enter()?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Condition::Not(Box::new(inner)))
            }
            Some(Token::Open) => {
                self.enter()?;
                let inner = self.or()?;
                self.expect(Token::Close, "`)`")?;
                self.depth -= 1;
                Ok(inner)
            }
            Some(Token::IsNan) => {
                self.pos += 1;
                self.expect(Token::Open, "`(` after isNaN")?;
                self.expect(Token::Result, "`result` inside isNaN(...)")?;
                self.expect(Token::Close, "`)`")?;
                Ok(Condition::IsNan)
            }
            _ => self.comparison(),
        }
    }

    /// Step into a `(` or `!`, refusing to nest deeper than `MAX_NESTING`.
    fn enter(&mut self) -> Result<(), ConditionError> {
        if self.depth >= MAX_NESTING {
            let message = format!("nested deeper than {MAX_NESTING} levels");
            return Err(self.error(message, self.column()));
        }
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), ConditionError> {
        if self.peek() == Some(&token) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected {what}"), self.column()))
        }
    }

    fn value(&mut self) -> Result<Value, ConditionError> {
        let column = self.column();
        match self.peek().cloned() {
            Some(Token::Result) => {
                self.pos += 1;
                Ok(Value::Result)
            }
            Some(Token::Number(n)) => {
                self.pos += 1;
                Ok(Value::Number(n))
            }
            Some(other) => Err(self.error(
                format!("expected `result` or a number, found {other}"),
                column,
            )),
            None => Err(self.error("expected `result` or a number".into(), column)),
        }
    }

    fn comparison(&mut self) -> Result<Condition, ConditionError> {
        let left = self.value()?;
        let column = self.column();
        let Some(Token::Op(op)) = self.peek().cloned() else {
            return Err(self.error(
                "expected a comparison (<, <=, >, >=, ==, !=)".into(),
                column,
            ));
        };
        self.pos += 1;
        let right = self.value()?;
        if left != Value::Result && right != Value::Result {
            return Err(self.error("a comparison must involve `result`".into(), column));
        }
        Ok(Condition::Compare(Comparison { left, op, right }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(text: &str, result: f64) -> bool {
        Condition::parse(text).expect("parses").holds(result)
    }

    #[test]
    fn comparisons_and_logic() {
        assert!(holds("result < 0.01", 0.005));
        assert!(!holds("result < 0.01", 0.02));
        assert!(holds("result >= 0.95 && result <= 1", 0.97));
        assert!(holds("0.5 > result || result == 3", 3.0));
        assert!(holds("!(result > 250)", 100.0));
        assert!(holds("result != 1e-3", 0.0));
        assert!(holds("result > -1.5", -1.0));
    }

    #[test]
    fn nan_never_satisfies_a_comparison_but_is_detectable() {
        assert!(!holds("result < 0.01", f64::NAN));
        assert!(!holds("result >= 0.01", f64::NAN));
        assert!(holds("isNaN(result) || result == 0", f64::NAN));
    }

    #[test]
    fn anything_but_the_language_is_rejected_with_a_position() {
        let err = Condition::parse("result < 0.01 && system('rm')").expect_err("rejected");
        assert!(err.message.contains("unknown name"), "{err}");
        assert_eq!(err.column, 18);
        assert!(Condition::parse("result <").is_err());
        assert!(Condition::parse("1 < 2").is_err(), "must involve result");
        assert!(Condition::parse("result < 0.01)").is_err());
        assert!(Condition::parse("result = 1").is_err());
        assert!(Condition::parse("").is_err());
    }
}
