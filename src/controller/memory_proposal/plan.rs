//! Plan: what happens to a live proposal, decided without the API (superseded, tampered, or
//! the decision of its approval, the agent's policy and the timeout), and [`record`], which
//! writes what a step came to into the status. Both pure.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::APPLIED;
use super::apply::{Outcome, expiry};
use super::dereference::Observed;
use crate::api::memory_proposal::{MemoryProposalStatus, Phase};
use crate::api::rules::memory_proposal::{Decision, bare_digest, decide, is_final};
use crate::api::{MemoryProposal, conditions};

/// How soon a proposal whose PVC apply Job runs is looked at again: the Job's progress does
/// not wake this controller.
const APPLYING_RECHECK: SignedDuration = SignedDuration::from_secs(2);

/// What the reconcile does with a proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing moves it: it is final, invalid, or its agent does not exist.
    Hold,
    /// A newer proposal replaced it.
    Supersede {
        by: String,
    },
    /// Its content is not what the dream proposed (the digest the GitOps manifest carries).
    Tamper {
        digest: String,
        proposed: String,
    },
    /// Nobody decided yet; look again at `until` (the timeout), if set.
    Wait {
        reason: &'static str,
        message: String,
        until: Option<Timestamp>,
    },
    Reject {
        by: String,
        why: String,
    },
    /// No decision within the agent's approval timeout (`timeout`).
    Expire {
        timeout: String,
    },
    Fail {
        reason: &'static str,
        message: String,
    },
    /// Write it to memory, as approved by `approved_by` (`how` says how, for people).
    Apply {
        approved_by: String,
        how: String,
    },
}

/// The step for `proposal`, whose desired `status` (phase, digest) the kind's rules computed.
pub fn plan(proposal: &MemoryProposal, observed: &Observed, status: &MemoryProposalStatus, now: Timestamp) -> Step {
    let (Some(agent), Some(phase)) = (&observed.agent, status.phase) else {
        return Step::Hold;
    };
    if is_final(phase) {
        return Step::Hold;
    }
    if let Some(by) = &observed.superseded_by {
        return Step::Supersede { by: by.clone() };
    }
    let digest = status.digest.clone().unwrap_or_default();
    // A manifest that travelled through Git carries the digest of what the dream proposed;
    // content edited on the way is not what was proposed, whoever approved it.
    if let Some(proposed) = proposal.annotations().get(crate::gitops::CONTENT_DIGEST_ANNOTATION)
        && bare_digest(proposed) != bare_digest(&digest)
    {
        return Step::Tamper {
            digest,
            proposed: proposed.clone(),
        };
    }
    match decide(
        &proposal.spec,
        &digest,
        &agent.spec.dreaming,
        expiry(proposal, agent),
        now,
    ) {
        Decision::Wait { reason, message, until } => Step::Wait { reason, message, until },
        Decision::Reject { by, why } => Step::Reject { by, why },
        Decision::Expire => Step::Expire {
            timeout: agent.spec.dreaming.approval_timeout.clone(),
        },
        Decision::Fail { reason, message } => Step::Fail { reason, message },
        Decision::Apply { approved_by, how } => Step::Apply { approved_by, how },
    }
}

/// Writes what `step` came to (with the apply's `outcome` for [`Step::Apply`]) into `status`,
/// and returns when to look again, if anything is due later.
pub fn record(
    status: &mut MemoryProposalStatus,
    step: &Step,
    outcome: Option<&Outcome>,
    now: &Time,
) -> Option<Timestamp> {
    match step {
        Step::Hold => None,
        Step::Supersede { by } => {
            set_phase(
                status,
                Phase::Superseded,
                "Superseded",
                format!("replaced by proposal {by}"),
                now,
            );
            None
        }
        Step::Tamper { digest, proposed } => {
            status.phase = Some(Phase::Tampered);
            let message =
                format!("the content ({digest}) is not what the dream proposed ({proposed}); it will never be applied");
            set_condition(status, false, "Tampered", message, now);
            None
        }
        Step::Wait { reason, message, until } => {
            status.phase = Some(Phase::Pending);
            set_condition(status, false, reason, message.clone(), now);
            *until
        }
        Step::Reject { by, why } => {
            set_phase(
                status,
                Phase::Rejected,
                "Rejected",
                format!("rejected by {by}{why}"),
                now,
            );
            None
        }
        Step::Expire { timeout } => {
            let message = format!("no decision within spec.dreaming.approvalTimeout ({timeout}); rejected");
            set_phase(status, Phase::Expired, "Expired", message, now);
            None
        }
        Step::Fail { reason, message } => {
            set_phase(status, Phase::Failed, reason, message.clone(), now);
            None
        }
        Step::Apply { approved_by, how } => {
            status.approved_by = Some(approved_by.clone());
            let outcome = outcome?;
            record_outcome(status, outcome, how, now);
            matches!(outcome, Outcome::Applying { .. }).then(|| now.0 + APPLYING_RECHECK)
        }
    }
}

