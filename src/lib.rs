//! reverie: a Kubernetes operator that runs AI agents as custom resources and lets them dream.
//!
//! The pure core (memory, schedules, the dream engine) is the `reverie-core` crate, re-exported
//! here under the same paths; this crate adds everything that talks to Kubernetes or a model.

pub use reverie_core::{dream, memory, naming, schedule};

pub mod api;
pub mod cli;
pub mod controller;
pub mod dreamer;
pub mod gitops;
pub mod kube_ext;
pub mod metrics;
pub mod operator;
pub mod proposal;
pub mod reflectors;
pub mod store;
pub mod telemetry;
