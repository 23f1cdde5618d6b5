//! Test scaffolding shared by every crate's tests, written once: the `git` program run without
//! user configuration ([`git`]).
//!
//! Compiled for this crate's tests and with the `test-support` feature, which only test code
//! enables (dev-dependencies, the e2e crate): the product never builds fixtures.

pub mod git;
