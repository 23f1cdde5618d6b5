//! What a pass writes to Git: the MemoryProposal manifest, where it goes, the commit message
//! and the pull request's title and body. Pure.
//!
//! The manifest is the proposal as the GitOps tool will create it: `apiVersion`, `kind`,
//! `metadata` (name, namespace, labels, and the content digest as an annotation) and `spec`.
//! No `status` (the operator writes it) and no `ownerReferences`: an owner reference needs the
//! Agent's uid, which a manifest kept in Git cannot know, and the GitOps tool owns the object.

use std::collections::BTreeMap;
use std::fmt::Write;

use kube::ResourceExt;
use kube::api::ObjectMeta;

use super::CONTENT_DIGEST_ANNOTATION;
use crate::api::MemoryProposal;
use crate::api::dream_schedule::GitOutput;
use crate::api::memory_proposal::MemoryProposalStatus;
use crate::api::review::plural;

/// Longest commit subject and pull-request title kept.
const MAX_TITLE_CHARS: usize = 120;
/// Longest pull-request body sent (GitHub's limit is 65,536 characters).
const MAX_BODY_CHARS: usize = 60_000;

/// The proposal as written to Git: identity, labels, digest annotation and spec only.
pub fn manifest(proposal: &MemoryProposal) -> MemoryProposal {
    let mut annotations: BTreeMap<String, String> = proposal.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(CONTENT_DIGEST_ANNOTATION.to_string(), proposal.spec.content_digest());
    MemoryProposal {
        metadata: ObjectMeta {
            name: proposal.metadata.name.clone(),
            namespace: proposal.metadata.namespace.clone(),
            labels: proposal.metadata.labels.clone().filter(|l| !l.is_empty()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: proposal.spec.clone(),
        status: None,
    }
}

/// The manifest as a YAML document, with a comment telling reviewers how to approve it.
pub fn render(manifest: &MemoryProposal) -> Result<String, String> {
    let yaml = serde_yaml::to_string(manifest).map_err(|e| format!("cannot render the manifest: {e}"))?;
    let digest = manifest.spec.content_digest();
    Ok(format!(
        "# MemoryProposal written by a reverie dream pass. To approve it, add under spec:\n\
         #   approval: {{decision: Approved, reviewer: <you>, digest: \"{digest}\"}}\n\
         # and merge. Do not edit anything else in spec: the operator applies only the content\n\
         # that was proposed (the digest above), rebased onto the current memory when it can.\n\
         {yaml}"
    ))
}

/// The branch a proposal is pushed to: `reverie/<namespace>/<name>`.
pub fn branch_name(proposal: &MemoryProposal) -> String {
    format!("reverie/{}/{}", namespace(proposal), proposal.name_any())
}

/// The manifest's path in the repository: `<path>/<namespace>/<name>.yaml`.
pub fn file_path(git: &GitOutput, proposal: &MemoryProposal) -> String {
    format!(
        "{}/{}/{}.yaml",
        git.path.trim_end_matches('/'),
        namespace(proposal),
        proposal.name_any()
    )
}

fn namespace(proposal: &MemoryProposal) -> String {
    proposal.namespace().unwrap_or_else(|| "default".to_string())
}

/// The first line of the summary, or a description when the summary is empty.
fn subject(proposal: &MemoryProposal) -> String {
    let first = proposal
        .spec
        .summary
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "Memory proposal {} for agent {}",
                proposal.name_any(),
                proposal.spec.agent_ref.name
            )
        });
    truncate(&first, MAX_TITLE_CHARS)
}

/// The commit message: the summary's first line, then which proposal and its digest.
pub fn commit_message(proposal: &MemoryProposal) -> String {
    format!(
        "{}\n\nMemoryProposal {}/{} for Agent {} ({} changes, base revision {}).\nContent digest: {}\n",
        subject(proposal),
        namespace(proposal),
        proposal.name_any(),
        proposal.spec.agent_ref.name,
        proposal.spec.changes.len(),
        proposal.spec.base_revision,
        proposal.spec.content_digest()
    )
}

/// The pull request's title.
pub fn pull_request_title(proposal: &MemoryProposal) -> String {
    truncate(
        &format!("Memory of {}: {}", proposal.spec.agent_ref.name, subject(proposal)),
        MAX_TITLE_CHARS,
    )
}

/// The pull request's body: how to approve, then the review diff (`kubectl dream diff`).
pub fn pull_request_body(proposal: &MemoryProposal, file: &str) -> String {
    let digest = proposal.spec.content_digest();
    let source = proposal
        .spec
        .source
        .as_ref()
        .and_then(|s| s.dream_schedule.as_deref())
        .map(|s| format!(" of DreamSchedule `{s}`"))
        .unwrap_or_default();
    let mut body = String::new();
    let _ = writeln!(
        body,
        "A dream pass{source} proposes {} to the memory of Agent `{}/{}`.\n",
        plural(proposal.spec.changes.len(), "change", "changes"),
        namespace(proposal),
        proposal.spec.agent_ref.name
    );
    let _ = writeln!(
        body,
        "**To approve**, edit `{file}` in this pull request, add under `spec`:\n\n\
         ```yaml\n  approval:\n    decision: Approved\n    reviewer: <your name>\n    digest: \"{digest}\"\n```\n\n\
         and merge. Once your GitOps tool (Argo CD, Flux) applies it, the operator applies the \
         memory. To reject with an audit record, set `decision: Rejected` and merge; closing \
         this pull request leaves the cluster untouched.\n"
    );
    let _ = writeln!(
        body,
        "Do not edit the rest of `spec`: an approved manifest is applied only when its content is \
         what was proposed (digest `{digest}`), and only if its base (revision {}) still applies: \
         the operator rebases it onto a newer memory when no change touches an entry changed \
         since, and marks it `Conflicted` otherwise.\n",
        proposal.spec.base_revision
    );
    let diff = review_diff(proposal);
    let fence = "`".repeat(longest_backtick_run(&diff).max(2) + 1);
    let room = MAX_BODY_CHARS.saturating_sub(body.len() + 2 * fence.len() + 200);
    let diff = if diff.chars().count() > room {
        format!(
            "{}\n… (cut here; the full proposal is in `{file}`)\n",
            diff.chars().take(room).collect::<String>()
        )
    } else {
        diff
    };
    let _ = write!(body, "{fence}diff\n{diff}{fence}\n");
    body
}

