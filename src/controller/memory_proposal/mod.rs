//! MemoryProposal reconciler, a pipeline of steps with typed products between them:
//! [`dereference`] (its agent and any edit that supersedes it, from the caches) → [`validate`]
//! (the change list on its own, and the agent exists) → [`plan`] (pure: superseded, tampered, or
//! what the approval, the agent's policy and the timeout decide) → [`apply`] (the memory write,
//! exactly once, only when the plan says apply) → [`plan::record`] (pure: the outcome into
//! status) → status write → [`report`] (events and metrics, once the status landed).

pub mod apply;
mod dereference;
pub mod plan;
mod report;
mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::status::apply_status;
use super::{Context, Result, instrumented};
use crate::api::MemoryProposal;
use crate::api::rules::memory_proposal::desired_status;
use plan::Step;

pub const CONTROLLER: &str = "memoryproposal";

/// Condition: whether the proposal's changes are in the agent's memory.
pub const APPLIED: &str = "Applied";

/// One reconcile, in a span naming the object, so every log line and error of it says which.
#[tracing::instrument(skip_all, fields(namespace = proposal.metadata.namespace.as_deref().unwrap_or_default(), name = proposal.metadata.name.as_deref().unwrap_or_default()))]
pub async fn reconcile(proposal: Arc<MemoryProposal>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(&ctx, CONTROLLER, reconcile_proposal(&proposal, &ctx)).await
}

async fn reconcile_proposal(proposal: &MemoryProposal, ctx: &Context) -> Result<Action> {
    let observed = dereference::dereference(&ctx.caches, proposal);
    let problems = validate::validate(proposal, &observed);
    let now = ctx.now();
    let mut status = desired_status(proposal, &problems.spec, &problems.references, &now);
    let step = plan::plan(proposal, &observed, &status, now.0);
    let applied = match (&step, &observed.agent) {
        (Step::Apply { approved_by, .. }, Some(agent)) => {
            let digest = status.digest.clone().unwrap_or_default();
            let started = Instant::now();
            let outcome = apply::apply(ctx, proposal, agent, &digest, approved_by).await?;
            Some((outcome, started.elapsed()))
        }
        _ => None,
    };
    let requeue = plan::record(&mut status, &step, applied.as_ref().map(|(outcome, _)| outcome), &now);
    let before = proposal.status.as_ref();
    let namespace = proposal.namespace().unwrap_or_default();
    // Status first: the transition is what reviewers and tools wait for; events and metrics
    // follow once it landed, so a failed write that is retried never tells anything twice.
    apply_status(
        &Api::namespaced(ctx.client.clone(), &namespace),
        proposal,
        before,
        &status,
    )
    .await?;
    report::report(ctx, proposal, before, &status, applied.map(|(_, took)| took)).await;
    Ok(match requeue {
        Some(at) => {
            let wait = at.duration_since(ctx.clock.now()).unsigned_abs();
            Action::requeue(wait.max(Duration::from_millis(10)))
        }
        None => Action::await_change(),
    })
}
