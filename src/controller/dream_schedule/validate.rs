//! Validate: a DreamSchedule's spec, checked once and carried on parsed, so no later step
//! parses the cron expression or the selector again.

use kube::core::Selector;

use crate::api::dream_schedule::DreamScheduleSpec;
use crate::api::rules::{self, Problem};
use crate::schedule::Schedule;

/// A spec that passed every check, with what the checks parsed.
pub struct ValidSchedule {
    /// The cron expression in its time zone.
    pub cron: Schedule,
    /// `spec.agents.selector`, when the schedule selects agents by label.
    pub selector: Option<Selector>,
}

/// The valid schedule, or everything wrong with the spec on its own: the kind's rules and the
/// output's settings (GitOps checks live with the GitOps code).
pub fn validate(spec: &DreamScheduleSpec) -> Result<ValidSchedule, Vec<Problem>> {
    let mut problems = rules::dream_schedule::validate(spec);
    problems.extend(
        crate::gitops::validate(&spec.output)
            .into_iter()
            .map(|message| Problem::new("InvalidOutput", message)),
    );
    if !problems.is_empty() {
        return Err(problems);
    }
    // The rules accepted both, so these parses succeed; a failure is still reported, never
    // unwrapped.
    let cron = Schedule::parse(&spec.schedule, &spec.time_zone)
        .map_err(|e| vec![Problem::new("InvalidSchedule", e.to_string())])?;
    let selector = spec
        .agents
        .selector
        .clone()
        .map(Selector::try_from)
        .transpose()
        .map_err(|e| {
            vec![Problem::new(
                "InvalidAgentSelection",
                format!("spec.agents.selector: {e}"),
            )]
        })?;
    Ok(ValidSchedule { cron, selector })
}

/// The problems alone (empty when the spec is valid).
pub fn problems(spec: &DreamScheduleSpec) -> Vec<Problem> {
    validate(spec).err().unwrap_or_default()
}
