//! `fire-precision`: how late scheduled passes start, measured side by side on one API server.
//! The two controllers are reverie's DreamSchedule controller and kube-controller-manager's
//! `batch/v1` CronJob controller, and both run the same every-minute schedule.
//!
//! This is a measurement tool, not a test. It runs for about `--fires` + 1 minutes (default 22),
//! so it is not part of `make test`. `make fire-precision` runs it on a second local control
//! plane. Run directly, it uses the cluster in `KUBECONFIG`, which must run pods of the image
//! `reverie`.
//!
//! A watch on the namespace's Jobs records the local wall-clock time at which each Job first
//! shows up. The delay is that arrival time minus the scheduled instant. For reverie, the
//! scheduled instant is the `reverie.dev/scheduled-at` annotation. For the CronJob, it is the
//! `batch.kubernetes.io/cronjob-scheduled-timestamp` annotation the controller writes (1.28+),
//! else the Job name `<cronjob>-<scheduledTime.Unix()/60>`. As a cross-check, the tool also
//! prints the delay according to `creationTimestamp`, which is in whole seconds.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use reverie::api::dream_job::{SCHEDULE_LABEL, SCHEDULED_AT_ANNOTATION};
use reverie::api::dream_schedule::ConcurrencyPolicy;
use reverie::api::{Agent, DreamSchedule};
use reverie_api::test_support::DreamScheduleBuilder;
use reverie_e2e::{
    OperatorProcess, TestNamespace, apply, client, dreaming_agent, has_condition, install_crds, wait_for,
};
use serde_json::json;
use tokio::sync::mpsc;

const SCHEDULE: &str = "every-minute";
const CRONJOB: &str = "every-minute-kcm";
const AGENT: &str = "support";
const CRONJOB_SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// The target of the issue: reverie's p99 fire delay.
const TARGET_P99_MS: i64 = 1000;

#[derive(Parser)]
#[command(
    name = "fire-precision",
    about = "Delay from the scheduled instant to Job creation: reverie's DreamSchedule vs the \
             batch/v1 CronJob controller, on the cluster in KUBECONFIG (takes fires + 1..3 minutes)"
)]
struct Cli {
    /// How many fires of each controller to measure.
    #[arg(long, default_value_t = 22, value_parser = clap::value_parser!(u64).range(1..=1000))]
    fires: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Controller {
    Reverie,
    CronJob,
}

impl Controller {
    const ALL: [Controller; 2] = [Controller::Reverie, Controller::CronJob];

    fn label(self) -> &'static str {
        match self {
            Controller::Reverie => "reverie DreamSchedule",
            Controller::CronJob => "kcm CronJob (batch/v1)",
        }
    }
}

/// One Job's first appearance.
struct Sample {
    job: String,
    scheduled: Timestamp,
    /// Watch event arrival − scheduled instant.
    delay: SignedDuration,
    /// `creationTimestamp` − scheduled instant, in whole seconds.
    created_delay: Option<i64>,
    /// Seen in a re-list after the watch restarted, so the arrival time is an upper bound.
    relisted: bool,
}

