//! The reconcilers, one per kind, and the machinery they share.
//!
//! Each reconcile is a short, visible pipeline: dereference (read what the object points at) →
//! validate (pure) → build the desired status (pure) → apply → update status (only when it
//! changed). Invalid specs are reported as conditions and events, never as reconcile errors.

pub mod agent;
#[cfg(test)]
mod agent_tests;
mod caches;
mod context;
pub mod dream_job;
pub mod dream_schedule;
mod dreamer_rbac;
mod error;
pub mod memory_proposal;
#[cfg(test)]
mod proposal_tests;
#[cfg(test)]
mod schedule_tests;
mod status;
#[cfg(test)]
mod test_support;
mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::runtime::{Controller, reflector::Store};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch as signal;
use watch::Subscribers;

pub use caches::{CacheWriters, Caches};
pub use context::{Clock, Context, DEFAULT_IMAGE, FixedClock, SystemClock};
pub use error::{Error, Result};

use crate::api::{Agent, DreamSchedule, MemoryProposal};

/// Reconciles each controller runs at once unless configured (`--max-concurrent-reconciles`).
pub const DEFAULT_CONCURRENCY: u16 = 8;

/// How long to wait before retrying a reconcile that failed on the API.
const ERROR_REQUEUE: Duration = Duration::from_secs(15);

/// Runs `reconcile` with metrics: a started counter, a duration histogram, an error counter.
pub async fn instrumented<F>(ctx: &Context, controller: &'static str, reconcile: F) -> Result<Action>
where
    F: Future<Output = Result<Action>>,
{
    ctx.metrics.reconcile_started(controller);
    let started = Instant::now();
    let result = reconcile.await;
    ctx.metrics.reconcile_finished(controller, started.elapsed());
    if let Err(error) = &result {
        ctx.metrics.reconcile_failed(controller, error.metric_label());
    }
    result
}

/// Requeue after an API failure; the failure itself is already counted by [`instrumented`].
fn error_policy<K: ResourceExt>(object: Arc<K>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(object = %object.name_any(), namespace = ?object.namespace(), %error, "reconcile failed; retrying");
    Action::requeue(ERROR_REQUEUE)
}

/// Publishes an event about `object`. Events are best effort: a failure to record one is
/// logged and never fails the reconcile.
pub async fn publish_event<K>(ctx: &Context, object: &K, type_: EventType, reason: &str, action: &str, note: String)
where
    K: Resource<DynamicType = ()>,
{
    publish_event_on(ctx, &object.object_ref(&()), type_, reason, action, note).await;
}

/// [`publish_event`] about an object known by reference only (an Agent a schedule dreamed for).
pub async fn publish_event_on(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, reference).await {
        tracing::warn!(%error, reason, "could not record event");
    }
}

/// Records an event when the `Accepted` condition changes status or reason.
pub async fn report_acceptance_change<K>(
    ctx: &Context,
    object: &K,
    before: Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]>,
    after: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) where
    K: kube::Resource<DynamicType = ()>,
{
    let Some(now) = crate::api::conditions::find(after, crate::api::conditions::ACCEPTED) else {
        return;
    };
    let previous = before.and_then(|b| crate::api::conditions::find(b, crate::api::conditions::ACCEPTED));
    if previous.is_some_and(|p| p.status == now.status && p.reason == now.reason) {
        return;
    }
    let type_ = if now.status == "True" {
        EventType::Normal
    } else {
        EventType::Warning
    };
    let reason = if now.status == "True" {
        "Accepted"
    } else {
        now.reason.as_str()
    };
    publish_event(ctx, object, type_, reason, "Validate", now.message.clone()).await;
}

/// Objects in the store that live in `namespace`, as references to requeue.
fn same_namespace<K>(store: &Store<K>, namespace: Option<String>) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .filter(|object| object.namespace() == namespace)
        .map(|object| ObjectRef::from_obj(object.as_ref()))
        .collect()
}

