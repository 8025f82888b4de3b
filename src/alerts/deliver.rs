//! One alert over HTTP: POST, classify the answer, retry what is worth it.
//!
//! 2xx is delivered. 5xx, 408, timeouts and connection errors are retried
//! with exponential back-off and jitter; 429 waits for `Retry-After` (capped);
//! any other 4xx is a rejection that retrying cannot fix. Error texts never
//! carry the URL: a Slack or Teams URL is a credential.
//!
//! One call of [`deliver`] is a round of a few quick attempts. When a round
//! fails the alert stays pending and [`next_round`] says when the next round
//! starts (capped back-off) or that the target's `retryFor` is over, so a
//! receiver outage of hours still ends in one delivery.

use std::time::Duration;

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use sha2::Sha256;

/// Header with `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub const SIGNATURE_HEADER: &str = "X-Sluice-Signature";
/// Header with the Unix time (seconds) the signature covers.
pub const TIMESTAMP_HEADER: &str = "X-Sluice-Timestamp";
/// Header with the event id (the same on every retry): receivers deduplicate on it.
pub const EVENT_ID_HEADER: &str = "X-Sluice-Event-Id";
/// Header with the event name.
pub const EVENT_HEADER: &str = "X-Sluice-Event";

/// A request ready to send.
#[derive(Clone)]
pub struct Outgoing {
    /// Where to POST (a secret for Slack, Teams and most webhooks).
    pub url: String,
    pub body: Vec<u8>,
    /// Shared secret for the webhook signature.
    pub signing_key: Option<Vec<u8>>,
    /// `Authorization` header value (Alertmanager basic auth or bearer token).
    pub authorization: Option<String>,
    pub event_id: String,
    pub event: String,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("url", &"<redacted>")
            .field("event_id", &self.event_id)
            .finish_non_exhaustive()
    }
}

/// How long an undelivered alert is retried unless the target says otherwise.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(6 * 3600);
/// Longest wait between two rounds of a pending alert unless configured otherwise.
pub const DEFAULT_MAX_RETRY_INTERVAL: Duration = Duration::from_secs(300);

/// Retry settings of one target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Time one attempt may take.
    pub timeout: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Back-off before the second attempt; doubles each time.
    pub base_delay: Duration,
    /// Longest back-off.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a longer one ends the round.
    pub max_retry_after: Duration,
    /// How long an undelivered alert stays pending before it is given up.
    pub retry_for: Duration,
    /// Longest wait between two rounds of a pending alert.
    pub max_retry_interval: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            timeout: Duration::from_secs(10),
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            retry_for: DEFAULT_RETRY_FOR,
            max_retry_interval: DEFAULT_MAX_RETRY_INTERVAL,
        }
    }
}

/// What one attempt's answer means.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptVerdict {
    Delivered,
    /// Try again, after `after` when the receiver said so.
    Retry {
        after: Option<Duration>,
    },
    /// The receiver refused the request; sending it again will not help.
    Reject,
}

