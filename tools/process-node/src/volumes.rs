//! A pod's volumes as host directories, and each container's bind mounts.
//!
//! Layout under the state dir:
//! - `pods/<uid>/volumes/<volume>`: emptyDir, and the materialised files of configMap,
//!   secret, projected and downwardAPI volumes;
//! - `pods/<uid>/serviceaccount`: the generated token / ca.crt / namespace directory;
//! - `pvc/<namespace>/<claim>`: a PersistentVolumeClaim's data, kept across pods;
//! - hostPath volumes are the host path itself.
//!
//! Planning ([`plan`], [`container_mounts`]) is pure; [`materialise`] and [`refresh`] write.

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, KeyToPath, Pod, Volume};

use super::env::{Host, expand, field_value, resource_value};
use super::refs::{Data, ROOT_CA_CONFIGMAP, Refs, SA_DIR, TokenKey, same_path};

/// Name of the generated service-account volume (not a valid Kubernetes volume name, so it
/// cannot clash with the pod's own).
pub const SA_VOLUME: &str = "process-node~serviceaccount";
/// Default file mode of configMap, secret, projected and downwardAPI volumes.
const DEFAULT_MODE: u32 = 0o644;

/// A file to write into a materialised volume.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSpec {
    /// Relative to the volume directory; validated (no `..`, not absolute).
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HostPathKind {
    /// `""`, `DirectoryOrCreate`: create a directory if nothing is there.
    CreateDir,
    /// `FileOrCreate`: create an empty file if nothing is there.
    CreateFile,
    /// `Directory`, `File`, `Socket`, ...: must exist.
    MustExist,
}

/// Where a volume's content lives on the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A directory process-node writes (configMap, secret, projected, downwardAPI,
    /// service-account); mounted read-only.
    Files {
        dir: PathBuf,
        files: Vec<FileSpec>,
    },
    /// A directory used as is, created when missing (emptyDir, persistentVolumeClaim).
    Dir {
        dir: PathBuf,
    },
    HostPath {
        path: PathBuf,
        kind: HostPathKind,
    },
}

impl Source {
    pub fn path(&self) -> &Path {
        match self {
            Source::Files { dir, .. } | Source::Dir { dir } => dir,
            Source::HostPath { path, .. } => path,
        }
    }

    fn forced_read_only(&self) -> bool {
        matches!(self, Source::Files { .. })
    }
}

/// Host directories of one pod.
#[derive(Debug, Clone)]
pub struct Layout {
    pub pod_dir: PathBuf,
    pub state_dir: PathBuf,
}

impl Layout {
    fn volume_dir(&self, name: &str) -> PathBuf {
        self.pod_dir.join("volumes").join(name)
    }
}

/// Volume name → source, including [`SA_VOLUME`] when the token is automounted.
pub type Plan = BTreeMap<String, Source>;

/// One bind mount in a container's mount namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

/// Check a relative path from `items`, `subPath` or a downwardAPI item.
pub fn safe_relative(path: &str) -> Result<&str, String> {
    let p = Path::new(path);
    if path.is_empty() || p.is_absolute() {
        return Err(format!("path {path:?} must be relative and non-empty"));
    }
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!("path {path:?} must not contain '..'"));
    }
    Ok(path)
}

fn mode_of(mode: Option<i32>, default: u32) -> u32 {
    mode.map(|m| (m as u32) & 0o7777).unwrap_or(default)
}