/// What the Job watch reports to the measuring loop.
enum Seen {
    /// The initial list is complete: from now on every new Job arrives as a watch event.
    Synced,
    Job {
        arrival: Timestamp,
        job: Box<Job>,
        relisted: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.fires as usize).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("fire-precision: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Measures in a fresh namespace, then deletes it. `Ok(false)`: fewer fires than asked.
async fn run(fires: usize) -> Result<bool> {
    let client = client().await;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "fire-precision").await?;
    eprintln!("fire-precision: namespace {}", ns.name);
    let sessions = std::env::temp_dir().join(format!("reverie-{}-sessions", ns.name));
    let outcome = tokio::select! {
        outcome = measure(&ns, &sessions, fires) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    // Whatever happened (the operator process is gone by now: killed on drop or stopped).
    let name = ns.name.clone();
    let deleted = ns.delete().await;
    let _ = std::fs::remove_dir_all(&sessions);
    let samples = outcome?;
    deleted?;
    eprintln!("fire-precision: namespace {name} deleted");
    Ok(report(&samples, fires))
}

async fn measure(ns: &TestNamespace, sessions: &Path, fires: usize) -> Result<BTreeMap<Controller, Vec<Sample>>> {
    let operator = OperatorProcess::start(&ns.name, "fire-precision").await?;
    eprintln!("fire-precision: operator ready (log: {})", operator.log.display());

    // An agent with an empty sessions folder, so each dream pass ends at once.
    std::fs::create_dir_all(sessions).with_context(|| format!("creating {}", sessions.display()))?;
    let agents = ns.api::<Agent>();
    apply(&agents, &agent(sessions)?).await?;
    wait_for(&agents, AGENT, "MemoryReady", has_condition("MemoryReady", "True")).await?;

    // Watch first, so that no Job is missed.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watch = tokio::spawn(watch_jobs(ns.api::<Job>(), tx));
    let _abort_watch = AbortOnDrop(watch);
    match reverie_e2e::within(reverie_e2e::TIMEOUT, rx.recv()).await? {
        Some(Seen::Synced) => {}
        Some(Seen::Job { job, .. }) => bail!("a fresh namespace already has Job {}", job.name_any()),
        None => bail!("the Job watch ended before it synced"),
    }

    // Jobs of fire times before this instant are not counted.
    let start = Timestamp::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60 * (fires as u64 + 3));
    let schedules = ns.api::<DreamSchedule>();
    apply(&schedules, &dream_schedule()).await?;
    let cronjobs: Api<CronJob> = ns.api();
    cronjobs
        .create(&PostParams::default(), &cronjob()?)
        .await
        .context("creating a batch/v1 CronJob")?;
    wait_for(&schedules, SCHEDULE, "Ready", has_condition("Ready", "True")).await?;
    eprintln!(
        "fire-precision: measuring {fires} fires of each from {start} (at most {} minutes)",
        fires + 3
    );

    let mut seen = HashSet::new();
    let mut samples: BTreeMap<Controller, Vec<Sample>> = Controller::ALL.iter().map(|&c| (c, Vec::new())).collect();
    while samples.values().any(|s| s.len() < fires) {
        let seen_job = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => {
                eprintln!("fire-precision: deadline reached");
                break;
            }
            Ok(None) => bail!("the Job watch ended"),
            Ok(Some(Seen::Synced)) => continue,
            Ok(Some(Seen::Job { arrival, job, relisted })) => (arrival, job, relisted),
        };
        let (arrival, job, relisted) = seen_job;
        let name = job.name_any();
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some((controller, scheduled)) = classify(&job) else {
            continue;
        };
        if scheduled < start {
            continue;
        }
        let created_delay = job
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second() - scheduled.as_second());
        let sample = Sample {
            job: name,
            scheduled,
            delay: arrival.duration_since(scheduled),
            created_delay,
            relisted,
        };
        eprintln!(
            "fire-precision: {:<28} {}  {:>6} ms{}",
            controller.label(),
            sample.job,
            sample.delay.as_millis(),
            if relisted { " (re-listed)" } else { "" }
        );
        samples.entry(controller).or_default().push(sample);
    }
    for list in samples.values_mut() {
        list.sort_by_key(|s| s.scheduled);
        list.truncate(fires);
    }
    match operator.stop().await {
        Ok(Some(0)) => {}
        Ok(code) => eprintln!("fire-precision: the operator exited with {code:?}"),
        Err(e) => eprintln!("fire-precision: stopping the operator: {e:#}"),
    }
    Ok(samples)
}

