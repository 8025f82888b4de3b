//! The Prometheus HTTP API provider: instant and range queries with timeouts,
//! bearer-token auth, and the API's own error type and message surfaced.

use std::time::Duration;

use serde::Deserialize;

/// Why a query produced no number.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Connection refused, DNS, TLS, timeout.
    #[error("cannot reach Prometheus at {address}: {message}")]
    Unreachable { address: String, message: String },
    /// Prometheus answered with an error (bad PromQL, timeout on its side).
    #[error("Prometheus rejected the query ({error_type}): {error}")]
    Rejected { error_type: String, error: String },
    /// An HTTP status without a Prometheus error body (proxy, auth).
    #[error("Prometheus answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    /// The answer was not what the API documents.
    #[error("unexpected answer from Prometheus: {0}")]
    Malformed(String),
    /// The query returned several series where one number is needed.
    #[error("the query returned {0} series; aggregate it to one (e.g. with sum(...))")]
    Ambiguous(usize),
}

/// A configured Prometheus endpoint.
#[derive(Clone)]
pub struct Prometheus {
    http: reqwest::Client,
    address: String,
    bearer_token: Option<String>,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token never reaches logs.
        f.debug_struct("Prometheus")
            .field("address", &self.address)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    value: Option<(f64, String)>,
    #[serde(default)]
    values: Option<Vec<(f64, String)>>,
}

fn number(text: &str) -> Result<f64, QueryError> {
    // Prometheus writes NaN, +Inf and -Inf as strings too.
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        other => other
            .parse()
            .map_err(|_| QueryError::Malformed(format!("sample value {other:?}"))),
    }
}

impl Prometheus {
    /// A client for `address` (e.g. `http://prometheus:9090`) with a request timeout.
    pub fn new(
        address: &str,
        timeout: Duration,
        bearer_token: Option<String>,
    ) -> Result<Prometheus, QueryError> {
        // reqwest uses the process-wide rustls provider; ring is the one kube uses too.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| QueryError::Unreachable {
                address: address.into(),
                message: e.to_string(),
            })?;
        Ok(Prometheus {
            http,
            address: address.trim_end_matches('/').to_string(),
            bearer_token,
        })
    }

    async fn call(&self, path: &str, params: &[(&str, String)]) -> Result<Data, QueryError> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.address))
            .form(params);
        if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| QueryError::Unreachable {
            address: self.address.clone(),
            message: error_chain(&e),
        })?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| QueryError::Unreachable {
            address: self.address.clone(),
            message: error_chain(&e),
        })?;
        let envelope: Envelope = match serde_json::from_str(&body) {
            Ok(envelope) => envelope,
            Err(_) if status >= 300 => {
                return Err(QueryError::Status {
                    status,
                    body: body.chars().take(200).collect(),
                });
            }
            Err(e) => return Err(QueryError::Malformed(e.to_string())),
        };
        if envelope.status != "success" {
            return Err(QueryError::Rejected {
                error_type: envelope.error_type.unwrap_or_else(|| "unknown".into()),
                error: envelope.error.unwrap_or_default(),
            });
        }
        envelope
            .data
            .ok_or_else(|| QueryError::Malformed("no data in a success answer".into()))
    }

    /// Evaluate `query` at `time` (Unix seconds; `None`: now); the value of
    /// each returned series (empty: no data).
    pub async fn instant(&self, query: &str, time: Option<f64>) -> Result<Vec<f64>, QueryError> {
        let mut params = vec![("query", query.to_string())];
        if let Some(time) = time {
            params.push(("time", format!("{time:.3}")));
        }
        let data = self.call("/api/v1/query", &params).await?;
        match data.result_type.as_str() {
            "scalar" => {
                let (_, value): (f64, String) = serde_json::from_value(data.result)
                    .map_err(|e| QueryError::Malformed(e.to_string()))?;
                Ok(vec![number(&value)?])
            }
            "vector" => {
                let series: Vec<Series> = serde_json::from_value(data.result)
                    .map_err(|e| QueryError::Malformed(e.to_string()))?;
                series
                    .iter()
                    .filter_map(|s| s.value.as_ref())
                    .map(|(_, v)| number(v))
                    .collect()
            }
            other => Err(QueryError::Malformed(format!(
                "an instant query returned a {other}"
            ))),
        }
    }

    /// Evaluate `query` at one value, as thresholds need it. `None`: no data.
    pub async fn single(&self, query: &str, time: Option<f64>) -> Result<Option<f64>, QueryError> {
        let values = self.instant(query, time).await?;
        match values.len() {
            0 => Ok(None),
            1 => Ok(Some(values[0])),
            n => Err(QueryError::Ambiguous(n)),
        }
    }

    /// Evaluate `query` from `start` to `end` (Unix seconds) every `step`; one series expected.
    pub async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: Duration,
    ) -> Result<Vec<(f64, f64)>, QueryError> {
        let data = self
            .call(
                "/api/v1/query_range",
                &[
                    ("query", query.to_string()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{end:.3}")),
                    ("step", format!("{:.3}", step.as_secs_f64().max(0.001))),
                ],
            )
            .await?;
        if data.result_type != "matrix" {
            return Err(QueryError::Malformed(format!(
                "a range query returned a {}",
                data.result_type
            )));
        }
        let series: Vec<Series> = serde_json::from_value(data.result)
            .map_err(|e| QueryError::Malformed(e.to_string()))?;
        match series.len() {
            0 => Ok(Vec::new()),
            1 => series[0]
                .values
                .iter()
                .flatten()
                .map(|(t, v)| Ok((*t, number(v)?)))
                .collect(),
            n => Err(QueryError::Ambiguous(n)),
        }
    }
}

/// The error and its causes on one line (reqwest's top-level message alone hides the reason).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
