//! Clone, commit and push by running the `git` program (2.32 or newer; `ssh` for `ssh://`).
//!
//! Why a program and not a library: `gix` (pure Rust) cannot push yet, and `git2` needs
//! libgit2 with OpenSSL for HTTPS and libssh2 for SSH, C libraries the static image would have
//! to build and ship; `git` speaks every transport, and the dream Job runs it in a throw-away
//! directory with a fixed configuration:
//!
//! - no system or global configuration (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL=/dev/null`),
//!   no prompts (`GIT_TERMINAL_PROMPT=0`, `BatchMode=yes`), no hooks in a fresh clone;
//! - the HTTPS token as an `Authorization` header scoped to the repository URL, passed through
//!   `GIT_CONFIG_*` environment variables: never in a URL, a command line or `.git/config`;
//! - the SSH key copied to a private (0600) file, host keys checked against the Secret's
//!   `known_hosts` when it has one;
//! - every command bounded in time, its output scrubbed of the token before it is shown.

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use super::{Credentials, GitOpsError, KNOWN_HOSTS_KEY, SSH_PRIVATE_KEY};
use crate::api::dream_schedule::ForgeType;

/// Longest any one `git` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// Characters of `git`'s error output kept in an error.
const MAX_DETAIL_CHARS: usize = 600;

/// One manifest to push on its own branch.
#[derive(Clone, Debug)]
pub struct PushRequest {
    /// Repository URL (`https://`, `ssh://`, `file://`).
    pub repository: String,
    /// The branch to start from.
    pub base: String,
    /// The new branch.
    pub branch: String,
    /// Path of the file in the repository.
    pub file: String,
    pub content: String,
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    /// Picks the default HTTPS user name.
    pub forge: ForgeType,
    pub credentials: Credentials,
    /// Where the temporary clone is made.
    pub work_dir: PathBuf,
}

/// What the push did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The branch was created with the manifest.
    Created,
    /// The branch already existed (a retried pass): left untouched.
    AlreadyThere,
}

/// Pushes `request.content` to `request.file` on a new branch `request.branch` started from
/// `request.base`. Blocking: run it off the async runtime.
pub fn push_file(request: &PushRequest) -> Result<Pushed, GitOpsError> {
    let work = WorkDir::create(&request.work_dir)?;
    let git = Git::new(request, &work)?;
    let branch_ref = format!("refs/heads/{}", request.branch);
    let listed = git.run(
        "ls-remote",
        work.path(),
        &[
            "ls-remote",
            "--exit-code",
            "--heads",
            "--",
            &request.repository,
            &branch_ref,
        ],
    )?;
    match listed.status.code() {
        Some(0) => return Ok(Pushed::AlreadyThere),
        Some(2) => {}
        _ => return Err(git.failure("ls-remote", &listed)),
    }
    let clone_dir = work.path().join("repo");
    let clone_path = clone_dir.to_string_lossy().into_owned();
    let cloned = git.run(
        "clone",
        work.path(),
        &[
            "clone",
            "--quiet",
            "--depth",
            "1",
            "--single-branch",
            "--no-tags",
            "--branch",
            &request.base,
            "--",
            &request.repository,
            &clone_path,
        ],
    )?;
    if !cloned.status.success() {
        let mut error = git.failure("clone", &cloned);
        if let GitOpsError::Git { detail, .. } = &mut error {
            detail.push_str(&format!(
                " (the base branch {:?} must exist in the repository)",
                request.base
            ));
        }
        return Err(error);
    }
    let target = clone_dir.join(&request.file);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error(parent, &e))?;
    }
    std::fs::write(&target, &request.content).map_err(|e| io_error(&target, &e))?;
    git.check("add", &clone_dir, &["add", "--", &request.file])?;
    git.check(
        "commit",
        &clone_dir,
        &["commit", "--quiet", "--no-verify", "--message", &request.message],
    )?;
    let refspec = format!("HEAD:{branch_ref}");
    git.check(
        "push",
        &clone_dir,
        &["push", "--quiet", "--no-verify", "origin", &refspec],
    )?;
    Ok(Pushed::Created)
}

fn io_error(path: &Path, error: &std::io::Error) -> GitOpsError {
    GitOpsError::Io(format!("cannot write {}: {error}", path.display()))
}

/// A private directory removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(parent: &Path) -> Result<Self, GitOpsError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path = parent.join(format!("reverie-git-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(|e| {
                GitOpsError::Io(format!(
                    "cannot create a work directory in {}: {e} (the dream pod mounts a writable /tmp for it)",
                    parent.display()
                ))
            })?;
        Ok(WorkDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How `git` is run for one request: environment, credentials, scrubbing.
struct Git<'a> {
    request: &'a PushRequest,
    env: Vec<(String, String)>,
}

