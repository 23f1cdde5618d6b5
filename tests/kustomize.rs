//! The install manifests in `config/` and the image recipe, checked without a cluster:
//! the CRD copies match `crds/`, every sample is a valid object the operator accepts (the
//! approved proposal's digest included), the operator's Deployment and RBAC are what the docs
//! promise, and `kubectl kustomize config/default` renders everything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use reverie::api::memory_proposal::Decision;
use reverie::api::{Agent, DreamSchedule, MemoryProposal};
use reverie::controller;
use serde_json::Value;

const NAMESPACE: &str = "reverie-system";
const OPERATOR: &str = "reverie-operator";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The documents of a YAML stream, through a generic value as kubectl reads them.
fn documents(yaml: &str, what: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| {
            let value: Value =
                serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{what} is not valid YAML: {e}"));
            value
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn documents_of(path: &str) -> Vec<Value> {
    documents(&read(path), path)
}

fn typed<K: serde::de::DeserializeOwned>(value: &Value, what: &str) -> K {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{what} does not deserialise: {e}"))
}

/// Every field written in `original` is one the types know: it survives deserialising and
/// serialising again (serde ignores unknown fields, so a typo would otherwise pass silently).
fn assert_known_fields(original: &Value, round_trip: &Value, path: &str) {
    match (original, round_trip) {
        (Value::Object(written), Value::Object(known)) => {
            for (key, value) in written {
                let Some(kept) = known.get(key) else {
                    panic!("{path}.{key} is not a field of the type (typo?)");
                };
                assert_known_fields(value, kept, &format!("{path}.{key}"));
            }
        }
        (Value::Array(written), Value::Array(known)) => {
            assert_eq!(written.len(), known.len(), "{path}");
            for (index, (value, kept)) in written.iter().zip(known).enumerate() {
                assert_known_fields(value, kept, &format!("{path}[{index}]"));
            }
        }
        _ => assert_eq!(original, round_trip, "{path} changed when read by the types"),
    }
}

/// `value` with every number as a float, so `0` and `0.0` compare equal.
fn numbers_as_floats(value: &Value) -> Value {
    match value {
        Value::Number(n) => serde_json::json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), numbers_as_floats(v))).collect()),
        other => other.clone(),
    }
}

fn kind(value: &Value) -> &str {
    value["kind"].as_str().unwrap_or_default()
}

