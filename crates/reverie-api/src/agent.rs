//! `Agent`: an AI agent, its memory, where its transcripts land and how its dreams are approved.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, HostPathVolumeSource, NFSVolumeSource, PersistentVolumeClaimVolumeSource,
    ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LocalObjectReference;
use super::duration::DURATION_PATTERN;

/// Desired state of an agent.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "reverie.dev",
    version = "v1alpha1",
    kind = "Agent",
    namespaced,
    status = "AgentStatus",
    shortname = "ag",
    category = "reverie",
    derive = "PartialEq",
    doc = "An AI agent whose memory reverie manages and whose sessions it dreams over.",
    printcolumn(name = "Approval", type_ = "string", json_path = ".spec.dreaming.approval"),
    printcolumn(name = "Revision", type_ = "integer", json_path = ".status.memory.revision"),
    printcolumn(name = "Tokens", type_ = "integer", json_path = ".status.memory.tokens"),
    printcolumn(name = "Pending", type_ = "integer", json_path = ".status.pendingProposals"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// The model the agent runs on, e.g. `claude-sonnet-4-5`.
    #[schemars(length(min = 1, max = 253))]
    pub model: String,
    /// The agent's core instructions. Always protected: dreaming never edits them.
    #[schemars(length(min = 1))]
    pub instructions: String,
    /// When set, reverie runs the agent as a Deployment with its memory mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<AgentRuntime>,
    /// Where the agent's memory lives and how large it may grow.
    #[serde(default)]
    pub memory: MemorySpec,
    /// Where the agent's session transcripts are written (`format` says in which format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionsSpec>,
    /// How dream proposals for this agent are approved.
    #[serde(default)]
    pub dreaming: DreamingSpec,
}

/// The container that runs the agent, when reverie should run it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentRuntime {
    /// Container image of the agent runtime.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Arguments to the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables of the agent container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Environment variables taken from ConfigMaps or Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    /// Compute resources of the agent container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Number of agent pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// ServiceAccount the agent pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

fn default_replicas() -> i32 {
    1
}

/// The agent's memory: its store, budget and protections.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemorySpec {
    /// Where the memory is stored. Defaults to a ConfigMap the operator owns.
    #[serde(default)]
    pub store: MemoryStore,
    /// Budget, in tokens, for everything loaded into the agent's context. Dreaming compacts the
    /// memory so it never grows past it.
    #[serde(default = "default_max_tokens")]
    #[schemars(range(min = 256, max = 1_000_000))]
    pub max_tokens: u32,
    /// Sections dreaming may never add to, change or prune (`core` is always protected).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected_sections: Vec<String>,
    /// How many previous memory revisions are kept for rollback.
    #[serde(default = "default_revision_history_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub revision_history_limit: u32,
    /// Other agents whose memories are mounted read-only into this agent (team memory).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<SharedMemory>,
}

impl Default for MemorySpec {
    fn default() -> Self {
        Self {
            store: MemoryStore::default(),
            max_tokens: default_max_tokens(),
            protected_sections: Vec::new(),
            revision_history_limit: default_revision_history_limit(),
            shared: Vec::new(),
        }
    }
}

fn default_max_tokens() -> u32 {
    16_000
}

fn default_revision_history_limit() -> u32 {
    10
}

/// Where an agent's memory is stored: exactly one of the two.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum MemoryStore {
    /// ConfigMap `<agent>-memory`, owned by the Agent (the default).
    ConfigMap(ConfigMapStore),
    /// A directory inside a PersistentVolumeClaim, for memories too large for a ConfigMap.
    PersistentVolumeClaim(PvcStore),
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::ConfigMap(ConfigMapStore {})
    }
}

/// The ConfigMap store has no settings: the operator names and owns the ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
pub struct ConfigMapStore {}

/// A memory directory inside a PersistentVolumeClaim.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcStore {
    /// Name of the claim in the Agent's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
    /// Directory inside the claim that holds `memory.yaml`, `MEMORY.md` and `revisions/`
    /// (default: the root of the claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Another agent's memory mounted read-only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedMemory {
    /// The agent whose memory is shared.
    pub agent_ref: LocalObjectReference,
}

