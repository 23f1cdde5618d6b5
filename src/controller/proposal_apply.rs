//! Applying an approved MemoryProposal to its agent's memory, exactly once.
//!
//! The update written for a proposal carries a stable id (`proposal/<name>/<digest>`), which
//! every revision records. Before writing, the revisions still kept are searched for that id:
//! an operator killed after writing and before recording `Applied` finds its own revision on
//! restart instead of applying the proposal a second time. The write itself is conditional on
//! the revision read, so two writers never overwrite each other.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;
use kube::{Api, Resource, ResourceExt};

use super::{Context, Error, Result};
use crate::api::agent::MemoryStore as StoreSpec;
use crate::api::{Agent, MemoryProposal};
use crate::memory::rebase::rebase;
use crate::proposal::{Origin, to_changes};
use crate::store::configmap::ConfigMapStore;
use crate::store::{AGENT_LABEL, Committed, MemoryStore, RevisionInfo, StoreError, Update};

/// How many times a write that lost a race with another writer is recomputed and retried
/// within one reconcile before the reconcile gives up and is requeued.
const CONFLICT_RETRIES: usize = 3;

/// What applying a proposal came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The memory holds the proposal as `revision` (now, or since an earlier attempt).
    Applied {
        revision: u64,
        digest: String,
        rebased_from: Option<u64>,
    },
    /// The base moved on and some changes touch entries changed since: never overwritten.
    Conflicted(Vec<String>),
    /// The proposal can never apply (the reason says why); memory is unchanged.
    Failed(String),
}

/// The id of the memory update a proposal becomes.
pub fn update_id(proposal: &MemoryProposal, digest: &str) -> String {
    let short = digest.trim_start_matches("sha256:").get(..12).unwrap_or(digest);
    format!("proposal/{}/{short}", proposal.name_any())
}

/// Applies `proposal` (approved by `approved_by`) to `agent`'s memory.
pub async fn apply(
    ctx: &Context,
    proposal: &MemoryProposal,
    agent: &Agent,
    digest: &str,
    approved_by: &str,
) -> Result<Outcome> {
    if let StoreSpec::PersistentVolumeClaim(_) = agent.spec.memory.store {
        return Ok(Outcome::Failed(
            "applying proposals to a PersistentVolumeClaim memory is not supported yet; use the ConfigMap store".into(),
        ));
    }
    let namespace = agent.namespace().unwrap_or_default();
    let id = update_id(proposal, digest);
    if let Some(info) = applied_before(ctx, &namespace, &agent.name_any(), &id).await? {
        return Ok(Outcome::Applied {
            revision: info.revision,
            digest: info.digest,
            rebased_from: None,
        });
    }
    let store = ConfigMapStore::new(
        ctx.client.clone(),
        &namespace,
        &agent.name_any(),
        agent.controller_owner_ref(&()),
    );
    let origin = Origin {
        proposal: proposal.meta().name.as_deref().unwrap_or_default(),
        approved_by: Some(approved_by),
        at: proposal.creation_timestamp().map_or_else(|| ctx.clock.now(), |t| t.0),
    };
    for _ in 0..CONFLICT_RETRIES {
        match attempt(&store, proposal, agent, &id, &origin).await {
            Err(StoreError::Conflict(_)) => continue,
            Err(StoreError::Kube(kube::Error::Api(status))) if status.code == 409 => continue,
            Err(StoreError::Kube(e)) => return Err(Error::Kube(e)),
            Err(other) => return Ok(Outcome::Failed(other.to_string())),
            Ok(outcome) => return Ok(outcome),
        }
    }
    Err(Error::Conflict(format!(
        "memory of {} kept changing while applying {}",
        agent.name_any(),
        proposal.name_any()
    )))
}