fn name(value: &Value) -> &str {
    value["metadata"]["name"].as_str().unwrap_or_default()
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------------
// config/crd

#[test]
fn the_crd_copies_are_byte_for_byte_crds() {
    let generated = yaml_files("crds");
    assert_eq!(generated.len(), 3, "crds/ holds the three CRDs");
    for path in &generated {
        let name = file_name(path);
        let copy = root().join("config/crd").join(&name);
        let expected = std::fs::read(path).unwrap();
        let actual = std::fs::read(&copy).unwrap_or_else(|_| panic!("config/crd/{name} is missing"));
        assert!(
            expected == actual,
            "config/crd/{name} differs from crds/{name}: run `cp crds/*.yaml config/crd/`"
        );
    }
    let copies: Vec<String> = yaml_files("config/crd")
        .iter()
        .map(|p| file_name(p))
        .filter(|n| n != "kustomization.yaml")
        .collect();
    let expected: Vec<String> = generated.iter().map(|p| file_name(p)).collect();
    assert_eq!(copies, expected, "config/crd holds exactly the CRDs of crds/");
    let kustomization = &documents_of("config/crd/kustomization.yaml")[0];
    let resources: Vec<&str> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(resources, expected, "config/crd/kustomization.yaml lists every CRD");
}

// ---------------------------------------------------------------------------------------------
// config/samples

struct Samples {
    agents: Vec<Agent>,
    schedules: Vec<DreamSchedule>,
    proposals: Vec<MemoryProposal>,
    claims: Vec<PersistentVolumeClaim>,
}

fn samples() -> Samples {
    let mut samples = Samples {
        agents: Vec::new(),
        schedules: Vec::new(),
        proposals: Vec::new(),
        claims: Vec::new(),
    };
    let files = yaml_files("config/samples");
    assert!(!files.is_empty(), "config/samples holds samples");
    for path in files {
        let file = format!("config/samples/{}", file_name(&path));
        for value in documents_of(&file) {
            let what = format!("{file}: {} {}", kind(&value), name(&value));
            assert!(
                value["metadata"].get("namespace").is_none(),
                "{what}: samples carry no namespace (they go where `kubectl apply -n` says)"
            );
            match (value["apiVersion"].as_str().unwrap_or_default(), kind(&value)) {
                ("reverie.dev/v1alpha1", "Agent") => {
                    let agent: Agent = typed(&value, &what);
                    assert_known_fields(&value, &serde_json::to_value(&agent).unwrap(), &what);
                    samples.agents.push(agent);
                }
                ("reverie.dev/v1alpha1", "DreamSchedule") => {
                    let schedule: DreamSchedule = typed(&value, &what);
                    assert_known_fields(&value, &serde_json::to_value(&schedule).unwrap(), &what);
                    samples.schedules.push(schedule);
                }
                ("reverie.dev/v1alpha1", "MemoryProposal") => {
                    let proposal: MemoryProposal = typed(&value, &what);
                    assert_known_fields(&value, &serde_json::to_value(&proposal).unwrap(), &what);
                    samples.proposals.push(proposal);
                }
                ("v1", "PersistentVolumeClaim") => {
                    let claim: PersistentVolumeClaim = typed(&value, &what);
                    assert_known_fields(&value, &serde_json::to_value(&claim).unwrap(), &what);
                    samples.claims.push(claim);
                }
                (api_version, kind) => panic!("{what}: unexpected {api_version} {kind} in config/samples"),
            }
        }
    }
    samples
}

fn problems(found: Vec<reverie::api::rules::Problem>) -> Vec<String> {
    found.iter().map(|p| format!("{p:?}")).collect()
}

#[test]
fn the_sample_agent_has_a_runtime_sessions_on_a_pvc_and_review() {
    let samples = samples();
    let [agent] = samples.agents.as_slice() else {
        panic!("one sample Agent, found {}", samples.agents.len())
    };
    let name = agent.metadata.name.as_deref().unwrap();
    assert_eq!(name, "support");
    assert!(
        reverie::api::rules::agent::validate(name, &agent.spec).is_empty(),
        "{:?}",
        problems(reverie::api::rules::agent::validate(name, &agent.spec))
    );
    let runtime = agent.spec.runtime.as_ref().expect("the sample agent has a runtime");
    assert!(!runtime.image.is_empty());
    let sessions = agent.spec.sessions.as_ref().expect("the sample agent has sessions");
    let claim = &sessions
        .persistent_volume_claim
        .as_ref()
        .expect("sessions on a PVC")
        .claim_name;
    assert!(
        samples.claims.iter().any(|c| c.metadata.name.as_ref() == Some(claim)),
        "the sessions PVC {claim} is among the samples"
    );
    assert_eq!(agent.spec.dreaming.approval, reverie::api::agent::ApprovalMode::Review);
}

#[test]
fn the_sample_schedule_runs_nightly_in_paris_for_the_sample_agent() {
    let samples = samples();
    let [schedule] = samples.schedules.as_slice() else {
        panic!("one sample DreamSchedule, found {}", samples.schedules.len())
    };
    let problems = problems(controller::dream_schedule::validate::problems(&schedule.spec));
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(schedule.spec.schedule, "0 3 * * *");
    assert_eq!(schedule.spec.time_zone, "Europe/Paris");
    assert_eq!(schedule.spec.agents.names, ["support"]);
}

#[test]
fn the_sample_proposals_are_valid_one_pending_one_approved() {
    let samples = samples();
    let agent = &samples.agents[0];
    assert_eq!(samples.proposals.len(), 2, "a pending and an approved MemoryProposal");
    for proposal in &samples.proposals {
        let name = proposal.metadata.name.as_deref().unwrap();
        assert_eq!(
            proposal.spec.agent_ref.name,
            agent.metadata.name.clone().unwrap(),
            "{name}"
        );
        let problems = problems(reverie::api::rules::memory_proposal::validate(
            &proposal.spec,
            &agent.spec.memory.protected_sections,
        ));
        assert!(problems.is_empty(), "{name}: {problems:?}");
    }
    let pending: Vec<_> = samples.proposals.iter().filter(|p| p.spec.approval.is_none()).collect();
    assert_eq!(pending.len(), 1, "one pending proposal");
    let approved: Vec<_> = samples
        .proposals
        .iter()
        .filter(|p| {
            p.spec
                .approval
                .as_ref()
                .is_some_and(|a| a.decision == Decision::Approved)
        })
        .collect();
    assert_eq!(approved.len(), 1, "one approved proposal");
}

#[test]
fn the_approved_sample_names_the_digest_of_its_content() {
    let samples = samples();
    for proposal in &samples.proposals {
        let Some(approval) = &proposal.spec.approval else {
            continue;
        };
        let expected = proposal.spec.content_digest();
        assert_eq!(
            approval.digest.as_deref(),
            Some(expected.as_str()),
            "{}: spec.approval.digest must be the content digest {expected}, or the operator reports \
             ApprovalDigestMismatch",
            proposal.metadata.name.as_deref().unwrap_or_default()
        );
        assert!(approval.reviewer.is_some(), "an approval names its reviewer");
    }
}

// ---------------------------------------------------------------------------------------------
// config/manager

fn deployment() -> Deployment {
    let docs = documents_of("config/manager/manager.yaml");
    let value = docs
        .iter()
        .find(|d| kind(d) == "Deployment")
        .expect("config/manager/manager.yaml holds the Deployment");
    let deployment: Deployment = typed(value, "the operator Deployment");
    assert_known_fields(value, &serde_json::to_value(&deployment).unwrap(), "Deployment");
    deployment
}

fn operator_container(deployment: &Deployment) -> Container {
    let pod = deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let [container] = pod.containers.as_slice() else {
        panic!("one container")
    };
    container.clone()
}

#[test]
fn the_operator_runs_the_crate_version_with_leader_election() {
    let deployment = deployment();
    assert_eq!(deployment.metadata.name.as_deref(), Some(OPERATOR));
    assert_eq!(deployment.metadata.namespace.as_deref(), Some(NAMESPACE));
    let spec = deployment.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(OPERATOR));
    let container = operator_container(&deployment);
    let image = container.image.clone().unwrap();
    assert_eq!(image, controller::DEFAULT_IMAGE, "the image is the crate version's");
    assert_eq!(
        image,
        format!("ghcr.io/reverie-dev/reverie:{}", env!("CARGO_PKG_VERSION"))
    );

    // The arguments are ones the binary accepts, and mean what they should.
    let args = container.args.clone().unwrap();
    let cli = reverie::cli::Cli::try_parse_from(std::iter::once("reverie".to_string()).chain(args))
        .unwrap_or_else(|e| panic!("the Deployment's args are rejected: {e}"));
    assert_eq!(cli.log_format, reverie::telemetry::LogFormat::Json);
    let reverie::cli::Command::Operator(operator) = cli.command else {
        panic!("the Deployment runs `reverie operator`")
    };
    assert_eq!(operator.image, image, "Jobs run the operator's own image");
    assert_eq!(operator.listen.to_string(), "0.0.0.0:8080");
    assert!(operator.leader_election, "two replicas need leader election");

    let env: BTreeMap<String, String> = container
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| {
            let path = e.value_from.and_then(|v| v.field_ref).map(|f| f.field_path);
            (e.name, path.unwrap_or_default())
        })
        .collect();
    assert_eq!(env.get("POD_NAME").map(String::as_str), Some("metadata.name"));
    assert_eq!(env.get("POD_NAMESPACE").map(String::as_str), Some("metadata.namespace"));
}

