//! Shared harness for reverie's end-to-end tests: a client for the cluster in `KUBECONFIG`,
//! throwaway namespaces, the CRDs from `crds/`, waiting on conditions with timeouts (a memory
//! revision, a proposal's digest or phase), `kubectl apply`, and the `reverie operator` built
//! from this tree run as a child process. The objects themselves are built with
//! `reverie_api::test_support`.
//!
//! Tests wait on conditions (watches, or polling an endpoint until it answers), never on
//! fixed sleeps.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{Condition as WaitCondition, await_condition, conditions};
use kube::{Api, Client, Resource, ResourceExt};
use reverie::api::dream_schedule::AgentRun;
use reverie::api::memory_proposal::Phase;
use reverie::api::{Agent, DreamSchedule, MemoryProposal};
use reverie_api::test_support::AgentBuilder;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::process::{Child, Command};

/// Default time a test waits for the cluster to reach a state.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub mod browser;

/// The repository root (the e2e crate lives in `e2e/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// The `reverie` binary under test: `$REVERIE_BIN`, else the debug build in the target dir.
pub fn reverie_bin() -> PathBuf {
    if let Ok(path) = std::env::var("REVERIE_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| repo_root().join("target"), PathBuf::from);
    target.join("debug").join("reverie")
}

/// A RoleBinding `name` of `role` (a `Role` or `ClusterRole`) to one subject (`User` or
/// `Group`).
pub fn role_binding(
    name: &str,
    role_kind: &str,
    role: &str,
    subject_kind: &str,
    subject: &str,
) -> k8s_openapi::api::rbac::v1::RoleBinding {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": subject_kind, "name": subject}]
    }))
    .expect("a valid RoleBinding")
}

/// The `kubectl-dream` plugin under test: `$KUBECTL_DREAM_BIN`, else next to `reverie`.
pub fn kubectl_dream_bin() -> PathBuf {
    std::env::var("KUBECTL_DREAM_BIN").map_or_else(|_| reverie_bin().with_file_name("kubectl-dream"), PathBuf::from)
}

/// A fresh copy of `examples/sessions` (the README's example transcripts) at `dir`: dream
/// passes read it as an agent's sessions folder.
pub fn copy_example_sessions(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    copy_tree(&repo_root().join("examples/sessions"), dir);
    dir.to_path_buf()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's directory");
    for entry in std::fs::read_dir(from).expect("examples/sessions is readable") {
        let path = entry.expect("directory entry").path();
        let target = to.join(path.file_name().expect("entries have names"));
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy a transcript");
        }
    }
}

/// A client for the cluster in `KUBECONFIG` (the local control plane or any other).
pub async fn client() -> Client {
    Client::try_default()
        .await
        .expect("e2e tests need a cluster: run them with `make e2e` or set KUBECONFIG")
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:x}{}", nanos % 0x00ff_ffff, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A namespace created for one test and deleted by [`TestNamespace::delete`].
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Result<Self> {
        let name = format!("e2e-{prefix}-{}", unique_suffix());
        let namespace = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([("reverie.dev/e2e".to_string(), "true".to_string())])),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(Self {
            name,
            client: client.clone(),
        })
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace (the namespace controller removes what is in it).
    pub async fn delete(self) -> Result<()> {
        Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::background())
            .await
            .map(|_| ())
            .with_context(|| format!("deleting namespace {}", self.name))
    }
}

/// Applies every CRD in `crds/` (what users apply) and waits until each is established.
pub async fn install_crds(client: &Client) -> Result<Vec<String>> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let mut names = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo_root().join("crds"))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    paths.sort();
    for path in paths {
        let yaml = std::fs::read_to_string(&path)?;
        // Through a generic value, as kubectl does: YAML scalars become plain JSON.
        let value: serde_json::Value =
            serde_yaml::from_str(&yaml).with_context(|| format!("parsing {}", path.display()))?;
        let crd: CustomResourceDefinition = serde_json::from_value(value)?;
        let name = crd.name_any();
        api.patch(&name, &PatchParams::apply("reverie-e2e").force(), &Patch::Apply(&crd))
            .await
            .with_context(|| format!("installing {}", path.display()))?;
        names.push(name);
    }
    for name in &names {
        within(
            TIMEOUT,
            await_condition(api.clone(), name, conditions::is_crd_established()),
        )
        .await
        .with_context(|| format!("CRD {name} did not become established"))??;
    }
    Ok(names)
}

/// Runs `future` with a deadline, turning a timeout into an error that says how long.
pub async fn within<T>(timeout: Duration, future: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(timeout, future)
        .await
        .map_err(|_| anyhow!("timed out after {}s", timeout.as_secs()))
}

/// Waits until the object satisfies `condition`, and returns it.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, condition: impl WaitCondition<K>) -> Result<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let found = within(TIMEOUT, await_condition(api.clone(), name, condition))
        .await
        .with_context(|| format!("waiting for {name}: {what}"))??;
    found.ok_or_else(|| anyhow!("{name} was deleted while waiting for: {what}"))
}

