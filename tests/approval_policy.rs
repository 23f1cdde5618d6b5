//! Who may approve: the ClusterRoles in `config/rbac/` and the ValidatingAdmissionPolicy
//! `reverie-approval`, read as files.
//!
//! What the policy admits and denies is tested where it runs, on the API server of the local
//! control plane (e2e/tests/approval_policy.rs, with impersonated users): its `authorizer` check
//! and the type-checking against the CRD schema exist only there. Here: the files parse into
//! the Kubernetes types without losing a field, the policy matches what it should, every
//! expression compiles, and the roles grant what `kubectl dream` needs and no more.

use std::path::Path;

use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube_cel::cel::Program;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

// ---------------------------------------------------------------------------------------------
// Rendering: the files parse into the Kubernetes types, and nothing in them is lost doing so.

/// The YAML documents of `config/rbac/<file>`, as JSON.
fn documents(file: &str) -> Vec<Json> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rbac").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            let value: serde_yaml::Value = serde::Deserialize::deserialize(document).unwrap();
            serde_json::to_value(value).unwrap()
        })
        .filter(|value| !value.is_null())
        .collect()
}

/// Parses `document` as `T` and checks that serialising it again gives back the same document:
/// a misspelt or misplaced field (dropped by the typed parse) fails here.
fn typed<T: DeserializeOwned + serde::Serialize>(document: &Json) -> T {
    let object: T = serde_json::from_value(document.clone()).unwrap_or_else(|e| panic!("{e}: {document}"));
    assert_eq!(
        &serde_json::to_value(&object).unwrap(),
        document,
        "a field did not survive parsing"
    );
    object
}

fn cluster_role(file: &str) -> ClusterRole {
    let docs = documents(file);
    assert_eq!(docs.len(), 1, "{file} holds one object");
    typed(&docs[0])
}

fn policy_documents() -> (ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding) {
    let docs = documents("approval-policy.yaml");
    assert_eq!(docs.len(), 2, "the policy and its binding");
    (typed(&docs[0]), typed(&docs[1]))
}

#[test]
fn every_file_renders_as_its_kubernetes_type() {
    let reviewer = cluster_role("reviewer-clusterrole.yaml");
    let viewer = cluster_role("viewer-clusterrole.yaml");
    assert_eq!(reviewer.metadata.name.as_deref(), Some("reverie-reviewer"));
    assert_eq!(viewer.metadata.name.as_deref(), Some("reverie-viewer"));

    let (policy, binding) = policy_documents();
    assert_eq!(policy.metadata.name.as_deref(), Some("reverie-approval"));
    let binding = binding.spec.unwrap();
    assert_eq!(binding.policy_name.as_deref(), Some("reverie-approval"));
    assert_eq!(binding.validation_actions.unwrap(), ["Deny"]);
    assert!(binding.param_ref.is_none(), "the policy has no parameters to look up");
    let spec = policy.spec.unwrap();
    assert_eq!(spec.failure_policy.as_deref(), Some("Fail"));
    assert!(spec.param_kind.is_none());
}

#[test]
fn the_policy_matches_proposal_writes_but_not_the_status_subresource() {
    let spec = policy_documents().0.spec.unwrap();
    let rules = spec.match_constraints.unwrap().resource_rules.unwrap();
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(rule.api_groups.as_deref().unwrap(), ["reverie.dev"]);
    assert_eq!(rule.operations.as_deref().unwrap(), ["CREATE", "UPDATE"]);
    // "'pods' means pods. 'pods/log' means the log subresource of pods. '*' means all resources,
    // but not subresources" (NamedRuleWithOperations): the operator's status writes are not seen.
    assert_eq!(rule.resources.as_deref().unwrap(), ["memoryproposals"]);
}

// ---------------------------------------------------------------------------------------------
// RBAC

/// Whether any rule of `role` grants `verb` on `resource` (`name/subresource` for a
/// subresource) in API group `group`, honouring `*`.
fn allows(role: &ClusterRole, group: &str, resource: &str, verb: &str) -> bool {
    let any = |list: &Option<Vec<String>>, wanted: &str| {
        list.as_deref()
            .unwrap_or_default()
            .iter()
            .any(|item| item == wanted || item == "*")
    };
    role.rules.as_deref().unwrap_or_default().iter().any(|rule| {
        any(&rule.api_groups, group)
            && any(&rule.resources, resource)
            && rule.verbs.iter().any(|v| v == verb || v == "*")
            && rule.resource_names.as_deref().unwrap_or_default().is_empty()
    })
}

const KINDS: [&str; 3] = ["agents", "dreamschedules", "memoryproposals"];
const WRITES: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

#[test]
fn the_viewer_reads_the_three_kinds_and_writes_nothing() {
    let viewer = cluster_role("viewer-clusterrole.yaml");
    for kind in KINDS {
        for resource in [kind.to_string(), format!("{kind}/status")] {
            for verb in ["get", "list", "watch"] {
                assert!(allows(&viewer, "reverie.dev", &resource, verb), "{verb} {resource}");
            }
            for verb in WRITES {
                assert!(!allows(&viewer, "reverie.dev", &resource, verb), "{verb} {resource}");
            }
        }
    }
    assert!(!allows(&viewer, "", "configmaps", "get"));
    let labels = viewer.metadata.labels.unwrap();
    for aggregate in ["view", "edit", "admin"] {
        let label = format!("rbac.authorization.k8s.io/aggregate-to-{aggregate}");
        assert_eq!(labels.get(&label).map(String::as_str), Some("true"), "{label}");
    }
}

