//! `kubectl dream`: the reviewer's plugin (installed as `kubectl-dream` on PATH).
//!
//! Follows kubectl plugin conventions: `-n/--namespace`, `--context`, `--kubeconfig`,
//! `-o json|yaml`, data on stdout, one `error: ...` line on stderr and exit code 1 on failure
//! (2 for usage errors).
//!
//! One file per command; each keeps its pure part (rendering, checks, the objects and patches
//! it writes) separate from the few API calls around it, so the pure part is tested without a
//! cluster.

pub mod dashboard;
pub mod decide;
pub mod diff;
pub mod edit;
pub mod history;
pub mod list;
pub mod rollback;
pub mod run_now;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource, ResourceExt};
use serde::Serialize;

use crate::api::Agent;
use crate::errors::error_chain;

pub use crate::api::review::plural;
pub use diff::ColorChoice;
pub use list::{change_counts, render_list, short_age};

/// Review the memory proposals your agents' dreams produce.
#[derive(Debug, Parser)]
#[command(name = "kubectl-dream", bin_name = "kubectl dream", version, about)]
pub struct DreamCli {
    /// Namespace to work in (default: the kubeconfig context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// User to impersonate for the operation, as with kubectl.
    #[arg(long = "as", global = true)]
    pub impersonate: Option<String>,
    /// Group to impersonate for the operation; repeat for several, as with kubectl.
    #[arg(long = "as-group", global = true, requires = "impersonate")]
    pub impersonate_groups: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    pub output: Output,
    #[command(subcommand)]
    pub command: DreamCommand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable text (a table, a review diff, or one line per object written).
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
    /// Show a proposal as a review diff, with evidence counts and example sessions.
    Diff {
        /// The MemoryProposal.
        name: String,
        /// Colour the diff: `auto` when stdout is a terminal and NO_COLOR is unset.
        #[arg(long, value_enum, default_value = "auto")]
        color: ColorChoice,
    },
    /// Approve a proposal: records the decision, the digest of what diff showed, and you.
    Approve(decide::DecideArgs),
    /// Reject a proposal: records the decision, the digest of what diff showed, and you.
    Reject(decide::DecideArgs),
    /// Dream now: trigger every DreamSchedule that selects the agent.
    Run {
        /// The Agent.
        agent: String,
    },
    /// The agent's memory revisions: applied history and the revisions kept for rollback.
    History {
        /// The Agent.
        agent: String,
        /// Instead: the measured effect of the agent's lessons, as its latest dream pass that
        /// measured them recorded it.
        #[arg(long)]
        effect: bool,
    },
    /// Propose restoring an earlier memory revision (goes through the same approval path).
    Rollback {
        /// The Agent.
        agent: String,
        /// The revision to restore (see `kubectl dream history`).
        #[arg(long, value_name = "N")]
        to_revision: u64,
    },
    /// Edit a proposal's changes in $EDITOR; creates a new proposal that supersedes it.
    Edit {
        /// The MemoryProposal.
        name: String,
    },
    /// Serve the review pages on this machine, with your credentials; prints the URL.
    Dashboard(dashboard::DashboardArgs),
}

/// Runs the plugin command line. The error is one line, shown as `error: <line>`.
pub fn run(cli: DreamCli) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(dispatch(cli)).map_err(|message| one_line(&message))
}

async fn dispatch(cli: DreamCli) -> Result<(), String> {
    // A flag mistake is said before anything is asked of the cluster.
    if let DreamCommand::Dashboard(args) = &cli.command {
        dashboard::listen_address(args)?;
    }
    let session = connect(&cli).await?;
    let output = cli.output;
    let text = match cli.command {
        DreamCommand::Dashboard(args) => dashboard::run(session, &args).await?,
        DreamCommand::List { all_namespaces } => list::run(&session, output, all_namespaces).await?,
        DreamCommand::Diff { name, color } => diff::run(&session, output, &name, color).await?,
        DreamCommand::Approve(args) => decide::run(&session, output, &args, decide::Verdict::Approve).await?,
        DreamCommand::Reject(args) => decide::run(&session, output, &args, decide::Verdict::Reject).await?,
        DreamCommand::Run { agent } => run_now::run(&session, output, &agent).await?,
        DreamCommand::History { agent, effect: false } => history::run(&session, output, &agent).await?,
        DreamCommand::History { agent, effect: true } => history::run_effect(&session, output, &agent).await?,
        DreamCommand::Rollback { agent, to_revision } => rollback::run(&session, output, &agent, to_revision).await?,
        DreamCommand::Edit { name } => edit::run(&session, output, &name).await?,
    };
    print!("{text}");
    Ok(())
}

