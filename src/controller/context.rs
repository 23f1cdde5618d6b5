//! What every reconciler shares: the API client, the caches it reads, the event recorder,
//! metrics and a clock.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};

use super::{Caches, Error, Result};
use crate::api::Agent;
use crate::api::agent::MemoryStore;
use crate::metrics::Metrics;
use crate::store::AnyStore;
use crate::store::configmap::ConfigMapStore;
use crate::store::pvc::PvcStore;

/// The time source of the reconcilers, injectable so tests are deterministic.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock stopped at one instant (tests).
pub struct FixedClock(pub Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// The image of reverie's own Jobs (memory apply, dream passes) unless configured.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/reverie-dev/reverie:", env!("CARGO_PKG_VERSION"));

/// Shared state of the controllers.
pub struct Context {
    pub client: Client,
    /// Agents, proposals and dream Jobs as the watches last saw them: reconciles read these,
    /// never LIST.
    pub caches: Caches,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Image for the Jobs the operator creates (it runs the same `reverie` binary).
    pub image: String,
    /// How long a finished apply Job is kept (`ttlSecondsAfterFinished`).
    pub apply_job_ttl_seconds: i32,
}

impl Context {
    pub fn new(client: Client, caches: Caches, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) -> Self {
        let reporter = Reporter {
            controller: "reverie".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            caches,
            metrics,
            clock,
            image: DEFAULT_IMAGE.to_string(),
            apply_job_ttl_seconds: crate::store::pvc::DEFAULT_APPLY_JOB_TTL_SECONDS,
        }
    }

    /// Keeps finished apply Jobs `seconds` before Kubernetes deletes them.
    pub fn with_apply_job_ttl(mut self, seconds: i32) -> Self {
        self.apply_job_ttl_seconds = seconds;
        self
    }

    /// How the PVC store's apply Jobs run.
    pub fn apply_job_settings(&self) -> crate::store::pvc::ApplyJobSettings {
        crate::store::pvc::ApplyJobSettings {
            image: self.image.clone(),
            ttl_seconds_after_finished: self.apply_job_ttl_seconds,
        }
    }

    /// The memory store the Agent's spec names, owned by the Agent (the one place that maps an
    /// Agent to its store).
    pub fn store_for(&self, agent: &Agent) -> Result<AnyStore> {
        let namespace = agent.namespace().unwrap_or_default();
        let name = agent.name_any();
        let owner = agent
            .controller_owner_ref(&())
            .ok_or(Error::MissingObjectKey("metadata.uid"))?;
        Ok(match &agent.spec.memory.store {
            MemoryStore::ConfigMap(_) => {
                AnyStore::ConfigMap(ConfigMapStore::new(self.client.clone(), &namespace, &name, Some(owner)))
            }
            MemoryStore::PersistentVolumeClaim(pvc) => AnyStore::Pvc(PvcStore::new(
                self.client.clone(),
                &namespace,
                &name,
                &pvc.claim_name,
                pvc.path.clone(),
                Some(owner),
                self.apply_job_settings(),
            )),
        })
    }

    /// Uses `image` for the Jobs the operator creates.
    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.image = image.into();
        self
    }

    /// Now as a Kubernetes timestamp, truncated to whole seconds: `metav1.Time` is stored with
    /// second precision, so a sub-second value would never compare equal after a round trip.
    pub fn now(&self) -> Time {
        let now = self.clock.now();
        Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
    }
}
