//! Where an agent's memory lives: one trait, two stores.
//!
//! - [`configmap::ConfigMapStore`] (default): ConfigMap `<agent>-memory` holds `memory.yaml` and
//!   `MEMORY.md`; every revision N also leaves an immutable `<agent>-memory-r<N>`.
//! - [`pvc::PvcStore`]: `memory.yaml`, `MEMORY.md` and `revisions/` inside a claim. The
//!   operator cannot write a volume, so it commits through a short Job running
//!   `reverie memory apply` ([`files`] does the atomic write).
//!
//! A revision is identified by its number and the digest of its canonical document; writing
//! the same revision twice is a no-op, writing over a revision that moved on is a conflict.

pub mod configmap;
pub mod files;
pub mod pvc;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::memory::{self, MemoryDocument};

/// Annotation: the revision number a memory object holds.
pub const REVISION_ANNOTATION: &str = "reverie.dev/revision";
/// Annotation: the digest of the canonical `memory.yaml`.
pub const DIGEST_ANNOTATION: &str = "reverie.dev/digest";
/// Annotation: estimated tokens of `MEMORY.md`.
pub const TOKENS_ANNOTATION: &str = "reverie.dev/tokens";
/// Annotation: bytes of `memory.yaml` + `MEMORY.md`.
pub const BYTES_ANNOTATION: &str = "reverie.dev/bytes";
/// Annotation: loaded entries.
pub const ENTRIES_ANNOTATION: &str = "reverie.dev/entries";
/// Label on every object holding an agent's memory.
pub const AGENT_LABEL: &str = "reverie.dev/agent";
/// Label on revision snapshots, whose value is the revision number.
pub const REVISION_LABEL: &str = "reverie.dev/revision";
/// Key of the canonical document.
pub const MEMORY_YAML: &str = "memory.yaml";
/// Key of the rendered memory the agent reads.
pub const MEMORY_MD: &str = "MEMORY.md";
/// The file next to `MEMORY.md` naming its revision: a session may record it
/// (`memoryRevision`), so a lesson's effect is attributed to the revision the agent ran with.
pub const REVISION_FILE: &str = "REVISION";
/// Annotation: the id of the update that produced the revision (for idempotent retries).
pub const UPDATE_ANNOTATION: &str = "reverie.dev/update";
/// Annotation: hash of the agent spec parts the revision holds (instructions, protected list).
pub const SPEC_ANNOTATION: &str = "reverie.dev/spec";

/// Hash of what the memory takes from the Agent spec: its instructions and protected sections
/// (normalised as the document keeps them). Equal hashes mean the memory is in sync with the
/// spec, which the operator can tell even when it cannot read the memory (PVC store).
pub fn spec_hash(instructions: &str, protected: &[String]) -> String {
    let mut normalised = MemoryDocument::default();
    normalised.set_protected(protected);
    crate::naming::short_hash(&format!("{instructions}\u{0}{}", normalised.protected.join(",")))
}

/// Identity and size of one memory revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionInfo {
    pub revision: u64,
    pub digest: String,
    pub tokens: u64,
    pub bytes: u64,
    pub entries: u64,
    /// The update that produced this revision.
    #[serde(default)]
    pub update: String,
    /// [`spec_hash`] of the instructions and protected sections this revision holds.
    #[serde(default)]
    pub spec: String,
}

impl RevisionInfo {
    /// The annotations that describe this revision on a memory object.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (REVISION_ANNOTATION.to_string(), self.revision.to_string()),
            (DIGEST_ANNOTATION.to_string(), self.digest.clone()),
            (TOKENS_ANNOTATION.to_string(), self.tokens.to_string()),
            (BYTES_ANNOTATION.to_string(), self.bytes.to_string()),
            (ENTRIES_ANNOTATION.to_string(), self.entries.to_string()),
            (UPDATE_ANNOTATION.to_string(), self.update.clone()),
            (SPEC_ANNOTATION.to_string(), self.spec.clone()),
        ])
    }

    /// Reads the annotations back; `None` when any is missing or malformed.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Option<Self> {
        let number = |key: &str| annotations.get(key)?.parse::<u64>().ok();
        Some(Self {
            revision: number(REVISION_ANNOTATION)?,
            digest: annotations.get(DIGEST_ANNOTATION)?.clone(),
            tokens: number(TOKENS_ANNOTATION)?,
            bytes: number(BYTES_ANNOTATION)?,
            entries: number(ENTRIES_ANNOTATION)?,
            update: annotations.get(UPDATE_ANNOTATION).cloned().unwrap_or_default(),
            spec: annotations.get(SPEC_ANNOTATION).cloned().unwrap_or_default(),
        })
    }
}

