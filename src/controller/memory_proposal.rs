//! MemoryProposal reconciler: validate the change list → dereference the agent → record the
//! content digest on first sight (and detect tampering after it) → decide (a person's approval,
//! the agent's policy, the timeout) → apply exactly once → update status.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::proposal_apply::{self, Outcome};
use super::report_acceptance_change;
use super::status::apply_status;
use super::{Context, Result, instrumented, publish_event};
use crate::api::memory_proposal::{ChangeOp, MemoryProposalStatus, Phase};
use crate::api::rules::Problem;
use crate::api::rules::memory_proposal::{Decision, bare_digest, decide, desired_status, is_final, validate};
use crate::api::{Agent, MemoryProposal, conditions};

pub const CONTROLLER: &str = "memoryproposal";

/// Condition: whether the proposal's changes are in the agent's memory.
pub const APPLIED: &str = "Applied";

/// One reconcile, in a span naming the object, so every log line and error of it says which.
#[tracing::instrument(skip_all, fields(namespace = proposal.metadata.namespace.as_deref().unwrap_or_default(), name = proposal.metadata.name.as_deref().unwrap_or_default()))]
pub async fn reconcile(proposal: Arc<MemoryProposal>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(&ctx, CONTROLLER, reconcile_proposal(&proposal, &ctx)).await
}

async fn reconcile_proposal(proposal: &MemoryProposal, ctx: &Context) -> Result<Action> {
    let namespace = proposal.namespace().unwrap_or_default();
    let api = Api::<MemoryProposal>::namespaced(ctx.client.clone(), &namespace);
    let agent = ctx.caches.agent(&namespace, &proposal.spec.agent_ref.name);
    let protected = agent
        .as_ref()
        .map(|a| a.spec.memory.protected_sections.as_slice())
        .unwrap_or_default();
    let spec_problems = validate(&proposal.spec, protected);
    let reference_problems = match agent {
        Some(_) => Vec::new(),
        None => vec![Problem::new(
            "AgentNotFound",
            format!(
                "spec.agentRef: Agent {namespace}/{} does not exist",
                proposal.spec.agent_ref.name
            ),
        )],
    };
    let now = ctx.now();
    let mut desired = desired_status(proposal, &spec_problems, &reference_problems, &now);
    let before = proposal.status.as_ref();
    report_acceptance_change(
        ctx,
        proposal,
        before.map(|s| s.conditions.as_slice()),
        &desired.conditions,
    )
    .await;
    let mut requeue = None;
    if let (Some(agent), Some(phase)) = (&agent, desired.phase)
        && !is_final(phase)
        && reference_problems.is_empty()
    {
        requeue = progress(ctx, proposal, agent, &mut desired).await?;
    }
    // Status first: the transition is what reviewers and tools wait for; the event follows.
    apply_status(&api, proposal, before, &desired).await?;
    report_transition(ctx, proposal, before, &desired).await;
    Ok(match requeue {
        Some(at) => {
            let wait = at.duration_since(ctx.clock.now()).unsigned_abs();
            Action::requeue(wait.max(Duration::from_millis(10)))
        }
        None => Action::await_change(),
    })
}

/// Moves a live proposal along: superseded, decided, applied. Returns when to look again
/// (the approval timeout), if anything is due later.
async fn progress(
    ctx: &Context,
    proposal: &MemoryProposal,
    agent: &Agent,
    status: &mut MemoryProposalStatus,
) -> Result<Option<Timestamp>> {
    let now = ctx.now();
    let namespace = proposal.namespace().unwrap_or_default();
    if let Some(newer) = ctx.caches.superseding(&namespace, &proposal.name_any()) {
        let newer = newer.name_any();
        set_phase(
            status,
            Phase::Superseded,
            "Superseded",
            format!("replaced by proposal {newer}"),
            &now,
        );
        return Ok(None);
    }
    let digest = status.digest.clone().unwrap_or_default();
    // A manifest that travelled through Git carries the digest of what the dream proposed;
    // content edited on the way is not what was proposed, whoever approved it.
    if let Some(proposed) = proposal.annotations().get(crate::gitops::CONTENT_DIGEST_ANNOTATION)
        && bare_digest(proposed) != bare_digest(&digest)
    {
        status.phase = Some(Phase::Tampered);
        let message =
            format!("the content ({digest}) is not what the dream proposed ({proposed}); it will never be applied");
        set_condition(status, false, "Tampered", message, &now);
        return Ok(None);
    }
    let expiry = proposal_apply::expiry(proposal, agent);
    match decide(&proposal.spec, &digest, &agent.spec.dreaming, expiry, ctx.clock.now()) {
        Decision::Wait { reason, message, until } => {
            status.phase = Some(Phase::Pending);
            set_condition(status, false, reason, message, &now);
            Ok(until)
        }
        Decision::Reject { by, why } => {
            set_phase(
                status,
                Phase::Rejected,
                "Rejected",
                format!("rejected by {by}{why}"),
                &now,
            );
            ctx.metrics.proposal_decided(decision_seconds(proposal, ctx));
            Ok(None)
        }
        Decision::Expire => {
            let message = format!(
                "no decision within spec.dreaming.approvalTimeout ({}); rejected",
                agent.spec.dreaming.approval_timeout
            );
            set_phase(status, Phase::Expired, "Expired", message, &now);
            Ok(None)
        }
        Decision::Fail { reason, message } => {
            set_phase(status, Phase::Failed, reason, message, &now);
            Ok(None)
        }
        Decision::Apply { approved_by, how } => {
            if status.approved_by.is_none() {
                ctx.metrics.proposal_decided(decision_seconds(proposal, ctx));
            }
            status.approved_by = Some(approved_by.clone());
            let started = std::time::Instant::now();
            let outcome = proposal_apply::apply(ctx, proposal, agent, &digest, &approved_by).await?;
            // The apply Job's progress does not wake this controller: look again shortly.
            let again = matches!(outcome, Outcome::Applying { .. })
                .then(|| ctx.clock.now() + jiff::SignedDuration::from_secs(2));
            record_outcome(ctx, proposal, status, outcome, &how, started.elapsed(), &now);
            Ok(again)
        }
    }
}

