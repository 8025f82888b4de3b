//! Multi-document YAML in and out, line by line so that comments survive
//! where they can: a document that passes through unchanged is copied byte
//! for byte, and a converted one keeps the comment lines at its head (the
//! comments inside it are counted and reported, since YAML parsers drop them).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::report::Report;

/// One document of an input file.
#[derive(Debug, Clone)]
pub struct SourceDoc {
    /// The document's text, without its `---` line.
    pub text: String,
    /// Comment lines before its first content line (`# ...`), as written.
    pub head_comments: Vec<String>,
    /// Comment lines after the head, which a conversion cannot place.
    pub inner_comments: usize,
    /// The parsed value (`Null` for an empty document).
    pub value: Value,
}

/// Errors reading YAML.
#[derive(Debug, thiserror::Error)]
#[error("document {index}: {message}")]
pub struct ParseError {
    pub index: usize,
    pub message: String,
}

/// Split `text` at its `---` lines and parse each document.
pub fn split(text: &str) -> Result<Vec<SourceDoc>, ParseError> {
    let mut chunks: Vec<String> = vec![String::new()];
    for line in text.lines() {
        let is_separator = line == "---"
            || line.starts_with("--- ")
            || line.starts_with("---\t")
            || line.starts_with("---#");
        if is_separator {
            chunks.push(String::new());
            // `--- {a: 1}` keeps its content on the separator line.
            let rest = line[3..].trim();
            if !rest.is_empty()
                && !rest.starts_with('#')
                && let Some(chunk) = chunks.last_mut()
            {
                chunk.push_str(rest);
                chunk.push('\n');
            }
        } else if line == "..." {
            continue;
        } else if let Some(chunk) = chunks.last_mut() {
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    let mut docs = Vec::new();
    for (index, chunk) in chunks.into_iter().enumerate() {
        let value: Value = serde_yaml_ng::from_str(&chunk).map_err(|e| ParseError {
            index: index + 1,
            message: e.to_string(),
        })?;
        let mut head_comments = Vec::new();
        let mut inner_comments = 0;
        let mut in_head = true;
        for line in chunk.lines() {
            let trimmed = line.trim_start();
            if in_head && (trimmed.is_empty() || trimmed.starts_with('#')) {
                if trimmed.starts_with('#') {
                    head_comments.push(line.to_string());
                }
                continue;
            }
            in_head = false;
            if trimmed.starts_with('#') || line.contains(" #") {
                inner_comments += 1;
            }
        }
        if value.is_null() && head_comments.is_empty() {
            continue;
        }
        docs.push(SourceDoc {
            text: chunk,
            head_comments,
            inner_comments,
            value,
        });
    }
    Ok(docs)
}

/// Render a Sluice object: through its Rust type when it parses as one (so the
/// fields come out in the type's order, and anything the type would not keep
/// is reported), as it is otherwise (with a finding that says why).
pub fn render_typed<T: DeserializeOwned + Serialize>(
    value: Value,
    kind: &str,
    report: &mut Report,
) -> String {
    match serde_json::from_value::<T>(value.clone()) {
        Ok(typed) => {
            let back = without_nulls(serde_json::to_value(&typed).unwrap_or(Value::Null));
            let mut lost = Vec::new();
            lost_paths(&without_nulls(value.clone()), &back, "", &mut lost);
            for path in lost {
                report.dropped(
                    &path,
                    format!("not a field of Sluice's {kind}; check its spelling in the source"),
                );
            }
            to_yaml(&typed)
        }
        Err(err) => {
            report.attention(
                "",
                format!(
                    "the result is not a valid Sluice {kind} ({err}); printed as converted, complete it before applying"
                ),
            );
            to_yaml(&value)
        }
    }
}

/// [`render_typed`] for a Rollout, which also needs a pod template or a
/// `workloadRef` (both optional in the type, one required by the CRD).
pub fn render_rollout(value: Value, report: &mut Report) -> String {
    let spec = &value["spec"];
    if spec.get("template").is_none() && spec.get("workloadRef").is_none() {
        report.attention(
            "",
            "the result is not a valid Sluice Rollout (no spec.template and no spec.workloadRef); printed as converted, complete it before applying",
        );
    }
    render_typed::<crate::crd::Rollout>(value, "Rollout", report)
}

/// YAML text of a value, without the leading `---`.
pub fn to_yaml<T: Serialize>(value: &T) -> String {
    serde_yaml_ng::to_string(value).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Paths present in `before` whose value `after` does not have.
fn lost_paths(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (key, value) in b {
                match a.get(key) {
                    Some(other) => lost_paths(value, other, &join(key), out),
                    None => out.push(join(key)),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, value) in b.iter().enumerate() {
                match a.get(i) {
                    Some(other) => lost_paths(value, other, &format!("{path}[{i}]"), out),
                    None => out.push(format!("{path}[{i}]")),
                }
            }
        }
        // Numbers may change form (1.0 → 1) and that is no loss.
        (Value::Number(b), Value::Number(a)) if b.as_f64() == a.as_f64() => {}
        (b, a) if b == a => {}
        _ => out.push(path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_with_their_head_comments() {
        let text = "# first\n# more\na: 1\n# inner\nb: 2 # trailing\n---\n---\n# only a comment\n--- {c: 3}\n";
        let docs = split(text).expect("parse");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].head_comments, vec!["# first", "# more"]);
        assert_eq!(docs[0].inner_comments, 2);
        assert_eq!(docs[0].value["b"], 2);
        assert!(docs[1].value.is_null());
        assert_eq!(docs[2].value["c"], 3);
    }

    #[test]
    fn unparsable_yaml_names_its_document() {
        let err = split("a: 1\n---\nb: [unclosed\n").expect_err("bad yaml");
        assert_eq!(err.index, 2);
    }
}
