//! The Helm chart in charts/reverie: lint, rendering with default and non-default values
//! (checked by assertions on the parsed objects), the values schema, and its CRDs kept in step
//! with crds/. Runs the Helm binary of the project tooling (scripts/install-helm.sh).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/reverie");
const NAMESPACE: &str = "reverie-system";

/// Where scripts/install-helm.sh links Helm: `$REVERIE_CACHE/bin/helm` (default
/// `~/.cache/reverie`).
fn cached_helm() -> PathBuf {
    let cache = std::env::var_os("REVERIE_CACHE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cache/reverie"));
    cache.join("bin/helm")
}

/// `$HELM`, else the project tooling's Helm, else `helm` on PATH. Never skips: without Helm
/// the test fails and says how to install it. `make unit` installs it first.
fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os("HELM").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let cached = cached_helm();
    if cached.is_file() {
        return cached;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("helm"))
        .find(|candidate| candidate.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "Helm not found ($HELM, {}, PATH): run `bash scripts/install-helm.sh` and set HELM to its output",
            cached.display()
        )
    })
}

fn run_helm(args: &[&str]) -> Output {
    let helm = helm();
    Command::new(&helm).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {}: {e} (run `bash scripts/install-helm.sh`)",
            helm.display()
        )
    })
}

/// `helm template` of the chart with `--set` values; the output on success, stderr on failure.
/// What a current API server serves that the chart asks `.Capabilities` about.
const SERVED_APIS: &[&str] = &["admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"];

fn template(set: &[&str]) -> Result<String, String> {
    template_on(SERVED_APIS, set)
}

/// `helm template` as if on a server serving `apis` (beyond Helm's built-in set).
fn template_on(apis: &[&str], set: &[&str]) -> Result<String, String> {
    // helm template assumes Kubernetes 1.20 unless told; the chart requires 1.33+.
    let mut args = vec![
        "template",
        "reverie",
        CHART,
        "--namespace",
        NAMESPACE,
        "--kube-version",
        "1.37.0",
    ];
    for api in apis {
        args.extend(["--api-versions", api]);
    }
    for value in set {
        args.extend(["--set", value]);
    }
    let output = run_helm(&args);
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).expect("helm prints UTF-8"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The rendered objects (empty documents dropped).
fn render(set: &[&str]) -> Vec<Value> {
    render_on(SERVED_APIS, set)
}

fn render_on(apis: &[&str], set: &[&str]) -> Vec<Value> {
    let text = template_on(apis, set).unwrap_or_else(|e| panic!("helm template {set:?} failed: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("helm template renders valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn kinds_of(objects: &[Value]) -> Vec<&str> {
    objects.iter().filter_map(|o| o["kind"].as_str()).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["kind"] == kind)
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one {kind} expected, kinds: {:?}",
        kinds_of(objects)
    );
    found[0]
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}, kinds: {:?}", kinds_of(objects)))
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn cargo_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Every (apiGroup, resource, verb) a role's rules grant.
fn grants(role: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for rule in role["rules"].as_array().expect("rules") {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    out.push((group.to_string(), resource.to_string(), verb.to_string()));
                }
            }
        }
    }
    out
}

fn grants_verb(grants: &[(String, String, String)], group: &str, resource: &str, verb: &str) -> bool {
    grants.iter().any(|(g, r, v)| g == group && r == resource && v == verb)
}

fn operator_container(objects: &[Value]) -> &Value {
    let deployment = one(objects, "Deployment");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn arg_after<'a>(args: &'a [&'a str], flag: &str) -> &'a str {
    let at = args
        .iter()
        .position(|a| *a == flag)
        .unwrap_or_else(|| panic!("{flag} missing: {args:?}"));
    args.get(at + 1)
        .unwrap_or_else(|| panic!("{flag} has no value: {args:?}"))
}

fn env_var<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("env {name} missing"))
}

#[test]
fn helm_lint_passes() {
    let output = run_helm(&["lint", "--strict", CHART]);
    assert!(
        output.status.success(),
        "helm lint failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn chart_version_and_app_version_follow_the_crate() {
    let text = std::fs::read_to_string(Path::new(CHART).join("Chart.yaml")).unwrap();
    let chart: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "reverie");
    assert_eq!(chart["version"], "0.1.0");
    assert_eq!(
        chart["appVersion"],
        cargo_version(),
        "Chart.yaml appVersion must be the Cargo.toml version"
    );
}

