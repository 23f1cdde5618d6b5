//! The in-cluster dream pass, as a dream Job runs it: read the Agent and its memory, run the
//! pass over the mounted sessions, create the MemoryProposal, and report the outcome as the
//! container's termination message for the DreamSchedule controller.
//!
//! The pod's identity (`reverie-dreamer`) may read Agents and memory ConfigMaps and create
//! MemoryProposals, nothing else; so everything else the pass needs arrives as arguments.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, Resource, ResourceExt};

use crate::api::agent::MemoryStore;
use crate::api::dream_job::{
    JOB_LABEL, MAX_MESSAGE, PassResult, RunReport, SCHEDULE_LABEL, effect_counts, suspected_injections, truncate,
};
use crate::api::memory_proposal::{MAX_CHANGES, MemoryProposalSpec, ProposalSource, ProposalStats};
use crate::api::{Agent, LocalObjectReference, MemoryProposal};
use crate::dream::model::DreamSettings;
use crate::dream::pass::{self, PassInput, PassOutcome, Proposal, SessionRoot};
use crate::dream::reflector::Reflector;
use crate::store::configmap::ConfigMapStore;
use crate::store::files::FileStore;
use crate::store::{RevisionStore, Snapshot};

/// Longest summary a proposal holds (the CRD's bound).
const MAX_SUMMARY: usize = 16_384;

/// What an in-cluster pass works on.
pub struct Target<'a> {
    pub namespace: &'a str,
    pub agent: &'a str,
    pub schedule: Option<&'a str>,
    /// The dream Job (names the proposal, so a retried pod finds its own proposal).
    pub job: Option<&'a str>,
    /// Where a PVC-backed memory is mounted read-only.
    pub memory_dir: Option<&'a Path>,
    /// Session directories, each with the agent whose sessions it holds.
    pub sessions: &'a [crate::dream::pass::SessionsDir],
    /// Collective passes: a pattern counts only when seen in this many agents.
    pub min_agents: u32,
    /// `spec.output.git`: publish the proposal to Git instead of creating it in the cluster.
    pub git: Option<&'a crate::gitops::GitTarget>,
}

/// Runs the pass for `target` and creates its proposal.
pub async fn run(
    target: &Target<'_>,
    mut settings: DreamSettings,
    reflector: &dyn Reflector,
    instructions: Option<&str>,
) -> Result<RunReport, String> {
    let client = Client::try_default()
        .await
        .map_err(|e| format!("cannot reach the API server: {}", crate::errors::error_chain(&e)))?;
    let agents: Api<Agent> = Api::namespaced(client.clone(), target.namespace);
    let agent = agents
        .get(target.agent)
        .await
        .map_err(|e| format!("cannot read Agent {}/{}: {e}", target.namespace, target.agent))?;
    settings.max_tokens = agent.spec.memory.max_tokens;
    // Who may teach rules is the agent owner's decision, not the schedule's or the flags'.
    settings.rule_sources = agent.spec.dreaming.rule_sources.to_rule_sources();
    let snapshot = read_memory(&client, &agent, target).await?;
    let roots: Vec<SessionRoot<'_>> = target.sessions.iter().map(|dir| dir.root()).collect();
    let outcome = pass::run(PassInput {
        agent: target.agent,
        sessions: &roots,
        min_agents: target.min_agents,
        memory: &snapshot.doc,
        settings: &settings,
        reflector,
        instructions,
        as_of_newest_session: false,
    })
    .await
    .map_err(|e| e.to_string())?;
    let report = crate::dream::report::Report::new(target.agent, &outcome, &snapshot.doc);
    println!("{}", report.to_text(false));
    match outcome {
        PassOutcome::NoSessions(stats) => Ok(RunReport {
            suspected_injections: suspected_injections(&stats),
            result: PassResult::NoSessions,
            sessions_reviewed: stats.sessions_reviewed,
            message: "no sessions in the lookback window: nothing to review".into(),
            ..RunReport::default()
        }),
        PassOutcome::NothingToPropose { stats, .. } => Ok(RunReport {
            suspected_injections: suspected_injections(&stats),
            effects: effect_counts(&stats),
            result: PassResult::NothingToPropose,
            sessions_reviewed: stats.sessions_reviewed,
            tokens: stats.tokens_in + stats.tokens_out,
            message: format!("reviewed {} sessions: nothing new to propose", stats.sessions_reviewed),
            ..RunReport::default()
        }),
        PassOutcome::Proposal(proposal) => {
            let object = proposal_object(&agent, target, &snapshot, &proposal)?;
            let proposed = format!(
                "proposed {} changes from {} sessions",
                object.spec.changes.len(),
                proposal.stats.sessions_reviewed
            );
            // Git output: the manifest goes to a pull request; a GitOps tool creates the object.
            let (name, message) = match target.git {
                Some(git) => {
                    let published = crate::gitops::publish(git, &object).await.map_err(|e| e.to_string())?;
                    (object.name_any(), format!("{proposed}; {}", published.message()))
                }
                None => (create_proposal(&client, target, object).await?, proposed),
            };
            Ok(RunReport {
                result: PassResult::Proposed,
                sessions_reviewed: proposal.stats.sessions_reviewed,
                tokens: proposal.stats.tokens_in + proposal.stats.tokens_out,
                message: truncate(&message, MAX_MESSAGE),
                proposal: Some(name),
                suspected_injections: suspected_injections(&proposal.stats),
                effects: effect_counts(&proposal.stats),
            })
        }
    }
}

