//! Command-line interface of the `reverie` binary.

pub mod kubectl_dream;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::api;
use crate::operator::{self, OperatorOptions};
use crate::telemetry::{self, LogFormat};

/// reverie: AI agents as Kubernetes resources that dream over their sessions.
#[derive(Debug, Parser)]
#[command(name = "reverie", version, about)]
pub struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value = "text", env = "REVERIE_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controllers (Agent, DreamSchedule, MemoryProposal).
    Operator(OperatorArgs),
    /// Print the CustomResourceDefinitions generated from the Rust types.
    Crds(CrdsArgs),
}

#[derive(Debug, clap::Args)]
pub struct OperatorArgs {
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080", env = "REVERIE_LISTEN")]
    pub listen: SocketAddr,
    /// Take part in leader election on a Lease (disable only for a single replica run by hand).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "REVERIE_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Namespace of the leader Lease (default: the pod's namespace, else the kubeconfig's).
    #[arg(long, env = "REVERIE_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, default_value = "reverie-operator", env = "REVERIE_LEASE_NAME")]
    pub lease_name: String,
    /// Identity in the election (default: pod name or host name, plus the process id).
    #[arg(long, env = "REVERIE_IDENTITY")]
    pub identity: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct CrdsArgs {
    /// Write one file per CRD into this directory instead of printing a YAML stream.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// A command that failed, with the one line to show the user.
pub type CliResult = Result<(), String>;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Crds(args) => print_crds(&args),
        Command::Operator(args) => {
            telemetry::init(
                cli.log_format,
                "info,kube_lease_manager=warn,kube_client::client::builder=off",
            );
            let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))?;
            let options = OperatorOptions {
                listen: args.listen,
                leader_election: args.leader_election,
                lease_namespace: args.lease_namespace,
                lease_name: args.lease_name,
                identity: args.identity,
            };
            runtime.block_on(operator::run(options)).map_err(|e| e.to_string())
        }
    }
}

fn print_crds(args: &CrdsArgs) -> CliResult {
    let crds = api::all_crds();
    match &args.out_dir {
        None => {
            let mut out = String::new();
            for crd in &crds {
                out.push_str("---\n");
                out.push_str(&api::crd_yaml(crd).map_err(|e| e.to_string())?);
            }
            print!("{out}");
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            for crd in &crds {
                let path = dir.join(api::crd_file_name(crd));
                let yaml = api::crd_yaml(crd).map_err(|e| e.to_string())?;
                std::fs::write(&path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
        }
    }
    Ok(())
}