#[test]
fn chart_crds_are_byte_copies_of_the_repository_crds() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let chart = Path::new(CHART).join("crds");
    let names = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let expected = names(&repo);
    assert!(!expected.is_empty());
    assert_eq!(
        names(&chart),
        expected,
        "charts/reverie/crds must hold exactly the files of crds/"
    );
    for name in &expected {
        let a = std::fs::read(repo.join(name)).unwrap();
        let b = std::fs::read(chart.join(name)).unwrap();
        assert!(
            a == b,
            "charts/reverie/crds/{name} differs from crds/{name}: cp crds/*.yaml charts/reverie/crds/"
        );
    }
}

#[test]
fn defaults_render_the_operator_hardened() {
    let objects = render(&[]);
    let kinds = kinds_of(&objects);
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert!(!kinds.contains(&"ServiceMonitor"), "ServiceMonitor rendered by default");
    let off = render(&["approvalPolicy.enabled=false"]);
    assert!(
        kinds_of(&off)
            .iter()
            .all(|k| !k.starts_with("ValidatingAdmissionPolicy")),
        "approvalPolicy.enabled=false leaves the policy out"
    );
    let unserved = render_on(&[], &[]);
    assert!(
        kinds_of(&unserved)
            .iter()
            .all(|k| !k.starts_with("ValidatingAdmissionPolicy")),
        "left out where the server does not serve admissionregistration.k8s.io/v1 policies"
    );
    // CRDs come from crds/ (installed by Helm, never templated, never upgraded or deleted).
    assert!(!kinds.contains(&"CustomResourceDefinition"));

    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["metadata"]["namespace"], NAMESPACE);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "reverie");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");

    let container = operator_container(&objects);
    let image = format!("ghcr.io/reverie-dev/reverie:{}", cargo_version());
    assert_eq!(container["image"], image.as_str());
    assert!(
        container.get("command").is_none(),
        "the image's ENTRYPOINT runs reverie: args only"
    );
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["runAsUser"], 65532);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");

    let args = strings(&container["args"]);
    assert_eq!(args[0], "operator", "{args:?}");
    assert_eq!(arg_after(&args, "--listen"), "0.0.0.0:8080");
    assert_eq!(
        arg_after(&args, "--image"),
        image,
        "dream and apply Jobs run the operator's image"
    );
    assert_eq!(arg_after(&args, "--leader-election"), "true");
    assert_eq!(arg_after(&args, "--log-format"), "json");

    assert_eq!(
        env_var(container, "POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env_var(container, "POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(env_var(container, "REVERIE_LEASE_NAMESPACE")["value"], NAMESPACE);

    let port = &container["ports"][0];
    assert_eq!(
        (port["name"].as_str(), port["containerPort"].as_i64()),
        (Some("http"), Some(8080))
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "http");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());

    let service = one(&objects, "Service");
    assert_eq!(service["spec"]["ports"][0]["name"], "http");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );

    let pdb = one(&objects, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn operator_rbac_is_least_privilege() {
    let objects = render(&[]);
    let role = named(&objects, "ClusterRole", "reverie");
    let granted = grants(role);
    let expected = [
        ("reverie.dev", "agents", "watch"),
        ("reverie.dev", "dreamschedules", "list"),
        ("reverie.dev", "memoryproposals", "get"),
        ("reverie.dev", "memoryproposals/status", "patch"),
        ("reverie.dev", "agents/status", "patch"),
        ("reverie.dev", "dreamschedules/status", "patch"),
        ("", "configmaps", "create"),
        ("", "configmaps", "patch"),
        ("", "configmaps", "delete"),
        ("apps", "deployments", "patch"),
        ("batch", "jobs", "create"),
        ("batch", "jobs", "delete"),
        ("", "pods", "list"),
        ("", "serviceaccounts", "create"),
        ("rbac.authorization.k8s.io", "roles", "update"),
        ("rbac.authorization.k8s.io", "rolebindings", "create"),
        ("", "secrets", "get"),
        ("events.k8s.io", "events", "create"),
    ];
    for (group, resource, verb) in expected {
        assert!(
            grants_verb(&granted, group, resource, verb),
            "missing {verb} on {group}/{resource}"
        );
    }
    // What the operator grants the dreamer and the memory writer, it must hold itself.
    for (group, resource, verb) in [
        ("reverie.dev", "agents", "get"),
        ("", "configmaps", "get"),
        ("", "configmaps", "patch"),
        ("reverie.dev", "memoryproposals", "create"),
    ] {
        assert!(
            grants_verb(&granted, group, resource, verb),
            "operator cannot grant {verb} on {resource}"
        );
    }
    for (group, resource, verb) in [
        ("", "secrets", "list"),
        ("", "secrets", "watch"),
        ("", "secrets", "create"),
        ("reverie.dev", "memoryproposals", "patch"),
        ("reverie.dev", "memoryproposals", "update"),
        ("rbac.authorization.k8s.io", "roles", "escalate"),
        ("rbac.authorization.k8s.io", "roles", "bind"),
        ("rbac.authorization.k8s.io", "clusterroles", "create"),
    ] {
        assert!(
            !grants_verb(&granted, group, resource, verb),
            "must not grant {verb} on {group}/{resource}"
        );
    }
    for rbac_object in objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
    {
        for (group, resource, verb) in grants(rbac_object) {
            assert!(
                group != "*" && resource != "*" && verb != "*",
                "{} grants a wildcard: {group}/{resource} {verb}",
                rbac_object["metadata"]["name"]
            );
        }
        let rules = rbac_object["rules"].as_array().unwrap();
        assert!(rules.iter().all(|r| r.get("nonResourceURLs").is_none()));
    }

    let binding = named(&objects, "ClusterRoleBinding", "reverie");
    assert_eq!(binding["roleRef"]["name"], "reverie");
    assert_eq!(binding["subjects"][0]["name"], "reverie");
    assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);

    let lease_role = named(&objects, "Role", "reverie-leader-election");
    assert_eq!(lease_role["metadata"]["namespace"], NAMESPACE);
    let lease_grants = grants(lease_role);
    for verb in ["get", "create", "patch"] {
        assert!(
            grants_verb(&lease_grants, "coordination.k8s.io", "leases", verb),
            "leases {verb}"
        );
    }
    assert!(
        lease_grants
            .iter()
            .all(|(g, r, _)| g == "coordination.k8s.io" && r == "leases")
    );
    let lease_binding = named(&objects, "RoleBinding", "reverie-leader-election");
    assert_eq!(lease_binding["metadata"]["namespace"], NAMESPACE);
    assert_eq!(lease_binding["subjects"][0]["name"], "reverie");
}

