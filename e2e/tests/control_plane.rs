//! The test cluster itself: CRDs install and are served, Jobs run `reverie` through the process
//! node, and pods talk to the API with their own ServiceAccount token and RBAC.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Api;
use kube::api::PostParams;
use reverie::api::Agent;
use reverie_api::test_support::AgentBuilder;
use reverie_e2e::{TestNamespace, apply, client, install_crds, wait_for};
use serde_json::json;

fn job_finished(job: Option<&Job>) -> bool {
    job.and_then(|j| j.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

fn succeeded(job: &Job) -> bool {
    job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) >= 1
}

fn job(name: &str, service_account: &str, command: serde_json::Value) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "serviceAccountName": service_account,
                "containers": [{"name": "main", "image": "reverie:dev", "command": command}]
            }}
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn crds_install_and_are_served_with_defaults() {
    let client = client().await;
    let names = install_crds(&client).await.unwrap();
    assert_eq!(
        names,
        [
            "agents.reverie.dev",
            "dreamschedules.reverie.dev",
            "memoryproposals.reverie.dev"
        ]
    );

    // Discovery serves short names and the `reverie` category (`kubectl get reverie`).
    let resources = client.list_api_group_resources("reverie.dev/v1alpha1").await.unwrap();
    for (plural, short) in [("agents", "ag"), ("dreamschedules", "ds"), ("memoryproposals", "mp")] {
        let resource = resources.resources.iter().find(|r| r.name == plural).unwrap();
        assert_eq!(resource.short_names.as_deref(), Some(&[short.to_string()][..]));
        assert_eq!(resource.categories.as_deref(), Some(&["reverie".to_string()][..]));
        assert!(resources.resources.iter().any(|r| r.name == format!("{plural}/status")));
    }

    let ns = TestNamespace::create(&client, "crds").await.unwrap();
    let agents = ns.api::<Agent>();
    let agent = AgentBuilder::new("support").instructions("Help customers.").build();
    agents.create(&PostParams::default(), &agent).await.unwrap();
    let stored = agents.get("support").await.unwrap();
    // Defaults come from the CRD schema, applied by the API server.
    let raw = serde_json::to_value(&stored).unwrap();
    assert_eq!(raw["spec"]["memory"]["maxTokens"], 16000);
    assert_eq!(raw["spec"]["dreaming"]["approval"], "Review");

    // The schema rejects what it describes as invalid.
    let bad = AgentBuilder::new("tiny")
        .instructions("x")
        .spec(|spec| spec.memory.max_tokens = 10)
        .build();
    let error = agents.create(&PostParams::default(), &bad).await.unwrap_err();
    assert!(error.to_string().contains("maxTokens"), "{error}");
    ns.delete().await.unwrap();
}

#[tokio::test]
async fn a_job_running_reverie_completes_through_the_process_node() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "job").await.unwrap();
    let jobs = ns.api::<Job>();
    apply(&jobs, &job("version", "default", json!(["reverie", "--version"])))
        .await
        .unwrap();
    let done = wait_for(&jobs, "version", "the Job finishes", job_finished)
        .await
        .unwrap();
    assert!(succeeded(&done), "the Job failed: {:?}", done.status);

    apply(&jobs, &job("fails", "default", json!(["sh", "-c", "exit 3"])))
        .await
        .unwrap();
    let failed = wait_for(&jobs, "fails", "the Job finishes", job_finished)
        .await
        .unwrap();
    assert!(!succeeded(&failed));
    ns.delete().await.unwrap();
}

#[tokio::test]
async fn a_pod_uses_its_own_service_account_and_rbac() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "sa").await.unwrap();
    let service_accounts = ns.api::<k8s_openapi::api::core::v1::ServiceAccount>();
    apply(
        &service_accounts,
        &serde_json::from_value(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}))
            .unwrap(),
    )
    .await
    .unwrap();
    // The pod reads ConfigMaps of its namespace with the token mounted at the standard path.
    let call = format!(
        "curl -sf --cacert /var/run/secrets/kubernetes.io/serviceaccount/ca.crt \
         -H \"Authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)\" \
         https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/{}/configmaps >/dev/null",
        ns.name
    );
    let jobs = ns.api::<Job>();
    apply(&jobs, &job("denied", "reader", json!(["sh", "-c", call.clone()])))
        .await
        .unwrap();
    let denied = wait_for(&jobs, "denied", "the Job finishes", job_finished)
        .await
        .unwrap();
    assert!(!succeeded(&denied), "a ServiceAccount without RBAC must be forbidden");

    let role: Role = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "read-configmaps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]
    }))
    .unwrap();
    apply(&ns.api::<Role>(), &role).await.unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns.name}]
    }))
    .unwrap();
    apply(&ns.api::<RoleBinding>(), &binding).await.unwrap();
    apply(&jobs, &job("allowed", "reader", json!(["sh", "-c", call])))
        .await
        .unwrap();
    let allowed = wait_for(&jobs, "allowed", "the Job finishes", job_finished)
        .await
        .unwrap();
    assert!(
        succeeded(&allowed),
        "the bound ServiceAccount must be allowed: {:?}",
        allowed.status
    );
    ns.delete().await.unwrap();
}

