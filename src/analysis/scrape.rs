//! The direct-scrape provider: read the canary's and the baseline's pods'
//! `/metrics` endpoints and add up the series a selector names, for clusters
//! without a Prometheus server.
//!
//! Counters are cumulative per pod, so each measurement keeps every pod's
//! totals; the increment of an interval is the sum over pods of what their
//! counters grew since the previous scrape (a counter that went down was
//! reset by a restart, and counts from zero; a new pod counts from zero).

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use regex::Regex;

use crate::crd::{CountSample, PodCount};

/// Errors of scraping.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("selector {0:?}: {1}")]
    Selector(String, String),
    #[error("cannot scrape {0}: {1}")]
    Fetch(String, String),
    #[error("cannot parse the metrics of {0}: {1}")]
    Parse(String, String),
}

#[derive(Debug, Clone)]
enum Matcher {
    Equal(String),
    NotEqual(String),
    Matches(Regex),
    NotMatches(Regex),
}

impl Matcher {
    fn accepts(&self, value: &str) -> bool {
        match self {
            Matcher::Equal(v) => value == v,
            Matcher::NotEqual(v) => value != v,
            Matcher::Matches(r) => r.is_match(value),
            Matcher::NotMatches(r) => !r.is_match(value),
        }
    }
}

/// `name{label="value",label=~"regex",label!="value",label!~"regex"}`, as in PromQL.
#[derive(Debug, Clone)]
pub struct Selector {
    name: String,
    matchers: Vec<(String, Matcher)>,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, ScrapeError> {
        let fail = |m: &str| ScrapeError::Selector(text.into(), m.into());
        let text = text.trim();
        let (name, rest) = match text.find('{') {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(fail("expected a metric name"));
        }
        let mut matchers = Vec::new();
        if let Some(rest) = rest {
            let body = rest
                .trim_end()
                .strip_suffix('}')
                .ok_or_else(|| fail("missing `}`"))?;
            let mut chars = body.chars().peekable();
            loop {
                while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    break;
                }
                let label: String = std::iter::from_fn(|| {
                    chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_')
                })
                .collect();
                if label.is_empty() {
                    return Err(fail("expected a label name"));
                }
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
                let op: String =
                    std::iter::from_fn(|| chars.next_if(|c| matches!(c, '=' | '!' | '~')))
                        .collect();
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
                if chars.next() != Some('"') {
                    return Err(fail("label values must be double-quoted"));
                }
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some(c) => value.push(c),
                            None => return Err(fail("unterminated string")),
                        },
                        Some('"') => break,
                        Some(c) => value.push(c),
                        None => return Err(fail("unterminated string")),
                    }
                }
                // Regexes are anchored, as in PromQL.
                let regex = |v: &str| {
                    Regex::new(&format!("^(?:{v})$")).map_err(|e| fail(&format!("bad regex: {e}")))
                };
                let matcher = match op.as_str() {
                    "=" => Matcher::Equal(value),
                    "!=" => Matcher::NotEqual(value),
                    "=~" => Matcher::Matches(regex(&value)?),
                    "!~" => Matcher::NotMatches(regex(&value)?),
                    other => return Err(fail(&format!("unknown operator {other:?}"))),
                };
                matchers.push((label, matcher));
            }
        }
        Ok(Selector {
            name: name.into(),
            matchers,
        })
    }

    /// Sum of the matching counter, gauge or untyped samples (0 when none match).
    pub fn total(&self, scrape: &Scrape) -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == self.name)
            .filter(|s| {
                self.matchers
                    .iter()
                    .all(|(label, m)| m.accepts(s.labels.get(label).unwrap_or("")))
            })
            .filter_map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                _ => None,
            })
            .filter(|v| v.is_finite())
            .sum()
    }
}