/// The agent's current memory: through the API (ConfigMap store) or from the read-only mount
/// (PVC store). A memory the operator has not written yet is an error: the base of a proposal
/// must be a real revision.
async fn read_memory(client: &Client, agent: &Agent, target: &Target<'_>) -> Result<Snapshot, String> {
    let not_ready = || {
        format!(
            "Agent {}/{} has no memory revision yet (the operator writes revision 1 when it accepts the Agent)",
            target.namespace, target.agent
        )
    };
    match &agent.spec.memory.store {
        MemoryStore::ConfigMap(_) => ConfigMapStore::new(client.clone(), target.namespace, target.agent, None)
            .load()
            .await
            .map_err(|e| format!("cannot read the memory of {}: {e}", target.agent))?
            .ok_or_else(not_ready),
        MemoryStore::PersistentVolumeClaim(_) => {
            let dir = target
                .memory_dir
                .ok_or("the memory lives in a PersistentVolumeClaim: pass --memory-dir where it is mounted")?;
            FileStore::new(dir, target.agent)
                .load()
                .await
                .map_err(|e| format!("cannot read the memory in {}: {e}", dir.display()))?
                .ok_or_else(not_ready)
        }
    }
}

/// The MemoryProposal for a pass's proposal, owned by the Agent and named after the Job.
fn proposal_object(
    agent: &Agent,
    target: &Target<'_>,
    base: &Snapshot,
    proposal: &Proposal,
) -> Result<MemoryProposal, String> {
    let mut changes = crate::proposal::to_proposed(&proposal.changes, &base.doc, &proposal.result);
    let mut summary = proposal.summary.clone();
    if changes.len() > MAX_CHANGES {
        summary = format!(
            "{summary} Only the {MAX_CHANGES} strongest of {} changes are proposed; the next pass proposes the rest.",
            changes.len()
        );
        changes.truncate(MAX_CHANGES);
    }
    let name = match target.job {
        Some(job) => job.to_string(),
        None => crate::naming::bounded_name(&[target.agent, "dream", &jiff::Timestamp::now().as_second().to_string()]),
    };
    let labels: BTreeMap<String, String> = [
        target.schedule.map(|s| (SCHEDULE_LABEL.to_string(), s.to_string())),
        target.job.map(|j| (JOB_LABEL.to_string(), j.to_string())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let stats = &proposal.stats;
    Ok(MemoryProposal {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(target.namespace.to_string()),
            labels: Some(labels),
            owner_references: Some(vec![owner_of(agent)?]),
            ..ObjectMeta::default()
        },
        spec: MemoryProposalSpec {
            agent_ref: LocalObjectReference {
                name: target.agent.to_string(),
            },
            base_revision: base.info.revision,
            base_digest: base.info.digest.clone(),
            summary: truncate(&summary, MAX_SUMMARY - 4),
            changes,
            stats: Some(ProposalStats {
                sessions_reviewed: stats.sessions_reviewed,
                lines_skipped: stats.lines_skipped,
                tokens_in: stats.tokens_in,
                tokens_out: stats.tokens_out,
                estimated_cost: None,
                reflector: Some(stats.reflector.clone()),
            }),
            source: Some(ProposalSource {
                dream_schedule: target.schedule.map(str::to_string),
                job: target.job.map(str::to_string),
                ..ProposalSource::default()
            }),
            effects: crate::api::effect::api_effects(&stats.effects),
            approval: None,
        },
        status: None,
    })
}

/// The Agent as owner, so deleting the Agent removes its proposals. Not `blockOwnerDeletion`:
/// that would need update rights on the Agent, which the dreamer does not have.
fn owner_of(agent: &Agent) -> Result<OwnerReference, String> {
    let uid = agent.uid().ok_or("the Agent has no uid")?;
    Ok(OwnerReference {
        api_version: Agent::api_version(&()).into_owned(),
        kind: Agent::kind(&()).into_owned(),
        name: agent.name_any(),
        uid,
        controller: Some(true),
        block_owner_deletion: None,
    })
}

/// Creates the proposal. Proposals are named after their Job, so `AlreadyExists` for a pass
/// run by a Job means a retried pod whose first attempt got as far as creating it. (The
/// dreamer may not read proposals, so it cannot look; a person reusing a Job's name is the
/// only other way, and the operator then sees a proposal without this Job as source.)
async fn create_proposal(client: &Client, target: &Target<'_>, mut object: MemoryProposal) -> Result<String, String> {
    let api: Api<MemoryProposal> = Api::namespaced(client.clone(), target.namespace);
    let name = object.name_any();
    // The approval policy wants the creator on record; without it, a cluster that enforces the
    // policy refuses the create with a message saying so.
    match crate::kube_ext::whoami(client).await {
        Ok(user) => object.record_creator(user),
        Err(e) => eprintln!("warning: proposal {name} will not record its creator: {e}"),
    }
    match api.create(&PostParams::default(), &object).await {
        Ok(created) => Ok(created.name_any()),
        Err(kube::Error::Api(status)) if status.code == 409 && target.job.is_some() => Ok(name),
        Err(e) => Err(format!("cannot create MemoryProposal {}/{name}: {e}", target.namespace)),
    }
}

/// Parses `--agent NAMESPACE/NAME`; `None` for a plain name (a local pass).
pub fn split_agent(agent: &str) -> Option<(&str, &str)> {
    agent
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_namespace_slash_name() {
        assert_eq!(split_agent("team/support"), Some(("team", "support")));
        assert_eq!(split_agent("support"), None);
        assert_eq!(split_agent("/support"), None);
    }
}
