//! reverie: a Kubernetes operator that runs AI agents as custom resources and lets them dream.
//!
//! The pure core (memory, schedules, the dream engine) is the `reverie-core` crate and the
//! custom resources with their pure rules are `reverie-api`; both are re-exported here under
//! the same paths. This crate adds everything that talks to Kubernetes or a model.

pub use reverie_api::proposal;
pub use reverie_core::{dream, memory, naming, schedule};

pub use reverie_api as api;
pub mod api_requests;
pub mod cli;
pub mod collect;
pub mod controller;
pub mod dreamer;
pub mod errors;
pub mod gitops;
pub mod kube_ext;
pub mod metrics;
pub mod operator;
pub mod reflectors;
pub mod store;
pub mod telemetry;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
