//! Finding where a field path (`spec.strategy.canary.steps[2].setWeight`)
//! is written in a YAML document, for `FILE:LINE:COLUMN` messages.
//!
//! A line scanner for block-style YAML (what manifests are written in):
//! mapping keys, `- ` sequence items (also at the parent key's indent, as
//! kubectl writes them), block scalars skipped. A path into flow style
//! (`{a: 1}`) or anything else it cannot follow points at the nearest
//! enclosing key it found.

use std::fmt;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A field path, shown as `spec.steps[2].setWeight`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    /// Parse `a.b[2].c`; `None` when it is no path.
    pub fn parse(text: &str) -> Option<FieldPath> {
        let mut segs = Vec::new();
        for part in text.split('.') {
            let (key, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return None;
            }
            segs.push(Seg::Key(key.to_string()));
            while let Some(inner) = rest.strip_prefix('[') {
                let end = inner.find(']')?;
                segs.push(Seg::Index(inner[..end].parse().ok()?));
                rest = &inner[end + 1..];
            }
            if !rest.is_empty() {
                return None;
            }
        }
        Some(FieldPath(segs))
    }

    /// This path followed by `more`.
    pub fn join(&self, more: &[Seg]) -> FieldPath {
        let mut segs = self.0.clone();
        segs.extend_from_slice(more);
        FieldPath(segs)
    }

    /// This path followed by a key.
    pub fn key(&self, key: &str) -> FieldPath {
        self.join(&[Seg::Key(key.into())])
    }

    /// This path followed by an index.
    pub fn index(&self, index: usize) -> FieldPath {
        self.join(&[Seg::Index(index)])
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Key(String),
    Item,
}

/// A key or a `- ` item, with its 0-based line and column.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    line: usize,
    column: usize,
    kind: Kind,
}

/// The keys and items of a document, in order.
fn scan(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut block_scalar_above: Option<usize> = None;
    for (line, raw) in text.lines().enumerate() {
        let content = raw.trim_start_matches(' ');
        let indent = raw.len() - content.len();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if let Some(owner) = block_scalar_above {
            if indent > owner {
                continue;
            }
            block_scalar_above = None;
        }
        let mut column = indent;
        let mut rest = content;
        while let Some(after) =
            rest.strip_prefix("- ")
                .or(if rest == "-" { Some("") } else { None })
        {
            entries.push(Entry {
                line,
                column,
                kind: Kind::Item,
            });
            let skipped = rest.len() - after.len();
            let trimmed = after.trim_start_matches(' ');
            column += skipped + (after.len() - trimmed.len());
            rest = trimmed;
        }
        if let Some((key, value)) = split_key(rest) {
            let value = value.trim();
            if value.starts_with('|') || value.starts_with('>') {
                block_scalar_above = Some(column);
            }
            entries.push(Entry {
                line,
                column,
                kind: Kind::Key(key),
            });
        }
    }
    entries
}

/// `key: value` → (key, value), the key unquoted.
fn split_key(text: &str) -> Option<(String, &str)> {
    if text.starts_with(['{', '[', '#', '&', '*', '!', '|', '>']) {
        return None;
    }
    let (key, value) = if let Some(quote) = text.chars().next().filter(|c| *c == '"' || *c == '\'')
    {
        let end = text[1..].find(quote)? + 1;
        let value = text[end + 1..].trim_start().strip_prefix(':')?;
        (text[1..end].to_string(), value)
    } else {
        let colon = text
            .match_indices(':')
            .map(|(i, _)| i)
            .find(|i| text[i + 1..].is_empty() || text[i + 1..].starts_with([' ', '\t']))?;
        (text[..colon].trim_end().to_string(), &text[colon + 1..])
    };
    (!value.trim_start().starts_with(':')).then_some((key, value))
}

