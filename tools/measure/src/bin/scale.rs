//! `scale`: the operator at scale: `--agents` Agents with `--proposals` MemoryProposals each and
//! `--schedules` DreamSchedules, spread over `--namespaces` namespaces of the cluster in
//! `KUBECONFIG` (`make scale` starts a control plane of its own for it).
//!
//! A measurement tool, not a test. It creates the objects, then starts `reverie operator` twice:
//! 1. **converge**: the first operator brings every object to its status (a memory revision
//!    per agent, a digest per proposal, a next fire time per schedule);
//! 2. **idle**: with nothing changing, it is watched for `--idle-seconds`: no reconcile and no
//!    write is expected;
//! 3. **restart**: a second operator starts on the converged cluster and reconciles every
//!    object once: the cost of a reconcile that has nothing to do.
//!
//! For each phase it reports the operator's own counters (`reverie_api_requests_total` by
//! verb, `reverie_reconciles_total`), reconcile latency p50/p99 (interpolated within the
//! buckets of `reverie_reconcile_duration_seconds`, as Prometheus' `histogram_quantile`
//! does), the operator's peak RSS (`VmHWM`) and the time until the reconcile counters settle.
//! Lease requests are leader election, not reconciles, and are counted apart.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use kube::Api;
use kube::api::{ListParams, PostParams};
use reverie::api::memory_proposal::Phase;
use reverie::api::{Agent, DreamSchedule, MemoryProposal};
use reverie_e2e::{OperatorProcess, TestNamespace, client, install_crds};
use serde_json::json;

/// Requests in flight while creating the objects.
const CREATE_CONCURRENCY: usize = 32;
/// The reconcile counters must stay still this long for a phase to count as settled.
const SETTLED_AFTER: Duration = Duration::from_secs(10);
/// A phase that has not settled by then is reported as a failure.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(1800);
/// Agents per label group; each schedule selects one group.
const GROUP: usize = 10;

#[derive(Parser)]
#[command(name = "scale", about = "The operator at scale, on the cluster in KUBECONFIG")]
struct Cli {
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Proposals per agent.
    #[arg(long, default_value_t = 10)]
    proposals: usize,
    #[arg(long, default_value_t = 100)]
    schedules: usize,
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> Result<()> {
    if cli.namespaces == 0 || cli.agents < cli.namespaces {
        bail!("need at least one agent per namespace");
    }
    let client = client().await;
    install_crds(&client).await?;
    let mut namespaces = Vec::new();
    for index in 0..cli.namespaces {
        namespaces.push(TestNamespace::create(&client, &format!("scale{index}")).await?);
    }
    let started = Instant::now();
    create_objects(cli, &namespaces).await?;
    eprintln!("created the objects in {:.0} s", started.elapsed().as_secs_f64());

    let lease_namespace = namespaces[0].name.clone();
    let spawned = Instant::now();
    let first = OperatorProcess::start(&lease_namespace, "scale-converge").await?;
    let converge = settle(&first, "converge", spawned).await?;
    check_converged(cli, &namespaces).await?;
    let before_idle = Sample::take(&first).await?;
    tokio::time::sleep(Duration::from_secs(cli.idle_seconds)).await;
    let idle = Sample::take(&first).await?.since(&before_idle);
    first.stop().await?;

    let spawned = Instant::now();
    let second = OperatorProcess::start(&lease_namespace, "scale-restart").await?;
    let restart = settle(&second, "restart", spawned).await?;
    second.stop().await?;

    println!("{}", report(cli, &converge, &idle, &restart));
    for namespace in namespaces {
        namespace.delete().await?;
    }
    Ok(())
}

/// Agents (labelled in groups of [`GROUP`]), their proposals, and the schedules, each
/// selecting one group and firing once a year so no pass runs during the measurement.
async fn create_objects(cli: &Cli, namespaces: &[TestNamespace]) -> Result<()> {
    let per_namespace = cli.agents / namespaces.len();
    let mut creations = Vec::new();
    for namespace in namespaces {
        for index in 0..per_namespace {
            creations.push(Creation::Agent(namespace.api(), Box::new(agent(index)?)));
        }
    }
    run_all(creations).await?;
    let mut creations = Vec::new();
    for namespace in namespaces {
        for index in 0..per_namespace {
            for number in 0..cli.proposals {
                creations.push(Creation::Proposal(namespace.api(), Box::new(proposal(index, number)?)));
            }
        }
    }
    run_all(creations).await?;
    let groups = per_namespace.div_ceil(GROUP);
    let mut creations = Vec::new();
    for index in 0..cli.schedules {
        let namespace = &namespaces[index % namespaces.len()];
        creations.push(Creation::Schedule(
            namespace.api(),
            Box::new(schedule(index, index / namespaces.len() % groups)?),
        ));
    }
    run_all(creations).await
}

/// One object to create (boxed: the kinds differ much in size).
enum Creation {
    Agent(Api<Agent>, Box<Agent>),
    Proposal(Api<MemoryProposal>, Box<MemoryProposal>),
    Schedule(Api<DreamSchedule>, Box<DreamSchedule>),
}

async fn run_all(creations: Vec<Creation>) -> Result<()> {
    futures::stream::iter(creations)
        .map(|creation| async move {
            let params = PostParams::default();
            match creation {
                Creation::Agent(api, object) => api.create(&params, &object).await.map(|_| ()),
                Creation::Proposal(api, object) => api.create(&params, &object).await.map(|_| ()),
                Creation::Schedule(api, object) => api.create(&params, &object).await.map(|_| ()),
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .context("creating the objects")?;
    Ok(())
}

fn agent(index: usize) -> Result<Agent> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "Agent",
        "metadata": {"name": format!("agent-{index}"), "labels": {"group": format!("g{}", index / GROUP)}},
        "spec": {"model": "claude", "instructions": format!("Help customers of desk {index}."),
                 "sessions": {"hostPath": {"path": "/var/lib/sessions"}, "path": format!("agent-{index}")}}
    }))?)
}