/// A finished command.
struct Finished {
    status: ExitStatus,
    stderr: String,
}

impl<'a> Git<'a> {
    fn new(request: &'a PushRequest, work: &WorkDir) -> Result<Self, GitOpsError> {
        let mut env: Vec<(String, String)> = [
            ("GIT_CONFIG_NOSYSTEM", "1"),
            ("GIT_CONFIG_GLOBAL", "/dev/null"),
            ("GIT_TERMINAL_PROMPT", "0"),
            ("GIT_AUTHOR_NAME", request.author_name.as_str()),
            ("GIT_AUTHOR_EMAIL", request.author_email.as_str()),
            ("GIT_COMMITTER_NAME", request.author_name.as_str()),
            ("GIT_COMMITTER_EMAIL", request.author_email.as_str()),
            ("LC_ALL", "C"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut config: Vec<(String, String)> = vec![
            ("http.lowSpeedLimit".into(), "1000".into()),
            ("http.lowSpeedTime".into(), "60".into()),
            ("init.defaultBranch".into(), "main".into()),
        ];
        if request.repository.starts_with("https://")
            && let Some(token) = &request.credentials.token
        {
            let username = request
                .credentials
                .username
                .clone()
                .unwrap_or_else(|| default_username(request.forge).to_string());
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", token.expose()));
            config.push((
                format!("http.{}.extraHeader", request.repository),
                format!("Authorization: Basic {basic}"),
            ));
        }
        env.push(("GIT_CONFIG_COUNT".into(), config.len().to_string()));
        for (index, (key, value)) in config.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{index}"), key));
            env.push((format!("GIT_CONFIG_VALUE_{index}"), value));
        }
        if request.repository.starts_with("ssh://") {
            env.push(("GIT_SSH_COMMAND".into(), ssh_command(request, work)?));
        }
        Ok(Git { request, env })
    }

    /// Runs `git args` in `dir`; a non-zero exit is returned, not an error.
    fn run(&self, step: &str, dir: &Path, args: &[&str]) -> Result<Finished, GitOpsError> {
        let mut command = Command::new("git");
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for name in [
            "GIT_ASKPASS",
            "SSH_ASKPASS",
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_SSH",
            "GIT_PROXY_COMMAND",
        ] {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = command.spawn().map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (spec.output.git needs the `git` program in the dream Job's image)"
            } else {
                ""
            };
            GitOpsError::Git {
                step: step.to_string(),
                repository: self.request.repository.clone(),
                detail: format!("cannot run git: {e}{hint}"),
            }
        })?;
        let mut stderr_pipe = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(pipe) = stderr_pipe.as_mut() {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        });
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(GitOpsError::Git {
                        step: step.to_string(),
                        repository: self.request.repository.clone(),
                        detail: format!("no answer within {} s", COMMAND_TIMEOUT.as_secs()),
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    return Err(GitOpsError::Git {
                        step: step.to_string(),
                        repository: self.request.repository.clone(),
                        detail: e.to_string(),
                    });
                }
            }
        };
        let stderr = reader.join().unwrap_or_default();
        Ok(Finished { status, stderr })
    }

    /// Runs `git args` in `dir` and fails on a non-zero exit.
    fn check(&self, step: &str, dir: &Path, args: &[&str]) -> Result<(), GitOpsError> {
        let finished = self.run(step, dir, args)?;
        if finished.status.success() {
            Ok(())
        } else {
            Err(self.failure(step, &finished))
        }
    }

    fn failure(&self, step: &str, finished: &Finished) -> GitOpsError {
        let text = self.request.credentials.scrub(finished.stderr.trim());
        let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut detail = if line.is_empty() {
            format!("git exited with {}", finished.status)
        } else if line.chars().count() > MAX_DETAIL_CHARS {
            format!("{}…", line.chars().take(MAX_DETAIL_CHARS).collect::<String>())
        } else {
            line
        };
        if self.request.repository.starts_with("https://") && self.request.credentials.token.is_none() {
            detail.push_str(" (no token was given: key `token` of the Secret in authSecretRef)");
        }
        GitOpsError::Git {
            step: step.to_string(),
            repository: self.request.repository.clone(),
            detail,
        }
    }
}

/// The HTTPS user name a forge expects with a token.
pub fn default_username(forge: ForgeType) -> &'static str {
    match forge {
        ForgeType::GitLab => "oauth2",
        _ => "x-access-token",
    }
}

