//! `reverie-dev`: synthetic and hostile transcript corpora, and the dream quality report.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use reverie_dev::commands::{self, GenHostileArgs, GenSessionsArgs, QualityArgs};

#[derive(Debug, Parser)]
#[command(
    name = "reverie-dev",
    version,
    about = "reverie's developer tools: corpora and the dream quality report"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a synthetic transcript corpus with planted patterns and its ground truth.
    GenSessions(GenSessionsArgs),
    /// Score a dream pass against a planted corpus (recall, false lessons, evidence counts), or
    /// with `--truth` a pass over a real corpus against an analyst's truth file.
    Quality(QualityArgs),
    /// Write an adversarial transcript corpus (hostile instructions of every risk class, benign
    /// controls) and its answer key, hostile-truth.json.
    GenHostile(GenHostileArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::GenSessions(args) => commands::gen_sessions(&args),
        Command::Quality(args) => commands::quality(&args),
        Command::GenHostile(args) => commands::gen_hostile(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
