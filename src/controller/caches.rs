//! What the reconcilers read instead of the API server: one in-memory store per kind they look
//! up (Agents, MemoryProposals, dream Jobs), filled by the operator's single watch of that kind.
//!
//! A reconcile triggered by a change always finds that change here: the watch writes the store
//! before it wakes any controller (see [`super::watch`]), so a count or a lookup is never older
//! than the event that asked for it.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::api::dream_job::SCHEDULE_LABEL;
use crate::api::{Agent, MemoryProposal};

/// Read handles on the operator's caches.
#[derive(Clone)]
pub struct Caches {
    pub agents: Store<Agent>,
    pub proposals: Store<MemoryProposal>,
    /// Jobs carrying the schedule label: the dream passes of every DreamSchedule.
    pub dream_jobs: Store<Job>,
}

/// The write ends of [`Caches`], handed to the watches that fill them.
pub struct CacheWriters {
    pub agents: Writer<Agent>,
    pub proposals: Writer<MemoryProposal>,
    pub dream_jobs: Writer<Job>,
}

impl Caches {
    /// Empty caches and the writers that will fill them.
    pub fn new() -> (Self, CacheWriters) {
        let writers = CacheWriters {
            agents: Writer::default(),
            proposals: Writer::default(),
            dream_jobs: Writer::default(),
        };
        let caches = Self {
            agents: writers.agents.as_reader(),
            proposals: writers.proposals.as_reader(),
            dream_jobs: writers.dream_jobs.as_reader(),
        };
        (caches, writers)
    }

    /// Caches holding exactly these objects, as after a full list (tests and one-off tools).
    pub fn holding(agents: Vec<Agent>, proposals: Vec<MemoryProposal>, dream_jobs: Vec<Job>) -> Self {
        let (caches, mut writers) = Self::new();
        fill(&mut writers.agents, agents);
        fill(&mut writers.proposals, proposals);
        fill(&mut writers.dream_jobs, dream_jobs);
        caches
    }

    /// The Agent `name` in `namespace`.
    pub fn agent(&self, namespace: &str, name: &str) -> Option<Arc<Agent>> {
        self.agents.get(&ObjectRef::new(name).within(namespace))
    }

    /// The Agents among `names` that exist, and the names that do not.
    pub fn find_agents<'a>(
        &self,
        namespace: &str,
        names: impl Iterator<Item = &'a str>,
    ) -> (Vec<Arc<Agent>>, Vec<String>) {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            match self.agent(namespace, name) {
                Some(agent) => found.push(agent),
                None => missing.push(name.to_string()),
            }
        }
        (found, missing)
    }

    /// The Agents of `namespace` whose labels `selector` matches, by name.
    pub fn agents_matching(&self, namespace: &str, selector: &Selector) -> Vec<Arc<Agent>> {
        let mut agents: Vec<Arc<Agent>> = self
            .agents
            .state()
            .into_iter()
            .filter(|agent| agent.namespace().as_deref() == Some(namespace) && selector.matches(agent.labels()))
            .collect();
        agents.sort_by_key(|agent| agent.name_any());
        agents
    }

    /// The proposals in `namespace` for the Agent `agent`.
    pub fn proposals_for(&self, namespace: &str, agent: &str) -> Vec<Arc<MemoryProposal>> {
        self.proposals
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(namespace) && p.spec.agent_ref.name == agent)
            .collect()
    }

    /// A proposal in `namespace` whose `source.supersedes` names `name`.
    pub fn superseding(&self, namespace: &str, name: &str) -> Option<Arc<MemoryProposal>> {
        self.proposals.find(|p| {
            p.namespace().as_deref() == Some(namespace)
                && p.spec.source.as_ref().and_then(|s| s.supersedes.as_deref()) == Some(name)
        })
    }

    /// The dream Jobs of the schedule `schedule` in `namespace`, by name.
    pub fn dream_jobs_of(&self, namespace: &str, schedule: &str) -> Vec<Arc<Job>> {
        let mut jobs: Vec<Arc<Job>> = self
            .dream_jobs
            .state()
            .into_iter()
            .filter(|job| {
                job.namespace().as_deref() == Some(namespace)
                    && job.labels().get(SCHEDULE_LABEL).map(String::as_str) == Some(schedule)
            })
            .collect();
        jobs.sort_by_key(|job| job.name_any());
        jobs
    }
}

/// Loads `objects` into a store as one complete list, which also marks it ready.
fn fill<K>(writer: &mut Writer<K>, objects: Vec<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(object));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn agent(name: &str, namespace: &str, labels: serde_json::Value) -> Agent {
        serde_json::from_value(json!({
            "apiVersion": "reverie.dev/v1alpha1", "kind": "Agent",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"model": "m", "instructions": "i"}
        }))
        .expect("valid Agent")
    }

    fn proposal(name: &str, agent: &str, supersedes: Option<&str>) -> MemoryProposal {
        serde_json::from_value(json!({
            "apiVersion": "reverie.dev/v1alpha1", "kind": "MemoryProposal",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"agentRef": {"name": agent}, "baseRevision": 1, "baseDigest": "sha256:00", "summary": "s", "changes": [],
                     "source": {"supersedes": supersedes}}
        }))
        .expect("valid MemoryProposal")
    }

    fn job(name: &str, namespace: &str, schedule: &str) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace, "labels": {SCHEDULE_LABEL: schedule}}
        }))
        .expect("valid Job")
    }

    #[test]
    fn lookups_stay_within_their_namespace() {
        let caches = Caches::holding(
            vec![agent("a", "team", json!({})), agent("b", "other", json!({}))],
            Vec::new(),
            vec![job("n1", "team", "nightly"), job("n2", "other", "nightly")],
        );
        assert!(caches.agent("team", "a").is_some());
        assert!(caches.agent("team", "b").is_none());
        let (found, missing) = caches.find_agents("team", ["a", "b"].into_iter());
        assert_eq!((found.len(), missing), (1, vec!["b".to_string()]));
        let jobs: Vec<String> = caches
            .dream_jobs_of("team", "nightly")
            .iter()
            .map(|j| j.name_any())
            .collect();
        assert_eq!(jobs, ["n1"]);
    }

    #[test]
    fn a_selector_matches_labels_in_one_namespace_sorted_by_name() {
        let caches = Caches::holding(
            vec![
                agent("z", "team", json!({"tier": "gold"})),
                agent("y", "team", json!({"tier": "gold"})),
                agent("x", "team", json!({"tier": "silver"})),
                agent("w", "other", json!({"tier": "gold"})),
            ],
            Vec::new(),
            Vec::new(),
        );
        let selector = Selector::from_iter([("tier", "gold")]);
        let names: Vec<String> = caches
            .agents_matching("team", &selector)
            .iter()
            .map(|a| a.name_any())
            .collect();
        assert_eq!(names, ["y", "z"]);
    }

    #[test]
    fn proposals_are_found_by_agent_and_by_what_they_supersede() {
        let caches = Caches::holding(
            Vec::new(),
            vec![
                proposal("p1", "a", None),
                proposal("p2", "a", Some("p1")),
                proposal("p3", "b", None),
            ],
            Vec::new(),
        );
        assert_eq!(caches.proposals_for("team", "a").len(), 2);
        assert_eq!(
            caches.superseding("team", "p1").map(|p| p.name_any()),
            Some("p2".into())
        );
        assert!(caches.superseding("team", "p2").is_none());
    }
}
