//! Argo Rollouts' `setHeaderRoute` and `setMirrorRoute` steps. Sluice has
//! both (one header route and one mirror at a time, so no route names and no
//! `managedRoutes`); what narrows or widens the traffic differently is
//! reported, never changed quietly.

use serde_json::{Value, json};

use crate::migrate::report::{Fields, Report};

/// `setHeaderRoute`: its header matches, all of which a request must carry.
/// Without matches the step removes the header route, in both tools.
pub fn header_route(value: Value, path: &str, report: &mut Report) -> Value {
    let mut fields = Fields::new(value, path, report);
    if fields.take("name").is_some() {
        report.note(
            &fields.at("name"),
            "Sluice keeps one header route at a time and needs no name",
        );
    }
    let mut matches = Vec::new();
    for (i, item) in fields.list("match", report).into_iter().enumerate() {
        let mpath = format!("{path}.match[{i}]");
        if let Some(one) = header_match(item, &mpath, report) {
            matches.push(one);
        }
    }
    fields.finish(report, &[]);
    if matches.is_empty() {
        json!({})
    } else {
        json!({ "match": matches })
    }
}

fn header_match(item: Value, path: &str, report: &mut Report) -> Option<Value> {
    let mut fields = Fields::new(item, path, report);
    let name = fields.string("headerName", report);
    let mut value = fields.object("headerValue", report);
    let matched = if let Some(exact) = value.string("exact", report) {
        Some(json!({ "exact": exact }))
    } else if let Some(regex) = value.string("regex", report) {
        Some(json!({ "regex": regex }))
    } else if let Some(prefix) = value.string("prefix", report) {
        let regex = format!("^{}", regex::escape(&prefix));
        report.note(
            &format!("{path}.headerValue.prefix"),
            format!("Sluice matches exact or regex values: the prefix becomes the regex {regex}"),
        );
        Some(json!({ "regex": regex }))
    } else {
        None
    };
    value.finish(report, &[]);
    fields.finish(report, &[]);
    match (name, matched) {
        (Some(name), Some(matched)) => Some(json!({"headerName": name, "headerValue": matched})),
        _ => {
            // Leaving one condition out would send more requests to the canary.
            report.attention(
                path,
                "a header match needs headerName and one of exact, regex or prefix; this one is left out, so the route matches more requests than it did: check it",
            );
            None
        }
    }
}

/// `setMirrorRoute`: Argo mirrors the requests that match any of its
/// conditions; Sluice mirrors every request of the weighted rules. Without
/// matches the step removes the mirror, in both tools.
pub fn mirror_route(value: Value, path: &str, report: &mut Report) -> Value {
    let mut fields = Fields::new(value, path, report);
    if fields.take("name").is_some() {
        report.note(
            &fields.at("name"),
            "Sluice keeps one mirror at a time and needs no name",
        );
    }
    let percentage = fields.int("percentage", report);
    let matches = fields.list("match", report);
    fields.finish(report, &[]);
    if matches.is_empty() {
        if percentage.is_some() {
            report.note(
                &format!("{path}.percentage"),
                "without a match the step removes the mirror, in Argo Rollouts as in Sluice",
            );
        }
        return json!({});
    }
    report.attention(
        &format!("{path}.match"),
        "Sluice mirrors every request of the weighted rules, not only those matching these conditions: more requests reach the canary as copies",
    );
    // Argo mirrors all matching requests when no percentage is given.
    json!({ "percentage": percentage.unwrap_or(100) })
}
