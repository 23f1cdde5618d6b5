//! Who may approve: the ClusterRoles in `config/rbac/` and the optional ValidatingAdmissionPolicy
//! `reverie-approval`.
//!
//! The policy needs Kubernetes >= 1.30 and the local test control plane is 1.20, so it is tested
//! here the way an API server would run it: its CEL (matchConditions, variables, validations,
//! messageExpressions) is evaluated with kube-cel's Kubernetes functions over `object`,
//! `oldObject` and `request` built as JSON, following the admission order of a
//! ValidatingAdmissionPolicy (match rules → matchConditions → variables → validations, with
//! `failurePolicy: Fail` turning evaluation errors into denials).

use std::collections::HashMap;
use std::path::Path;

use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube_cel::KubeCelExt;
use kube_cel::cel::{Context, Program, Value};
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};

const REVIEWERS: &str = "reverie-reviewers";
const DREAMER: &str = "system:serviceaccount:team:reverie-dreamer";
const OPERATOR: &str = "system:serviceaccount:reverie-system:reverie-operator";
const ARGO_CD: &str = "system:serviceaccount:argocd:argocd-application-controller";
const FLUX: &str = "system:serviceaccount:flux-system:kustomize-controller";

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

fn policy() -> Policy {
    Policy::from(policy_documents().0)
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

    let policy = policy();
    assert!(policy.matches(&request("UPDATE", "ana", &[REVIEWERS])));
    assert!(!policy.matches(&status_request(OPERATOR)));
    assert!(!policy.matches(&json!({"operation": "DELETE", "resource": resource(), "subResource": ""})));
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

// ---------------------------------------------------------------------------------------------
// The policy's CEL, evaluated.

/// The parts of the policy the API server evaluates, in order.
struct Policy {
    /// `(apiGroups, operations, resources)` of each resource rule.
    rules: Vec<(Vec<String>, Vec<String>, Vec<String>)>,
    match_conditions: Vec<(String, String)>,
    variables: Vec<(String, String)>,
    /// `(expression, message, messageExpression)`.
    validations: Vec<(String, Option<String>, Option<String>)>,
}

impl From<ValidatingAdmissionPolicy> for Policy {
    fn from(policy: ValidatingAdmissionPolicy) -> Self {
        let spec = policy.spec.unwrap();
        Policy {
            rules: spec
                .match_constraints
                .and_then(|m| m.resource_rules)
                .unwrap_or_default()
                .into_iter()
                .map(|r| {
                    (
                        r.api_groups.unwrap_or_default(),
                        r.operations.unwrap_or_default(),
                        r.resources.unwrap_or_default(),
                    )
                })
                .collect(),
            match_conditions: spec
                .match_conditions
                .unwrap_or_default()
                .into_iter()
                .map(|c| (c.name, c.expression))
                .collect(),
            variables: spec
                .variables
                .unwrap_or_default()
                .into_iter()
                .map(|v| (v.name, v.expression))
                .collect(),
            validations: spec
                .validations
                .unwrap_or_default()
                .into_iter()
                .map(|v| (v.expression, v.message, v.message_expression))
                .collect(),
        }
    }
}

/// An admission decision: `Ok` admitted (with whether the policy applied), `Err` the denial.
type Admission = Result<Applied, String>;

#[derive(Debug, PartialEq)]
enum Applied {
    /// The request's resource or operation is not matched.
    NotMatched,
    /// A matchCondition is false: the policy is skipped.
    Skipped(String),
    /// Every validation passed.
    Validated,
}

fn eval(context: &Context, expression: &str) -> Result<Value, String> {
    let program = Program::compile(expression).map_err(|e| format!("compile {expression:?}: {e}"))?;
    program
        .execute(context)
        .map_err(|e| format!("evaluate {expression:?}: {e}"))
}

impl Policy {
    /// matchConstraints.resourceRules as the API server reads them: a subresource is matched
    /// only by `resource/subresource` (or `resource/*`), never by `resource` or `*`.
    fn matches(&self, request: &Json) -> bool {
        let group = request["resource"]["group"].as_str().unwrap_or_default();
        let resource = request["resource"]["resource"].as_str().unwrap_or_default();
        let sub = request["subResource"].as_str().unwrap_or_default();
        let operation = request["operation"].as_str().unwrap_or_default();
        self.rules.iter().any(|(groups, operations, resources)| {
            let has = |list: &[String], wanted: &str| list.iter().any(|x| x == wanted || x == "*");
            let resource_matches = resources.iter().any(|r| match sub {
                "" => r == resource || r == "*",
                sub => *r == format!("{resource}/{sub}") || *r == format!("{resource}/*") || r == "*/*",
            });
            has(groups, group) && has(operations, operation) && resource_matches
        })
    }

    fn admit(&self, object: &Json, old_object: Option<&Json>, request: &Json) -> Admission {
        if !self.matches(request) {
            return Ok(Applied::NotMatched);
        }
        let mut context = Context::default().with_all();
        context.add_variable("object", object).unwrap();
        context
            .add_variable("oldObject", old_object.cloned().unwrap_or(Json::Null))
            .unwrap();
        context.add_variable("request", request).unwrap();

        // Any false skips the policy; otherwise an error fails it (failurePolicy: Fail).
        let mut error = None;
        for (name, expression) in &self.match_conditions {
            match eval(&context, expression) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => return Ok(Applied::Skipped(name.clone())),
                Ok(other) => error = error.or(Some(format!("matchCondition {name}: not a bool: {other:?}"))),
                Err(e) => error = error.or(Some(format!("matchCondition {name}: {e}"))),
            }
        }
        if let Some(error) = error {
            return Err(error);
        }

        let mut variables: HashMap<String, Value> = HashMap::new();
        for (name, expression) in &self.variables {
            let mut scope = Context::default().with_all();
            scope.add_variable("object", object).unwrap();
            scope
                .add_variable("oldObject", old_object.cloned().unwrap_or(Json::Null))
                .unwrap();
            scope.add_variable("request", request).unwrap();
            scope.add_variable_from_value("variables", variables.clone());
            let value = eval(&scope, expression).map_err(|e| format!("variable {name}: {e}"))?;
            variables.insert(name.clone(), value);
        }
        context.add_variable_from_value("variables", variables);

        for (expression, message, message_expression) in &self.validations {
            match eval(&context, expression)? {
                Value::Bool(true) => {}
                Value::Bool(false) => {
                    let text = match message_expression {
                        Some(m) => match eval(&context, m)? {
                            Value::String(s) => s.to_string(),
                            other => panic!("messageExpression {m:?} gave {other:?}"),
                        },
                        None => message.clone().unwrap_or_else(|| format!("failed: {expression}")),
                    };
                    return Err(text);
                }
                other => return Err(format!("validation {expression:?} gave {other:?}")),
            }
        }
        Ok(Applied::Validated)
    }
}

