//! Taking one measurement of a metric from its provider, at a given instant.
//!
//! Shared by the controller's analysis loop (at "now") and `sluice analyze`
//! (replaying a past window).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use super::condition::Condition;
use super::prometheus::{Credentials, Prometheus};
use super::run::{MeasurementOutcome, MetricPlan, VerdictKind, plan_metric};
use super::scrape::{Selector, fetch, increments};
use super::template::{
    Bindings, condition_shape, promql_duration, render, render_condition, render_escaped,
};
use super::web::{Web, WebError, number_at};
use crate::crd::limits::MAX_ANALYSIS_WAIT;
use crate::crd::{
    CountSample, DurationOrSeconds, JobProvider, Measurement, Metric, PodCount, WebProvider,
};
use crate::engine::hash::POD_TEMPLATE_HASH_LABEL;

/// Where a metric's numbers come from.
#[derive(Debug, Clone)]
pub enum Source {
    Prometheus(Prometheus),
    Scrape {
        http: reqwest::Client,
        port: i32,
        path: String,
        timeout: Duration,
    },
    Web(Web),
    /// A Job per measurement, created and watched by the controller's analysis loop.
    Job(JobProvider),
}

/// A metric ready to measure: its plan, its bindings and its provider.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub plan: MetricPlan,
    pub bindings: Bindings,
    pub source: Source,
}

/// What a live measurement (in the controller) knows beyond the metric.
pub struct Live<'a> {
    pub client: &'a kube::Client,
    pub namespace: &'a str,
    /// The metric's previous measurement: scraped counters grow from its pod totals.
    pub previous: Option<&'a Measurement>,
}

/// Check `metric` of template `template` and connect its provider. `args` are
/// the resolved arguments; `credentials` what the provider's Secrets hold.
pub fn prepare_metric(
    template: &str,
    metric: &Metric,
    args: &BTreeMap<String, String>,
    credentials: Credentials,
) -> Result<Prepared, String> {
    // Conditions may take thresholds from arguments (`result < {{args.max-error-ratio}}`).
    let mut metric = metric.clone();
    for condition in [&mut metric.success_condition, &mut metric.failure_condition]
        .into_iter()
        .flatten()
    {
        // Syntax first, on the text the user wrote, so the column points into it.
        Condition::parse_threshold(&condition_shape(condition)).map_err(|mut e| {
            e.source_text.clone_from(condition);
            format!("metric {}/{}: {e}", template, metric.name)
        })?;
        *condition = render_condition(condition, args)
            .map_err(|e| format!("metric {}/{}: {e}", template, metric.name))?;
    }
    let metric = &metric;
    let plan = plan_metric(template, metric)?;
    let bindings = Bindings {
        args: args.clone(),
        revision: None,
        interval: promql_duration(plan.interval),
    };
    let timeout_of = |value: &Option<DurationOrSeconds>, default: Duration| match value {
        Some(v) => v
            .within(MAX_ANALYSIS_WAIT)
            .map_err(|e| format!("metric {}: timeout {e}", metric.name)),
        None => Ok(default),
    };
    let source = match (&metric.provider.prometheus, &metric.provider.scrape) {
        (Some(provider), _) => {
            let timeout = timeout_of(&provider.timeout, Duration::from_secs(10))?;
            // The address may name an argument (`{{args.prometheus}}`), so one template fits many clusters.
            let address = render(&provider.address, &bindings)
                .map_err(|e| format!("metric {}: address: {e}", metric.name))?;
            Source::Prometheus(
                Prometheus::new(&address, timeout, credentials).map_err(|e| e.to_string())?,
            )
        }
        (None, Some(scrape)) => {
            for selector in [&scrape.query, &scrape.events, &scrape.exposure]
                .into_iter()
                .flatten()
            {
                Selector::parse(selector).map_err(|e| format!("metric {}: {e}", metric.name))?;
            }
            crate::install_crypto_provider();
            Source::Scrape {
                http: reqwest::Client::new(),
                port: scrape.port,
                path: scrape.path.clone().unwrap_or_else(|| "/metrics".into()),
                timeout: timeout_of(&scrape.timeout, Duration::from_secs(5))?,
            }
        }
        (None, None) => match (&metric.provider.web, &metric.provider.job) {
            (Some(web), _) => Source::Web(web_source(metric, web, &bindings, &credentials)?),
            (None, Some(job)) => Source::Job(job.clone()),
            (None, None) => return Err(format!("metric {}: no provider", metric.name)),
        },
    };
    Ok(Prepared {
        plan,
        bindings,
        source,
    })
}

