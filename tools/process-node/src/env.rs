//! A container's environment, resolved the way the kubelet does it: `envFrom` first, then
//! `env` in order (each value `$(VAR)`-expanded against what is defined so far), then the
//! `KUBERNETES_SERVICE_*` variables for anything not already set. Pure: the ConfigMaps and
//! Secrets it may read are fetched beforehand into [`Refs`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::refs::Refs;

/// Facts about the host that pods observe.
#[derive(Debug, Clone)]
pub struct Host {
    pub node_name: String,
    /// The pod IP and host IP of every pod.
    pub ip: String,
    pub cpus: u64,
    pub memory_bytes: u64,
    /// Where pods reach the API server (`KUBERNETES_SERVICE_HOST` / `_PORT`).
    pub api_host: String,
    pub api_port: u16,
    /// `PATH` given to containers (the host's, since the host's binaries are what runs).
    pub path: String,
    pub reverie_bin: Option<PathBuf>,
}

impl Host {
    pub fn detect(
        node_name: &str,
        api_host: String,
        api_port: u16,
        path: String,
        reverie_bin: Option<PathBuf>,
    ) -> Host {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(2);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map(|kb| kb * 1024)
            .unwrap_or(8 << 30);
        Host {
            node_name: node_name.to_string(),
            ip: "127.0.0.1".to_string(),
            cpus,
            memory_bytes,
            api_host,
            api_port,
            path,
            reverie_bin,
        }
    }
}

/// `https://127.0.0.1:6443/` → (`127.0.0.1`, 6443). IPv6 hosts come back without brackets.
pub fn split_api_url(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => ("https", url),
    };
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit('@').next()?;
    let default_port = if scheme == "http" { 80 } else { 443 };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host.to_string(), port.parse().ok()?)),
        Some(_) => None,
        None if authority.is_empty() => None,
        None => Some((authority.to_string(), default_port)),
    }
}

/// Kubernetes `$(VAR)` expansion (a port of `third_party/forked/golang/expansion`):
/// `$(NAME)` becomes the value of NAME when `lookup` knows it and stays as written
/// otherwise, `$$` is an escaped `$`, anything else is copied.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match bytes[cursor + 1] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest[1..].find(')') {
                    Some(end) => {
                        let name = &rest[1..1 + end];
                        match lookup(name) {
                            Some(value) => out.push_str(&value),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        end + 2
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    let ch = rest.chars().next().unwrap_or_default();
                    out.push('$');
                    out.push(ch);
                    ch.len_utf8()
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    out
}

/// Is `name` something the kubelet would export from `envFrom` (a C identifier-ish name)?
fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// The service environment the kubelet gives every container for the `kubernetes` Service.
pub fn service_env(host: &Host) -> Vec<(String, String)> {
    let h = &host.api_host;
    let p = host.api_port;
    let addr = if h.contains(':') {
        format!("[{h}]:{p}")
    } else {
        format!("{h}:{p}")
    };
    vec![
        ("KUBERNETES_SERVICE_HOST".into(), h.clone()),
        ("KUBERNETES_SERVICE_PORT".into(), p.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), p.to_string()),
        ("KUBERNETES_PORT".into(), format!("tcp://{addr}")),
        (format!("KUBERNETES_PORT_{p}_TCP"), format!("tcp://{addr}")),
        (format!("KUBERNETES_PORT_{p}_TCP_PROTO"), "tcp".into()),
        (format!("KUBERNETES_PORT_{p}_TCP_PORT"), p.to_string()),
        (format!("KUBERNETES_PORT_{p}_TCP_ADDR"), h.clone()),
    ]
}

/// The variables a container gets before its own: `PATH`, `HOSTNAME` and a per-pod `HOME`
/// (so that nothing in the pod picks up the host user's `~/.kube/config`).
pub fn base_env(host: &Host, pod: &Pod, home: &str) -> Vec<(String, String)> {
    vec![
        ("PATH".into(), host.path.clone()),
        ("HOSTNAME".into(), pod.metadata.name.clone().unwrap_or_default()),
        ("HOME".into(), home.to_string()),
    ]
}