/// Files of a ConfigMap/Secret, honouring `items` (key → path, per-item mode).
fn key_files(
    kind: &str,
    name: &str,
    data: Option<&Option<Data>>,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
    mode: u32,
) -> Result<Vec<FileSpec>, String> {
    let data = match data {
        Some(Some(data)) => data,
        _ if optional => return Ok(Vec::new()),
        _ => return Err(format!("{kind} {name:?} not found")),
    };
    match items {
        None => data
            .iter()
            .map(|(key, value)| {
                Ok(FileSpec {
                    path: safe_relative(key)?.to_string(),
                    data: value.clone(),
                    mode,
                })
            })
            .collect(),
        Some(items) => {
            let mut files = Vec::new();
            for item in items {
                match data.get(&item.key) {
                    Some(value) => files.push(FileSpec {
                        path: safe_relative(&item.path)?.to_string(),
                        data: value.clone(),
                        mode: mode_of(item.mode, mode),
                    }),
                    None if optional => {}
                    None => return Err(format!("{kind} {name:?} has no key {:?}", item.key)),
                }
            }
            Ok(files)
        }
    }
}

fn downward_files(
    pod: &Pod,
    host: &Host,
    items: Option<&Vec<DownwardAPIVolumeFile>>,
    mode: u32,
) -> Result<Vec<FileSpec>, String> {
    let mut files = Vec::new();
    for item in items.into_iter().flatten() {
        let value = if let Some(field) = &item.field_ref {
            field_value(pod, host, &field.field_path)?
        } else if let Some(res) = &item.resource_field_ref {
            let container = res.container_name.clone().unwrap_or_default();
            let divisor = res.divisor.as_ref().map(|q| q.0.as_str());
            resource_value(pod, host, &container, &res.resource, divisor)?
        } else {
            return Err(format!("downwardAPI item {:?} has no source", item.path));
        };
        files.push(FileSpec {
            path: safe_relative(&item.path)?.to_string(),
            data: value.into_bytes(),
            mode: mode_of(item.mode, mode),
        });
    }
    Ok(files)
}

