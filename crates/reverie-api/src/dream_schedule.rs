//! `DreamSchedule`: when agents dream, over which sessions, with which reflector.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::DURATION_PATTERN;
use super::{LocalObjectReference, SecretKeyReference};

/// Desired schedule of dream passes.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "reverie.dev",
    version = "v1alpha1",
    kind = "DreamSchedule",
    namespaced,
    status = "DreamScheduleStatus",
    shortname = "ds",
    category = "reverie",
    derive = "PartialEq",
    doc = "When and how a set of agents dream: each pass runs as a Kubernetes Job.",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "TimeZone", type_ = "string", json_path = ".spec.timeZone"),
    printcolumn(name = "Suspend", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(name = "Last Run", type_ = "date", json_path = ".status.lastScheduleTime"),
    printcolumn(name = "Next Run", type_ = "string", json_path = ".status.nextScheduleTime"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct DreamScheduleSpec {
    /// Cron expression with five fields, or `@hourly`, `@daily`, `@weekly`, `@monthly`.
    #[schemars(length(min = 1, max = 256))]
    pub schedule: String,
    /// IANA time zone the schedule is read in, e.g. `Europe/Paris`.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Which agents dream.
    pub agents: AgentSelection,
    /// Which sessions a pass reviews.
    #[serde(default)]
    pub lookback: Lookback,
    /// What turns candidate patterns into lessons.
    #[serde(default)]
    pub reflector: Reflector,
    /// How memory is curated.
    #[serde(default)]
    pub curation: Curation,
    /// At most this many new or updated lessons per pass: the strongest (by distinct sessions,
    /// tasks, significance and outcome impact); the rest are withheld and counted in the
    /// proposal's summary. A reviewer reads ten changes that matter, not seventy.
    #[serde(default = "default_max_changes")]
    #[schemars(range(min = 1, max = 100))]
    pub max_changes: u32,
    /// What to do when a pass for an agent is still running at the next fire time.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// A missed run starts only within this many seconds of its scheduled time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,
    /// Stops new passes; running ones finish.
    #[serde(default)]
    pub suspend: bool,
    /// Finished successful Jobs kept per schedule.
    #[serde(default = "default_successful_history")]
    #[schemars(range(min = 0, max = 100))]
    pub successful_jobs_history_limit: u32,
    /// Finished failed Jobs kept per schedule.
    #[serde(default = "default_failed_history")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_jobs_history_limit: u32,
    /// Settings for the dream Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_template: Option<DreamJobTemplate>,
    /// Where a pass's MemoryProposal goes: created in the cluster (the default), or committed
    /// to a Git repository as a pull request.
    #[serde(default)]
    pub output: Output,
}

fn default_max_changes() -> u32 {
    reverie_core::dream::model::DEFAULT_MAX_CHANGES
}

fn default_time_zone() -> String {
    "UTC".to_string()
}

fn default_successful_history() -> u32 {
    3
}

fn default_failed_history() -> u32 {
    1
}

/// The agents a schedule applies to: by `names` or by `selector`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSelection {
    /// Agents in this namespace, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Agents in this namespace whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Pool the sessions of all selected agents into one pass for a team memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collective: Option<Collective>,
}

/// Collective dreaming: one pass over many agents, proposing to one target memory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Collective {
    /// The agent whose (team) memory receives the proposals.
    #[schemars(length(min = 1, max = 253))]
    pub target: String,
    /// A pattern counts only when seen in at least this many agents.
    #[serde(default = "default_min_agents")]
    #[schemars(range(min = 1))]
    pub min_agents: u32,
}

fn default_min_agents() -> u32 {
    2
}

/// The window of sessions a pass reviews.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lookback {
    /// The most recent N sessions.
    #[serde(default = "default_lookback_sessions")]
    #[schemars(range(min = 1, max = 100_000))]
    pub sessions: u32,
    /// Ignore sessions older than this (e.g. `14d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub max_age: Option<String>,
    /// Only sessions whose labels match (e.g. one project or customer segment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
}

impl Default for Lookback {
    fn default() -> Self {
        Self {
            sessions: default_lookback_sessions(),
            max_age: None,
            label_selector: None,
        }
    }
}

fn default_lookback_sessions() -> u32 {
    50
}