/// A wait condition on a status condition of reverie objects: `type_` has `status`, and it was
/// written for the object's current generation.
pub fn has_condition<K>(type_: &'static str, status: &'static str) -> impl WaitCondition<K>
where
    K: Resource + HasConditions,
{
    move |object: Option<&K>| {
        object.is_some_and(|o| {
            o.status_conditions()
                .iter()
                .any(|c| c.type_ == type_ && c.status == status && c.observed_generation == o.meta().generation)
        })
    }
}

/// Access to the `status.conditions` of reverie's kinds.
pub trait HasConditions {
    fn status_conditions(&self) -> &[Condition];
}

impl HasConditions for Agent {
    fn status_conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| s.conditions.as_slice())
    }
}

impl HasConditions for reverie::api::DreamSchedule {
    fn status_conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| s.conditions.as_slice())
    }
}

impl HasConditions for MemoryProposal {
    fn status_conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| s.conditions.as_slice())
    }
}

/// The condition of `type_`, for assertions.
pub fn condition<'a>(object: &'a impl HasConditions, type_: &str) -> Option<&'a Condition> {
    object.status_conditions().iter().find(|c| c.type_ == type_)
}

/// An agent that dreams over the transcripts in `sessions` (a hostPath the process node
/// mounts into dream pods).
pub fn dreaming_agent(name: &str, sessions: &Path) -> Agent {
    AgentBuilder::new(name).sessions_host_path(sessions).build()
}

/// Asks `schedule` for a pass now, as `kubectl dream run` does (the `reverie.dev/dream-now`
/// annotation; a new `value` is a new request).
pub async fn dream_now(api: &Api<DreamSchedule>, schedule: &str, value: &str) -> Result<()> {
    let patch = serde_json::json!({"metadata": {"annotations": {"reverie.dev/dream-now": value}}});
    api.patch(schedule, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("cannot trigger DreamSchedule {schedule}"))?;
    Ok(())
}

/// Waits until `agent`'s last run of `schedule` has finished (`Succeeded` or `Failed`) and
/// returns it.
pub async fn wait_finished_run(api: &Api<DreamSchedule>, schedule: &str, agent: &str) -> Result<AgentRun> {
    let last_run = |s: Option<&DreamSchedule>, agent: &str| -> Option<AgentRun> {
        s?.status.as_ref()?.last_runs.iter().find(|r| r.agent == agent).cloned()
    };
    let wanted = agent.to_string();
    let finished = wait_for(
        api,
        schedule,
        &format!("{agent}'s pass finished"),
        move |s: Option<&DreamSchedule>| {
            last_run(s, &wanted).is_some_and(|r| r.result == "Succeeded" || r.result == "Failed")
        },
    )
    .await?;
    last_run(Some(&finished), agent).ok_or_else(|| anyhow!("no run of {agent} in {schedule}"))
}

/// Waits until `schedule` is Ready, asks it for a pass now and returns `agent`'s finished run:
/// the first pass of a test.
pub async fn first_pass(api: &Api<DreamSchedule>, schedule: &str, agent: &str) -> Result<AgentRun> {
    wait_for(api, schedule, "Ready", has_condition("Ready", "True")).await?;
    dream_now(api, schedule, "1").await?;
    wait_finished_run(api, schedule, agent).await
}

/// Waits until the agent reports memory revision `revision` for its current generation
/// (`MemoryReady`), and returns it.
pub async fn wait_revision(api: &Api<Agent>, name: &str, revision: u64) -> Result<Agent> {
    let ready = has_condition::<Agent>("MemoryReady", "True");
    wait_for(
        api,
        name,
        &format!("memory revision {revision}"),
        move |a: Option<&Agent>| {
            ready.matches_object(a)
                && a.and_then(|a| a.status.as_ref()?.memory.as_ref())
                    .is_some_and(|m| m.revision == revision)
        },
    )
    .await
}

/// Waits until the operator has recorded the proposal's digest, and returns the digest.
pub async fn wait_digest(api: &Api<MemoryProposal>, name: &str) -> Result<String> {
    let seen = wait_for(api, name, "digest recorded", |p: Option<&MemoryProposal>| {
        p.and_then(|p| p.status.as_ref()?.digest.as_ref()).is_some()
    })
    .await?;
    seen.status
        .and_then(|s| s.digest)
        .ok_or_else(|| anyhow!("{name} lost its digest"))
}

/// Waits until the proposal is in `phase`, and returns it.
pub async fn wait_phase(api: &Api<MemoryProposal>, name: &str, phase: Phase) -> Result<MemoryProposal> {
    wait_for(api, name, phase.as_str(), move |p: Option<&MemoryProposal>| {
        p.and_then(|p| p.status.as_ref()?.phase) == Some(phase)
    })
    .await
}

