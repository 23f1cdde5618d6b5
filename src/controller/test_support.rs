//! The controller tests' API server: the crate's scripted one ([`crate::test_support`]), and a
//! [`Context`] whose client talks to it, with the clock stopped at [`NOW`].

use std::sync::Arc;

pub use crate::test_support::Seen;
pub use crate::test_support::scripted::*;

use super::{Caches, Context, FixedClock};
use crate::metrics::Metrics;

/// The instant the test clock is stopped at.
pub const NOW: &str = "2026-11-20T12:00:00Z";

/// A context whose client talks to the scripted server and whose caches are empty.
pub fn test_context() -> (Arc<Context>, Handle) {
    test_context_with(Caches::new().0)
}

/// [`test_context`] whose caches hold `caches` (what the watches would have listed).
pub fn test_context_with(caches: Caches) -> (Arc<Context>, Handle) {
    let (client, handle) = scripted_client();
    let clock = Arc::new(FixedClock(NOW.parse().expect("valid timestamp")));
    (
        Arc::new(Context::new(client, caches, Arc::new(Metrics::default()), clock)),
        handle,
    )
}

/// Asserts `seen` is the server-side apply of a status at `path`, as reverie's field manager.
pub fn assert_status_patch(seen: &Seen, path: &str) {
    assert_eq!(seen.method, http::Method::PATCH);
    assert_eq!(seen.path, path);
    assert!(
        seen.query.contains("fieldManager=reverie") && seen.query.contains("force=true"),
        "{}",
        seen.query
    );
}