fn record_outcome(status: &mut MemoryProposalStatus, outcome: &Outcome, how: &str, now: &Time) {
    match outcome {
        Outcome::Applied {
            revision,
            digest,
            rebased_from,
        } => {
            status.applied_revision = Some(*revision);
            status.applied_digest = Some(digest.clone());
            status.applied_at = status.applied_at.clone().or_else(|| Some(now.clone()));
            status.rebased_from = status.rebased_from.or(*rebased_from);
            let rebased = rebased_from.map_or_else(String::new, |base| format!(", rebased from revision {base}"));
            let message = format!("{how}; memory revision {revision}{rebased}");
            set_phase(status, Phase::Applied, "Applied", message, now);
        }
        Outcome::Applying { job } => {
            status.phase = Some(Phase::Applying);
            let message = format!("{how}; apply Job {job} is writing the memory volume");
            set_condition(status, false, "Applying", message, now);
        }
        Outcome::Conflicted(conflicts) => {
            set_phase(status, Phase::Conflicted, "Conflicted", conflicts.join("; "), now);
        }
        Outcome::Failed(message) => set_phase(status, Phase::Failed, "ApplyFailed", message.clone(), now),
    }
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

#[cfg(test)]
mod tests {
    //! The plan and record steps as tables: a proposal and what the caches hold in, a step
    //! and a status out, no API.

    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::api::Agent;
    use crate::api::rules::memory_proposal::desired_status;

    const NOW: &str = "2026-11-20T12:00:00Z";

    fn now() -> Time {
        Time(NOW.parse().unwrap())
    }

    fn agent(dreaming: Value) -> Arc<Agent> {
        Arc::new(
            serde_json::from_value(json!({"apiVersion": "reverie.dev/v1alpha1", "kind": "Agent",
                "metadata": {"name": "support", "namespace": "team", "uid": "a-1"},
                "spec": {"model": "m", "instructions": "x", "dreaming": dreaming}}))
            .unwrap(),
        )
    }

    /// A proposal created an hour before [`NOW`], with `approval` and `annotations`.
    fn proposal(approval: Value, annotations: Value) -> MemoryProposal {
        serde_json::from_value(json!({"apiVersion": "reverie.dev/v1alpha1", "kind": "MemoryProposal",
            "metadata": {"name": "support-1", "namespace": "team", "generation": 1,
                         "creationTimestamp": "2026-11-20T11:00:00Z", "annotations": annotations},
            "spec": {"agentRef": {"name": "support"}, "baseRevision": 1, "baseDigest": "sha256:00",
                     "summary": "learned", "approval": approval,
                     "changes": [{"op": "Add", "section": "lessons", "after": "Look accounts up by billing id",
                                  "evidence": {"count": 4}}]}}))
        .unwrap()
    }

    fn observed(agent: Option<Arc<Agent>>, superseded_by: Option<&str>) -> Observed {
        Observed {
            agent,
            superseded_by: superseded_by.map(str::to_string),
        }
    }

    fn step(proposal: &MemoryProposal, observed: &Observed) -> Step {
        let status = desired_status(proposal, &[], &[], &now());
        plan(proposal, observed, &status, now().0)
    }

    #[test]
    fn plans() {
        let digest = proposal(Value::Null, json!({})).spec.content_digest();
        let approved = json!({"decision": "Approved", "reviewer": "ana"});
        let cases: Vec<(&str, MemoryProposal, Observed, Step)> = vec![
            (
                "no agent: nothing moves",
                proposal(approved.clone(), json!({})),
                observed(None, None),
                Step::Hold,
            ),
            (
                "an edit replaced it",
                proposal(approved.clone(), json!({})),
                observed(Some(agent(json!({}))), Some("support-1-edit")),
                Step::Supersede {
                    by: "support-1-edit".into(),
                },
            ),
            (
                "content edited on its way through Git",
                proposal(approved.clone(), json!({"reverie.dev/content-digest": "sha256:beef"})),
                observed(Some(agent(json!({}))), None),
                Step::Tamper {
                    digest: digest.clone(),
                    proposed: "sha256:beef".into(),
                },
            ),
            (
                "approved by a reviewer",
                proposal(approved.clone(), json!({"reverie.dev/content-digest": digest.clone()})),
                observed(Some(agent(json!({}))), None),
                Step::Apply {
                    approved_by: "ana".into(),
                    how: "approved by ana".into(),
                },
            ),
            (
                "undecided past the timeout",
                proposal(Value::Null, json!({})),
                observed(Some(agent(json!({"approvalTimeout": "30m"}))), None),
                Step::Expire { timeout: "30m".into() },
            ),
        ];
        for (name, proposal, observed, expected) in cases {
            assert_eq!(step(&proposal, &observed), expected, "{name}");
        }
    }

    #[test]
    fn a_final_proposal_is_held() {
        let mut rejected = proposal(json!({"decision": "Rejected", "reviewer": "ana"}), json!({}));
        rejected.status = Some(MemoryProposalStatus {
            phase: Some(Phase::Rejected),
            ..MemoryProposalStatus::default()
        });
        assert_eq!(step(&rejected, &observed(Some(agent(json!({}))), None)), Step::Hold);
    }

    #[test]
    fn records() {
        let apply = Step::Apply {
            approved_by: "ana".into(),
            how: "approved by ana".into(),
        };
        let applied = Outcome::Applied {
            revision: 3,
            digest: "sha256:aa".into(),
            rebased_from: Some(1),
        };
        let applying = Outcome::Applying { job: "apply-1".into() };
        let conflicted = Outcome::Conflicted(vec!["a was updated".into(), "b was archived".into()]);
        let wait_until: Timestamp = "2026-11-27T11:00:00Z".parse().unwrap();
        /// The phase, the `Applied` condition's status and message, and when to look again.
        type Expected = (Phase, &'static str, &'static str, Option<Timestamp>);
        let cases: Vec<(&str, Step, Option<Outcome>, Expected)> = vec![
            (
                "written",
                apply.clone(),
                Some(applied),
                (
                    Phase::Applied,
                    "True",
                    "approved by ana; memory revision 3, rebased from revision 1",
                    None,
                ),
            ),
            (
                "an apply Job writes it: look again soon",
                apply.clone(),
                Some(applying),
                (
                    Phase::Applying,
                    "False",
                    "approved by ana; apply Job apply-1 is writing the memory volume",
                    Some(now().0 + APPLYING_RECHECK),
                ),
            ),
            (
                "conflicts are listed, nothing overwritten",
                apply,
                Some(conflicted),
                (Phase::Conflicted, "False", "a was updated; b was archived", None),
            ),
            (
                "waiting until the timeout",
                Step::Wait {
                    reason: "AwaitingReview",
                    message: "waiting for a reviewer".into(),
                    until: Some(wait_until),
                },
                None,
                (Phase::Pending, "False", "waiting for a reviewer", Some(wait_until)),
            ),
            (
                "expired",
                Step::Expire { timeout: "7d".into() },
                None,
                (
                    Phase::Expired,
                    "False",
                    "no decision within spec.dreaming.approvalTimeout (7d); rejected",
                    None,
                ),
            ),
        ];
        for (name, step, outcome, (phase, applied_status, message, again)) in cases {
            let mut status = MemoryProposalStatus::default();
            let requeue = record(&mut status, &step, outcome.as_ref(), &now());
            let condition = conditions::find(&status.conditions, APPLIED).expect("Applied condition");
            assert_eq!(
                (
                    status.phase,
                    condition.status.as_str(),
                    condition.message.as_str(),
                    requeue
                ),
                (Some(phase), applied_status, message, again),
                "{name}"
            );
        }
    }

    #[test]
    fn an_applied_proposal_keeps_its_first_applied_time() {
        let mut status = MemoryProposalStatus {
            applied_at: Some(Time("2026-11-19T00:00:00Z".parse().unwrap())),
            ..MemoryProposalStatus::default()
        };
        let step = Step::Apply {
            approved_by: "ana".into(),
            how: "approved by ana".into(),
        };
        let outcome = Outcome::Applied {
            revision: 2,
            digest: "sha256:aa".into(),
            rebased_from: None,
        };
        record(&mut status, &step, Some(&outcome), &now());
        assert_eq!(status.applied_at, Some(Time("2026-11-19T00:00:00Z".parse().unwrap())));
        assert_eq!(
            (status.applied_revision, status.approved_by.as_deref()),
            (Some(2), Some("ana"))
        );
    }
}
