//! Agent reconciler: dereference shared memories → validate → ensure the memory revision →
//! ensure the runtime Deployment → update status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::agent_runtime::{apply_deployment, desired_deployment, rollout_state};
use super::status::apply_status;
use super::{Context, Result, instrumented, publish_event, report_acceptance_change};
use crate::api::agent::{AgentRuntime, AgentStatus, MemoryStatus, RevisionRecord};
use crate::api::conditions::{self, DesiredCondition, MEMORY_READY, READY, RUNTIME_READY};
use crate::api::memory_proposal::Phase;
use crate::api::rules::agent::{missing_shared_problem, validate};
use crate::api::rules::{Problem, acceptance_conditions};
use crate::api::{Agent, MemoryProposal};
use crate::store::{Committed, RevisionInfo, RevisionStore, StoreError, Update, spec_hash};

pub const CONTROLLER: &str = "agent";

/// One reconcile, in a span naming the object, so every log line and error of it says which.
#[tracing::instrument(skip_all, fields(namespace = agent.metadata.namespace.as_deref().unwrap_or_default(), name = agent.metadata.name.as_deref().unwrap_or_default()))]
pub async fn reconcile(agent: Arc<Agent>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(&ctx, CONTROLLER, reconcile_agent(&agent, &ctx)).await
}

/// Where the memory stands after the memory step.
pub(crate) enum MemoryState {
    /// The current revision matches the spec.
    Ready(RevisionInfo),
    /// A revision is being written by an apply Job (PVC store).
    Applying { job: String, current: Option<RevisionInfo> },
    /// The memory could not be brought in line with the spec.
    Failed {
        error: StoreError,
        current: Option<RevisionInfo>,
    },
    /// Not attempted (the spec is invalid).
    Skipped,
}

async fn reconcile_agent(agent: &Agent, ctx: &Context) -> Result<Action> {
    let namespace = agent.namespace().unwrap_or_default();
    let api = Api::<Agent>::namespaced(ctx.client.clone(), &namespace);

    // dereference, from the caches
    let (shared, missing_shared) = ctx.caches.find_agents(
        &namespace,
        agent.spec.memory.shared.iter().map(|s| s.agent_ref.name.as_str()),
    );
    let shared: Vec<Agent> = shared.iter().map(|a| Agent::clone(a)).collect();
    let (pending, history) = proposal_summary(
        &ctx.caches.proposals_for(&namespace, &agent.name_any()),
        agent.spec.memory.revision_history_limit,
    );
    // validate
    let spec_problems = validate(&agent.name_any(), &agent.spec);
    let reference_problems = missing_shared_problem(&missing_shared);
    // apply: memory, then the runtime that mounts it
    let memory = if spec_problems.is_empty() {
        ensure_memory(ctx, agent).await?
    } else {
        MemoryState::Skipped
    };
    let runtime = match (&memory, &agent.spec.runtime) {
        (MemoryState::Ready(info), Some(runtime)) if reference_problems.is_empty() => {
            Some(ensure_runtime(ctx, agent, runtime, info, &shared).await?)
        }
        _ => None,
    };
    // update status
    let mut desired = desired_status(
        agent,
        &spec_problems,
        &reference_problems,
        &memory,
        runtime.as_ref(),
        &ctx.now(),
    );
    desired.pending_proposals = Some(pending);
    desired.history = history;
    let before = agent.status.as_ref();
    report_acceptance_change(ctx, agent, before.map(|s| s.conditions.as_slice()), &desired.conditions).await;
    report_memory_change(ctx, agent, before, &desired, &memory).await;
    apply_status(&api, agent, before, &desired).await?;
    Ok(match memory {
        // The apply Job's report on the index ConfigMap wakes us; this is a safety net.
        MemoryState::Applying { .. } => Action::requeue(Duration::from_secs(30)),
        _ => Action::await_change(),
    })
}

