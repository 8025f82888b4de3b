//! Which HTTPRoute rule a simulated request takes, and what that rule mirrors.
//!
//! The model of a gateway the generator needs: every user hits the paths of
//! the first rule; a request carrying a header also matches any rule whose
//! match asks for that header (Exact or RegularExpression), and among those
//! the one with the most header conditions wins, as Gateway API precedence
//! says. A rule's `RequestMirror` filters copy a share of its requests
//! (`percent`, `fraction`, or all) to another Service; the copies' answers
//! are dropped, so they change nothing the user sees.

use serde_json::Value;

/// A request header the simulated users may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// Lowercase name.
    pub name: String,
    pub value: String,
}

impl RequestHeader {
    /// Parse `name=value`.
    pub fn parse(text: &str) -> Result<RequestHeader, String> {
        match text.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok(RequestHeader {
                name: name.trim().to_ascii_lowercase(),
                value: value.to_string(),
            }),
            _ => Err(format!("{text:?} is not a header of the form name=value")),
        }
    }
}

/// Index of the rule a request with `header` (or none) takes.
pub fn rule_for(rules: &[Value], header: Option<&RequestHeader>) -> usize {
    let Some(header) = header else { return 0 };
    let mut best: Option<(usize, usize)> = None;
    for (index, rule) in rules.iter().enumerate() {
        let matches = rule["matches"].as_array().cloned().unwrap_or_default();
        for one in matches {
            let conditions = one["headers"].as_array().cloned().unwrap_or_default();
            if conditions.is_empty() || !conditions.iter().all(|c| satisfies(c, header)) {
                continue;
            }
            if best.is_none_or(|(_, count)| conditions.len() > count) {
                best = Some((index, conditions.len()));
            }
        }
    }
    best.map(|(index, _)| index).unwrap_or(0)
}

/// Whether the one header carried satisfies one header condition of a match.
fn satisfies(condition: &Value, header: &RequestHeader) -> bool {
    let name = condition["name"].as_str().unwrap_or_default();
    let value = condition["value"].as_str().unwrap_or_default();
    if !name.eq_ignore_ascii_case(&header.name) {
        return false;
    }
    match condition["type"].as_str().unwrap_or("Exact") {
        "RegularExpression" => regex::Regex::new(value).is_ok_and(|r| r.is_match(&header.value)),
        _ => value == header.value,
    }
}

/// A mirror of a rule: the Service copies go to and the fraction copied.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorTarget {
    pub service: String,
    pub fraction: f64,
}

/// The `RequestMirror` filters of `rule`.
pub fn mirrors(rule: &Value) -> Vec<MirrorTarget> {
    let filters = rule["filters"].as_array().cloned().unwrap_or_default();
    filters
        .iter()
        .filter(|f| f["type"] == "RequestMirror")
        .filter_map(|f| {
            let mirror = &f["requestMirror"];
            let service = mirror["backendRef"]["name"].as_str()?.to_string();
            let fraction = if let Some(percent) = mirror["percent"].as_f64() {
                percent / 100.0
            } else if let Some(numerator) = mirror["fraction"]["numerator"].as_f64() {
                let denominator = mirror["fraction"]["denominator"].as_f64().unwrap_or(100.0);
                numerator / denominator.max(1.0)
            } else {
                1.0
            };
            Some(MirrorTarget {
                service,
                fraction: fraction.clamp(0.0, 1.0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn header(value: &str) -> RequestHeader {
        RequestHeader::parse(&format!("X-Canary={value}")).expect("header")
    }

    fn rules() -> Vec<Value> {
        json!([
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
             "filters": [{"type": "RequestMirror",
                          "requestMirror": {"backendRef": {"name": "web-canary", "port": 80}, "percent": 25}}],
             "backendRefs": [{"name": "web-stable", "weight": 100}]},
            {"name": "sluice-canary-header",
             "matches": [{"path": {"type": "PathPrefix", "value": "/"},
                          "headers": [{"name": "x-canary", "type": "Exact", "value": "internal"}]}],
             "backendRefs": [{"name": "web-canary", "weight": 1}]},
            {"matches": [{"headers": [{"name": "x-canary", "type": "RegularExpression", "value": "^beta"}]}],
             "backendRefs": [{"name": "beta"}]}
        ])
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    #[test]
    fn header_requests_take_the_rule_that_asks_for_the_header() {
        assert_eq!(rule_for(&rules(), None), 0);
        assert_eq!(rule_for(&rules(), Some(&header("internal"))), 1);
        assert_eq!(rule_for(&rules(), Some(&header("beta-7"))), 2);
        assert_eq!(rule_for(&rules(), Some(&header("public"))), 0);
        assert!(RequestHeader::parse("novalue").is_err());
    }

    #[test]
    fn mirror_filters_give_service_and_fraction() {
        let found = mirrors(&rules()[0]);
        assert_eq!(
            found,
            vec![MirrorTarget {
                service: "web-canary".into(),
                fraction: 0.25
            }]
        );
        assert!(mirrors(&rules()[1]).is_empty());
        let whole = json!({"filters": [{"type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "x"}, "fraction": {"numerator": 1, "denominator": 4}}}]});
        assert_eq!(mirrors(&whole)[0].fraction, 0.25);
    }
}
