//! GitOps output (`DreamSchedule.spec.output.git`): instead of creating its MemoryProposal in the
//! cluster, a dream pass writes the proposal's manifest to `<path>/<namespace>/<name>.yaml` on a
//! new branch `reverie/<namespace>/<name>` of a Git repository, pushes it, and opens a pull
//! request whose body is the review diff. Reviewers set `spec.approval` in the pull request and
//! merge; Argo CD or Flux applies the manifest; the operator applies the memory and writes only
//! the proposal's status, so the GitOps tool sees no drift.
//!
//! - [`manifest`]: the manifest, branch, file, commit message and pull-request text (pure);
//! - [`git`]: the clone, commit and push, by running the `git` program;
//! - [`forge`]: the one API call that opens the pull request (GitHub, GitLab, Gitea);
//! - [`job`]: what the dream Job needs for it (arguments, the Secret as env and files).
//!
//! Credentials reach the pass as an environment variable (the token) and a read-only file (the
//! SSH key) from the schedule's Secret; they are never logged, never part of a URL or a command
//! line, and are scrubbed from any error text.

pub mod forge;
pub mod git;
pub mod job;
pub mod manifest;

use std::fmt;
use std::path::PathBuf;

use crate::api::MemoryProposal;
use crate::api::dream_schedule::{ForgeType, GitOutput, Output};

/// Annotation on a written manifest: the content digest of the proposal as the pass made it,
/// which the reviewer copies into `spec.approval.digest`.
pub const CONTENT_DIGEST_ANNOTATION: &str = "reverie.dev/content-digest";
/// Environment variable the dream pod receives the token in (key `token` of the Secret).
pub const TOKEN_ENV: &str = "REVERIE_GIT_TOKEN";
/// Environment variable the dream pod receives the HTTPS user name in (key `username`).
pub const USERNAME_ENV: &str = "REVERIE_GIT_USERNAME";
/// Where the dream pod finds the Secret's files (`ssh-privatekey`, `known_hosts`).
pub const SSH_KEY_DIR: &str = "/var/run/reverie/git";
/// Secret key: the access token (HTTPS pushes and the forge API).
pub const TOKEN_KEY: &str = "token";
/// Secret key: the HTTPS user name (optional).
pub const USERNAME_KEY: &str = "username";
/// Secret key: the SSH private key (the key name of `kubernetes.io/ssh-auth` Secrets).
pub const SSH_PRIVATE_KEY: &str = "ssh-privatekey";
/// Secret key: the SSH known hosts (optional, strongly recommended).
pub const KNOWN_HOSTS_KEY: &str = "known_hosts";
/// The default commit identity.
pub const DEFAULT_AUTHOR_NAME: &str = "reverie";
pub const DEFAULT_AUTHOR_EMAIL: &str = "reverie@reverie.dev";

/// An access token. `Debug` hides it and it has no `Display`: it reaches the Git server and the
/// forge API and nothing else.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token without surrounding whitespace (a Secret made from a file often ends in a
    /// newline); `None` when nothing is left.
    pub fn new(token: impl Into<String>) -> Option<Token> {
        let token = token.into();
        let token = token.trim();
        (!token.is_empty()).then(|| Token(token.to_string()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// What the pass authenticates with.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// HTTPS pushes and the forge API.
    pub token: Option<Token>,
    /// HTTPS user name (default by forge: `oauth2` for GitLab, else `x-access-token`).
    pub username: Option<String>,
    /// Directory holding `ssh-privatekey` and optionally `known_hosts`, for `ssh://`.
    pub ssh_key_dir: Option<PathBuf>,
}

impl Credentials {
    /// The token and user name from these environment variables (unset or empty: none).
    pub fn from_env(token_env: &str, username_env: &str, ssh_key_dir: Option<PathBuf>) -> Self {
        Credentials {
            token: std::env::var(token_env).ok().and_then(Token::new),
            username: std::env::var(username_env)
                .ok()
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty()),
            ssh_key_dir,
        }
    }

    /// `text` with the token replaced by `***`, for error messages.
    pub(crate) fn scrub(&self, text: &str) -> String {
        match &self.token {
            Some(token) => text.replace(token.expose(), "***"),
            None => text.to_string(),
        }
    }
}

/// Everything a pass needs to publish to Git.
#[derive(Clone, Debug)]
pub struct GitTarget {
    pub output: GitOutput,
    pub credentials: Credentials,
    /// A writable directory for the temporary clone (the dream pod's `/tmp` volume).
    pub work_dir: PathBuf,
}

/// What a pass published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub repository: String,
    pub branch: String,
    /// The manifest's path in the repository.
    pub file: String,
    /// `false` when the branch already existed (a retried pass): it was left as it was.
    pub pushed: bool,
    /// The pull request, when a forge is configured.
    pub pull_request: Option<forge::Opened>,
}