/// One read-compute-write round: the changes read against the proposal's base, carried over
/// to the current revision when the base moved on, written as the next revision.
async fn attempt(
    store: &ConfigMapStore,
    proposal: &MemoryProposal,
    agent: &Agent,
    id: &str,
    origin: &Origin<'_>,
) -> Result<Outcome, StoreError> {
    let spec = &proposal.spec;
    let Some(current) = store.load().await? else {
        return Ok(Outcome::Failed("the agent has no memory yet".into()));
    };
    let on_base = current.info.revision == spec.base_revision;
    if on_base && current.info.digest != spec.base_digest && !spec.base_digest.is_empty() {
        return Ok(Outcome::Failed(format!(
            "revision {} has digest {} but the proposal was computed on {}",
            spec.base_revision, current.info.digest, spec.base_digest
        )));
    }
    let base = if on_base {
        current.clone()
    } else {
        match store.load_revision(spec.base_revision).await? {
            Some(base) => base,
            None => {
                return Ok(Outcome::Conflicted(vec![format!(
                    "base revision {} is no longer kept (memory is at revision {}), so the changes cannot be checked against what changed since",
                    spec.base_revision, current.info.revision
                )]));
            }
        }
    };
    let changes = match to_changes(&spec.changes, &base.doc, origin) {
        Ok(changes) => changes,
        Err(e) => return Ok(Outcome::Failed(e.to_string())),
    };
    let (changes, rebased_from) = if on_base {
        (changes, None)
    } else {
        match rebase(&base.doc, &current.doc, &changes) {
            Ok(changes) => (changes, Some(spec.base_revision)),
            Err(conflicts) => return Ok(Outcome::Conflicted(conflicts.iter().map(ToString::to_string).collect())),
        }
    };
    let update = Update {
        id: id.to_string(),
        agent: agent.name_any(),
        base_revision: current.info.revision,
        base_digest: Some(current.info.digest.clone()),
        instructions: agent.spec.instructions.clone(),
        protected: agent.spec.memory.protected_sections.clone(),
        changes,
        history_limit: agent.spec.memory.revision_history_limit,
        now: origin.at,
    };
    match store.commit(&update).await? {
        Committed::Done(info) => Ok(Outcome::Applied {
            revision: info.revision,
            digest: info.digest,
            rebased_from,
        }),
        Committed::InProgress { job } => Ok(Outcome::Failed(format!("unexpected apply Job {job}"))),
    }
}

/// The revision written by update `id`, if it is the current one or an earlier kept one. A
/// snapshot newer than the current revision is an interrupted write, not an applied one.
async fn applied_before(ctx: &Context, namespace: &str, agent: &str, id: &str) -> Result<Option<RevisionInfo>> {
    let configmaps = Api::<ConfigMap>::namespaced(ctx.client.clone(), namespace);
    let listed = configmaps
        .list_metadata(&ListParams::default().labels(&format!("{AGENT_LABEL}={agent}")))
        .await?;
    let current_name = crate::store::configmap::current_name(agent);
    let info = |object: &kube::core::PartialObjectMeta<ConfigMap>| {
        object
            .metadata
            .annotations
            .as_ref()
            .and_then(RevisionInfo::from_annotations)
    };
    let Some(current) = listed
        .items
        .iter()
        .find(|o| o.metadata.name.as_deref() == Some(current_name.as_str()))
        .and_then(info)
    else {
        return Ok(None);
    };
    Ok(listed
        .items
        .iter()
        .filter_map(info)
        .filter(|revision| revision.update == id && revision.revision <= current.revision)
        .max_by_key(|revision| revision.revision))
}

/// The instant a proposal times out, if its agent's timeout parses.
pub fn expiry(proposal: &MemoryProposal, agent: &Agent) -> Option<Timestamp> {
    let created = proposal.creation_timestamp()?.0;
    let timeout = crate::api::duration::parse(&agent.spec.dreaming.approval_timeout).ok()?;
    created.checked_add(jiff::SignedDuration::try_from(timeout).ok()?).ok()
}