fn proposal(agent: usize, number: usize) -> Result<MemoryProposal> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "MemoryProposal",
        "metadata": {"name": format!("agent-{agent}-{number}")},
        "spec": {"agentRef": {"name": format!("agent-{agent}")}, "baseRevision": 1, "baseDigest": "",
                 "summary": "One lesson.",
                 "changes": [{"op": "Add", "section": "lessons",
                              "after": format!("Lesson {number}: confirm the account first."), "evidence": {"count": 3}}]}
    }))?)
}

fn schedule(index: usize, group: usize) -> Result<DreamSchedule> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "DreamSchedule",
        "metadata": {"name": format!("nightly-{index}")},
        "spec": {"schedule": "0 3 1 1 *", "agents": {"selector": {"matchLabels": {"group": format!("g{group}")}}}}
    }))?)
}

/// Every object reached its converged status: agents hold a memory revision, proposals wait
/// for review, schedules know their next fire time.
async fn check_converged(cli: &Cli, namespaces: &[TestNamespace]) -> Result<()> {
    let (mut agents, mut proposals, mut schedules) = (0, 0, 0);
    for namespace in namespaces {
        let listed = namespace.api::<Agent>().list(&ListParams::default()).await?;
        agents += listed
            .items
            .iter()
            .filter(|a| a.status.as_ref().and_then(|s| s.memory.as_ref()).is_some())
            .count();
        let listed = namespace.api::<MemoryProposal>().list(&ListParams::default()).await?;
        proposals += listed
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase) == Some(Phase::Pending))
            .count();
        let listed = namespace.api::<DreamSchedule>().list(&ListParams::default()).await?;
        schedules += listed
            .items
            .iter()
            .filter(|s| s.status.as_ref().and_then(|s| s.next_schedule_time.as_ref()).is_some())
            .count();
    }
    let per_namespace = cli.agents / namespaces.len() * namespaces.len();
    let expected = (per_namespace, per_namespace * cli.proposals, cli.schedules);
    if (agents, proposals, schedules) != expected {
        bail!(
            "not converged: {agents} agents with memory, {proposals} proposals pending, {schedules} schedules with a next time; expected {expected:?}"
        );
    }
    Ok(())
}

/// What the operator's `/metrics` and `/proc` say at one moment.
#[derive(Clone, Debug, Default)]
struct Sample {
    /// `reverie_api_requests_total` by verb, leases apart.
    requests: BTreeMap<String, f64>,
    lease_requests: f64,
    reconciles: f64,
    /// `reverie_reconcile_duration_seconds` buckets summed over controllers: upper bound → count.
    buckets: BTreeMap<u64, f64>,
    peak_rss_kib: u64,
}