#[test]
fn the_operator_probes_health_and_readiness_on_its_port() {
    let container = operator_container(&deployment());
    let ports = container.ports.clone().unwrap();
    assert!(
        ports
            .iter()
            .any(|p| p.container_port == 8080 && p.name.as_deref() == Some("http"))
    );
    for (probe, path) in [
        (container.liveness_probe.clone(), "/healthz"),
        (container.readiness_probe.clone(), "/readyz"),
    ] {
        let get = probe
            .and_then(|p| p.http_get)
            .unwrap_or_else(|| panic!("{path}: an HTTP probe"));
        assert_eq!(get.path.as_deref(), Some(path));
        let port = serde_json::to_value(&get.port).unwrap();
        assert!(port == "http" || port == 8080, "{path} probes port {port}");
    }
    let resources = container.resources.expect("resources are set");
    assert!(
        resources
            .requests
            .is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory"))
    );
    assert!(resources.limits.is_some_and(|l| l.contains_key("memory")));
}

#[test]
fn the_operator_runs_hardened() {
    let deployment = deployment();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let pod_context = pod.security_context.expect("a pod security context");
    assert_eq!(pod_context.run_as_non_root, Some(true));
    assert_eq!(
        pod_context.seccomp_profile.map(|s| s.type_).as_deref(),
        Some("RuntimeDefault")
    );
    let container = pod.containers[0].clone();
    let context = container.security_context.expect("a container security context");
    assert_eq!(context.run_as_non_root, Some(true));
    assert_eq!(context.run_as_user, Some(65532));
    assert_eq!(context.read_only_root_filesystem, Some(true));
    assert_eq!(context.allow_privilege_escalation, Some(false));
    assert_eq!(context.privileged, None);
    let capabilities = context.capabilities.expect("capabilities are set");
    assert_eq!(capabilities.drop, Some(vec!["ALL".to_string()]));
    assert_eq!(capabilities.add, None);
    assert_eq!(
        context.seccomp_profile.map(|s| s.type_).as_deref(),
        Some("RuntimeDefault")
    );
}

