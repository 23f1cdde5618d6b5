//! `kubectl dream edit NAME`: opens the proposal's change list in `$VISUAL` / `$EDITOR` (default
//! `vi`) and creates a new proposal with the edited changes that supersedes the old one (a
//! proposal's content is immutable; the operator marks the old one `Superseded`).

use std::path::{Path, PathBuf};

use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

use super::diff::not_found;
use super::{Output, Session, agent_owner, api_error, namespace_flag, serialize};
use crate::api::memory_proposal::{Decision, Phase, ProposalSource, ProposedChange};
use crate::api::{Agent, MemoryProposal};

pub(super) async fn run(session: &Session, output: Output, name: &str) -> Result<String, String> {
    let api = Api::<MemoryProposal>::namespaced(session.client.clone(), &session.namespace);
    let original = api
        .get_opt(name)
        .await
        .map_err(|e| api_error(&format!("cannot read memoryproposal {name}"), &e))?
        .ok_or_else(|| not_found(name, &session.namespace))?;
    check_editable(&original)?;
    let agent_name = &original.spec.agent_ref.name;
    let agent = Api::<Agent>::namespaced(session.client.clone(), &session.namespace)
        .get_opt(agent_name)
        .await
        .map_err(|e| api_error(&format!("cannot read agent {agent_name}"), &e))?
        .ok_or_else(|| format!("agent {agent_name} of memoryproposal {name} not found"))?;

    let file = TempFile::create(name, &changes_yaml(&original)?)?;
    open_editor(&file.path)?;
    let text = std::fs::read_to_string(&file.path).map_err(|e| format!("cannot read {}: {e}", file.path.display()))?;
    let changes = match parse_changes(&text) {
        Ok(changes) => changes,
        Err(e) => {
            let kept = file.keep();
            return Err(format!(
                "{}: {e}; nothing was created (your edit is kept in that file)",
                kept.display()
            ));
        }
    };
    if changes == original.spec.changes {
        return Ok(format!("memoryproposal/{name}: no changes edited; nothing created\n"));
    }
    let mut edited = build_edited(&original, &agent, changes)?;
    let problems = crate::api::rules::memory_proposal::validate(&edited.spec, &agent.spec.memory.protected_sections);
    if !problems.is_empty() {
        let kept = file.keep();
        let list: Vec<String> = problems.into_iter().map(|p| p.message).collect();
        return Err(format!(
            "the edited changes would be refused: {}; nothing was created (your edit is kept in {})",
            list.join("; "),
            kept.display()
        ));
    }
    let new_name = edited.name_any();
    session.stamp_creator(&mut edited).await?;
    let created = match api.create(&PostParams::default(), &edited).await {
        Ok(created) => created,
        Err(kube::Error::Api(status)) if status.code == 409 => {
            return Err(format!(
                "memoryproposal {new_name} already exists: the same edit of {name} was made before; review it with `kubectl dream diff {new_name} {}`",
                namespace_flag(&session.namespace)
            ));
        }
        Err(e) => {
            let kept = file.keep();
            return Err(format!(
                "{} (your edit is kept in {})",
                api_error(&format!("cannot create memoryproposal {new_name}"), &e),
                kept.display()
            ));
        }
    };
    match output {
        Output::Table => Ok(format!(
            "memoryproposal/{new_name} created: supersedes {name}\nReview it with: kubectl dream diff {new_name} {}\n",
            namespace_flag(&session.namespace)
        )),
        _ => serialize(&created, output),
    }
}

/// A proposal already approved, being applied, applied or superseded has nothing to edit.
pub fn check_editable(proposal: &MemoryProposal) -> Result<(), String> {
    let name = proposal.name_any();
    if proposal.spec.approval.as_ref().map(|a| a.decision) == Some(Decision::Approved) {
        return Err(format!(
            "memoryproposal {name} is already approved; propose further changes with a new proposal"
        ));
    }
    match proposal.status.as_ref().and_then(|s| s.phase) {
        Some(phase @ (Phase::Approved | Phase::Applying | Phase::Applied | Phase::Superseded)) => Err(format!(
            "memoryproposal {name} is {}; there is nothing to edit",
            phase.as_str()
        )),
        _ => Ok(()),
    }
}

/// The text the editor opens: a comment header and the change list as YAML.
pub fn changes_yaml(proposal: &MemoryProposal) -> Result<String, String> {
    let yaml = serde_yaml::to_string(&proposal.spec.changes).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Changes of memoryproposal {} (agent {}). Edit, save and quit to create a new proposal\n\
         # that supersedes it; quit without changes to create nothing. Ops: Add, Update, Archive,\n\
         # Merge, Move, Reinforce. Lines starting with '#' are ignored.\n{yaml}",
        proposal.name_any(),
        proposal.spec.agent_ref.name
    ))
}

/// Reads an edited change list; the error names the line.
pub fn parse_changes(text: &str) -> Result<Vec<ProposedChange>, String> {
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err("the change list is empty".to_string());
    }
    serde_yaml::from_str::<Vec<ProposedChange>>(text).map_err(|e| match e.location() {
        Some(at) => {
            let message = e.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_string();
            format!("line {}, column {}: {message}", at.line(), at.column())
        }
        None => e.to_string(),
    })
}