impl Sample {
    async fn take(operator: &OperatorProcess) -> Result<Self> {
        let (_, text) = operator.get("/metrics").await?;
        let mut sample = Sample::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let value: f64 = value.parse().unwrap_or(0.0);
            if let Some(labels) = series.strip_prefix("reverie_api_requests_total{") {
                let verb = label(labels, "verb").unwrap_or_default();
                if label(labels, "resource") == Some("leases") {
                    sample.lease_requests += value;
                } else {
                    *sample.requests.entry(verb.to_string()).or_default() += value;
                }
            } else if series.starts_with("reverie_reconciles_total{") {
                sample.reconciles += value;
            } else if let Some(labels) = series.strip_prefix("reverie_reconcile_duration_seconds_bucket{") {
                let le = label(labels, "le").unwrap_or("+Inf");
                let micros = le.parse::<f64>().map_or(u64::MAX, |s| (s * 1e6).round() as u64);
                *sample.buckets.entry(micros).or_default() += value;
            }
        }
        sample.peak_rss_kib = operator.pid().map_or(0, peak_rss_kib);
        Ok(sample)
    }

    /// The counters accumulated since `earlier` (peak RSS stays the process's peak).
    fn since(&self, earlier: &Sample) -> Sample {
        Sample {
            requests: minus(&self.requests, &earlier.requests),
            lease_requests: self.lease_requests - earlier.lease_requests,
            reconciles: self.reconciles - earlier.reconciles,
            buckets: minus(&self.buckets, &earlier.buckets),
            peak_rss_kib: self.peak_rss_kib,
        }
    }

    fn writes(&self) -> f64 {
        ["create", "update", "patch", "delete", "deletecollection"]
            .iter()
            .map(|verb| self.requests.get(*verb).copied().unwrap_or(0.0))
            .sum()
    }

    fn total_requests(&self) -> f64 {
        self.requests.values().sum()
    }

    /// The `q` quantile of reconcile duration in milliseconds, interpolated within its bucket.
    fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.buckets.get(&u64::MAX).copied().unwrap_or(0.0);
        if total == 0.0 {
            return 0.0;
        }
        let rank = q * total;
        let (mut lower, mut below) = (0u64, 0.0);
        for (&upper, &count) in &self.buckets {
            if count >= rank {
                if upper == u64::MAX {
                    return lower as f64 / 1000.0;
                }
                let share = if count > below {
                    (rank - below) / (count - below)
                } else {
                    1.0
                };
                return (lower as f64 + (upper - lower) as f64 * share) / 1000.0;
            }
            (lower, below) = (upper, count);
        }
        lower as f64 / 1000.0
    }
}

/// Counter values of `now` less those of `before`, key by key.
fn minus<K: Ord + Clone>(now: &BTreeMap<K, f64>, before: &BTreeMap<K, f64>) -> BTreeMap<K, f64> {
    now.iter()
        .map(|(key, value)| (key.clone(), value - before.get(key).copied().unwrap_or(0.0)))
        .collect()
}

fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels
        .trim_end_matches('}')
        .split(',')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix("=\""))
        .map(|value| value.trim_end_matches('"'))
}

/// The process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A phase: its counters and how long the reconcile counter took to stop moving.
struct Phased {
    sample: Sample,
    settled_after: Duration,
}

/// Waits until the operator's reconcile counter has not moved for [`SETTLED_AFTER`]; the
/// phase lasted from `started` (the operator's spawn, so cache sync counts) to its last move.
async fn settle(operator: &OperatorProcess, phase: &str, started: Instant) -> Result<Phased> {
    let (mut last_count, mut last_move) = (-1.0, started);
    loop {
        let sample = Sample::take(operator).await?;
        if sample.reconciles != last_count {
            (last_count, last_move) = (sample.reconciles, Instant::now());
        } else if last_move.elapsed() >= SETTLED_AFTER && sample.reconciles > 0.0 {
            eprintln!(
                "{phase}: settled after {:.1} s, {} reconciles",
                (last_move - started).as_secs_f64(),
                sample.reconciles
            );
            return Ok(Phased {
                sample,
                settled_after: last_move - started,
            });
        }
        if started.elapsed() > SETTLE_TIMEOUT {
            bail!("{phase}: still reconciling after {} s", SETTLE_TIMEOUT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn report(cli: &Cli, converge: &Phased, idle: &Sample, restart: &Phased) -> String {
    let mut out = format!(
        "scale: {} agents × {} proposals, {} schedules, {} namespaces\n\n",
        cli.agents, cli.proposals, cli.schedules, cli.namespaces
    );
    out.push_str("| phase | reconciles | API requests (by verb) | requests / reconcile | writes | p50 | p99 | peak RSS | settled after |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    let row = |name: &str, sample: &Sample, settled: Option<Duration>| {
        let verbs: Vec<String> = sample
            .requests
            .iter()
            .filter(|(_, n)| **n > 0.0)
            .map(|(verb, n)| format!("{verb} {n:.0}"))
            .collect();
        let per_reconcile = if sample.reconciles > 0.0 {
            format!("{:.2}", sample.total_requests() / sample.reconciles)
        } else {
            "–".to_string()
        };
        format!(
            "| {name} | {:.0} | {} | {per_reconcile} | {:.0} | {:.1} ms | {:.1} ms | {:.0} MiB | {} |\n",
            sample.reconciles,
            if verbs.is_empty() {
                "none".to_string()
            } else {
                verbs.join(", ")
            },
            sample.writes(),
            sample.quantile_ms(0.5),
            sample.quantile_ms(0.99),
            sample.peak_rss_kib as f64 / 1024.0,
            settled.map_or_else(
                || format!("{} s idle", cli.idle_seconds),
                |d| format!("{:.1} s", d.as_secs_f64())
            ),
        )
    };
    out.push_str(&row("converge", &converge.sample, Some(converge.settled_after)));
    out.push_str(&row("idle", idle, None));
    out.push_str(&row("restart", &restart.sample, Some(restart.settled_after)));
    out.push_str(&format!(
        "\nLease requests (leader election, not counted above): converge {:.0}, idle {:.0}, restart {:.0}\n",
        converge.sample.lease_requests, idle.lease_requests, restart.sample.lease_requests
    ));
    out
}
