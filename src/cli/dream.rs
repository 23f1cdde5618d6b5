//! `reverie dream`: one pass over transcripts on a laptop (no cluster needed), or the
//! in-cluster pass of a dream Job.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use jiff::Timestamp;

use crate::api::dream_schedule::{Forge, ForgeType, GitAuthor, GitOutput, Output};
use crate::api::duration;
use crate::dream::model::DreamSettings;
use crate::dream::pass::{self, PassInput, PassOutcome, SessionRoot, SessionsDir};
use crate::dream::reflector::Reflector;
use crate::dream::reflector::builtin::BuiltinReflector;
use crate::dream::report::Report;
use crate::dream::rules::RuleSources;
use crate::dream::sessions::FormatChoice;
use crate::gitops::{Credentials, GitTarget};
use crate::memory::{self, MemoryDocument};
use crate::reflectors::{AnthropicReflector, ApiKey, ModelConfig, OpenAiReflector};

/// Which reflector turns candidates into lessons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReflectorKind {
    Builtin,
    Anthropic,
    #[value(name = "openai")]
    OpenAi,
}

/// Output format of `reverie dream`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DreamOutput {
    Text,
    Json,
    Yaml,
}

#[derive(Debug, clap::Args)]
pub struct DreamArgs {
    /// Directory of session transcripts (`*.jsonl`, `*.jsonl.gz`, nested folders). Repeat it,
    /// as `AGENT=DIR`, to pool several agents' sessions into one collective pass.
    #[arg(long, required = true)]
    pub sessions: Vec<String>,
    /// The current memory (`memory.yaml`); without it the pass starts from an empty memory.
    #[arg(long)]
    pub memory: Option<PathBuf>,
    /// Agent name used in the rendered memory. `NAMESPACE/NAME` runs the pass in-cluster: it
    /// reads that Agent and its memory through the API and creates a MemoryProposal.
    #[arg(long, default_value = "agent")]
    pub agent: String,
    /// In-cluster: the DreamSchedule this pass runs for (recorded on the proposal).
    #[arg(long)]
    pub schedule: Option<String>,
    /// In-cluster: the dream Job running this pass (names the proposal).
    #[arg(long)]
    pub job: Option<String>,
    /// In-cluster: where a PersistentVolumeClaim memory is mounted (read-only).
    #[arg(long)]
    pub memory_dir: Option<PathBuf>,
    /// Write the outcome as JSON here (a dream Job uses its termination log).
    #[arg(long)]
    pub result_file: Option<PathBuf>,
    /// Collective passes: a pattern counts only when seen in sessions of this many agents.
    #[arg(long, default_value_t = 1)]
    pub min_agents: u32,
    /// A lesson needs at least this many distinct sessions.
    #[arg(long, default_value_t = 3)]
    pub min_evidence: u32,
    /// Budget of the loaded memory, in estimated tokens.
    #[arg(long, default_value_t = 16_000)]
    pub max_tokens: u32,
    /// Review the N most recent sessions.
    #[arg(long, default_value_t = 50)]
    pub lookback: usize,
    /// Ignore sessions older than this (e.g. 14d).
    #[arg(long)]
    pub max_age: Option<String>,
    /// Only sessions with this label (`key=value`, or `key` for present); repeatable.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Archive entries not reinforced for this long.
    #[arg(long, default_value = "30d")]
    pub stale_after: String,
    /// Propose at most N new or updated lessons (the strongest); the rest are withheld.
    #[arg(long, default_value_t = crate::dream::model::DEFAULT_MAX_CHANGES)]
    pub max_changes: u32,
    /// Feedback `from` values trusted to state rules (comma-separated). In-cluster the Agent's
    /// `spec.dreaming.ruleSources.feedbackFrom` decides.
    #[arg(long, value_delimiter = ',', default_values_t = crate::dream::rules::DEFAULT_FEEDBACK_FROM.iter().map(|s| s.to_string()).collect::<Vec<_>>())]
    pub trust_feedback_from: Vec<String>,
    /// Sessions with this label (`key=value`, or `key`) are the team's own: their user may
    /// state rules. Repeatable (all must match).
    #[arg(long = "team-sessions")]
    pub team_sessions: Vec<String>,
    /// Let end customers' messages and feedback state rules (off: an agent would learn
    /// whatever its customers repeat). Risky rules are refused either way.
    #[arg(long)]
    pub customer_rules: bool,
    /// Session labels naming the task or intent, for the within-task check of correlations
    /// (comma-separated; the first present wins).
    #[arg(long, value_delimiter = ',', default_values_t = crate::dream::signals::DEFAULT_STRATA_LABELS.iter().map(|s| s.to_string()).collect::<Vec<_>>())]
    pub strata_labels: Vec<String>,
    /// Fewer sessions than this before or after a lesson's adoption: its effect is `too-early`.
    #[arg(long, default_value_t = crate::dream::effect::DEFAULT_MIN_SESSIONS)]
    pub effect_min_sessions: u32,
    /// The effect of the memory's lessons is measured over the N most recent sessions.
    #[arg(long, default_value_t = crate::dream::effect::DEFAULT_WINDOW)]
    pub effect_window: usize,
    /// Propose archiving a lesson without effect once this many sessions ran with it (0: never).
    #[arg(long, default_value_t = crate::dream::effect::DEFAULT_ARCHIVE_AFTER)]
    pub archive_ineffective_after: u32,
    /// Transcript format: `auto` detects each file's (reverie, openai, claude-code, codex, otlp,
    /// managed-agents); naming one reads every file as that format.
    #[arg(long, default_value = "auto")]
    pub format: FormatChoice,
    /// One agent's format in a pass over several agents' sessions (`AGENT=FORMAT`, repeatable);
    /// overrides `--format` for that agent's directories.
    #[arg(long = "sessions-format")]
    pub sessions_format: Vec<String>,
    #[arg(long, value_enum, default_value = "builtin")]
    pub reflector: ReflectorKind,
    /// Model for the anthropic / openai reflectors.
    #[arg(long)]
    pub model: Option<String>,
    /// Endpoint base URL for the anthropic / openai reflectors.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Environment variable holding the API key (default ANTHROPIC_API_KEY / OPENAI_API_KEY).
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Extra steering for a model reflector.
    #[arg(long)]
    pub instructions: Option<String>,
    /// Upper bound on tokens sent to a model reflector.
    #[arg(long)]
    pub max_input_tokens: Option<u32>,
    /// Upper bound on tokens a model reflector may answer with.
    #[arg(long)]
    pub max_output_tokens: Option<u32>,
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: DreamOutput,
    /// Write the memory the proposal would produce (memory.yaml) to this file.
    #[arg(long)]
    pub write: Option<PathBuf>,
    /// The instant the pass runs at (RFC 3339); default: the newest session's start, so the
    /// same transcripts always give the same output.
    #[arg(long)]
    pub now: Option<String>,
    /// In-cluster: instead of creating the MemoryProposal, push its manifest to a new branch of
    /// this Git repository (`https://`, `ssh://` or `file://`) and open a pull request.
    #[arg(long)]
    pub git_repository: Option<String>,
    /// Git output: the branch the pull request targets.
    #[arg(long, default_value = "main")]
    pub git_branch: String,
    /// Git output: directory in the repository (the manifest goes to `<dir>/<namespace>/<name>.yaml`).
    #[arg(long, default_value = "memory-proposals")]
    pub git_path: String,
    /// Git output: the forge that opens the pull request (github, gitlab, gitea, none).
    #[arg(long, default_value = "none", value_parser = crate::gitops::parse_forge_type)]
    pub git_forge: ForgeType,
    /// Git output: the forge's API base URL (default: derived from the repository's host).
    #[arg(long)]
    pub git_forge_api_url: Option<String>,
    /// Git output: the repository on the forge, `owner/repo` (default: from the repository URL).
    #[arg(long)]
    pub git_forge_project: Option<String>,
    /// Git output: commit author name.
    #[arg(long, requires = "git_author_email")]
    pub git_author_name: Option<String>,
    /// Git output: commit author email.
    #[arg(long, requires = "git_author_name")]
    pub git_author_email: Option<String>,
    /// Git output: environment variable holding the access token (HTTPS pushes, forge API).
    #[arg(long, default_value = crate::gitops::TOKEN_ENV)]
    pub git_token_env: String,
    /// Git output: environment variable holding the HTTPS user name (optional).
    #[arg(long, default_value = crate::gitops::USERNAME_ENV)]
    pub git_username_env: String,
    /// Git output: directory with `ssh-privatekey` and optionally `known_hosts` (for `ssh://`).
    #[arg(long)]
    pub git_ssh_key_dir: Option<PathBuf>,
}

