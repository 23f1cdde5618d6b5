//! What each page shows, read from the API server with the caller's client, and assembled into
//! the typed page data [`super::views`] renders. A part the caller may not read (say, Events)
//! becomes a note on the page, not a failed page.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::ListParams;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::Scope;
use crate::api::dream_schedule::AgentRun;
use crate::api::memory_proposal::Phase;
use crate::api::{Agent, DreamSchedule, MemoryProposal};
use crate::cli::kubectl_dream::api_error;
use crate::cli::kubectl_dream::history::{EffectHistory, History, effect_history, read_history, runs_of};
use crate::memory::codec;
use crate::store::configmap::current_name;
use crate::store::{MEMORY_MD, MEMORY_YAML};

/// The reason of the Warning event a dream pass raises on an Agent for refused injections.
pub const INJECTION_REASON: &str = "SuspectedInjection";

/// The API server, as the caller reaches it, over the dashboard's namespaces.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    pub scope: Scope,
}

/// Something a page shows, or why it cannot.
pub type Part<T> = Result<T, String>;

impl Cluster {
    pub fn new(client: Client, scope: Scope) -> Self {
        Self { client, scope }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// An API over the dashboard's namespaces.
    pub fn scoped<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        match &self.scope {
            Scope::Namespace(namespace) => Api::namespaced(self.client.clone(), namespace),
            Scope::All => Api::all(self.client.clone()),
        }
    }

    pub fn namespaced<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn list<K>(&self, what: &str, params: &ListParams) -> Part<Vec<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        self.scoped::<K>()
            .list(params)
            .await
            .map(|list| list.items)
            .map_err(|e| api_error(&format!("cannot list {what} in {}", self.scope.describe()), &e))
    }

    /// The Agents page: every agent with its proposals and reported injections.
    pub async fn overview(&self) -> Part<Overview> {
        let everything = ListParams::default();
        let injections = ListParams::default().fields(&format!("reason={INJECTION_REASON}"));
        let (agents, proposals, schedules, events) = futures::join!(
            self.list::<Agent>("agents", &everything),
            self.list::<MemoryProposal>("memoryproposals", &everything),
            self.list::<DreamSchedule>("dreamschedules", &everything),
            self.list::<Event>("events", &injections),
        );
        let (agents, proposals, schedules) = (agents?, proposals?, schedules?);
        Ok(Overview {
            rows: agent_rows(&agents, &proposals, &schedules, events.as_deref().unwrap_or_default()),
            events_note: events.err(),
        })
    }

    /// The review queue: pending proposals, oldest first; or, given a session id, every
    /// proposal whose evidence names it.
    pub async fn queue(&self, session: Option<&str>) -> Part<Vec<MemoryProposal>> {
        let proposals = self
            .list::<MemoryProposal>("memoryproposals", &ListParams::default())
            .await?;
        Ok(queue(proposals, session))
    }

    /// A proposal, and the entries of its agent's current memory it changes.
    pub async fn proposal(&self, namespace: &str, name: &str) -> Part<Option<ProposalPage>> {
        let api = self.namespaced::<MemoryProposal>(namespace);
        let Some(proposal) = api
            .get_opt(name)
            .await
            .map_err(|e| api_error(&format!("cannot read memoryproposal {name}"), &e))?
        else {
            return Ok(None);
        };
        let agent_name = proposal.spec.agent_ref.name.clone();
        let agent = self
            .namespaced::<Agent>(namespace)
            .get_opt(&agent_name)
            .await
            .map_err(|e| api_error(&format!("cannot read agent {agent_name}"), &e));
        let memory = self.current_memory(namespace, &agent_name).await;
        let current_entries = memory.and_then(|m| m.map(|m| entries_of(&m)).transpose());
        Ok(Some(ProposalPage {
            proposal,
            current_revision: agent.ok().flatten().and_then(|a| a.status?.memory.map(|m| m.revision)),
            current_entries: current_entries.map(Option::unwrap_or_default),
        }))
    }

    /// An agent's memory page.
    pub async fn agent(&self, namespace: &str, name: &str) -> Part<Option<AgentPage>> {
        let Some(agent) = self
            .namespaced::<Agent>(namespace)
            .get_opt(name)
            .await
            .map_err(|e| api_error(&format!("cannot read agent {name}"), &e))?
        else {
            return Ok(None);
        };
        let proposals = self.namespaced::<MemoryProposal>(namespace);
        let schedules = self.namespaced::<DreamSchedule>(namespace);
        let everything = ListParams::default();
        let (history, memory, proposals, schedules) = futures::join!(
            read_history(&self.client, namespace, &agent),
            self.current_memory(namespace, name),
            proposals.list(&everything),
            schedules.list(&everything),
        );
        // One list of each, for the pending proposals, the last run and the lesson effect.
        let proposals = proposals
            .map(|list| list.items)
            .map_err(|e| api_error("cannot list memoryproposals", &e));
        let schedules = schedules
            .map(|list| list.items)
            .map_err(|e| api_error("cannot list dreamschedules", &e));
        let effect = match (&proposals, &schedules) {
            (Ok(proposals), Ok(schedules)) => Ok(effect_history(name, proposals, schedules)),
            (Err(e), _) | (_, Err(e)) => Err(e.clone()),
        };
        let last_run = schedules.map(|schedules| last_run(Some(namespace), name, &schedules));
        let pending = proposals.map(|proposals| {
            queue(proposals, None)
                .into_iter()
                .filter(|p| p.spec.agent_ref.name == name)
                .collect()
        });
        Ok(Some(AgentPage {
            last_run,
            markdown: memory.map(|m| m.and_then(|m| m.data?.remove(MEMORY_MD))),
            agent,
            history,
            effect,
            pending,
        }))
    }

    /// The agent's current memory ConfigMap, when its store keeps one.
    async fn current_memory(&self, namespace: &str, agent: &str) -> Part<Option<ConfigMap>> {
        let name = current_name(agent);
        self.namespaced::<ConfigMap>(namespace)
            .get_opt(&name)
            .await
            .map_err(|e| api_error(&format!("cannot read ConfigMap {name}"), &e))
    }
}

