//! `sluice analyze`: evaluate a template against Prometheus over a past window,
//! for two revisions, and print each measurement, the numbers and the verdict.
//! The way to tune a template before a rollout depends on it, so it replays
//! exactly the controller's schedule (`next_due`, `record`): `--since` plays
//! the role of the run's start. `--live` instead measures from now on, on
//! the same schedule: the only way for the web provider, which has no
//! history (see `analyze_live`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use kube::Api;

use super::kubeconfig::KubeArgs;
use crate::analysis::measure::{Prepared, Source};
use crate::analysis::measure::{measure, prepare_metric};
use crate::analysis::run::{MetricPlan, new_result, next_due, overall, record};
use crate::crd::{AnalysisPhase, AnalysisTemplate, AnalysisTemplateSpec, ClusterAnalysisTemplate};

/// Flags of `sluice analyze`.
#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// Template file (an AnalysisTemplate or ClusterAnalysisTemplate manifest).
    #[arg(long, short = 'f', conflicts_with = "template")]
    pub file: Option<PathBuf>,
    /// Name of a template in the cluster (with --cluster-scope: a ClusterAnalysisTemplate).
    #[arg(long)]
    pub template: Option<String>,
    /// Look --template up among ClusterAnalysisTemplates.
    #[arg(long)]
    pub cluster_scope: bool,
    /// Namespace (the `namespace` argument, and where --template is read;
    /// default: the kubeconfig context's, else `default`).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Rollout name (the `rollout` argument).
    #[arg(long, default_value = "")]
    pub rollout: String,
    /// Pod-template hash of the canary.
    #[arg(long)]
    pub canary: String,
    /// Pod-template hash of the baseline (the stable revision).
    #[arg(long)]
    pub baseline: String,
    /// Template arguments, `name=value` (repeatable).
    #[arg(long = "arg", value_parser = parse_arg)]
    pub args: Vec<(String, String)>,
    /// Length of the window to replay, ending at --until. Its start plays the
    /// run's start: the first measurement is at start + initialDelay, then one
    /// per interval, as the controller does.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub since: Duration,
    /// End of the window (RFC 3339), default now.
    #[arg(long, conflicts_with = "live")]
    pub until: Option<Timestamp>,
    /// Measure live instead of replaying: from now on, first at
    /// `initialDelay`, then one per interval, until every metric has its
    /// verdict (as the controller would). Needed for web metrics, which have
    /// no history; Prometheus metrics are queried at each instant.
    #[arg(long)]
    pub live: bool,
    /// With --live: stop after this long even without a verdict.
    #[arg(long = "for", requires = "live", value_parser = humantime::parse_duration)]
    pub live_for: Option<Duration>,
}

fn parse_arg(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?}: expected name=value"))
}

/// Errors of `sluice analyze`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("give --file or --template")]
    NoTemplate,
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0} is not an AnalysisTemplate or ClusterAnalysisTemplate: {1}")]
    Parse(PathBuf, String),
    #[error("cannot read the template from the cluster: {0}")]
    Cluster(String),
    #[error("argument {0} has no value: pass --arg {0}=VALUE")]
    ArgMissing(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the window ends before it starts")]
    Window,
    #[error(
        "metric {0} uses the web provider, which has no history to replay: add --live to take its measurements from now on, on the controller's schedule"
    )]
    NeedsLive(String),
    #[error(
        "metric {0} uses the scrape provider, which reads the pods' /metrics: only the controller measures it (use a prometheus provider to tune it here)"
    )]
    Scrape(String),
    #[error("verdict {0}")]
    Verdict(&'static str),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

async fn load(
    args: &AnalyzeArgs,
    kube: &KubeArgs,
    namespace: &str,
) -> Result<(String, AnalysisTemplateSpec), Error> {
    if let Some(path) = &args.file {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Read(path.clone(), e))?;
        let value: serde_json::Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| Error::Parse(path.clone(), e.to_string()))?;
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or("template")
            .to_string();
        let spec = match value["kind"].as_str() {
            Some("ClusterAnalysisTemplate") => {
                serde_json::from_value::<ClusterAnalysisTemplate>(value).map(|t| t.spec.into())
            }
            _ => serde_json::from_value::<AnalysisTemplate>(value).map(|t| t.spec),
        }
        .map_err(|e| Error::Parse(path.clone(), e.to_string()))?;
        return Ok((name, spec));
    }
    let name = args.template.clone().ok_or(Error::NoTemplate)?;
    let client = kube
        .client()
        .await
        .map_err(|e| Error::Cluster(e.to_string()))?;
    let spec = if args.cluster_scope {
        Api::<ClusterAnalysisTemplate>::all(client)
            .get(&name)
            .await
            .map(|t| t.spec.into())
    } else {
        Api::<AnalysisTemplate>::namespaced(client, namespace)
            .get(&name)
            .await
            .map(|t| t.spec)
    }
    .map_err(|e| Error::Cluster(e.to_string()))?;
    Ok((name, spec))
}

/// When the controller takes a run's first measurement of `plan`, for a run started at `start`.
pub(super) fn first_measurement(start: Timestamp, plan: &MetricPlan) -> Result<Timestamp, Error> {
    next_due(&new_result(plan), plan, start).ok_or(Error::Window)
}