fn resource() -> Json {
    json!({"group": "reverie.dev", "version": "v1alpha1", "resource": "memoryproposals"})
}

/// An admission `request` as a ValidatingAdmissionPolicy sees it.
fn request(operation: &str, username: &str, groups: &[&str]) -> Json {
    let mut groups: Vec<&str> = groups.to_vec();
    groups.push("system:authenticated");
    json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "reverie.dev", "version": "v1alpha1", "kind": "MemoryProposal"},
        "resource": resource(),
        "subResource": "",
        "name": "support-1",
        "namespace": "team",
        "operation": operation,
        "userInfo": {"username": username, "uid": "u-1", "groups": groups},
        "dryRun": false,
    })
}

fn status_request(username: &str) -> Json {
    let mut request = request("UPDATE", username, &["system:serviceaccounts"]);
    request["subResource"] = json!("status");
    request
}

fn proposal(approval: Option<Json>) -> Json {
    let mut p = json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "MemoryProposal",
        "metadata": {"name": "support-1", "namespace": "team"},
        "spec": {
            "agentRef": {"name": "support"}, "baseRevision": 3, "baseDigest": "sha256:ab", "summary": "learned",
            "changes": [{"op": "Add", "section": "lessons", "after": "Use the billing id", "evidence": {"count": 4, "sessions": ["s1"]}}],
            "stats": {"sessionsReviewed": 50}
        },
        "status": {"phase": "Pending", "digest": format!("sha256:{}", "a".repeat(64))}
    });
    if let Some(approval) = approval {
        p["spec"]["approval"] = approval;
    }
    p
}

