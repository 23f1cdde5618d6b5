//! `kubectl dream rollback AGENT --to-revision N`: a MemoryProposal that restores revision N,
//! which then goes through the same approval path as a dream's.
//!
//! What the Agent spec sets is not rolled back: the instructions and the protected sections
//! stay as they are now (only the operator writes them, from the spec). Entries added since
//! revision N are archived (a change never deletes), entries archived since are restored, and
//! entries changed since get their revision-N text back.

use std::collections::HashSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

use super::{Output, Session, agent_owner, api_error, namespace_flag, plural, serialize};
use crate::api::agent::MemoryStore;
use crate::api::memory_proposal::{ChangeOp, MAX_CHANGES, MemoryProposalSpec, ProposalSource};
use crate::api::{Agent, LocalObjectReference, MemoryProposal};
use crate::memory::{ArchivedEntry, MemoryDocument};
use crate::store::configmap::ConfigMapStore;
use crate::store::{AGENT_LABEL, REVISION_LABEL, RevisionStore, Snapshot};

pub(super) async fn run(session: &Session, output: Output, agent_name: &str, revision: u64) -> Result<String, String> {
    let agents = Api::<Agent>::namespaced(session.client.clone(), &session.namespace);
    let agent = agents
        .get_opt(agent_name)
        .await
        .map_err(|e| api_error(&format!("cannot read agent {agent_name}"), &e))?
        .ok_or_else(|| format!("agent {agent_name} not found in namespace {}", session.namespace))?;
    if let MemoryStore::PersistentVolumeClaim(pvc) = &agent.spec.memory.store {
        return Err(format!(
            "agent {agent_name} keeps its memory in PersistentVolumeClaim {}, whose revisions this plugin cannot read; rollback works with the ConfigMap store",
            pvc.claim_name
        ));
    }
    let store = ConfigMapStore::new(session.client.clone(), &session.namespace, agent_name, None);
    let current = store
        .load()
        .await
        .map_err(|e| format!("cannot read the current memory of agent {agent_name}: {e}"))?
        .ok_or_else(|| format!("agent {agent_name} has no memory yet (no ConfigMap {agent_name}-memory)"))?;
    if revision == current.info.revision {
        return Err(format!(
            "revision {revision} is the current revision of agent {agent_name}; nothing to roll back"
        ));
    }
    let target = store
        .load_revision(revision)
        .await
        .map_err(|e| format!("cannot read revision {revision} of agent {agent_name}: {e}"))?;
    let Some(target) = target else {
        let kept = kept_revisions(session, agent_name).await?;
        return Err(no_longer_kept(agent_name, revision, &kept));
    };
    let mut proposal = build_rollback(&agent, &current, &target, Timestamp::now())?;
    session.stamp_creator(&mut proposal).await?;
    let name = proposal.name_any();
    let api = Api::<MemoryProposal>::namespaced(session.client.clone(), &session.namespace);
    let created = match api.create(&PostParams::default(), &proposal).await {
        Ok(created) => created,
        Err(kube::Error::Api(status)) if status.code == 409 => {
            return Err(format!(
                "memoryproposal {name} already exists: an earlier rollback proposed restoring revision {revision} over the same memory; review it with `kubectl dream diff {name} {}`",
                namespace_flag(&session.namespace)
            ));
        }
        Err(e) => return Err(api_error(&format!("cannot create memoryproposal {name}"), &e)),
    };
    match output {
        Output::Table => Ok(format!(
            "memoryproposal/{name} created: restores revision {revision} of agent {agent_name} ({})\nReview it with: kubectl dream diff {name} {}\n",
            plural(created.spec.changes.len(), "change", "changes"),
            namespace_flag(&session.namespace)
        )),
        _ => serialize(&created, output),
    }
}

