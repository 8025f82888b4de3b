//! `sluice migrate`: Argo Rollouts and Flagger manifests in, Sluice manifests
//! out, with a report of every field that could not be carried over.
//!
//! Pure: text in, text and findings out (the CLI in `cli::migrate` reads the
//! files and prints). Every source object is read through
//! [`report::Fields`], so a field no converter takes is reported, never lost.
//! Documents of other kinds pass through byte for byte, except the Services
//! a converted Rollout names, whose `spec.selector` Sluice owns.

pub mod argo;
pub mod flagger;
pub mod report;
pub mod yaml;

use std::collections::BTreeSet;

use serde_json::Value;

pub use report::{Finding, Report, Severity};
use yaml::SourceDoc;

/// One input: its name for reports (a path, or `-` for stdin) and its text.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub text: String,
}

/// Where a finding was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub file: String,
    /// 1-based index of the document in its file.
    pub document: usize,
    /// `Kind/name` of the source object.
    pub object: String,
    pub finding: Finding,
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.finding.path.is_empty() {
            "(document)"
        } else {
            &self.finding.path
        };
        write!(
            f,
            "{}: document {} ({}): {}: {}: {}",
            self.file,
            self.document,
            self.object,
            path,
            self.finding.severity.as_str(),
            self.finding.reason
        )
    }
}

/// The converted manifests and what could not be carried over.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Multi-document YAML, each document starting with `---`.
    pub yaml: String,
    pub findings: Vec<Located>,
    /// Source objects converted.
    pub converted: usize,
}

impl Outcome {
    /// Whether anything was dropped or needs a person (notes do not count).
    pub fn needs_attention(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.finding.severity > Severity::Note)
    }
}

/// Errors: input that is not YAML.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {source}")]
pub struct Error {
    pub file: String,
    #[source]
    pub source: yaml::ParseError,
}

/// A document of any input, with where it came from.
pub struct Doc {
    pub file: String,
    pub index: usize,
    pub source: SourceDoc,
}

