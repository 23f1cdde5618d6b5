//! The memory document and everything done to it: canonical form, `memory.yaml`, digest,
//! `MEMORY.md`, token estimates, changes, diff and rebase.
//!
//! Pure: no Kubernetes, no I/O. Protected sections and pinned entries are enforced here, so no
//! caller can bypass them.

pub mod change;
pub mod codec;
pub mod diff;
pub mod document;
pub mod rebase;
pub mod render;
pub mod tokens;

#[cfg(test)]
mod proptests;

pub use change::{ApplyError, Change, apply, prune_archive};
pub use codec::{CodecError, digest, from_yaml, to_yaml};
pub use diff::{DiffError, diff};
pub use document::{ArchivedEntry, Entry, EntryKind, Evidence, MemoryDocument, Provenance, Section};
pub use rebase::{Conflict, ConflictKind, rebase};
pub use render::render_markdown;
pub use tokens::{estimate_tokens, loaded_tokens};