/// Resolve the environment of `container` in `pod`. The result is ordered (base, then the
/// container's variables in definition order, then the service variables) with one entry
/// per name.
pub fn resolve_env(
    pod: &Pod,
    container: &Container,
    refs: &Refs,
    host: &Host,
    base: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, String> {
    // Container-defined variables, in order of first definition.
    let mut defined: Vec<(String, String)> = Vec::new();
    let service = service_env(host);

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (kind, name, optional, data) = if let Some(cm) = &from.config_map_ref {
            (
                "configmap",
                cm.name.as_str(),
                cm.optional.unwrap_or(false),
                refs.config_maps.get(&cm.name),
            )
        } else if let Some(secret) = &from.secret_ref {
            (
                "secret",
                secret.name.as_str(),
                secret.optional.unwrap_or(false),
                refs.secrets.get(&secret.name),
            )
        } else {
            continue;
        };
        match data {
            Some(Some(data)) => {
                for (key, value) in data {
                    let var = format!("{prefix}{key}");
                    if is_env_var_name(&var) {
                        upsert(&mut defined, var, String::from_utf8_lossy(value).into_owned());
                    }
                }
            }
            _ if optional => {}
            _ => return Err(format!("{kind} {name:?} not found (envFrom)")),
        }
    }

    for var in container.env.iter().flatten() {
        let value = if let Some(value) = &var.value {
            let known = defined.clone();
            expand(value, |n| {
                known
                    .iter()
                    .find(|(k, _)| k == n)
                    .or_else(|| service.iter().find(|(k, _)| k == n))
                    .map(|(_, v)| v.clone())
            })
        } else if let Some(from) = &var.value_from {
            if let Some(sel) = &from.config_map_key_ref {
                match lookup_key(refs.config_maps.get(&sel.name), &sel.key) {
                    Ok(v) => v,
                    Err(_) if sel.optional.unwrap_or(false) => continue,
                    Err(missing) => {
                        return Err(format!("env {}: configmap {:?} {missing}", var.name, sel.name));
                    }
                }
            } else if let Some(sel) = &from.secret_key_ref {
                match lookup_key(refs.secrets.get(&sel.name), &sel.key) {
                    Ok(v) => v,
                    Err(_) if sel.optional.unwrap_or(false) => continue,
                    Err(missing) => {
                        return Err(format!("env {}: secret {:?} {missing}", var.name, sel.name));
                    }
                }
            } else if let Some(field) = &from.field_ref {
                field_value(pod, host, &field.field_path).map_err(|e| format!("env {}: {e}", var.name))?
            } else if let Some(res) = &from.resource_field_ref {
                let container_name = res.container_name.as_deref().unwrap_or(&container.name);
                let divisor = res.divisor.as_ref().map(|q| q.0.as_str());
                resource_value(pod, host, container_name, &res.resource, divisor)
                    .map_err(|e| format!("env {}: {e}", var.name))?
            } else {
                return Err(format!("env {}: unsupported valueFrom", var.name));
            }
        } else {
            String::new()
        };
        upsert(&mut defined, var.name.clone(), value);
    }

    let mut out = base;
    for (name, value) in defined {
        upsert(&mut out, name, value);
    }
    for (name, value) in service {
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, value));
        }
    }
    Ok(out)
}

fn upsert(vars: &mut Vec<(String, String)>, name: String, value: String) {
    match vars.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => vars.push((name, value)),
    }
}

fn lookup_key(data: Option<&Option<BTreeMap<String, Vec<u8>>>>, key: &str) -> Result<String, String> {
    match data {
        Some(Some(data)) => data
            .get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .ok_or_else(|| format!("has no key {key:?}")),
        _ => Err("not found".into()),
    }
}

/// Value of a downward-API `fieldRef` path.
pub fn field_value(pod: &Pod, host: &Host, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let map_value = |map: &Option<BTreeMap<String, String>>, key: &str| {
        map.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default()
    };
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| host.node_name.clone()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.podIP" | "status.podIPs" | "status.hostIP" | "status.hostIPs" => host.ip.clone(),
        _ => {
            if let Some(key) = subscript("metadata.labels['") {
                map_value(&meta.labels, &key)
            } else if let Some(key) = subscript("metadata.annotations['") {
                map_value(&meta.annotations, &key)
            } else {
                return Err(format!("unsupported fieldRef {path:?}"));
            }
        }
    })
}