async fn kept_revisions(session: &Session, agent: &str) -> Result<Vec<u64>, String> {
    let configmaps = Api::<ConfigMap>::namespaced(session.client.clone(), &session.namespace);
    let list = configmaps
        .list_metadata(&ListParams::default().labels(&format!("{AGENT_LABEL}={agent},{REVISION_LABEL}")))
        .await
        .map_err(|e| api_error(&format!("cannot list the memory revisions of agent {agent}"), &e))?;
    let mut kept: Vec<u64> = list
        .items
        .iter()
        .filter_map(|m| m.labels().get(REVISION_LABEL)?.parse().ok())
        .collect();
    kept.sort_unstable();
    Ok(kept)
}

/// The refusal for a revision that is not kept, listing those that are.
pub fn no_longer_kept(agent: &str, revision: u64, kept: &[u64]) -> String {
    let list = if kept.is_empty() {
        "none".to_string()
    } else {
        kept.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
    };
    format!(
        "revision {revision} of agent {agent} is not kept (kept revisions: {list}; spec.memory.revisionHistoryLimit sets how many)"
    )
}

/// The document that restores `target` over `current` as far as changes can: `target`, with
/// what only the operator writes (protected sections and their list, pinned entries) as it is
/// in `current`, and with the entries `target` never had archived rather than deleted.
pub fn restoration(current: &MemoryDocument, target: &MemoryDocument, revision: u64, now: Timestamp) -> MemoryDocument {
    let mut doc = target.clone();
    doc.protected = current.protected.clone();
    // Entries whose current form stays: everything in a protected section, and pinned entries.
    let kept_as_is: Vec<(&str, &crate::memory::Entry)> = current
        .entries()
        .filter(|(section, entry)| current.is_protected(section) || entry.pinned)
        .collect();
    let kept_archived: Vec<&ArchivedEntry> = current.archive.iter().filter(|a| a.entry.pinned).collect();
    let fixed: HashSet<&str> = kept_as_is
        .iter()
        .map(|(_, e)| e.id.as_str())
        .chain(kept_archived.iter().map(|a| a.entry.id.as_str()))
        .collect();
    for section in &mut doc.sections {
        section.entries.retain(|e| !fixed.contains(e.id.as_str()));
    }
    doc.sections.retain(|s| !current.is_protected(&s.name));
    doc.archive.retain(|a| !fixed.contains(a.entry.id.as_str()));
    for (section, entry) in kept_as_is {
        doc.section_mut(section).entries.push(entry.clone());
    }
    doc.archive.extend(kept_archived.into_iter().cloned());
    // Entries revision N never had: archived now (if live) or left as they are (if archived).
    let present: HashSet<String> = doc
        .entries()
        .map(|(_, e)| e.id.clone())
        .chain(doc.archive.iter().map(|a| a.entry.id.clone()))
        .collect();
    let mut added_since = Vec::new();
    for (section, entry) in current.entries() {
        if !present.contains(&entry.id) {
            added_since.push(ArchivedEntry {
                entry: entry.clone(),
                section: section.to_string(),
                archived: now,
                reason: format!("not in revision {revision}: archived by the rollback"),
            });
        }
    }
    for archived in &current.archive {
        if !present.contains(&archived.entry.id) {
            added_since.push(archived.clone());
        }
    }
    doc.archive.extend(added_since);
    doc.normalize();
    doc
}