/// The web provider of `metric`, its headers resolved: `{{args.NAME}}` filled
/// in plain values, Secret values taken from `credentials`.
fn web_source(
    metric: &Metric,
    web: &WebProvider,
    bindings: &Bindings,
    credentials: &Credentials,
) -> Result<Web, String> {
    let fail = |m: String| format!("metric {}: {m}", metric.name);
    let timeout = match &web.timeout {
        Some(v) => v
            .within(MAX_ANALYSIS_WAIT)
            .map_err(|e| fail(format!("timeout {e}")))?,
        None => Duration::from_secs(10),
    };
    let mut headers = Vec::new();
    for header in &web.headers {
        let value = match (&header.value, &header.value_from) {
            (Some(value), None) => render_escaped(value, bindings, str::to_string)
                .map_err(|e| fail(format!("header {}: {e}", header.key)))?,
            (None, Some(_)) => credentials
                .headers
                .get(&header.key)
                .cloned()
                .ok_or_else(|| fail(format!("header {}: its Secret was not read", header.key)))?,
            _ => {
                return Err(fail(format!(
                    "header {} needs value or valueFrom",
                    header.key
                )));
            }
        };
        headers.push((header.key.clone(), value));
    }
    Web::new(web, headers, timeout).map_err(|e| fail(e.to_string()))
}

fn seconds(at: Timestamp) -> f64 {
    at.as_millisecond() as f64 / 1000.0
}

/// Measure `p` now, outside the controller (`sluice analyze --live`): the
/// web provider as the controller calls it, Prometheus at `now`; the
/// scrape provider needs the pods (and so the controller).
pub async fn measure_now(
    p: &Prepared,
    canary: &str,
    baseline: &str,
    now: Timestamp,
) -> MeasurementOutcome {
    match &p.source {
        Source::Web(web) => web_measure(p, web, canary, baseline).await,
        _ => measure(p, canary, baseline, now, None).await,
    }
}

/// Measure `p` for the canary and the baseline revisions as of `at`.
pub async fn measure(
    p: &Prepared,
    canary: &str,
    baseline: &str,
    at: Timestamp,
    live: Option<&Live<'_>>,
) -> MeasurementOutcome {
    let prometheus = match &p.source {
        Source::Prometheus(prometheus) => prometheus,
        Source::Web(web) => {
            if live.is_none() {
                return MeasurementOutcome::Error(
                    "the web provider measures now: replaying a past window needs the prometheus provider (sluice analyze --live measures it)".into(),
                );
            }
            return web_measure(p, web, canary, baseline).await;
        }
        Source::Job(_) => {
            return MeasurementOutcome::Error(
                "the job provider runs a Job in the cluster; only the controller measures it, a past window cannot be replayed".into(),
            );
        }
        Source::Scrape { .. } => {
            let Some(live) = live else {
                return MeasurementOutcome::Error(
                    "the scrape provider reads live pods; replaying a past window needs the prometheus provider".into(),
                );
            };
            return scrape_measure(p, canary, baseline, live).await;
        }
    };
    let provider = p
        .plan
        .metric
        .provider
        .prometheus
        .clone()
        .unwrap_or_default();
    let for_revision = |revision: &str| Bindings {
        revision: Some(revision.to_string()),
        ..p.bindings.clone()
    };
    let (canary, baseline) = (for_revision(canary), for_revision(baseline));
    let time = Some(seconds(at));
    let result: Result<MeasurementOutcome, String> = async {
        match &p.plan.verdict {
            VerdictKind::Threshold { .. } => {
                let query = render(provider.query.as_deref().unwrap_or_default(), &canary)
                    .map_err(|e| e.to_string())?;
                Ok(MeasurementOutcome::Value(
                    prometheus
                        .single(&query, time)
                        .await
                        .map_err(|e| e.to_string())?,
                ))
            }
            VerdictKind::Counts(_) => {
                let mut samples = Vec::new();
                for bindings in [&canary, &baseline] {
                    let mut pair = [0.0; 2];
                    for (slot, text) in [&provider.events, &provider.exposure]
                        .into_iter()
                        .enumerate()
                    {
                        let query = render(text.as_deref().unwrap_or_default(), bindings)
                            .map_err(|e| e.to_string())?;
                        // No series means nothing happened: zero events, zero exposure.
                        pair[slot] = prometheus
                            .single(&query, time)
                            .await
                            .map_err(|e| e.to_string())?
                            .filter(|v| v.is_finite())
                            .unwrap_or(0.0);
                    }
                    samples.push(CountSample {
                        events: pair[0],
                        exposure: pair[1],
                    });
                }
                Ok(MeasurementOutcome::Counts {
                    canary: samples[0],
                    baseline: samples[1],
                    canary_pods: Vec::new(),
                    baseline_pods: Vec::new(),
                })
            }
            VerdictKind::Job { .. } => Err("a job metric is measured by its Job".into()),
            VerdictKind::Samples(_) => {
                // One value per revision for this interval alone: the query's window is
                // `{{interval}}` and successive measurements are an interval apart, so no
                // two pairs share requests (overlapping windows make them dependent).
                let mut values = [f64::NAN; 2];
                for (slot, bindings) in [&canary, &baseline].into_iter().enumerate() {
                    let query = render(provider.query.as_deref().unwrap_or_default(), bindings)
                        .map_err(|e| e.to_string())?;
                    values[slot] = prometheus
                        .single(&query, time)
                        .await
                        .map_err(|e| e.to_string())?
                        .unwrap_or(f64::NAN);
                }
                Ok(MeasurementOutcome::Samples {
                    canary: vec![values[0]],
                    baseline: vec![values[1]],
                })
            }
        }
    }
    .await;
    result.unwrap_or_else(MeasurementOutcome::Error)
}

