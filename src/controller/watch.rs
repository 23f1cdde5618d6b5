//! One watch per cached kind: it writes the kind's store, then wakes the controllers that react
//! to the kind. Writing first is what lets a reconcile read the cache and find the very change
//! that triggered it; one watch per kind (instead of one per controller) keeps a single copy of
//! each object in memory.

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use kube::runtime::reflector::store::Writer;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// How many changes wait for a slow controller before the watch itself waits (backpressure).
const BUFFER: usize = 256;

/// The controllers a watch wakes.
pub struct Subscribers<K> {
    /// The controller of this kind: woken when an object is created or changed.
    applied: Vec<mpsc::Sender<K>>,
    /// Controllers that map this kind to their own objects: woken by deletions too, since a
    /// deleted Agent changes the schedules and proposals that name it.
    touched: Vec<mpsc::Sender<K>>,
}

impl<K> Default for Subscribers<K> {
    fn default() -> Self {
        Self {
            applied: Vec::new(),
            touched: Vec::new(),
        }
    }
}

/// A trigger stream as `kube::runtime::Controller` consumes it.
pub type Trigger<K> = futures::stream::Map<mpsc::Receiver<K>, fn(K) -> Result<K, watcher::Error>>;

impl<K: Clone> Subscribers<K> {
    /// Triggers for the controller whose primary kind this is.
    pub fn applied(&mut self) -> Trigger<K> {
        let (sender, receiver) = mpsc::channel(BUFFER);
        self.applied.push(sender);
        receiver.map(Ok)
    }

    /// Triggers for a controller that watches or owns this kind.
    pub fn touched(&mut self) -> Trigger<K> {
        let (sender, receiver) = mpsc::channel(BUFFER);
        self.touched.push(sender);
        receiver.map(Ok)
    }

    async fn wake(&mut self, object: &K, deleted: bool) {
        let applied = self.applied.iter_mut().filter(|_| !deleted);
        for sender in applied.chain(self.touched.iter_mut()) {
            // A closed receiver is a controller that has shut down; nothing to wake.
            let _ = sender.send(object.clone()).await;
        }
    }
}

/// The annotation `kubectl apply` keeps a copy of the whole object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what no reconcile reads before an object is cached: its managed fields and
/// `kubectl apply`'s copy of it. Together they are most of a small object, and the caches
/// hold every Agent and proposal of the cluster. Status is written with server-side apply
/// patches, never by sending a cached object back, so nothing is lost on a write.
fn slim<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
    if let Some(annotations) = object.meta_mut().annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Watches `api`, keeps `writer`'s store equal to the cluster and wakes `subscribers` after each
/// change is in the store. Runs until dropped; watch errors are retried with backoff.
pub async fn reflect<K>(api: Api<K>, config: watcher::Config, writer: Writer<K>, mut subscribers: Subscribers<K>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let reader = writer.as_reader();
    let events = watcher(api, config).default_backoff().modify(slim);
    let events = reflector(writer, events);
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(object)) => subscribers.wake(&object, false).await,
            Ok(watcher::Event::Delete(object)) => subscribers.wake(&object, true).await,
            // A (re)list lands in the store all at once, at its end: wake everyone for all of it
            // then, never for an object the store does not hold yet.
            Ok(watcher::Event::InitDone) => {
                for object in reader.state() {
                    subscribers.wake(&object, false).await;
                }
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Err(error) => tracing::warn!(kind = %K::kind(&()), %error, "watch failed; retrying with backoff"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_objects_lose_managed_fields_and_the_last_applied_copy_only() {
        let mut map: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "m", "annotations": {LAST_APPLIED: "{...}", "reverie.dev/content-digest": "sha256:aa"},
                         "managedFields": [{"manager": "kubectl", "operation": "Apply"}]}
        }))
        .unwrap();
        slim(&mut map);
        assert_eq!(map.metadata.managed_fields, None);
        let annotations = map.metadata.annotations.unwrap();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["reverie.dev/content-digest"]);
    }

    #[tokio::test]
    async fn a_deletion_wakes_only_the_controllers_that_map_the_kind() {
        let mut subscribers = Subscribers::<u32>::default();
        let mut applied = subscribers.applied();
        let mut touched = subscribers.touched();
        subscribers.wake(&1, false).await;
        subscribers.wake(&2, true).await;
        drop(subscribers);
        let applied: Vec<u32> = (&mut applied).filter_map(|r| async { r.ok() }).collect().await;
        let touched: Vec<u32> = (&mut touched).filter_map(|r| async { r.ok() }).collect().await;
        assert_eq!(applied, [1]);
        assert_eq!(touched, [1, 2]);
    }
}