/// Runs the three controllers, each at most `concurrency` reconciles at once, until
/// `shutdown` resolves. `writers` fill `ctx.caches`, one
/// watch per cached kind; `caches_synced` turns true once every cache holds a full list,
/// which `/readyz` reports, and only then do the controllers start, so no reconcile judges a
/// reference missing because its cache is still loading.
pub async fn run(
    ctx: Arc<Context>,
    writers: CacheWriters,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    caches_synced: signal::Sender<bool>,
) {
    let client: Client = ctx.client.clone();
    let caches = ctx.caches.clone();
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let config = watcher::Config::default().any_semantic();
    let runner = kube::runtime::controller::Config::default().concurrency(concurrency);
    let (mut agent_events, mut proposal_events, mut job_events) =
        (Subscribers::default(), Subscribers::default(), Subscribers::default());

    // Owned objects carry the agent label; watching only those keeps the caches small.
    let owned = watcher::Config::default()
        .labels(crate::store::AGENT_LABEL)
        .any_semantic();
    let agent_controller = Controller::for_stream(agent_events.applied(), caches.agents.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), owned.clone())
        .owns(Api::<Deployment>::all(client.clone()), owned.clone())
        .owns(Api::<Job>::all(client.clone()), owned)
        // A proposal's phase changes the count of pending proposals of its agent.
        .watches_stream(proposal_events.touched(), |proposal: MemoryProposal| {
            proposal
                .namespace()
                .map(|ns| ObjectRef::<Agent>::new(&proposal.spec.agent_ref.name).within(&ns))
        })
        .with_config(runner.clone())
        .graceful_shutdown_on(shutdown.clone());

    // A schedule or proposal that names a missing agent becomes valid when the agent appears,
    // so agent changes requeue the schedules and proposals of their namespace.
    // Dream Jobs carry the schedule label; their progress updates the schedule's status.
    let schedule_controller = Controller::new(Api::<DreamSchedule>::all(client.clone()), config.clone())
        .owns_stream(job_events.touched())
        .with_config(runner.clone())
        .graceful_shutdown_on(shutdown.clone());
    let schedule_controller = {
        let store = schedule_controller.store();
        schedule_controller.watches_stream(agent_events.touched(), move |agent: Agent| {
            same_namespace(&store, agent.namespace())
        })
    };
    let proposal_controller = {
        let proposals = caches.proposals.clone();
        Controller::for_stream(proposal_events.applied(), caches.proposals.clone())
            .watches_stream(agent_events.touched(), move |agent: Agent| {
                let name = agent.name_any();
                same_namespace(&proposals, agent.namespace())
                    .into_iter()
                    .filter(|r| proposals.get(r).is_some_and(|p| p.spec.agent_ref.name == name))
                    .collect::<Vec<_>>()
            })
            .with_config(runner)
            .graceful_shutdown_on(shutdown.clone())
    };
    let schedule_store = schedule_controller.store();

    let watches = futures::future::join3(
        watch::reflect(
            Api::<Agent>::all(client.clone()),
            config.clone(),
            writers.agents,
            agent_events,
        ),
        watch::reflect(
            Api::<MemoryProposal>::all(client.clone()),
            config,
            writers.proposals,
            proposal_events,
        ),
        watch::reflect(
            Api::<Job>::all(client),
            watcher::Config::default()
                .labels(crate::api::dream_job::SCHEDULE_LABEL)
                .any_semantic(),
            writers.dream_jobs,
            job_events,
        ),
    );
    let controllers = async move {
        let synced = futures::future::join3(
            store_ready(&caches.agents),
            store_ready(&caches.proposals),
            store_ready(&caches.dream_jobs),
        )
        .await;
        if !(synced.0 && synced.1 && synced.2) {
            return;
        }
        tracing::info!("controller caches synced");
        tokio::spawn(async move {
            if store_ready(&schedule_store).await {
                let _ = caches_synced.send(true);
            }
        });
        futures::join!(
            agent_controller
                .run(agent::reconcile, error_policy, ctx.clone())
                .for_each(|r| log_result("agent", r)),
            schedule_controller
                .run(dream_schedule::reconcile, error_policy, ctx.clone())
                .for_each(|r| log_result("dreamschedule", r)),
            proposal_controller
                .run(memory_proposal::reconcile, error_policy, ctx.clone())
                .for_each(|r| log_result("memoryproposal", r)),
        );
    };
    // The watches run until the controllers have shut down, then stop with them.
    futures::pin_mut!(watches, controllers);
    futures::future::select(watches, controllers).await;
}

/// Whether the store received its first full list (false: its writer is gone).
///
/// `Store::wait_until_ready` wakes only the last of several concurrent waiters (its readiness
/// is one shared oneshot receiver), and the controller itself waits on it too. Re-polling on a
/// short interval makes this waiter see readiness regardless of who was woken.
async fn store_ready<K>(store: &Store<K>) -> bool
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    loop {
        if let Ok(ready) = tokio::time::timeout(Duration::from_millis(250), store.wait_until_ready()).await {
            return ready.is_ok();
        }
    }
}

/// Logs what the controller stream reports; reconcile errors are already counted and logged by
/// the error policy, so this stays at debug level.
async fn log_result<K, E: std::fmt::Display>(
    controller: &'static str,
    result: std::result::Result<(ObjectRef<K>, Action), E>,
) where
    K: Resource,
{
    if let Err(error) = result {
        tracing::debug!(controller, %error, "controller stream reported an error");
    }
}
