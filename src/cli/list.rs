//! `sluice rollout list`: one line per Rollout, in one namespace or all.

use std::fmt::Write as _;

use jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use super::format::{self, Format};
use super::rollout::Error;
use crate::crd::Rollout;

/// `sluice rollout list`: the Rollouts of `namespace`, or of all namespaces.
pub async fn run(
    client: &Client,
    namespace: &str,
    all_namespaces: bool,
    output: Format,
) -> Result<(), Error> {
    let api: Api<Rollout> = if all_namespaces {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), namespace)
    };
    let mut rollouts = api.list(&ListParams::default()).await?.items;
    rollouts.sort_by_key(|r| (r.namespace(), r.name_any()));
    if let Some(text) = format::encode(&format::list(&rollouts), output)? {
        super::output::write(text.as_bytes())?;
        return Ok(());
    }
    if rollouts.is_empty() {
        // As kubectl: on standard error, so that the table's reader sees nothing.
        let place = if all_namespaces {
            "any namespace".to_string()
        } else {
            format!("namespace {namespace}")
        };
        eprintln!("No Rollouts found in {place}.");
        return Ok(());
    }
    let now = Timestamp::now();
    let rows: Vec<Row> = rollouts.iter().map(|r| Row::of(r, now)).collect();
    super::output::write(render(&rows, all_namespaces).as_bytes())?;
    Ok(())
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub namespace: String,
    pub strategy: &'static str,
    pub phase: String,
    pub step: String,
    pub weight: i32,
    pub stable: String,
    pub canary: String,
    pub age: String,
}

impl Row {
    /// The row of `rollout` at `now`.
    pub fn of(rollout: &Rollout, now: Timestamp) -> Row {
        let status = rollout.status.clone().unwrap_or_default();
        let strategy = if rollout.spec.strategy.blue_green.is_some() {
            "BlueGreen"
        } else {
            "Canary"
        };
        let images = |list: &[String]| {
            if list.is_empty() {
                "-".to_string()
            } else {
                list.join(",")
            }
        };
        Row {
            name: rollout.name_any(),
            namespace: rollout.namespace().unwrap_or_default(),
            strategy,
            phase: status
                .phase
                .map(|p| p.to_string())
                .unwrap_or_else(|| "Unknown".into()),
            step: status.step_label.clone().unwrap_or_else(|| "-".into()),
            weight: status.current_weight,
            stable: images(&status.stable_images),
            canary: images(&status.canary_images),
            age: rollout
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| age(t.0, now))
                .unwrap_or_else(|| "-".into()),
        }
    }
}

/// kubectl's short age: `45s`, `12m`, `5h`, `3d`.
pub fn age(since: Timestamp, now: Timestamp) -> String {
    let seconds = now.as_second().saturating_sub(since.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The table, columns aligned; the NAMESPACE column only with `all_namespaces`.
pub fn render(rows: &[Row], all_namespaces: bool) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut table: Vec<Vec<String>> = Vec::with_capacity(rows.len() + 1);
    let mut header = vec![
        "NAME", "STRATEGY", "PHASE", "STEP", "WEIGHT", "STABLE", "CANARY", "AGE",
    ];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    table.push(header.into_iter().map(String::from).collect());
    for row in rows {
        let mut cells = vec![
            row.name.clone(),
            row.strategy.to_string(),
            row.phase.clone(),
            row.step.clone(),
            row.weight.to_string(),
            row.stable.clone(),
            row.canary.clone(),
            row.age.clone(),
        ];
        if all_namespaces {
            cells.insert(0, row.namespace.clone());
        }
        table.push(cells);
    }
    let columns = table[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for cells in &table {
        let mut line = String::new();
        for (c, cell) in cells.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}   ", width = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{RolloutPhase, RolloutStatus};
    use crate::engine::testkit::rollout;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn rows_show_phase_step_weight_images_and_age() {
        let mut web = rollout(3, None, true);
        web.metadata.creation_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        web.status = Some(RolloutStatus {
            phase: Some(RolloutPhase::Paused),
            step_label: Some("2/7".into()),
            current_weight: 25,
            stable_images: vec!["web:1".into()],
            canary_images: vec!["web:2".into()],
            ..RolloutStatus::default()
        });
        let fresh = rollout(1, None, false);
        let now = Timestamp::from_second(3 * 3600).unwrap_or_default();
        let rows = [Row::of(&web, now), Row::of(&fresh, now)];
        assert_eq!(rows[0].age, "3h");
        assert_eq!(rows[1].phase, "Unknown");
        let text = render(&rows, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("NAMESPACE   NAME"), "{text}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "demo", "web", "Canary", "Paused", "2/7", "25", "web:1", "web:2", "3h"
            ]
        );
        assert!(!render(&rows, false).contains("NAMESPACE"));
        assert_eq!(render(&[], false), "");
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        let at = |s: i64| Timestamp::from_second(s).unwrap_or_default();
        let cases = [
            (0, "0s"),
            (119, "119s"),
            (600, "10m"),
            (7200, "2h"),
            (200_000, "2d"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(age(at(0), at(seconds)), expected);
        }
        assert_eq!(age(at(10), at(0)), "0s", "a clock skew is no negative age");
    }
}
