//! `MemoryProposal`: a dream's proposed change to an agent's memory, and its approval.
//!
//! Everything in `spec` except `approval` is immutable once created, and an approval decision is
//! final. The CRD carries both rules as CEL (`x-kubernetes-validations`) for API servers that
//! enforce them; the operator checks the content digest itself in any case, because older API
//! servers drop CEL rules silently.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LocalObjectReference;

/// CEL: the proposal's content never changes after creation (only `approval` may be set).
pub const IMMUTABLE_CONTENT_RULE: &str = "self.agentRef == oldSelf.agentRef && self.baseRevision == oldSelf.baseRevision \
     && self.baseDigest == oldSelf.baseDigest && self.summary == oldSelf.summary && self.changes == oldSelf.changes \
     && has(self.stats) == has(oldSelf.stats) && (!has(self.stats) || self.stats == oldSelf.stats) \
     && has(self.source) == has(oldSelf.source) && (!has(self.source) || self.source == oldSelf.source) \
     && has(self.effects) == has(oldSelf.effects) && (!has(self.effects) || self.effects == oldSelf.effects)";

/// CEL: once `approval.decision` is set, the approval is final.
pub const FINAL_DECISION_RULE: &str = "!has(oldSelf.approval) || !has(oldSelf.approval.decision) \
     || (has(self.approval) && self.approval == oldSelf.approval)";

/// The most changes one proposal may carry (keeps review humane and CEL cost bounded).
pub const MAX_CHANGES: usize = 500;

/// Who created a proposal, as the API server authenticated them. The approval policy
/// (config/rbac/approval-policy.yaml) checks it on create, keeps it fixed, and refuses a decision
/// by the same user.
pub const CREATED_BY_ANNOTATION: &str = "reverie.dev/created-by";

/// A proposed change to an agent's memory.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "reverie.dev",
    version = "v1alpha1",
    kind = "MemoryProposal",
    namespaced,
    status = "MemoryProposalStatus",
    shortname = "mp",
    category = "reverie",
    derive = "PartialEq",
    doc = "A proposed change to an agent's memory. Only spec.approval may be set after creation.",
    printcolumn(name = "Agent", type_ = "string", json_path = ".spec.agentRef.name"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Changes", type_ = "integer", json_path = ".status.changeCount"),
    printcolumn(name = "Evidence", type_ = "integer", json_path = ".status.strongestEvidence"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new(IMMUTABLE_CONTENT_RULE).message("the content of a MemoryProposal is immutable: only spec.approval may be set; create a new proposal that supersedes this one instead"),
    validation = Rule::new(FINAL_DECISION_RULE).message("spec.approval is final once a decision (Approved or Rejected) is set"),
)]
#[serde(rename_all = "camelCase")]
pub struct MemoryProposalSpec {
    /// The agent whose memory this proposal changes.
    pub agent_ref: LocalObjectReference,
    /// The memory revision the changes were computed against.
    pub base_revision: u64,
    /// sha256 of the base revision's canonical document.
    #[schemars(length(max = 128))]
    pub base_digest: String,
    /// What the dream learned, in a few sentences for the reviewer.
    #[schemars(length(max = 16384))]
    pub summary: String,
    /// The changes, in the order they apply.
    #[schemars(length(max = 500))]
    pub changes: Vec<ProposedChange>,
    /// How the pass went: sessions, tokens, cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<ProposalStats>,
    /// Where the proposal came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ProposalSource>,
    /// The measured effect of the lessons the agent's memory holds (regressed first): context
    /// for the reviewer, and the rationale of archives the pass proposes for their effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub effects: Vec<super::effect::LessonEffect>,
    /// The decision; the only field that may change after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// One change to the memory document.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProposedChange {
    pub op: ChangeOp,
    /// The entry changed (Update, Archive, Move, Reinforce) or created (Add); Merge keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub id: Option<String>,
    /// Merge: the entries folded into `id` (they are archived).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 128)))]
    pub ids: Vec<String>,
    /// The section the entry lives in after the change (Add, Move).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub section: Option<String>,
    /// The entry text before the change, for review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub before: Option<String>,
    /// The entry text after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub after: Option<String>,
    /// The sessions that back the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// Why the change is proposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub rationale: Option<String>,
}

/// What a change does to the memory document.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ChangeOp {
    Add,
    Update,
    Archive,
    Merge,
    Move,
    Reinforce,
}

