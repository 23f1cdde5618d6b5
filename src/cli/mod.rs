//! Command-line interface of the `reverie` binary.

pub mod dream;
pub mod effect;
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
    /// Run one dream pass over session transcripts and print the proposal (no cluster needed).
    Dream(Box<dream::DreamArgs>),
    /// Measure whether the lessons in a memory helped, on session transcripts (no cluster).
    Effect(effect::EffectArgs),
    /// Receive agents' OpenTelemetry GenAI spans (OTLP/HTTP) and write them as sessions.
    Collect(Box<crate::collect::CollectArgs>),
    /// Work on an agent's memory.
    #[command(subcommand)]
    Memory(MemoryCommand),
}

#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// Apply a memory update to a memory directory (a mounted PVC): the step the operator runs
    /// as a Job for PVC-backed memories. Atomic and idempotent by revision.
    Apply(MemoryApplyArgs),
}

#[derive(Debug, clap::Args)]
pub struct MemoryApplyArgs {
    /// The memory directory (holds memory.yaml, MEMORY.md, revisions/).
    #[arg(long)]
    pub dir: PathBuf,
    /// The update to apply (YAML, written by the operator).
    #[arg(long)]
    pub update: PathBuf,
    /// ConfigMap in this pod's namespace whose annotations receive the new revision's info.
    #[arg(long)]
    pub report_configmap: Option<String>,
    /// Write the revision the update is in, as JSON, here (an apply Job uses its termination log).
    #[arg(long)]
    pub result_file: Option<PathBuf>,
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
    /// Image of the Jobs the operator creates (it runs this same binary).
    #[arg(long, env = "REVERIE_IMAGE", default_value = crate::controller::DEFAULT_IMAGE)]
    pub image: String,
    /// Seconds a finished memory apply Job is kept before Kubernetes deletes it
    /// (ttlSecondsAfterFinished). Keep it well above the operator's reaction time.
    #[arg(long, env = "REVERIE_APPLY_JOB_TTL_SECONDS", default_value_t = crate::store::pvc::DEFAULT_APPLY_JOB_TTL_SECONDS,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub apply_job_ttl_seconds: i32,
    /// Reconciles each controller runs at once. Bounded so a burst (a restart on a large
    /// cluster) queues in the operator instead of opening a connection per object.
    #[arg(long, env = "REVERIE_MAX_CONCURRENT_RECONCILES", default_value_t = crate::controller::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_reconciles: u16,
}

#[derive(Debug, clap::Args)]
pub struct CrdsArgs {
    /// Write one file per CRD into this directory instead of printing a YAML stream.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Print the Markdown field reference generated from the schemas instead.
    #[arg(long)]
    pub reference: bool,
}

/// A command that failed, with the one line to show the user.
pub type CliResult = Result<(), String>;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Crds(args) => print_crds(&args),
        Command::Dream(args) => {
            telemetry::init(cli.log_format, "warn");
            dream::run(&args)
        }
        Command::Effect(args) => {
            telemetry::init(cli.log_format, "warn");
            effect::run(&args)
        }
        Command::Collect(args) => {
            telemetry::init(cli.log_format, "info,kube_client::client::builder=off");
            let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))?;
            runtime.block_on(crate::collect::run(*args))
        }
        Command::Memory(MemoryCommand::Apply(args)) => {
            telemetry::init(cli.log_format, "info");
            memory_apply(&args)
        }
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
                image: args.image,
                apply_job_ttl_seconds: args.apply_job_ttl_seconds,
                max_concurrent_reconciles: args.max_concurrent_reconciles,
            };
            runtime.block_on(operator::run(options)).map_err(|e| e.to_string())
        }
    }
}

fn print_crds(args: &CrdsArgs) -> CliResult {
    let crds = api::all_crds();
    if args.reference {
        print!("{}", api::reference::markdown(&crds));
        return Ok(());
    }
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

/// `reverie memory apply`: applies the update with the file store, then reports the revision
/// on the index ConfigMap so the operator (which cannot read the volume) sees it.
fn memory_apply(args: &MemoryApplyArgs) -> CliResult {
    use crate::store::files::FileStore;
    let text =
        std::fs::read_to_string(&args.update).map_err(|e| format!("cannot read {}: {e}", args.update.display()))?;
    let update: crate::store::Update =
        serde_yaml::from_str(&text).map_err(|e| format!("{} is not a memory update: {e}", args.update.display()))?;
    let store = FileStore::new(&args.dir, &update.agent);
    let info = match store.commit_blocking(&update) {
        Ok(info) => info,
        Err(error) => {
            // The operator reads why from the termination log: a conflict is data, not prose.
            if let Some(path) = &args.result_file {
                let report = crate::store::pvc::ApplyFailure::of(&error);
                let json = serde_json::to_string(&report).map_err(|e| e.to_string())?;
                std::fs::write(path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            return Err(error.to_string());
        }
    };
    let json = serde_json::to_string(&info).map_err(|e| e.to_string())?;
    println!("{json}");
    if let Some(path) = &args.result_file {
        std::fs::write(path, &json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(configmap) = &args.report_configmap {
        // The index always shows the current revision, which is newer than `info` when the
        // update had been applied before and others were written since.
        let current = store.current_info().map_err(|e| e.to_string())?.unwrap_or(info);
        let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))?;
        runtime.block_on(report_revision(configmap, &current))?;
    }
    Ok(())
}

async fn report_revision(configmap: &str, info: &crate::store::RevisionInfo) -> CliResult {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Patch, PatchParams};
    let client = kube::Client::try_default().await.map_err(|e| {
        format!(
            "cannot reach the API server to report the revision: {}",
            crate::errors::error_chain(&e)
        )
    })?;
    let namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| client.default_namespace().to_string());
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &namespace);
    let patch = serde_json::json!({"metadata": {"annotations": info.annotations()}});
    api.patch(configmap, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            format!(
                "revision {} is written but reporting it on ConfigMap {namespace}/{configmap} failed: {}",
                info.revision,
                crate::errors::error_chain(&e)
            )
        })?;
    Ok(())
}
