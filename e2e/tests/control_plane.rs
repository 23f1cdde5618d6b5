//! The test cluster itself: CRDs install and are served, Jobs run `reverie` through the process
//! node, and pods talk to the API with their own ServiceAccount token and RBAC.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::PostParams;
use reverie::api::Agent;
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
    let agent: Agent = serde_json::from_value(json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "Agent",
        "metadata": {"name": "support"},
        "spec": {"model": "claude", "instructions": "Help customers."}
    }))
    .unwrap();
    agents.create(&PostParams::default(), &agent).await.unwrap();
    let stored = agents.get("support").await.unwrap();
    // Defaults come from the CRD schema, applied by the API server.
    let raw = serde_json::to_value(&stored).unwrap();
    assert_eq!(raw["spec"]["memory"]["maxTokens"], 16000);
    assert_eq!(raw["spec"]["dreaming"]["approval"], "Review");

    // The schema rejects what it describes as invalid.
    let bad: Agent = serde_json::from_value(json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "Agent",
        "metadata": {"name": "tiny"},
        "spec": {"model": "claude", "instructions": "x", "memory": {"maxTokens": 10}}
    }))
    .unwrap();
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