/// Ask the web endpoint: once for a threshold, once per revision for a comparison.
async fn web_measure(p: &Prepared, web: &Web, canary: &str, baseline: &str) -> MeasurementOutcome {
    let provider = p.plan.metric.provider.web.clone().unwrap_or_default();
    let for_revision = |revision: &str| Bindings {
        revision: Some(revision.to_string()),
        ..p.bindings.clone()
    };
    let (canary, baseline) = (for_revision(canary), for_revision(baseline));
    let path = |field: &Option<String>| field.clone().unwrap_or_default();
    let result: Result<MeasurementOutcome, WebError> = async {
        match &p.plan.verdict {
            VerdictKind::Threshold { .. } => {
                let json = web.fetch(&canary).await?;
                Ok(MeasurementOutcome::Value(number_at(
                    &json,
                    &path(&provider.json_path),
                )?))
            }
            VerdictKind::Counts(_) => {
                let mut samples = Vec::new();
                for bindings in [&canary, &baseline] {
                    let json = web.fetch(bindings).await?;
                    // As with Prometheus: no value means nothing happened.
                    let count = |field: &Option<String>| {
                        number_at(&json, &path(field))
                            .map(|v| v.filter(|v| v.is_finite()).unwrap_or(0.0))
                    };
                    samples.push(CountSample {
                        events: count(&provider.events_json_path)?,
                        exposure: count(&provider.exposure_json_path)?,
                    });
                }
                Ok(MeasurementOutcome::Counts {
                    canary: samples[0],
                    baseline: samples[1],
                    canary_pods: Vec::new(),
                    baseline_pods: Vec::new(),
                })
            }
            VerdictKind::Job { .. } => {
                Err(WebError::Invalid("a job metric has no web provider".into()))
            }
            VerdictKind::Samples(_) => {
                let mut values = [f64::NAN; 2];
                for (slot, bindings) in [&canary, &baseline].into_iter().enumerate() {
                    let json = web.fetch(bindings).await?;
                    values[slot] =
                        number_at(&json, &path(&provider.json_path))?.unwrap_or(f64::NAN);
                }
                Ok(MeasurementOutcome::Samples {
                    canary: vec![values[0]],
                    baseline: vec![values[1]],
                })
            }
        }
    }
    .await;
    result.unwrap_or_else(|e| MeasurementOutcome::Error(e.to_string()))
}

