//! reverie: a Kubernetes operator that runs AI agents as custom resources and lets them dream.

pub mod api;
pub mod cli;
pub mod controller;
pub mod dream;
pub mod dreamer;
pub mod gitops;
pub mod kube_ext;
pub mod memory;
pub mod metrics;
pub mod naming;
pub mod operator;
pub mod proposal;
pub mod schedule;
pub mod store;
pub mod telemetry;