/// The proposal that replaces `original` with `changes`: same agent, base, summary and stats,
/// `source.supersedes` the original (keeping its schedule and job), owned by the agent, named
/// `<original>-edit-<hash of the changes>`.
pub fn build_edited(
    original: &MemoryProposal,
    agent: &Agent,
    changes: Vec<ProposedChange>,
) -> Result<MemoryProposal, String> {
    let name = original.name_any();
    let hash = crate::naming::short_hash(&serde_json::to_string(&changes).map_err(|e| e.to_string())?);
    let new_name = crate::naming::bounded_name(&[&name, "edit", &hash]);
    let source = original.spec.source.clone().unwrap_or_default();
    let mut spec = original.spec.clone();
    spec.changes = changes;
    spec.approval = None;
    spec.source = Some(ProposalSource {
        dream_schedule: source.dream_schedule,
        job: source.job,
        supersedes: Some(name),
        restores_revision: None,
    });
    Ok(MemoryProposal {
        metadata: ObjectMeta {
            name: Some(new_name),
            namespace: original.namespace(),
            owner_references: Some(vec![agent_owner(agent)?]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

/// Runs the user's editor on `path`: `$VISUAL`, else `$EDITOR`, else `vi`, through the shell
/// so an editor with arguments (`code --wait`) works.
fn open_editor(path: &Path) -> Result<(), String> {
    let editor = ["VISUAL", "EDITOR"]
        .into_iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".to_string());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("kubectl-dream-editor")
        .arg(path)
        .status()
        .map_err(|e| format!("cannot run the editor {editor:?}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "the editor {editor:?} exited with {status}; nothing was created"
        ));
    }
    Ok(())
}

/// A file in the temporary directory, removed when dropped unless kept.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    fn create(name: &str, text: &str) -> Result<Self, String> {
        use std::io::Write as _;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("kubectl-dream-edit-{name}-{}-{nanos}.yaml", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        file.write_all(text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Self { path, keep: false })
    }

    fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use reverie_api::test_support::AgentBuilder;

    use super::*;
    use crate::api::memory_proposal::ChangeOp;

    fn original() -> MemoryProposal {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "reverie.dev/v1alpha1", "kind": "MemoryProposal",
            "metadata": {"name": "support-dream-1", "namespace": "team", "labels": {"reverie.dev/schedule": "nightly"}},
            "spec": {"agentRef": {"name": "support"}, "baseRevision": 4, "baseDigest": "sha256:b", "summary": "learned",
                     "stats": {"sessionsReviewed": 9},
                     "source": {"dreamSchedule": "nightly", "job": "nightly-support-1"},
                     "changes": [
                        {"op": "Add", "id": "lesson-x", "section": "lessons", "after": "Use the billing id", "evidence": {"count": 4, "sessions": ["s1"]}},
                        {"op": "Archive", "id": "lesson-old", "rationale": "stale"}
                     ]}
        }))
        .unwrap()
    }

    fn agent() -> Agent {
        AgentBuilder::new("support")
            .namespace("team")
            .uid("u-1")
            .instructions("Help.")
            .build()
    }

    #[test]
    fn the_yaml_round_trips_and_an_untouched_file_is_no_change() {
        let p = original();
        let text = changes_yaml(&p).unwrap();
        assert!(text.starts_with("# Changes of memoryproposal support-dream-1"));
        assert_eq!(parse_changes(&text).unwrap(), p.spec.changes);
    }

    #[test]
    fn parse_errors_name_the_line() {
        let err = parse_changes("- op: Add\n  section: lessons\n- op: Ad\n  id: x\n").unwrap_err();
        assert!(err.starts_with("line 3, column"), "{err}");
        assert!(err.contains("unknown variant"), "{err}");
        assert_eq!(parse_changes("# nothing\n\n").unwrap_err(), "the change list is empty");
    }

    #[test]
    fn the_edited_proposal_supersedes_the_original() {
        let p = original();
        let mut changes = p.spec.changes.clone();
        changes[0].after = Some("Use the billing account id".into());
        changes.pop();
        let edited = build_edited(&p, &agent(), changes.clone()).unwrap();
        let name = edited.metadata.name.clone().unwrap();
        assert!(name.starts_with("support-dream-1-edit-") && name.len() == "support-dream-1-edit-".len() + 8);
        assert_eq!(edited.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(edited.metadata.owner_references.as_ref().unwrap()[0].uid, "u-1");
        assert_eq!(edited.spec.changes, changes);
        assert_eq!(edited.spec.summary, "learned");
        assert_eq!(edited.spec.base_revision, 4);
        assert_eq!(edited.spec.stats, p.spec.stats);
        let source = edited.spec.source.unwrap();
        assert_eq!(source.supersedes.as_deref(), Some("support-dream-1"));
        assert_eq!(source.dream_schedule.as_deref(), Some("nightly"));
        assert_eq!(source.job.as_deref(), Some("nightly-support-1"));
        assert_eq!(edited.spec.changes[0].op, ChangeOp::Add);
    }

    #[test]
    fn decided_or_applied_proposals_are_not_edited() {
        let mut p = original();
        assert!(check_editable(&p).is_ok());
        p.status = Some(crate::api::MemoryProposalStatus {
            phase: Some(Phase::Applied),
            ..Default::default()
        });
        assert!(check_editable(&p).unwrap_err().contains("Applied"));
    }
}