/// The `MEMORY.md` a memory ConfigMap holds (empty when it holds none).
pub fn memory_md(configmap: &ConfigMap) -> &str {
    configmap
        .data
        .as_ref()
        .and_then(|d| d.get("MEMORY.md"))
        .map_or("", String::as_str)
}

/// `kubectl apply -n namespace -f path`, as Argo CD or Flux apply a merged change, with the
/// kubectl e2e/cluster/install-deps.sh puts first on `PATH`.
pub fn kubectl_apply(namespace: &str, path: &Path) -> Result<()> {
    let output = std::process::Command::new("kubectl")
        .args(["apply", "-n", namespace, "-f"])
        .arg(path)
        .output()
        .context("running kubectl (e2e/cluster/install-deps.sh installs it)")?;
    if !output.status.success() {
        bail!(
            "kubectl apply -f {}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Creates `object` in its namespace (server-side apply, so re-running a test is harmless).
pub async fn apply<K>(api: &Api<K>, object: &K) -> Result<K>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = object
        .meta()
        .name
        .clone()
        .ok_or_else(|| anyhow!("object has no name"))?;
    api.patch(&name, &PatchParams::apply("reverie-e2e").force(), &Patch::Apply(object))
        .await
        .with_context(|| format!("applying {name}"))
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `reverie operator` built from this tree, running as a child process with the test's
/// kubeconfig. Killed when dropped; [`OperatorProcess::stop`] stops it with SIGTERM.
pub struct OperatorProcess {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    http: reqwest_lite::Http,
}

impl OperatorProcess {
    /// Starts an operator electing on Lease `reverie-operator` in `lease_namespace`, and waits
    /// until `/readyz` answers 200 (leadership known and, when leading, caches synced).
    pub async fn start(lease_namespace: &str, identity: &str) -> Result<Self> {
        let mut operator = Self::spawn(lease_namespace, identity)?;
        operator.wait_ready().await?;
        Ok(operator)
    }

    /// Starts an operator without waiting for it.
    pub fn spawn(lease_namespace: &str, identity: &str) -> Result<Self> {
        Self::spawn_with(lease_namespace, identity, &[])
    }

    /// Starts an operator with extra command-line arguments, without waiting for it.
    pub fn spawn_with(lease_namespace: &str, identity: &str, extra: &[&str]) -> Result<Self> {
        let port = free_port()?;
        let log_dir = std::env::temp_dir().join("reverie-e2e-logs");
        std::fs::create_dir_all(&log_dir)?;
        let log = log_dir.join(format!("operator-{identity}-{port}.log"));
        let log_file = std::fs::File::create(&log)?;
        let bin = reverie_bin();
        if !bin.exists() {
            bail!(
                "{} does not exist: build it with `cargo build -p reverie`",
                bin.display()
            );
        }
        let child = Command::new(&bin)
            .args(["operator", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--lease-namespace", lease_namespace, "--identity", identity])
            .args(extra)
            .env("RUST_LOG", "info,reverie=debug")
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Self {
            child,
            port,
            log,
            http: reqwest_lite::Http::new(port),
        })
    }

    /// Waits until `/readyz` answers 200, or fails with the operator's log.
    pub async fn wait_ready(&mut self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "operator exited with {status} before it was ready:\n{}",
                    self.log_text()
                );
            }
            if self.http.get("/readyz").await.is_ok_and(|(code, _)| code == 200) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("operator not ready after {}s:\n{}", TIMEOUT.as_secs(), self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GETs a path of the operator's HTTP endpoint.
    pub async fn get(&self, path: &str) -> Result<(u16, String)> {
        self.http.get(path).await
    }

    /// The value of a Prometheus sample line, e.g. `reverie_leader`.
    pub async fn metric(&self, series: &str) -> Result<f64> {
        let (_, text) = self.get("/metrics").await?;
        text.lines()
            .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(Ok(0.0), |value| value.trim().parse::<f64>().map_err(Into::into))
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub async fn stop(mut self) -> Result<Option<i32>> {
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling a child process we own by its pid.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let status = within(TIMEOUT, self.child.wait()).await??;
        Ok(status.code())
    }

    /// The operator's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A minimal HTTP/1.1 GET client for the operator's loopback endpoint (no extra dependency).
mod reqwest_lite {
    use anyhow::{Result, anyhow};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub struct Http {
        port: u16,
    }

    impl Http {
        pub fn new(port: u16) -> Self {
            Self { port }
        }

        pub async fn get(&self, path: &str) -> Result<(u16, String)> {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
            let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await?;
            let mut response = String::new();
            stream.read_to_string(&mut response).await?;
            let code = response
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| anyhow!("malformed HTTP response"))?;
            let body = response
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_string())
                .unwrap_or_default();
            Ok((code, body))
        }
    }
}