/// A revision rendered and ready to store: the document, its YAML and Markdown, and its info.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub info: RevisionInfo,
    pub doc: MemoryDocument,
    pub yaml: String,
    pub markdown: String,
}

impl Snapshot {
    /// Renders `doc` (normalised first) as revision `revision` of `agent`'s memory, produced
    /// by update `update`.
    pub fn build(agent: &str, revision: u64, update: &str, mut doc: MemoryDocument) -> Self {
        doc.normalize();
        let yaml = memory::to_yaml(&doc);
        let markdown = memory::render_markdown(agent, &doc);
        let info = RevisionInfo {
            revision,
            digest: memory::codec::digest_of(&yaml),
            tokens: memory::tokens::estimate_tokens(&markdown) as u64,
            bytes: (yaml.len() + markdown.len()) as u64,
            entries: doc.entry_count() as u64,
            update: update.to_string(),
            spec: spec_hash(doc.instructions().unwrap_or_default(), &doc.protected),
        };
        Self {
            info,
            doc,
            yaml,
            markdown,
        }
    }

    /// Reads a stored revision back, checking the document against the digest recorded with it,
    /// so a hand-edited or damaged memory is refused rather than silently loaded.
    pub fn parse(agent: &str, recorded: &RevisionInfo, yaml: &str) -> Result<Self, StoreError> {
        let revision = recorded.revision;
        let doc = memory::from_yaml(yaml).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let snapshot = Self::build(agent, revision, &recorded.update, doc);
        if recorded.digest != snapshot.info.digest {
            return Err(StoreError::Corrupt(format!(
                "revision {revision} records digest {} but its memory.yaml hashes to {}",
                recorded.digest, snapshot.info.digest
            )));
        }
        Ok(snapshot)
    }
}

/// What went wrong reading or writing memory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the memory is {bytes} bytes, over the {limit}-byte limit of a ConfigMap store; set spec.memory.store.persistentVolumeClaim to keep a memory this large (nothing was truncated)"
    )]
    TooLarge { bytes: u64, limit: u64 },
    #[error("memory revision conflict: {0}")]
    Conflict(String),
    #[error("stored memory is unreadable: {0}")]
    Corrupt(String),
    #[error("the update was refused: {0}")]
    Rejected(String),
    /// The proposal's changes no longer fit the memory (it moved on since the proposal's base).
    #[error("the proposal conflicts with the current memory: {}", .0.join("; "))]
    Conflicted(Vec<String>),
    #[error("{0}")]
    Unavailable(String),
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("memory volume I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// A short, bounded label for metrics and condition reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::TooLarge { .. } => "MemoryTooLarge",
            StoreError::Conflict(_) => "MemoryConflict",
            StoreError::Corrupt(_) => "MemoryCorrupt",
            StoreError::Rejected(_) => "UpdateRejected",
            StoreError::Conflicted(_) => "ProposalConflicted",
            StoreError::Unavailable(_) => "MemoryUnavailable",
            StoreError::Kube(_) => "KubeApiError",
            StoreError::Io(_) => "MemoryIoError",
        }
    }
}

/// How to get from one revision to the next: the agent's own spec (instructions, protected
/// sections) and the changes of an approved proposal. The same update is computed by the
/// operator (ConfigMap store) or by the apply Job (PVC store), with [`next_snapshot`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Update {
    /// Stable id (e.g. `proposal/support-7` or `agent-spec/3`): a retried update is recognised.
    pub id: String,
    pub agent: String,
    /// The revision the update applies to (0: the memory does not exist yet).
    pub base_revision: u64,
    /// Digest of the base revision, checked before applying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_digest: Option<String>,
    pub instructions: String,
    #[serde(default)]
    pub protected: Vec<String>,
    #[serde(default)]
    pub changes: Vec<memory::change::Change>,
    /// An approved proposal to read against the memory where it is written; its changes are
    /// resolved into `changes` there (see [`crate::proposal::resolve`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<crate::proposal::ProposalUpdate>,
    /// Snapshots of earlier revisions kept for rollback.
    pub history_limit: u32,
    pub now: jiff::Timestamp,
}

