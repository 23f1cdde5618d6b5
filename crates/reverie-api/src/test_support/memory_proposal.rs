//! [`MemoryProposalBuilder`]: a MemoryProposal as a dream pass or a reviewer writes it, and
//! the changes tests put in one ([`lesson`], [`update`]).

use crate::LocalObjectReference;
use crate::memory_proposal::{
    ChangeOp, Evidence, MemoryProposal, MemoryProposalSpec, MemoryProposalStatus, Phase, ProposalSource, ProposedChange,
};

/// A MemoryProposal named `name` for agent `support` on revision 1 (digest `sha256:00`),
/// summarised "learned", with no changes until [`change`](Self::change) adds them.
///
/// ```ignore
/// MemoryProposalBuilder::new("support-1").change(lesson("Use the billing id.", 4, &["s1"])).build()
/// ```
pub struct MemoryProposalBuilder {
    proposal: MemoryProposal,
    seen_by_operator: bool,
}

impl MemoryProposalBuilder {
    pub fn new(name: &str) -> Self {
        let spec = MemoryProposalSpec {
            agent_ref: LocalObjectReference { name: "support".into() },
            base_revision: 1,
            base_digest: "sha256:00".into(),
            summary: "learned".into(),
            changes: Vec::new(),
            stats: None,
            source: None,
            effects: Vec::new(),
            approval: None,
        };
        Self {
            proposal: MemoryProposal::new(name, spec),
            seen_by_operator: false,
        }
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.proposal.metadata.namespace = Some(namespace.into());
        self
    }

    pub fn uid(mut self, uid: &str) -> Self {
        self.proposal.metadata.uid = Some(uid.into());
        self
    }

    /// The version a reviewer read, which a decision is bound to.
    pub fn resource_version(mut self, version: &str) -> Self {
        self.proposal.metadata.resource_version = Some(version.into());
        self
    }

    /// The agent whose memory it changes.
    pub fn agent(mut self, name: &str) -> Self {
        self.proposal.spec.agent_ref.name = name.into();
        self
    }

    /// The memory revision (and its digest) the changes were made against.
    pub fn base(mut self, revision: u64, digest: &str) -> Self {
        self.proposal.spec.base_revision = revision;
        self.proposal.spec.base_digest = digest.into();
        self
    }

    pub fn summary(mut self, summary: &str) -> Self {
        self.proposal.spec.summary = summary.into();
        self
    }

    pub fn change(mut self, change: ProposedChange) -> Self {
        self.proposal.spec.changes.push(change);
        self
    }

    /// Written by the pass of `schedule` in Job `job`.
    pub fn dreamed_by(mut self, schedule: &str, job: &str) -> Self {
        self.proposal.spec.source = Some(ProposalSource {
            dream_schedule: Some(schedule.into()),
            job: Some(job.into()),
            ..ProposalSource::default()
        });
        self
    }

    /// The status the operator writes on first sight: `Pending`, with the content digest of
    /// the spec as built.
    pub fn seen_by_operator(mut self) -> Self {
        self.seen_by_operator = true;
        self
    }

    pub fn build(mut self) -> MemoryProposal {
        if self.seen_by_operator {
            self.proposal.status = Some(MemoryProposalStatus {
                phase: Some(Phase::Pending),
                digest: Some(self.proposal.spec.content_digest()),
                ..MemoryProposalStatus::default()
            });
        }
        self.proposal
    }
}

/// A new lesson `text` in section `lessons`, seen in `count` sessions (`sessions` as
/// examples).
pub fn lesson(text: &str, count: u32, sessions: &[&str]) -> ProposedChange {
    ProposedChange {
        section: Some("lessons".into()),
        after: Some(text.into()),
        evidence: Some(evidence(count, sessions)),
        ..change(ChangeOp::Add)
    }
}

/// Entry `id` reworded to `text`, seen in `count` sessions.
pub fn update(id: &str, text: &str, count: u32) -> ProposedChange {
    ProposedChange {
        id: Some(id.into()),
        after: Some(text.into()),
        evidence: Some(evidence(count, &[])),
        ..change(ChangeOp::Update)
    }
}

fn change(op: ChangeOp) -> ProposedChange {
    ProposedChange {
        op,
        id: None,
        ids: Vec::new(),
        section: None,
        before: None,
        after: None,
        evidence: None,
        rationale: None,
    }
}

fn evidence(count: u32, sessions: &[&str]) -> Evidence {
    Evidence {
        count,
        sessions: sessions.iter().map(|s| s.to_string()).collect(),
        first_seen: None,
        last_seen: None,
        tasks: None,
        numbers: None,
        segment: None,
        pattern: None,
    }
}