/// `key="value"` lines, sorted, as the kubelet writes labels and annotations.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Value of a downward-API `resourceFieldRef`: the container's request or limit, the node's
/// capacity for an unset limit, 0 for an unset request; divided by `divisor` and rounded up.
pub fn resource_value(
    pod: &Pod,
    host: &Host,
    container_name: &str,
    resource: &str,
    divisor: Option<&str>,
) -> Result<String, String> {
    let spec = pod.spec.as_ref().ok_or("pod has no spec")?;
    let container = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == container_name)
        .ok_or_else(|| format!("no container {container_name:?}"))?;
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported resource {resource:?}"))?;
    let resources = container.resources.as_ref();
    let set = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => return Err(format!("unsupported resource {resource:?}")),
    };
    let value = match set.and_then(|m| m.get(name)) {
        Some(q) => parse_quantity(&q.0).ok_or_else(|| format!("bad quantity {:?}", q.0))?,
        None if kind == "limits" => match name {
            "cpu" => host.cpus as f64,
            "memory" => host.memory_bytes as f64,
            "ephemeral-storage" => (100u64 << 30) as f64,
            _ => return Err(format!("unsupported resource {resource:?}")),
        },
        None => 0.0,
    };
    let divisor = match divisor {
        Some(d) => parse_quantity(d).ok_or_else(|| format!("bad divisor {d:?}"))?,
        None => 1.0,
    };
    if divisor <= 0.0 {
        return Err(format!("bad divisor {divisor}"));
    }
    Ok(format!("{}", (value / divisor).ceil() as i64))
}

