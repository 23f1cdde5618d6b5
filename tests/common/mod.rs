//! What the CLI test crates share: running the `reverie` binary built for the tests.

use std::process::{Command, Output};

/// Runs `reverie` with `args` (no `RUST_LOG`, so the output is what a user sees).
pub fn reverie(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reverie"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("reverie runs")
}