fn record_outcome(
    ctx: &Context,
    proposal: &MemoryProposal,
    status: &mut MemoryProposalStatus,
    outcome: Outcome,
    how: &str,
    took: Duration,
    now: &Time,
) {
    match outcome {
        Outcome::Applied {
            revision,
            digest,
            rebased_from,
        } => {
            if status.phase != Some(Phase::Applied) {
                ctx.metrics
                    .proposal_applied(took, proposal.spec.changes.iter().map(|c| op_label(c.op)));
            }
            status.applied_revision = Some(revision);
            status.applied_digest = Some(digest);
            status.applied_at = status.applied_at.clone().or_else(|| Some(now.clone()));
            status.rebased_from = status.rebased_from.or(rebased_from);
            let rebased = rebased_from.map_or_else(String::new, |base| format!(", rebased from revision {base}"));
            set_phase(
                status,
                Phase::Applied,
                "Applied",
                format!("{how}; memory revision {revision}{rebased}"),
                now,
            );
        }
        Outcome::Applying { job } => {
            status.phase = Some(Phase::Applying);
            set_condition(
                status,
                false,
                "Applying",
                format!("{how}; apply Job {job} is writing the memory volume"),
                now,
            );
        }
        Outcome::Conflicted(conflicts) => {
            set_phase(status, Phase::Conflicted, "Conflicted", conflicts.join("; "), now);
        }
        Outcome::Failed(message) => set_phase(status, Phase::Failed, "ApplyFailed", message, now),
    }
}

fn op_label(op: ChangeOp) -> &'static str {
    match op {
        ChangeOp::Add => "Add",
        ChangeOp::Update => "Update",
        ChangeOp::Archive => "Archive",
        ChangeOp::Merge => "Merge",
        ChangeOp::Move => "Move",
        ChangeOp::Reinforce => "Reinforce",
    }
}

fn decision_seconds(proposal: &MemoryProposal, ctx: &Context) -> f64 {
    proposal.creation_timestamp().map_or(0.0, |created| {
        ctx.clock.now().duration_since(created.0).as_secs_f64().max(0.0)
    })
}

fn set_phase(status: &mut MemoryProposalStatus, phase: Phase, reason: &'static str, message: String, now: &Time) {
    status.phase = Some(phase);
    set_condition(status, phase == Phase::Applied, reason, message, now);
}

/// Sets the `Applied` condition, keeping its transition time while its status stays.
fn set_condition(status: &mut MemoryProposalStatus, applied: bool, reason: &'static str, message: String, now: &Time) {
    let wanted = conditions::DesiredCondition::new(APPLIED, applied, reason, message);
    status.conditions = conditions::merge_conditions(&status.conditions, &[wanted], status.observed_generation, now);
}

/// Records an event for each phase transition: who decided and why, or what happened.
async fn report_transition(
    ctx: &Context,
    proposal: &MemoryProposal,
    before: Option<&MemoryProposalStatus>,
    after: &MemoryProposalStatus,
) {
    let (Some(phase), previous) = (after.phase, before.and_then(|s| s.phase)) else {
        return;
    };
    if previous == Some(phase) || (previous.is_none() && phase == Phase::Pending) {
        return;
    }
    ctx.metrics.proposal_phase(phase.as_str());
    // A decision and its outcome can land in one reconcile: the approval is an Event of its own.
    let newly_approved = before.and_then(|s| s.approved_by.as_ref()).is_none();
    if let Some(by) = after.approved_by.as_deref().filter(|_| newly_approved) {
        ctx.metrics.proposal_phase(Phase::Approved.as_str());
        let note = format!("approved by {by}");
        publish_event(
            ctx,
            proposal,
            EventType::Normal,
            Phase::Approved.as_str(),
            "Review",
            note,
        )
        .await;
    }
    let message = conditions::find(&after.conditions, APPLIED)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    let type_ = match phase {
        Phase::Applied | Phase::Approved | Phase::Applying | Phase::Pending | Phase::Rejected | Phase::Superseded => {
            EventType::Normal
        }
        _ => EventType::Warning,
    };
    if phase == Phase::Tampered {
        let note = "the proposal's content changed after it was first seen; it will never be applied. Create a new proposal instead.";
        publish_event(
            ctx,
            proposal,
            EventType::Warning,
            "Tampered",
            "Verify",
            note.to_string(),
        )
        .await;
    } else {
        publish_event(ctx, proposal, type_, phase.as_str(), "Review", message).await;
    }
}