/// Run `sluice analyze`; the error carries a non-success verdict.
pub async fn run(args: AnalyzeArgs, kube: &KubeArgs) -> Result<(), Error> {
    let namespace = kube.namespace_or_default(args.namespace.as_deref()).await;
    let (name, spec) = load(&args, kube, &namespace).await?;
    let mut values: BTreeMap<String, String> = BTreeMap::from([
        ("namespace".to_string(), namespace.clone()),
        ("rollout".to_string(), args.rollout.clone()),
        ("canary-hash".to_string(), args.canary.clone()),
        ("stable-hash".to_string(), args.baseline.clone()),
        ("baseline-hash".to_string(), args.baseline.clone()),
    ]);
    let given: BTreeMap<String, String> = args.args.iter().cloned().collect();
    for arg in &spec.args {
        let value = given.get(&arg.name).cloned().or(arg.value.clone());
        values.insert(
            arg.name.clone(),
            value.ok_or_else(|| Error::ArgMissing(arg.name.clone()))?,
        );
    }
    let mut prepared = Vec::new();
    for metric in &spec.metrics {
        let p =
            prepare_metric(&name, metric, &values, Default::default()).map_err(Error::Invalid)?;
        match p.source {
            Source::Scrape { .. } => return Err(Error::Scrape(metric.name.clone())),
            Source::Web(_) if !args.live => return Err(Error::NeedsLive(metric.name.clone())),
            _ => prepared.push(p),
        }
    }
    let comparisons = prepared
        .iter()
        .filter(|p| !p.plan.metric.dry_run && p.plan.verdict.is_comparison())
        .count();
    let results = if args.live {
        super::analyze_live::run(&name, &args, &prepared, comparisons).await?
    } else {
        replay(&name, &args, &prepared, comparisons).await?
    };
    let (phase, message) = overall(&results);
    crate::outln!("\nverdict: {} — {message}", phase.as_str())?;
    match phase {
        AnalysisPhase::Successful => Ok(()),
        other => Err(Error::Verdict(other.as_str())),
    }
}

/// Replay `prepared` over the past window of `args`, metric by metric.
async fn replay(
    name: &str,
    args: &AnalyzeArgs,
    prepared: &[Prepared],
    comparisons: usize,
) -> Result<Vec<crate::crd::MetricResult>, Error> {
    let until = args.until.unwrap_or_else(Timestamp::now);
    let start = until.checked_sub(args.since).map_err(|_| Error::Window)?;
    crate::outln!(
        "template {name}: canary {} vs baseline {}, window {start} .. {until}",
        args.canary,
        args.baseline
    )?;
    let mut results = Vec::new();
    for p in prepared {
        let mut result = new_result(&p.plan);
        crate::outln!(
            "\nmetric {}{}",
            p.plan.metric.name,
            if p.plan.metric.dry_run {
                " (dry run)"
            } else {
                ""
            }
        )?;
        // The controller's schedule: the first measurement at `initialDelay`, then one per interval.
        let mut at = first_measurement(start, &p.plan)?;
        while at <= until && !result.phase.is_finished() {
            let outcome = measure(p, &args.canary, &args.baseline, at, None).await;
            record(&mut result, &p.plan, outcome, at, comparisons);
            let detail = last_detail(&result);
            crate::outln!(
                "  {at}  {:<12} {detail}",
                result
                    .measurements
                    .last()
                    .map(|m| m.phase.as_str())
                    .unwrap_or("-")
            )?;
            at = at.checked_add(p.plan.interval).map_err(|_| Error::Window)?;
        }
        if !result.phase.is_finished() {
            crate::outln!(
                "  (the window ended after {} of {} measurements)",
                result.count,
                p.plan.count
            )?;
        }
        print_result(&result)?;
        results.push(result);
    }
    Ok(results)
}

/// `  => Phase: message` for one metric.
pub(super) fn print_result(result: &crate::crd::MetricResult) -> Result<(), Error> {
    crate::outln!(
        "  => {}: {}",
        result.phase.as_str(),
        result.message.as_deref().unwrap_or("-")
    )?;
    Ok(())
}

/// What the last measurement of `result` showed: its message or value.
pub(super) fn last_detail(result: &crate::crd::MetricResult) -> String {
    let last = result.measurements.last();
    last.and_then(|m| m.message.clone())
        .or_else(|| last.and_then(|m| m.value).map(|v| format!("result {v}")))
        .or_else(|| result.message.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::run::plan_metric;
    use crate::crd::{Comparison, Metric, MetricProvider, PrometheusProvider};

    #[test]
    fn the_replay_measures_first_at_the_initial_delay_like_the_controller() {
        let metric = Metric {
            name: "errors".into(),
            interval: Some("30s".into()),
            initial_delay: Some("1m".into()),
            count: Some(20),
            provider: MetricProvider {
                prometheus: Some(PrometheusProvider {
                    address: "http://p".into(),
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
        };
        let plan = plan_metric("t", &metric).expect("valid");
        let start = Timestamp::from_second(1_800_000_000).expect("valid");
        let first = first_measurement(start, &plan).expect("due");
        assert_eq!(
            first,
            start.checked_add(Duration::from_secs(60)).expect("valid")
        );
        assert_eq!(Some(first), next_due(&new_result(&plan), &plan, start));
    }
}