#[test]
fn the_metrics_service_selects_the_operator_pods() {
    let deployment = deployment();
    let docs = documents_of("config/manager/manager.yaml");
    let value = docs.iter().find(|d| kind(d) == "Service").expect("a metrics Service");
    let service: Service = typed(value, "the metrics Service");
    let spec = service.spec.unwrap();
    let selector = spec.selector.unwrap();
    let labels = deployment.spec.unwrap().template.metadata.unwrap().labels.unwrap();
    for (key, value) in &selector {
        assert_eq!(labels.get(key), Some(value), "the Service selects on {key}");
    }
    let ports = spec.ports.unwrap();
    assert!(ports.iter().any(|p| p.port == 8080));
}

// ---------------------------------------------------------------------------------------------
// config/rbac

fn rule_map(rules: &[PolicyRule]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rule in rules {
        for group in rule.api_groups.clone().unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                let verbs = map.entry(format!("{group}/{resource}")).or_default();
                verbs.extend(rule.verbs.iter().cloned());
                verbs.sort();
                verbs.dedup();
            }
        }
    }
    map
}

fn operator_rbac() -> (ClusterRole, ClusterRoleBinding) {
    let docs = documents_of("config/rbac/operator-clusterrole.yaml");
    let role = docs.iter().find(|d| kind(d) == "ClusterRole").expect("the ClusterRole");
    let binding = docs
        .iter()
        .find(|d| kind(d) == "ClusterRoleBinding")
        .expect("its binding");
    (typed(role, "ClusterRole"), typed(binding, "ClusterRoleBinding"))
}

#[test]
fn the_operator_cluster_role_grants_what_the_docs_list_and_no_more() {
    let (role, binding) = operator_rbac();
    assert_eq!(role.metadata.name.as_deref(), Some(OPERATOR));
    let rules = role.rules.clone().unwrap();
    for rule in &rules {
        let all = rule
            .api_groups
            .iter()
            .flatten()
            .chain(rule.resources.iter().flatten())
            .chain(&rule.verbs);
        for item in all {
            assert!(!item.contains('*'), "no wildcards: {rule:?}");
        }
        assert!(
            rule.non_resource_urls.is_none() && rule.resource_names.is_none(),
            "{rule:?}"
        );
    }
    let expected: BTreeMap<String, Vec<String>> = [
        ("reverie.dev/agents", "get list watch"),
        ("reverie.dev/dreamschedules", "get list watch"),
        ("reverie.dev/memoryproposals", "create get list watch"),
        ("reverie.dev/agents/status", "patch"),
        ("reverie.dev/dreamschedules/status", "patch"),
        ("reverie.dev/memoryproposals/status", "patch"),
        ("/configmaps", "create delete get list patch watch"),
        ("apps/deployments", "create get list patch watch"),
        ("batch/jobs", "create delete get list watch"),
        ("/pods", "list"),
        ("/serviceaccounts", "create get"),
        ("rbac.authorization.k8s.io/roles", "create get update"),
        ("rbac.authorization.k8s.io/rolebindings", "create get"),
        ("/secrets", "get"),
        ("events.k8s.io/events", "create patch"),
    ]
    .into_iter()
    .map(|(resource, verbs)| (resource.to_string(), verbs.split(' ').map(String::from).collect()))
    .collect();
    assert_eq!(rule_map(&rules), expected);
    // Never escalate/bind/impersonate; never read Secrets in bulk.
    let verbs: Vec<&String> = rules.iter().flat_map(|r| &r.verbs).collect();
    for forbidden in ["escalate", "bind", "impersonate"] {
        assert!(!verbs.iter().any(|v| *v == forbidden), "{forbidden}");
    }

    assert_eq!(binding.role_ref.name, OPERATOR);
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    let subjects = binding.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, OPERATOR);
    assert_eq!(subjects[0].namespace.as_deref(), Some(NAMESPACE));
}