#[test]
fn reviewer_and_viewer_roles_match_config_rbac() {
    let objects = render(&[]);
    for (name, file) in [
        ("reverie-reviewer", "reviewer-clusterrole.yaml"),
        ("reverie-viewer", "viewer-clusterrole.yaml"),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rbac").join(file);
        let source: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let rendered = named(&objects, "ClusterRole", name);
        assert_eq!(
            rendered["rules"], source["rules"],
            "{name} rules drifted from config/rbac/{file}"
        );
        for (key, value) in source["metadata"]["labels"].as_object().unwrap() {
            assert_eq!(&rendered["metadata"]["labels"][key], value, "{name} label {key}");
        }
    }
    let viewer = named(&objects, "ClusterRole", "reverie-viewer");
    assert_eq!(
        viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );

    let without = render(&["rbac.reviewerRoles=false"]);
    assert!(without.iter().all(|o| o["metadata"]["name"] != "reverie-reviewer"));
    assert!(without.iter().all(|o| o["metadata"]["name"] != "reverie-viewer"));
}

#[test]
fn non_default_values_render_what_they_ask_for() {
    let objects = render(&[
        "replicas=1,metrics.serviceMonitor.enabled=true,approvalPolicy.enabled=true,approvalPolicy.group=team-leads,image.tag=v9",
    ]);
    let kinds = kinds_of(&objects);
    assert!(
        !kinds.contains(&"PodDisruptionBudget"),
        "no PDB for a single replica: {kinds:?}"
    );

    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let container = operator_container(&objects);
    assert_eq!(container["image"], "ghcr.io/reverie-dev/reverie:v9");
    let args = strings(&container["args"]);
    assert_eq!(arg_after(&args, "--image"), "ghcr.io/reverie-dev/reverie:v9");

    let monitor = one(&objects, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let service = one(&objects, "Service");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "ServiceMonitor selects the Service by {key}"
        );
    }

    let policy = one(&objects, "ValidatingAdmissionPolicy");
    assert_eq!(policy["apiVersion"], "admissionregistration.k8s.io/v1");
    assert_eq!(policy["metadata"]["name"], "reverie-approval");
    assert_eq!(policy["spec"]["variables"][0]["name"], "approverGroups");
    assert_eq!(policy["spec"]["variables"][0]["expression"], "['team-leads']");
    assert_eq!(
        strings(&policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"]),
        ["memoryproposals"]
    );
    let exempt = policy["spec"]["matchConditions"][0]["expression"].as_str().unwrap();
    assert!(
        exempt.contains("'system:serviceaccount:flux-system:kustomize-controller'"),
        "{exempt}"
    );
    let binding = one(&objects, "ValidatingAdmissionPolicyBinding");
    assert_eq!(binding["spec"]["policyName"], "reverie-approval");
    assert_eq!(strings(&binding["spec"]["validationActions"]), ["Deny"]);
}