/// Aborts a spawned task when dropped (the watch must not outlive the measurement).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Forwards every Job event with the local time it arrived at.
async fn watch_jobs(api: Api<Job>, tx: mpsc::UnboundedSender<Seen>) {
    let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut synced = false;
    while let Some(event) = events.next().await {
        let arrival = Timestamp::now();
        let seen = match event {
            Ok(watcher::Event::Apply(job)) => Seen::Job {
                arrival,
                job: Box::new(job),
                relisted: false,
            },
            Ok(watcher::Event::InitApply(job)) => Seen::Job {
                arrival,
                job: Box::new(job),
                relisted: synced,
            },
            Ok(watcher::Event::InitDone) if !synced => {
                synced = true;
                Seen::Synced
            }
            Ok(watcher::Event::Init) if synced => {
                eprintln!("fire-precision: the Job watch restarted (re-listing)");
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                eprintln!("fire-precision: Job watch error (retrying): {e}");
                continue;
            }
        };
        if tx.send(seen).is_err() {
            return;
        }
    }
}

/// Which controller made the Job, and for which scheduled instant.
///
/// The CronJob controller names its Jobs `<cronjob>-<scheduledTime.Unix() / 60>` and, from
/// 1.28, also records the instant in the `batch.kubernetes.io/cronjob-scheduled-timestamp`
/// annotation, which is preferred.
fn classify(job: &Job) -> Option<(Controller, Timestamp)> {
    if job.labels().get(SCHEDULE_LABEL).map(String::as_str) == Some(SCHEDULE) {
        let at = job.annotations().get(SCHEDULED_AT_ANNOTATION)?;
        return at.parse::<Timestamp>().ok().map(|t| (Controller::Reverie, t));
    }
    let minutes: i64 = job.name_any().strip_prefix(CRONJOB)?.strip_prefix('-')?.parse().ok()?;
    if let Some(at) = job.annotations().get(CRONJOB_SCHEDULED_AT) {
        return at.parse::<Timestamp>().ok().map(|t| (Controller::CronJob, t));
    }
    Timestamp::from_second(minutes.checked_mul(60)?)
        .ok()
        .map(|t| (Controller::CronJob, t))
}

fn agent(sessions: &Path) -> Result<Agent> {
    sessions.to_str().context("the sessions path is not UTF-8")?;
    Ok(dreaming_agent(AGENT, sessions))
}

fn dream_schedule() -> DreamSchedule {
    DreamScheduleBuilder::new(SCHEDULE)
        .cron("* * * * *")
        .agents(&[AGENT])
        .spec(|spec| {
            spec.concurrency_policy = ConcurrencyPolicy::Allow;
            spec.successful_jobs_history_limit = 100;
            spec.failed_jobs_history_limit = 100;
        })
        .build()
}