fn approved_by(reviewer: &str) -> Json {
    proposal(Some(
        json!({"decision": "Approved", "digest": format!("sha256:{}", "a".repeat(64)), "reviewer": reviewer}),
    ))
}

/// `user` (in `groups`) writes `new` over `old` (a CREATE when there is no `old`).
fn write(policy: &Policy, user: &str, groups: &[&str], new: &Json, old: Option<&Json>) -> Admission {
    let operation = if old.is_some() { "UPDATE" } else { "CREATE" };
    policy.admit(new, old, &request(operation, user, groups))
}

#[test]
fn a_member_approving_as_themselves_is_allowed() {
    let policy = policy();
    let pending = proposal(None);
    assert_eq!(
        write(&policy, "ana", &[REVIEWERS], &approved_by("ana"), Some(&pending)),
        Ok(Applied::Validated)
    );
    // Rejecting is the same write.
    let mut rejected = approved_by("ana");
    rejected["spec"]["approval"]["decision"] = json!("Rejected");
    rejected["spec"]["approval"]["comment"] = json!("not what we do");
    assert_eq!(
        write(&policy, "ana", &[REVIEWERS, "dev"], &rejected, Some(&pending)),
        Ok(Applied::Validated)
    );
}

#[test]
fn a_non_member_may_not_approve_or_reject() {
    let policy = policy();
    let pending = proposal(None);
    let denied = write(&policy, "bob", &["dev"], &approved_by("bob"), Some(&pending)).unwrap_err();
    assert_eq!(
        denied,
        "only members of reverie-reviewers may set spec.approval of a MemoryProposal, and bob is not one"
    );
    let mut rejected = approved_by("bob");
    rejected["spec"]["approval"]["decision"] = json!("Rejected");
    assert!(write(&policy, "bob", &[], &rejected, Some(&pending)).is_err());
    // A group whose name merely contains the approvers' does not count.
    assert!(
        write(
            &policy,
            "bob",
            &["reverie-reviewers-old"],
            &approved_by("bob"),
            Some(&pending)
        )
        .is_err()
    );
    // Nor does changing an existing decision (the CRD's rule forbids that as well).
    assert!(write(&policy, "bob", &["dev"], &approved_by("bob"), Some(&approved_by("ana"))).is_err());
}

#[test]
fn a_member_may_not_approve_in_someone_elses_name() {
    let policy = policy();
    let pending = proposal(None);
    let denied = write(&policy, "ana", &[REVIEWERS], &approved_by("carol"), Some(&pending)).unwrap_err();
    assert_eq!(
        denied,
        "spec.approval.reviewer must be the user making the request: ana"
    );

    let mut anonymous = approved_by("ana");
    anonymous["spec"]["approval"]
        .as_object_mut()
        .unwrap()
        .remove("reviewer");
    assert!(write(&policy, "ana", &[REVIEWERS], &anonymous, Some(&pending)).is_err());
    // The name is compared exactly.
    assert!(write(&policy, "ana", &[REVIEWERS], &approved_by("Ana"), Some(&pending)).is_err());
}

#[test]
fn an_update_that_does_not_touch_the_approval_is_allowed() {
    let policy = policy();
    let skipped = Ok(Applied::Skipped("sets-or-changes-approval".into()));
    // A label on a pending proposal, by someone who may not approve.
    let pending = proposal(None);
    let mut labelled = pending.clone();
    labelled["metadata"]["labels"] = json!({"team": "support"});
    assert_eq!(write(&policy, "bob", &["dev"], &labelled, Some(&pending)), skipped);
    // An annotation on a decided proposal: its approval is unchanged.
    let decided = approved_by("ana");
    let mut annotated = decided.clone();
    annotated["metadata"]["annotations"] = json!({"note": "x"});
    assert_eq!(write(&policy, "bob", &["dev"], &annotated, Some(&decided)), skipped);
    // The operator's status writes are not even matched.
    let mut applied = decided.clone();
    applied["status"]["phase"] = json!("Applied");
    assert_eq!(
        policy.admit(&applied, Some(&decided), &status_request(OPERATOR)),
        Ok(Applied::NotMatched)
    );
}

