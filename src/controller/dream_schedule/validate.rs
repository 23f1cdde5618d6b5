//! Validate: a DreamSchedule's spec, checked once and carried on parsed, so no later step
//! parses the cron expression or the selector again.

use crate::api::dream_schedule::DreamScheduleSpec;
use crate::api::rules::{self, Problem};

/// A spec that passed every check, with what the checks parsed (the cron expression in its
/// time zone, the agent selector).
pub type ValidSchedule = rules::dream_schedule::Parsed;

/// The valid schedule, or everything wrong with the spec on its own: the kind's rules and the
/// output's settings (GitOps checks live with the GitOps code).
pub fn validate(spec: &DreamScheduleSpec) -> Result<ValidSchedule, Vec<Problem>> {
    let output = crate::gitops::validate(&spec.output)
        .into_iter()
        .map(|message| Problem::new("InvalidOutput", message));
    match rules::dream_schedule::check(spec) {
        Ok(parsed) => {
            let problems: Vec<Problem> = output.collect();
            if problems.is_empty() { Ok(parsed) } else { Err(problems) }
        }
        Err(mut problems) => {
            problems.extend(output);
            Err(problems)
        }
    }
}

/// The problems alone (empty when the spec is valid).
pub fn problems(spec: &DreamScheduleSpec) -> Vec<Problem> {
    validate(spec).err().unwrap_or_default()
}
