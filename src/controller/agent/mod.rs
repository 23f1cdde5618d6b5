//! Agent reconciler, a pipeline of steps with typed products between them: [`dereference`]
//! (the agents whose memory it shares and its proposals, from the caches) → [`validate`] (the
//! spec on its own, and what it refers to) → [`memory`] (a revision holding the current spec)
//! → [`runtime`] (the Deployment that mounts it) → [`status`] (pure: the status they come to)
//! → status write → [`report`] (events, once the status landed).

mod dereference;
mod memory;
mod report;
pub mod runtime;
mod status;
mod validate;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::status::apply_status;
use super::{Context, Result, instrumented};
use crate::api::Agent;
use memory::MemoryState;

pub const CONTROLLER: &str = "agent";

/// One reconcile, in a span naming the object, so every log line and error of it says which.
#[tracing::instrument(skip_all, fields(namespace = agent.metadata.namespace.as_deref().unwrap_or_default(), name = agent.metadata.name.as_deref().unwrap_or_default()))]
pub async fn reconcile(agent: Arc<Agent>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(&ctx, CONTROLLER, reconcile_agent(&agent, &ctx)).await
}

async fn reconcile_agent(agent: &Agent, ctx: &Context) -> Result<Action> {
    let observed = dereference::dereference(&ctx.caches, agent);
    let problems = validate::validate(agent, &observed);
    let memory = if problems.spec.is_empty() {
        memory::ensure(ctx, agent).await?
    } else {
        MemoryState::Skipped
    };
    let runtime = match (&memory, &agent.spec.runtime) {
        (MemoryState::Ready(info), Some(runtime)) if problems.references.is_empty() => {
            Some(runtime::ensure(ctx, agent, runtime, info, &observed.shared).await?)
        }
        _ => None,
    };
    let desired = status::desired(agent, &problems, &observed, &memory, runtime.as_ref(), &ctx.now());
    let before = agent.status.as_ref();
    let api = Api::<Agent>::namespaced(ctx.client.clone(), &agent.namespace().unwrap_or_default());
    apply_status(&api, agent, before, &desired).await?;
    report::report(ctx, agent, before, &desired, &memory).await;
    Ok(match memory {
        // The apply Job's report on the index ConfigMap wakes us; this is a safety net.
        MemoryState::Applying { .. } => Action::requeue(Duration::from_secs(30)),
        _ => Action::await_change(),
    })
}