impl Doc {
    pub fn kind(&self) -> &str {
        self.source.value["kind"].as_str().unwrap_or("")
    }
    pub fn api_group(&self) -> &str {
        let api = self.source.value["apiVersion"].as_str().unwrap_or("");
        api.split_once('/').map(|(g, _)| g).unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.source.value["metadata"]["name"].as_str().unwrap_or("")
    }
    pub fn namespace(&self) -> Option<&str> {
        self.source.value["metadata"]["namespace"].as_str()
    }
    /// Whether this is `kind` named `name` in `namespace` (an unset namespace matches any).
    pub fn is(&self, kind: &str, name: &str, namespace: Option<&str>) -> bool {
        self.kind() == kind
            && self.name() == name
            && match (self.namespace(), namespace) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// What converting one document produced.
#[derive(Default)]
pub struct Converted {
    /// Output documents (YAML without `---`), in order.
    pub documents: Vec<String>,
    /// Services whose selector Sluice will own (their Git copies must not set one).
    pub owned_services: Vec<String>,
    /// Indexes (into all docs) of source documents folded into this one.
    pub consumed: Vec<usize>,
}

/// Convert every input.
pub fn migrate(inputs: &[Input]) -> Result<Outcome, Error> {
    let mut docs = Vec::new();
    for input in inputs {
        let split = yaml::split(&input.text).map_err(|source| Error {
            file: input.name.clone(),
            source,
        })?;
        for (i, source) in split.into_iter().enumerate() {
            docs.push(Doc {
                file: input.name.clone(),
                index: i + 1,
                source,
            });
        }
    }

    let mut outcome = Outcome::default();
    let mut outputs: Vec<Option<Vec<String>>> = vec![None; docs.len()];
    let mut consumed = BTreeSet::new();
    let mut owned_services = BTreeSet::new();
    for (i, doc) in docs.iter().enumerate() {
        let mut report = Report::default();
        let converted = match (doc.api_group(), doc.kind()) {
            ("argoproj.io", "Rollout") => Some(argo::rollout(doc, &mut report)),
            ("argoproj.io", "AnalysisTemplate" | "ClusterAnalysisTemplate") => {
                Some(argo::analysis_template(doc, &mut report))
            }
            ("flagger.app", "Canary") => Some(flagger::canary(doc, &docs, &mut report)),
            ("flagger.app", "MetricTemplate") => Some(flagger::metric_template(doc, &mut report)),
            ("flagger.app", "AlertProvider") => Some(flagger::alert_provider(doc, &mut report)),
            ("argoproj.io" | "flagger.app", other) => {
                report.dropped(
                    "",
                    format!("kind {other} has no Sluice counterpart; the document is left out"),
                );
                Some(Converted::default())
            }
            _ => None,
        };
        if let Some(converted) = converted {
            outcome.converted += 1;
            if doc.source.inner_comments > 0 && !converted.documents.is_empty() {
                report.note(
                    "",
                    format!(
                        "{} comment line(s) inside the document are not carried over (only the comments at its head are)",
                        doc.source.inner_comments
                    ),
                );
            }
            // Comments at the head of a document folded in here (a Deployment,
            // a MetricTemplate) go with the converted object.
            let head = std::iter::once(doc)
                .chain(converted.consumed.iter().filter_map(|&c| docs.get(c)))
                .flat_map(|d| d.source.head_comments.iter().cloned())
                .collect::<Vec<_>>()
                .join("\n");
            outputs[i] = Some(
                converted
                    .documents
                    .into_iter()
                    .enumerate()
                    .map(|(n, text)| {
                        if n == 0 && !head.is_empty() {
                            format!("{head}\n{text}")
                        } else {
                            text
                        }
                    })
                    .collect(),
            );
            consumed.extend(converted.consumed);
            owned_services.extend(converted.owned_services);
        }
        let object = format!("{}/{}", doc.kind(), doc.name());
        outcome
            .findings
            .extend(report.findings.into_iter().map(|finding| Located {
                file: doc.file.clone(),
                document: doc.index,
                object: object.clone(),
                finding,
            }));
    }

    for (i, doc) in docs.iter().enumerate() {
        if consumed.contains(&i) {
            continue;
        }
        match &outputs[i] {
            Some(documents) => {
                for text in documents {
                    outcome.yaml.push_str("---\n");
                    outcome.yaml.push_str(text);
                }
            }
            None => {
                let text = passthrough(doc, &owned_services, &mut outcome.findings);
                outcome.yaml.push_str("---\n");
                outcome.yaml.push_str(&text);
            }
        }
    }
    Ok(outcome)
}

/// A document of another kind: as written, except a selector on a Service
/// that a converted Rollout routes through (Sluice sets that selector, and a
/// GitOps sync of one would be refused by its admission policy).
fn passthrough(doc: &Doc, owned: &BTreeSet<String>, findings: &mut Vec<Located>) -> String {
    let value = &doc.source.value;
    let is_owned_service = doc.kind() == "Service"
        && value["apiVersion"] == "v1"
        && owned.contains(doc.name())
        && !value["spec"]["selector"].is_null();
    if !is_owned_service {
        return doc.source.text.clone();
    }
    let mut value: Value = value.clone();
    if let Some(spec) = value["spec"].as_object_mut() {
        spec.remove("selector");
    }
    findings.push(Located {
        file: doc.file.clone(),
        document: doc.index,
        object: format!("Service/{}", doc.name()),
        finding: Finding {
            path: "spec.selector".into(),
            severity: Severity::Note,
            reason: "removed: Sluice sets the whole selector of the Services a Rollout names (see README, Traffic safety)".into(),
        },
    });
    let head = doc.source.head_comments.join("\n");
    let body = yaml::to_yaml(&value);
    if head.is_empty() {
        body
    } else {
        format!("{head}\n{body}")
    }
}

/// The `metadata` of a converted object: name, namespace, labels and
/// annotations carry over; what the API server sets is noted and left out.
pub fn metadata(doc: &Doc, report: &mut Report) -> Value {
    let mut fields = report::Fields::new(doc.source.value["metadata"].clone(), "metadata", report);
    let mut out = serde_json::Map::new();
    for key in ["name", "namespace", "labels"] {
        if let Some(v) = fields.take(key) {
            out.insert(key.into(), v);
        }
    }
    if let Some(Value::Object(mut annotations)) = fields.take("annotations") {
        // Annotations the source controller writes describe its own state.
        let own: Vec<String> = annotations
            .keys()
            .filter(|k| {
                k.starts_with("rollout.argoproj.io/")
                    || k.starts_with("flagger.app/")
                    || *k == "kubectl.kubernetes.io/last-applied-configuration"
            })
            .cloned()
            .collect();
        for key in own {
            annotations.remove(&key);
            report.note(
                &format!("metadata.annotations.{key}"),
                "written by the source controller or kubectl; left out",
            );
        }
        if !annotations.is_empty() {
            out.insert("annotations".into(), Value::Object(annotations));
        }
    }
    for key in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "finalizers",
        "ownerReferences",
    ] {
        if fields.take(key).is_some() {
            report.note(
                &format!("metadata.{key}"),
                "set by the API server; left out",
            );
        }
    }
    fields.finish(report, &[]);
    if doc.source.value.get("status").is_some_and(|s| !s.is_null()) {
        report.note("status", "written by the source controller; left out");
    }
    Value::Object(out)
}