fn plan_volume(pod: &Pod, volume: &Volume, refs: &Refs, host: &Host, layout: &Layout) -> Result<Source, String> {
    let name = &volume.name;
    let files = |files: Vec<FileSpec>| Source::Files {
        dir: layout.volume_dir(name),
        files,
    };
    if volume.empty_dir.is_some() {
        return Ok(Source::Dir {
            dir: layout.volume_dir(name),
        });
    }
    if let Some(hp) = &volume.host_path {
        let kind = match hp.type_.as_deref().unwrap_or("") {
            "" | "DirectoryOrCreate" => HostPathKind::CreateDir,
            "FileOrCreate" => HostPathKind::CreateFile,
            _ => HostPathKind::MustExist,
        };
        return Ok(Source::HostPath {
            path: PathBuf::from(&hp.path),
            kind,
        });
    }
    if let Some(claim) = &volume.persistent_volume_claim {
        if refs.claims.get(&claim.claim_name) != Some(&true) {
            return Err(format!("persistentvolumeclaim {:?} not found", claim.claim_name));
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        return Ok(Source::Dir {
            dir: layout
                .state_dir
                .join("pvc")
                .join(safe_relative(&ns)?)
                .join(safe_relative(&claim.claim_name)?),
        });
    }
    if let Some(cm) = &volume.config_map {
        return Ok(files(key_files(
            "configmap",
            &cm.name,
            refs.config_maps.get(&cm.name),
            cm.items.as_ref(),
            cm.optional.unwrap_or(false),
            mode_of(cm.default_mode, DEFAULT_MODE),
        )?));
    }
    if let Some(secret) = &volume.secret {
        let secret_name = secret.secret_name.clone().unwrap_or_default();
        return Ok(files(key_files(
            "secret",
            &secret_name,
            refs.secrets.get(&secret_name),
            secret.items.as_ref(),
            secret.optional.unwrap_or(false),
            mode_of(secret.default_mode, DEFAULT_MODE),
        )?));
    }
    if let Some(downward) = &volume.downward_api {
        let mode = mode_of(downward.default_mode, DEFAULT_MODE);
        return Ok(files(downward_files(pod, host, downward.items.as_ref(), mode)?));
    }
    if let Some(projected) = &volume.projected {
        let mode = mode_of(projected.default_mode, DEFAULT_MODE);
        let mut out = Vec::new();
        for source in projected.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                let data = refs.config_maps.get(&cm.name);
                let missing = !matches!(data, Some(Some(_)));
                if missing && cm.name == ROOT_CA_CONFIGMAP && !refs.ca_pem.is_empty() {
                    // Not published yet in this namespace: use the CA process-node knows.
                    let data = Some(Some(Data::from([("ca.crt".to_string(), refs.ca_pem.clone())])));
                    out.extend(key_files(
                        "configmap",
                        &cm.name,
                        data.as_ref(),
                        cm.items.as_ref(),
                        cm.optional.unwrap_or(false),
                        mode,
                    )?);
                } else {
                    out.extend(key_files(
                        "configmap",
                        &cm.name,
                        data,
                        cm.items.as_ref(),
                        cm.optional.unwrap_or(false),
                        mode,
                    )?);
                }
            }
            if let Some(secret) = &source.secret {
                out.extend(key_files(
                    "secret",
                    &secret.name,
                    refs.secrets.get(&secret.name),
                    secret.items.as_ref(),
                    secret.optional.unwrap_or(false),
                    mode,
                )?);
            }
            if let Some(downward) = &source.downward_api {
                out.extend(downward_files(pod, host, downward.items.as_ref(), mode)?);
            }
            if let Some(token) = &source.service_account_token {
                let key = TokenKey {
                    audience: token.audience.clone().filter(|a| !a.is_empty()),
                    expiration_seconds: token.expiration_seconds.unwrap_or(super::refs::DEFAULT_TOKEN_SECONDS),
                };
                let value = refs
                    .tokens
                    .get(&key)
                    .ok_or("no service-account token was issued for the projected volume")?;
                out.push(FileSpec {
                    path: safe_relative(&token.path)?.to_string(),
                    data: value.clone().into_bytes(),
                    mode,
                });
            }
            if source.cluster_trust_bundle.is_some() {
                return Err(format!(
                    "volume {name:?}: clusterTrustBundle projections are not supported"
                ));
            }
        }
        return Ok(files(out));
    }
    Err(format!(
        "volume {name:?}: unsupported volume type (process-node supports emptyDir, hostPath, \
         persistentVolumeClaim, configMap, secret, projected and downwardAPI)"
    ))
}

/// Plan all volumes of `pod`.
pub fn plan(pod: &Pod, refs: &Refs, host: &Host, layout: &Layout) -> Result<Plan, String> {
    let mut plan = Plan::new();
    let spec = pod.spec.as_ref().ok_or("pod has no spec")?;
    for volume in spec.volumes.iter().flatten() {
        safe_relative(&volume.name).map_err(|e| format!("volume name: {e}"))?;
        let source = plan_volume(pod, volume, refs, host, layout)?;
        plan.insert(volume.name.clone(), source);
    }
    if refs.automount {
        let token = refs
            .tokens
            .get(&TokenKey::default_mount())
            .ok_or("no service-account token was issued")?;
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        plan.insert(
            SA_VOLUME.to_string(),
            Source::Files {
                dir: layout.pod_dir.join("serviceaccount"),
                files: vec![
                    FileSpec {
                        path: "token".into(),
                        data: token.clone().into_bytes(),
                        mode: DEFAULT_MODE,
                    },
                    FileSpec {
                        path: "ca.crt".into(),
                        data: refs.ca_pem.clone(),
                        mode: DEFAULT_MODE,
                    },
                    FileSpec {
                        path: "namespace".into(),
                        data: ns.into_bytes(),
                        mode: DEFAULT_MODE,
                    },
                ],
            },
        );
    }
    Ok(plan)
}