/// Parse a Kubernetes quantity (`500m`, `2`, `1Gi`, `128M`, `1e3`) into a number.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "Pi" => 1024.0f64.powi(5),
        "Ei" => 1024.0f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
        ResourceFieldSelector, ResourceRequirements, SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn host() -> Host {
        Host {
            node_name: "node-a".into(),
            ip: "127.0.0.1".into(),
            cpus: 4,
            memory_bytes: 1 << 30,
            api_host: "127.0.0.1".into(),
            api_port: 6443,
            path: "/usr/bin:/bin".into(),
            reverie_bin: None,
        }
    }

    fn lookup(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        assert_eq!(expand("$(A)", lookup), "alpha");
        assert_eq!(expand("x-$(A)-y", lookup), "x-alpha-y");
        assert_eq!(expand("$(A)$(A)", lookup), "alphaalpha");
        assert_eq!(expand("$(MISSING)", lookup), "$(MISSING)");
        assert_eq!(expand("$$(A)", lookup), "$(A)");
        assert_eq!(expand("$$$(A)", lookup), "$alpha");
        assert_eq!(expand("$(A", lookup), "$(A");
        assert_eq!(expand("$A", lookup), "$A");
        assert_eq!(expand("a$", lookup), "a$");
        assert_eq!(expand("$", lookup), "$");
        assert_eq!(expand("$(EMPTY)x", lookup), "x");
        assert_eq!(expand("$()", lookup), "$()");
        assert_eq!(expand("$é$(A)", lookup), "$éalpha");
        assert_eq!(expand("plain", lookup), "plain");
        assert_eq!(expand("", lookup), "");
    }

    #[test]
    fn api_url_is_split_into_host_and_port() {
        assert_eq!(
            split_api_url("https://127.0.0.1:6443"),
            Some(("127.0.0.1".into(), 6443))
        );
        assert_eq!(
            split_api_url("https://127.0.0.1:36443/"),
            Some(("127.0.0.1".into(), 36443))
        );
        assert_eq!(split_api_url("https://example.com"), Some(("example.com".into(), 443)));
        assert_eq!(split_api_url("https://[::1]:6443"), Some(("::1".into(), 6443)));
        assert_eq!(split_api_url("https://:6443"), None);
        assert_eq!(split_api_url("https://h:notaport"), None);
    }

    fn env_var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    fn pod_with(container: Container) -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u-1".into()),
                labels: Some([("app".to_string(), "x".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![container],
                service_account_name: Some("sa".into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn refs() -> Refs {
        let mut refs = Refs::default();
        refs.config_maps.insert(
            "cm".into(),
            Some(
                [
                    ("greeting".to_string(), b"hello".to_vec()),
                    ("bad name".to_string(), b"skipped".to_vec()),
                ]
                .into(),
            ),
        );
        refs.config_maps.insert("absent".into(), None);
        refs.secrets
            .insert("s".into(), Some([("pw".to_string(), b"hunter2".to_vec())].into()));
        refs
    }

    #[test]
    fn env_resolution_orders_and_expands() {
        let container = Container {
            name: "c".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "cm".into(),
                    optional: None,
                }),
                prefix: Some("CM_".into()),
                secret_ref: None,
            }]),
            env: Some(vec![
                env_var("FIRST", "one"),
                env_var("SECOND", "$(FIRST)-two-$(LATER)-$(KUBERNETES_SERVICE_PORT)"),
                env_var("LATER", "x"),
                EnvVar {
                    name: "PW".into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "s".into(),
                            key: "pw".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                    value: None,
                },
                EnvVar {
                    name: "POD".into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    }),
                    value: None,
                },
                EnvVar {
                    name: "OPT".into(),
                    value_from: Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "absent".into(),
                            key: "k".into(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    }),
                    value: None,
                },
                env_var("HOME", "/custom"),
                env_var("KUBERNETES_SERVICE_HOST", "override"),
            ]),
            ..Default::default()
        };
        let pod = pod_with(container.clone());
        let env = resolve_env(&pod, &container, &refs(), &host(), base_env(&host(), &pod, "/pod-home")).unwrap();
        let get = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("CM_greeting"), Some("hello"));
        assert_eq!(get("CM_bad name"), None);
        assert_eq!(get("SECOND"), Some("one-two-$(LATER)-6443"));
        assert_eq!(get("PW"), Some("hunter2"));
        assert_eq!(get("POD"), Some("p"));
        assert_eq!(get("OPT"), None);
        assert_eq!(get("HOME"), Some("/custom"));
        assert_eq!(get("HOSTNAME"), Some("p"));
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("override"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("6443"));
        assert_eq!(get("KUBERNETES_PORT"), Some("tcp://127.0.0.1:6443"));
        let names: Vec<_> = env.iter().map(|(k, _)| k.as_str()).collect();
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(names.len(), dedup.len(), "one entry per name: {names:?}");
        assert_eq!(&names[..3], &["PATH", "HOSTNAME", "HOME"]);
    }

    #[test]
    fn missing_references_are_clear_errors() {
        let container = Container {
            name: "c".into(),
            env: Some(vec![EnvVar {
                name: "X".into(),
                value_from: Some(EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: "absent".into(),
                        key: "k".into(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
                value: None,
            }]),
            ..Default::default()
        };
        let pod = pod_with(container.clone());
        let err = resolve_env(&pod, &container, &refs(), &host(), vec![]).unwrap_err();
        assert!(err.contains("configmap \"absent\" not found"), "{err}");

        let container = Container {
            name: "c".into(),
            env: Some(vec![EnvVar {
                name: "X".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "s".into(),
                        key: "nope".into(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
                value: None,
            }]),
            ..Default::default()
        };
        let err = resolve_env(&pod, &container, &refs(), &host(), vec![]).unwrap_err();
        assert!(err.contains("has no key \"nope\""), "{err}");
    }

    #[test]
    fn downward_fields() {
        let pod = pod_with(Container::default());
        let h = host();
        assert_eq!(field_value(&pod, &h, "metadata.namespace").unwrap(), "ns");
        assert_eq!(field_value(&pod, &h, "metadata.uid").unwrap(), "u-1");
        assert_eq!(field_value(&pod, &h, "spec.nodeName").unwrap(), "node-a");
        assert_eq!(field_value(&pod, &h, "spec.serviceAccountName").unwrap(), "sa");
        assert_eq!(field_value(&pod, &h, "status.podIP").unwrap(), "127.0.0.1");
        assert_eq!(field_value(&pod, &h, "metadata.labels['app']").unwrap(), "x");
        assert_eq!(field_value(&pod, &h, "metadata.labels").unwrap(), "app=\"x\"");
        assert!(field_value(&pod, &h, "spec.bogus").is_err());
    }

    #[test]
    fn resource_fields_and_quantities() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("1Gi"), Some(1073741824.0));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("12"), Some(12.0));
        assert_eq!(parse_quantity("x"), None);
        let container = Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                limits: Some([("memory".to_string(), Quantity("64Mi".into()))].into()),
                requests: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = pod_with(container);
        let h = host();
        assert_eq!(
            resource_value(&pod, &h, "c", "limits.memory", Some("1Mi")).unwrap(),
            "64"
        );
        assert_eq!(resource_value(&pod, &h, "c", "requests.cpu", None).unwrap(), "1");
        assert_eq!(
            resource_value(&pod, &h, "c", "requests.cpu", Some("1m")).unwrap(),
            "250"
        );
        assert_eq!(resource_value(&pod, &h, "c", "limits.cpu", None).unwrap(), "4");
        assert!(resource_value(&pod, &h, "nope", "limits.cpu", None).is_err());
        let _ = ResourceFieldSelector::default();
    }
}