impl Published {
    /// One line for the pass's report.
    pub fn message(&self) -> String {
        let push = if self.pushed {
            format!("pushed {} to branch {} of {}", self.file, self.branch, self.repository)
        } else {
            format!(
                "branch {} of {} already existed (an earlier attempt); left as it was",
                self.branch, self.repository
            )
        };
        match &self.pull_request {
            None => format!("{push}; no forge configured, so no pull request was opened"),
            Some(opened) if opened.already_open => format!("{push}; its pull request was already open"),
            Some(opened) => match &opened.url {
                Some(url) => format!("{push}; opened pull request {url}"),
                None => format!("{push}; opened a pull request"),
            },
        }
    }
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum GitOpsError {
    /// The settings cannot work (checked before anything is pushed).
    #[error("spec.output.git: {0}")]
    Invalid(String),
    /// A `git` command failed.
    #[error("git {step} failed for {repository}: {detail}")]
    Git {
        step: String,
        repository: String,
        detail: String,
    },
    /// The forge refused to open the pull request.
    #[error(
        "{forge} answered {status} to POST {url}: {body}. Branch {branch} was pushed to {repository}: open the pull request by hand, or fix the forge settings, delete the branch and run the pass again"
    )]
    ForgeStatus {
        forge: &'static str,
        status: u16,
        url: String,
        body: String,
        branch: String,
        repository: String,
    },
    /// The forge could not be reached.
    #[error(
        "cannot reach {forge} at {url}: {cause}. Branch {branch} was pushed to {repository}: open the pull request by hand, or run the pass again"
    )]
    ForgeUnreachable {
        forge: &'static str,
        url: String,
        cause: String,
        branch: String,
        repository: String,
    },
    /// A local file operation failed.
    #[error("{0}")]
    Io(String),
}

/// The display name of a forge, for messages.
pub fn forge_name(forge: ForgeType) -> &'static str {
    match forge {
        ForgeType::GitHub => "GitHub",
        ForgeType::GitLab => "GitLab",
        ForgeType::Gitea => "Gitea",
        ForgeType::None => "no forge",
    }
}

/// Parses a forge type as written in the spec (`github`, `gitlab`, `gitea`, `none`).
pub fn parse_forge_type(text: &str) -> Result<ForgeType, String> {
    serde_json::from_value(serde_json::Value::String(text.to_ascii_lowercase()))
        .map_err(|_| format!("unknown forge {text:?}: expected github, gitlab, gitea or none"))
}

/// Everything wrong with a schedule's output on its own, as `spec.output…: …` messages (empty
/// for the cluster output and for usable Git settings). The DreamSchedule controller reports
/// them as problems with reason `InvalidOutput`.
pub fn validate(output: &Output) -> Vec<String> {
    match output {
        Output::Cluster(_) => Vec::new(),
        Output::Git(git) => {
            let mut problems = settings_problems(git);
            problems.extend(credential_problems(git));
            problems.into_iter().map(|p| format!("spec.output.git.{p}")).collect()
        }
    }
}

/// The keys the schedule's Secret must hold for these settings (empty without a Secret).
pub fn required_secret_keys(git: &GitOutput) -> Vec<&'static str> {
    if git.auth_secret_ref.is_none() {
        return Vec::new();
    }
    let mut keys = Vec::new();
    if git.repository.starts_with("ssh://") {
        keys.push(SSH_PRIVATE_KEY);
    }
    if git.repository.starts_with("https://") || forge_type(git) != ForgeType::None {
        keys.push(TOKEN_KEY);
    }
    keys
}

fn forge_type(git: &GitOutput) -> ForgeType {
    git.forge.as_ref().map_or(ForgeType::None, |f| f.type_)
}

