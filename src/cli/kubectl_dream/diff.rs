//! `kubectl dream diff NAME`: a proposal as a review diff (rendered by
//! [`crate::api::review`]), coloured when stdout is a terminal, or as YAML/JSON.

use std::io::IsTerminal;

use clap::ValueEnum;
use kube::Api;

use super::{Output, Session, api_error, serialize};
use crate::api::MemoryProposal;
use crate::api::review::render_diff;

/// When the diff is coloured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal and NO_COLOR is unset or empty.
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour, given whether stdout is a terminal and the value of `NO_COLOR`.
    pub fn enabled(self, stdout_is_terminal: bool, no_color: Option<&str>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stdout_is_terminal && no_color.is_none_or(str::is_empty),
        }
    }
}

pub(super) async fn run(session: &Session, output: Output, name: &str, color: ColorChoice) -> Result<String, String> {
    let api = Api::<MemoryProposal>::namespaced(session.client.clone(), &session.namespace);
    let proposal = api
        .get_opt(name)
        .await
        .map_err(|e| api_error(&format!("cannot read memoryproposal {name}"), &e))?
        .ok_or_else(|| not_found(name, &session.namespace))?;
    match output {
        Output::Table => {
            let no_color = std::env::var("NO_COLOR").ok();
            let color = color.enabled(std::io::stdout().is_terminal(), no_color.as_deref());
            Ok(render_diff(&proposal, color))
        }
        _ => serialize(&proposal, output),
    }
}

pub(crate) fn not_found(name: &str, namespace: &str) -> String {
    format!("memoryproposal {name} not found in namespace {namespace}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_colour_needs_a_terminal_and_no_no_color() {
        assert!(ColorChoice::Auto.enabled(true, None));
        assert!(ColorChoice::Auto.enabled(true, Some("")));
        assert!(!ColorChoice::Auto.enabled(true, Some("1")));
        assert!(!ColorChoice::Auto.enabled(false, None));
        assert!(ColorChoice::Always.enabled(false, Some("1")));
        assert!(!ColorChoice::Never.enabled(true, None));
    }
}
