//! Opening the pull request: one POST to the forge's REST API.
//!
//! | forge | request | auth |
//! |---|---|---|
//! | GitHub | `POST {api}/repos/{owner}/{repo}/pulls` `{title, head, base, body}` | `Authorization: Bearer` |
//! | GitLab | `POST {api}/projects/{url-encoded project}/merge_requests` `{source_branch, target_branch, title, description}` | `PRIVATE-TOKEN` |
//! | Gitea, Forgejo | `POST {api}/repos/{owner}/{repo}/pulls` `{title, head, base, body}` | `Authorization: token` |
//!
//! One attempt, no retry: a retried dream pod runs the whole publication again, and a pull
//! request that an earlier attempt opened is recognised there.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::{GitOpsError, Token, forge_name, repository_host};
use crate::api::dream_schedule::{Forge, ForgeType};

/// How long the forge has to answer.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Characters of an error answer kept in the error.
const BODY_EXCERPT_CHARS: usize = 300;
/// Path segments keep only unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The pull request to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    pub title: String,
    pub body: String,
    /// The branch with the proposal.
    pub head: String,
    /// The branch it merges into.
    pub base: String,
}

/// An opened pull request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// Its web page, when the forge said.
    pub url: Option<String>,
    /// `true` when an earlier attempt had opened it already.
    pub already_open: bool,
}

/// The request sent to the forge, built without sending it.
#[derive(Clone, Debug)]
pub struct ForgeRequest {
    pub url: Uri,
    /// Headers besides `content-type`; the credential one is marked sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Value,
}

/// Why the forge did not open the pull request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The settings give no usable request.
    Invalid(String),
    /// The forge answered with a non-2xx status.
    Status { url: String, status: u16, body: String },
    /// No answer (connection, TLS, timeout).
    Unreachable { url: String, cause: String },
}

impl Failure {
    /// The error of a publication whose branch `branch` was pushed to `repository`.
    pub fn into_error(self, forge: ForgeType, branch: &str, repository: &str) -> GitOpsError {
        let forge = forge_name(forge);
        match self {
            Failure::Invalid(message) => GitOpsError::Invalid(message),
            Failure::Status { url, status, body } => GitOpsError::ForgeStatus {
                forge,
                status,
                url,
                body,
                branch: branch.to_string(),
                repository: repository.to_string(),
            },
            Failure::Unreachable { url, cause } => GitOpsError::ForgeUnreachable {
                forge,
                url,
                cause,
                branch: branch.to_string(),
                repository: repository.to_string(),
            },
        }
    }
}

/// The forge's API base URL: `forge.apiUrl`, else derived from the repository's host.
pub fn api_url(forge: &Forge, repository: &str) -> Result<String, String> {
    if let Some(url) = forge.api_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        let uri: Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none_or(str::is_empty) {
            return Err(format!("{url:?} must be an http(s) URL with a host"));
        }
        if uri.query().is_some() {
            return Err(format!("{url:?} must not have a query string"));
        }
        return Ok(url.trim_end_matches('/').to_string());
    }
    let host = repository_host(repository)?.ok_or_else(|| {
        "required for a file:// repository (the forge cannot be derived from a local path)".to_string()
    })?;
    let host = if repository.starts_with("ssh://") {
        // The port of an ssh:// URL is the SSH server's, not the web server's.
        host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h).to_string()
    } else {
        host
    };
    Ok(match forge.type_ {
        ForgeType::GitHub if host == "github.com" => "https://api.github.com".to_string(),
        ForgeType::GitHub => format!("https://{host}/api/v3"),
        ForgeType::GitLab => format!("https://{host}/api/v4"),
        ForgeType::Gitea => format!("https://{host}/api/v1"),
        ForgeType::None => return Err("no forge".into()),
    })
}

/// The repository on the forge (`owner/repo`, or a GitLab project path): `forge.project`,
/// else the repository URL's path without `.git`.
pub fn project(forge: &Forge, repository: &str) -> Result<String, String> {
    let project = match forge.project.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(project) => project.trim_matches('/').to_string(),
        None => {
            if repository_host(repository)?.is_none() {
                return Err("required for a file:// repository (owner/repo)".into());
            }
            let rest = repository.split_once("://").map_or("", |(_, rest)| rest);
            let path = rest.split_once('/').map_or("", |(_, path)| path);
            let path = path.trim_matches('/');
            path.strip_suffix(".git").unwrap_or(path).to_string()
        }
    };
    let parts: Vec<&str> = project.split('/').collect();
    let shape_ok = match forge.type_ {
        ForgeType::GitLab => parts.len() >= 2,
        _ => parts.len() == 2,
    };
    if !shape_ok || parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
        let expected = if forge.type_ == ForgeType::GitLab {
            "group/project"
        } else {
            "owner/repo"
        };
        return Err(format!("{project:?} is not of the form {expected}"));
    }
    Ok(project)
}