/// The Git output the `--git-…` flags ask for, checked before the pass spends anything.
pub fn git_target(args: &DreamArgs) -> Result<Option<GitTarget>, String> {
    let Some(repository) = &args.git_repository else {
        return Ok(None);
    };
    let output = GitOutput {
        repository: repository.clone(),
        branch: args.git_branch.clone(),
        path: args.git_path.clone(),
        auth_secret_ref: None,
        forge: (args.git_forge != ForgeType::None).then(|| Forge {
            type_: args.git_forge,
            api_url: args.git_forge_api_url.clone(),
            project: args.git_forge_project.clone(),
        }),
        author: args
            .git_author_name
            .clone()
            .zip(args.git_author_email.clone())
            .map(|(name, email)| GitAuthor { name, email }),
    };
    let problems = crate::gitops::validate(&Output::Git(output.clone()));
    let problems: Vec<String> = problems
        .into_iter()
        .filter(|p| !p.starts_with("spec.output.git.authSecretRef"))
        .map(|p| p.replacen("spec.output.git.", "--git-", 1))
        .collect();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(Some(GitTarget {
        output,
        credentials: Credentials::from_env(
            &args.git_token_env,
            &args.git_username_env,
            args.git_ssh_key_dir.clone(),
        ),
        work_dir: std::env::temp_dir(),
    }))
}

