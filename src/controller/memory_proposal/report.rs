//! Report: once the status write landed, the events and metrics of what changed between the
//! status before and after, so a reconcile retried after a failed write tells nothing twice.

use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::APPLIED;
use crate::api::memory_proposal::{ChangeOp, MemoryProposalStatus, Phase};
use crate::api::{MemoryProposal, conditions};
use crate::controller::{Context, publish_event, report_acceptance_change};

/// Events and metrics for the move from `before` to `after`; `apply_took` is how long the
/// memory write took, when this reconcile made one.
pub async fn report(
    ctx: &Context,
    proposal: &MemoryProposal,
    before: Option<&MemoryProposalStatus>,
    after: &MemoryProposalStatus,
    apply_took: Option<Duration>,
) {
    report_acceptance_change(
        ctx,
        proposal,
        before.map(|s| s.conditions.as_slice()),
        &after.conditions,
    )
    .await;
    count(ctx, proposal, before, after, apply_took);
    report_transition(ctx, proposal, before, after).await;
}

/// Decision and apply metrics, each counted on the reconcile that made the transition.
fn count(
    ctx: &Context,
    proposal: &MemoryProposal,
    before: Option<&MemoryProposalStatus>,
    after: &MemoryProposalStatus,
    apply_took: Option<Duration>,
) {
    let previous = before.and_then(|s| s.phase);
    let newly = |phase: Phase| after.phase == Some(phase) && previous != Some(phase);
    let newly_approved = before.and_then(|s| s.approved_by.as_ref()).is_none() && after.approved_by.is_some();
    if newly_approved || newly(Phase::Rejected) {
        ctx.metrics.proposal_decided(seconds_since_creation(proposal, ctx));
    }
    if newly(Phase::Applied) {
        let ops = proposal.spec.changes.iter().map(|c| op_label(c.op));
        ctx.metrics.proposal_applied(apply_took.unwrap_or_default(), ops);
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

fn seconds_since_creation(proposal: &MemoryProposal, ctx: &Context) -> f64 {
    proposal.creation_timestamp().map_or(0.0, |created| {
        ctx.clock.now().duration_since(created.0).as_secs_f64().max(0.0)
    })
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
        return;
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
    publish_event(ctx, proposal, type_, phase.as_str(), "Review", message).await;
}
