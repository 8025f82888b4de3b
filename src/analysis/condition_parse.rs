//! Tokenizer and recursive-descent parser of the condition language (see
//! [`super::condition`] for the language and its meaning).
//!
//! Every token keeps its character offset, so an error names the line and
//! column of the construct it refuses. Nesting is bounded (`MAX_NESTING`),
//! so no input can exhaust the stack.

use std::fmt;

use super::condition::{Compare, ConditionError, MAX_NESTING, Node, Quantifier, Ref, Value};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Word(String),
    /// `#`, the element inside `all`/`any`/`none`.
    Hash,
    Op(Compare),
    And,
    Or,
    Not,
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    OpenBrace,
    CloseBrace,
    Comma,
    /// Something of Argo's expr language that Sluice does not offer, with
    /// the message an error at this token gives (the parser decides whether
    /// it is an error: it may follow a construct that is wrong first).
    Unsupported(String),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Number(n) => write!(f, "number {n}"),
            Token::Word(w) => write!(f, "'{w}'"),
            Token::Hash => write!(f, "'#'"),
            Token::Op(op) => write!(f, "operator {}", op_text(*op)),
            Token::And => write!(f, "'&&'"),
            Token::Or => write!(f, "'||'"),
            Token::Not => write!(f, "'!'"),
            Token::Open => write!(f, "'('"),
            Token::Close => write!(f, "')'"),
            Token::OpenBracket => write!(f, "'['"),
            Token::CloseBracket => write!(f, "']'"),
            Token::OpenBrace => write!(f, "'{{'"),
            Token::CloseBrace => write!(f, "'}}'"),
            Token::Comma => write!(f, "','"),
            Token::Unsupported(message) => write!(f, "{message}"),
        }
    }
}

