//! The checks the controller makes, run offline on one parsed document:
//! a Rollout's spec (`engine::spec::settings`) and the arguments its
//! analysis steps give to templates found beside it; a template's metrics
//! (`analysis::run::plan_metric`), conditions (`analysis::condition`) and
//! `{{args.NAME}}` placeholders.

use std::collections::{BTreeMap, BTreeSet};

use super::locate::{FieldPath, Seg};
use crate::analysis::condition::Condition;
use crate::analysis::template::{args_named, condition_shape};
use crate::crd::{
    AnalysisArg, AnalysisTemplateRef, AnalysisTemplateSpec, Metric, Rollout, TemplateArg,
};

/// Arguments every run provides.
pub const BUILT_IN_ARGS: [&str; 5] = [
    "namespace",
    "rollout",
    "canary-hash",
    "stable-hash",
    "baseline-hash",
];

/// A problem at a path; `column` is a 1-based offset into the value there
/// (a condition's own column), when known.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub path: FieldPath,
    pub message: String,
    pub value_column: Option<usize>,
}

impl Finding {
    fn at(path: FieldPath, message: String) -> Finding {
        Finding {
            path,
            message,
            value_column: None,
        }
    }
}

/// Templates in the input, by (cluster scope, name): their declared args.
pub type KnownTemplates = BTreeMap<(bool, String), Vec<TemplateArg>>;

/// The controller's validation of a Rollout, and the args its analyses give
/// to templates in `known`.
pub fn rollout(rollout: &Rollout, known: &KnownTemplates) -> Vec<Finding> {
    let mut out = Vec::new();
    let strategy = if rollout.spec.strategy.blue_green.is_some() {
        "blueGreen"
    } else {
        "canary"
    };
    if let Err(problems) = crate::engine::spec::settings(rollout) {
        for problem in problems {
            out.push(Finding::at(problem_path(&problem, strategy), problem));
        }
    }
    let base = FieldPath::parse("spec.strategy").unwrap_or_default();
    let mut uses: Vec<(FieldPath, &[AnalysisTemplateRef], &[AnalysisArg])> = Vec::new();
    if let Some(canary) = &rollout.spec.strategy.canary {
        let canary_path = base.key("canary");
        for (i, step) in canary.steps.iter().flatten().enumerate() {
            if let Some(a) = &step.analysis {
                uses.push((
                    canary_path.key("steps").index(i).key("analysis"),
                    &a.templates,
                    &a.args,
                ));
            }
        }
        if let Some(a) = &canary.analysis {
            uses.push((canary_path.key("analysis"), &a.templates, &a.args));
        }
    }
    if let Some(bg) = &rollout.spec.strategy.blue_green {
        for (field, a) in [
            ("prePromotionAnalysis", &bg.pre_promotion_analysis),
            ("postPromotionAnalysis", &bg.post_promotion_analysis),
        ] {
            if let Some(a) = a {
                uses.push((base.key("blueGreen").key(field), &a.templates, &a.args));
            }
        }
    }
    for (path, templates, args) in uses {
        for (t, template) in templates.iter().enumerate() {
            let Some(declared) =
                known.get(&(template.cluster_scope, template.template_name.clone()))
            else {
                continue;
            };
            for arg in declared {
                let given = args.iter().any(|a| a.name == arg.name && a.value.is_some());
                if !given && arg.value.is_none() && arg.value_from.is_none() {
                    out.push(Finding::at(
                        path.key("templates").index(t),
                        format!(
                            "template {} needs argument {:?}, which this analysis does not give (add it to args)",
                            template.template_name, arg.name
                        ),
                    ));
                }
            }
        }
        for (a, arg) in args.iter().enumerate() {
            let declared_somewhere = templates.iter().any(|t| {
                known
                    .get(&(t.cluster_scope, t.template_name.clone()))
                    .is_none_or(|declared| declared.iter().any(|d| d.name == arg.name))
            });
            if !declared_somewhere {
                out.push(Finding::at(
                    path.key("args").index(a),
                    format!(
                        "argument {:?} is declared by none of the templates",
                        arg.name
                    ),
                ));
            }
        }
    }
    out
}

/// Where a `settings` problem points: the first word that reads as a field path.
fn problem_path(problem: &str, strategy: &str) -> FieldPath {
    let base = FieldPath::parse(&format!("spec.strategy.{strategy}")).unwrap_or_default();
    for word in problem.split_whitespace() {
        let word = word.trim_end_matches([',', ':', ';']);
        let Some(path) = FieldPath::parse(word) else {
            continue;
        };
        let Some(Seg::Key(first)) = path.0.first() else {
            continue;
        };
        let full = match first.as_str() {
            "spec" => path,
            "blueGreen" | "canary" => FieldPath::parse("spec.strategy")
                .unwrap_or_default()
                .join(&path.0),
            "steps"
            | "trafficRouting"
            | "baseline"
            | "stableService"
            | "canaryService"
            | "maxSurge"
            | "maxUnavailable"
            | "activeService"
            | "previewService"
            | "scaleDownDelaySeconds"
            | "abortScaleDownDelaySeconds"
            | "analysis" => base.join(&path.0),
            "progressDeadlineSeconds" | "revisionHistoryLimit" | "replicas" => {
                FieldPath::parse("spec").unwrap_or_default().join(&path.0)
            }
            _ => continue,
        };
        return full;
    }
    if problem.starts_with("name ") {
        return FieldPath::parse("metadata.name").unwrap_or_default();
    }
    base
}