/// Scrape every Ready pod of a revision: per-pod totals of (query or events, exposure).
async fn scrape_revision(
    p: &Prepared,
    live: &Live<'_>,
    revision: &str,
    first: &Selector,
    second: Option<&Selector>,
) -> Result<Vec<PodCount>, String> {
    let Source::Scrape {
        http,
        port,
        path,
        timeout,
    } = &p.source
    else {
        return Err("not a scrape provider".into());
    };
    let pods: Api<Pod> = Api::namespaced(live.client.clone(), live.namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("{POD_TEMPLATE_HASH_LABEL}={revision}")))
        .await
        .map_err(|e| format!("cannot list the pods of {revision}: {e}"))?;
    let mut totals = Vec::new();
    for pod in list.items {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
        let (true, Some(ip)) = (ready && pod.metadata.deletion_timestamp.is_none(), ip) else {
            continue;
        };
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip
        };
        let url = format!("http://{host}:{port}{path}");
        let scrape = fetch(http, &url, *timeout)
            .await
            .map_err(|e| e.to_string())?;
        totals.push(PodCount {
            pod: pod.metadata.name.clone().unwrap_or_default(),
            events: first.total(&scrape),
            exposure: second.map(|s| s.total(&scrape)).unwrap_or(0.0),
        });
    }
    Ok(totals)
}

async fn scrape_measure(
    p: &Prepared,
    canary: &str,
    baseline: &str,
    live: &Live<'_>,
) -> MeasurementOutcome {
    let provider = p.plan.metric.provider.scrape.clone().unwrap_or_default();
    let parse = |text: &Option<String>| {
        Selector::parse(text.as_deref().unwrap_or_default()).map_err(|e| e.to_string())
    };
    let result: Result<MeasurementOutcome, String> = async {
        match &p.plan.verdict {
            VerdictKind::Threshold { .. } => {
                let query = parse(&provider.query)?;
                let pods = scrape_revision(p, live, canary, &query, None).await?;
                Ok(MeasurementOutcome::Value(
                    (!pods.is_empty()).then(|| pods.iter().map(|p| p.events).sum()),
                ))
            }
            VerdictKind::Counts(_) => {
                let (events, exposure) = (parse(&provider.events)?, parse(&provider.exposure)?);
                let canary_pods =
                    scrape_revision(p, live, canary, &events, Some(&exposure)).await?;
                let baseline_pods =
                    scrape_revision(p, live, baseline, &events, Some(&exposure)).await?;
                let (before_canary, before_baseline) = live
                    .previous
                    .map(|m| (m.canary_pods.as_slice(), m.baseline_pods.as_slice()))
                    .unwrap_or((&[], &[]));
                Ok(MeasurementOutcome::Counts {
                    canary: increments(before_canary, &canary_pods),
                    baseline: increments(before_baseline, &baseline_pods),
                    canary_pods,
                    baseline_pods,
                })
            }
            VerdictKind::Job { .. } => Err("a job metric is measured by its Job".into()),
            VerdictKind::Samples(_) => {
                Err("a Samples comparison needs the prometheus provider".into())
            }
        }
    }
    .await;
    result.unwrap_or_else(MeasurementOutcome::Error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ClusterAnalysisTemplate;

    #[test]
    fn the_threshold_template_uses_its_max_error_ratio_argument() {
        // Issue #11: the condition hard-coded 0.01 whatever the argument said.
        let template: ClusterAnalysisTemplate = serde_yaml_ng::from_str(include_str!(
            "../../analysis-templates/error-rate-threshold.yaml"
        ))
        .expect("parses");
        let metric = &template.spec.metrics[0];
        let args = BTreeMap::from([
            ("prometheus".to_string(), "http://p:9090".to_string()),
            ("max-error-ratio".to_string(), "0.02".to_string()),
            ("namespace".to_string(), "shop".to_string()),
            ("rollout".to_string(), "web".to_string()),
        ]);
        let prepared = prepare_metric("t", metric, &args, Credentials::default()).expect("valid");
        let VerdictKind::Threshold {
            success: Some(success),
            ..
        } = &prepared.plan.verdict
        else {
            panic!("a threshold with a success condition");
        };
        assert!(success.holds(0.015), "1.5% is under a 2% limit");
        assert!(!success.holds(0.025));
    }
}