/// Evidence behind a change, counted in distinct sessions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// Distinct sessions that show the pattern.
    pub count: u32,
    /// A few of those sessions' ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(max = 253)))]
    pub sessions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Time>,
    /// Distinct tasks (or intents) among the sessions, when sessions carry such labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u32>,
    /// The counts and tests behind the change, as a reviewer reads them: success rates with
    /// and without, p-values, the within-task comparison, how sessions got past an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    pub numbers: Option<String>,
    /// The label segment (`key=value`) all the sessions share: the lesson holds there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 317))]
    pub segment: Option<String>,
    /// The pattern the sessions were counted under: later sessions are checked for it to
    /// measure whether the lesson helped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<super::effect::EvidencePattern>,
}

/// How a dream pass went.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProposalStats {
    pub sessions_reviewed: u64,
    #[serde(default)]
    pub lines_skipped: u64,
    #[serde(default)]
    pub tokens_in: u64,
    #[serde(default)]
    pub tokens_out: u64,
    /// Estimated cost in US dollars, as a decimal string (e.g. `0.0123`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_cost: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflector: Option<String>,
}

/// Where a proposal came from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProposalSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dream_schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The proposal this one replaces (an edit of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    /// Set on a rollback proposal: the revision it restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restores_revision: Option<u64>,
}

/// A reviewer's decision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub decision: Decision,
    /// When set, must equal `status.digest`: the approval is bound to exactly what was reviewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(sha256:)?[0-9a-f]{64}$"))]
    pub digest: Option<String>,
    /// Who decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub reviewer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub comment: Option<String>,
}

/// A final decision.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Decision {
    Approved,
    Rejected,
}

/// Lifecycle of a proposal.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    #[default]
    Pending,
    Approved,
    Applying,
    Applied,
    Rejected,
    Conflicted,
    Superseded,
    Expired,
    Tampered,
    Failed,
    /// The content can never be applied (e.g. an Add without text); see the `Accepted` condition.
    Invalid,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Approved => "Approved",
            Phase::Applying => "Applying",
            Phase::Applied => "Applied",
            Phase::Rejected => "Rejected",
            Phase::Conflicted => "Conflicted",
            Phase::Superseded => "Superseded",
            Phase::Expired => "Expired",
            Phase::Tampered => "Tampered",
            Phase::Failed => "Failed",
            Phase::Invalid => "Invalid",
        }
    }
}

/// Observed state of a proposal.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryProposalStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Accepted`, `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// sha256 of the canonical spec without `approval`, recorded on first sight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Number of changes (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_count: Option<u32>,
    /// The largest evidence count among the changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strongest_evidence: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<u64>,
    /// sha256 of the memory revision the proposal produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// The base revision the changes were rebased from, when they were rebased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebased_from: Option<u64>,
}

impl MemoryProposal {
    /// Records `user` as the proposal's creator ([`CREATED_BY_ANNOTATION`]).
    pub fn record_creator(&mut self, user: impl Into<String>) {
        self.metadata
            .annotations
            .get_or_insert_default()
            .insert(CREATED_BY_ANNOTATION.to_string(), user.into());
    }
}

impl MemoryProposalSpec {
    /// `sha256:<hex>` of the canonical JSON of the spec without `approval`: what a reviewer saw.
    ///
    /// Canonical means object keys sorted (serde_json's default map is ordered) and no
    /// insignificant whitespace, so the digest depends on content only.
    pub fn content_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let content = Self {
            approval: None,
            ..self.clone()
        };
        // Serialising plain data into a Value cannot fail.
        let value = serde_json::to_value(&content).unwrap_or_default();
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
    }

    /// The largest evidence count among the changes.
    pub fn strongest_evidence(&self) -> Option<u32> {
        self.changes
            .iter()
            .filter_map(|c| c.evidence.as_ref().map(|e| e.count))
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MemoryProposalSpec {
        serde_json::from_value(serde_json::json!({
            "agentRef": {"name": "support"},
            "baseRevision": 1,
            "baseDigest": "sha256:00",
            "summary": "learned",
            "changes": [{"op": "Add", "section": "lessons", "after": "Use the billing id", "evidence": {"count": 4}}]
        }))
        .unwrap()
    }

    #[test]
    fn digest_ignores_approval_but_not_content() {
        let base = spec();
        let mut approved = base.clone();
        approved.approval = Some(Approval {
            decision: Decision::Approved,
            digest: None,
            reviewer: Some("ana".into()),
            comment: None,
        });
        assert_eq!(base.content_digest(), approved.content_digest());
        let mut edited = base.clone();
        edited.changes[0].after = Some("Use the email".into());
        assert_ne!(base.content_digest(), edited.content_digest());
        assert!(base.content_digest().starts_with("sha256:") && base.content_digest().len() == 71);
    }

    #[test]
    fn strongest_evidence_is_the_max() {
        let mut s = spec();
        assert_eq!(s.strongest_evidence(), Some(4));
        s.changes.clear();
        assert_eq!(s.strongest_evidence(), None);
    }
}