/// Classify an HTTP status (and its `Retry-After`, if any).
pub fn classify(status: u16, retry_after: Option<&str>, now: Timestamp) -> AttemptVerdict {
    match status {
        200..=299 => AttemptVerdict::Delivered,
        429 => AttemptVerdict::Retry {
            after: retry_after.and_then(|v| parse_retry_after(v, now)),
        },
        408 | 500..=599 => AttemptVerdict::Retry { after: None },
        _ => AttemptVerdict::Reject,
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = date.as_millisecond().saturating_sub(now.as_millisecond());
    Some(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
}

/// Back-off before attempt `attempt + 1` (after `attempt` failures):
/// `base · 2^(attempt-1)`, capped, scaled by a jitter in [0.5, 1.0).
pub fn backoff(policy: &Policy, attempt: u32, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let raw = policy.base_delay.saturating_mul(1u32 << exponent);
    raw.min(policy.max_delay)
        .mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

/// What becomes of an alert whose round of delivery failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NextRound {
    /// Keep it pending (since `since`) and start a new round at `at`.
    At { since: Timestamp, at: Timestamp },
    /// It has been pending since `since` for longer than `retryFor`: give up.
    GiveUp { since: Timestamp },
}

/// After a failed round: when the next one starts, or that the alert is given
/// up. `since` is when the alert's first round began. The wait is about as
/// long as the alert has waited so far (so it doubles round by round), at
/// least `base_delay`, at most `max_retry_interval`, scaled by a jitter in
/// [0.5, 1.0), and never runs past the end of `retryFor`, so the last round
/// happens just before it is over.
pub fn next_round(policy: &Policy, since: Timestamp, now: Timestamp, jitter: f64) -> NextRound {
    let waited = now.duration_since(since).unsigned_abs();
    let left = policy.retry_for.saturating_sub(waited);
    if left.is_zero() {
        return NextRound::GiveUp { since };
    }
    let wait = waited
        .max(policy.base_delay)
        .min(policy.max_retry_interval)
        .mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
        .min(left);
    match jiff::SignedDuration::try_from(wait)
        .ok()
        .and_then(|w| now.checked_add(w).ok())
    {
        Some(at) => NextRound::At { since, at },
        None => NextRound::GiveUp { since },
    }
}

/// HMAC-SHA256 over `"<timestamp>.<body>"`, hex-encoded.
pub fn signature(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    Delivered { status: u16 },
    Rejected { status: u16, detail: String },
    GaveUp { detail: String },
}

/// The result of all attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub attempts: u32,
    pub outcome: DeliveryOutcome,
    /// One label per attempt (`2xx`, `4xx`, `429`, `5xx`, `timeout`, `network`,
    /// `refused` by the address fence), for metrics.
    pub attempt_results: Vec<&'static str>,
}

/// POST `out` until it is delivered, rejected, or the attempts run out.
pub async fn deliver(client: &reqwest::Client, out: &Outgoing, policy: &Policy) -> Delivery {
    let mut attempt_results = Vec::new();
    // A target URL the platform fences off is not tried at all (redirects and
    // resolved names are checked by the client itself).
    let refused = reqwest::Url::parse(&out.url)
        .map_err(|e| format!("the target URL is not valid: {e}"))
        .and_then(|url| {
            crate::egress::current_denied_only()
                .check_literal(&url)
                .map_err(|e| e.to_string())
        });
    if let Err(detail) = refused {
        return Delivery {
            attempts: 1,
            outcome: DeliveryOutcome::GaveUp { detail },
            attempt_results: vec!["refused"],
        };
    }
    let mut last_error = String::new();
    let max_attempts = policy.max_attempts.max(1);
    for attempt in 1..=max_attempts {
        let now = Timestamp::now();
        let mut request = client
            .post(&out.url)
            .timeout(policy.timeout)
            .header("Content-Type", "application/json")
            .header(EVENT_ID_HEADER, &out.event_id)
            .header(EVENT_HEADER, &out.event);
        if let Some(value) = &out.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        if let Some(key) = &out.signing_key {
            let timestamp = now.as_second();
            request = request
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(
                    SIGNATURE_HEADER,
                    format!("sha256={}", signature(key, timestamp, &out.body)),
                );
        }
        let answer = request.body(out.body.clone()).send().await;
        let (verdict, label) = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let verdict = classify(status, retry_after.as_deref(), now);
                let body = start_of_body(response).await;
                let detail = format!("HTTP {status}: {}", snippet(&body));
                match verdict {
                    AttemptVerdict::Delivered => {
                        attempt_results.push("2xx");
                        return Delivery {
                            attempts: attempt,
                            outcome: DeliveryOutcome::Delivered { status },
                            attempt_results,
                        };
                    }
                    AttemptVerdict::Reject => {
                        attempt_results.push("4xx");
                        return Delivery {
                            attempts: attempt,
                            outcome: DeliveryOutcome::Rejected { status, detail },
                            attempt_results,
                        };
                    }
                    AttemptVerdict::Retry { .. } => {
                        last_error = detail;
                        (verdict, if status == 429 { "429" } else { "5xx" })
                    }
                }
            }
            Err(error) => {
                let label = if error.is_timeout() {
                    "timeout"
                } else {
                    "network"
                };
                last_error = describe(&error, policy.timeout);
                (AttemptVerdict::Retry { after: None }, label)
            }
        };
        attempt_results.push(label);
        if attempt == max_attempts {
            break;
        }
        let wait = match verdict {
            AttemptVerdict::Retry { after: Some(after) } => {
                if after > policy.max_retry_after {
                    last_error = format!(
                        "{last_error} (Retry-After {}s is longer than the {}s Sluice waits)",
                        after.as_secs(),
                        policy.max_retry_after.as_secs()
                    );
                    break;
                }
                after
            }
            _ => backoff(policy, attempt, fastrand::f64()),
        };
        tokio::time::sleep(wait).await;
    }
    Delivery {
        attempts: u32::try_from(attempt_results.len()).unwrap_or(u32::MAX),
        outcome: DeliveryOutcome::GaveUp { detail: last_error },
        attempt_results,
    }
}

