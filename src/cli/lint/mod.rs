//! `sluice lint FILE…`: check Rollouts, AnalysisTemplates and
//! ClusterAnalysisTemplates offline, with `FILE:LINE:COLUMN` messages.
//!
//! Per document: YAML syntax; the generated CRD's schema and CEL rules
//! ([`schema`], [`cel_rules`]); the typed parse the controller does; then
//! the controller's own validation ([`checks`]), less what a CEL rule
//! already said. Documents of other API groups
//! (Services, HTTPRoutes) are skipped, so a whole directory's manifests can
//! be linted at once.

pub mod cel_rules;
pub mod checks;
pub mod locate;
pub mod schema;

use std::fmt;
use std::io::Read;
use std::path::PathBuf;

use serde_json::Value;

use self::checks::{Finding, KnownTemplates};
use self::locate::{FieldPath, locate, value_column};
use crate::crd::{AnalysisTemplate, ClusterAnalysisTemplate, Rollout};

/// Flags of `sluice lint`.
#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// YAML files, each with one or more documents; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Why `lint` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {0}: {1}")]
    Read(String, #[source] std::io::Error),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("{0} problem(s) found")]
    Problems(usize),
}

/// One problem, 1-based position.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// `Rollout web`, or `document 2` before the kind is known.
    pub object: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.object, self.message
        )
    }
}

/// One YAML document of a file.
struct Document {
    file: String,
    /// 0-based line of the file where the document's text starts.
    first_line: usize,
    text: String,
    index: usize,
}

/// Split a file into its documents at `---` lines (blank and comment-only documents dropped).
fn documents(file: &str, text: &str) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut first_line = 0;
    let flush = |current: &mut String, first_line: usize, docs: &mut Vec<Document>| {
        let text = std::mem::take(current);
        let empty = text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
        if !empty {
            docs.push(Document {
                file: file.to_string(),
                first_line,
                text,
                index: docs.len() + 1,
            });
        }
    };
    for (n, line) in text.lines().enumerate() {
        let marker = line.trim_end();
        if marker == "---" || marker == "..." || line.starts_with("--- #") {
            flush(&mut current, first_line, &mut docs);
            first_line = n + 1;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    flush(&mut current, first_line, &mut docs);
    docs
}

/// Lint `(file name, text)` pairs; templates anywhere in the input are known
/// to the Rollouts that name them.
pub fn lint(inputs: &[(String, String)]) -> (Vec<Problem>, usize) {
    let docs: Vec<Document> = inputs
        .iter()
        .flat_map(|(file, text)| documents(file, text))
        .collect();
    let mut problems = Vec::new();
    let mut parsed: Vec<(usize, Value)> = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        match serde_yaml_ng::from_str::<Value>(&doc.text) {
            Ok(value) => parsed.push((i, value)),
            Err(err) => {
                let (line, column) = err
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                problems.push(Problem {
                    file: doc.file.clone(),
                    line: doc.first_line + line,
                    column,
                    object: format!("document {}", doc.index),
                    message: format!("not valid YAML: {err}"),
                });
            }
        }
    }
    let known = known_templates(&docs, &parsed);
    let mut checked = 0;
    for (i, value) in &parsed {
        let doc = &docs[*i];
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !api_version.starts_with("sluice.dev/") {
            continue;
        }
        checked += 1;
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("(no name)");
        let object = format!("{kind} {name}");
        let report = |findings: Vec<Finding>, problems: &mut Vec<Problem>| {
            for finding in findings {
                problems.push(place(doc, &object, finding));
            }
        };
        let Some(schema) = crd_schema(kind, api_version) else {
            report(
                vec![finding_at(
                    "kind",
                    format!(
                        "unknown kind {kind:?} in {api_version} (lint knows the kinds of `sluice crds`)"
                    ),
                )],
                &mut problems,
            );
            continue;
        };
        let violations: Vec<Finding> = schema::check(value, &schema)
            .into_iter()
            .map(|v| Finding {
                path: v.path.clone(),
                message: format!("{}: {}", display_path(&v.path), v.message),
                value_column: None,
            })
            .collect();
        let schema_clean = violations.is_empty();
        let first_typed = problems.len() + violations.len();
        report(violations, &mut problems);
        let findings = match kind {
            "Rollout" => typed::<Rollout>(doc).map(|r| checks::rollout(&r, &known)),
            "AnalysisTemplate" => {
                typed::<AnalysisTemplate>(doc).map(|t| checks::template(&t.spec, name))
            }
            "ClusterAnalysisTemplate" => typed::<ClusterAnalysisTemplate>(doc)
                .map(|t| checks::template(&t.spec.into(), name)),
            _ => Ok(Vec::new()),
        };
        match findings {
            Ok(findings) => {
                report(findings, &mut problems);
                // A CEL rule and the controller's check often say the same
                // thing: keep the rule's (it is what admission says).
                let (said, typed) = problems.split_at(first_typed);
                let repeated = |p: &Problem| {
                    said.iter().any(|s| {
                        (s.line, s.column) == (p.line, p.column) || s.message.ends_with(&p.message)
                    })
                };
                let kept: Vec<Problem> = typed.iter().filter(|p| !repeated(p)).cloned().collect();
                problems.truncate(first_typed);
                problems.extend(kept);
            }
            // A schema violation already says why the typed parse fails.
            Err(problem) if schema_clean => problems.push(Problem {
                object: object.clone(),
                ..problem
            }),
            Err(_) => {}
        }
    }
    // In file order, then by position.
    let order = |file: &str| inputs.iter().position(|(f, _)| f == file);
    problems.sort_by_key(|p| (order(&p.file), p.line, p.column));
    (problems, checked)
}