fn op_text(op: Compare) -> &'static str {
    match op {
        Compare::Lt => "<",
        Compare::Le => "<=",
        Compare::Gt => ">",
        Compare::Ge => ">=",
        Compare::Eq => "==",
        Compare::Ne => "!=",
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ConditionError> {
    let chars: Vec<char> = text.chars().collect();
    let error = |at: usize, message: String| ConditionError::at(text, at, message);
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let two = |t: Token| (t, 2);
        let (token, width) = match (c, next) {
            (c, _) if c.is_whitespace() => {
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
            ('[', _) => (Token::OpenBracket, 1),
            (']', _) => (Token::CloseBracket, 1),
            ('{', _) => (Token::OpenBrace, 1),
            ('}', _) => (Token::CloseBrace, 1),
            (',', _) => (Token::Comma, 1),
            ('#', _) => (Token::Hash, 1),
            ('.', Some(n)) if n.is_alphabetic() => {
                let field: String = chars[i + 1..]
                    .iter()
                    .take_while(|c| c.is_alphanumeric() || **c == '_')
                    .collect();
                let width = 1 + field.chars().count();
                let message = format!("unsupported field access '.{field}' (result is a number)");
                (Token::Unsupported(message), width)
            }
            (c, n)
                if c.is_ascii_digit()
                    || (matches!(c, '.' | '-')
                        && n.is_some_and(|n| n.is_ascii_digit() || n == '.')) =>
            {
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
                    .ok_or_else(|| error(start, format!("{literal:?} is not a number")))?;
                (Token::Number(number), end - start)
            }
            (c, _) if c.is_alphabetic() || c == '_' => {
                let word: String = chars[i..]
                    .iter()
                    .take_while(|c| c.is_alphanumeric() || **c == '_')
                    .collect();
                let width = word.chars().count();
                (Token::Word(word), width)
            }
            ('"' | '\'' | '`', _) => {
                let close = chars[i + 1..].iter().position(|q| *q == c);
                let width = close.map_or(chars.len() - i, |end| end + 2);
                let message = "unsupported string literal (conditions compare numbers)";
                (Token::Unsupported(message.into()), width)
            }
            ('+' | '-' | '*' | '/' | '%' | '^', _) => {
                let message =
                    format!("unsupported arithmetic operator '{c}' (compare result with a number)");
                (Token::Unsupported(message), 1)
            }
            ('?' | ':' | '=' | '&' | '|', _) => {
                (Token::Unsupported(format!("unsupported operator '{c}'")), 1)
            }
            (c, _) => return Err(error(i, format!("unexpected character {c:?}"))),
        };
        tokens.push((i, token));
        i += width;
    }
    Ok(tokens)
}

pub(super) struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(usize, Token)>,
    pos: usize,
    /// Open `(`, `!` and quantifier bodies around the current position.
    depth: usize,
    /// Inside an `all`/`any`/`none` body, where `#` is defined.
    in_body: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str) -> Result<Parser<'a>, ConditionError> {
        Ok(Parser {
            text,
            tokens: tokenize(text)?,
            pos: 0,
            depth: 0,
            in_body: 0,
        })
    }

    /// The whole text as one condition.
    pub(super) fn condition(mut self) -> Result<Node, ConditionError> {
        let condition = self.or()?;
        if let Some((at, token)) = self.tokens.get(self.pos) {
            return Err(self.error(*at, format!("unexpected {token}")));
        }
        Ok(condition)
    }

    /// An error at offset `at`; at an unsupported token, the reason it is unsupported.
    fn error(&self, at: usize, message: String) -> ConditionError {
        let unsupported = self.tokens.iter().find_map(|(offset, token)| match token {
            Token::Unsupported(reason) if *offset == at => Some(reason.clone()),
            _ => None,
        });
        ConditionError::at(self.text, at, unsupported.unwrap_or(message))
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn peek_word(&self) -> Option<&str> {
        match self.peek() {
            Some(Token::Word(w)) => Some(w),
            _ => None,
        }
    }

    /// Offset of the current token (the end of the text past the last).
    fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map(|(at, _)| *at)
            .unwrap_or(self.text.chars().count())
    }

    fn or(&mut self) -> Result<Node, ConditionError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) || self.peek_word() == Some("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Node::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, ConditionError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Token::And) || self.peek_word() == Some("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Node::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, ConditionError> {
        if self.peek() == Some(&Token::Not) || self.peek_word() == Some("not") {
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.enter()?;
            let inner = self.or()?;
            self.expect(Token::Close, "')'")?;
            self.depth -= 1;
            return Ok(inner);
        }
        match self.peek_word() {
            Some(name @ ("isNaN" | "isInf")) => {
                let is_nan = name == "isNaN";
                self.pos += 1;
                let what = if is_nan {
                    "'(' after isNaN"
                } else {
                    "'(' after isInf"
                };
                self.expect(Token::Open, what)?;
                let r = self.reference()?;
                self.expect(Token::Close, "')'")?;
                Ok(if is_nan {
                    Node::IsNan(r)
                } else {
                    Node::IsInf(r)
                })
            }
            Some(name @ ("all" | "any" | "none")) => {
                let quantifier = match name {
                    "all" => Quantifier::All,
                    "any" => Quantifier::Any,
                    _ => Quantifier::None,
                };
                self.quantified(quantifier)
            }
            _ => self.comparison(),
        }
    }

    /// `all(result, {BODY})` (braces optional, as newer expr allows).
    fn quantified(&mut self, quantifier: Quantifier) -> Result<Node, ConditionError> {
        self.pos += 1;
        self.expect(Token::Open, "'('")?;
        if self.peek_word() != Some("result") {
            return Err(self.error(self.offset(), "expected `result` as the list".into()));
        }
        self.pos += 1;
        self.expect(Token::Comma, "',' and a condition on `#`")?;
        let braced = self.peek() == Some(&Token::OpenBrace);
        self.deeper()?;
        if braced {
            self.pos += 1;
        }
        self.in_body += 1;
        let body = self.or()?;
        self.in_body -= 1;
        if braced {
            self.expect(Token::CloseBrace, "'}'")?;
        }
        self.depth -= 1;
        self.expect(Token::Close, "')'")?;
        Ok(Node::Quantified(quantifier, Box::new(body)))
    }

    /// Step over a `(` or `!` into what it opens.
    fn enter(&mut self) -> Result<(), ConditionError> {
        self.deeper()?;
        self.pos += 1;
        Ok(())
    }

    /// One level deeper, refusing to nest deeper than `MAX_NESTING`.
    fn deeper(&mut self) -> Result<(), ConditionError> {
        if self.depth >= MAX_NESTING {
            let message = format!("nested deeper than {MAX_NESTING} levels");
            return Err(self.error(self.offset(), message));
        }
        self.depth += 1;
        Ok(())
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), ConditionError> {
        if self.peek() == Some(&token) {
            self.pos += 1;
            return Ok(());
        }
        let found = match self.peek() {
            Some(t) => format!(", found {t}"),
            None => ", found the end".into(),
        };
        Err(self.error(self.offset(), format!("expected {what}{found}")))
    }

    /// `result`, `result[N]` or `#`.
    fn reference(&mut self) -> Result<Ref, ConditionError> {
        let at = self.offset();
        match self.peek().cloned() {
            Some(Token::Hash) if self.in_body > 0 => {
                self.pos += 1;
                Ok(Ref::Element)
            }
            Some(Token::Hash) => Err(self.error(
                at,
                "`#` is only defined inside all(), any() or none()".into(),
            )),
            Some(Token::Word(w)) if w == "result" => {
                self.pos += 1;
                if self.peek() != Some(&Token::OpenBracket) {
                    return Ok(Ref::Result);
                }
                self.pos += 1;
                let index_at = self.offset();
                let index = match self.peek() {
                    Some(Token::Number(n)) if n.fract() == 0.0 && *n >= 0.0 && *n < 1e9 => {
                        *n as usize
                    }
                    _ => {
                        return Err(self.error(
                            index_at,
                            "an index must be a whole number such as result[0]".into(),
                        ));
                    }
                };
                self.pos += 1;
                self.expect(Token::CloseBracket, "']'")?;
                Ok(Ref::Index {
                    index,
                    at: index_at,
                })
            }
            other => Err(self.unexpected(at, other, "`result`, `result[0]` or `#`")),
        }
    }

    /// An error for `found` where `wanted` belongs, naming unsupported functions and names.
    fn unexpected(&self, at: usize, found: Option<Token>, wanted: &str) -> ConditionError {
        let followed_by_call = matches!(self.tokens.get(self.pos + 1), Some((_, Token::Open)));
        let message = match found {
            Some(Token::Word(w)) if followed_by_call => format!("unsupported function '{w}'"),
            Some(Token::Word(w)) if w == "true" || w == "false" || w == "nil" => {
                format!("unsupported literal '{w}' (conditions compare numbers)")
            }
            Some(Token::Word(w)) if w == "in" || w == "matches" || w == "contains" => {
                format!("unsupported operator '{w}'")
            }
            Some(Token::Word(w))
                if matches!(w.as_str(), "isNaN" | "isInf" | "all" | "any" | "none") =>
            {
                format!(
                    "'{w}(...)' is a condition of its own and cannot be compared, expected {wanted}"
                )
            }
            Some(Token::Word(w)) => {
                format!("unknown name '{w}' (the only value is `result`), expected {wanted}")
            }
            Some(token) => format!("expected {wanted}, found {token}"),
            None => format!("expected {wanted}, found the end"),
        };
        self.error(at, message)
    }

    /// A number, a reference, `len(result)`, `default(REF, N)`, `asInt(REF)` or `asFloat(REF)`.
    fn value(&mut self) -> Result<Value, ConditionError> {
        let at = self.offset();
        let wanted = "`result`, `result[0]`, `len(result)` or a number";
        match self.peek().cloned() {
            Some(Token::Number(n)) => {
                self.pos += 1;
                Ok(Value::Number(n))
            }
            Some(Token::Hash) => Ok(Value::Ref(self.reference()?)),
            Some(Token::Word(w)) => match w.as_str() {
                "result" => Ok(Value::Ref(self.reference()?)),
                "len" | "default" | "asInt" | "asFloat"
                    if matches!(self.tokens.get(self.pos + 1), Some((_, Token::Open))) =>
                {
                    self.pos += 2;
                    let value = match w.as_str() {
                        "len" => {
                            if self.peek_word() != Some("result") {
                                let found = self.peek().cloned();
                                return Err(self.unexpected(self.offset(), found, "`result`"));
                            }
                            self.pos += 1;
                            Value::Len
                        }
                        "default" => {
                            let r = self.reference()?;
                            self.expect(Token::Comma, "',' and a number")?;
                            let Some(Token::Number(n)) = self.peek().cloned() else {
                                return Err(self.error(
                                    self.offset(),
                                    "default() takes a number as its fallback".into(),
                                ));
                            };
                            self.pos += 1;
                            Value::Default(r, n)
                        }
                        "asInt" => Value::AsInt(self.reference()?),
                        _ => Value::Ref(self.reference()?),
                    };
                    self.expect(Token::Close, "')'")?;
                    Ok(value)
                }
                _ => Err(self.unexpected(at, Some(Token::Word(w)), wanted)),
            },
            other => Err(self.unexpected(at, other, wanted)),
        }
    }

    fn comparison(&mut self) -> Result<Node, ConditionError> {
        let left = self.value()?;
        let at = self.offset();
        let op = match self.peek().cloned() {
            Some(Token::Op(op)) => op,
            other => {
                let found = match other {
                    Some(Token::Word(w)) if matches!(w.as_str(), "in" | "matches" | "contains") => {
                        return Err(self.error(at, format!("unsupported operator '{w}'")));
                    }
                    Some(t) => format!(", found {t}"),
                    None => ", found the end".into(),
                };
                return Err(self.error(
                    at,
                    format!("expected a comparison (<, <=, >, >=, ==, !=){found}"),
                ));
            }
        };
        self.pos += 1;
        let right = self.value()?;
        let constant = |v: &Value| matches!(v, Value::Number(_));
        if constant(&left) && constant(&right) {
            return Err(self.error(at, "a comparison must involve `result`".into()));
        }
        Ok(Node::Compare(left, op, right))
    }
}