/// Where the agent's session transcripts are written: exactly one volume source, and a path in it.
///
/// Only sources that several pods can share (the agent writes, dream Jobs read) are offered.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionsSpec {
    /// A PersistentVolumeClaim (use an access mode that lets the dream Job read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
    /// An NFS export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<NFSVolumeSource>,
    /// A directory on the node (single-node clusters and tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolumeSource>,
    /// Directory inside the volume where transcripts are written (default: its root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The format the transcripts are in; `auto` detects each file's own.
    #[serde(default, skip_serializing_if = "TranscriptFormat::is_auto")]
    pub format: TranscriptFormat,
    /// Send the agent's sessions over OpenTelemetry to reverie's collector, which writes them
    /// here: the runtime Deployment gets `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_SERVICE_NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<CollectorSpec>,
}

/// A transcript format reverie reads (`docs/formats.md`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TranscriptFormat {
    /// Each file's own, detected from its name and first record.
    #[default]
    Auto,
    /// reverie's session JSONL.
    Reverie,
    /// OpenAI Chat Completions messages or Responses API items.
    Openai,
    /// Claude Code session logs.
    ClaudeCode,
    /// Codex CLI rollouts.
    Codex,
    /// OpenTelemetry GenAI spans in OTLP/JSON (what `reverie collect` writes).
    Otlp,
    /// Managed-Agents-style session events.
    ManagedAgents,
}

impl TranscriptFormat {
    pub fn is_auto(&self) -> bool {
        *self == TranscriptFormat::Auto
    }

    /// The name `reverie dream --format` takes.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The dream engine's choice for this format.
    pub fn to_choice(self) -> reverie_core::dream::sessions::FormatChoice {
        // Every name here is one the engine reads (a test walks them all).
        self.name().parse().unwrap_or_default()
    }
}

/// Where the agent's OpenTelemetry goes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectorSpec {
    /// The collector's OTLP/HTTP address (default: the `reverie-collector` Service of the
    /// agent's namespace, `http://reverie-collector.<namespace>.svc:4318`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s]+$"))]
    pub endpoint: Option<String>,
}

impl CollectorSpec {
    /// The endpoint the runtime exports to.
    pub fn endpoint_in(&self, namespace: &str) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("http://reverie-collector.{namespace}.svc:4318"))
    }
}

impl SessionsSpec {
    /// How many volume sources are set (a valid spec has exactly one).
    pub fn source_count(&self) -> usize {
        usize::from(self.persistent_volume_claim.is_some())
            + usize::from(self.nfs.is_some())
            + usize::from(self.host_path.is_some())
    }
}

/// How dream proposals are approved for this agent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DreamingSpec {
    /// `Automatic` applies proposals that pass `autoApprove`; `Review` waits for a person;
    /// `Off` produces proposals that are never applied.
    #[serde(default)]
    pub approval: ApprovalMode,
    /// The policy a proposal must pass to be approved automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_approve: Option<AutoApprovePolicy>,
    /// How long a proposal may wait for a decision.
    #[serde(default = "default_approval_timeout")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub approval_timeout: String,
    /// What happens to a proposal nobody decided on within `approvalTimeout`.
    #[serde(default)]
    pub on_timeout: TimeoutAction,
    /// Who may teach the agent a rule (a team preference). By default only feedback from
    /// reviewers, operators and graders: end customers' sentences are requests, not rules.
    #[serde(default)]
    pub rule_sources: RuleSourcesSpec,
}

/// The trust boundary of rules: whose sentences a dream may turn into team preferences.
/// Whoever says it, a rule in a risk class (revealing secrets, adding recipients, running code,
/// contacting unknown addresses, skipping checks, paying without checks, changing whom the agent
/// obeys) is never proposed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleSourcesSpec {
    /// `from` values of feedback records whose rules count.
    #[serde(default = "default_feedback_from")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 63)))]
    pub feedback_from: Vec<String>,
    /// Sessions whose labels match all of these are the team's own (internal testers, staff):
    /// their user messages and feedback may state rules.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub team_session_labels: BTreeMap<String, String>,
    /// Let end customers' messages and feedback state rules. Off by default: an agent would
    /// learn whatever its customers repeat.
    #[serde(default)]
    pub customers: bool,
}