/// Brings the memory in line with the spec: revision 1 holding the instructions for a new
/// agent, a new revision when the instructions or protected sections change.
async fn ensure_memory(ctx: &Context, agent: &Agent) -> Result<MemoryState> {
    let store = ctx.store_for(agent)?;
    let wanted = spec_hash(&agent.spec.instructions, &agent.spec.memory.protected_sections);
    let current = match store.current().await {
        Ok(current) => current,
        Err(StoreError::Kube(e)) => return Err(e.into()),
        Err(error) => return Ok(MemoryState::Failed { error, current: None }),
    };
    if let Some(info) = &current
        && info.spec == wanted
    {
        return Ok(MemoryState::Ready(info.clone()));
    }
    let update = Update {
        id: format!("agent-spec/{wanted}"),
        agent: agent.name_any(),
        base_revision: current.as_ref().map_or(0, |c| c.revision),
        base_digest: current.as_ref().map(|c| c.digest.clone()),
        proposal: None,
        instructions: agent.spec.instructions.clone(),
        protected: agent.spec.memory.protected_sections.clone(),
        changes: Vec::new(),
        history_limit: agent.spec.memory.revision_history_limit,
        now: ctx.clock.now(),
    };
    match store.commit(&update).await {
        Ok(Committed::Done(info)) => Ok(MemoryState::Ready(info)),
        Ok(Committed::InProgress { job }) => Ok(MemoryState::Applying { job, current }),
        Err(StoreError::Kube(e)) => Err(e.into()),
        Err(error) => Ok(MemoryState::Failed { error, current }),
    }
}

/// Applies the agent's Deployment and reports whether it has rolled out.
async fn ensure_runtime(
    ctx: &Context,
    agent: &Agent,
    runtime: &AgentRuntime,
    memory: &RevisionInfo,
    shared: &[Agent],
) -> Result<(bool, String)> {
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &agent.namespace().unwrap_or_default());
    let desired = desired_deployment(agent, runtime, memory, shared)?;
    let existing = deployments.get_opt(&agent.name_any()).await?;
    let current = apply_deployment(&deployments, existing, &desired).await?;
    Ok(rollout_state(&current))
}

/// Of an agent's proposals: how many still wait for a decision, and the revisions applied from
/// them (newest first, at most `limit`, as many as revisions are kept).
pub(crate) fn proposal_summary(proposals: &[Arc<MemoryProposal>], limit: u32) -> (u32, Vec<RevisionRecord>) {
    let phase = |p: &MemoryProposal| p.status.as_ref().and_then(|s| s.phase);
    let pending = proposals
        .iter()
        .filter(|p| phase(p).is_none_or(|phase| phase == Phase::Pending))
        .count();
    let mut history: Vec<RevisionRecord> = proposals
        .iter()
        .filter(|p| phase(p) == Some(Phase::Applied))
        .filter_map(|p| {
            let status = p.status.as_ref()?;
            Some(RevisionRecord {
                revision: status.applied_revision?,
                proposal: Some(p.name_any()),
                approved_by: status.approved_by.clone(),
                time: status.applied_at.clone()?,
                digest: status.applied_digest.clone().unwrap_or_default(),
            })
        })
        .collect();
    history.sort_by_key(|record| std::cmp::Reverse(record.revision));
    history.truncate(limit as usize);
    (u32::try_from(pending).unwrap_or(u32::MAX), history)
}

fn memory_condition(memory: &MemoryState) -> DesiredCondition {
    match memory {
        MemoryState::Ready(info) => DesiredCondition::true_(
            MEMORY_READY,
            "RevisionCurrent",
            format!(
                "memory revision {} ({} entries, ~{} tokens) holds the current spec",
                info.revision, info.entries, info.tokens
            ),
        ),
        MemoryState::Applying { job, .. } => DesiredCondition::false_(
            MEMORY_READY,
            "Applying",
            format!("apply Job {job} is writing the next memory revision"),
        ),
        MemoryState::Failed { error, .. } => DesiredCondition::false_(MEMORY_READY, error.reason(), error.to_string()),
        MemoryState::Skipped => DesiredCondition::false_(
            MEMORY_READY,
            "InvalidSpec",
            "the memory is not written while the spec is invalid",
        ),
    }
}