/// `kubectl`: the one e2e/cluster/install-deps.sh puts first on PATH.
fn kubectl(args: &[&str]) -> std::process::Output {
    std::process::Command::new("kubectl")
        .args(args)
        .output()
        .expect("kubectl is installed by e2e/cluster/install-deps.sh")
}

/// The CEL rules in a CRD's schema, wherever they sit.
fn cel_rules(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                if key == "x-kubernetes-validations" {
                    for rule in inner.as_array().into_iter().flatten() {
                        found.push(rule["rule"].as_str().unwrap_or_default().to_string());
                    }
                } else {
                    cel_rules(inner, found);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| cel_rules(v, found)),
        _ => {}
    }
}

/// A reverie CRD renamed into `group` with distinct names (kind, plural, no short names or
/// categories), so that while it exists `kubectl get agents` and friends still mean reverie's.
fn renamed(crd: &mut serde_json::Value, group: &str) {
    let names = &mut crd["spec"]["names"];
    let kind = format!("{}Copy", names["kind"].as_str().unwrap());
    let plural = format!("{}copies", names["singular"].as_str().unwrap());
    *names = json!({"kind": kind, "listKind": format!("{kind}List"), "plural": plural,
                    "singular": kind.to_lowercase()});
    crd["spec"]["group"] = json!(group);
    crd["metadata"] = json!({"name": format!("{plural}.{group}")});
}

/// Deletes the named CRDs when dropped, so a failed test leaves none behind.
struct CrdCleanup(Vec<String>);

impl Drop for CrdCleanup {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let mut args = vec!["delete", "crd", "--ignore-not-found", "--wait=false"];
            args.extend(self.0.iter().map(String::as_str));
            kubectl(&args);
        }
    }
}

#[tokio::test]
async fn the_crds_install_with_plain_and_server_side_kubectl_apply_and_keep_their_cel_rules() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let client = client().await;
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    // Copies under a group of their own, so the CRDs are created (where the CEL cost budget is
    // checked) without touching the reverie.dev CRDs the other tests use.
    let suffix = std::process::id();
    for (mode, extra) in [("plain", None), ("server-side", Some("--server-side"))] {
        let group = format!("{mode}-{suffix}.e2e.reverie.dev");
        let dir = std::env::temp_dir().join(format!("reverie-crds-{mode}-{suffix}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut expected = Vec::new();
        let mut cleanup = CrdCleanup(Vec::new());
        for entry in std::fs::read_dir(reverie_e2e::repo_root().join("crds")).unwrap() {
            let path = entry.unwrap().path();
            let mut crd: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            renamed(&mut crd, &group);
            cel_rules(&crd["spec"], &mut expected);
            cleanup.0.push(crd["metadata"]["name"].as_str().unwrap().to_string());
            std::fs::write(
                dir.join(path.file_name().unwrap()),
                serde_yaml::to_string(&crd).unwrap(),
            )
            .unwrap();
        }
        assert!(!expected.is_empty(), "the CRDs carry CEL rules");
        let dir_arg = dir.to_str().unwrap();
        let mut args = vec!["apply", "-f", dir_arg];
        args.extend(extra);
        let applied = kubectl(&args);
        let stderr = String::from_utf8_lossy(&applied.stderr);
        assert!(applied.status.success(), "kubectl {args:?}: {stderr}");
        assert!(stderr.trim().is_empty(), "kubectl {args:?} warned: {stderr}");

        let mut served = Vec::new();
        for name in &cleanup.0 {
            let crd = reverie_e2e::within(
                reverie_e2e::TIMEOUT,
                kube::runtime::wait::await_condition(
                    crds.clone(),
                    name,
                    kube::runtime::wait::conditions::is_crd_established(),
                ),
            )
            .await
            .unwrap()
            .unwrap()
            .expect("the CRD exists");
            cel_rules(&serde_json::to_value(&crd.spec).unwrap(), &mut served);
        }
        expected.sort();
        served.sort();
        assert_eq!(served, expected, "{mode}: the API server kept every CEL rule");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