/// Entries below `entries[at]` (its value).
fn children(entries: &[Entry], at: usize) -> &[Entry] {
    let parent = &entries[at];
    let start = at + 1;
    let len = entries[start..]
        .iter()
        .take_while(|e| {
            e.column > parent.column
                // `key:` followed by `- item` at the key's own indent.
                || (matches!(parent.kind, Kind::Key(_))
                    && e.kind == Kind::Item
                    && e.column == parent.column)
        })
        .count();
    // Items at the key's indent end at the next key at that indent; a
    // nested key of an item is deeper, so only same-column keys stop.
    &entries[start..start + len]
}

/// 0-based (line, column) of `path` in `text`: of the key or item it names,
/// or of the deepest enclosing one found; (0, 0) when nothing matched.
pub fn locate(text: &str, path: &FieldPath) -> (usize, usize) {
    let entries = scan(text);
    let mut scope: &[Entry] = &entries;
    let mut found = (0, 0);
    for seg in &path.0 {
        let Some(top) = scope.iter().map(|e| e.column).min() else {
            break;
        };
        let at = match seg {
            Seg::Key(key) => scope
                .iter()
                .position(|e| e.column == top && e.kind == Kind::Key(key.clone())),
            Seg::Index(n) => scope
                .iter()
                .enumerate()
                .filter(|(_, e)| e.column == top && e.kind == Kind::Item)
                .nth(*n)
                .map(|(i, _)| i),
        };
        let Some(at) = at else {
            break;
        };
        found = (scope[at].line, scope[at].column);
        scope = children(scope, at);
    }
    found
}

/// 0-based column where the value of the key on `line` starts (after a quote).
pub fn value_column(text: &str, line: usize, key_column: usize) -> Option<usize> {
    let raw = text.lines().nth(line)?;
    let rest = raw.get(key_column..)?;
    let (_, value) = split_key(rest)?;
    let value_start = raw.len() - value.len();
    let trimmed = value.trim_start();
    let mut column = value_start + (value.len() - trimmed.len());
    if trimmed.starts_with(['"', '\'']) {
        column += 1;
    }
    Some(column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: web
        image: web:1
      - name: "side"
        command: |
          steps:
            - fake: key
  strategy:
    canary:
      steps:
        - setWeight: 10
        - pause: {duration: 30s}
        -   setWeight: 101
"#;

    fn at(path: &str) -> (usize, usize) {
        let path = FieldPath::parse(path).unwrap_or_default();
        let (line, column) = locate(DOC, &path);
        (line + 1, column + 1)
    }

    #[test]
    fn paths_point_at_their_key_or_item() {
        // (path, 1-based line and column)
        let cases = [
            ("kind", (2, 1)),
            ("metadata.name", (4, 3)),
            ("spec.template.spec.containers[0].image", (10, 9)),
            ("spec.template.spec.containers[1]", (11, 7)),
            ("spec.template.spec.containers[1].name", (11, 9)),
            ("spec.strategy.canary.steps[0].setWeight", (18, 11)),
            ("spec.strategy.canary.steps[2].setWeight", (20, 13)),
            // Into flow style: the nearest key found.
            ("spec.strategy.canary.steps[1].pause.duration", (19, 11)),
            // Missing: the deepest ancestor.
            ("spec.strategy.canary.maxSurge", (16, 5)),
            ("spec.strategy.blueGreen", (15, 3)),
        ];
        for (path, expected) in cases {
            assert_eq!(at(path), expected, "{path}");
        }
    }

    #[test]
    fn paths_parse_and_print_back() {
        for text in ["spec.steps[2].setWeight", "a", "a[0][1].b"] {
            let path = FieldPath::parse(text);
            assert_eq!(path.map(|p| p.to_string()).as_deref(), Some(text));
        }
        for bad in ["", "a..b", "a[x]", "a[1", "is,", "{}"] {
            assert_eq!(FieldPath::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_value_column_skips_the_key_and_a_quote() {
        let text = "  successCondition: \"result < 0.01\"\n  failureCondition: result > 1\n";
        assert_eq!(value_column(text, 0, 2), Some(21));
        assert_eq!(value_column(text, 1, 2), Some(20));
    }
}
