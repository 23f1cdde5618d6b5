//! The dream pass: read sessions, mine candidate patterns with counted evidence, turn them into
//! verified lessons, and curate the memory into a proposal.
//!
//! Pure except the model reflectors' HTTP: no Kubernetes.

pub mod curate;
pub mod effect;
pub mod model;
pub mod normalize;
pub mod pass;
pub mod reflector;
pub mod report;
pub mod risk;
pub mod rules;
pub mod sessions;
pub mod signals;
pub mod stats;
