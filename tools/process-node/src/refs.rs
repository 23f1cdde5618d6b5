//! Everything a pod references outside itself (ConfigMaps, Secrets, claims, service-account
//! tokens, the cluster CA), fetched in one go before the pod starts, so that env and volume
//! resolution stay pure functions of `(pod, Refs)`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, ServiceAccount};
use kube::Api;
use kube::api::PostParams;

use super::Ctx;

/// Contents of a ConfigMap (`data` and `binaryData`) or Secret (`data`, `stringData`).
pub type Data = BTreeMap<String, Vec<u8>>;

/// Where in-cluster clients look for their credentials.
pub const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The ConfigMap kube-controller-manager publishes the cluster CA in, in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// Lifetime of the tokens process-node requests for the service-account mount.
pub const DEFAULT_TOKEN_SECONDS: i64 = 3600;

/// A service-account token request: audience (none = the API server's default) and lifetime.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenKey {
    pub audience: Option<String>,
    pub expiration_seconds: i64,
}

impl TokenKey {
    pub fn default_mount() -> TokenKey {
        TokenKey {
            audience: None,
            expiration_seconds: DEFAULT_TOKEN_SECONDS,
        }
    }
}

/// The fetched references of one pod. A `None` entry means "does not exist".
#[derive(Debug, Default, Clone)]
pub struct Refs {
    pub config_maps: BTreeMap<String, Option<Data>>,
    pub secrets: BTreeMap<String, Option<Data>>,
    /// Claim name → whether the PersistentVolumeClaim exists.
    pub claims: BTreeMap<String, bool>,
    pub tokens: BTreeMap<TokenKey, String>,
    /// PEM of the cluster CA (empty when unknown).
    pub ca_pem: Vec<u8>,
    /// Mount the generated service-account directory in containers without their own
    /// mount at [`SA_DIR`].
    pub automount: bool,
}

/// Names a pod refers to, collected from its spec.
#[derive(Debug, Default, PartialEq)]
pub struct Wanted {
    pub config_maps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
    pub claims: BTreeSet<String>,
    pub tokens: BTreeSet<TokenKey>,
    /// Some container has no volume at [`SA_DIR`] and the pod does not opt out.
    pub automount_candidate: bool,
}

pub fn wanted(pod: &Pod) -> Wanted {
    let mut w = Wanted::default();
    let Some(spec) = pod.spec.as_ref() else {
        return w;
    };
    let containers: Vec<_> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .collect();
    for c in &containers {
        for from in c.env_from.iter().flatten() {
            if let Some(cm) = &from.config_map_ref {
                w.config_maps.insert(cm.name.clone());
            }
            if let Some(s) = &from.secret_ref {
                w.secrets.insert(s.name.clone());
            }
        }
        for var in c.env.iter().flatten() {
            if let Some(from) = &var.value_from {
                if let Some(cm) = &from.config_map_key_ref {
                    w.config_maps.insert(cm.name.clone());
                }
                if let Some(s) = &from.secret_key_ref {
                    w.secrets.insert(s.name.clone());
                }
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            w.config_maps.insert(cm.name.clone());
        }
        if let Some(name) = v
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.clone())
            .filter(|n| !n.is_empty())
        {
            w.secrets.insert(name);
        }
        if let Some(claim) = &v.persistent_volume_claim {
            w.claims.insert(claim.claim_name.clone());
        }
        if let Some(projected) = &v.projected {
            for source in projected.sources.iter().flatten() {
                if let Some(cm) = &source.config_map {
                    w.config_maps.insert(cm.name.clone());
                }
                if let Some(s) = &source.secret {
                    w.secrets.insert(s.name.clone());
                }
                if let Some(t) = &source.service_account_token {
                    w.tokens.insert(TokenKey {
                        audience: t.audience.clone().filter(|a| !a.is_empty()),
                        expiration_seconds: t.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS),
                    });
                }
            }
        }
    }
    w.automount_candidate = spec.automount_service_account_token != Some(false)
        && containers.iter().any(|c| {
            !c.volume_mounts
                .iter()
                .flatten()
                .any(|m| same_path(&m.mount_path, SA_DIR))
        });
    w
}

