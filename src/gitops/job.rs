//! What a dream Job needs for the Git output: the `reverie dream --git-…` arguments, the token
//! from the Secret as environment variables (`secretKeyRef`, optional: a missing key is
//! reported by the pass, clearly, instead of a pod stuck in `CreateContainerConfigError`), the
//! SSH key as a read-only Secret volume, and a writable `/tmp` for the clone (the container's
//! root file system is read-only). Pure.
//!
//! The dreamer's ServiceAccount gains nothing: the kubelet, not the pod, reads the Secret.

use k8s_openapi::api::core::v1::{
    EmptyDirVolumeSource, EnvVar, EnvVarSource, SecretKeySelector, SecretVolumeSource, Volume, VolumeMount,
};

use super::{SSH_KEY_DIR, TOKEN_ENV, TOKEN_KEY, USERNAME_ENV, USERNAME_KEY};
use crate::api::dream_schedule::{ForgeType, GitOutput};

/// Where the dream pod's writable scratch volume is mounted (the clone is made there).
pub const WORK_MOUNT: &str = "/tmp";
/// Name of the scratch volume.
pub const WORK_VOLUME: &str = "git-work";
/// Name of the SSH key volume.
pub const SSH_VOLUME: &str = "git-ssh";

/// The additions to the dream container and pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodSettings {
    pub args: Vec<String>,
    /// Container `env` entries.
    pub env: Vec<EnvVar>,
    /// Pod volumes.
    pub volumes: Vec<Volume>,
    /// Container volume mounts.
    pub mounts: Vec<VolumeMount>,
}

/// The pod settings for publishing to `git`.
pub fn pod_settings(git: &GitOutput) -> PodSettings {
    let mut args = vec![
        "--git-repository".to_string(),
        git.repository.clone(),
        "--git-branch".into(),
        git.branch.clone(),
        "--git-path".into(),
        git.path.clone(),
    ];
    if let Some(forge) = git.forge.as_ref().filter(|f| f.type_ != ForgeType::None) {
        let name = match forge.type_ {
            ForgeType::GitHub => "github",
            ForgeType::GitLab => "gitlab",
            ForgeType::Gitea => "gitea",
            ForgeType::None => "none",
        };
        args.extend(["--git-forge".to_string(), name.to_string()]);
        if let Some(url) = &forge.api_url {
            args.extend(["--git-forge-api-url".to_string(), url.clone()]);
        }
        if let Some(project) = &forge.project {
            args.extend(["--git-forge-project".to_string(), project.clone()]);
        }
    }
    if let Some(author) = &git.author {
        args.extend([
            "--git-author-name".to_string(),
            author.name.clone(),
            "--git-author-email".into(),
            author.email.clone(),
        ]);
    }
    let mut settings = PodSettings {
        args,
        volumes: vec![Volume {
            name: WORK_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        }],
        mounts: vec![mount(WORK_VOLUME, WORK_MOUNT, None)],
        ..PodSettings::default()
    };
    let Some(secret) = &git.auth_secret_ref else {
        return settings;
    };
    let from_secret = |env: &str, key: &str| EnvVar {
        name: env.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: key.to_string(),
                optional: Some(true),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    settings.env = vec![
        from_secret(TOKEN_ENV, TOKEN_KEY),
        from_secret(USERNAME_ENV, USERNAME_KEY),
    ];
    if git.repository.starts_with("ssh://") {
        settings
            .args
            .extend(["--git-ssh-key-dir".to_string(), SSH_KEY_DIR.to_string()]);
        settings.volumes.push(Volume {
            name: SSH_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.name.clone()),
                default_mode: Some(0o400),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        settings.mounts.push(mount(SSH_VOLUME, SSH_KEY_DIR, Some(true)));
    }
    settings
}

fn mount(volume: &str, path: &str, read_only: Option<bool>) -> VolumeMount {
    VolumeMount {
        name: volume.to_string(),
        mount_path: path.to_string(),
        read_only,
        ..VolumeMount::default()
    }
}
