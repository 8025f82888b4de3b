//! Taking one measurement of a metric from its provider, at a given instant.
//!
//! Shared by the controller's analysis loop (at "now") and `sluice analyze`
//! (replaying a past window).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::prometheus::Prometheus;
use super::run::{MetricPlan, Outcome, VerdictKind, plan_metric};
use super::template::{Bindings, promql_duration, render};
use crate::crd::{CountSample, Metric};

/// A metric ready to measure: its plan, its bindings and its provider.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub plan: MetricPlan,
    pub bindings: Bindings,
    pub prometheus: Prometheus,
}

/// Check `metric` of template `template` and connect its provider. `args` are
/// the resolved arguments; `bearer_token` the provider's token, if it names one.
pub fn prepare_metric(
    template: &str,
    metric: &Metric,
    args: &BTreeMap<String, String>,
    bearer_token: Option<String>,
) -> Result<Prepared, String> {
    let plan = plan_metric(template, metric)?;
    let provider = metric
        .provider
        .prometheus
        .as_ref()
        .ok_or_else(|| format!("metric {}: no provider", metric.name))?;
    let timeout = match &provider.timeout {
        Some(t) => humantime::parse_duration(t)
            .map_err(|e| format!("metric {}: timeout {t:?}: {e}", metric.name))?,
        None => Duration::from_secs(10),
    };
    let bindings = Bindings {
        args: args.clone(),
        revision: None,
        interval: promql_duration(plan.interval),
    };
    // The address may name an argument (`{{args.prometheus}}`), so one template fits many clusters.
    let address = render(&provider.address, &bindings)
        .map_err(|e| format!("metric {}: address: {e}", metric.name))?;
    let prometheus = Prometheus::new(&address, timeout, bearer_token).map_err(|e| e.to_string())?;
    Ok(Prepared {
        plan,
        bindings,
        prometheus,
    })
}

fn seconds(at: Timestamp) -> f64 {
    at.as_millisecond() as f64 / 1000.0
}

/// Measure `p` for the canary and the baseline revisions as of `at`.
pub async fn measure(p: &Prepared, canary: &str, baseline: &str, at: Timestamp) -> Outcome {
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
    let result: Result<Outcome, String> = async {
        match &p.plan.verdict {
            VerdictKind::Threshold { .. } => {
                let query = render(provider.query.as_deref().unwrap_or_default(), &canary)
                    .map_err(|e| e.to_string())?;
                Ok(Outcome::Value(
                    p.prometheus
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
                        pair[slot] = p
                            .prometheus
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
                Ok(Outcome::Counts {
                    canary: samples[0],
                    baseline: samples[1],
                })
            }
            VerdictKind::Samples(_) => {
                let end = seconds(at);
                let start = end - p.plan.interval.as_secs_f64();
                let step = match &provider.step {
                    Some(s) => {
                        humantime::parse_duration(s).map_err(|e| format!("step {s:?}: {e}"))?
                    }
                    None => p.plan.interval / 6,
                };
                let mut series = Vec::new();
                for bindings in [&canary, &baseline] {
                    let query = render(provider.query.as_deref().unwrap_or_default(), bindings)
                        .map_err(|e| e.to_string())?;
                    series.push(
                        p.prometheus
                            .range(&query, start, end, step)
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                }
                // Pair by instant: the sign test compares values measured at the same time.
                let baseline_at: BTreeMap<i64, f64> = series[1]
                    .iter()
                    .map(|(t, v)| ((t * 1000.0) as i64, *v))
                    .collect();
                let (mut c, mut b) = (Vec::new(), Vec::new());
                for (t, v) in &series[0] {
                    if let Some(bv) = baseline_at.get(&((t * 1000.0) as i64)) {
                        c.push(*v);
                        b.push(*bv);
                    }
                }
                Ok(Outcome::Samples {
                    canary: c,
                    baseline: b,
                })
            }
        }
    }
    .await;
    result.unwrap_or_else(Outcome::Error)
}
