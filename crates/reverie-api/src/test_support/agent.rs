//! [`AgentBuilder`]: an Agent as the tests write it, with the fields they vary.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::HostPathVolumeSource;
use serde_json::json;

use crate::LocalObjectReference;
use crate::agent::{Agent, AgentSpec, MemoryStore, PvcStore, SessionsSpec, SharedMemory};

/// An Agent named `name` that helps customers with billing (model `claude`), with no
/// namespace, sessions or runtime until a setter adds them; every other field has the CRD's
/// default.
///
/// ```ignore
/// AgentBuilder::new("support").namespace("team").uid("u-1").build()
/// ```
pub struct AgentBuilder {
    agent: Agent,
}

impl AgentBuilder {
    pub fn new(name: &str) -> Self {
        // Through serde, as a manifest is read, so every default is the CRD's.
        let spec: AgentSpec =
            serde_json::from_value(json!({"model": "claude", "instructions": "Help customers with billing."}))
                .expect("a minimal Agent spec");
        Self {
            agent: Agent::new(name, spec),
        }
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.agent.metadata.namespace = Some(namespace.into());
        self
    }

    pub fn uid(mut self, uid: &str) -> Self {
        self.agent.metadata.uid = Some(uid.into());
        self
    }

    pub fn labels<const N: usize>(mut self, labels: [(&str, &str); N]) -> Self {
        let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.agent.metadata.labels = Some(labels);
        self
    }

    pub fn instructions(mut self, instructions: &str) -> Self {
        self.agent.spec.instructions = instructions.into();
        self
    }

    /// Sessions read from a folder of the node (`spec.sessions.hostPath`).
    pub fn sessions_host_path(mut self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref().to_str().expect("a UTF-8 sessions path");
        self.sessions().host_path = Some(HostPathVolumeSource {
            path: path.into(),
            type_: None,
        });
        self
    }

    /// The agent's own folder inside the sessions volume (`spec.sessions.path`).
    pub fn sessions_subpath(mut self, path: &str) -> Self {
        self.sessions().path = Some(path.into());
        self
    }

    /// A runtime Deployment running `image` with `args`.
    pub fn runtime(mut self, image: &str, args: &[&str]) -> Self {
        self.agent.spec.runtime =
            Some(serde_json::from_value(json!({"image": image, "args": args})).expect("a runtime spec"));
        self
    }

    /// Memory kept at `path` of the PersistentVolumeClaim `claim` instead of ConfigMaps.
    pub fn pvc_memory(mut self, claim: &str, path: &str) -> Self {
        self.agent.spec.memory.store = MemoryStore::PersistentVolumeClaim(PvcStore {
            claim_name: claim.into(),
            path: Some(path.into()),
        });
        self
    }

    /// Mounts the memory of agent `name` read-only next to this one's.
    pub fn shared_memory(mut self, name: &str) -> Self {
        self.agent.spec.memory.shared.push(SharedMemory {
            agent_ref: LocalObjectReference { name: name.into() },
        });
        self
    }

    /// Any other part of the spec, typed.
    pub fn spec(mut self, change: impl FnOnce(&mut AgentSpec)) -> Self {
        change(&mut self.agent.spec);
        self
    }

    pub fn build(self) -> Agent {
        self.agent
    }

    fn sessions(&mut self) -> &mut SessionsSpec {
        self.agent.spec.sessions.get_or_insert_default()
    }
}