/// A transport error without the URL (which may be a credential).
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer within {}", humantime::format_duration(timeout));
    }
    let mut text = if error.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.contains("://") {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The first few KiB of a response body: only its start is ever shown, and
/// a receiver must not make the controller buffer an endless answer.
async fn start_of_body(mut response: reqwest::Response) -> String {
    const KEEP: usize = 4096;
    let mut bytes = crate::egress::read_at_most(&mut response, KEEP)
        .await
        .unwrap_or_default();
    bytes.truncate(KEEP);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The start of a response body, on one line.
fn snippet(body: &str) -> String {
    let line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    line.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_the_receivers_mean_them() {
        let now = Timestamp::UNIX_EPOCH;
        assert_eq!(classify(200, None, now), AttemptVerdict::Delivered);
        assert_eq!(classify(202, None, now), AttemptVerdict::Delivered);
        assert_eq!(
            classify(500, None, now),
            AttemptVerdict::Retry { after: None }
        );
        assert_eq!(
            classify(503, Some("7"), now),
            AttemptVerdict::Retry { after: None }
        );
        assert_eq!(
            classify(408, None, now),
            AttemptVerdict::Retry { after: None }
        );
        assert_eq!(
            classify(429, Some("3"), now),
            AttemptVerdict::Retry {
                after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(classify(400, None, now), AttemptVerdict::Reject);
        assert_eq!(classify(404, None, now), AttemptVerdict::Reject);
        assert_eq!(classify(403, None, now), AttemptVerdict::Reject);
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now: Timestamp = "2026-11-26T12:00:00Z".parse().expect("time");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Thu, 26 Nov 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Thu, 26 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let policy = Policy::default();
        assert_eq!(backoff(&policy, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(&policy, 2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(&policy, 3, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(&policy, 10, 1.0), Duration::from_secs(30));
        assert_eq!(backoff(&policy, 3, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(&policy, 40, 0.5), Duration::from_millis(22_500));
    }

    #[test]
    fn a_failed_round_waits_longer_each_time_up_to_the_cap_then_gives_up() {
        let policy = Policy {
            base_delay: Duration::from_secs(1),
            retry_for: Duration::from_secs(3600),
            max_retry_interval: Duration::from_secs(300),
            ..Policy::default()
        };
        let start: Timestamp = "2026-11-26T12:00:00Z".parse().expect("time");
        let after = |secs: i64| {
            start
                .checked_add(jiff::SignedDuration::from_secs(secs))
                .expect("time")
        };
        let next = |now: i64| next_round(&policy, start, after(now), 1.0);
        // At once (a missing Secret): the base delay.
        assert_eq!(
            next(0),
            NextRound::At {
                since: start,
                at: after(1)
            }
        );
        // After a 15s round: as long again, so the waits double.
        assert_eq!(
            next(15),
            NextRound::At {
                since: start,
                at: after(30)
            }
        );
        assert_eq!(
            next(30),
            NextRound::At {
                since: start,
                at: after(60)
            }
        );
        // Hours into an outage the wait is capped at five minutes.
        assert_eq!(
            next(600),
            NextRound::At {
                since: start,
                at: after(900)
            }
        );
        // Near the end the last round is at the end, not past it.
        assert_eq!(
            next(3500),
            NextRound::At {
                since: start,
                at: after(3600)
            }
        );
        assert_eq!(next(3600), NextRound::GiveUp { since: start });
        // Jitter shortens a wait by at most half.
        assert_eq!(
            next_round(&policy, start, after(30), 0.0),
            NextRound::At {
                since: start,
                at: after(45)
            }
        );
    }

    #[test]
    fn the_default_keeps_an_alert_for_hours_not_seconds() {
        let policy = Policy::default();
        assert!(policy.retry_for >= Duration::from_secs(3600));
        let start: Timestamp = "2026-11-26T12:00:00Z".parse().expect("time");
        let two_hours = start
            .checked_add(jiff::SignedDuration::from_hours(2))
            .expect("time");
        assert!(matches!(
            next_round(&policy, start, two_hours, 0.3),
            NextRound::At { .. }
        ));
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Reference value computed independently with Python's hmac module.
        let signed = signature(b"topsecret", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            signed,
            "6a939b0c71853d606167625a15168ee9188c6a511c773ef4f42d307f3849e50f"
        );
        assert_ne!(
            signed,
            signature(b"topsecret", 1_700_000_001, br#"{"a":1}"#)
        );
        assert_ne!(signed, signature(b"other", 1_700_000_000, br#"{"a":1}"#));
    }
}
