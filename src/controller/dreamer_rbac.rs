//! The dream pods' identity: ServiceAccount `reverie-dreamer` in the schedule's namespace, and
//! per schedule a Role and RoleBinding that let it read exactly the selected Agents and the
//! target's memory ConfigMap, and create MemoryProposals. Nothing else: no Secrets, no other
//! ConfigMaps, no other namespace.
//!
//! The ServiceAccount is shared by the schedules of a namespace and carries no owner; the Role
//! and RoleBinding are owned by their schedule, so deleting the schedule revokes its grants.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

use super::dream_job::managed_labels;
use super::{Context, Result};
use crate::api::dream_job::DREAMER_SERVICE_ACCOUNT;
use crate::api::{Agent, DreamSchedule};
use crate::kube_ext::create_unless_exists;
use crate::naming::bounded_name;
use crate::store::configmap::current_name;

/// Name of a schedule's Role and RoleBinding.
pub fn grant_name(schedule: &str) -> String {
    bounded_name(&[schedule, "dreamer"])
}

/// The least-privilege rules for passes over `agents` proposing to `target`'s memory.
pub fn rules(agents: &[Agent], target: Option<&Agent>) -> Vec<PolicyRule> {
    let mut agent_names: Vec<String> = agents.iter().chain(target).map(ResourceExt::name_any).collect();
    agent_names.sort();
    agent_names.dedup();
    let memory_of: Vec<&Agent> = match target {
        Some(target) => vec![target],
        None => agents.iter().collect(),
    };
    let mut memories: Vec<String> = memory_of.iter().map(|a| current_name(&a.name_any())).collect();
    memories.sort();
    vec![
        PolicyRule {
            api_groups: Some(vec!["reverie.dev".into()]),
            resources: Some(vec!["agents".into()]),
            resource_names: Some(agent_names),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        },
        PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            resource_names: Some(memories),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        },
        PolicyRule {
            api_groups: Some(vec!["reverie.dev".into()]),
            resources: Some(vec!["memoryproposals".into()]),
            verbs: vec!["create".into()],
            ..PolicyRule::default()
        },
    ]
}

/// Makes the dreamer's ServiceAccount, Role and RoleBinding match the schedule's selection.
/// Reads first and writes only what differs. A schedule that names its own ServiceAccount
/// manages its permissions itself.
pub async fn ensure(ctx: &Context, schedule: &DreamSchedule, agents: &[Agent], target: Option<&Agent>) -> Result<()> {
    let uses_own_account = schedule
        .spec
        .job_template
        .as_ref()
        .and_then(|t| t.service_account_name.as_ref())
        .is_some();
    if uses_own_account {
        return Ok(());
    }
    let namespace = schedule.namespace().unwrap_or_default();
    let name = schedule.name_any();
    let grant = grant_name(&name);
    let meta = |object_name: String, owned: bool| ObjectMeta {
        name: Some(object_name),
        namespace: Some(namespace.clone()),
        labels: Some(managed_labels(&name)),
        owner_references: owned.then(|| vec![owner(schedule)]),
        ..ObjectMeta::default()
    };

    let accounts = Api::<ServiceAccount>::namespaced(ctx.client.clone(), &namespace);
    if accounts.get_opt(DREAMER_SERVICE_ACCOUNT).await?.is_none() {
        let mut account = ServiceAccount {
            metadata: meta(DREAMER_SERVICE_ACCOUNT.into(), false),
            ..ServiceAccount::default()
        };
        account.metadata.labels = Some(
            [("app.kubernetes.io/managed-by".to_string(), "reverie".to_string())]
                .into_iter()
                .collect(),
        );
        create_unless_exists(&accounts, &account).await?;
    }

    let roles = Api::<Role>::namespaced(ctx.client.clone(), &namespace);
    let wanted_rules = rules(agents, target);
    match roles.get_opt(&grant).await? {
        None => {
            let role = Role {
                metadata: meta(grant.clone(), true),
                rules: Some(wanted_rules),
            };
            create_unless_exists(&roles, &role).await?;
        }
        Some(mut role) if role.rules.as_ref() != Some(&wanted_rules) => {
            role.rules = Some(wanted_rules);
            roles.replace(&grant, &PostParams::default(), &role).await?;
        }
        Some(_) => {}
    }

    let bindings = Api::<RoleBinding>::namespaced(ctx.client.clone(), &namespace);
    if bindings.get_opt(&grant).await?.is_none() {
        let binding = RoleBinding {
            metadata: meta(grant.clone(), true),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: grant.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: DREAMER_SERVICE_ACCOUNT.into(),
                namespace: Some(namespace.clone()),
                ..Subject::default()
            }]),
        };
        create_unless_exists(&bindings, &binding).await?;
    }
    Ok(())
}

fn owner(schedule: &DreamSchedule) -> OwnerReference {
    OwnerReference {
        api_version: "reverie.dev/v1alpha1".into(),
        kind: "DreamSchedule".into(),
        name: schedule.name_any(),
        uid: schedule.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[cfg(test)]
mod tests {
    use reverie_api::test_support::AgentBuilder;

    use super::*;

    fn agent(name: &str) -> Agent {
        AgentBuilder::new(name).namespace("team").build()
    }

    #[test]
    fn rules_name_exactly_the_agents_and_the_memory_read() {
        let (a, b, team) = (agent("a"), agent("b"), agent("team"));
        let per_agent = rules(&[b.clone(), a.clone()], None);
        assert_eq!(
            per_agent[0].resource_names.as_deref(),
            Some(&["a".to_string(), "b".to_string()][..])
        );
        assert_eq!(
            per_agent[1].resource_names.as_deref(),
            Some(&["a-memory".to_string(), "b-memory".to_string()][..])
        );
        assert_eq!(per_agent[2].verbs, ["create"]);
        let collective = rules(&[a, b], Some(&team));
        assert_eq!(collective[0].resource_names.as_ref().unwrap().len(), 3);
        assert_eq!(
            collective[1].resource_names.as_deref(),
            Some(&["team-memory".to_string()][..])
        );
        let all_verbs: Vec<&String> = collective.iter().flat_map(|r| &r.verbs).collect();
        assert!(all_verbs.iter().all(|v| *v == "get" || *v == "create"), "{all_verbs:?}");
        assert!(
            collective
                .iter()
                .all(|r| r.resources.as_ref().unwrap().iter().all(|r| r != "secrets"))
        );
    }
}