fn finding_at(path: &str, message: String) -> Finding {
    Finding {
        path: FieldPath::parse(path).unwrap_or_default(),
        message,
        value_column: None,
    }
}

fn display_path(path: &FieldPath) -> String {
    if path.0.is_empty() {
        "(the object)".into()
    } else {
        path.to_string()
    }
}

/// The typed parse the controller does; its error carries the position.
fn typed<T: serde::de::DeserializeOwned>(doc: &Document) -> Result<T, Problem> {
    serde_yaml_ng::from_str::<T>(&doc.text).map_err(|err| {
        let (line, column) = err
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        Problem {
            file: doc.file.clone(),
            line: doc.first_line + line,
            column,
            object: String::new(),
            message: err.to_string(),
        }
    })
}

/// A finding placed in its file.
fn place(doc: &Document, object: &str, finding: Finding) -> Problem {
    let (line, mut column) = locate(&doc.text, &finding.path);
    if let Some(offset) = finding.value_column
        && let Some(start) = value_column(&doc.text, line, column)
    {
        column = start + offset.saturating_sub(1);
    }
    Problem {
        file: doc.file.clone(),
        line: doc.first_line + line + 1,
        column: column + 1,
        object: object.to_string(),
        message: finding.message,
    }
}

/// The openAPIV3Schema of the CRD serving `kind` at `api_version`.
fn crd_schema(kind: &str, api_version: &str) -> Option<Value> {
    let version = api_version.strip_prefix("sluice.dev/")?;
    crate::crd::all_crds().into_iter().find_map(|(_, crd)| {
        (crd.spec.names.kind == kind).then_some(())?;
        let served = crd.spec.versions.iter().find(|v| v.name == version)?;
        let mut schema =
            serde_json::to_value(served.schema.as_ref()?.open_api_v3_schema.as_ref()?).ok()?;
        // The API server adds these to every kind's schema itself.
        if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            for (field, kind) in [
                ("apiVersion", "string"),
                ("kind", "string"),
                ("metadata", "object"),
            ] {
                properties
                    .entry(field)
                    .or_insert_with(|| serde_json::json!({ "type": kind }));
            }
        }
        Some(schema)
    })
}

/// Templates in the input and the args they declare.
fn known_templates(docs: &[Document], parsed: &[(usize, Value)]) -> KnownTemplates {
    let mut known = KnownTemplates::new();
    for (i, value) in parsed {
        let kind = value.get("kind").and_then(Value::as_str);
        let cluster = match kind {
            Some("AnalysisTemplate") => false,
            Some("ClusterAnalysisTemplate") => true,
            _ => continue,
        };
        let Ok(spec) = (if cluster {
            typed::<ClusterAnalysisTemplate>(&docs[*i]).map(|t| t.spec.into())
        } else {
            typed::<AnalysisTemplate>(&docs[*i]).map(|t| t.spec)
        }) else {
            continue;
        };
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let spec: crate::crd::AnalysisTemplateSpec = spec;
        known.insert((cluster, name), spec.args);
    }
    known
}

/// `sluice lint`: print each problem, then a summary; `Error::Problems` when any.
pub fn run(args: &LintArgs) -> Result<(), Error> {
    let mut inputs = Vec::new();
    for path in &args.files {
        let name = path.display().to_string();
        let text = if name == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Error::Read("standard input".into(), e))?;
            text
        } else {
            std::fs::read_to_string(path).map_err(|e| Error::Read(name.clone(), e))?
        };
        let name = if name == "-" {
            "<stdin>".to_string()
        } else {
            name
        };
        inputs.push((name, text));
    }
    let (problems, checked) = lint(&inputs);
    for problem in &problems {
        crate::outln!("{problem}")?;
    }
    if problems.is_empty() {
        crate::outln!("{checked} Sluice object(s) checked, no problems")?;
        Ok(())
    } else {
        Err(Error::Problems(problems.len()))
    }
}

#[cfg(test)]
mod tests;