/// Compare absolute paths ignoring trailing slashes.
pub fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

pub fn service_account_name(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

fn api_error(what: &str, e: kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{what}: {} ({})", status.message, status.code),
        other => format!("{what}: {other}"),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

pub fn config_map_data(cm: ConfigMap) -> Data {
    let mut data: Data = cm
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.unwrap_or_default() {
        data.insert(k, v.0);
    }
    data
}

pub fn secret_data(secret: Secret) -> Data {
    let mut data: Data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (k, v) in secret.string_data.unwrap_or_default() {
        data.insert(k, v.into_bytes());
    }
    data
}

/// Fetch what `pod` references. Errors are transport/API failures worth a retry, or a
/// missing service account; missing ConfigMaps/Secrets are recorded as `None` and judged
/// by the resolvers (which know about `optional`). Tokens found in `cached` are reused
/// instead of requested again.
pub async fn fetch(ctx: &Ctx, pod: &Pod, cached: &BTreeMap<TokenKey, String>) -> Result<Refs, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let want = wanted(pod);
    let mut refs = Refs::default();

    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    for name in &want.config_maps {
        let cm = cms
            .get_opt(name)
            .await
            .map_err(|e| api_error(&format!("reading configmap {name}"), e))?;
        refs.config_maps.insert(name.clone(), cm.map(config_map_data));
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    for name in &want.secrets {
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(|e| api_error(&format!("reading secret {name}"), e))?;
        refs.secrets.insert(name.clone(), secret.map(secret_data));
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    for name in &want.claims {
        let claim = claims
            .get_opt(name)
            .await
            .map_err(|e| api_error(&format!("reading persistentvolumeclaim {name}"), e))?;
        refs.claims.insert(name.clone(), claim.is_some());
    }

    refs.ca_pem = match &ctx.ca_pem {
        Some(pem) => pem.clone(),
        None => match refs.config_maps.get(ROOT_CA_CONFIGMAP) {
            Some(Some(data)) => data.get("ca.crt").cloned().unwrap_or_default(),
            _ => cms
                .get_opt(ROOT_CA_CONFIGMAP)
                .await
                .ok()
                .flatten()
                .map(config_map_data)
                .and_then(|d| d.get("ca.crt").cloned())
                .unwrap_or_default(),
        },
    };

    let mut tokens = want.tokens.clone();
    if want.automount_candidate {
        let sa_name = service_account_name(pod);
        let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns);
        let sa = sas
            .get_opt(&sa_name)
            .await
            .map_err(|e| api_error(&format!("reading serviceaccount {sa_name}"), e))?
            .ok_or_else(|| format!("serviceaccount {ns}/{sa_name} not found"))?;
        let pod_says = pod.spec.as_ref().and_then(|s| s.automount_service_account_token);
        refs.automount = pod_says.or(sa.automount_service_account_token).unwrap_or(true);
        if refs.automount {
            if refs.ca_pem.is_empty() {
                return Err(format!(
                    "no cluster CA to mount as ca.crt: set REVERIE_CA_FILE or wait for the \
                     {ROOT_CA_CONFIGMAP} ConfigMap in {ns}"
                ));
            }
            tokens.insert(TokenKey::default_mount());
        }
    }
    for key in tokens {
        let token = match cached.get(&key) {
            Some(token) => token.clone(),
            None => request_token(ctx, pod, &key).await?,
        };
        refs.tokens.insert(key, token);
    }
    Ok(refs)
}

/// A token for the pod's service account, bound to the pod (TokenRequest API). When the API
/// server cannot issue tokens (no signing key configured), the legacy token Secret of the
/// service account is used instead.
pub async fn request_token(ctx: &Ctx, pod: &Pod, key: &TokenKey) -> Result<String, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let sa_name = service_account_name(pod);
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns);
    let request = TokenRequest {
        metadata: Default::default(),
        spec: TokenRequestSpec {
            audiences: key.audience.iter().cloned().collect(),
            expiration_seconds: Some(key.expiration_seconds.max(600)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        status: None,
    };
    let what = format!("requesting a token for serviceaccount {ns}/{sa_name}");
    match sas
        .create_subresource::<_, TokenRequest>("token", &sa_name, &PostParams::default(), &request)
        .await
    {
        Ok(response) => response
            .status
            .map(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("{what}: empty TokenRequest status")),
        Err(e) if is_not_found(&e) => legacy_token(ctx, &ns, &sa_name)
            .await
            .map_err(|legacy| format!("{what}: TokenRequest not available, and {legacy}")),
        Err(e) => Err(api_error(&what, e)),
    }
}

async fn legacy_token(ctx: &Ctx, ns: &str, sa_name: &str) -> Result<String, String> {
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), ns);
    let sa = sas
        .get_opt(sa_name)
        .await
        .map_err(|e| api_error("reading the serviceaccount", e))?
        .ok_or_else(|| format!("serviceaccount {ns}/{sa_name} not found"))?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for reference in sa.secrets.iter().flatten() {
        let Some(name) = &reference.name else {
            continue;
        };
        let Ok(Some(secret)) = secrets.get_opt(name).await else {
            continue;
        };
        if secret.type_.as_deref() != Some("kubernetes.io/service-account-token") {
            continue;
        }
        if let Some(token) = secret_data(secret).remove("token") {
            return String::from_utf8(token).map_err(|_| "the token is not UTF-8".to_string());
        }
    }
    Err(format!("serviceaccount {ns}/{sa_name} has no legacy token Secret yet"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapProjection, ConfigMapVolumeSource, Container, PersistentVolumeClaimVolumeSource, PodSpec,
        ProjectedVolumeSource, SecretVolumeSource, ServiceAccountTokenProjection, Volume, VolumeMount,
        VolumeProjection,
    };

    fn pod(spec: PodSpec) -> Pod {
        Pod {
            spec: Some(spec),
            ..Default::default()
        }
    }

    #[test]
    fn wanted_collects_every_reference() {
        let spec = PodSpec {
            containers: vec![Container {
                name: "c".into(),
                volume_mounts: Some(vec![VolumeMount {
                    name: "token".into(),
                    mount_path: format!("{SA_DIR}/"),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            volumes: Some(vec![
                Volume {
                    name: "cm".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: "conf".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "s".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some("creds".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: "memory".into(),
                        read_only: None,
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "token".into(),
                    projected: Some(ProjectedVolumeSource {
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
                                    ..Default::default()
                                }),
                                ..Default::default()
                            },
                        ]),
                        default_mode: None,
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let w = wanted(&pod(spec.clone()));
        assert_eq!(
            w.config_maps,
            ["conf".to_string(), ROOT_CA_CONFIGMAP.to_string()].into()
        );
        assert_eq!(w.secrets, ["creds".to_string()].into());
        assert_eq!(w.claims, ["memory".to_string()].into());
        assert_eq!(
            w.tokens,
            [TokenKey {
                audience: None,
                expiration_seconds: 3607
            }]
            .into()
        );
        assert!(!w.automount_candidate, "the only container mounts {SA_DIR}");

        let mut no_mount = spec.clone();
        no_mount.containers[0].volume_mounts = None;
        assert!(wanted(&pod(no_mount.clone())).automount_candidate);
        no_mount.automount_service_account_token = Some(false);
        assert!(!wanted(&pod(no_mount)).automount_candidate);
    }

    #[test]
    fn service_account_defaults() {
        assert_eq!(service_account_name(&pod(PodSpec::default())), "default");
        assert_eq!(
            service_account_name(&pod(PodSpec {
                service_account_name: Some("reverie".into()),
                ..Default::default()
            })),
            "reverie"
        );
    }
}