/// GET and parse one `/metrics` endpoint.
pub async fn fetch(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<Scrape, ScrapeError> {
    let response = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| ScrapeError::Fetch(url.into(), e.to_string()))?;
    if !response.status().is_success() {
        return Err(ScrapeError::Fetch(
            url.into(),
            format!("HTTP {}", response.status()),
        ));
    }
    let body = response
        .text()
        .await
        .map_err(|e| ScrapeError::Fetch(url.into(), e.to_string()))?;
    Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| ScrapeError::Parse(url.into(), e.to_string()))
}

/// What each revision's counters grew by since `previous` (per-pod totals).
pub fn increments(previous: &[PodCount], current: &[PodCount]) -> CountSample {
    let before: BTreeMap<&str, &PodCount> = previous.iter().map(|p| (p.pod.as_str(), p)).collect();
    let grew = |now: f64, then: Option<f64>| match then {
        Some(then) if now >= then => now - then,
        // Reset (restart) or a new pod: everything it counted is new.
        _ => now,
    };
    current.iter().fold(CountSample::default(), |sum, pod| {
        let prev = before.get(pod.pod.as_str());
        CountSample {
            events: sum.events + grew(pod.events, prev.map(|p| p.events)),
            exposure: sum.exposure + grew(pod.exposure, prev.map(|p| p.exposure)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",path="/"} 970
http_requests_total{code="500",path="/"} 20
http_requests_total{code="503",path="/api"} 10
http_requests_total{code="404",path="/"} 5
# TYPE in_flight gauge
in_flight 3
"#;

    fn scrape() -> Scrape {
        Scrape::parse(TEXT.lines().map(|l| Ok(l.to_string()))).expect("parses")
    }

    #[test]
    fn selectors_match_like_promql() {
        let s = scrape();
        let total = |text: &str| Selector::parse(text).expect("selector").total(&s);
        assert_eq!(total("http_requests_total"), 1005.0);
        assert_eq!(total(r#"http_requests_total{code=~"5.."}"#), 30.0);
        assert_eq!(
            total(r#"http_requests_total{code!~"5..", path="/"}"#),
            975.0
        );
        assert_eq!(total(r#"http_requests_total{code="500"}"#), 20.0);
        assert_eq!(total(r#"http_requests_total{code=~"5"}"#), 0.0, "anchored");
        assert_eq!(total("in_flight"), 3.0);
        assert!(Selector::parse("http_requests_total{code=5}").is_err());
        assert!(Selector::parse(r#"x{code=~"("}"#).is_err());
    }

    #[test]
    fn increments_follow_pods_through_resets_and_arrivals() {
        let pod = |name: &str, events: f64, exposure: f64| PodCount {
            pod: name.into(),
            events,
            exposure,
        };
        let before = [pod("a", 10.0, 1000.0), pod("b", 5.0, 500.0)];
        // a grew; b restarted (counters went down); c is new.
        let after = [
            pod("a", 12.0, 1300.0),
            pod("b", 1.0, 40.0),
            pod("c", 0.0, 60.0),
        ];
        let inc = increments(&before, &after);
        assert_eq!(inc.events, 2.0 + 1.0 + 0.0);
        assert_eq!(inc.exposure, 300.0 + 40.0 + 60.0);
    }

    #[tokio::test]
    async fn fetch_reads_a_real_endpoint() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let app = axum::Router::new().route("/metrics", axum::routing::get(|| async { TEXT }));
            let _ = axum::serve(listener, app).await;
        });
        crate::install_crypto_provider();
        let http = reqwest::Client::new();
        let url = format!("http://{address}/metrics");
        let scrape = fetch(&http, &url, Duration::from_secs(5))
            .await
            .expect("scrape");
        let errors = Selector::parse(r#"http_requests_total{code=~"5.."}"#).expect("selector");
        assert_eq!(errors.total(&scrape), 30.0);
        let missing = fetch(
            &http,
            &format!("http://{address}/nope"),
            Duration::from_secs(5),
        )
        .await;
        assert!(matches!(missing, Err(ScrapeError::Fetch(_, m)) if m.contains("404")));
        server.abort();
    }
}
