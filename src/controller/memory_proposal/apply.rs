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
use kube::{Api, ResourceExt};

use crate::api::{Agent, MemoryProposal};
use crate::controller::{Context, Error, Result};
use crate::memory::change::Change;
use crate::proposal::{ProposalUpdate, Unresolved, resolve};
use crate::store::configmap::ConfigMapStore;
use crate::store::pvc::PvcStore;
use crate::store::{AGENT_LABEL, AnyStore, Committed, RevisionInfo, RevisionStore, StoreError, Update};

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
    /// A PVC apply Job is writing it.
    Applying { job: String },
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
    let id = update_id(proposal, digest);
    let update = ProposalUpdate {
        name: proposal.name_any(),
        approved_by: Some(approved_by.to_string()),
        at: proposal.creation_timestamp().map_or_else(|| ctx.clock.now(), |t| t.0),
        base_revision: proposal.spec.base_revision,
        changes: proposal.spec.changes.clone(),
    };
    match ctx.store_for(agent)? {
        AnyStore::ConfigMap(store) => apply_to_configmap(ctx, &store, proposal, agent, &id, &update).await,
        AnyStore::Pvc(store) => apply_to_volume(&store, agent, &id, update).await,
    }
}

/// The memory update for `proposal` on top of `current`.
fn memory_update(
    agent: &Agent,
    id: &str,
    current: &RevisionInfo,
    changes: Vec<Change>,
    proposal: Option<ProposalUpdate>,
    at: Timestamp,
) -> Update {
    Update {
        id: id.to_string(),
        agent: agent.name_any(),
        base_revision: current.revision,
        base_digest: Some(current.digest.clone()),
        instructions: agent.spec.instructions.clone(),
        protected: agent.spec.memory.protected_sections.clone(),
        changes,
        proposal,
        history_limit: agent.spec.memory.revision_history_limit,
        now: at,
    }
}

/// ConfigMap store: the operator reads, resolves and writes itself, retrying lost races.
async fn apply_to_configmap(
    ctx: &Context,
    store: &ConfigMapStore,
    proposal: &MemoryProposal,
    agent: &Agent,
    id: &str,
    update: &ProposalUpdate,
) -> Result<Outcome> {
    let namespace = agent.namespace().unwrap_or_default();
    if let Some(info) = applied_before(ctx, &namespace, &agent.name_any(), id).await? {
        return Ok(Outcome::Applied {
            revision: info.revision,
            digest: info.digest,
            rebased_from: None,
        });
    }
    for _ in 0..CONFLICT_RETRIES {
        match attempt(store, proposal, agent, id, update).await {
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

/// One read-resolve-write round on the ConfigMap store.
async fn attempt(
    store: &ConfigMapStore,
    proposal: &MemoryProposal,
    agent: &Agent,
    id: &str,
    update: &ProposalUpdate,
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
    let base = match on_base {
        true => None,
        false => store.load_revision(spec.base_revision).await?,
    };
    let (changes, rebased_from) = match resolve(
        update,
        current.info.revision,
        &current.doc,
        base.as_ref().map(|b| &b.doc),
    ) {
        Ok(resolved) => resolved,
        Err(Unresolved::Conflicted(conflicts)) => return Ok(Outcome::Conflicted(conflicts)),
        Err(Unresolved::Invalid(message)) => return Ok(Outcome::Failed(message)),
    };
    let write = memory_update(agent, id, &current.info, changes, None, update.at);
    match store.commit(&write).await? {
        Committed::Done(info) => Ok(Outcome::Applied {
            revision: info.revision,
            digest: info.digest,
            rebased_from,
        }),
        Committed::InProgress { job } => Ok(Outcome::Applying { job }),
    }
}

/// PVC store: the operator cannot read the volume, so the apply Job resolves the proposal
/// against the memory it mounts; conflicts come back in its message.
async fn apply_to_volume(store: &PvcStore, agent: &Agent, id: &str, update: ProposalUpdate) -> Result<Outcome> {
    let current = match store.current().await {
        Ok(Some(current)) => current,
        Ok(None) => return Ok(Outcome::Failed("the agent has no memory yet".into())),
        Err(StoreError::Kube(e)) => return Err(Error::Kube(e)),
        Err(other) => return Ok(Outcome::Failed(other.to_string())),
    };
    if current.update == id {
        return Ok(Outcome::Applied {
            revision: current.revision,
            digest: current.digest,
            rebased_from: None,
        });
    }
    let base_revision = update.base_revision;
    let at = update.at;
    let write = memory_update(agent, id, &current, Vec::new(), Some(update), at);
    match store.commit(&write).await {
        Ok(Committed::Done(info)) => Ok(Outcome::Applied {
            revision: info.revision,
            digest: info.digest,
            rebased_from: (info.revision > base_revision + 1).then_some(base_revision),
        }),
        Ok(Committed::InProgress { job }) => Ok(Outcome::Applying { job }),
        Err(StoreError::Conflicted(conflicts)) => Ok(Outcome::Conflicted(conflicts)),
        Err(StoreError::Rejected(message)) => Ok(Outcome::Failed(message)),
        Err(StoreError::Kube(e)) => Err(Error::Kube(e)),
        Err(StoreError::Conflict(message)) => Err(Error::Conflict(message)),
        Err(other) => Ok(Outcome::Failed(other.to_string())),
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