fn cronjob() -> Result<CronJob> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": CRONJOB},
        "spec": {
            "schedule": "* * * * *", "concurrencyPolicy": "Allow",
            "successfulJobsHistoryLimit": 100, "failedJobsHistoryLimit": 100,
            "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "version", "image": "reverie", "command": ["reverie", "--version"]}]
            }}}}
        }
    }))?)
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p` % of the
/// values at or below it (with fewer than 100 values, p99 is the maximum).
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn ms(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Prints the per-fire table and the summary; true when every controller fired `fires` times.
fn report(samples: &BTreeMap<Controller, Vec<Sample>>, fires: usize) -> bool {
    let empty = Vec::new();
    let of = |c: Controller| samples.get(&c).unwrap_or(&empty);
    let mut by_minute: BTreeMap<Timestamp, [Option<&Sample>; 2]> = BTreeMap::new();
    for (i, c) in Controller::ALL.iter().enumerate() {
        for sample in of(*c) {
            by_minute.entry(sample.scheduled).or_default()[i] = Some(sample);
        }
    }
    println!(
        "{:<22} {:>13} {:>9} {:>13} {:>9}",
        "scheduled (UTC)", "reverie ms", "ctime s", "CronJob ms", "ctime s"
    );
    let cell = |s: Option<&Sample>| match s {
        Some(s) => (
            format!("{}{}", s.delay.as_millis(), if s.relisted { "*" } else { "" }),
            ms(s.created_delay),
        ),
        None => ("-".to_string(), "-".to_string()),
    };
    for (scheduled, [reverie, cronjob]) in &by_minute {
        let (r, rc) = cell(*reverie);
        let (k, kc) = cell(*cronjob);
        println!("{:<22} {r:>13} {rc:>9} {k:>13} {kc:>9}", scheduled.to_string());
    }
    if samples.values().flatten().any(|s| s.relisted) {
        println!("* seen in a re-list after the watch restarted: an upper bound");
    }
    println!();
    println!(
        "{:<28} {:>5} {:>8} {:>8} {:>8} {:>8}",
        "delay to Job creation", "fires", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let mut complete = true;
    for c in Controller::ALL {
        let mut delays: Vec<i64> = of(c).iter().map(|s| s.delay.as_millis() as i64).collect();
        delays.sort_unstable();
        println!(
            "{:<28} {:>5} {:>8} {:>8} {:>8} {:>8}",
            c.label(),
            delays.len(),
            ms(percentile(&delays, 50)),
            ms(percentile(&delays, 90)),
            ms(percentile(&delays, 99)),
            ms(delays.last().copied())
        );
        if delays.len() < fires {
            complete = false;
            println!("  {}: only {} of {fires} fires seen in time", c.label(), delays.len());
        }
    }
    let mut reverie: Vec<i64> = of(Controller::Reverie)
        .iter()
        .map(|s| s.delay.as_millis() as i64)
        .collect();
    reverie.sort_unstable();
    if let Some(p99) = percentile(&reverie, 99) {
        let verdict = if p99 <= TARGET_P99_MS { "met" } else { "NOT met" };
        println!("target: reverie p99 ≤ {TARGET_P99_MS} ms: {verdict} ({p99} ms)");
    }
    complete
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<i64> = (1..=22).collect();
        assert_eq!(percentile(&values, 50), Some(11));
        assert_eq!(percentile(&values, 90), Some(20));
        assert_eq!(percentile(&values, 99), Some(22));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn jobs_are_told_apart_by_annotation_or_name() {
        let job = |name: &str, labels: serde_json::Value, annotations: serde_json::Value| -> Job {
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels, "annotations": annotations}}))
                .unwrap()
        };
        let reverie = job(
            "every-minute-support-29000000",
            json!({SCHEDULE_LABEL: SCHEDULE}),
            json!({SCHEDULED_AT_ANNOTATION: "2025-02-19T13:20:00Z"}),
        );
        let (c, at) = classify(&reverie).unwrap();
        assert_eq!(
            (c, at.to_string()),
            (Controller::Reverie, "2025-02-19T13:20:00Z".to_string())
        );
        let created = |name: &str, at: &str| -> Job {
            serde_json::from_value(json!({"metadata": {"name": name, "creationTimestamp": at}})).unwrap()
        };
        // The controller's annotation wins; without it, the name's minutes.
        let mut annotated = created("every-minute-kcm-29000001", "2025-02-19T21:21:03Z");
        annotated.metadata.annotations =
            Some([(CRONJOB_SCHEDULED_AT.to_string(), "2025-02-19T21:21:00Z".to_string())].into());
        assert_eq!(
            classify(&annotated).map(|(c, t)| (c, t.as_second())),
            Some((Controller::CronJob, 29_000_001 * 60))
        );
        let minutes = created("every-minute-kcm-29000001", "2025-02-19T21:21:03Z");
        assert_eq!(
            classify(&minutes).map(|(c, t)| (c, t.as_second())),
            Some((Controller::CronJob, 29_000_001 * 60))
        );
        assert!(classify(&job("every-minute-kcm-x", json!({}), json!({}))).is_none());
        assert!(classify(&job("other", json!({}), json!({}))).is_none());
    }
}
