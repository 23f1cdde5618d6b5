//! [`DreamScheduleBuilder`]: a DreamSchedule as the tests write it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::json;

use crate::dream_schedule::{Collective, DreamSchedule, DreamScheduleSpec};

/// A DreamSchedule named `name` that dreams nightly at 03:00 UTC over agent `support`; every
/// other field has the CRD's default.
///
/// ```ignore
/// DreamScheduleBuilder::new("nightly").agents(&["alpha", "beta"]).build()
/// ```
#[derive(Clone)]
pub struct DreamScheduleBuilder {
    schedule: DreamSchedule,
}

impl DreamScheduleBuilder {
    pub fn new(name: &str) -> Self {
        // Through serde, as a manifest is read, so every default is the CRD's.
        let spec: DreamScheduleSpec =
            serde_json::from_value(json!({"schedule": "0 3 * * *", "agents": {"names": ["support"]}}))
                .expect("a minimal DreamSchedule spec");
        Self {
            schedule: DreamSchedule::new(name, spec),
        }
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.schedule.metadata.namespace = Some(namespace.into());
        self
    }

    pub fn uid(mut self, uid: &str) -> Self {
        self.schedule.metadata.uid = Some(uid.into());
        self
    }

    /// The cron expression (`spec.schedule`).
    pub fn cron(mut self, cron: &str) -> Self {
        self.schedule.spec.schedule = cron.into();
        self
    }

    pub fn time_zone(mut self, zone: &str) -> Self {
        self.schedule.spec.time_zone = zone.into();
        self
    }

    /// Selects these agents by name (and no longer `support`).
    pub fn agents(mut self, names: &[&str]) -> Self {
        self.schedule.spec.agents.names = names.iter().map(|n| n.to_string()).collect();
        self
    }

    /// Selects the agents whose labels match, instead of by name.
    pub fn selector<const N: usize>(mut self, match_labels: [(&str, &str); N]) -> Self {
        let labels: BTreeMap<String, String> = match_labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.schedule.spec.agents.names.clear();
        self.schedule.spec.agents.selector = Some(LabelSelector {
            match_labels: Some(labels),
            match_expressions: None,
        });
        self
    }

    /// Pools the selected agents into one pass that proposes to `target`'s memory.
    pub fn collective(mut self, target: &str, min_agents: u32) -> Self {
        self.schedule.spec.agents.collective = Some(Collective {
            target: target.into(),
            min_agents,
        });
        self
    }

    /// Any other part of the spec, typed.
    pub fn spec(mut self, change: impl FnOnce(&mut DreamScheduleSpec)) -> Self {
        change(&mut self.schedule.spec);
        self
    }

    pub fn build(self) -> DreamSchedule {
        self.schedule
    }
}
