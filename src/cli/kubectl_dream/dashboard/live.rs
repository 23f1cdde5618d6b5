//! Tells open pages that the cluster changed: watches (the API's watch, with the caller's
//! credentials) on the objects the pages show bump a counter, and each page's event stream
//! (server-sent events) says so; the page's script then fetches itself and swaps its live parts.
//! Pages carry the count they were rendered at, so a change between rendering and connecting
//! is not lost.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::read::Cluster;
use crate::api::{Agent, DreamSchedule, MemoryProposal};

/// The number of changes seen so far, shared by every open page.
#[derive(Clone)]
pub struct Changes {
    counter: watch::Receiver<u64>,
}

impl Changes {
    /// Starts watching the dashboard's proposals, agents and schedules. A watch the caller may
    /// not make retries with backoff; the pages still work, only without live updates.
    pub fn watch(cluster: &Cluster) -> Self {
        let (sender, counter) = watch::channel(0);
        spawn_watch(cluster.scoped::<MemoryProposal>(), sender.clone());
        spawn_watch(cluster.scoped::<Agent>(), sender.clone());
        spawn_watch(cluster.scoped::<DreamSchedule>(), sender);
        Self { counter }
    }

    /// A counter nobody bumps, for tests of the pages.
    pub fn none() -> Self {
        let (sender, counter) = watch::channel(0);
        std::mem::forget(sender);
        Self { counter }
    }

    /// The number of changes seen so far: a page records it when it is rendered.
    pub fn seen(&self) -> u64 {
        *self.counter.borrow()
    }

    /// The event stream of one page: the count now, then one `change` event per change. The
    /// first event closes the gap between rendering the page and opening its stream: a page
    /// rendered at a lower count missed a change and fetches itself again.
    pub fn stream(&self) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
        let counter = self.counter.clone();
        let changes = futures::stream::unfold((counter, true), |(mut counter, first)| async move {
            if !first {
                counter.changed().await.ok()?;
            }
            let seen = *counter.borrow_and_update();
            Some((
                Ok(Event::default().event("change").data(seen.to_string())),
                (counter, false),
            ))
        });
        Sse::new(changes).keep_alive(KeepAlive::default())
    }
}

fn spawn_watch<K>(api: Api<K>, sender: watch::Sender<u64>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    <K as Resource>::DynamicType: Default,
{
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
        while let Some(event) = events.next().await {
            // The initial listing (and a re-list after the watch expired) ends in InitDone;
            // individual objects arrive as Apply and Delete.
            if let Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone) = event {
                sender.send_modify(|n| *n += 1);
            }
            if sender.is_closed() {
                return;
            }
        }
    });
}