#[test]
fn a_create_without_approval_is_allowed_and_a_pre_approved_one_is_checked() {
    let policy = policy();
    let skipped = Ok(Applied::Skipped("sets-or-changes-approval".into()));
    // The dream pod creates pending proposals, as do `kubectl dream edit` and `rollback`.
    let pending = proposal(None);
    assert_eq!(
        write(&policy, DREAMER, &["system:serviceaccounts"], &pending, None),
        skipped
    );
    assert_eq!(write(&policy, "bob", &["dev"], &pending, None), skipped);

    // The dream pod may not create one that is already approved, in anyone's name.
    assert!(
        write(
            &policy,
            DREAMER,
            &["system:serviceaccounts"],
            &approved_by(DREAMER),
            None
        )
        .is_err()
    );
    assert!(write(&policy, DREAMER, &["system:serviceaccounts"], &approved_by("ana"), None).is_err());
    // A reviewer may, as themselves.
    assert_eq!(
        write(&policy, "ana", &[REVIEWERS], &approved_by("ana"), None),
        Ok(Applied::Validated)
    );
    assert!(write(&policy, "ana", &[REVIEWERS], &approved_by("carol"), None).is_err());
}

#[test]
fn the_exempt_gitops_controllers_may_write_approved_proposals() {
    let policy = policy();
    let exempt = Ok(Applied::Skipped("not-an-exempt-gitops-controller".into()));
    // Approved in the merged pull request by ana, applied by the controller.
    for controller in [ARGO_CD, FLUX] {
        let groups = ["system:serviceaccounts"];
        assert_eq!(write(&policy, controller, &groups, &approved_by("ana"), None), exempt);
        assert_eq!(
            write(&policy, controller, &groups, &approved_by("ana"), Some(&proposal(None))),
            exempt
        );
    }
    // Only those identities: another ServiceAccount in the same namespace is checked.
    let other = "system:serviceaccount:argocd:argocd-server";
    assert!(write(&policy, other, &["system:serviceaccounts"], &approved_by("ana"), None).is_err());
}

#[test]
fn the_approver_group_is_configured_in_one_place() {
    let mut policy = policy();
    assert_eq!(
        policy.variables,
        [("approverGroups".to_string(), "['reverie-reviewers']".to_string())]
    );
    policy.variables[0].1 = "['memory-approvers', 'sre']".into();
    let pending = proposal(None);
    assert!(write(&policy, "ana", &[REVIEWERS], &approved_by("ana"), Some(&pending)).is_err());
    assert_eq!(
        write(&policy, "dan", &["sre"], &approved_by("dan"), Some(&pending)),
        Ok(Applied::Validated)
    );
    let denied = write(&policy, "bob", &["dev"], &approved_by("bob"), Some(&pending)).unwrap_err();
    assert!(
        denied.starts_with("only members of memory-approvers, sre may"),
        "{denied}"
    );
}

#[test]
fn a_request_without_groups_is_denied_not_an_error() {
    let policy = policy();
    let mut request = request("UPDATE", "ana", &[]);
    request["userInfo"].as_object_mut().unwrap().remove("groups");
    let denied = policy
        .admit(&approved_by("ana"), Some(&proposal(None)), &request)
        .unwrap_err();
    assert!(denied.starts_with("only members of"), "{denied}");
}

#[test]
fn every_expression_compiles() {
    let policy = policy();
    let expressions = policy
        .match_conditions
        .iter()
        .map(|(_, e)| e)
        .chain(policy.variables.iter().map(|(_, e)| e))
        .chain(
            policy
                .validations
                .iter()
                .flat_map(|(e, _, m)| std::iter::once(e).chain(m.as_ref())),
        );
    for expression in expressions {
        Program::compile(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
    }
    assert_eq!(policy.match_conditions.len(), 2);
    assert_eq!(policy.validations.len(), 2);
}
