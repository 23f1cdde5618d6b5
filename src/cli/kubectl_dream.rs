//! `kubectl dream`: the reviewer's plugin (installed as `kubectl-dream` on PATH).
//!
//! Follows kubectl plugin conventions: `-n/--namespace`, `--context`, `--kubeconfig`,
//! `-o json|yaml`, data on stdout, errors on stderr, non-zero exit on failure.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};

use crate::api::MemoryProposal;
use crate::api::memory_proposal::ChangeOp;
use crate::operator::error_chain;

/// Review the memory proposals your agents' dreams produce.
#[derive(Debug, Parser)]
#[command(name = "kubectl-dream", bin_name = "kubectl dream", version, about)]
pub struct DreamCli {
    /// Namespace to work in (default: the kubeconfig context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Path to the kubeconfig file.
    #[arg(long, global = true, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    pub output: Output,
    #[command(subcommand)]
    pub command: DreamCommand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum DreamCommand {
    /// List memory proposals: agent, phase, +/−/~ counts, strongest evidence, age.
    List {
        /// List across all namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
}

/// Runs the plugin command line.
pub fn run(cli: DreamCli) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let (client, namespace) = connect(&cli).await?;
        match cli.command {
            DreamCommand::List { all_namespaces } => {
                let api = if all_namespaces {
                    Api::<MemoryProposal>::all(client)
                } else {
                    Api::<MemoryProposal>::namespaced(client, &namespace)
                };
                let mut proposals = api
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| format!("cannot list memoryproposals: {}", error_chain(&e)))?
                    .items;
                proposals.sort_by_key(|p| (p.namespace(), p.name_any()));
                print!(
                    "{}",
                    render_list(&proposals, cli.output, all_namespaces, Timestamp::now())?
                );
                Ok(())
            }
        }
    })
}

async fn connect(cli: &DreamCli) -> Result<(Client, String), String> {
    let config = if cli.kubeconfig.is_some() || cli.context.is_some() {
        let kubeconfig = match &cli.kubeconfig {
            Some(path) => Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig {}: {}", path.display(), error_chain(&e)))?,
            None => Kubeconfig::read().map_err(|e| format!("cannot read kubeconfig: {}", error_chain(&e)))?,
        };
        let options = KubeConfigOptions {
            context: cli.context.clone(),
            ..Default::default()
        };
        Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| format!("invalid kubeconfig: {}", error_chain(&e)))?
    } else {
        Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes configuration found: {}", error_chain(&e)))?
    };
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client =
        Client::try_from(config).map_err(|e| format!("cannot build a Kubernetes client: {}", error_chain(&e)))?;
    Ok((client, namespace))
}

/// Additions, archivals and restructurings (update, merge, move, reinforce) in a proposal.
pub fn change_counts(proposal: &MemoryProposal) -> (usize, usize, usize) {
    proposal
        .spec
        .changes
        .iter()
        .fold((0, 0, 0), |(add, archive, other), change| match change.op {
            ChangeOp::Add => (add + 1, archive, other),
            ChangeOp::Archive => (add, archive + 1, other),
            _ => (add, archive, other + 1),
        })
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
        Output::Json => serde_json::to_string_pretty(proposals)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Output::Yaml => serde_yaml::to_string(proposals).map_err(|e| e.to_string()),
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

fn format_table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
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
