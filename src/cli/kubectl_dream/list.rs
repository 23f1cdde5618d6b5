//! `kubectl dream list`: proposals with their agent, phase, +/−/~ counts, strongest evidence
//! and age.

use jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::{Output, Session, api_error, format_table, serialize};
use crate::api::MemoryProposal;

pub(super) async fn run(session: &Session, output: Output, all_namespaces: bool) -> Result<String, String> {
    let api = if all_namespaces {
        Api::<MemoryProposal>::all(session.client.clone())
    } else {
        Api::<MemoryProposal>::namespaced(session.client.clone(), &session.namespace)
    };
    let mut proposals = api
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error("cannot list memoryproposals", &e))?
        .items;
    proposals.sort_by_key(|p| (p.namespace(), p.name_any()));
    render_list(&proposals, output, all_namespaces, Timestamp::now())
}

/// Additions, archivals and restructurings (update, merge, move, reinforce) in a proposal.
pub fn change_counts(proposal: &MemoryProposal) -> (usize, usize, usize) {
    crate::api::review::counts(&proposal.spec.changes)
}

/// A short age like kubectl's: `45s`, `12m`, `5h`, `3d`.
pub fn short_age(since: Timestamp, now: Timestamp) -> String {
    let seconds = (now.as_second() - since.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// The `list` output in the requested format.
pub fn render_list(
    proposals: &[MemoryProposal],
    output: Output,
    with_namespace: bool,
    now: Timestamp,
) -> Result<String, String> {
    match output {
        Output::Json | Output::Yaml => serialize(&proposals, output),
        Output::Table => {
            let mut rows = vec![
                ["NAMESPACE", "NAME", "AGENT", "PHASE", "CHANGES", "EVIDENCE", "AGE"]
                    .map(String::from)
                    .to_vec(),
            ];
            for proposal in proposals {
                let (add, archive, other) = change_counts(proposal);
                let status = proposal.status.as_ref();
                rows.push(vec![
                    proposal.namespace().unwrap_or_default(),
                    proposal.name_any(),
                    proposal.spec.agent_ref.name.clone(),
                    status.and_then(|s| s.phase).map_or("-", |p| p.as_str()).to_string(),
                    format!("+{add} -{archive} ~{other}"),
                    proposal
                        .spec
                        .strongest_evidence()
                        .map_or_else(|| "-".to_string(), |e| e.to_string()),
                    proposal
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map_or_else(|| "-".to_string(), |t| short_age(t.0, now)),
                ]);
            }
            if !with_namespace {
                rows.iter_mut().for_each(|row| {
                    row.remove(0);
                });
            }
            if proposals.is_empty() {
                return Ok("No memory proposals found.\n".to_string());
            }
            Ok(format_table(&rows))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal(name: &str, changes: serde_json::Value) -> MemoryProposal {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "reverie.dev/v1alpha1", "kind": "MemoryProposal",
            "metadata": {"name": name, "namespace": "team", "creationTimestamp": "2026-11-20T10:00:00Z"},
            "spec": {"agentRef": {"name": "support"}, "baseRevision": 1, "baseDigest": "", "summary": "", "changes": changes},
            "status": {"phase": "Pending"}
        }))
        .unwrap()
    }

    #[test]
    fn table_lists_counts_evidence_and_age() {
        let p = proposal(
            "support-dream-1",
            serde_json::json!([
                {"op": "Add", "section": "lessons", "after": "a", "evidence": {"count": 7}},
                {"op": "Add", "section": "lessons", "after": "b", "evidence": {"count": 3}},
                {"op": "Archive", "id": "x"},
                {"op": "Merge", "id": "y", "ids": ["z"]}
            ]),
        );
        let now: Timestamp = "2026-11-20T13:00:00Z".parse().unwrap();
        let table = render_list(&[p], Output::Table, false, now).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["NAME", "AGENT", "PHASE", "CHANGES", "EVIDENCE", "AGE"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["support-dream-1", "support", "Pending", "+2", "-1", "~1", "7", "3h"]
        );
    }

    #[test]
    fn empty_list_says_so_and_json_is_parseable() {
        let now = Timestamp::now();
        assert_eq!(
            render_list(&[], Output::Table, false, now).unwrap(),
            "No memory proposals found.\n"
        );
        let json = render_list(&[proposal("p", serde_json::json!([]))], Output::Json, false, now).unwrap();
        let parsed: Vec<MemoryProposal> = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed[0].name_any(), "p");
    }

    #[test]
    fn ages_read_like_kubectl() {
        let t = |s: i64| Timestamp::from_second(s).unwrap();
        assert_eq!(short_age(t(0), t(59)), "59s");
        assert_eq!(short_age(t(0), t(600)), "10m");
        assert_eq!(short_age(t(0), t(36_000)), "10h");
        assert_eq!(short_age(t(0), t(864_000)), "10d");
    }
}