/// What applying an update to the current revision gives.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// The update was applied before (same id at base + 1): nothing to do.
    AlreadyApplied(RevisionInfo),
    /// The document would not change: nothing to write.
    Unchanged(RevisionInfo),
    /// Write this snapshot as the next revision.
    Write(Box<Snapshot>),
}

/// Computes the revision after `current` for `update`. Pure, shared by both stores.
pub fn next_snapshot(current: Option<&Snapshot>, update: &Update) -> Result<Next, StoreError> {
    let current_revision = current.map_or(0, |c| c.info.revision);
    if let Some(current) = current
        && current.info.update == update.id
        && current.info.revision == update.base_revision + 1
    {
        return Ok(Next::AlreadyApplied(current.info.clone()));
    }
    if current_revision != update.base_revision {
        return Err(StoreError::Conflict(format!(
            "update {} was computed on revision {} but the memory is at revision {current_revision}",
            update.id, update.base_revision
        )));
    }
    if let (Some(current), Some(expected)) = (current, &update.base_digest)
        && &current.info.digest != expected
    {
        return Err(StoreError::Conflict(format!(
            "revision {current_revision} has digest {} but update {} expected {expected}",
            current.info.digest, update.id
        )));
    }
    let mut doc = match current {
        Some(current) => current.doc.clone(),
        None => MemoryDocument::with_instructions(&update.instructions, &update.protected, update.now),
    };
    doc.set_protected(&update.protected);
    doc.set_instructions(&update.instructions, update.now);
    // `apply` returns a normalised document.
    let mut doc = memory::change::apply(&doc, &update.changes).map_err(|e| StoreError::Rejected(e.to_string()))?;
    if let Some(current) = current
        && current.doc == doc
    {
        return Ok(Next::Unchanged(current.info.clone()));
    }
    // Which revision adopted each entry is what its effect is measured from (`dream::effect`).
    doc.stamp_adoption(current.map(|c| &c.doc), current_revision + 1, update.now);
    Ok(Next::Write(Box::new(Snapshot::build(
        &update.agent,
        current_revision + 1,
        &update.id,
        doc,
    ))))
}

/// What a commit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    /// The revision is stored and visible (or was already).
    Done(RevisionInfo),
    /// The revision is being written by the apply Job of that name (PVC store).
    InProgress { job: String },
}

/// Where an agent's memory revisions live (a ConfigMap per revision, files on a volume): read the
/// current one, append the next. Named apart from `api::agent::MemoryStore`, the spec field that
/// chooses one.
pub trait RevisionStore {
    /// The current revision's identity and size, `None` before the first revision.
    fn current(&self) -> impl Future<Output = Result<Option<RevisionInfo>, StoreError>> + Send;
    /// The current revision with its document, where this process can read it.
    fn load(&self) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;
    /// Applies `update` as the next revision. Idempotent: a retried update is recognised.
    fn commit(&self, update: &Update) -> impl Future<Output = Result<Committed, StoreError>> + Send;
}

/// Either store, chosen by the Agent's spec.
pub enum AnyStore {
    ConfigMap(configmap::ConfigMapStore),
    Pvc(pvc::PvcStore),
}

impl RevisionStore for AnyStore {
    async fn current(&self) -> Result<Option<RevisionInfo>, StoreError> {
        match self {
            AnyStore::ConfigMap(store) => store.current().await,
            AnyStore::Pvc(store) => store.current().await,
        }
    }

    async fn load(&self) -> Result<Option<Snapshot>, StoreError> {
        match self {
            AnyStore::ConfigMap(store) => store.load().await,
            AnyStore::Pvc(store) => store.load().await,
        }
    }

    async fn commit(&self, update: &Update) -> Result<Committed, StoreError> {
        match self {
            AnyStore::ConfigMap(store) => store.commit(update).await,
            AnyStore::Pvc(store) => store.commit(update).await,
        }
    }
}
