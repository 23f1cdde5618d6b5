//! Apply: carries a plan out against the API: grant the dreamer, delete and create Jobs,
//! write status, and only then emit the plan's events and metrics.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Resource, ResourceExt};

use super::dereference::Selection;
use super::plan::{About, Effect, Plan};
use crate::api::{Agent, DreamSchedule};
use crate::controller::status::apply_status;
use crate::controller::{Context, Result, dreamer_rbac, publish_event_on, report_acceptance_change};

pub async fn apply(ctx: &Context, schedule: &DreamSchedule, selection: &Selection, mut plan: Plan) -> Result<()> {
    let namespace = schedule.namespace().unwrap_or_default();
    if plan.grant_dreamer {
        dreamer_rbac::ensure(ctx, schedule, &selection.agents, selection.target.as_ref()).await?;
    }
    let jobs = Api::<Job>::namespaced(ctx.client.clone(), &namespace);
    for name in &plan.delete {
        delete_job(&jobs, name).await?;
    }
    for job in &plan.create {
        match jobs.create(&PostParams::default(), job).await {
            // The server's uid, so status refers to this Job and not a namesake.
            Ok(created) => fill_uid(&mut plan.status.active, &created),
            // Created by an earlier reconcile whose status write did not land: not a second pass.
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let api = Api::<DreamSchedule>::namespaced(ctx.client.clone(), &namespace);
    apply_status(&api, schedule, schedule.status.as_ref(), &plan.status).await?;
    let before = schedule.status.as_ref().map(|s| s.conditions.as_slice());
    for effect in plan.effects {
        emit(ctx, schedule, &namespace, effect).await;
    }
    report_acceptance_change(ctx, schedule, before, &plan.status.conditions).await;
    Ok(())
}

fn fill_uid(active: &mut [ObjectReference], created: &Job) {
    if let Some(reference) = active.iter_mut().find(|r| r.name == created.metadata.name) {
        reference.uid.clone_from(&created.metadata.uid);
    }
}

async fn emit(ctx: &Context, schedule: &DreamSchedule, namespace: &str, effect: Effect) {
    match effect {
        Effect::Event {
            about,
            type_,
            reason,
            action,
            note,
        } => {
            let reference = match about {
                About::Schedule => schedule.object_ref(&()),
                About::Agent(agent) => ObjectReference {
                    api_version: Some(Agent::api_version(&()).into_owned()),
                    kind: Some(Agent::kind(&()).into_owned()),
                    name: Some(agent),
                    namespace: Some(namespace.to_string()),
                    ..ObjectReference::default()
                },
            };
            publish_event_on(ctx, &reference, type_, reason, action, note).await;
        }
        Effect::DreamStarted(trigger) => ctx.metrics.dream_started(trigger),
        Effect::DreamFinished(result) => ctx.metrics.dream_finished(result),
        Effect::SuspectedInjection { agent, class, sessions } => {
            ctx.metrics.suspected_injection(namespace, &agent, &class, sessions);
        }
        Effect::LessonEffects { agent, counts } => ctx.metrics.lesson_effects(namespace, &agent, &counts),
    }
}

async fn delete_job(api: &Api<Job>, name: &str) -> Result<()> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