#[test]
fn approval_policy_rules_match_config_rbac() {
    let objects = render(&["approvalPolicy.enabled=true"]);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rbac/approval-policy.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let source: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect();
    let source_policy = find(&source, "ValidatingAdmissionPolicy").unwrap();
    let policy = one(&objects, "ValidatingAdmissionPolicy");
    for field in ["failurePolicy", "matchConstraints", "variables", "validations"] {
        assert_eq!(
            policy["spec"][field], source_policy["spec"][field],
            "spec.{field} drifted"
        );
    }
    // The exemption list is templated; the rendered default must be the same CEL list.
    let squash = |v: &Value| v.as_str().unwrap().split_whitespace().collect::<String>();
    let source_conditions = source_policy["spec"]["matchConditions"].as_array().unwrap();
    let conditions = policy["spec"]["matchConditions"].as_array().unwrap();
    assert_eq!(conditions.len(), source_conditions.len());
    for (a, b) in conditions.iter().zip(source_conditions) {
        assert_eq!(a["name"], b["name"]);
        assert_eq!(squash(&a["expression"]), squash(&b["expression"]), "{}", a["name"]);
    }

    let none = render(&[
        "approvalPolicy.enabled=true",
        "approvalPolicy.exemptServiceAccounts=null",
    ]);
    let expression = one(&none, "ValidatingAdmissionPolicy")["spec"]["matchConditions"][0]["expression"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .collect::<String>();
    assert_eq!(expression, "!(request.userInfo.usernamein[])");

    let self_approval = render(&["approvalPolicy.allowSelfApproval=true"]);
    let variables = one(&self_approval, "ValidatingAdmissionPolicy")["spec"]["variables"].clone();
    let allow = variables
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "allowSelfApproval")
        .unwrap();
    assert_eq!(allow["expression"], "true");

    let warn = render(&[
        "approvalPolicy.enabled=true",
        "approvalPolicy.validationActions={Warn,Audit}",
    ]);
    let binding = one(&warn, "ValidatingAdmissionPolicyBinding");
    assert_eq!(strings(&binding["spec"]["validationActions"]), ["Warn", "Audit"]);
}