/// The bind mounts of `container`, parents before children. `env` is the container's
/// resolved environment (for `subPathExpr`).
pub fn container_mounts(container: &Container, plan: &Plan, env: &[(String, String)]) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let source = plan
            .get(&vm.name)
            .ok_or_else(|| format!("container {:?} mounts unknown volume {:?}", container.name, vm.name))?;
        if !vm.mount_path.starts_with('/') {
            return Err(format!("mountPath {:?} must be absolute", vm.mount_path));
        }
        let sub_path = match (&vm.sub_path, &vm.sub_path_expr) {
            (Some(p), _) if !p.is_empty() => Some(p.clone()),
            (_, Some(expr)) if !expr.is_empty() => Some(expand(expr, |name| {
                env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            })),
            _ => None,
        };
        let mut path = source.path().to_path_buf();
        if let Some(sub) = &sub_path {
            path = path.join(safe_relative(sub)?);
        }
        mounts.push(Mount {
            source: path,
            target: vm.mount_path.clone(),
            read_only: vm.read_only.unwrap_or(false) || source.forced_read_only(),
        });
    }
    if let Some(sa) = plan.get(SA_VOLUME)
        && !mounts.iter().any(|m| same_path(&m.target, SA_DIR))
    {
        mounts.push(Mount {
            source: sa.path().to_path_buf(),
            target: SA_DIR.to_string(),
            read_only: true,
        });
    }
    mounts.sort_by_key(|m| Path::new(&m.target).components().count());
    Ok(mounts)
}

fn write_file(dir: &Path, file: &FileSpec) -> io::Result<()> {
    let path = dir.join(&file.path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.process-node-tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&file.data)?;
        f.set_permissions(std::fs::Permissions::from_mode(file.mode))?;
    }
    std::fs::rename(&tmp, &path)
}

fn with_path<T>(path: &Path, r: io::Result<T>) -> Result<T, String> {
    r.map_err(|e| format!("{}: {e}", path.display()))
}