/// Problems with the settings themselves (relative to `spec.output.git`).
pub(crate) fn settings_problems(git: &GitOutput) -> Vec<String> {
    let mut problems = Vec::new();
    let repository_ok = match repository_host(&git.repository) {
        Ok(_) => true,
        Err(e) => {
            problems.push(format!("repository: {e}"));
            false
        }
    };
    if let Err(e) = check_branch(&git.branch) {
        problems.push(format!("branch: {e}"));
    }
    if let Err(e) = check_path(&git.path) {
        problems.push(format!("path: {e}"));
    }
    if let Some(forge) = git
        .forge
        .as_ref()
        .filter(|f| repository_ok && f.type_ != ForgeType::None)
    {
        if let Err(e) = forge::api_url(forge, &git.repository) {
            problems.push(format!("forge.apiUrl: {e}"));
        }
        if let Err(e) = forge::project(forge, &git.repository) {
            problems.push(format!("forge.project: {e}"));
        }
    }
    if let Some(author) = &git.author {
        if author.name.trim().is_empty() || author.name.contains(['<', '>', '\n']) {
            problems.push(format!("author.name: {:?} is not a usable name", author.name));
        }
        if !author.email.contains('@') || author.email.contains(['<', '>', ' ', '\n']) {
            problems.push(format!("author.email: {:?} is not an email address", author.email));
        }
    }
    problems
}

/// Problems with how the settings authenticate (relative to `spec.output.git`).
fn credential_problems(git: &GitOutput) -> Vec<String> {
    if git.auth_secret_ref.is_some() {
        return Vec::new();
    }
    let mut problems = Vec::new();
    if git.repository.starts_with("https://") {
        problems.push(format!(
            "authSecretRef: pushing to an https:// repository needs a Secret with key {TOKEN_KEY:?}"
        ));
    } else if git.repository.starts_with("ssh://") {
        problems.push(format!(
            "authSecretRef: pushing to an ssh:// repository needs a Secret with key {SSH_PRIVATE_KEY:?}"
        ));
    }
    if forge_type(git) != ForgeType::None {
        problems.push(format!(
            "authSecretRef: opening a pull request through the {} API needs a Secret with key {TOKEN_KEY:?}",
            forge_name(forge_type(git))
        ));
    }
    problems.dedup();
    problems
}

/// The host (and port) of an `https://` or `ssh://` repository URL, `None` for `file://`.
/// Messages show the URL with any credential in it masked.
pub(crate) fn repository_host(repository: &str) -> Result<Option<String>, String> {
    let url = redact_userinfo(repository);
    if repository.chars().any(char::is_whitespace) || repository.is_empty() {
        return Err(format!("{url:?} is not a URL"));
    }
    let Some((scheme, rest)) = repository.split_once("://") else {
        return Err(format!(
            "{url:?} is not a URL: use https://host/owner/repo.git, ssh://git@host/owner/repo.git or file:///path"
        ));
    };
    match scheme {
        "file" => {
            if !rest.starts_with('/') {
                return Err(format!("{url:?}: a file:// URL needs an absolute path (file:///path)"));
            }
            Ok(None)
        }
        "https" | "ssh" => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (userinfo, host) = match authority.rsplit_once('@') {
                Some((userinfo, host)) => (Some(userinfo), host),
                None => (None, authority),
            };
            if host.is_empty() {
                return Err(format!("{url:?} has no host"));
            }
            if path.trim_matches('/').is_empty() {
                return Err(format!("{url:?} names no repository"));
            }
            if scheme == "https" && userinfo.is_some() {
                return Err(format!(
                    "{url:?} carries credentials; put the token in the Secret of authSecretRef instead"
                ));
            }
            if scheme == "ssh" && userinfo.is_some_and(|u| u.contains(':')) {
                return Err(format!(
                    "{url:?} carries a password; use an SSH key from the Secret instead"
                ));
            }
            Ok(Some(host.to_string()))
        }
        _ => Err(format!("{url:?}: the scheme must be https://, ssh:// or file://")),
    }
}

/// `url` with any password in it replaced by `***`, for messages.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let user = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None if scheme == "https" => "***".to_string(),
        None => userinfo.to_string(),
    };
    match path {
        Some(path) => format!("{scheme}://{user}@{host}/{path}"),
        None => format!("{scheme}://{user}@{host}"),
    }
}

