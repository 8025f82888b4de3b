//! `sluice analyze --live`: take a template's measurements from now on, on
//! the controller's schedule (first at `initialDelay`, then one per
//! `interval`, each metric on its own clock), and judge them as the
//! controller does (`record`). A web metric has no history, so this is the
//! only way to try one before a rollout; Prometheus metrics are queried at
//! each measurement's instant, as the controller queries them.

use std::time::Duration;

use jiff::Timestamp;

use super::analyze::{AnalyzeArgs, Error, first_measurement, last_detail, print_result};
use crate::analysis::measure::{Prepared, measure_now};
use crate::analysis::run::{new_result, next_due, record};
use crate::crd::MetricResult;

/// Measure `prepared` live until each metric has its verdict (or `--for`
/// runs out), printing every measurement as it is taken.
pub async fn run(
    name: &str,
    args: &AnalyzeArgs,
    prepared: &[Prepared],
    comparisons: usize,
) -> Result<Vec<MetricResult>, Error> {
    let start = Timestamp::now();
    let stop = match args.live_for {
        Some(limit) => Some(start.checked_add(limit).map_err(|_| Error::Window)?),
        None => None,
    };
    crate::outln!(
        "template {name}: canary {} vs baseline {}, measured live from {start}{}",
        args.canary,
        args.baseline,
        stop.map(|s| format!(" until {s} at the latest"))
            .unwrap_or_default()
    )?;
    let mut results: Vec<MetricResult> = prepared.iter().map(|p| new_result(&p.plan)).collect();
    let mut due = Vec::with_capacity(prepared.len());
    for p in prepared {
        let at = first_measurement(start, &p.plan)?;
        crate::outln!(
            "metric {}: {} measurement(s), the first at {at}, then every {}",
            p.plan.metric.name,
            p.plan.count,
            humantime::format_duration(p.plan.interval)
        )?;
        due.push(Some(at));
    }
    // The metric due soonest, each in turn (ties: template order).
    while let Some((index, at)) = due
        .iter()
        .enumerate()
        .filter_map(|(i, at)| at.map(|at| (i, at)))
        .min_by_key(|(i, at)| (*at, *i))
    {
        if stop.is_some_and(|stop| at > stop) {
            break;
        }
        let wait = at.as_millisecond() - Timestamp::now().as_millisecond();
        tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
        // Stamped when taken, as in the controller: the next is due an interval later.
        let taken = Timestamp::now();
        let p = &prepared[index];
        let outcome = measure_now(p, &args.canary, &args.baseline, taken).await;
        let result = &mut results[index];
        record(result, &p.plan, outcome, taken, comparisons);
        crate::outln!(
            "  {taken}  {:<24} {:<12} {}",
            p.plan.metric.name,
            result
                .measurements
                .last()
                .map(|m| m.phase.as_str())
                .unwrap_or("-"),
            last_detail(result)
        )?;
        due[index] = next_due(result, &p.plan, start);
    }
    for (p, result) in prepared.iter().zip(&results) {
        crate::outln!("\nmetric {}", p.plan.metric.name)?;
        if !result.phase.is_finished() {
            crate::outln!(
                "  (stopped after {} of {} measurements)",
                result.count,
                p.plan.count
            )?;
        }
        print_result(result)?;
    }
    Ok(results)
}