/// `kubectl dream diff` of the proposal as the operator will first see it (digest recorded,
/// no phase yet), without its last line: that one names a `kubectl` command, and here the
/// review happens in the pull request.
pub fn review_diff(proposal: &MemoryProposal) -> String {
    let mut shown = proposal.clone();
    shown.status = Some(MemoryProposalStatus {
        digest: Some(proposal.spec.content_digest()),
        ..MemoryProposalStatus::default()
    });
    let text = crate::api::review::render_diff(&shown, false);
    let text = text.trim_end();
    let kept = text.rsplit_once("\n\n").map_or(text, |(head, _)| head);
    format!("{kept}\n")
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let cut: String = text.chars().take(max_chars - 1).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal() -> MemoryProposal {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "reverie.dev/v1alpha1", "kind": "MemoryProposal",
            "metadata": {"name": "nightly-support-1", "namespace": "team", "uid": "u",
                "resourceVersion": "7", "labels": {"reverie.dev/schedule": "nightly"},
                "ownerReferences": [{"apiVersion": "reverie.dev/v1alpha1", "kind": "Agent", "name": "support", "uid": "a"}]},
            "spec": {"agentRef": {"name": "support"}, "baseRevision": 4, "baseDigest": "sha256:b",
                "summary": "Learned to ask for the billing id first.\nAnd more.",
                "source": {"dreamSchedule": "nightly"},
                "changes": [{"op": "Add", "section": "lessons", "after": "Ask for the billing id ```first```",
                    "evidence": {"count": 4, "sessions": ["s1", "s2"]}}]},
            "status": {"phase": "Pending"}
        }))
        .unwrap()
    }

    #[test]
    fn the_manifest_has_no_owner_status_or_server_fields_and_carries_the_digest() {
        let written = manifest(&proposal());
        let yaml = render(&written).unwrap();
        let value: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(value["apiVersion"], "reverie.dev/v1alpha1");
        assert_eq!(value["kind"], "MemoryProposal");
        assert_eq!(value["metadata"]["name"], "nightly-support-1");
        assert_eq!(value["metadata"]["namespace"], "team");
        assert_eq!(value["metadata"]["labels"]["reverie.dev/schedule"], "nightly");
        let digest = proposal().spec.content_digest();
        assert_eq!(
            value["metadata"]["annotations"][CONTENT_DIGEST_ANNOTATION],
            digest.as_str()
        );
        for gone in ["ownerReferences", "uid", "resourceVersion"] {
            assert!(value["metadata"].get(gone).is_none(), "{gone}");
        }
        assert!(value.get("status").is_none());
        let back: MemoryProposal = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(
            back.spec.content_digest(),
            digest,
            "the written spec is the proposed one"
        );
        assert!(yaml.starts_with("# MemoryProposal written by a reverie dream pass"));
        assert!(yaml.contains(&digest));
    }

    #[test]
    fn names_follow_the_namespace_and_proposal() {
        let p = proposal();
        let git: GitOutput =
            serde_json::from_value(serde_json::json!({"repository": "file:///r", "path": "mem/"})).unwrap();
        assert_eq!(branch_name(&p), "reverie/team/nightly-support-1");
        assert_eq!(file_path(&git, &p), "mem/team/nightly-support-1.yaml");
        let message = commit_message(&p);
        assert!(message.starts_with("Learned to ask for the billing id first.\n\n"));
        assert!(message.contains(&p.spec.content_digest()));
        assert_eq!(
            pull_request_title(&p),
            "Memory of support: Learned to ask for the billing id first."
        );
    }

    #[test]
    fn the_body_explains_the_approval_and_fences_the_diff_safely() {
        let p = proposal();
        let body = pull_request_body(&p, "mem/team/nightly-support-1.yaml");
        assert!(body.contains(&format!("digest: \"{}\"", p.spec.content_digest())));
        assert!(body.contains("+ [lessons] Ask for the billing id"));
        assert!(body.contains("4 sessions (e.g. s1, s2)"));
        assert!(
            body.contains("````diff\n"),
            "the fence outgrows the backticks inside: {body}"
        );
        assert!(!body.contains("kubectl dream approve"), "{body}");
        let mut long = p.clone();
        long.spec.changes[0].after = Some("x".repeat(100_000));
        assert!(pull_request_body(&long, "f").chars().count() <= MAX_BODY_CHARS);
    }
}