/// Create the volumes of `plan` on disk (fresh contents for materialised volumes).
pub fn materialise(plan: &Plan) -> Result<(), String> {
    for source in plan.values() {
        match source {
            Source::Files { dir, files } => {
                match std::fs::remove_dir_all(dir) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return with_path(dir, Err(e));
                    }
                    _ => {}
                }
                with_path(dir, std::fs::create_dir_all(dir))?;
                with_path(
                    dir,
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)),
                )?;
                for file in files {
                    with_path(&dir.join(&file.path), write_file(dir, file))?;
                }
            }
            Source::Dir { dir } => with_path(dir, std::fs::create_dir_all(dir))?,
            Source::HostPath { path, kind } => {
                if path.exists() {
                    continue;
                }
                match kind {
                    HostPathKind::CreateDir => with_path(path, std::fs::create_dir_all(path))?,
                    HostPathKind::CreateFile => {
                        if let Some(parent) = path.parent() {
                            with_path(parent, std::fs::create_dir_all(parent))?;
                        }
                        with_path(path, std::fs::File::create(path).map(drop))?;
                    }
                    HostPathKind::MustExist => {
                        return Err(format!("hostPath {} does not exist", path.display()));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Rewrite changed files of materialised volumes in place (atomic rename per file), as the
/// kubelet does for updated ConfigMaps, Secrets and rotated tokens. Returns how many files
/// changed.
pub fn refresh(plan: &Plan) -> Result<usize, String> {
    let mut changed = 0;
    for source in plan.values() {
        if let Source::Files { dir, files } = source {
            for file in files {
                let path = dir.join(&file.path);
                if std::fs::read(&path).ok().as_deref() == Some(file.data.as_slice()) {
                    continue;
                }
                with_path(&path, write_file(dir, file))?;
                changed += 1;
            }
        }
    }
    Ok(changed)
}

/// Create the source of a `subPath` mount when it does not exist (as the kubelet does).
pub fn ensure_mount_sources(mounts: &[Mount]) -> Result<(), String> {
    for m in mounts {
        if !m.source.exists() {
            with_path(&m.source, std::fs::create_dir_all(&m.source))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIProjection, EmptyDirVolumeSource, HostPathVolumeSource,
        ObjectFieldSelector, PersistentVolumeClaimVolumeSource, PodSpec, ProjectedVolumeSource, SecretVolumeSource,
        ServiceAccountTokenProjection, VolumeMount, VolumeProjection,
    };

    fn host() -> Host {
        Host {
            node_name: "n".into(),
            ip: "127.0.0.1".into(),
            cpus: 2,
            memory_bytes: 1 << 30,
            api_host: "127.0.0.1".into(),
            api_port: 6443,
            path: "/bin".into(),
            reverie_bin: None,
        }
    }

    fn layout() -> Layout {
        Layout {
            pod_dir: "/state/pods/uid".into(),
            state_dir: "/state".into(),
        }
    }

    fn pod(volumes: Vec<Volume>) -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                volumes: Some(volumes),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn refs() -> Refs {
        let mut refs = Refs::default();
        refs.config_maps.insert(
            "conf".into(),
            Some(Data::from([
                ("a.yaml".to_string(), b"a: 1".to_vec()),
                ("b".to_string(), b"bee".to_vec()),
            ])),
        );
        refs.secrets.insert(
            "creds".into(),
            Some(Data::from([("token".to_string(), b"s3cret".to_vec())])),
        );
        refs.claims.insert("memory".into(), true);
        refs.claims.insert("gone".into(), false);
        refs.tokens.insert(TokenKey::default_mount(), "jwt-default".into());
        refs.tokens.insert(
            TokenKey {
                audience: None,
                expiration_seconds: 3607,
            },
            "jwt-3607".into(),
        );
        refs.ca_pem = b"-----BEGIN CERTIFICATE-----".to_vec();
        refs
    }

    fn volume(name: &str) -> Volume {
        Volume {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn plans_every_supported_kind() {
        let volumes = vec![
            Volume {
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..volume("scratch")
            },
            Volume {
                host_path: Some(HostPathVolumeSource {
                    path: "/srv/data".into(),
                    type_: Some("Directory".into()),
                }),
                ..volume("host")
            },
            Volume {
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: "memory".into(),
                    read_only: None,
                }),
                ..volume("mem")
            },
            Volume {
                config_map: Some(ConfigMapVolumeSource {
                    name: "conf".into(),
                    items: Some(vec![KeyToPath {
                        key: "a.yaml".into(),
                        path: "sub/config.yaml".into(),
                        mode: Some(0o600),
                    }]),
                    default_mode: Some(0o640),
                    optional: None,
                }),
                ..volume("cfg")
            },
            Volume {
                secret: Some(SecretVolumeSource {
                    secret_name: Some("creds".into()),
                    default_mode: Some(0o400),
                    ..Default::default()
                }),
                ..volume("sec")
            },
            Volume {
                projected: Some(ProjectedVolumeSource {
                    default_mode: Some(0o644),
                    sources: Some(vec![
                        VolumeProjection {
                            service_account_token: Some(ServiceAccountTokenProjection {
                                path: "token".into(),
                                expiration_seconds: Some(3607),
                                audience: None,
                            }),
                            ..Default::default()
                        },
                        VolumeProjection {
                            config_map: Some(ConfigMapProjection {
                                name: ROOT_CA_CONFIGMAP.into(),
                                items: Some(vec![KeyToPath {
                                    key: "ca.crt".into(),
                                    path: "ca.crt".into(),
                                    mode: None,
                                }]),
                                optional: None,
                            }),
                            ..Default::default()
                        },
                        VolumeProjection {
                            downward_api: Some(DownwardAPIProjection {
                                items: Some(vec![DownwardAPIVolumeFile {
                                    path: "namespace".into(),
                                    field_ref: Some(ObjectFieldSelector {
                                        field_path: "metadata.namespace".into(),
                                        api_version: Some("v1".into()),
                                    }),
                                    ..Default::default()
                                }]),
                            }),
                            ..Default::default()
                        },
                    ]),
                }),
                ..volume("kube-api-access")
            },
        ];
        let plan = plan(&pod(volumes), &refs(), &host(), &layout()).unwrap();
        assert_eq!(
            plan["scratch"],
            Source::Dir {
                dir: "/state/pods/uid/volumes/scratch".into()
            }
        );
        assert_eq!(
            plan["host"],
            Source::HostPath {
                path: "/srv/data".into(),
                kind: HostPathKind::MustExist
            }
        );
        assert_eq!(
            plan["mem"],
            Source::Dir {
                dir: "/state/pvc/ns/memory".into()
            }
        );
        assert_eq!(
            plan["cfg"],
            Source::Files {
                dir: "/state/pods/uid/volumes/cfg".into(),
                files: vec![FileSpec {
                    path: "sub/config.yaml".into(),
                    data: b"a: 1".to_vec(),
                    mode: 0o600
                }]
            }
        );
        let Source::Files { files, .. } = &plan["sec"] else {
            panic!("secret should be files")
        };
        assert_eq!(files[0].mode, 0o400);
        assert_eq!(files[0].data, b"s3cret");
        let Source::Files { files, .. } = &plan["kube-api-access"] else {
            panic!("projected should be files")
        };
        let names: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["token", "ca.crt", "namespace"]);
        assert_eq!(files[0].data, b"jwt-3607");
        assert_eq!(files[1].data, b"-----BEGIN CERTIFICATE-----");
        assert_eq!(files[2].data, b"ns");
        assert!(!plan.contains_key(SA_VOLUME), "automount is off in refs()");
    }

    #[test]
    fn missing_objects_fail_unless_optional() {
        let missing_cm = Volume {
            config_map: Some(ConfigMapVolumeSource {
                name: "nope".into(),
                ..Default::default()
            }),
            ..volume("v")
        };
        let err = plan(&pod(vec![missing_cm.clone()]), &refs(), &host(), &layout()).unwrap_err();
        assert!(err.contains("configmap \"nope\" not found"), "{err}");

        let mut optional = missing_cm;
        if let Some(cm) = optional.config_map.as_mut() {
            cm.optional = Some(true);
        }
        let p = plan(&pod(vec![optional]), &refs(), &host(), &layout()).unwrap();
        assert_eq!(
            p["v"],
            Source::Files {
                dir: "/state/pods/uid/volumes/v".into(),
                files: vec![]
            }
        );

        let bad_key = Volume {
            config_map: Some(ConfigMapVolumeSource {
                name: "conf".into(),
                items: Some(vec![KeyToPath {
                    key: "zzz".into(),
                    path: "z".into(),
                    mode: None,
                }]),
                ..Default::default()
            }),
            ..volume("v")
        };
        let err = plan(&pod(vec![bad_key]), &refs(), &host(), &layout()).unwrap_err();
        assert!(err.contains("has no key \"zzz\""), "{err}");

        let gone_claim = Volume {
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: "gone".into(),
                read_only: None,
            }),
            ..volume("v")
        };
        let err = plan(&pod(vec![gone_claim]), &refs(), &host(), &layout()).unwrap_err();
        assert!(err.contains("persistentvolumeclaim \"gone\" not found"), "{err}");

        let escaping = Volume {
            config_map: Some(ConfigMapVolumeSource {
                name: "conf".into(),
                items: Some(vec![KeyToPath {
                    key: "b".into(),
                    path: "../../etc/passwd".into(),
                    mode: None,
                }]),
                ..Default::default()
            }),
            ..volume("v")
        };
        assert!(plan(&pod(vec![escaping]), &refs(), &host(), &layout()).is_err());
        assert!(plan(&pod(vec![volume("nothing")]), &refs(), &host(), &layout()).is_err());
    }

    #[test]
    fn mounts_add_service_account_and_sort_parents_first() {
        let mut r = refs();
        r.automount = true;
        let volumes = vec![
            Volume {
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..volume("scratch")
            },
            Volume {
                config_map: Some(ConfigMapVolumeSource {
                    name: "conf".into(),
                    ..Default::default()
                }),
                ..volume("cfg")
            },
        ];
        let plan = plan(&pod(volumes), &r, &host(), &layout()).unwrap();
        let Source::Files { files, .. } = &plan[SA_VOLUME] else {
            panic!("sa volume")
        };
        assert_eq!(files[0].data, b"jwt-default");
        assert_eq!(files[2].data, b"ns");

        let container = Container {
            name: "c".into(),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "cfg".into(),
                    mount_path: "/data/config/app.yaml".into(),
                    sub_path: Some("a.yaml".into()),
                    ..Default::default()
                },
                VolumeMount {
                    name: "scratch".into(),
                    mount_path: "/data".into(),
                    read_only: Some(true),
                    ..Default::default()
                },
                VolumeMount {
                    name: "scratch".into(),
                    mount_path: "/work".into(),
                    sub_path_expr: Some("$(POD)/x".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let env = vec![("POD".to_string(), "p".to_string())];
        let mounts = container_mounts(&container, &plan, &env).unwrap();
        assert_eq!(
            mounts,
            vec![
                Mount {
                    source: "/state/pods/uid/volumes/scratch".into(),
                    target: "/data".into(),
                    read_only: true
                },
                Mount {
                    source: "/state/pods/uid/volumes/scratch/p/x".into(),
                    target: "/work".into(),
                    read_only: false
                },
                Mount {
                    source: "/state/pods/uid/volumes/cfg/a.yaml".into(),
                    target: "/data/config/app.yaml".into(),
                    read_only: true
                },
                Mount {
                    source: "/state/pods/uid/serviceaccount".into(),
                    target: SA_DIR.into(),
                    read_only: true
                },
            ]
        );

        let own_sa = Container {
            name: "c".into(),
            volume_mounts: Some(vec![VolumeMount {
                name: "cfg".into(),
                mount_path: SA_DIR.into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let mounts = container_mounts(&own_sa, &plan, &[]).unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].source, PathBuf::from("/state/pods/uid/volumes/cfg"));

        let unknown = Container {
            name: "c".into(),
            volume_mounts: Some(vec![VolumeMount {
                name: "missing".into(),
                mount_path: "/x".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert!(container_mounts(&unknown, &plan, &[]).is_err());
    }

    #[test]
    fn materialise_and_refresh_write_files_with_modes() {
        let dir = std::env::temp_dir().join(format!("process-node-test-{}-{}", std::process::id(), line!()));
        let mut plan = Plan::new();
        plan.insert(
            "v".into(),
            Source::Files {
                dir: dir.join("v"),
                files: vec![
                    FileSpec {
                        path: "a/b.txt".into(),
                        data: b"one".to_vec(),
                        mode: 0o600,
                    },
                    FileSpec {
                        path: "c".into(),
                        data: b"two".to_vec(),
                        mode: 0o644,
                    },
                ],
            },
        );
        plan.insert("e".into(), Source::Dir { dir: dir.join("empty") });
        materialise(&plan).unwrap();
        assert_eq!(std::fs::read(dir.join("v/a/b.txt")).unwrap(), b"one");
        let mode = std::fs::metadata(dir.join("v/a/b.txt")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(dir.join("empty").is_dir());
        assert_eq!(refresh(&plan).unwrap(), 0);
        if let Some(Source::Files { files, .. }) = plan.get_mut("v") {
            files[1].data = b"three".to_vec();
        }
        assert_eq!(refresh(&plan).unwrap(), 1);
        assert_eq!(std::fs::read(dir.join("v/c")).unwrap(), b"three");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