/// The rollback proposal: restores `target` over `current`, owned by the agent, named
/// `<agent>-rollback-r<N>-<hash of both digests>` (the same request twice is the same name).
pub fn build_rollback(
    agent: &Agent,
    current: &Snapshot,
    target: &Snapshot,
    now: Timestamp,
) -> Result<MemoryProposal, String> {
    let agent_name = agent.name_any();
    let revision = target.info.revision;
    let restored = restoration(&current.doc, &target.doc, revision, now);
    let changes = crate::memory::diff(&current.doc, &restored)
        .map_err(|e| format!("revision {revision} cannot be restored with a proposal: {e}"))?;
    if changes.is_empty() {
        return Err(format!(
            "revision {revision} of agent {agent_name} holds the same entries as the current revision {}, apart from what the Agent spec sets (instructions, protected sections): nothing to restore with a proposal; change the Agent spec to restore those",
            current.info.revision
        ));
    }
    if changes.len() > MAX_CHANGES {
        return Err(format!(
            "restoring revision {revision} takes {} changes, more than the {MAX_CHANGES} one proposal may carry",
            changes.len()
        ));
    }
    let proposed = crate::proposal::to_proposed(&changes, &current.doc, &restored);
    let count = |op: ChangeOp| proposed.iter().filter(|c| c.op == op).count();
    let (restored_n, archived_n) = (count(ChangeOp::Add), count(ChangeOp::Archive));
    let other_n = proposed.len() - restored_n - archived_n;
    let summary = format!(
        "Restore revision {revision} ({}) over revision {}: {}, {}, {}. The instructions and protected sections stay as the Agent spec sets them.",
        target.info.digest,
        current.info.revision,
        plural(restored_n, "entry restored", "entries restored"),
        plural(archived_n, "entry archived", "entries archived"),
        plural(other_n, "other change", "other changes"),
    );
    let hash = crate::naming::short_hash(&format!("{}\n{}", current.info.digest, target.info.digest));
    let name = crate::naming::bounded_name(&[&agent_name, "rollback", &format!("r{revision}"), &hash]);
    Ok(MemoryProposal {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: agent.namespace(),
            owner_references: Some(vec![agent_owner(agent)?]),
            ..ObjectMeta::default()
        },
        spec: MemoryProposalSpec {
            agent_ref: LocalObjectReference { name: agent_name },
            base_revision: current.info.revision,
            base_digest: current.info.digest.clone(),
            summary,
            changes: proposed,
            stats: None,
            source: Some(ProposalSource {
                restores_revision: Some(revision),
                ..ProposalSource::default()
            }),
            effects: Vec::new(),
            approval: None,
        },
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use reverie_api::test_support::AgentBuilder;

    use super::*;
    use crate::memory::change::{Change, apply};
    use crate::memory::{Entry, EntryKind, Evidence};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn entry(id: &str, text: &str, created: &str) -> Entry {
        Entry {
            id: id.into(),
            text: text.into(),
            kind: EntryKind::Lesson,
            evidence: Evidence {
                count: 3,
                sessions: vec!["s-1".into(), "s-2".into()],
                ..Evidence::default()
            },
            provenance: None,
            created: ts(created),
            reinforced: None,
            pinned: false,
        }
    }

    fn add(id: &str, text: &str, created: &str) -> Change {
        Change::Add {
            section: "lessons".into(),
            entry: entry(id, text, created),
        }
    }

    fn agent() -> Agent {
        AgentBuilder::new("support")
            .namespace("team")
            .uid("u-1")
            .instructions("Help.")
            .build()
    }

    /// Revisions 1 (instructions), 2 (+ lesson-a, lesson-b) and 3 (new instructions,
    /// + lesson-c, lesson-a reworded, lesson-b archived).
    fn revisions() -> (Snapshot, Snapshot, Snapshot) {
        let r1 = MemoryDocument::with_instructions("Help.", &[], ts("2026-01-01T00:00:00Z"));
        let r2 = apply(
            &r1,
            &[
                add("lesson-a", "Check the account id", "2026-01-02T00:00:00Z"),
                add("lesson-b", "Retry on 429", "2026-01-02T00:00:00Z"),
            ],
        )
        .unwrap();
        let mut r3 = r2.clone();
        r3.set_instructions("Help. Be brief.", ts("2026-01-03T00:00:00Z"));
        let mut reworded = r2.find("lesson-a").unwrap().1.clone();
        reworded.text = "Check the billing account id".into();
        let r3 = apply(
            &r3,
            &[
                add("lesson-c", "Answer in French", "2026-01-03T00:00:00Z"),
                Change::Update { entry: reworded },
                Change::Archive {
                    id: "lesson-b".into(),
                    at: ts("2026-01-03T00:00:00Z"),
                    reason: "stale".into(),
                },
            ],
        )
        .unwrap();
        (
            Snapshot::build("support", 1, "agent-spec/a", r1),
            Snapshot::build("support", 2, "proposal/p2/x", r2),
            Snapshot::build("support", 3, "proposal/p3/y", r3),
        )
    }

    #[test]
    fn a_rollback_proposal_restores_the_entries_and_keeps_the_instructions() {
        let (_, r2, r3) = revisions();
        let now = ts("2026-02-01T00:00:00Z");
        let proposal = build_rollback(&agent(), &r3, &r2, now).unwrap();
        assert!(
            proposal
                .metadata
                .name
                .as_deref()
                .unwrap()
                .starts_with("support-rollback-r2-")
        );
        assert_eq!(proposal.metadata.namespace.as_deref(), Some("team"));
        let owner = &proposal.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Agent", "u-1", Some(true))
        );
        let spec = &proposal.spec;
        assert_eq!(spec.agent_ref.name, "support");
        assert_eq!(
            (spec.base_revision, spec.base_digest.as_str()),
            (3, r3.info.digest.as_str())
        );
        assert_eq!(spec.source.as_ref().unwrap().restores_revision, Some(2));
        assert!(spec.summary.starts_with("Restore revision 2 ("), "{}", spec.summary);
        let ops: Vec<(ChangeOp, &str)> = spec.changes.iter().map(|c| (c.op, c.id.as_deref().unwrap())).collect();
        assert_eq!(
            ops,
            [
                (ChangeOp::Add, "lesson-b"),
                (ChangeOp::Update, "lesson-a"),
                (ChangeOp::Archive, "lesson-c")
            ]
        );
        assert_eq!(spec.changes[1].before.as_deref(), Some("Check the billing account id"));
        assert_eq!(spec.changes[1].after.as_deref(), Some("Check the account id"));
        // Everything the operator checks passes, and applying it gives revision 2's entries
        // under the current instructions.
        assert!(crate::api::rules::memory_proposal::validate(spec, &[]).is_empty());
        let origin = crate::proposal::Origin {
            proposal: "rollback",
            approved_by: Some("ana"),
            at: now,
        };
        let changes = crate::proposal::to_changes(&spec.changes, &r3.doc, &origin).unwrap();
        let applied = apply(&r3.doc, &changes).unwrap();
        assert_eq!(applied.instructions(), Some("Help. Be brief."));
        let live: Vec<(&str, &str)> = applied.entries().map(|(s, e)| (s, e.text.as_str())).collect();
        assert_eq!(
            live,
            [
                ("core", "Help. Be brief."),
                ("lessons", "Check the account id"),
                ("lessons", "Retry on 429")
            ]
        );
        // The same request over the same memory is the same name.
        let again = build_rollback(&agent(), &r3, &r2, ts("2026-03-01T00:00:00Z")).unwrap();
        assert_eq!(again.metadata.name, proposal.metadata.name);
    }

    #[test]
    fn a_revision_that_differs_only_in_the_spec_parts_is_refused() {
        let (r1, _, _) = revisions();
        let mut doc = r1.doc.clone();
        doc.set_instructions("Help. Be brief.", ts("2026-01-05T00:00:00Z"));
        let newer = Snapshot::build("support", 2, "agent-spec/b", doc);
        let err = build_rollback(&agent(), &newer, &r1, ts("2026-02-01T00:00:00Z")).unwrap_err();
        assert!(err.contains("apart from what the Agent spec sets"), "{err}");
    }

    #[test]
    fn not_kept_lists_the_kept_revisions() {
        assert_eq!(
            no_longer_kept("support", 1, &[4, 5]),
            "revision 1 of agent support is not kept (kept revisions: 4, 5; spec.memory.revisionHistoryLimit sets how many)"
        );
    }
}