/// The Agents page's data.
#[derive(Clone, Debug, PartialEq)]
pub struct Overview {
    pub rows: Vec<AgentRow>,
    /// Why suspected injections could not be read, when they could not.
    pub events_note: Option<String>,
}

/// One agent on the Agents page.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentRow {
    pub agent: Agent,
    pub pending: usize,
    pub last_run: Option<LastRun>,
    pub injections: Injections,
}

/// The suspected injections reported on an agent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Injections {
    /// Reports (an event repeated counts each time).
    pub reports: u32,
    /// The newest report's text.
    pub latest: Option<String>,
}

/// The proposal page's data.
#[derive(Clone, Debug, PartialEq)]
pub struct ProposalPage {
    pub proposal: MemoryProposal,
    /// The revision the agent's memory is at now.
    pub current_revision: Option<u64>,
    /// The current text of each entry, by id (empty when the store keeps no ConfigMap).
    pub current_entries: Part<BTreeMap<String, String>>,
}

/// The agent page's data.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentPage {
    pub agent: Agent,
    pub last_run: Part<Option<LastRun>>,
    pub markdown: Part<Option<String>>,
    pub history: Part<History>,
    pub effect: Part<EffectHistory>,
    pub pending: Part<Vec<MemoryProposal>>,
}

/// An agent's newest dream pass, as the schedule that ran it records it.
#[derive(Clone, Debug, PartialEq)]
pub struct LastRun {
    pub schedule: String,
    pub run: AgentRun,
}

/// The newest run of `agent` across the schedules of its namespace.
pub fn last_run(namespace: Option<&str>, agent: &str, schedules: &[DreamSchedule]) -> Option<LastRun> {
    let here = schedules.iter().filter(|s| s.namespace().as_deref() == namespace);
    runs_of(agent, here)
        .map(|(schedule, run)| LastRun {
            schedule,
            run: run.clone(),
        })
        .max_by_key(|last| last.run.time.0)
}

/// Whether the proposal waits for a decision.
pub fn is_pending(proposal: &MemoryProposal) -> bool {
    let status = proposal.status.as_ref();
    proposal.spec.approval.is_none() && status.and_then(|s| s.phase).is_none_or(|p| p == Phase::Pending)
}

/// Pending proposals oldest first; with a session id, every proposal citing it, newest first.
pub fn queue(mut proposals: Vec<MemoryProposal>, session: Option<&str>) -> Vec<MemoryProposal> {
    match session {
        None => {
            proposals.retain(is_pending);
            proposals.sort_by_key(|p| (p.creation_timestamp().map(|t| t.0), p.namespace(), p.name_any()));
        }
        Some(session) => {
            proposals.retain(|p| {
                p.spec
                    .changes
                    .iter()
                    .filter_map(|c| c.evidence.as_ref())
                    .any(|e| e.sessions.iter().any(|s| s == session))
            });
            proposals.sort_by_key(|p| std::cmp::Reverse(p.creation_timestamp().map(|t| t.0)));
        }
    }
    proposals
}

/// The Agents page's rows, by namespace and name.
pub fn agent_rows(
    agents: &[Agent],
    proposals: &[MemoryProposal],
    schedules: &[DreamSchedule],
    events: &[Event],
) -> Vec<AgentRow> {
    let mut rows: Vec<AgentRow> = agents
        .iter()
        .map(|agent| {
            let namespace = agent.namespace();
            let name = agent.name_any();
            let pending = proposals
                .iter()
                .filter(|p| p.namespace() == namespace && p.spec.agent_ref.name == name && is_pending(p))
                .count();
            AgentRow {
                agent: agent.clone(),
                pending,
                last_run: last_run(namespace.as_deref(), &name, schedules),
                injections: injections_of(&name, namespace.as_deref(), events),
            }
        })
        .collect();
    rows.sort_by_key(|r| (r.agent.namespace(), r.agent.name_any()));
    rows
}

fn injections_of(agent: &str, namespace: Option<&str>, events: &[Event]) -> Injections {
    let about_agent = events.iter().filter(|e| {
        e.reason.as_deref() == Some(INJECTION_REASON)
            && e.involved_object.kind.as_deref() == Some("Agent")
            && e.involved_object.name.as_deref() == Some(agent)
            && e.metadata.namespace.as_deref() == namespace
    });
    let mut injections = Injections::default();
    let mut newest = None;
    for event in about_agent {
        injections.reports += event.count.map_or(1, |c| c.max(1) as u32);
        let time = event_time(event);
        if newest.is_none_or(|n| time > n) {
            newest = Some(time);
            injections.latest = event.message.clone();
        }
    }
    injections
}

/// When an event last happened, whichever API wrote it.
fn event_time(event: &Event) -> Option<jiff::Timestamp> {
    event
        .event_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Entry texts by id, from a memory ConfigMap.
fn entries_of(configmap: &ConfigMap) -> Part<BTreeMap<String, String>> {
    let Some(yaml) = configmap.data.as_ref().and_then(|d| d.get(MEMORY_YAML)) else {
        return Ok(BTreeMap::new());
    };
    let doc = codec::from_yaml(yaml)
        .map_err(|e| format!("cannot read {MEMORY_YAML} of ConfigMap {}: {e}", configmap.name_any()))?;
    Ok(doc
        .entries()
        .map(|(_, entry)| (entry.id.clone(), entry.text.clone()))
        .collect())
}
