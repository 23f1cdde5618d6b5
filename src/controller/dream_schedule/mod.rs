//! DreamSchedule reconciler, a pipeline of steps with typed products between them:
//! [`validate`] (the spec, parsed once) → [`dereference`] (agents, Secrets, Jobs, finished
//! Jobs' reports) → [`plan`] (pure: Jobs to create and delete, status, events and metrics) →
//! [`apply`] (Jobs, then status, then events and metrics) → requeue exactly at the next fire
//! time.

mod apply;
pub(crate) mod dereference;
pub mod plan;
pub mod runs;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;

use super::{Context, Result, instrumented};
use crate::api::DreamSchedule;

pub const CONTROLLER: &str = "dreamschedule";

/// Results of a pass as recorded in `status.lastRuns`.
pub const RUNNING: &str = "Running";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";
pub const SKIPPED: &str = "Skipped";

/// One reconcile, in a span naming the object, so every log line and error of it says which.
#[tracing::instrument(skip_all, fields(namespace = schedule.metadata.namespace.as_deref().unwrap_or_default(), name = schedule.metadata.name.as_deref().unwrap_or_default()))]
pub async fn reconcile(schedule: Arc<DreamSchedule>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(&ctx, CONTROLLER, reconcile_schedule(&schedule, &ctx)).await
}

async fn reconcile_schedule(schedule: &DreamSchedule, ctx: &Context) -> Result<Action> {
    let now = ctx.clock.now();
    let valid = validate::validate(&schedule.spec);
    let current = schedule.status.clone().unwrap_or_default();
    let observed = dereference::dereference(ctx, schedule, valid.as_ref().ok(), &current).await?;
    let plan = plan::plan(&plan::Inputs {
        schedule,
        valid: valid.as_ref().map_err(Vec::as_slice),
        observed: &observed,
        image: &ctx.image,
        now,
    })?;
    let requeue = plan.requeue_at;
    apply::apply(ctx, schedule, &observed.selection, plan).await?;
    Ok(requeue_at(requeue, now))
}

/// Requeue exactly when the next pass is due (a millisecond late rather than early), or wait for
/// a change when none is.
fn requeue_at(next: Option<Timestamp>, now: Timestamp) -> Action {
    match next {
        Some(next) => {
            let wait = next.duration_since(now).unsigned_abs() + Duration::from_millis(1);
            Action::requeue(if next > now { wait } else { Duration::from_millis(1) })
        }
        None => Action::await_change(),
    }
}
