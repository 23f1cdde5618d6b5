//! The `ssh://` path of the GitOps output, without an SSH server: a stand-in `ssh` first on
//! `PATH` records how `git` called it (the key, the host-key options) and then runs the remote
//! command locally against a bare repository, so the push really happens through the SSH
//! transport. Its own test binary: it changes `PATH` for the whole process.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use reverie::api::MemoryProposal;
use reverie::api::dream_schedule::GitOutput;
use reverie::gitops::{self, Credentials, GitOpsError, GitTarget, KNOWN_HOSTS_KEY, SSH_PRIVATE_KEY};
use reverie_api::test_support::git::{bare_repository, git, seed_main};
use reverie_api::test_support::{MemoryProposalBuilder, lesson};

const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----";

fn proposal() -> MemoryProposal {
    MemoryProposalBuilder::new("p1")
        .namespace("team")
        .base(1, "")
        .summary("One lesson")
        .change(lesson("x", 3, &[]))
        .build()
}

#[tokio::test]
async fn ssh_pushes_use_the_secret_key_privately_and_check_host_keys() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    seed_main(&bare_repository(root));

    // The Secret as the kubelet mounts it: the key without a trailing newline, known_hosts.
    let secret = root.join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(secret.join(SSH_PRIVATE_KEY), KEY).unwrap();
    std::fs::write(secret.join(KNOWN_HOSTS_KEY), "git.example.com ssh-ed25519 AAAA\n").unwrap();

    // `ssh [options] host command`: record the options, the key file's mode and content, then
    // run the command (git-upload-pack / git-receive-pack '<path>') here.
    let bin = root.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = root.join("ssh.log");
    let script = format!(
        r#"#!/bin/sh
log='{log}'
key=''
prev=''
for arg in "$@"; do
  [ "$prev" = "-i" ] && key="$arg"
  prev="$arg"
  printf 'arg %s\n' "$arg" >> "$log"
done
printf 'mode %s\n' "$(stat -c %a "$key")" >> "$log"
printf 'key %s\n' "$(tail -c 1 "$key" | od -An -c | tr -d ' ')" >> "$log"
eval "command=\${{$#}}"
exec sh -c "$command"
"#,
        log = log.display()
    );
    std::fs::write(bin.join("ssh"), script).unwrap();
    std::fs::set_permissions(bin.join("ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    // SAFETY: this test binary has this one test; nothing else reads the environment meanwhile.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("PATH", path)
    };

    let work = root.join("work");
    std::fs::create_dir(&work).unwrap();
    let repository = format!("ssh://git@git.example.com{}/origin.git", root.display());
    let output: GitOutput = serde_json::from_value(json!({"repository": repository})).unwrap();
    let mut target = GitTarget {
        output,
        credentials: Credentials {
            ssh_key_dir: Some(secret.clone()),
            ..Credentials::default()
        },
        work_dir: work.clone(),
    };
    let published = gitops::publish(&target, &proposal()).await.unwrap();
    assert!(published.pushed);
    let content = git(
        &root.join("origin.git"),
        &["show", "reverie/team/p1:memory-proposals/team/p1.yaml"],
    );
    assert!(content.contains("kind: MemoryProposal"), "{content}");

    let log = std::fs::read_to_string(&log).unwrap();
    for expected in [
        "arg git@git.example.com",
        "arg IdentitiesOnly=yes",
        "arg BatchMode=yes",
        "arg StrictHostKeyChecking=yes",
        &format!("arg UserKnownHostsFile={}", secret.join(KNOWN_HOSTS_KEY).display()),
        "mode 600",
        "key \\n",
    ] {
        assert!(log.contains(expected), "{expected:?} missing in:\n{log}");
    }
    assert!(
        !log.contains(&format!("arg {}", secret.join(SSH_PRIVATE_KEY).display())),
        "the mounted key is copied, never used in place:\n{log}"
    );
    assert!(log.contains("git-receive-pack"), "{log}");
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0, "the key copy is removed");

    // Without a key the pass says which Secret key is missing.
    target.credentials.ssh_key_dir = None;
    let error = gitops::publish(&target, &proposal()).await.unwrap_err();
    assert!(matches!(error, GitOpsError::Invalid(_)), "{error}");
    assert!(error.to_string().contains(SSH_PRIVATE_KEY), "{error}");
}