impl Default for RuleSourcesSpec {
    fn default() -> Self {
        Self {
            feedback_from: default_feedback_from(),
            team_session_labels: BTreeMap::new(),
            customers: false,
        }
    }
}

fn default_feedback_from() -> Vec<String> {
    reverie_core::dream::rules::DEFAULT_FEEDBACK_FROM
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl RuleSourcesSpec {
    /// The dream engine's view of this spec.
    pub fn to_rule_sources(&self) -> reverie_core::dream::rules::RuleSources {
        reverie_core::dream::rules::RuleSources {
            feedback_from: self.feedback_from.clone(),
            team_sessions: self
                .team_session_labels
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
            customers: self.customers,
        }
    }
}

impl Default for DreamingSpec {
    fn default() -> Self {
        Self {
            approval: ApprovalMode::default(),
            auto_approve: None,
            approval_timeout: default_approval_timeout(),
            on_timeout: TimeoutAction::default(),
            rule_sources: RuleSourcesSpec::default(),
        }
    }
}

fn default_approval_timeout() -> String {
    "7d".to_string()
}

/// Who sets a proposal's approval.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ApprovalMode {
    /// The operator approves proposals that pass the `autoApprove` policy.
    Automatic,
    /// A person approves or rejects every proposal.
    #[default]
    Review,
    /// Dreams run and propose, but nothing is ever applied.
    Off,
}

/// What happens when a proposal times out.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum TimeoutAction {
    #[default]
    Reject,
    Approve,
}

/// Limits a proposal must stay within to be approved without a person.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoApprovePolicy {
    /// Every change must be backed by at least this many distinct sessions.
    #[serde(default = "default_min_evidence")]
    #[schemars(range(min = 1))]
    pub min_evidence: u32,
    /// At most this many changes in one proposal.
    #[serde(default = "default_max_changes")]
    #[schemars(range(min = 1))]
    pub max_changes: u32,
    /// Whether archivals may be approved automatically.
    #[serde(default)]
    pub allow_removals: bool,
}

fn default_min_evidence() -> u32 {
    3
}

fn default_max_changes() -> u32 {
    10
}

/// Observed state of an agent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// The generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Accepted`, `Ready`, `MemoryReady`, `RuntimeReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The memory revision currently loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStatus>,
    /// The outcome of the most recent dream pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_dream: Option<LastDream>,
    /// Proposals waiting for a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_proposals: Option<u32>,
    /// The most recently applied revisions, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RevisionRecord>,
}

/// Size and identity of the loaded memory revision.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStatus {
    pub revision: u64,
    /// sha256 of the canonical memory document.
    pub digest: String,
    /// Estimated tokens of what is loaded into the agent's context.
    pub tokens: u64,
    pub bytes: u64,
    pub entries: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<Time>,
}

/// The most recent dream pass.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastDream {
    pub time: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<String>,
    pub result: String,
}

/// One applied memory revision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRecord {
    pub revision: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    pub time: Time,
    pub digest: String,
}

impl Agent {
    /// Name of the ConfigMap that holds this agent's memory.
    pub fn memory_config_map_name(&self) -> String {
        format!("{}-memory", self.metadata.name.as_deref().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reverie_core::dream::sessions::{Format, FormatChoice};

    #[test]
    fn every_transcript_format_is_one_the_engine_reads_and_every_engine_format_is_offered() {
        let all = [
            TranscriptFormat::Auto,
            TranscriptFormat::Reverie,
            TranscriptFormat::Openai,
            TranscriptFormat::ClaudeCode,
            TranscriptFormat::Codex,
            TranscriptFormat::Otlp,
            TranscriptFormat::ManagedAgents,
        ];
        for format in all {
            assert_eq!(
                format.name().parse::<FormatChoice>(),
                Ok(format.to_choice()),
                "{format:?}"
            );
            assert_eq!(format.to_choice().to_string(), format.name());
        }
        for engine in Format::ALL {
            assert!(
                all.iter().any(|f| f.to_choice() == FormatChoice::Only(engine)),
                "{engine:?} has no spec value"
            );
        }
    }
}
