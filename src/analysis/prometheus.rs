//! The Prometheus HTTP API provider: instant and range queries with timeouts,
//! bearer-token auth, and the API's own error type and message surfaced.

use std::time::Duration;

use serde::Deserialize;

/// Largest answer read from Prometheus: generous for a metric query that
/// returns many series, small enough that a hostile endpoint cannot exhaust memory.
const MAX_ANSWER: usize = 16 << 20;

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

/// How to authenticate to a provider (values read from Secrets).
#[derive(Clone, Default)]
pub struct Credentials {
    pub bearer_token: Option<String>,
    pub basic: Option<(String, String)>,
    /// PEM bundle: the only roots trusted when set.
    pub ca_pem: Option<String>,
    /// The web provider's header values from Secrets, by header name.
    pub headers: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach logs.
        f.debug_struct("Credentials")
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "basic",
                &self.basic.as_ref().map(|(u, _)| (u, "<redacted>")),
            )
            .field("ca_pem", &self.ca_pem.is_some())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A configured Prometheus endpoint.
#[derive(Clone, Debug)]
pub struct Prometheus {
    http: reqwest::Client,
    address: String,
    credentials: Credentials,
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
        credentials: Credentials,
    ) -> Result<Prometheus, QueryError> {
        crate::install_crypto_provider();
        let mut builder = crate::egress::guarded(
            reqwest::Client::builder().timeout(timeout),
            &crate::egress::current(),
        );
        if let Some(pem) = &credentials.ca_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                QueryError::Unreachable {
                    address: address.into(),
                    message: format!("the CA bundle is not valid PEM: {e}"),
                }
            })?;
            if roots.is_empty() {
                return Err(QueryError::Unreachable {
                    address: address.into(),
                    message: "the CA bundle holds no PEM certificate".into(),
                });
            }
            builder = builder.tls_certs_only(roots);
        }
        let http = builder.build().map_err(|e| QueryError::Unreachable {
            address: address.into(),
            message: e.to_string(),
        })?;
        Ok(Prometheus {
            http,
            address: address.trim_end_matches('/').to_string(),
            credentials,
        })
    }

    async fn call(&self, path: &str, params: &[(&str, String)]) -> Result<Data, QueryError> {
        let url = format!("{}{path}", self.address);
        let unreachable = |message: String| QueryError::Unreachable {
            address: self.address.clone(),
            message,
        };
        let parsed = reqwest::Url::parse(&url).map_err(|e| unreachable(e.to_string()))?;
        crate::egress::current()
            .check_literal(&parsed)
            .map_err(|e| unreachable(e.to_string()))?;
        let mut request = self.http.post(parsed).form(params);
        if let Some(token) = &self.credentials.bearer_token {
            request = request.bearer_auth(token);
        } else if let Some((user, password)) = &self.credentials.basic {
            request = request.basic_auth(user, Some(password));
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = response.status().as_u16();
        let bytes = crate::egress::read_at_most(&mut response, MAX_ANSWER)
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        if bytes.len() > MAX_ANSWER {
            return Err(QueryError::Malformed(format!(
                "the answer is larger than {MAX_ANSWER} bytes"
            )));
        }
        let body = String::from_utf8_lossy(&bytes);
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;

    /// A stand-in for Prometheus's HTTP API that checks credentials and PromQL.
    async fn fake_prometheus(headers: HeaderMap, body: String) -> axum::response::Response {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // "user:pass" in base64, and a bearer token.
        if auth != "Basic dXNlcjpwYXNz" && auth != "Bearer t0ken" {
            return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        }
        if body.contains("sum%28up%29") {
            let answer = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.25"]}]}}"#;
            (StatusCode::OK, answer).into_response()
        } else {
            let answer = r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}"#;
            (StatusCode::BAD_REQUEST, answer).into_response()
        }
    }

    async fn serve() -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("address"));
        let app = axum::Router::new().route("/api/v1/query", axum::routing::post(fake_prometheus));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (address, server)
    }

    #[tokio::test]
    async fn credentials_bad_promql_and_unreachable_servers_are_told_apart() {
        let (address, server) = serve().await;
        let timeout = Duration::from_secs(5);
        let basic = Credentials {
            basic: Some(("user".into(), "pass".into())),
            ..Default::default()
        };
        let prometheus = Prometheus::new(&address, timeout, basic).expect("client");
        assert_eq!(
            prometheus.single("sum(up)", None).await.expect("value"),
            Some(0.25)
        );
        match prometheus.single("sum(", None).await {
            Err(QueryError::Rejected { error_type, error }) => {
                assert_eq!(error_type, "bad_data");
                assert!(error.contains("parse error"), "{error}");
            }
            other => panic!("expected the API's error, got {other:?}"),
        }
        let bearer = Credentials {
            bearer_token: Some("t0ken".into()),
            ..Default::default()
        };
        let prometheus = Prometheus::new(&address, timeout, bearer).expect("client");
        assert!(prometheus.single("sum(up)", None).await.is_ok());
        let anonymous = Prometheus::new(&address, timeout, Credentials::default()).expect("client");
        assert!(matches!(
            anonymous.single("sum(up)", None).await,
            Err(QueryError::Status { status: 401, .. })
        ));
        server.abort();
        let gone = Prometheus::new(&address, timeout, Credentials::default()).expect("client");
        let _ = server_gone(&gone).await;
        let shown = format!("{:?}", basic_debug());
        assert!(
            !shown.contains("secret-password") && !shown.contains("secret-token"),
            "{shown}"
        );
    }

    async fn server_gone(prometheus: &Prometheus) {
        // Give the aborted server a moment to close its socket.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(
            prometheus.single("sum(up)", None).await,
            Err(QueryError::Unreachable { .. })
        ));
    }

    fn basic_debug() -> Credentials {
        Credentials {
            basic: Some(("user".into(), "secret-password".into())),
            bearer_token: Some("secret-token".into()),
            ca_pem: None,
            headers: Default::default(),
        }
    }

    #[test]
    fn a_bad_ca_bundle_is_a_clear_error() {
        let credentials = Credentials {
            ca_pem: Some("not a certificate".into()),
            ..Default::default()
        };
        assert!(Prometheus::new("https://p", Duration::from_secs(1), credentials).is_err());
    }
}
