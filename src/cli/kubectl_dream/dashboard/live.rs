//! Tells open pages that the cluster changed: watches (the API's watch, with the caller's
//! credentials) on the objects the pages show bump a counter, and each page's event stream
//! (server-sent events) says so; the page's script then fetches itself and swaps its live parts.
//! Pages carry the count they were rendered at, so a change between rendering and connecting
//! is not lost. A watch the API server refuses is said too, so a page never claims to be live
//! when it is not.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::read::Cluster;
use crate::api::{Agent, DreamSchedule, MemoryProposal};
use crate::errors::error_chain;

/// What the watches have seen: how many changes, and which watches fail and why.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    pub changes: u64,
    /// The failing watches by kind, with the API server's answer.
    pub problems: BTreeMap<&'static str, String>,
}

impl Health {
    /// The first failing watch, as one line for the page.
    pub fn problem(&self) -> String {
        self.problems
            .iter()
            .next()
            .map(|(kind, why)| format!("cannot watch {kind}: {why}"))
            .unwrap_or_default()
    }
}

/// The watches' state, shared by every open page.
#[derive(Clone)]
pub struct Changes {
    health: watch::Receiver<Health>,
}

impl Changes {
    /// Starts watching the dashboard's proposals, agents and schedules. A watch the caller may
    /// not make retries with backoff; the pages work meanwhile, without live updates.
    pub fn watch(cluster: &Cluster) -> Self {
        let (sender, health) = watch::channel(Health::default());
        spawn_watch("memoryproposals", cluster.scoped::<MemoryProposal>(), sender.clone());
        spawn_watch("agents", cluster.scoped::<Agent>(), sender.clone());
        spawn_watch("dreamschedules", cluster.scoped::<DreamSchedule>(), sender);
        Self { health }
    }

    /// Watches the test drives through the returned sender.
    #[cfg(test)]
    pub fn manual() -> (Self, watch::Sender<Health>) {
        let (sender, health) = watch::channel(Health::default());
        (Self { health }, sender)
    }

    /// The number of changes seen so far: a page records it when it is rendered.
    pub fn seen(&self) -> u64 {
        self.health.borrow().changes
    }

    /// The event stream of one page: `change` with the count now, then again on every change,
    /// and `problem` (or `healthy`) whenever a watch starts (or stops) failing. The
    /// first event closes the gap between rendering the page and opening its stream: a page
    /// rendered at a lower count missed a change and fetches itself again.
    pub fn stream(&self) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
        let start = (self.health.clone(), None::<Health>);
        let events = futures::stream::unfold(start, |(mut health, sent)| async move {
            if sent.is_some() {
                health.changed().await.ok()?;
            }
            let now = health.borrow_and_update().clone();
            let mut events = Vec::new();
            if sent.as_ref().is_none_or(|s| s.changes != now.changes) {
                events.push(Ok(Event::default().event("change").data(now.changes.to_string())));
            }
            if sent.as_ref().is_none_or(|s| s.problem() != now.problem()) {
                // A browser drops an event without data, so "all well" is an event of its own.
                let event = match now.problem() {
                    problem if problem.is_empty() => Event::default().event("healthy").data("ok"),
                    problem => Event::default().event("problem").data(problem),
                };
                events.push(Ok(event));
            }
            Some((futures::stream::iter(events), (health, Some(now))))
        });
        Sse::new(events.flatten()).keep_alive(KeepAlive::default())
    }
}

fn spawn_watch<K>(kind: &'static str, api: Api<K>, sender: watch::Sender<Health>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    <K as Resource>::DynamicType: Default,
{
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
        while let Some(event) = events.next().await {
            sender.send_if_modified(|health| match &event {
                Err(error) => {
                    let why = error_chain(error);
                    health.problems.insert(kind, why.clone()) != Some(why)
                }
                Ok(event) => {
                    let recovered = health.problems.remove(kind).is_some();
                    // The initial listing (and a re-list after the watch expired) ends in
                    // InitDone; single objects arrive as Apply and Delete.
                    let changed = matches!(
                        event,
                        watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone
                    );
                    if changed {
                        health.changes += 1;
                    }
                    recovered || changed
                }
            });
            if sender.is_closed() {
                return;
            }
        }
    });
}