#[test]
fn leader_election_is_a_namespaced_role_on_leases() {
    let docs = documents_of("config/rbac/leader-election-role.yaml");
    let role: Role = typed(docs.iter().find(|d| kind(d) == "Role").unwrap(), "Role");
    let binding: RoleBinding = typed(docs.iter().find(|d| kind(d) == "RoleBinding").unwrap(), "RoleBinding");
    assert_eq!(role.metadata.namespace.as_deref(), Some(NAMESPACE));
    let expected = BTreeMap::from([(
        "coordination.k8s.io/leases".to_string(),
        vec!["create".to_string(), "get".to_string(), "patch".to_string()],
    )]);
    assert_eq!(rule_map(&role.rules.unwrap()), expected);
    assert_eq!(binding.role_ref.name, role.metadata.name.unwrap());
    assert_eq!(binding.subjects.unwrap()[0].name, OPERATOR);
}

#[test]
fn the_rbac_kustomization_installs_the_roles_and_the_approval_policy() {
    let kustomization = &documents_of("config/rbac/kustomization.yaml")[0];
    let resources: Vec<&str> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for file in [
        "reviewer-clusterrole.yaml",
        "viewer-clusterrole.yaml",
        "operator-clusterrole.yaml",
        "approval-policy.yaml",
    ] {
        assert!(resources.contains(&file), "{file}");
    }
}

// ---------------------------------------------------------------------------------------------
// config/default, rendered by kubectl's kustomize

fn kubectl() -> String {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_string());
    match Command::new(&kubectl).args(["version", "--client"]).output() {
        Ok(output) if output.status.success() => kubectl,
        Ok(output) => panic!(
            "`{kubectl} version --client` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => panic!(
            "this test renders config/default with `kubectl kustomize` and needs kubectl on PATH \
             (or KUBECTL=/path/to/kubectl); e2e/cluster/install-deps.sh installs it: {e}"
        ),
    }
}