/// The request that opens `pull` on `forge` for `repository`.
pub fn request(forge: &Forge, repository: &str, token: &Token, pull: &PullRequest) -> Result<ForgeRequest, String> {
    let base = api_url(forge, repository)?;
    let project = project(forge, repository)?;
    let segments = || {
        project
            .split('/')
            .map(|p| utf8_percent_encode(p, SEGMENT).to_string())
            .collect::<Vec<_>>()
            .join("/")
    };
    let (path, auth_name, auth_value, body) = match forge.type_ {
        ForgeType::GitHub => (
            format!("/repos/{}/pulls", segments()),
            AUTHORIZATION,
            format!("Bearer {}", token.expose()),
            json!({"title": pull.title, "head": pull.head, "base": pull.base, "body": pull.body}),
        ),
        ForgeType::Gitea => (
            format!("/repos/{}/pulls", segments()),
            AUTHORIZATION,
            format!("token {}", token.expose()),
            json!({"title": pull.title, "head": pull.head, "base": pull.base, "body": pull.body}),
        ),
        ForgeType::GitLab => (
            format!("/projects/{}/merge_requests", utf8_percent_encode(&project, SEGMENT)),
            HeaderName::from_static("private-token"),
            token.expose().to_string(),
            json!({"title": pull.title, "source_branch": pull.head, "target_branch": pull.base,
                "description": pull.body, "remove_source_branch": true}),
        ),
        ForgeType::None => return Err("no forge to open a pull request on".into()),
    };
    let url: Uri = format!("{base}{path}")
        .parse()
        .map_err(|e| format!("{base}{path} is not a URL: {e}"))?;
    let mut credential = HeaderValue::from_str(&auth_value)
        .map_err(|_| "the token holds characters a header cannot carry".to_string())?;
    credential.set_sensitive(true);
    let mut headers = vec![
        (auth_name, credential),
        (
            USER_AGENT,
            HeaderValue::from_static(concat!("reverie/", env!("CARGO_PKG_VERSION"))),
        ),
    ];
    if forge.type_ == ForgeType::GitHub {
        headers.push((ACCEPT, HeaderValue::from_static("application/vnd.github+json")));
        headers.push((
            HeaderName::from_static("x-github-api-version"),
            HeaderValue::from_static("2022-11-28"),
        ));
    } else {
        headers.push((ACCEPT, HeaderValue::from_static("application/json")));
    }
    Ok(ForgeRequest { url, headers, body })
}

/// Opens `pull` on `forge`.
pub async fn open(forge: &Forge, repository: &str, token: &Token, pull: &PullRequest) -> Result<Opened, Failure> {
    let prepared = request(forge, repository, token, pull).map_err(Failure::Invalid)?;
    let label = prepared.url.to_string();
    if prepared.url.scheme_str() == Some("http") && !is_loopback(&prepared.url) {
        tracing::warn!(url = %label, "the forge API is plain HTTP: the token travels unencrypted");
    }
    let answer = tokio::time::timeout(TIMEOUT, send(prepared)).await;
    let (status, body) = match answer {
        Err(_) => {
            return Err(Failure::Unreachable {
                url: label,
                cause: format!("no answer within {} s", TIMEOUT.as_secs()),
            });
        }
        Ok(Err(cause)) => return Err(Failure::Unreachable { url: label, cause }),
        Ok(Ok(answer)) => answer,
    };
    if !(200..300).contains(&status) {
        return Err(Failure::Status {
            url: label,
            status,
            body: excerpt(&body),
        });
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let url = ["html_url", "web_url"]
        .iter()
        .find_map(|key| parsed.get(*key).and_then(Value::as_str))
        .map(str::to_string);
    Ok(Opened {
        url,
        already_open: false,
    })
}

async fn send(prepared: ForgeRequest) -> Result<(u16, Bytes), String> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_native_roots() {
        Ok(builder) => builder,
        Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots(),
    };
    let connector = builder.https_or_http().enable_http1().build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let body = serde_json::to_vec(&prepared.body).map_err(|e| e.to_string())?;
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(prepared.url)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    for (name, value) in prepared.headers {
        request.headers_mut().insert(name, value);
    }
    let response = client
        .request(request)
        .await
        .map_err(|e| crate::errors::error_chain(&e))?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?
        .to_bytes();
    Ok((parts.status.as_u16(), body))
}