#[test]
fn other_values_are_honoured() {
    let objects = render(&[
        "image.repository=registry.example/reverie",
        "logFormat=text",
        "podAnnotations.team=ml",
        "nodeSelector.pool=ops",
        "serviceAccount.create=false",
        "serviceAccount.name=existing",
        "podDisruptionBudget.enabled=false",
        "metrics.service.enabled=false",
    ]);
    let kinds = kinds_of(&objects);
    assert!(!kinds.contains(&"ServiceAccount"));
    assert!(!kinds.contains(&"PodDisruptionBudget"));
    assert!(!kinds.contains(&"Service"));
    let container = operator_container(&objects);
    let image = format!("registry.example/reverie:{}", cargo_version());
    assert_eq!(container["image"], image.as_str());
    let args = strings(&container["args"]);
    assert_eq!(arg_after(&args, "--image"), image);
    assert_eq!(arg_after(&args, "--log-format"), "text");
    let pod = &one(&objects, "Deployment")["spec"]["template"];
    assert_eq!(pod["metadata"]["annotations"]["team"], "ml");
    assert_eq!(pod["spec"]["nodeSelector"]["pool"], "ops");
    assert_eq!(pod["spec"]["serviceAccountName"], "existing");
    assert_eq!(
        named(&objects, "ClusterRoleBinding", "reverie")["subjects"][0]["name"],
        "existing"
    );

    let single = render(&["replicas=1", "leaderElection.enabled=false"]);
    let args = strings(&operator_container(&single)["args"]);
    assert_eq!(arg_after(&args, "--leader-election"), "false");
    assert!(
        !kinds_of(&single).contains(&"Role"),
        "no lease Role without leader election"
    );
}

#[test]
fn bad_values_fail_at_install() {
    for (set, expected) in [
        ("replicas=0", "replicas"),
        ("unknownKey=1", "unknownKey"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("image.repository=", "repository"),
        ("logFormat=yaml", "logFormat"),
        ("image.tga=v1", "tga"),
        ("approvalPolicy.enabled=yes", "enabled"),
        ("approvalPolicy.validationActions={Block}", "validationActions"),
        ("approvalPolicy.group=it's", "group"),
        ("approvalPolicy.allowSelfApproval=maybe", "allowSelfApproval"),
        ("metrics.service.port=70000", "port"),
    ] {
        let error = template(&[set]).expect_err(set);
        assert!(
            error.contains("values don't meet the specifications of the schema"),
            "{set}: not a schema error: {error}"
        );
        assert!(
            error.contains(expected),
            "{set}: the error should name {expected}: {error}"
        );
    }
    let error = template(&["replicas=2", "leaderElection.enabled=false"]).expect_err("two replicas without election");
    assert!(error.contains("leaderElection"), "{error}");
    let error = template(&["serviceAccount.create=false"]).expect_err("no ServiceAccount name");
    assert!(error.contains("serviceAccount.name"), "{error}");
}

#[test]
fn the_collector_is_rendered_on_request_writing_to_the_named_claim_with_read_only_rbac() {
    let defaults = render(&[]);
    assert!(
        defaults.iter().all(|o| o["metadata"]["name"] != "reverie-collector"),
        "off by default"
    );
    let objects = render(&[
        "collector.enabled=true",
        "collector.sessionsClaim=transcripts",
        "collector.namespace=team",
    ]);
    let deployment = named(&objects, "Deployment", "reverie-collector");
    assert_eq!(deployment["metadata"]["namespace"], "team");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = strings(&container["args"]);
    assert_eq!(arg_after(&args, "--claim"), "transcripts");
    assert_eq!(arg_after(&args, "--namespace"), "team");
    assert_eq!(arg_after(&args, "--sessions-root"), "/var/lib/reverie/sessions");
    assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"], "transcripts");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);

    // The Service has the name spec.sessions.collector's default endpoint points at.
    let service = named(&objects, "Service", "reverie-collector");
    assert_eq!(service["metadata"]["namespace"], "team");
    assert_eq!(service["spec"]["ports"][0]["port"], 4318);

    let role = named(&objects, "Role", "reverie-collector");
    let rules = grants(role);
    assert!(grants_verb(&rules, "reverie.dev", "agents", "watch"));
    assert!(
        rules
            .iter()
            .all(|(_, _, verb)| ["get", "list", "watch"].contains(&verb.as_str())),
        "read-only: {rules:?}"
    );

    let error = template(&["collector.enabled=true"]).expect_err("no claim");
    assert!(error.contains("sessionsClaim"), "{error}");
    let error = template(&[
        "collector.enabled=true",
        "collector.sessionsClaim=x",
        "collector.idle=soon",
    ])
    .expect_err("idle");
    assert!(error.contains("idle"), "{error}");
}