/// What a dream command failed on, as the one line shown to the user.
type CliResult = Result<(), String>;

/// Builds a model reflector from its settings.
type BuildReflector = fn(ModelConfig) -> Result<Box<dyn Reflector>, String>;

fn load_memory(path: Option<&Path>) -> Result<MemoryDocument, String> {
    let Some(path) = path else {
        return Ok(MemoryDocument::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    memory::from_yaml(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub(super) fn label_selector(labels: &[String]) -> Vec<(String, Option<String>)> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (l.clone(), None),
        })
        .collect()
}

fn settings(args: &DreamArgs, now: Timestamp) -> Result<DreamSettings, String> {
    Ok(DreamSettings {
        lookback_sessions: args.lookback.max(1),
        max_age: args
            .max_age
            .as_deref()
            .map(duration::parse)
            .transpose()
            .map_err(|e| format!("--max-age: {e}"))?,
        label_selector: label_selector(&args.labels),
        min_evidence: args.min_evidence.max(1),
        max_tokens: args.max_tokens,
        stale_after: duration::parse(&args.stale_after).map_err(|e| format!("--stale-after: {e}"))?,
        now,
        max_changes: args.max_changes.max(1),
        rule_sources: RuleSources {
            feedback_from: args.trust_feedback_from.clone(),
            team_sessions: label_selector(&args.team_sessions),
            customers: args.customer_rules,
        },
        strata_labels: args.strata_labels.clone(),
        format: args.format,
        effect: crate::dream::effect::EffectSettings {
            min_sessions: args.effect_min_sessions.max(1),
            window: args.effect_window.max(1),
            archive_after: args.archive_ineffective_after,
            ..Default::default()
        },
    })
}

/// Builds the reflector the flags ask for (the API key from the environment).
fn reflector(args: &DreamArgs) -> Result<Box<dyn Reflector>, String> {
    let (default_env, build): (&str, BuildReflector) = match args.reflector {
        ReflectorKind::Builtin => return Ok(Box::new(BuiltinReflector)),
        ReflectorKind::Anthropic => ("ANTHROPIC_API_KEY", |c| {
            AnthropicReflector::new(c)
                .map(|r| Box::new(r) as Box<dyn Reflector>)
                .map_err(|e| e.to_string())
        }),
        ReflectorKind::OpenAi => ("OPENAI_API_KEY", |c| {
            OpenAiReflector::new(c)
                .map(|r| Box::new(r) as Box<dyn Reflector>)
                .map_err(|e| e.to_string())
        }),
    };
    let model = args
        .model
        .clone()
        .ok_or("--model is required with the anthropic and openai reflectors")?;
    let mut config = ModelConfig::new(model);
    config.endpoint = args.endpoint.clone();
    config.max_input_tokens = args.max_input_tokens;
    if let Some(max) = args.max_output_tokens {
        config.max_output_tokens = max;
    }
    let env = args.api_key_env.as_deref().unwrap_or(default_env);
    config.api_key = std::env::var(env).ok().and_then(ApiKey::new);
    build(config)
}

/// The session directories of `--sessions`, each with its agent: `AGENT=DIR`, or a plain
/// `DIR` belonging to `--agent` (several plain directories are named after their folder); and
/// each agent's format from `--sessions-format AGENT=FORMAT`.
pub fn session_roots(args: &DreamArgs) -> Result<Vec<SessionsDir>, String> {
    let agent = crate::dreamer::split_agent(&args.agent).map_or(args.agent.as_str(), |(_, name)| name);
    let mut formats = std::collections::BTreeMap::new();
    for value in &args.sessions_format {
        let (name, format) = value
            .split_once('=')
            .ok_or_else(|| format!("--sessions-format {value:?}: expected AGENT=FORMAT"))?;
        let format: FormatChoice = format
            .parse()
            .map_err(|e| format!("--sessions-format {value:?}: {e}"))?;
        formats.insert(name.to_string(), format);
    }
    let plain = args.sessions.len() == 1;
    Ok(args
        .sessions
        .iter()
        .map(|value| {
            let (agent, path) = match value.split_once('=') {
                Some((name, dir)) if crate::naming::is_dns_label(name) => (name.to_string(), PathBuf::from(dir)),
                _ => {
                    let dir = PathBuf::from(value);
                    let name = if plain {
                        agent.to_string()
                    } else {
                        dir.file_name()
                            .map_or_else(|| value.clone(), |n| n.to_string_lossy().into_owned())
                    };
                    (name, dir)
                }
            };
            let format = formats.get(&agent).copied();
            SessionsDir { agent, path, format }
        })
        .collect())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Runs `reverie dream`: locally over directories, or in-cluster for `--agent NAMESPACE/NAME`.
pub fn run(args: &DreamArgs) -> CliResult {
    if let Some((namespace, agent)) = crate::dreamer::split_agent(&args.agent) {
        return run_in_cluster(args, namespace, agent);
    }
    if args.git_repository.is_some() {
        return Err("--git-repository publishes an in-cluster pass: use --agent NAMESPACE/NAME".into());
    }
    let memory = load_memory(args.memory.as_deref())?;
    let now = match &args.now {
        Some(now) => now.parse::<Timestamp>().map_err(|e| format!("--now {now:?}: {e}"))?,
        None => Timestamp::now(),
    };
    let settings = settings(args, now)?;
    let reflector = reflector(args)?;
    let roots = session_roots(args)?;
    let progress = std::io::stderr().is_terminal();
    if progress {
        let dirs: Vec<String> = roots.iter().map(|d| d.path.display().to_string()).collect();
        eprintln!(
            "dreaming over {} with the {} reflector…",
            dirs.join(", "),
            reflector.name()
        );
    }
    let session_roots: Vec<SessionRoot<'_>> = roots.iter().map(SessionsDir::root).collect();
    let outcome = runtime()?
        .block_on(pass::run(PassInput {
            agent: &args.agent,
            sessions: &session_roots,
            min_agents: args.min_agents.max(1),
            memory: &memory,
            settings: &settings,
            reflector: reflector.as_ref(),
            instructions: args.instructions.as_deref(),
            as_of_newest_session: args.now.is_none(),
        }))
        .map_err(|e| e.to_string())?;
    let report = Report::new(&args.agent, &outcome, &memory);
    let printed = match args.output {
        DreamOutput::Text => report.to_text(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()),
        DreamOutput::Json => serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n",
        DreamOutput::Yaml => serde_yaml::to_string(&report).map_err(|e| e.to_string())?,
    };
    print!("{printed}");
    if progress {
        let stats = match &outcome {
            PassOutcome::NoSessions(stats) | PassOutcome::NothingToPropose { stats, .. } => stats,
            PassOutcome::Proposal(p) => &p.stats,
        };
        eprintln!(
            "done in {} ms ({} MB read)",
            stats.duration_ms,
            stats.bytes_read / 1_000_000
        );
    }
    if let Some(path) = &args.write {
        let result = match &outcome {
            PassOutcome::Proposal(proposal) => &proposal.result,
            _ => &memory,
        };
        std::fs::write(path, memory::to_yaml(result)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The in-cluster pass of a dream Job. Its outcome, success or failure, is written to
/// `--result-file` for the DreamSchedule controller; a failure also exits non-zero so the Job
/// fails. Memory is never written here.
fn run_in_cluster(args: &DreamArgs, namespace: &str, agent: &str) -> CliResult {
    let outcome = in_cluster_pass(args, namespace, agent);
    let report = match &outcome {
        Ok(report) => report.clone(),
        Err(error) => crate::api::dream_job::RunReport::failed(error),
    };
    if let Some(path) = &args.result_file
        && let Err(e) = report.write_to(path)
    {
        eprintln!("{e}");
    }
    let report = outcome?;
    eprintln!("{}: {}", report.result, report.message);
    Ok(())
}

fn in_cluster_pass(args: &DreamArgs, namespace: &str, agent: &str) -> Result<crate::api::dream_job::RunReport, String> {
    let settings = settings(args, Timestamp::now())?;
    let reflector = reflector(args)?;
    let sessions = session_roots(args)?;
    let git = git_target(args)?;
    let target = crate::dreamer::Target {
        namespace,
        agent,
        schedule: args.schedule.as_deref(),
        job: args.job.as_deref(),
        memory_dir: args.memory_dir.as_deref(),
        sessions: &sessions,
        min_agents: args.min_agents.max(1),
        git: git.as_ref(),
    };
    runtime()?.block_on(crate::dreamer::run(
        &target,
        settings,
        reflector.as_ref(),
        args.instructions.as_deref(),
    ))
}
