//! Test scaffolding shared by every crate's tests, written once: typed builders of the three
//! kinds ([`AgentBuilder`], [`DreamScheduleBuilder`], [`MemoryProposalBuilder`]), the API
//! paths a stand-in API server sees ([`paths`]) and the `git` program run without user
//! configuration ([`git`]).
//!
//! Compiled for this crate's tests and with the `test-support` feature, which only test code
//! enables (dev-dependencies, the e2e crate): the product never builds fixtures.

mod agent;
mod dream_schedule;
pub mod git;
mod memory_proposal;
pub mod paths;

pub use agent::AgentBuilder;
pub use dream_schedule::DreamScheduleBuilder;
pub use memory_proposal::{MemoryProposalBuilder, lesson, update};
