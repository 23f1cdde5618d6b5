//! The developer commands: write synthetic and hostile corpora, and score a dream pass against a
//! planted corpus's ground truth or a real corpus's analyst truth.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use reverie_core::dream::model::DreamSettings;
use reverie_core::dream::pass::{self, PassInput, PassOutcome, SessionRoot};
use reverie_core::dream::reflector::builtin::BuiltinReflector;
use reverie_core::dream::report::Report;
use reverie_core::memory::MemoryDocument;

use crate::synth;
use crate::truth::{self, QualityBar, ScoredChange};

#[derive(Debug, clap::Args)]
pub struct GenSessionsArgs {
    /// Where to write the transcripts (and ground-truth.json).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 200)]
    pub sessions: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Plain volume for benchmarks: no planted patterns, just realistic traffic.
    #[arg(long)]
    pub volume: bool,
}

/// Runs `reverie-dev gen-sessions`.
pub fn gen_sessions(args: &GenSessionsArgs) -> Result<(), String> {
    let config = if args.volume {
        synth::SynthConfig::volume(args.seed, args.sessions)
    } else {
        synth::SynthConfig {
            seed: args.seed,
            sessions: args.sessions,
            ..synth::SynthConfig::default()
        }
    };
    let truth = synth::generate(&config, &args.out).map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    eprintln!(
        "wrote {} sessions with {} planted patterns to {}",
        args.sessions,
        truth.patterns.len(),
        args.out.display()
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct QualityArgs {
    /// A corpus made by `gen-sessions` (holds ground-truth.json); default: generate one. With
    /// `--truth`: the folder of real transcripts the truth's `--scope` describes.
    #[arg(long)]
    pub sessions: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    pub min_evidence: u32,
    /// Sessions in the generated corpus (all of them are reviewed).
    #[arg(long, default_value_t = 200)]
    pub corpus: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Score against an analyst's truth file of a real corpus (truth.json) instead of a planted
    /// corpus; needs `--scope` and `--sessions`.
    #[arg(long, value_name = "FILE", requires_all = ["scope", "sessions"])]
    pub truth: Option<PathBuf>,
    /// With `--truth`: the truth items to score against (a session folder's name, or `all`).
    #[arg(long, value_name = "NAME", requires = "truth")]
    pub scope: Option<String>,
    /// With `--truth`: review only the N most recent sessions (default: all of them).
    #[arg(long, value_name = "N", requires = "truth")]
    pub lookback: Option<usize>,
    /// With `--truth`: the lowest recall of the expected items that passes.
    #[arg(long, default_value_t = QualityBar::default().min_recall)]
    pub min_recall: f64,
    /// With `--truth`: the lowest precision (useful / (useful + false)) that passes.
    #[arg(long, default_value_t = QualityBar::default().min_precision)]
    pub min_precision: f64,
    /// With `--truth`: the most lessons (additions and updates) a pass may propose.
    #[arg(long, default_value_t = QualityBar::default().max_proposed)]
    pub max_proposed: usize,
}

/// Runs `reverie-dev quality`: a pass over a planted corpus with the builtin reflector, scored
/// against the ground truth (or, with `--truth`, over a real corpus scored against an analyst's
/// truth). Exits non-zero when a target is missed.
pub fn quality(args: &QualityArgs) -> Result<(), String> {
    if let Some(truth) = &args.truth {
        return quality_real(args, truth);
    }
    let generated;
    let dir = match &args.sessions {
        Some(dir) => dir.clone(),
        None => {
            generated = std::env::temp_dir().join(format!("reverie-quality-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&generated);
            let config = synth::SynthConfig {
                seed: args.seed,
                sessions: args.corpus,
                min_evidence: args.min_evidence,
                ..synth::SynthConfig::default()
            };
            synth::generate(&config, &generated).map_err(|e| e.to_string())?;
            generated.clone()
        }
    };
    let truth = synth::GroundTruth::load(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // A planted corpus scores what the pass finds, not what fits one review: no change budget.
    let outcome = quality_pass(
        &dir,
        args.min_evidence,
        usize::MAX,
        u32::MAX,
        &MemoryDocument::default(),
    )?;
    let (candidates, lessons) = match &outcome {
        PassOutcome::Proposal(p) => (p.candidates.clone(), p.lessons.clone()),
        _ => (Vec::new(), Vec::new()),
    };
    let report = synth::score(&truth, &candidates, &lessons, args.min_evidence);
    println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    if args.sessions.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if report.passes_targets() {
        Ok(())
    } else {
        Err(format!(
            "quality targets missed: recall {:.3} (≥ 0.95), {} lessons below minEvidence, {} injected, max count error {}",
            report.recall, report.below_threshold_lessons, report.injected_lessons, report.max_count_error
        ))
    }
}

/// The pass `reverie-dev quality` scores: the builtin reflector over every session of `dir` (or
/// the `lookback` most recent), starting from `memory`, with no token budget or staleness, and
/// at most `max_changes` changes.
fn quality_pass(
    dir: &Path,
    min_evidence: u32,
    lookback: usize,
    max_changes: u32,
    memory: &MemoryDocument,
) -> Result<PassOutcome, String> {
    let settings = DreamSettings {
        lookback_sessions: lookback.max(1),
        max_age: None,
        label_selector: Vec::new(),
        min_evidence,
        max_tokens: 1_000_000,
        stale_after: Duration::from_secs(3650 * 86_400),
        max_changes,
        ..DreamSettings::defaults(Timestamp::now())
    };
    runtime()?
        .block_on(pass::run(PassInput {
            agent: "agent",
            sessions: &[SessionRoot {
                agent: "agent",
                path: dir,
                format: None,
            }],
            min_agents: 1,
            memory,
            settings: &settings,
            reflector: &BuiltinReflector,
            instructions: None,
            as_of_newest_session: true,
        }))
        .map_err(|e| e.to_string())
}

/// `reverie-dev quality --truth`: the quality pass over a real corpus, its proposed changes
/// (as `reverie dream --output json` shows them) scored against the analyst's truth of `--scope`.
/// Prints the score as JSON and a summary line on stderr; fails when the bar is missed.
fn quality_real(args: &QualityArgs, truth_path: &Path) -> Result<(), String> {
    let (Some(scope), Some(dir)) = (&args.scope, &args.sessions) else {
        return Err("--truth needs --scope and --sessions".into());
    };
    let items = truth::load(truth_path).map_err(|e| format!("{}: {e}", truth_path.display()))?;
    if !items.iter().any(|t| &t.scope == scope) {
        return Err(format!("{} has no items of scope {scope:?}", truth_path.display()));
    }
    let memory = MemoryDocument::default();
    // A real corpus is scored as a user runs it: with the default budget of changes.
    let outcome = quality_pass(
        dir,
        args.min_evidence,
        args.lookback.unwrap_or(usize::MAX),
        reverie_core::dream::model::DEFAULT_MAX_CHANGES,
        &memory,
    )?;
    let report = Report::new("agent", &outcome, &memory);
    let changes: Vec<ScoredChange> = report.changes.iter().map(ScoredChange::from).collect();
    let score = truth::score(&items, scope, &changes);
    println!("{}", serde_json::to_string_pretty(&score).map_err(|e| e.to_string())?);
    eprintln!("{}", score.summary_line());
    let bar = QualityBar {
        min_recall: args.min_recall,
        min_precision: args.min_precision,
        max_proposed: args.max_proposed,
    };
    let misses = score.misses(&bar);
    if misses.is_empty() {
        Ok(())
    } else {
        Err(format!("real[{scope}] quality bar missed: {}", misses.join(", ")))
    }
}

#[derive(Debug, clap::Args)]
pub struct GenHostileArgs {
    /// Where to write the transcripts (and hostile-truth.json).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 120)]
    pub sessions: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Runs `reverie-dev gen-hostile`: writes the corpus and prints a summary on stderr.
pub fn gen_hostile(args: &GenHostileArgs) -> Result<(), String> {
    let config = crate::hostile::HostileConfig {
        seed: args.seed,
        sessions: args.sessions,
        ..Default::default()
    };
    let truth = crate::hostile::generate(&config, &args.out)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    eprint!("wrote to {}: {}", args.out.display(), truth.summary());
    Ok(())
}

/// A single-threaded runtime for the one async call a command makes (the pass).
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}
