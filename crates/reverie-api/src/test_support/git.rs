//! The `git` program as tests run it: no system or global configuration, a fixed author, and
//! a failure that fails the test with git's own message.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `git args` in `dir` and returns its trimmed stdout; panics with git's stderr when it
/// fails. The environment is inherited, so a test that puts a stand-in program first on
/// `PATH` (an `ssh`, say) reaches it through git.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "seed")
        .env("GIT_AUTHOR_EMAIL", "seed@example.com")
        .env("GIT_COMMITTER_NAME", "seed")
        .env("GIT_COMMITTER_EMAIL", "seed@example.com")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("git prints UTF-8")
        .trim()
        .to_string()
}

/// An empty bare repository `root/origin.git` whose initial branch is `main`.
pub fn bare_repository(root: &Path) -> PathBuf {
    git(
        root,
        &["init", "--quiet", "--bare", "--initial-branch=main", "origin.git"],
    );
    root.join("origin.git")
}

/// Pushes one commit (a README) to `main` of the bare repository `origin`, from a clone made
/// beside it (`seed/`): what a repository has before any proposal reaches it.
pub fn seed_main(origin: &Path) {
    let root = origin.parent().expect("the repository has a parent directory");
    git(root, &["init", "--quiet", "--initial-branch=main", "seed"]);
    let seed = root.join("seed");
    std::fs::write(seed.join("README.md"), "memory proposals\n").expect("write the README");
    git(&seed, &["add", "README.md"]);
    git(&seed, &["commit", "--quiet", "-m", "seed"]);
    git(
        &seed,
        &["push", "--quiet", origin.to_str().expect("a UTF-8 path"), "main"],
    );
}
