//! `reverie effect`: did the lessons in a memory help? Measured on a laptop over session
//! transcripts (no cluster needed), with the same code a dream pass runs in-cluster.

use std::path::PathBuf;

use jiff::Timestamp;

use crate::dream::effect::{self, EffectSettings, render_table};
use crate::dream::model::DreamSettings;
use crate::dream::sessions::FormatChoice;
use crate::memory;

/// Output format of `reverie effect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EffectOutput {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct EffectArgs {
    /// Directory of the agent's session transcripts; repeatable (one agent's directories).
    #[arg(long, required = true)]
    pub sessions: Vec<PathBuf>,
    /// The memory whose lessons are measured (`memory.yaml`).
    #[arg(long)]
    pub memory: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub output: EffectOutput,
    /// Fewer sessions than this before or after a lesson's adoption: `too-early`.
    #[arg(long, default_value_t = effect::DEFAULT_MIN_SESSIONS)]
    pub min_sessions: u32,
    /// Measure over the N most recent sessions.
    #[arg(long, default_value_t = effect::DEFAULT_WINDOW)]
    pub window: usize,
    /// Only sessions with this label (`key=value`, or `key` for present); repeatable.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Transcript format (`auto` detects each file's).
    #[arg(long, default_value = "auto")]
    pub format: FormatChoice,
}

/// Runs `reverie effect`.
pub fn run(args: &EffectArgs) -> Result<(), String> {
    let text =
        std::fs::read_to_string(&args.memory).map_err(|e| format!("cannot read {}: {e}", args.memory.display()))?;
    let memory = memory::from_yaml(&text).map_err(|e| format!("{}: {e}", args.memory.display()))?;
    let settings = DreamSettings {
        label_selector: super::dream::label_selector(&args.labels),
        format: args.format,
        effect: EffectSettings {
            min_sessions: args.min_sessions.max(1),
            window: args.window.max(1),
            ..EffectSettings::default()
        },
        ..DreamSettings::defaults(Timestamp::now())
    };
    let roots: Vec<_> = args.sessions.iter().map(|path| (path.as_path(), None)).collect();
    let (effects, read) = effect::measure(&memory, &roots, &settings).map_err(|e| e.to_string())?;
    let printed = match args.output {
        EffectOutput::Json => serde_json::to_string_pretty(&effects).map_err(|e| e.to_string())? + "\n",
        EffectOutput::Text => {
            let rows: Vec<_> = effects.lessons.iter().map(|l| l.row()).collect();
            let mut out = render_table(&rows);
            let sessions = effects
                .lessons
                .first()
                .map_or(0, |l| l.before.sessions + l.after.sessions);
            if !effects.is_empty() {
                out.push_str(&format!(
                    "\n{sessions} sessions measured ({} skipped, {} skipped).\n",
                    crate::api::review::plural(read.files_skipped.len(), "file", "files"),
                    crate::api::review::plural(read.lines_skipped as usize, "line", "lines")
                ));
                for lesson in &effects.lessons {
                    out.push_str(&format!("- {}: {}\n", lesson.id, lesson.sentence()));
                }
            }
            out
        }
    };
    print!("{printed}");
    Ok(())
}
