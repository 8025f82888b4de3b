//! A real HTTP receiver on 127.0.0.1 that answers from a script and records
//! every request (time, headers, body), for the alert tests.

// Each test crate that includes this file uses a different part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    /// Wait this long before answering (to provoke client timeouts).
    pub delay: Duration,
    pub body: String,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            retry_after: None,
            delay: Duration::ZERO,
            body: String::new(),
        }
    }
}

/// A request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Answer>,
    received: Vec<Received>,
}

/// The receiver; answers 200 once the script runs out. Stops when dropped.
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(script: Vec<Answer>) -> Receiver {
        Receiver::start_on(0, script).await
    }

    /// A receiver on 127.0.0.1:`port` (0 picks a free one): a test that
    /// announced a URL while nothing listened there brings the receiver up late.
    pub async fn start_on(port: u16, script: Vec<Answer>) -> Receiver {
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            received: Vec::new(),
        }));
        let shared = state.clone();
        let handler = move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let state = shared.clone();
            async move {
                let answer = {
                    let mut state = state.lock().expect("state");
                    state.received.push(Received {
                        at: Instant::now(),
                        path: uri.path().to_string(),
                        headers,
                        body: body.to_vec(),
                    });
                    state
                        .script
                        .pop_front()
                        .unwrap_or_else(|| Answer::status(200))
                };
                tokio::time::sleep(answer.delay).await;
                let status = StatusCode::from_u16(answer.status).expect("status");
                let mut response = (status, answer.body.clone()).into_response();
                if let Some(value) = &answer.retry_after {
                    response
                        .headers_mut()
                        .insert("Retry-After", value.parse().expect("header"));
                }
                response
            }
        };
        let app = axum::Router::new().route("/{*path}", post(handler));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, state, task }
    }

    /// Requests so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("state").received.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
