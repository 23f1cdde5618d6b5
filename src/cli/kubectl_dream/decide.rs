//! `kubectl dream approve|reject NAME [--comment] [--digest]`: writes `spec.approval` with the
//! decision, the digest the operator recorded (what `diff` showed) and the reviewer.
//!
//! The write is a JSON merge patch carrying the `resourceVersion` that was read, so a proposal
//! that changed in between is a conflict, never a decision on something else.

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::diff::not_found;
use super::{Output, Session, api_error, namespace_flag, serialize};
use crate::api::MemoryProposal;
use crate::api::memory_proposal::Decision;
use crate::api::rules::memory_proposal::{Reviewable, bare_digest, reviewable};

#[derive(Debug, clap::Args)]
pub struct DecideArgs {
    /// The MemoryProposal.
    pub name: String,
    /// A note for the record (why).
    #[arg(long, short = 'm')]
    pub comment: Option<String>,
    /// The digest `kubectl dream diff` showed; refused if the proposal's differs.
    #[arg(long)]
    pub digest: Option<String>,
}

/// Approve or reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Reject,
}

impl Verdict {
    pub fn decision(self) -> Decision {
        match self {
            Verdict::Approve => Decision::Approved,
            Verdict::Reject => Decision::Rejected,
        }
    }

    pub fn gerund(self) -> &'static str {
        match self {
            Verdict::Approve => "approving",
            Verdict::Reject => "rejecting",
        }
    }

    pub fn past(self) -> &'static str {
        match self {
            Verdict::Approve => "approved",
            Verdict::Reject => "rejected",
        }
    }
}

pub(super) async fn run(
    session: &Session,
    output: Output,
    args: &DecideArgs,
    verdict: Verdict,
) -> Result<String, String> {
    let name = &args.name;
    let api = Api::<MemoryProposal>::namespaced(session.client.clone(), &session.namespace);
    let proposal = api
        .get_opt(name)
        .await
        .map_err(|e| api_error(&format!("cannot read memoryproposal {name}"), &e))?
        .ok_or_else(|| not_found(name, &session.namespace))?;
    let digest = check_decidable(&proposal, args.digest.as_deref())?;
    let reviewer = session.whoami().await?;
    // Said before the write, so a reviewer on the wrong context sees it before it counts.
    eprintln!("{} as {reviewer}", verdict.gerund());
    let written = write_decision(&api, &proposal, verdict, &digest, &reviewer, args.comment.as_deref())
        .await
        .map_err(|e| decision_error(name, &session.namespace, &e))?;
    match output {
        Output::Table => Ok(format!(
            "memoryproposal/{} {} by {reviewer} (digest {digest})\n",
            written.name_any(),
            verdict.past()
        )),
        _ => serialize(&written, output),
    }
}