/// A template's metrics as the controller checks them before measuring.
pub fn template(spec: &AnalysisTemplateSpec, name: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let declared: BTreeSet<&str> = spec
        .args
        .iter()
        .map(|a| a.name.as_str())
        .chain(BUILT_IN_ARGS)
        .collect();
    let metrics = FieldPath::parse("spec.metrics").unwrap_or_default();
    for (i, metric) in spec.metrics.iter().enumerate() {
        let path = metrics.index(i);
        let mut condition_failed = false;
        for (field, text) in [
            ("successCondition", &metric.success_condition),
            ("failureCondition", &metric.failure_condition),
        ] {
            let Some(text) = text else { continue };
            if let Err(err) = Condition::parse(&condition_shape(text)) {
                condition_failed = true;
                // The column is exact while no placeholder comes before it.
                let exact = !text.contains("{{");
                out.push(Finding {
                    path: path.key(field),
                    message: format!("{}: {err}", metric.name),
                    value_column: exact.then_some(err.column),
                });
            }
        }
        for (field, text) in placeholders_in(metric) {
            for arg in args_named(text) {
                if !declared.contains(arg) {
                    out.push(Finding::at(
                        path.join(&field),
                        format!(
                            "{}: {{{{args.{arg}}}}} names no declared argument (declared: {})",
                            metric.name,
                            declared.iter().copied().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        if !condition_failed && let Err(err) = crate::analysis::run::plan_metric(name, metric) {
            out.push(Finding::at(path, err));
        }
    }
    out
}

/// The texts of a metric that may hold `{{args.NAME}}`, with their paths (relative).
fn placeholders_in(metric: &Metric) -> Vec<(Vec<Seg>, &str)> {
    let key = |parts: &[&str]| {
        parts
            .iter()
            .map(|p| Seg::Key((*p).to_string()))
            .collect::<Vec<_>>()
    };
    let mut out = Vec::new();
    for (field, text) in [
        ("successCondition", &metric.success_condition),
        ("failureCondition", &metric.failure_condition),
    ] {
        if let Some(text) = text {
            out.push((key(&[field]), text.as_str()));
        }
    }
    if let Some(p) = &metric.provider.prometheus {
        out.push((
            key(&["provider", "prometheus", "address"]),
            p.address.as_str(),
        ));
        for (field, text) in [
            ("query", &p.query),
            ("events", &p.events),
            ("exposure", &p.exposure),
        ] {
            if let Some(text) = text {
                out.push((key(&["provider", "prometheus", field]), text.as_str()));
            }
        }
    }
    if let Some(p) = &metric.provider.scrape {
        for (field, text) in [
            ("query", &p.query),
            ("events", &p.events),
            ("exposure", &p.exposure),
        ] {
            if let Some(text) = text {
                out.push((key(&["provider", "scrape", field]), text.as_str()));
            }
        }
    }
    if let Some(job) = &metric.provider.job {
        if let Some(meta) = &job.metadata {
            for (field, map) in [("labels", &meta.labels), ("annotations", &meta.annotations)] {
                for (name, text) in map {
                    out.push((
                        key(&["provider", "job", "metadata", field, name]),
                        text.as_str(),
                    ));
                }
            }
        }
        strings_in(&job.spec, key(&["provider", "job", "spec"]), &mut out);
    }
    out
}

/// Every string of a JSON value (a Job's spec), with its path.
fn strings_in<'a>(
    value: &'a serde_json::Value,
    path: Vec<Seg>,
    out: &mut Vec<(Vec<Seg>, &'a str)>,
) {
    let under = |seg: Seg| {
        let mut path = path.clone();
        path.push(seg);
        path
    };
    match value {
        serde_json::Value::String(text) => out.push((path, text.as_str())),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                strings_in(item, under(Seg::Index(i)), out);
            }
        }
        serde_json::Value::Object(fields) => {
            for (name, item) in fields {
                strings_in(item, under(Seg::Key(name.clone())), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_problems_point_at_the_field_they_name() {
        let cases = [
            (
                "steps[2].setWeight is 101, must be between 0 and 100",
                "canary",
                "spec.strategy.canary.steps[2].setWeight",
            ),
            (
                "spec.replicas is -1, must not be negative",
                "canary",
                "spec.replicas",
            ),
            (
                "blueGreen.activeService and previewService must differ",
                "blueGreen",
                "spec.strategy.blueGreen.activeService",
            ),
            (
                "maxSurge and maxUnavailable cannot both be 0",
                "canary",
                "spec.strategy.canary.maxSurge",
            ),
            (
                "name \"x\" is longer than 63 characters, too long for a label value",
                "canary",
                "metadata.name",
            ),
            ("something else entirely", "canary", "spec.strategy.canary"),
        ];
        for (problem, strategy, expected) in cases {
            assert_eq!(
                problem_path(problem, strategy).to_string(),
                expected,
                "{problem}"
            );
        }
    }

    #[test]
    fn args_are_read_from_placeholders() {
        assert_eq!(
            args_named("a{{args.x}}b{{ args.y }}{{revision}}{{args.z"),
            ["x", "y"]
        );
    }
}
