//! Argo Rollouts' `setHeaderRoute` and `setMirrorRoute` steps and the
//! `managedRoutes` they name. Sluice has all three in Argo's shape; what
//! would narrow or widen the traffic differently is reported, never changed
//! quietly.

use serde_json::{Map, Value, json};

use crate::migrate::report::{Fields, Report};

/// `trafficRouting.managedRoutes`: the names, in order (of precedence).
pub fn managed_routes(items: Vec<Value>, path: &str, report: &mut Report) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let ipath = format!("{path}[{i}]");
        let mut fields = Fields::new(item, &ipath, report);
        match fields.string("name", report) {
            Some(name) => out.push(json!({ "name": name })),
            None => report.attention(&ipath, "a managed route needs a name; this one is left out"),
        }
        fields.finish(report, &[]);
    }
    out
}

/// The step's route name, carried as is.
fn name(fields: &mut Fields, report: &mut Report) -> Option<String> {
    fields.string("name", report)
}

/// `setHeaderRoute`: its name and header matches, all of which a request
/// must carry. Without matches the step removes the route, in both tools.
pub fn header_route(value: Value, path: &str, report: &mut Report) -> Value {
    let mut fields = Fields::new(value, path, report);
    let name = name(&mut fields, report);
    let mut matches = Vec::new();
    for (i, item) in fields.list("match", report).into_iter().enumerate() {
        let mpath = format!("{path}.match[{i}]");
        if let Some(one) = header_match(item, &mpath, report) {
            matches.push(one);
        }
    }
    fields.finish(report, &[]);
    let mut out = json!({});
    if let Some(name) = name {
        out["name"] = json!(name);
    }
    if !matches.is_empty() {
        out["match"] = Value::Array(matches);
    }
    out
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

/// `setMirrorRoute`: its name, the requests to mirror (any of the matches)
/// and the percentage (100 when Argo leaves it out). Without matches the
/// step removes the route, in both tools.
pub fn mirror_route(value: Value, path: &str, report: &mut Report) -> Value {
    let mut fields = Fields::new(value, path, report);
    let name = name(&mut fields, report);
    let percentage = fields.int("percentage", report);
    let items = fields.list("match", report);
    fields.finish(report, &[]);
    let mut matches = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let mpath = format!("{path}.match[{i}]");
        if let Some(one) = mirror_match(item, &mpath, report) {
            matches.push(one);
        }
    }
    let mut out = json!({});
    if let Some(name) = name {
        out["name"] = json!(name);
    }
    if matches.is_empty() {
        if percentage.is_some() {
            report.note(
                &format!("{path}.percentage"),
                "without a match the step removes the mirror, in Argo Rollouts as in Sluice",
            );
        }
        return out;
    }
    out["match"] = Value::Array(matches);
    out["percentage"] = json!(percentage.unwrap_or(100));
    out
}

/// One mirror match: `method`, `path` and `headers`, each an
/// `{exact|prefix|regex}` string match, as Sluice spells them too.
fn mirror_match(item: Value, path: &str, report: &mut Report) -> Option<Value> {
    let mut fields = Fields::new(item, path, report);
    let mut out = Map::new();
    for key in ["method", "path"] {
        if let Some(value) = fields.take(key) {
            out.insert(
                key.into(),
                string_match(value, &format!("{path}.{key}"), report)?,
            );
        }
    }
    if let Some(headers) = fields.take("headers") {
        let mut carried = Map::new();
        for (header, value) in headers.as_object().cloned().unwrap_or_default() {
            let hpath = format!("{path}.headers.{header}");
            carried.insert(header, string_match(value, &hpath, report)?);
        }
        out.insert("headers".into(), Value::Object(carried));
    }
    fields.finish(report, &[]);
    if out.is_empty() {
        report.attention(path, "an empty match is left out: check the mirror");
        return None;
    }
    Some(Value::Object(out))
}

fn string_match(value: Value, path: &str, report: &mut Report) -> Option<Value> {
    let mut fields = Fields::new(value, path, report);
    let found = ["exact", "prefix", "regex"]
        .into_iter()
        .find_map(|key| fields.string(key, report).map(|v| json!({ key: v })));
    fields.finish(report, &[]);
    if found.is_none() {
        // Leaving one condition out would mirror more requests.
        report.attention(
            path,
            "needs one of exact, prefix or regex; the whole match is left out: check the mirror",
        );
    }
    found
}