/// A connection to the cluster and the namespace to work in.
pub struct Session {
    pub client: Client,
    pub namespace: String,
}

impl Session {
    /// Who is at the keyboard, as the API server authenticates them (not the kubeconfig's
    /// name for its user entry, which an OIDC or cloud login never matches): the name recorded
    /// as reviewer or creator, and the one the approval policy checks.
    pub async fn whoami(&self) -> Result<String, String> {
        crate::kube_ext::whoami(&self.client)
            .await
            .map_err(|e| format!("cannot tell who you are, so nothing was written: {e}"))
    }

    /// Records the caller as the creator of a proposal about to be created.
    pub async fn stamp_creator(&self, proposal: &mut crate::api::MemoryProposal) -> Result<(), String> {
        proposal.record_creator(self.whoami().await?);
        Ok(())
    }
}

async fn connect(cli: &DreamCli) -> Result<Session, String> {
    let kubeconfig = match &cli.kubeconfig {
        Some(path) => Some(
            Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig {}: {}", path.display(), error_chain(&e)))?,
        ),
        None if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) => Some(
            Kubeconfig::read().map_err(|e| format!("cannot read kubeconfig from $KUBECONFIG: {}", error_chain(&e)))?,
        ),
        None => match Kubeconfig::read() {
            Ok(kubeconfig) => Some(kubeconfig),
            Err(e) if cli.context.is_some() => {
                return Err(format!("cannot read kubeconfig for --context: {}", error_chain(&e)));
            }
            Err(_) => None,
        },
    };
    let mut config = match kubeconfig {
        Some(kubeconfig) => {
            let options = KubeConfigOptions {
                context: cli.context.clone(),
                ..Default::default()
            };
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| format!("invalid kubeconfig: {}", error_chain(&e)))?
        }
        None => {
            Config::incluster().map_err(|e| {
                format!(
                    "no Kubernetes configuration found: set KUBECONFIG or --kubeconfig (no ~/.kube/config, and not in a cluster: {})",
                    error_chain(&e)
                )
            })?
        }
    };
    if let Some(user) = &cli.impersonate {
        config.auth_info.impersonate = Some(user.clone());
        config.auth_info.impersonate_groups =
            (!cli.impersonate_groups.is_empty()).then(|| cli.impersonate_groups.clone());
    }
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client =
        Client::try_from(config).map_err(|e| format!("cannot build a Kubernetes client: {}", error_chain(&e)))?;
    Ok(Session { client, namespace })
}

/// One line: the plugin prints errors as a single `error: ...` line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A failed API request as one line: `<what>: <reason>`.
pub(crate) fn api_error(what: &str, error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => format!("{what}: {}", status.message),
        _ => format!("{what}: {}", error_chain(error)),
    }
}

/// `value` as JSON or YAML (for `-o json|yaml`).
pub(crate) fn serialize<T: Serialize>(value: &T, output: Output) -> Result<String, String> {
    match output {
        Output::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Output::Yaml => serde_yaml::to_string(value).map_err(|e| e.to_string()),
        Output::Table => Err("no table form".to_string()),
    }
}

/// The Agent as controlling owner of a proposal, so deleting the Agent removes it (as dream
/// passes do; not `blockOwnerDeletion`, which needs update rights on the Agent).
pub fn agent_owner(agent: &Agent) -> Result<OwnerReference, String> {
    let uid = agent
        .uid()
        .ok_or_else(|| format!("Agent {} has no uid", agent.name_any()))?;
    Ok(OwnerReference {
        api_version: Agent::api_version(&()).into_owned(),
        kind: Agent::kind(&()).into_owned(),
        name: agent.name_any(),
        uid,
        controller: Some(true),
        block_owner_deletion: None,
    })
}

/// `-n <namespace>` as typed in the commands the plugin suggests.
pub(crate) fn namespace_flag(namespace: &str) -> String {
    format!("-n {namespace}")
}

/// Rows as a left-aligned table with three spaces between columns (kubectl's look).
pub(crate) fn format_table(rows: &[Vec<String>]) -> String {
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

    #[test]
    fn errors_become_one_line() {
        assert_eq!(one_line("a\n  b\n\nc"), "a; b; c");
    }
}