#[test]
fn config_default_renders_everything_into_reverie_system() {
    let kubectl = kubectl();
    let output = Command::new(&kubectl)
        .args(["kustomize", "config/default"])
        .current_dir(root())
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl kustomize config/default failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rendered = documents(
        &String::from_utf8(output.stdout).unwrap(),
        "the rendered config/default",
    );
    let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for object in &rendered {
        kinds
            .entry(kind(object).to_string())
            .or_default()
            .push(name(object).to_string());
    }
    for names in kinds.values_mut() {
        names.sort();
    }
    let expected: BTreeMap<String, Vec<String>> = [
        (
            "CustomResourceDefinition",
            vec![
                "agents.reverie.dev",
                "dreamschedules.reverie.dev",
                "memoryproposals.reverie.dev",
            ],
        ),
        ("Namespace", vec![NAMESPACE]),
        ("ServiceAccount", vec![OPERATOR]),
        ("ClusterRole", vec![OPERATOR, "reverie-reviewer", "reverie-viewer"]),
        ("ClusterRoleBinding", vec![OPERATOR]),
        ("Role", vec!["reverie-operator-leader-election"]),
        ("RoleBinding", vec!["reverie-operator-leader-election"]),
        ("Deployment", vec![OPERATOR]),
        ("Service", vec!["reverie-operator-metrics"]),
        ("ValidatingAdmissionPolicy", vec!["reverie-approval"]),
        ("ValidatingAdmissionPolicyBinding", vec!["reverie-approval"]),
    ]
    .into_iter()
    .map(|(kind, names)| (kind.to_string(), names.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(kinds, expected);

    let cluster_scoped = [
        "CustomResourceDefinition",
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    // kustomize's built-in schema does not know these kinds are cluster-scoped and stamps the
    // namespace on them; the API server drops it (e2e/tests/kustomize.rs applies the result).
    let stamped_anyway = ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"];
    for object in &rendered {
        let namespace = object["metadata"]["namespace"].as_str();
        if stamped_anyway.contains(&kind(object)) {
            continue;
        }
        if cluster_scoped.contains(&kind(object)) {
            assert_eq!(namespace, None, "{} {}", kind(object), name(object));
        } else {
            assert_eq!(namespace, Some(NAMESPACE), "{} {}", kind(object), name(object));
        }
    }
    // The CRDs are rendered unchanged (kustomize writes `0.0` as `0`: numbers compare as numbers).
    for crd in rendered.iter().filter(|o| kind(o) == "CustomResourceDefinition") {
        let file = format!("crds/{}.yaml", name(crd));
        assert!(
            numbers_as_floats(crd) == numbers_as_floats(&documents_of(&file)[0]),
            "kustomize changed {file}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

/// The instructions of the final stage (after the last FROM), continuation lines joined.
fn final_stage(dockerfile: &str) -> Vec<String> {
    let joined = dockerfile.replace("\\\n", " ");
    let instructions: Vec<String> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    let last_from = instructions
        .iter()
        .rposition(|l| l.to_uppercase().starts_with("FROM "))
        .expect("a FROM");
    instructions[last_from..].to_vec()
}

#[test]
fn the_image_runs_reverie_as_a_non_root_user() {
    let dockerfile = read("Dockerfile");
    let stage = final_stage(&dockerfile);
    let users: Vec<&str> = stage
        .iter()
        .filter_map(|l| l.strip_prefix("USER "))
        .map(str::trim)
        .collect();
    let user = users.last().expect("the final stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "0" && uid != "root" && !uid.is_empty(), "USER {user}");
    assert_eq!(uid, "65532", "the uid the Deployment's runAsUser names");

    let entrypoint = stage
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint).expect("ENTRYPOINT in exec (JSON) form");
    assert_eq!(entrypoint, ["/usr/local/bin/reverie"]);

    for binary in ["reverie", "kubectl-dream"] {
        assert!(
            stage
                .iter()
                .any(|l| l.starts_with("COPY ") && l.contains(&format!("/usr/local/bin/{binary}"))),
            "the image holds {binary}"
        );
    }
    // The dream Job pushes to Git for GitOps output (docs/gitops.md).
    assert!(
        stage.iter().any(|l| l.starts_with("RUN ") && l.contains(" git ")),
        "the image holds git"
    );
    assert!(dockerfile.contains("--locked"), "the build uses Cargo.lock");

    let ignored: Vec<String> = read(".dockerignore").lines().map(|l| l.trim().to_string()).collect();
    for entry in ["target", ".git"] {
        assert!(
            ignored
                .iter()
                .any(|l| l.trim_start_matches('/').trim_end_matches('/') == entry),
            ".dockerignore excludes {entry}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// config/collector

#[test]
fn the_collector_runs_a_command_the_binary_takes_with_read_only_rbac_and_its_claim_mounted() {
    let docs = documents_of("config/collector/collector.yaml");
    let value = docs.iter().find(|d| kind(d) == "Deployment").expect("a Deployment");
    let deployment: Deployment = typed(value, "the collector Deployment");
    assert_known_fields(value, &serde_json::to_value(&deployment).unwrap(), "Deployment");
    let spec = deployment.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(1), "one writer per session file");
    let pod = spec.template.spec.as_ref().unwrap();
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some(controller::DEFAULT_IMAGE));

    let args = container.args.clone().unwrap();
    let cli = reverie::cli::Cli::try_parse_from(std::iter::once("reverie".to_string()).chain(args))
        .unwrap_or_else(|e| panic!("the collector's args are rejected: {e}"));
    let reverie::cli::Command::Collect(collect) = cli.command else {
        panic!("the Deployment runs `reverie collect`")
    };
    let mount = container
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "sessions")
        .unwrap();
    assert_eq!(Path::new(&mount.mount_path), collect.sessions_root);
    let volume = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "sessions")
        .unwrap();
    assert_eq!(
        volume.persistent_volume_claim.as_ref().map(|c| c.claim_name.as_str()),
        collect.claim.as_deref(),
        "the claim it serves is the claim it mounts"
    );

    let service: Service = typed(
        docs.iter().find(|d| kind(d) == "Service").expect("a Service"),
        "the collector Service",
    );
    assert_eq!(service.metadata.name.as_deref(), Some("reverie-collector"));
    assert_eq!(service.spec.unwrap().ports.unwrap()[0].port, 4318);

    let role: Role = typed(
        docs.iter().find(|d| kind(d) == "Role").expect("a Role"),
        "the collector Role",
    );
    let rules = rule_map(role.rules.as_deref().unwrap_or_default());
    assert_eq!(
        rules,
        BTreeMap::from([(
            "reverie.dev/agents".to_string(),
            vec!["get".into(), "list".into(), "watch".into()]
        )])
    );
    let binding: RoleBinding = typed(docs.iter().find(|d| kind(d) == "RoleBinding").unwrap(), "binding");
    assert_eq!(binding.subjects.unwrap()[0].name, "reverie-collector");
}
