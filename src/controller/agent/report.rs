//! Report: once the status write landed, the events of what changed: acceptance, a new
//! memory revision, a memory failure.

use kube::runtime::events::EventType;

use super::memory::MemoryState;
use crate::api::Agent;
use crate::api::agent::AgentStatus;
use crate::api::conditions::{self, MEMORY_READY};
use crate::controller::{Context, publish_event, report_acceptance_change};

pub async fn report(
    ctx: &Context,
    agent: &Agent,
    before: Option<&AgentStatus>,
    after: &AgentStatus,
    memory: &MemoryState,
) {
    report_acceptance_change(ctx, agent, before.map(|s| s.conditions.as_slice()), &after.conditions).await;
    report_memory_change(ctx, agent, before, after, memory).await;
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