fn is_loopback(uri: &Uri) -> bool {
    match uri.host() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "(empty body)".to_string();
    }
    if line.chars().count() > BODY_EXCERPT_CHARS {
        format!("{}…", line.chars().take(BODY_EXCERPT_CHARS).collect::<String>())
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forge(type_: ForgeType, api_url: Option<&str>, project: Option<&str>) -> Forge {
        Forge {
            type_,
            api_url: api_url.map(str::to_string),
            project: project.map(str::to_string),
        }
    }

    #[test]
    fn api_urls_are_derived_from_the_repository_host() {
        let cases = [
            (
                ForgeType::GitHub,
                "https://github.com/acme/a.git",
                "https://api.github.com",
            ),
            (
                ForgeType::GitHub,
                "ssh://git@github.com/acme/a.git",
                "https://api.github.com",
            ),
            (
                ForgeType::GitHub,
                "https://ghe.example.com/acme/a.git",
                "https://ghe.example.com/api/v3",
            ),
            (
                ForgeType::GitLab,
                "ssh://git@gitlab.example.com:2222/g/s/p.git",
                "https://gitlab.example.com/api/v4",
            ),
            (
                ForgeType::Gitea,
                "https://git.example.com:8443/o/r",
                "https://git.example.com:8443/api/v1",
            ),
        ];
        for (type_, repository, expected) in cases {
            assert_eq!(
                api_url(&forge(type_, None, None), repository).unwrap(),
                expected,
                "{repository}"
            );
        }
        assert_eq!(
            api_url(
                &forge(ForgeType::Gitea, Some("http://127.0.0.1:3000/api/v1/"), None),
                "file:///r"
            )
            .unwrap(),
            "http://127.0.0.1:3000/api/v1"
        );
        assert!(api_url(&forge(ForgeType::GitHub, None, None), "file:///r").is_err());
        assert!(api_url(&forge(ForgeType::GitHub, Some("ftp://x"), None), "file:///r").is_err());
    }

    #[test]
    fn projects_are_derived_and_checked() {
        let github = forge(ForgeType::GitHub, None, None);
        assert_eq!(
            project(&github, "https://github.com/acme/agents.git").unwrap(),
            "acme/agents"
        );
        assert!(
            project(&github, "https://gitlab.com/g/s/p.git").is_err(),
            "GitHub has no groups"
        );
        let gitlab = forge(ForgeType::GitLab, None, None);
        assert_eq!(project(&gitlab, "ssh://git@gitlab.com/g/s/p.git").unwrap(), "g/s/p");
        assert_eq!(
            project(&forge(ForgeType::Gitea, None, Some("/o/r/")), "file:///r").unwrap(),
            "o/r"
        );
        assert!(project(&forge(ForgeType::Gitea, None, None), "file:///r").is_err());
    }

    #[test]
    fn gitlab_projects_are_one_encoded_segment_and_tokens_are_sensitive() {
        let token = Token::new("t0k").unwrap();
        let pull = PullRequest {
            title: "t".into(),
            body: "b".into(),
            head: "reverie/ns/p".into(),
            base: "main".into(),
        };
        let gitlab = forge(ForgeType::GitLab, None, Some("g/sub/p"));
        let prepared = request(&gitlab, "https://gitlab.com/g/sub/p.git", &token, &pull).unwrap();
        assert_eq!(
            prepared.url.to_string(),
            "https://gitlab.com/api/v4/projects/g%2Fsub%2Fp/merge_requests"
        );
        assert!(prepared.headers.iter().all(|(_, v)| !v.is_sensitive() || v == "t0k"));
        assert!(
            prepared
                .headers
                .iter()
                .any(|(n, v)| n == "private-token" && v.is_sensitive())
        );
        assert_eq!(prepared.body["source_branch"], "reverie/ns/p");
    }
}
