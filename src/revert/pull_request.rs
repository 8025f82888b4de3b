//! Pull-request mode, for protected branches: the revert goes to its own
//! branch and a pull (merge) request asks the team to merge it, through the
//! GitHub, GitLab or Gitea REST API. An open request for the same branch is
//! found and reused, so retries never open a second one.

use std::time::Duration;

use serde_json::{Value, json};

use super::Error;

/// Which forge's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Gitea,
}

/// Where and how to open the request.
#[derive(Clone)]
pub struct PullRequestSettings {
    pub provider: Provider,
    /// API base URL, e.g. `https://api.github.com`, `https://gitlab.example.com/api/v4`,
    /// `https://gitea.example.com/api/v1`.
    pub api_url: String,
    /// `owner/name` (GitHub, Gitea) or the project path or id (GitLab).
    pub repository: String,
    pub token: String,
}

impl std::fmt::Debug for PullRequestSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullRequestSettings")
            .field("provider", &self.provider)
            .field("api_url", &self.api_url)
            .field("repository", &self.repository)
            .field("token", &"<redacted>")
            .finish()
    }
}

fn api_error(message: impl Into<String>) -> Error {
    Error::Git {
        command: "pull request".into(),
        message: message.into(),
    }
}

fn client() -> Result<reqwest::Client, Error> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .user_agent("sluice")
        .build()
        .map_err(|e| api_error(e.to_string()))
}

fn authorize(
    request: reqwest::RequestBuilder,
    settings: &PullRequestSettings,
) -> reqwest::RequestBuilder {
    match settings.provider {
        Provider::GitHub => request
            .bearer_auth(&settings.token)
            .header("Accept", "application/vnd.github+json"),
        Provider::GitLab => request.header("PRIVATE-TOKEN", &settings.token),
        Provider::Gitea => request.header("Authorization", format!("token {}", settings.token)),
    }
}

async fn send(request: reqwest::RequestBuilder, what: &str) -> Result<Value, Error> {
    let response = request
        .send()
        .await
        .map_err(|e| api_error(format!("{what}: {e}")))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        let excerpt: String = body.chars().take(300).collect();
        return Err(api_error(format!("{what}: HTTP {status}: {excerpt}")));
    }
    serde_json::from_str(&body).map_err(|e| api_error(format!("{what}: unexpected answer: {e}")))
}

fn project_path(settings: &PullRequestSettings) -> String {
    let base = settings.api_url.trim_end_matches('/');
    match settings.provider {
        Provider::GitHub | Provider::Gitea => format!("{base}/repos/{}", settings.repository),
        // GitLab wants the project path URL-encoded as one segment.
        Provider::GitLab => format!(
            "{base}/projects/{}",
            settings.repository.replace('/', "%2F")
        ),
    }
}

/// The web URL of an open request from `head` into `base`, if one exists.
pub async fn find_open(
    settings: &PullRequestSettings,
    head: &str,
    base: &str,
) -> Result<Option<String>, Error> {
    let http = client()?;
    let project = project_path(settings);
    let (url, field) = match settings.provider {
        Provider::GitHub => {
            let owner = settings.repository.split('/').next().unwrap_or_default();
            (
                format!("{project}/pulls?state=open&head={owner}:{head}&base={base}"),
                "html_url",
            )
        }
        Provider::Gitea => (format!("{project}/pulls?state=open"), "html_url"),
        Provider::GitLab => (
            format!(
                "{project}/merge_requests?state=opened&source_branch={head}&target_branch={base}"
            ),
            "web_url",
        ),
    };
    let answer = send(authorize(http.get(url), settings), "list open requests").await?;
    let found = answer.as_array().into_iter().flatten().find(|pr| {
        // Gitea does not filter by branch server-side.
        settings.provider != Provider::Gitea || pr["head"]["ref"] == head
    });
    Ok(found.and_then(|pr| pr[field].as_str()).map(str::to_string))
}

/// Open a request from `head` into `base`; returns its web URL.
pub async fn open(
    settings: &PullRequestSettings,
    head: &str,
    base: &str,
    title: &str,
    body: &str,
) -> Result<String, Error> {
    let http = client()?;
    let project = project_path(settings);
    let (url, payload, field) = match settings.provider {
        Provider::GitHub | Provider::Gitea => (
            format!("{project}/pulls"),
            json!({"title": title, "head": head, "base": base, "body": body}),
            "html_url",
        ),
        Provider::GitLab => (
            format!("{project}/merge_requests"),
            json!({"title": title, "source_branch": head, "target_branch": base, "description": body}),
            "web_url",
        ),
    };
    let answer = send(
        authorize(http.post(url).json(&payload), settings),
        "open a request",
    )
    .await?;
    answer[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| api_error(format!("open a request: the answer has no {field}")))
}
