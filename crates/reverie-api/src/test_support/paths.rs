//! Request paths of the collections tests script, derived from the types (so a path in a
//! script cannot drift from what a client sends), e.g.
//! `/apis/reverie.dev/v1alpha1/namespaces/team/agents`.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::Resource;

use crate::{Agent, DreamSchedule, MemoryProposal};

pub fn agents(namespace: &str) -> String {
    Agent::url_path(&(), Some(namespace))
}

pub fn schedules(namespace: &str) -> String {
    DreamSchedule::url_path(&(), Some(namespace))
}

pub fn proposals(namespace: &str) -> String {
    MemoryProposal::url_path(&(), Some(namespace))
}

pub fn configmaps(namespace: &str) -> String {
    ConfigMap::url_path(&(), Some(namespace))
}

/// Where the operator records events (`events.k8s.io/v1`).
pub fn events(namespace: &str) -> String {
    Event::url_path(&(), Some(namespace))
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_spelled_as_the_api_server_serves_them() {
        assert_eq!(
            super::agents("team"),
            "/apis/reverie.dev/v1alpha1/namespaces/team/agents"
        );
        assert_eq!(
            super::proposals("team"),
            "/apis/reverie.dev/v1alpha1/namespaces/team/memoryproposals"
        );
        assert_eq!(super::configmaps("team"), "/api/v1/namespaces/team/configmaps");
        assert_eq!(super::events("team"), "/apis/events.k8s.io/v1/namespaces/team/events");
    }
}