#[test]
fn the_reviewer_may_approve_edit_roll_back_and_run_a_dream() {
    let reviewer = cluster_role("reviewer-clusterrole.yaml");
    for kind in KINDS {
        for resource in [kind.to_string(), format!("{kind}/status")] {
            for verb in ["get", "list", "watch"] {
                assert!(allows(&reviewer, "reverie.dev", &resource, verb), "{verb} {resource}");
            }
        }
    }
    // approve / reject (spec.approval), edit and rollback (new proposals), run (annotation)
    for verb in ["patch", "update", "create"] {
        assert!(allows(&reviewer, "reverie.dev", "memoryproposals", verb), "{verb}");
    }
    assert!(allows(&reviewer, "reverie.dev", "dreamschedules", "patch"));
    // history and rollback read the memory revisions
    assert!(allows(&reviewer, "", "configmaps", "get") && allows(&reviewer, "", "configmaps", "list"));

    // Not: deleting evidence, changing agents or schedules, writing any status (the operator's
    // record of the reviewed digest), writing ConfigMaps (memory goes through proposals).
    for kind in KINDS {
        assert!(!allows(&reviewer, "reverie.dev", kind, "delete"), "delete {kind}");
        assert!(
            !allows(&reviewer, "reverie.dev", kind, "deletecollection"),
            "deletecollection {kind}"
        );
        for verb in WRITES {
            assert!(
                !allows(&reviewer, "reverie.dev", &format!("{kind}/status"), verb),
                "{verb} {kind}/status"
            );
        }
    }
    for verb in WRITES {
        assert!(!allows(&reviewer, "reverie.dev", "agents", verb), "{verb} agents");
        assert!(!allows(&reviewer, "", "configmaps", verb), "{verb} configmaps");
    }
    assert!(!allows(&reviewer, "reverie.dev", "dreamschedules", "update"));
    assert!(!allows(&reviewer, "reverie.dev", "dreamschedules", "create"));

    // Not aggregated into the built-in roles: editing a namespace does not make one a reviewer.
    let labels = reviewer.metadata.labels.unwrap_or_default();
    assert!(
        !labels
            .keys()
            .any(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to-")),
        "{labels:?}"
    );
}

#[test]
fn the_reviewer_may_do_everything_the_viewer_may() {
    let reviewer = cluster_role("reviewer-clusterrole.yaml");
    let viewer = cluster_role("viewer-clusterrole.yaml");
    for rule in viewer.rules.unwrap() {
        for group in rule.api_groups.unwrap() {
            for resource in rule.resources.as_deref().unwrap() {
                for verb in &rule.verbs {
                    assert!(allows(&reviewer, &group, resource, verb), "{verb} {resource}");
                }
            }
        }
    }
}

#[test]
fn neither_role_touches_secrets_or_grants_wildcards_or_escalation() {
    for file in ["reviewer-clusterrole.yaml", "viewer-clusterrole.yaml"] {
        let role = cluster_role(file);
        assert!(role.aggregation_rule.is_none(), "{file}");
        for verb in ["get", "list", "watch", "create", "update", "patch", "delete"] {
            assert!(!allows(&role, "", "secrets", verb), "{file}: {verb} secrets");
        }
        for rule in role.rules.unwrap() {
            let resources = rule.resources.unwrap_or_default();
            assert!(rule.non_resource_urls.is_none(), "{file}");
            for item in rule.api_groups.iter().flatten().chain(&resources).chain(&rule.verbs) {
                assert!(!item.contains('*'), "{file}: wildcard {item}");
            }
            for verb in &rule.verbs {
                assert!(
                    !["bind", "escalate", "impersonate"].contains(&verb.as_str()),
                    "{file}: {verb}"
                );
            }
            assert!(!resources.iter().any(|r| r == "secrets"), "{file}");
        }
    }
}

#[test]
fn every_expression_compiles() {
    let spec = policy_documents().0.spec.unwrap();
    let conditions = spec.match_conditions.unwrap_or_default();
    let variables = spec.variables.unwrap_or_default();
    let validations = spec.validations.unwrap_or_default();
    let expressions = conditions
        .iter()
        .map(|c| &c.expression)
        .chain(variables.iter().map(|v| &v.expression))
        .chain(
            validations
                .iter()
                .flat_map(|v| std::iter::once(&v.expression).chain(v.message_expression.as_ref())),
        );
    for expression in expressions {
        Program::compile(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
    }
    let names: Vec<&str> = variables.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "approverGroups",
            "allowSelfApproval",
            "creator",
            "formerCreator",
            "setsApproval",
            "isApprover"
        ]
    );
    assert_eq!(conditions.len(), 1, "only the GitOps exemption skips the policy");
    assert_eq!(validations.len(), 5);
}

#[test]
fn approving_is_the_approve_verb_of_the_reviewer_role_only() {
    let reviewer = cluster_role("reviewer-clusterrole.yaml");
    let viewer = cluster_role("viewer-clusterrole.yaml");
    assert!(allows(&reviewer, "reverie.dev", "memoryproposals", "approve"));
    assert!(!allows(&viewer, "reverie.dev", "memoryproposals", "approve"));
    let spec = policy_documents().0.spec.unwrap();
    let is_approver = spec
        .variables
        .unwrap()
        .into_iter()
        .find(|v| v.name == "isApprover")
        .unwrap()
        .expression;
    assert!(
        is_approver.contains("resource('memoryproposals')") && is_approver.contains("check('approve')"),
        "{is_approver}"
    );
}
