//! Which Agents a collector writes for, and where: the mapping from the names spans carry
//! (`service.name`, `gen_ai.agent.name`) to a sessions directory.
//!
//! In a cluster the mapping comes from the Agents themselves, read from a reflector's cache
//! (no API read per request): an Agent is served when it asks for the collector
//! (`spec.sessions.collector`) and keeps its sessions on the claim this collector has mounted.
//! Spans naming anything else are refused, so a stray or hostile `service.name` cannot make the
//! collector create directories. Outside a cluster, `--agent NAME=DIR` gives the mapping.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::Agent;

/// Resolves agent names to sessions directories.
pub trait AgentDirectory: Send + Sync {
    /// The directory `agent`'s sessions are written to, if this collector serves it.
    fn dir(&self, agent: &str) -> Option<PathBuf>;
}

/// A fixed mapping (`--agent NAME=DIR`).
pub struct StaticAgents(pub BTreeMap<String, PathBuf>);

impl AgentDirectory for StaticAgents {
    fn dir(&self, agent: &str) -> Option<PathBuf> {
        self.0.get(agent).cloned()
    }
}

/// The Agents of a namespace, as a reflector sees them.
pub struct WatchedAgents {
    pub store: Store<Agent>,
    pub namespace: String,
    /// Where the sessions claim is mounted.
    pub root: PathBuf,
    /// The claim mounted at `root`; `None`: any Agent of the namespace (a shared hostPath or NFS
    /// export mounted at `root`).
    pub claim: Option<String>,
}

impl AgentDirectory for WatchedAgents {
    fn dir(&self, agent: &str) -> Option<PathBuf> {
        if !crate::naming::is_dns_label(agent) {
            return None;
        }
        let object = self.store.get(&ObjectRef::new(agent).within(&self.namespace))?;
        served_dir(&object, &self.root, self.claim.as_deref())
    }
}

/// Where `agent`'s sessions go under `root`, if it asked for the collector and its sessions
/// are on `claim`.
pub fn served_dir(agent: &Agent, root: &Path, claim: Option<&str>) -> Option<PathBuf> {
    let sessions = agent.spec.sessions.as_ref()?;
    sessions.collector.as_ref()?;
    if let Some(claim) = claim {
        let on = sessions.persistent_volume_claim.as_ref()?;
        if on.claim_name != claim {
            return None;
        }
    }
    let path = Path::new(sessions.path.as_deref().unwrap_or_default());
    // The same rule as a volume's subPath: relative, and never upwards.
    if !path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return None;
    }
    Some(root.join(path))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn agent(sessions: serde_json::Value) -> Agent {
        serde_json::from_value(json!({
            "apiVersion": "reverie.dev/v1alpha1", "kind": "Agent",
            "metadata": {"name": "support", "namespace": "team"},
            "spec": {"model": "m", "instructions": "i", "sessions": sessions}
        }))
        .unwrap()
    }

    #[test]
    fn only_agents_that_ask_and_share_the_claim_are_served() {
        let root = Path::new("/sessions");
        let asks =
            agent(json!({"persistentVolumeClaim": {"claimName": "transcripts"}, "path": "support", "collector": {}}));
        assert_eq!(
            served_dir(&asks, root, Some("transcripts")),
            Some(PathBuf::from("/sessions/support"))
        );
        assert_eq!(
            served_dir(&asks, root, Some("other")),
            None,
            "another claim: not ours to write"
        );
        assert_eq!(served_dir(&asks, root, None), Some(PathBuf::from("/sessions/support")));

        let silent = agent(json!({"persistentVolumeClaim": {"claimName": "transcripts"}, "path": "support"}));
        assert_eq!(served_dir(&silent, root, Some("transcripts")), None, "did not ask");

        let climbing =
            agent(json!({"persistentVolumeClaim": {"claimName": "transcripts"}, "path": "../x", "collector": {}}));
        assert_eq!(served_dir(&climbing, root, Some("transcripts")), None);
        let root_path = agent(json!({"hostPath": {"path": "/h"}, "collector": {}}));
        assert_eq!(served_dir(&root_path, root, None), Some(PathBuf::from("/sessions")));
    }
}
