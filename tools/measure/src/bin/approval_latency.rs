//! `approval-latency`: how long an approved MemoryProposal takes to reach the agent's memory.
//!
//! A measurement tool, not a test: it creates an Agent and `--approvals` proposals one after
//! another on the cluster in `KUBECONFIG` (with `reverie operator` running as a child), approves
//! each as a reviewer would (a merge patch of `spec.approval`), and times from the moment the
//! patch returns to the moment a watch sees `status.phase: Applied`. The same watch delivers
//! every proposal event, so the figure includes the operator's watch latency, the apply (snapshot
//! ConfigMap, current ConfigMap, pruning) and the status write. `make approval-latency` runs it.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use futures::StreamExt;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use reverie::api::memory_proposal::Phase;
use reverie::api::{Agent, MemoryProposal};
use reverie_api::test_support::{AgentBuilder, MemoryProposalBuilder, lesson};
use reverie_e2e::{OperatorProcess, TestNamespace, apply, client, has_condition, install_crds, wait_digest, wait_for};
use serde_json::json;

/// The target of the issue: p99 from approval to applied.
const TARGET_P99_MS: f64 = 1000.0;

#[derive(Parser)]
#[command(
    name = "approval-latency",
    about = "Approval → applied latency on the cluster in KUBECONFIG"
)]
struct Cli {
    /// How many proposals to approve.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    approvals: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match measure(cli.approvals).await {
        Ok(samples) => report(&samples),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn measure(approvals: u64) -> Result<Vec<Duration>> {
    let client = client().await;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "latency").await?;
    let operator = OperatorProcess::start(&ns.name, "latency").await?;
    let agents = ns.api::<Agent>();
    let proposals = ns.api::<MemoryProposal>();
    let agent = AgentBuilder::new("support")
        .spec(|spec| spec.memory.max_tokens = 200_000)
        .build();
    apply(&agents, &agent).await?;
    wait_for(&agents, "support", "MemoryReady", has_condition("MemoryReady", "True")).await?;
    let configmaps = ns.api::<k8s_openapi::api::core::v1::ConfigMap>();

    let mut applied = watcher(proposals.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let mut samples = Vec::new();
    for index in 0..approvals {
        let name = format!("lesson-{index}");
        // Each proposal is computed on the current revision, as a dream pass's would be.
        let memory = configmaps.get("support-memory").await?;
        let (revision, digest) = (
            memory.annotations()["reverie.dev/revision"].parse::<u64>()?,
            memory.annotations()["reverie.dev/digest"].clone(),
        );
        create_and_wait_digest(&proposals, &name, index, revision, &digest).await?;
        let digest = proposals
            .get(&name)
            .await?
            .status
            .and_then(|s| s.digest)
            .context("digest")?;
        let approve = json!({"spec": {"approval": {"decision": "Approved", "reviewer": "bench", "digest": digest}}});
        proposals
            .patch(&name, &PatchParams::default(), &Patch::Merge(&approve))
            .await?;
        let approved_at = Instant::now();
        let deadline = approved_at + Duration::from_secs(30);
        loop {
            let next = tokio::time::timeout_at(deadline.into(), applied.next())
                .await
                .with_context(|| format!("{name} not applied within 30 s"))?;
            let Some(event) = next else { bail!("the watch ended") };
            let proposal = event?;
            if proposal.name_any() == name && proposal.status.as_ref().and_then(|s| s.phase) == Some(Phase::Applied) {
                break;
            }
        }
        samples.push(approved_at.elapsed());
    }
    drop(operator);
    ns.delete().await?;
    Ok(samples)
}

async fn create_and_wait_digest(
    proposals: &Api<MemoryProposal>,
    name: &str,
    index: u64,
    base_revision: u64,
    base_digest: &str,
) -> Result<()> {
    let proposal = MemoryProposalBuilder::new(name)
        .base(base_revision, base_digest)
        .summary("One lesson.")
        .change(lesson(&format!("Lesson {index}: confirm the account first."), 3, &[]))
        .build();
    proposals.create(&PostParams::default(), &proposal).await?;
    wait_digest(proposals, name).await?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(samples: &[Duration]) -> ExitCode {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let (p50, p90, p99) = (percentile(&ms, 50.0), percentile(&ms, 90.0), percentile(&ms, 99.0));
    println!(
        "approval → applied over {} approvals: p50 {p50:.0} ms, p90 {p90:.0} ms, p99 {p99:.0} ms, max {:.0} ms",
        ms.len(),
        ms[ms.len() - 1]
    );
    if p99 <= TARGET_P99_MS {
        println!("target p99 ≤ {TARGET_P99_MS:.0} ms: met");
        ExitCode::SUCCESS
    } else {
        println!("target p99 ≤ {TARGET_P99_MS:.0} ms: missed");
        ExitCode::FAILURE
    }
}
