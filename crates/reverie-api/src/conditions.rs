//! Helpers for the standard `metav1.Condition` list every reverie status carries.
//!
//! Kubernetes API conventions: `lastTransitionTime` only moves when `status` flips, so a
//! reconcile that recomputes the same condition produces byte-identical status and no write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition type: the spec was validated and the controller accepted it.
pub const ACCEPTED: &str = "Accepted";
/// Condition type: the object is fully working.
pub const READY: &str = "Ready";
/// Condition type (Agent): the memory store holds a revision matching the spec.
pub const MEMORY_READY: &str = "MemoryReady";
/// Condition type (Agent): the agent's Deployment has rolled out (or none is managed).
pub const RUNTIME_READY: &str = "RuntimeReady";

/// A condition as a reconciler wants it, before timestamps are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    pub type_: &'static str,
    pub status: bool,
    /// CamelCase, machine-readable cause (e.g. `InvalidSchedule`).
    pub reason: String,
    /// A sentence a person can act on.
    pub message: String,
}

impl DesiredCondition {
    pub fn new(type_: &'static str, status: bool, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn true_(type_: &'static str, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(type_, true, reason, message)
    }

    pub fn false_(type_: &'static str, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(type_, false, reason, message)
    }
}

fn status_str(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Merges `desired` into `current`, keeping `lastTransitionTime` of conditions whose status did
/// not change. Conditions of other types are left as they are; the result is sorted by type so
/// the serialised status is stable.
pub fn merge_conditions(
    current: &[Condition],
    desired: &[DesiredCondition],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut merged: Vec<Condition> = current
        .iter()
        .filter(|c| !desired.iter().any(|d| d.type_ == c.type_))
        .cloned()
        .collect();
    for want in desired {
        let status = status_str(want.status);
        let last_transition_time = current
            .iter()
            .find(|c| c.type_ == want.type_ && c.status == status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
        merged.push(Condition {
            type_: want.type_.to_string(),
            status: status.to_string(),
            reason: want.reason.clone(),
            message: want.message.clone(),
            observed_generation: generation,
            last_transition_time,
        });
    }
    merged.sort_by(|a, b| a.type_.cmp(&b.type_));
    merged
}

/// Whether condition `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let first = merge_conditions(
            &[],
            &[DesiredCondition::true_(READY, "Valid", "ok")],
            Some(1),
            &time(10),
        );
        let again = merge_conditions(
            &first,
            &[DesiredCondition::true_(READY, "Valid", "still ok")],
            Some(2),
            &time(20),
        );
        assert_eq!(again[0].last_transition_time, time(10));
        assert_eq!(again[0].message, "still ok");
        assert_eq!(again[0].observed_generation, Some(2));
    }

    #[test]
    fn flipped_status_moves_transition_time() {
        let first = merge_conditions(
            &[],
            &[DesiredCondition::true_(READY, "Valid", "ok")],
            Some(1),
            &time(10),
        );
        let flipped = merge_conditions(
            &first,
            &[DesiredCondition::false_(READY, "InvalidSpec", "bad")],
            Some(2),
            &time(20),
        );
        assert_eq!(flipped[0].last_transition_time, time(20));
        assert_eq!(flipped[0].status, "False");
    }

    #[test]
    fn other_types_are_kept_and_order_is_stable() {
        let first = merge_conditions(
            &[],
            &[
                DesiredCondition::true_(READY, "Valid", "ok"),
                DesiredCondition::true_(ACCEPTED, "Valid", "ok"),
            ],
            None,
            &time(1),
        );
        assert_eq!(
            first.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            ["Accepted", "Ready"]
        );
        let only_ready = merge_conditions(&first, &[DesiredCondition::false_(READY, "X", "y")], None, &time(2));
        assert!(is_true(&only_ready, ACCEPTED));
        assert!(!is_true(&only_ready, READY));
        assert_eq!(find(&only_ready, READY).unwrap().reason, "X");
    }
}