/// `GIT_SSH_COMMAND` with the Secret's key (copied to a private file: ssh refuses keys others
/// can read) and its known hosts.
fn ssh_command(request: &PushRequest, work: &WorkDir) -> Result<String, GitOpsError> {
    let dir = request.credentials.ssh_key_dir.as_ref().ok_or_else(|| {
        GitOpsError::Invalid(format!(
            "pushing to an ssh:// repository needs an SSH key (key {SSH_PRIVATE_KEY:?} of the Secret in authSecretRef)"
        ))
    })?;
    let source = dir.join(SSH_PRIVATE_KEY);
    let mut key = std::fs::read_to_string(&source).map_err(|e| {
        GitOpsError::Invalid(format!(
            "cannot read the SSH key {}: {e} (key {SSH_PRIVATE_KEY:?} of the Secret in authSecretRef)",
            source.display()
        ))
    })?;
    if !key.ends_with('\n') {
        key.push('\n');
    }
    let key_path = work.path().join("ssh-key");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, key.as_bytes()))
        .map_err(|e| io_error(&key_path, &e))?;
    let provided = dir.join(KNOWN_HOSTS_KEY);
    let (known_hosts, checking) = if provided.is_file() {
        (provided, "yes")
    } else {
        tracing::warn!(
            "the Git Secret has no known_hosts: the SSH host key is accepted without verification; add key known_hosts"
        );
        (work.path().join("known_hosts"), "accept-new")
    };
    Ok(format!(
        "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=30 -o UserKnownHostsFile={} -o StrictHostKeyChecking={checking}",
        shell_quote(&key_path),
        shell_quote(&known_hosts)
    ))
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_forge() {
        assert_eq!(default_username(ForgeType::GitLab), "oauth2");
        assert_eq!(default_username(ForgeType::GitHub), "x-access-token");
        assert_eq!(default_username(ForgeType::Gitea), "x-access-token");
    }

    fn request(repository: &str, work_dir: &Path) -> PushRequest {
        PushRequest {
            repository: repository.into(),
            base: "main".into(),
            branch: "reverie/ns/p".into(),
            file: "f.yaml".into(),
            content: String::new(),
            message: "m".into(),
            author_name: "a".into(),
            author_email: "a@example.com".into(),
            forge: ForgeType::GitHub,
            credentials: Credentials {
                token: super::super::Token::new("tok-123"),
                ..Credentials::default()
            },
            work_dir: work_dir.to_path_buf(),
        }
    }

    #[test]
    fn the_https_token_is_a_header_scoped_to_the_repository_and_nowhere_else() {
        let dir = std::env::temp_dir();
        let work = WorkDir::create(&dir).unwrap();
        let https = request("https://github.com/acme/agents.git", &dir);
        let git = Git::new(&https, &work).unwrap();
        let basic = base64::engine::general_purpose::STANDARD.encode("x-access-token:tok-123");
        let keys: Vec<&(String, String)> = git
            .env
            .iter()
            .filter(|(k, _)| k.starts_with("GIT_CONFIG_KEY_"))
            .collect();
        let header_key = keys
            .iter()
            .find(|(_, v)| v.ends_with("extraHeader"))
            .map(|(k, v)| (k.replace("KEY", "VALUE"), v.clone()))
            .unwrap();
        assert_eq!(header_key.1, "http.https://github.com/acme/agents.git.extraHeader");
        let value = git.env.iter().find(|(k, _)| *k == header_key.0).unwrap();
        assert_eq!(value.1, format!("Authorization: Basic {basic}"));
        assert!(
            git.env.iter().all(|(_, v)| !v.contains("tok-123")),
            "only encoded, in one header"
        );
        for (name, value) in [("GIT_CONFIG_GLOBAL", "/dev/null"), ("GIT_TERMINAL_PROMPT", "0")] {
            assert!(git.env.iter().any(|(k, v)| k == name && v == value), "{name}");
        }
        // Never sent over other transports.
        let file = request("file:///srv/agents.git", &dir);
        let git = Git::new(&file, &work).unwrap();
        assert!(git.env.iter().all(|(_, v)| !v.contains("Authorization")));
    }

    #[test]
    fn paths_are_quoted_for_the_shell_git_runs_ssh_with() {
        assert_eq!(shell_quote(Path::new("/tmp/a b")), "'/tmp/a b'");
        assert_eq!(shell_quote(Path::new("/tmp/it's")), "'/tmp/it'\\''s'");
    }
}