/// The reflector of a pass: the builtin offline one or a model endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reflector {
    /// `builtin` (offline, deterministic), `anthropic` (Messages API) or `openai`
    /// (any OpenAI-compatible chat-completions endpoint).
    #[serde(default)]
    pub provider: ReflectorProvider,
    /// Model name for `anthropic` / `openai`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Base URL of the endpoint; defaults to the provider's public API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Secret key holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyReference>,
    /// Upper bound on tokens sent to the model in one pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_input_tokens: Option<u32>,
    /// Upper bound on tokens the model may return in one pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_output_tokens: Option<u32>,
    /// Extra steering for this pass, appended to the reflector's prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// Which reflector runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReflectorProvider {
    #[default]
    Builtin,
    Anthropic,
    #[serde(rename = "openai")]
    OpenAi,
}

/// How a pass curates memory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Curation {
    /// A lesson needs at least this many distinct sessions of evidence.
    #[serde(default = "default_min_evidence")]
    #[schemars(range(min = 1))]
    pub min_evidence: u32,
    /// Entries not reinforced for this long are archived.
    #[serde(default = "default_stale_after")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub stale_after: String,
    /// At most this many entries are kept in the archive.
    #[serde(default = "default_archive_limit")]
    #[schemars(range(min = 0))]
    pub archive_limit: u32,
    /// Session labels that name the task or intent, first present wins: an outcome
    /// correlation is proposed only when it also holds between sessions of the same task.
    #[serde(default = "default_strata_labels")]
    #[schemars(length(max = 8), inner(length(min = 1, max = 63)))]
    pub strata_labels: Vec<String>,
    /// How the effect of the agent's current lessons is measured and acted on.
    #[serde(default)]
    pub effect: EffectPolicy,
}

/// Each pass measures whether the agent's lessons helped: how often the pattern each came from
/// occurred, and how sessions ended, before and after the agent ran with it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectPolicy {
    /// A lesson with fewer sessions than this before or after its adoption is `too-early`.
    #[serde(default = "default_effect_min_sessions")]
    #[schemars(range(min = 1))]
    pub min_sessions: u32,
    /// A lesson without effect is proposed for archive once this many sessions ran with it
    /// (0: never). A lesson after which outcomes got worse is always proposed for archive.
    #[serde(default = "default_archive_after")]
    pub archive_ineffective_after: u32,
    /// The most recent sessions measured.
    #[serde(default = "default_effect_window")]
    #[schemars(range(min = 1, max = 100000))]
    pub window: u32,
}

impl Default for EffectPolicy {
    fn default() -> Self {
        Self {
            min_sessions: default_effect_min_sessions(),
            archive_ineffective_after: default_archive_after(),
            window: default_effect_window(),
        }
    }
}

fn default_effect_min_sessions() -> u32 {
    reverie_core::dream::effect::DEFAULT_MIN_SESSIONS
}

fn default_archive_after() -> u32 {
    reverie_core::dream::effect::DEFAULT_ARCHIVE_AFTER
}

fn default_effect_window() -> u32 {
    reverie_core::dream::effect::DEFAULT_WINDOW as u32
}

fn default_strata_labels() -> Vec<String> {
    reverie_core::dream::signals::DEFAULT_STRATA_LABELS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl Default for Curation {
    fn default() -> Self {
        Self {
            min_evidence: default_min_evidence(),
            stale_after: default_stale_after(),
            archive_limit: default_archive_limit(),
            strata_labels: default_strata_labels(),
            effect: EffectPolicy::default(),
        }
    }
}

fn default_min_evidence() -> u32 {
    3
}

fn default_stale_after() -> String {
    "30d".to_string()
}

fn default_archive_limit() -> u32 {
    500
}

/// What happens when a pass is due while the previous one still runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Skip the new pass and record why.
    #[default]
    Forbid,
    /// Run both.
    Allow,
    /// Delete the running Job and start the new one.
    Replace,
}

/// Settings applied to every dream Job of a schedule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DreamJobTemplate {
    /// Image that runs `reverie dream`; defaults to the operator's own image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub backoff_limit: Option<i32>,
    /// Seconds after a pass finishes before Kubernetes deletes its Job (and pod). Unset, the
    /// history limits alone decide which finished Jobs are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// Where the MemoryProposal of a pass goes: exactly one of `cluster` and `git`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Output {
    /// The pass creates the MemoryProposal in the cluster (the default).
    Cluster(ClusterOutput),
    /// The pass commits the MemoryProposal manifest to a new branch of a Git repository and
    /// opens a pull request whose body is the review diff. Merging it (with `spec.approval`
    /// set) is the review; a GitOps tool (Argo CD, Flux) brings the manifest into the cluster.
    Git(GitOutput),
}

impl Default for Output {
    fn default() -> Self {
        Self::Cluster(ClusterOutput {})
    }
}

/// The cluster output has no settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
pub struct ClusterOutput {}