/// Records the decision on the proposal as read: the one write `approve`, `reject` and the
/// dashboard's buttons make, so a decision means the same wherever it was taken.
pub async fn write_decision(
    api: &Api<MemoryProposal>,
    proposal: &MemoryProposal,
    verdict: Verdict,
    digest: &str,
    reviewer: &str,
    comment: Option<&str>,
) -> Result<MemoryProposal, kube::Error> {
    let patch = approval_patch(proposal, verdict.decision(), digest, reviewer, comment)
        .map_err(|message| kube::Error::Service(message.into()))?;
    api.patch(&proposal.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

/// A failed decision write as a person reads it: a conflict says to look again, anything else
/// is the API server's own answer (a denial by RBAC or the approval policy among them).
pub fn decision_error(name: &str, namespace: &str, error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 409 => format!(
            "the proposal changed since you read it; run `kubectl dream diff {name} {}` again",
            namespace_flag(namespace)
        ),
        _ => api_error(&format!("cannot write the decision on memoryproposal {name}"), error),
    }
}

/// The digest to record, when the proposal can be decided now; otherwise why not.
///
/// Refused: not yet seen by the operator (no `status.digest`), content that no longer matches
/// that digest (tampered), a decision already made (final), a phase other than `Pending`
/// (decided by policy, or final), and a `--digest` that is not the proposal's (the reviewer
/// saw something else).
pub fn check_decidable(proposal: &MemoryProposal, reviewed: Option<&str>) -> Result<String, String> {
    let name = proposal.name_any();
    let digest = match reviewable(proposal) {
        Reviewable::Open { digest } => digest,
        Reviewable::Unseen => {
            return Err(format!(
                "memoryproposal {name} is not yet seen by the operator (no status.digest); is the operator running? Try again in a moment"
            ));
        }
        Reviewable::Tampered { digest } => {
            return Err(format!(
                "memoryproposal {name} is tampered: its content no longer matches the digest {digest} the operator recorded; it can never be approved or rejected"
            ));
        }
        Reviewable::Decided { approval, .. } => {
            let by = approval
                .reviewer
                .as_deref()
                .map(|r| format!(" by {r}"))
                .unwrap_or_default();
            return Err(format!(
                "memoryproposal {name} is already {:?}{by}; a decision is final",
                approval.decision
            ));
        }
        Reviewable::Settled { phase, .. } => {
            return Err(format!(
                "memoryproposal {name} is {}; there is nothing left to decide",
                phase.as_str()
            ));
        }
    };
    if let Some(reviewed) = reviewed
        && bare_digest(reviewed) != bare_digest(digest)
    {
        return Err(format!(
            "memoryproposal {name} has digest {digest}, not the {reviewed} you reviewed; run `kubectl dream diff {name}` again"
        ));
    }
    Ok(digest.to_string())
}

/// The merge patch that records the decision, bound to the resource version that was read.
pub fn approval_patch(
    proposal: &MemoryProposal,
    decision: Decision,
    digest: &str,
    reviewer: &str,
    comment: Option<&str>,
) -> Result<Value, String> {
    let resource_version = proposal
        .resource_version()
        .ok_or_else(|| format!("memoryproposal {} has no resourceVersion", proposal.name_any()))?;
    let mut approval = json!({"decision": decision, "digest": digest, "reviewer": reviewer});
    if let Some(comment) = comment.filter(|c| !c.trim().is_empty()) {
        approval["comment"] = json!(comment);
    }
    Ok(json!({
        "metadata": {"resourceVersion": resource_version},
        "spec": {"approval": approval}
    }))
}

#[cfg(test)]
mod tests {
    use reverie_api::test_support::{MemoryProposalBuilder, lesson};

    use crate::api::memory_proposal::Phase;

    use super::*;

    fn proposal() -> MemoryProposal {
        MemoryProposalBuilder::new("support-dream-1")
            .namespace("team")
            .resource_version("42")
            .base(1, "")
            .summary("s")
            .change(lesson("a", 3, &[]))
            .seen_by_operator()
            .build()
    }

    #[test]
    fn the_patch_carries_decision_digest_reviewer_comment_and_resource_version() {
        let p = proposal();
        let digest = check_decidable(&p, None).unwrap();
        let patch = approval_patch(&p, Decision::Approved, &digest, "ana", Some("looks right")).unwrap();
        assert_eq!(
            patch,
            json!({
                "metadata": {"resourceVersion": "42"},
                "spec": {"approval": {"decision": "Approved", "digest": digest, "reviewer": "ana", "comment": "looks right"}}
            })
        );
        let patch = approval_patch(&p, Decision::Rejected, &digest, "ana", None).unwrap();
        assert_eq!(patch["spec"]["approval"].get("comment"), None);
        assert_eq!(patch["spec"]["approval"]["decision"], "Rejected");
    }

    #[test]
    fn refusals_say_why() {
        let p = proposal();
        let digest = p.status.as_ref().unwrap().digest.clone().unwrap();
        // The reviewed digest, with or without its prefix.
        assert_eq!(check_decidable(&p, Some(&digest)).unwrap(), digest);
        assert!(check_decidable(&p, Some(digest.trim_start_matches("sha256:"))).is_ok());
        let err = check_decidable(&p, Some(&format!("sha256:{}", "0".repeat(64)))).unwrap_err();
        assert!(err.contains("not the sha256:000"), "{err}");

        let mut unseen = p.clone();
        unseen.status = None;
        assert!(
            check_decidable(&unseen, None)
                .unwrap_err()
                .contains("not yet seen by the operator")
        );

        let mut tampered = p.clone();
        tampered.spec.summary = "changed".into();
        assert!(check_decidable(&tampered, None).unwrap_err().contains("tampered"));

        let mut decided = p.clone();
        decided.spec.approval = Some(crate::api::memory_proposal::Approval {
            decision: Decision::Rejected,
            digest: Some(digest.clone()),
            reviewer: Some("bob".into()),
            comment: None,
        });
        let err = check_decidable(&decided, None).unwrap_err();
        assert_eq!(
            err,
            "memoryproposal support-dream-1 is already Rejected by bob; a decision is final"
        );

        for phase in [
            Phase::Applied,
            Phase::Superseded,
            Phase::Expired,
            Phase::Invalid,
            Phase::Applying,
            Phase::Conflicted,
        ] {
            let mut done = p.clone();
            done.status.as_mut().unwrap().phase = Some(phase);
            let err = check_decidable(&done, None).unwrap_err();
            assert!(err.contains(phase.as_str()), "{err}");
        }
    }
}
