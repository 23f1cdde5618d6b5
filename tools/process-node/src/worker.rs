//! One task per pod bound to this node: set the pod up, run its init containers in order
//! and then its containers, apply the restart policy, report status, and on deletion stop
//! the processes and remove the pod for good.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::Ctx;
use super::env::{base_env, resolve_env};
use super::process::{self, Exit};
use super::refs::{self, Refs, TokenKey};
use super::status::{self, Slot, State, Term};
use super::volumes::{self, Layout, Mount, Plan};

/// What the dispatcher tells a worker.
#[derive(Debug, Clone)]
pub enum Update {
    Pod(Arc<Pod>),
    /// The pod no longer exists.
    Gone,
}

enum Event {
    Exited { slot: usize, run: u64, exit: Exit },
    RestartDue { slot: usize, run: u64 },
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    /// Fetching references and materialising volumes (retried).
    Setup,
    /// Running init container `n`.
    Init(usize),
    /// Init containers done; containers running (or restarting).
    Main,
    /// Succeeded or Failed; nothing runs any more.
    Terminal(&'static str),
    /// The pod was deleted: processes stopped, final delete sent.
    Deleting,
    /// process-node is shutting down (the pod keeps its last reported status).
    Stopping,
}

/// How to start one container, computed at setup.
struct Launch {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
    working_dir: String,
    /// `terminationMessagePath` inside the container.
    termination_path: String,
    /// The host file bind-mounted there (emptied at every start, read after every exit).
    termination_file: PathBuf,
}

struct Worker {
    ctx: Arc<Ctx>,
    pod: Arc<Pod>,
    ns: String,
    name: String,
    uid: String,
    policy: String,
    slots: Vec<Slot>,
    n_init: usize,
    containers: Vec<Container>,
    launches: Vec<Launch>,
    stage: Stage,
    tx: mpsc::UnboundedSender<Event>,
    setup_since: Instant,
    setup_error: Option<String>,
    pod_reason: Option<String>,
    pod_message: Option<String>,
    start_time: Option<Timestamp>,
    /// Report status for this pod (off for terminal pods found at startup).
    owns_status: bool,
    last_sent: Option<serde_json::Value>,
    dirty: bool,
    tokens: BTreeMap<TokenKey, String>,
    tokens_at: Instant,
    last_delete_attempt: Option<Instant>,
}

fn deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Run the worker of one pod until the pod is gone or the node shuts down.
pub async fn run(
    ctx: Arc<Ctx>,
    pod: Arc<Pod>,
    mut updates: watch::Receiver<Update>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut w = Worker::new(ctx, pod, tx);
    info!(pod = %w.key(), "pod assigned to this node");
    w.adopt().await;
    if deleting(&w.pod) {
        w.delete(&mut rx).await;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refresh = tokio::time::interval(Duration::from_secs(60));
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    refresh.reset();
    loop {
        tokio::select! {
            changed = updates.changed() => {
                if changed.is_err() {
                    // The dispatcher is gone: process-node is stopping.
                    w.stage = Stage::Stopping;
                    w.stop_processes(Duration::from_secs(5), &mut rx).await;
                    return;
                }
                let update = updates.borrow_and_update().clone();
                match update {
                    Update::Gone => {
                        w.stage = Stage::Deleting;
                        w.stop_processes(Duration::from_secs(2), &mut rx).await;
                        w.cleanup();
                        info!(pod = %w.key(), "pod gone");
                        return;
                    }
                    Update::Pod(pod) => {
                        w.pod = pod;
                        if deleting(&w.pod) && w.stage != Stage::Deleting {
                            w.delete(&mut rx).await;
                        }
                    }
                }
            }
            _ = shutdown.changed() => {
                w.stage = Stage::Stopping;
                w.stop_processes(Duration::from_secs(5), &mut rx).await;
                return;
            }
            Some(event) = rx.recv() => w.on_event(event).await,
            _ = tick.tick() => w.on_tick(&mut rx).await,
            _ = refresh.tick() => w.refresh_volumes().await,
        }
    }
}

impl Worker {
    fn new(ctx: Arc<Ctx>, pod: Arc<Pod>, tx: mpsc::UnboundedSender<Event>) -> Worker {
        let spec = pod.spec.clone().unwrap_or_default();
        let init: Vec<Container> = spec.init_containers.clone().unwrap_or_default();
        let n_init = init.len();
        let containers: Vec<Container> = init.into_iter().chain(spec.containers).collect();
        let slots = containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let reason = if n_init > 0 {
                    "PodInitializing"
                } else {
                    "ContainerCreating"
                };
                Slot::new(&c.name, c.image.as_deref().unwrap_or(""), i < n_init, reason)
            })
            .collect();
        Worker {
            ns: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            policy: spec.restart_policy.unwrap_or_else(|| "Always".into()),
            slots,
            n_init,
            containers,
            launches: Vec::new(),
            stage: Stage::Setup,
            tx,
            setup_since: Instant::now(),
            setup_error: None,
            pod_reason: None,
            pod_message: None,
            start_time: None,
            owns_status: true,
            last_sent: None,
            dirty: false,
            tokens: BTreeMap::new(),
            tokens_at: Instant::now(),
            last_delete_attempt: None,
            ctx,
            pod,
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.ns, self.name)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.ctx.client.clone(), &self.ns)
    }

    /// Decide what to do with a pod first seen by this worker, possibly one a previous
    /// process-node left behind.
    async fn adopt(&mut self) {
        let status = self.pod.status.clone().unwrap_or_default();
        let phase = status.phase.clone().unwrap_or_default();
        for (slot, old) in self.slots.iter_mut().zip(
            status
                .init_container_statuses
                .iter()
                .flatten()
                .chain(status.container_statuses.iter().flatten()),
        ) {
            if slot.name == old.name {
                slot.restarts = old.restart_count;
            }
        }
        match phase.as_str() {
            "Succeeded" => {
                self.stage = Stage::Terminal("Succeeded");
                self.owns_status = false;
            }
            "Failed" => {
                self.stage = Stage::Terminal("Failed");
                self.owns_status = false;
            }
            "Running" if self.policy == "Never" => {
                // Started by an earlier process-node whose processes are gone: like a node
                // reboot, the pod fails.
                let old: BTreeMap<String, Term> = status
                    .init_container_statuses
                    .iter()
                    .flatten()
                    .chain(status.container_statuses.iter().flatten())
                    .filter_map(|cs| {
                        let t = cs.state.as_ref()?.terminated.as_ref()?;
                        Some((cs.name.clone(), Term::from_api(t)))
                    })
                    .collect();
                for slot in &mut self.slots {
                    slot.state = State::Terminated(old.get(&slot.name).cloned().unwrap_or_else(|| Term {
                        exit_code: 137,
                        signal: None,
                        reason: "ContainerStatusUnknown".into(),
                        message: Some("process-node restarted; the process is gone".into()),
                        started_at: None,
                        finished_at: Timestamp::now(),
                        container_id: None,
                    }));
                }
                self.start_time = status.start_time.as_ref().map(|t| t.0);
                self.pod_message = Some("process-node restarted while the pod was running".into());
                self.stage = Stage::Terminal("Failed");
                self.dirty = true;
                self.sync_status().await;
            }
            _ => {
                self.start_time = status.start_time.as_ref().map(|t| t.0);
                if !deleting(&self.pod) {
                    self.try_setup().await;
                }
            }
        }
    }

    fn layout(&self) -> Layout {
        Layout {
            pod_dir: self.ctx.pod_dir(&self.uid),
            state_dir: self.ctx.state_dir.clone(),
        }
    }

    fn home_dir(&self) -> PathBuf {
        self.ctx.pod_dir(&self.uid).join("home")
    }

    async fn prepare(&mut self) -> Result<(Refs, Vec<Launch>), String> {
        let refs = refs::fetch(&self.ctx, &self.pod, &self.tokens).await?;
        let plan = volumes::plan(&self.pod, &refs, &self.ctx.host, &self.layout())?;
        let home = self.home_dir();
        let mut launches = Vec::new();
        for c in &self.containers {
            let base = base_env(&self.ctx.host, &self.pod, &home.to_string_lossy());
            let env = resolve_env(&self.pod, c, &refs, &self.ctx.host, base)
                .map_err(|e| format!("container {:?}: {e}", c.name))?;
            let mounts = volumes::container_mounts(c, &plan, &env)?;
            let argv = process::resolve_argv(c, &env, self.ctx.host.reverie_bin.as_deref())?;
            let termination_path = process::termination_message_path(c)?;
            let termination_file = self
                .ctx
                .pod_dir(&self.uid)
                .join("termination")
                .join(volumes::safe_relative(&c.name).map_err(|e| format!("container name: {e}"))?);
            launches.push(Launch {
                argv,
                env,
                mounts,
                working_dir: c.working_dir.clone().unwrap_or_default(),
                termination_path,
                termination_file,
            });
        }
        volumes::materialise(&plan)?;
        for launch in &launches {
            volumes::ensure_mount_sources(&launch.mounts)?;
        }
        std::fs::create_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
        Ok((refs, launches))
    }

    /// One setup attempt; on success the first container starts.
    async fn try_setup(&mut self) {
        match self.prepare().await {
            Ok((refs, launches)) => {
                self.tokens = refs.tokens;
                self.tokens_at = Instant::now();
                self.launches = launches;
                self.setup_error = None;
                self.pod_reason = None;
                self.pod_message = None;
                if self.start_time.is_none() {
                    self.start_time = Some(Timestamp::now());
                }
                if self.n_init > 0 {
                    self.stage = Stage::Init(0);
                    self.start(0);
                } else {
                    self.start_main();
                }
            }
            Err(e) => {
                let give_up = self.policy != "Always" && self.setup_since.elapsed() >= self.ctx.setup_retry;
                if self.setup_error.as_deref() != Some(e.as_str()) {
                    warn!(pod = %self.key(), "cannot set the pod up: {e}");
                }
                for slot in &mut self.slots {
                    slot.state = State::Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message: Some(e.clone()),
                    };
                }
                if give_up {
                    for slot in &mut self.slots {
                        slot.state = State::Terminated(Term {
                            exit_code: 128,
                            signal: None,
                            reason: "CreateContainerConfigError".into(),
                            message: Some(e.clone()),
                            started_at: None,
                            finished_at: Timestamp::now(),
                            container_id: None,
                        });
                    }
                    self.pod_reason = Some("CreateContainerConfigError".into());
                    self.pod_message = Some(format!("process-node cannot run this pod: {e}"));
                    self.stage = Stage::Terminal("Failed");
                    warn!(pod = %self.key(), "giving up: pod Failed");
                }
                self.setup_error = Some(e);
                self.dirty = true;
            }
        }
        self.sync_status().await;
    }

    fn start_main(&mut self) {
        self.stage = Stage::Main;
        for i in self.n_init..self.slots.len() {
            self.start(i);
        }
    }

    /// Start container `i`; failures to start come back as an exit event.
    fn start(&mut self, i: usize) {
        let key = self.key();
        let (Some(slot), Some(launch)) = (self.slots.get_mut(i), self.launches.get(i)) else {
            return;
        };
        slot.run += 1;
        let run = slot.run;
        let mut mounts: Vec<(Mount, bool)> = launch.mounts.iter().map(|m| (m.clone(), m.source.is_file())).collect();
        // Last, so that it lands on top of a volume mounted above its path.
        mounts.push((
            Mount {
                source: launch.termination_file.clone(),
                target: launch.termination_path.clone(),
                read_only: false,
            },
            true,
        ));
        let script = process::mount_script(&mounts, &launch.working_dir, &self.ctx.tools);
        let log_path = self
            .ctx
            .logs_dir()
            .join(format!("{}_{}_{}.log", self.ns, self.name, slot.name));
        let banner = format!(
            "=== process-node {}: container {} (restart {}): {:?}",
            Timestamp::now(),
            slot.name,
            slot.restarts,
            launch.argv
        );
        let started_at = Timestamp::now();
        let tx = self.tx.clone();
        let termination_file = launch.termination_file.clone();
        let spawned = process::reset_termination_file(&termination_file)
            .and_then(|()| process::spawn(&self.ctx.tools, &script, &launch.argv, &launch.env, &log_path, &banner));
        match spawned {
            Ok(started) => {
                info!(pod = %key, container = %slot.name, pid = started.pgid, "container started");
                slot.state = State::Running {
                    started_at,
                    pgid: started.pgid,
                };
                tokio::spawn(async move {
                    let mut exit = process::wait(started).await;
                    exit.termination_file = process::read_termination_file(&termination_file);
                    let _ = tx.send(Event::Exited { slot: i, run, exit });
                });
            }
            Err(e) => {
                warn!(pod = %key, container = %slot.name, "cannot start: {e}");
                slot.state = State::Running { started_at, pgid: 0 };
                let _ = tx.send(Event::Exited {
                    slot: i,
                    run,
                    exit: Exit {
                        code: 128,
                        signal: None,
                        stderr_tail: e,
                        termination_file: Vec::new(),
                    },
                });
            }
        }
        self.dirty = true;
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Exited { slot, run, exit } => self.on_exit(slot, run, exit),
            Event::RestartDue { slot, run } => {
                let active = matches!(self.stage, Stage::Init(_) | Stage::Main);
                if let Some(s) = self.slots.get_mut(slot)
                    && s.run == run
                    && s.restart_pending
                    && active
                {
                    s.restart_pending = false;
                    s.restarts += 1;
                    self.start(slot);
                }
            }
        }
        self.sync_status().await;
    }

    fn on_exit(&mut self, i: usize, run: u64, exit: Exit) {
        let key = self.key();
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if slot.run != run {
            return;
        }
        let (started_at, pgid) = match &slot.state {
            State::Running { started_at, pgid } => (Some(*started_at), *pgid),
            _ => (None, 0),
        };
        let policy = self
            .containers
            .get(i)
            .and_then(|c| c.termination_message_policy.as_deref());
        let message = process::termination_message(policy, &exit.termination_file, exit.code, &exit.stderr_tail);
        let term = Term {
            exit_code: exit.code,
            signal: exit.signal,
            reason: if exit.code == 0 { "Completed" } else { "Error" }.into(),
            message,
            started_at,
            finished_at: Timestamp::now(),
            container_id: (pgid > 0).then(|| status::container_id(pgid)),
        };
        info!(pod = %key, container = %slot.name, code = exit.code, "container exited");
        slot.state = State::Terminated(term.clone());
        self.dirty = true;
        if !matches!(self.stage, Stage::Init(_) | Stage::Main) {
            return;
        }
        let ran_secs = started_at
            .map(|s| term.finished_at.as_second() - s.as_second())
            .unwrap_or(0);
        if slot.init {
            if exit.code == 0 {
                if i + 1 < self.n_init {
                    self.stage = Stage::Init(i + 1);
                    self.start(i + 1);
                } else {
                    self.start_main();
                }
            } else if self.policy == "Never" {
                self.pod_message = Some(format!(
                    "init container {:?} failed with exit code {}",
                    slot.name, exit.code
                ));
                self.stage = Stage::Terminal("Failed");
            } else {
                self.schedule_restart(i, ran_secs);
            }
            return;
        }
        if status::should_restart(&self.policy, exit.code) {
            self.schedule_restart(i, ran_secs);
            return;
        }
        let main: Vec<&Slot> = self.slots[self.n_init..].iter().collect();
        if let Some(phase) = status::terminal_phase(&main) {
            if phase == "Failed" {
                let failed: Vec<String> = main
                    .iter()
                    .filter(|s| s.exit_code() != Some(0))
                    .map(|s| format!("{} (exit code {})", s.name, s.exit_code().unwrap_or(-1)))
                    .collect();
                self.pod_message = Some(format!("containers failed: {}", failed.join(", ")));
            }
            info!(pod = %key, phase, "pod finished");
            self.stage = Stage::Terminal(phase);
        }
    }

    fn schedule_restart(&mut self, i: usize, ran_secs: i64) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let delay = status::backoff_secs(slot.restarts, ran_secs);
        if let State::Terminated(t) = &slot.state {
            slot.last = Some(t.clone());
        }
        slot.restart_pending = true;
        slot.state = State::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: Some(format!("back-off {delay}s restarting failed container {}", slot.name)),
        };
        let run = slot.run;
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(delay)).await;
            let _ = tx.send(Event::RestartDue { slot: i, run });
        });
    }

    async fn on_tick(&mut self, rx: &mut mpsc::UnboundedReceiver<Event>) {
        match self.stage {
            Stage::Setup if !deleting(&self.pod) => self.try_setup().await,
            Stage::Deleting => {
                let due = self
                    .last_delete_attempt
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
                if due {
                    self.final_delete().await;
                }
            }
            _ => {}
        }
        if deleting(&self.pod) && self.stage != Stage::Deleting {
            self.delete(rx).await;
        }
        self.sync_status().await;
    }

    /// Keep ConfigMap / Secret / token files current while containers run.
    async fn refresh_volumes(&mut self) {
        if !matches!(self.stage, Stage::Init(_) | Stage::Main) {
            return;
        }
        if self.tokens_at.elapsed() >= Duration::from_secs(30 * 60) {
            self.tokens.clear();
        }
        let refs = match refs::fetch(&self.ctx, &self.pod, &self.tokens).await {
            Ok(refs) => refs,
            Err(e) => {
                debug!(pod = %self.key(), "volume refresh skipped: {e}");
                return;
            }
        };
        if self.tokens.is_empty() {
            self.tokens_at = Instant::now();
        }
        self.tokens = refs.tokens.clone();
        let plan: Plan = match volumes::plan(&self.pod, &refs, &self.ctx.host, &self.layout()) {
            Ok(plan) => plan,
            Err(e) => {
                debug!(pod = %self.key(), "volume refresh skipped: {e}");
                return;
            }
        };
        match volumes::refresh(&plan) {
            Ok(0) => {}
            Ok(n) => info!(pod = %self.key(), files = n, "volume files updated"),
            Err(e) => warn!(pod = %self.key(), "volume refresh failed: {e}"),
        }
    }

    /// SIGTERM every running container, SIGKILL after `grace`, and wait for the exits.
    async fn stop_processes(&mut self, grace: Duration, rx: &mut mpsc::UnboundedReceiver<Event>) {
        let running = |w: &Worker| {
            w.slots
                .iter()
                .filter_map(|s| match s.state {
                    State::Running { pgid, .. } if pgid > 0 => Some(pgid),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let groups = running(self);
        if groups.is_empty() {
            return;
        }
        for pgid in &groups {
            process::signal_group(*pgid, libc::SIGTERM);
        }
        let mut killed = false;
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let left = running(self);
            if left.is_empty() {
                break;
            }
            let wait = if killed {
                tokio::time::sleep(Duration::from_secs(5))
            } else {
                tokio::time::sleep_until(deadline)
            };
            tokio::select! {
                event = rx.recv() => match event {
                    Some(Event::Exited { slot, run, exit }) => self.on_exit(slot, run, exit),
                    Some(Event::RestartDue { .. }) => {}
                    None => break,
                },
                _ = wait => {
                    if killed {
                        warn!(pod = %self.key(), "processes did not exit after SIGKILL");
                        break;
                    }
                    for pgid in &left {
                        process::signal_group(*pgid, libc::SIGKILL);
                    }
                    killed = true;
                }
            }
        }
    }

    /// Graceful deletion: stop the processes within the grace period, then remove the pod.
    async fn delete(&mut self, rx: &mut mpsc::UnboundedReceiver<Event>) {
        let spec_grace = self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds);
        let grace = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or(spec_grace)
            .unwrap_or(30)
            .clamp(0, 60);
        info!(pod = %self.key(), grace, "pod deleted: stopping its processes");
        self.stage = Stage::Deleting;
        self.stop_processes(Duration::from_secs(grace as u64), rx).await;
        self.final_delete().await;
    }

    async fn final_delete(&mut self) {
        self.last_delete_attempt = Some(Instant::now());
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.pods().delete(&self.name, &params).await {
            Ok(_) => debug!(pod = %self.key(), "final delete sent"),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => warn!(pod = %self.key(), "final delete failed (will retry): {e}"),
        }
    }

    fn cleanup(&self) {
        let dir = self.ctx.pod_dir(&self.uid);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(pod = %self.key(), "cannot remove {}: {e}", dir.display());
        }
    }

    fn phase(&self) -> &'static str {
        match self.stage {
            Stage::Setup | Stage::Init(_) => "Pending",
            Stage::Main | Stage::Deleting | Stage::Stopping => "Running",
            Stage::Terminal(phase) => phase,
        }
    }

    /// Send the current status when it changed since the last successful patch.
    async fn sync_status(&mut self) {
        if !self.dirty || !self.owns_status || matches!(self.stage, Stage::Deleting | Stage::Stopping) {
            return;
        }
        let initialized = self.slots[..self.n_init].iter().all(|s| s.exit_code() == Some(0));
        let view = status::View {
            phase: self.phase(),
            reason: self.pod_reason.as_deref(),
            message: self.pod_message.as_deref(),
            initialized,
            start_time: self.start_time,
            slots: &self.slots,
            ip: &self.ctx.host.ip,
        };
        let status = status::build(&view, self.pod.status.as_ref(), Timestamp::now());
        let mut value = match serde_json::to_value(&status) {
            Ok(v) => v,
            Err(e) => {
                warn!(pod = %self.key(), "cannot encode status: {e}");
                return;
            }
        };
        if let Some(obj) = value.as_object_mut() {
            for field in ["reason", "message"] {
                obj.entry(field).or_insert(serde_json::Value::Null);
            }
        }
        if self.last_sent.as_ref() == Some(&value) {
            self.dirty = false;
            return;
        }
        let patch = serde_json::json!({ "status": value });
        match self
            .pods()
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(pod) => {
                debug!(pod = %self.key(), phase = self.phase(), "status updated");
                self.pod = Arc::new(pod);
                self.last_sent = Some(value);
                self.dirty = false;
            }
            Err(kube::Error::Api(s)) if s.code == 404 => self.dirty = false,
            Err(e) => warn!(pod = %self.key(), "status update failed (will retry): {e}"),
        }
    }
}