fn runtime_condition(agent: &Agent, runtime: Option<&(bool, String)>) -> DesiredCondition {
    match (agent.spec.runtime.is_some(), runtime) {
        (false, _) => DesiredCondition::true_(
            RUNTIME_READY,
            "NotManaged",
            "the agent runs outside reverie; only its memory is managed",
        ),
        (true, Some((true, message))) => DesiredCondition::true_(RUNTIME_READY, "Available", message.clone()),
        (true, Some((false, message))) => DesiredCondition::false_(RUNTIME_READY, "RollingOut", message.clone()),
        (true, None) => DesiredCondition::false_(
            RUNTIME_READY,
            "WaitingForMemory",
            "the Deployment starts once the memory is ready",
        ),
    }
}

/// The status an agent should have: `Accepted` (the spec on its own), `MemoryReady`,
/// `RuntimeReady`, and `Ready` (all of it, and every agent it refers to exists).
pub(crate) fn desired_status(
    agent: &Agent,
    spec_problems: &[Problem],
    reference_problems: &[Problem],
    memory: &MemoryState,
    runtime: Option<&(bool, String)>,
    now: &Time,
) -> AgentStatus {
    let current = agent.status.clone().unwrap_or_default();
    let mut wanted = acceptance_conditions(
        spec_problems,
        reference_problems,
        "the agent spec is valid",
        "the agent's memory and runtime are ready",
    );
    let memory_condition = memory_condition(memory);
    let runtime_condition = runtime_condition(agent, runtime);
    if let Some(ready) = wanted.iter_mut().find(|c| c.type_ == READY)
        && ready.status
    {
        for part in [&memory_condition, &runtime_condition] {
            if !part.status {
                *ready = DesiredCondition::false_(READY, part.reason.clone(), part.message.clone());
                break;
            }
        }
    }
    wanted.push(memory_condition);
    wanted.push(runtime_condition);
    let info = match memory {
        MemoryState::Ready(info) => Some(info),
        MemoryState::Applying { current, .. } | MemoryState::Failed { current, .. } => current.as_ref(),
        MemoryState::Skipped => None,
    };
    let memory_status = match info {
        Some(info) => Some(MemoryStatus {
            revision: info.revision,
            digest: info.digest.clone(),
            tokens: info.tokens,
            bytes: info.bytes,
            entries: info.entries,
            updated: match &current.memory {
                Some(previous) if previous.revision == info.revision => previous.updated.clone(),
                _ => Some(now.clone()),
            },
        }),
        None => current.memory.clone(),
    };
    AgentStatus {
        observed_generation: agent.metadata.generation,
        conditions: conditions::merge_conditions(&current.conditions, &wanted, agent.metadata.generation, now),
        memory: memory_status,
        ..current
    }
}

/// Records an event when a new memory revision appears or the memory fails.
async fn report_memory_change(
    ctx: &Context,
    agent: &Agent,
    before: Option<&AgentStatus>,
    after: &AgentStatus,
    memory: &MemoryState,
) {
    let previous = before.and_then(|s| s.memory.as_ref()).map(|m| m.revision);
    match (memory, &after.memory) {
        (MemoryState::Ready(_), Some(now)) if previous != Some(now.revision) => {
            let note = format!(
                "memory revision {} written ({}, ~{} tokens)",
                now.revision, now.digest, now.tokens
            );
            publish_event(ctx, agent, EventType::Normal, "MemoryRevision", "WriteMemory", note).await;
        }
        (MemoryState::Failed { error, .. }, _) => {
            let unchanged = before
                .and_then(|s| conditions::find(&s.conditions, MEMORY_READY))
                .is_some_and(|c| c.reason == error.reason() && c.message == error.to_string());
            if !unchanged {
                publish_event(
                    ctx,
                    agent,
                    EventType::Warning,
                    error.reason(),
                    "WriteMemory",
                    error.to_string(),
                )
                .await;
            }
        }
        _ => {}
    }
}