/// URLs a dream pass can push to: HTTPS, SSH or a local path.
pub const GIT_REPOSITORY_PATTERN: &str = "^(https|ssh|file)://[^\\s]+$";
/// Branch names: letters, digits, `.`, `_`, `-` and `/`, not starting with `-` or `/`.
pub const GIT_BRANCH_PATTERN: &str = "^[A-Za-z0-9._][A-Za-z0-9._/-]*$";
/// Directories in the repository: relative, letters, digits, `.`, `_`, `-` and `/`.
pub const GIT_PATH_PATTERN: &str = "^[A-Za-z0-9._-][A-Za-z0-9._/-]*$";

/// A Git repository that receives proposals as pull requests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitOutput {
    /// URL of the repository: `https://host/owner/repo.git` (token), `ssh://git@host/owner/repo.git`
    /// (SSH key) or `file:///path/to/repo.git` (a local path, for tests).
    #[schemars(length(min = 1, max = 2048), regex(pattern = GIT_REPOSITORY_PATTERN))]
    pub repository: String,
    /// The branch pull requests target; each proposal's branch `reverie/<namespace>/<name>`
    /// starts from it.
    #[serde(default = "default_git_branch")]
    #[schemars(length(min = 1, max = 255), regex(pattern = GIT_BRANCH_PATTERN))]
    pub branch: String,
    /// Directory in the repository; a proposal is written to `<path>/<namespace>/<name>.yaml`.
    #[serde(default = "default_git_path")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = GIT_PATH_PATTERN))]
    pub path: String,
    /// Secret in the schedule's namespace with the credentials: key `token` (an access token,
    /// used for HTTPS pushes and for the forge API), optional `username` (HTTPS user name,
    /// default `x-access-token`, `oauth2` for GitLab), and for `ssh://` repositories
    /// `ssh-privatekey` with optional `known_hosts`. The dream pod receives the token as an
    /// environment variable and the SSH key as a read-only file; it never reads the Secret
    /// through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<LocalObjectReference>,
    /// The forge that hosts the repository, to open the pull request; absent: the branch is
    /// pushed and no pull request is opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<Forge>,
    /// Author and committer of the commits (default `reverie <reverie@reverie.dev>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<GitAuthor>,
}

fn default_git_branch() -> String {
    "main".to_string()
}

fn default_git_path() -> String {
    "memory-proposals".to_string()
}

/// The forge API that opens pull requests (merge requests on GitLab).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Forge {
    /// `github`, `gitlab`, `gitea` (also Forgejo) or `none` (push the branch only).
    #[serde(rename = "type")]
    pub type_: ForgeType,
    /// Base URL of the forge's REST API, e.g. `https://api.github.com`,
    /// `https://github.example.com/api/v3`, `https://gitlab.com/api/v4`,
    /// `https://gitea.example.com/api/v1`. Default: derived from the repository's host
    /// (`api.github.com` for github.com, else `https://<host>/api/v3`, `/api/v4`, `/api/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub api_url: Option<String>,
    /// The repository on the forge, `owner/repo` (GitLab: the project path, groups included).
    /// Default: the repository URL's path without `.git`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub project: Option<String>,
}

/// Which forge API opens the pull request.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ForgeType {
    #[serde(rename = "github")]
    GitHub,
    #[serde(rename = "gitlab")]
    GitLab,
    Gitea,
    #[default]
    None,
}

/// A Git identity.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitAuthor {
    /// Name shown on the commits.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Email address shown on the commits.
    #[schemars(length(min = 3, max = 256))]
    pub email: String,
}

/// Observed state of a schedule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DreamScheduleStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Accepted`, `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// When a pass was last started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When a pass last completed successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// When the next pass is due (absent while suspended or invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// Dream Jobs currently running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<ObjectReference>,
    /// The last pass of each agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_runs: Vec<AgentRun>,
    /// The last `reverie.dev/dream-now` value acted on (each value starts passes once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_dream_now: Option<String>,
}

/// The last dream pass of one agent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentRun {
    pub agent: String,
    pub job: String,
    /// `Running`, `Succeeded`, `Failed`, `Skipped`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_reviewed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The agent's lessons by the verdict of their measured effect, when the pass measured any
    /// (the per-lesson numbers are in the proposal it created, if it created one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lessons: Option<LessonCounts>,
    pub time: Time,
}

/// Lessons by the verdict of their measured effect.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LessonCounts {
    pub effective: u32,
    pub no_effect: u32,
    pub regressed: u32,
    pub too_early: u32,
}

impl std::fmt::Display for LessonCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} effective, {} no-effect, {} regressed, {} too-early",
            self.effective, self.no_effect, self.regressed, self.too_early
        )
    }
}