/// A branch name Git accepts and that cannot be read as an option.
pub(crate) fn check_branch(branch: &str) -> Result<(), String> {
    let bad = branch.is_empty()
        || branch.starts_with(['-', '/', '.'])
        || branch.ends_with(['/', '.'])
        || branch.ends_with(".lock")
        || branch.contains("..")
        || branch.contains("//")
        || branch.contains("/.")
        || branch.contains("@{")
        || !branch
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if bad {
        Err(format!("{branch:?} is not a valid branch name"))
    } else {
        Ok(())
    }
}

/// A relative directory inside the repository, without `..`.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    let trimmed = path.trim_end_matches('/');
    let bad = trimmed.is_empty()
        || trimmed.starts_with('/')
        || trimmed
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        || trimmed.split('/').next() == Some(".git")
        || !trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if bad {
        Err(format!(
            "{path:?} must be a relative directory inside the repository (no `..`, no leading `/`)"
        ))
    } else {
        Ok(())
    }
}

/// Publishes `proposal` (as the dream pass built it) to Git: push the manifest on its own
/// branch, then open the pull request. A retried pass whose branch is already there leaves the
/// branch alone and accepts a pull request that is already open.
pub async fn publish(target: &GitTarget, proposal: &MemoryProposal) -> Result<Published, GitOpsError> {
    let git = &target.output;
    let problems = settings_problems(git);
    if !problems.is_empty() {
        return Err(GitOpsError::Invalid(problems.join("; ")));
    }
    let forge = git.forge.clone().filter(|f| f.type_ != ForgeType::None);
    if let Some(forge) = &forge
        && target.credentials.token.is_none()
    {
        return Err(GitOpsError::Invalid(format!(
            "opening a pull request through the {} API needs a token (key {TOKEN_KEY:?} of the Secret in authSecretRef, as ${TOKEN_ENV}); nothing was pushed",
            forge_name(forge.type_)
        )));
    }
    let written = manifest::manifest(proposal);
    let content = manifest::render(&written).map_err(GitOpsError::Io)?;
    let branch = manifest::branch_name(proposal);
    let file = manifest::file_path(git, proposal);
    let author = git.author.clone();
    let request = git::PushRequest {
        repository: git.repository.clone(),
        base: git.branch.clone(),
        branch: branch.clone(),
        file: file.clone(),
        content,
        message: manifest::commit_message(&written),
        author_name: author.as_ref().map_or(DEFAULT_AUTHOR_NAME.into(), |a| a.name.clone()),
        author_email: author.as_ref().map_or(DEFAULT_AUTHOR_EMAIL.into(), |a| a.email.clone()),
        forge: forge_type(git),
        credentials: target.credentials.clone(),
        work_dir: target.work_dir.clone(),
    };
    let pushed = tokio::task::spawn_blocking(move || git::push_file(&request))
        .await
        .map_err(|e| GitOpsError::Io(format!("the git step stopped: {e}")))??;
    let mut published = Published {
        repository: git.repository.clone(),
        branch: branch.clone(),
        file: file.clone(),
        pushed: pushed == git::Pushed::Created,
        pull_request: None,
    };
    let (Some(forge), Some(token)) = (forge, target.credentials.token.as_ref()) else {
        return Ok(published);
    };
    let pull_request = forge::PullRequest {
        title: manifest::pull_request_title(&written),
        body: manifest::pull_request_body(&written, &file),
        head: branch.clone(),
        base: git.branch.clone(),
    };
    let opened = forge::open(&forge, &git.repository, token, &pull_request)
        .await
        .or_else(|failure| match failure {
            // A retried pass: the first attempt pushed the branch and opened the pull request.
            forge::Failure::Status { status, .. } if !published.pushed && (status == 409 || status == 422) => {
                Ok(forge::Opened {
                    url: None,
                    already_open: true,
                })
            }
            failure => Err(failure.into_error(forge.type_, &branch, &git.repository)),
        })?;
    published.pull_request = Some(opened);
    Ok(published)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::dream_schedule::Forge;

    fn git(value: serde_json::Value) -> GitOutput {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn defaults_and_a_complete_github_setup_are_valid() {
        let output = git(serde_json::json!({
            "repository": "https://github.com/acme/agents.git",
            "authSecretRef": {"name": "git"},
            "forge": {"type": "github"}
        }));
        assert_eq!(
            (output.branch.as_str(), output.path.as_str()),
            ("main", "memory-proposals")
        );
        assert!(validate(&Output::Git(output.clone())).is_empty());
        assert_eq!(required_secret_keys(&output), [TOKEN_KEY]);
        assert!(validate(&Output::default()).is_empty());
    }

    #[test]
    fn bad_settings_are_named_by_field() {
        let output = git(serde_json::json!({
            "repository": "https://user:secret@github.com/acme/agents.git",
            "branch": "-x",
            "path": "../etc",
            "forge": {"type": "gitea"},
            "author": {"name": "r", "email": "nope"}
        }));
        let problems = validate(&Output::Git(output)).join("\n");
        for field in [
            "spec.output.git.repository",
            "spec.output.git.branch",
            "spec.output.git.path",
            "spec.output.git.author.email",
            "spec.output.git.authSecretRef",
        ] {
            assert!(problems.contains(field), "{field} missing in:\n{problems}");
        }
        assert!(!problems.contains("secret@"), "no credential is echoed: {problems}");
    }

    #[test]
    fn a_file_repository_needs_no_secret_but_a_forge_there_needs_an_api_url() {
        let plain = git(serde_json::json!({"repository": "file:///srv/git/agents.git"}));
        assert!(validate(&Output::Git(plain)).is_empty());
        let with_forge = GitOutput {
            forge: Some(Forge {
                type_: ForgeType::GitLab,
                api_url: None,
                project: None,
            }),
            ..git(serde_json::json!({"repository": "file:///srv/git/agents.git", "authSecretRef": {"name": "g"}}))
        };
        let problems = validate(&Output::Git(with_forge)).join("\n");
        assert!(problems.contains("spec.output.git.forge.apiUrl"), "{problems}");
        assert!(problems.contains("spec.output.git.forge.project"), "{problems}");
    }

    #[test]
    fn ssh_repositories_need_a_key_and_a_token_only_for_the_forge() {
        let output = git(serde_json::json!({
            "repository": "ssh://git@gitlab.example.com:2222/team/sub/agents.git",
            "authSecretRef": {"name": "git"}
        }));
        assert_eq!(required_secret_keys(&output), [SSH_PRIVATE_KEY]);
        let with_forge = GitOutput {
            forge: Some(Forge {
                type_: ForgeType::GitLab,
                api_url: None,
                project: None,
            }),
            ..output
        };
        assert_eq!(required_secret_keys(&with_forge), [SSH_PRIVATE_KEY, TOKEN_KEY]);
        assert!(validate(&Output::Git(with_forge)).is_empty());
    }

    #[test]
    fn branch_and_path_rules() {
        for good in ["main", "release/2026.1", "env_prod"] {
            assert!(check_branch(good).is_ok(), "{good}");
        }
        for bad in ["", "-f", "a..b", "a/", "x.lock", "a b", "a@{1}", "/a", "a//b"] {
            assert!(check_branch(bad).is_err(), "{bad}");
        }
        for good in ["memory-proposals", "clusters/prod/memory/", "a.b"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in ["", "/abs", "a/../b", "..", ".git/hooks", "a//b", "a b"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_never_show_and_are_scrubbed_from_errors() {
        let token = Token::new(" s3cret\n").unwrap();
        assert_eq!(format!("{token:?}"), "Token(…)");
        assert_eq!(Token::new("  "), None);
        let credentials = Credentials {
            token: Some(token),
            ..Credentials::default()
        };
        assert_eq!(credentials.scrub("fatal: s3cret rejected"), "fatal: *** rejected");
    }

    #[test]
    fn forge_types_parse_like_the_spec() {
        assert_eq!(parse_forge_type("github"), Ok(ForgeType::GitHub));
        assert_eq!(parse_forge_type("GitLab"), Ok(ForgeType::GitLab));
        assert_eq!(parse_forge_type("none"), Ok(ForgeType::None));
        assert!(parse_forge_type("bitbucket").unwrap_err().contains("bitbucket"));
    }
}
