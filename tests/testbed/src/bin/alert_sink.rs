//! `sluice-alert-sink`: a webhook receiver for the demo. It verifies each
//! alert's HMAC signature and prints one line per alert, so the demo shows
//! what a team's endpoint would get.
//!
//! Prints `SLUICE_ALERT_SINK http://<address>` on stdout once listening.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use clap::Parser;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Write as _;

#[derive(Parser, Debug)]
#[command(name = "sluice-alert-sink", about, long_about = None)]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Shared secret the alerts are signed with (`signingKey` of the Secret).
    #[arg(long, env = "SLUICE_ALERT_SINK_KEY")]
    signing_key: Option<String>,
    /// Append each alert's body here, one JSON document per line.
    #[arg(long)]
    out: Option<PathBuf>,
}

struct Sink {
    key: Option<Vec<u8>>,
    out: Option<PathBuf>,
}

/// `ok`, `BAD`, or `unsigned`.
fn check_signature(key: Option<&[u8]>, headers: &HeaderMap, body: &[u8]) -> &'static str {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(key), Some(timestamp), Some(signature)) = (
        key,
        header("x-sluice-timestamp"),
        header("x-sluice-signature"),
    ) else {
        return "unsigned";
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return "BAD";
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let Some(hex) = signature.strip_prefix("sha256=") else {
        return "BAD";
    };
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect();
    match bytes {
        Some(bytes) if mac.verify_slice(&bytes).is_ok() => "ok",
        _ => "BAD",
    }
}

async fn receive(sink: Arc<Sink>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = check_signature(sink.key.as_deref(), &headers, &body);
    let alert: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |field: &str| alert[field].as_str().unwrap_or("?").to_string();
    println!(
        "ALERT {} [{}] signature {signature}: {}",
        text("event"),
        text("severity"),
        text("summary")
    );
    if let Some(path) = &sink.out {
        // A few small appends per demo: blocking I/O is fine here.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        if let Ok(mut file) = file {
            let mut line = body.to_vec();
            line.push(b'\n');
            let _ = file.write_all(&line);
        }
    }
    if signature == "BAD" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let sink = Arc::new(Sink {
        key: args.signing_key.map(String::into_bytes),
        out: args.out,
    });
    let app = axum::Router::new()
        .fallback(move |headers: HeaderMap, body: Bytes| receive(sink.clone(), headers, body));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("SLUICE_ALERT_SINK http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(key: &[u8], timestamp: &str, body: &[u8]) -> HeaderMap {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert("x-sluice-timestamp", timestamp.parse().expect("header"));
        headers.insert(
            "x-sluice-signature",
            format!("sha256={hex}").parse().expect("header"),
        );
        headers
    }

    #[test]
    fn signatures_are_checked_against_the_shared_key() {
        let body = br#"{"event":"aborted"}"#;
        let headers = signed(b"k", "1700000000", body);
        assert_eq!(check_signature(Some(b"k"), &headers, body), "ok");
        assert_eq!(check_signature(Some(b"other"), &headers, body), "BAD");
        assert_eq!(check_signature(Some(b"k"), &headers, b"{}"), "BAD");
        assert_eq!(
            check_signature(Some(b"k"), &HeaderMap::new(), body),
            "unsigned"
        );
    }
}
