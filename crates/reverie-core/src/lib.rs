//! reverie's core: what an agent remembers and how it dreams, with no Kubernetes in it.
//!
//! - [`memory`]: the memory document, its changes, diff, rebase and token budget.
//! - [`schedule`]: cron schedules, time zones and missed runs.
//! - [`collect`]: OpenTelemetry GenAI spans from running agents assembled into sessions.
//! - [`dream`]: the dream engine (session reader, miners, curation, the builtin reflector and
//!   the verification every reflector's lessons go through).
//! - [`naming`]: bounded Kubernetes-style names and short hashes, as plain strings.
//! - `rng` (tests and the `test-support` feature only): the seeded generator of test data.
//!
//! The operator crate (`reverie`) adds the Kubernetes API, the stores, the controllers and the
//! model reflectors; Cargo keeps the arrow pointing one way, and `scripts/check-core-deps.sh`
//! checks that no Kubernetes, async runtime or HTTP crate enters this one.

pub mod collect;
pub mod dream;
pub mod memory;
pub mod naming;
#[cfg(any(test, feature = "test-support"))]
pub mod rng;
pub mod schedule;
