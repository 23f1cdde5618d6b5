//! Moves complete sessions from the assembler to disk: every tick the sessions idle for the
//! timeout, at once the oldest ones when the budget is reached, and everything at shutdown.
//! A failed write (a full or read-only volume) keeps the session in memory and is retried; its
//! bytes count against the budget, so a collector that cannot write answers 503 rather than
//! growing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::Timestamp;
use reverie_core::collect::Complete;

use super::server::Shared;
use super::writer;

/// Runs until `shutdown`, then writes every pending session and returns how many could not be
/// written.
pub async fn run(shared: Arc<Shared>, idle: Duration, shutdown: impl std::future::Future<Output = ()>) -> usize {
    let tick = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut unwritten: Vec<Complete> = Vec::new();
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(tick) => false,
            () = shared.pressure.notified() => false,
            () = &mut shutdown => true,
        };
        unwritten.extend(take_due(&shared, idle, stopping).await);
        unwritten = write(&shared, unwritten).await;
        let held: usize = unwritten.iter().map(|c| c.line.len()).sum();
        shared.unwritten.store(held, Ordering::Relaxed);
        if stopping {
            if !unwritten.is_empty() {
                tracing::error!(
                    sessions = unwritten.len(),
                    "sessions could not be written before shutdown"
                );
            }
            return unwritten.len();
        }
    }
}

/// Idle sessions; under pressure also the oldest until half the budget is free; at shutdown all.
async fn take_due(shared: &Shared, idle: Duration, all: bool) -> Vec<Complete> {
    let mut assembler = shared.assembler.lock().await;
    let mut due = if all {
        assembler.take_all()
    } else {
        assembler.take_idle(Timestamp::now(), idle)
    };
    let low_water = shared.max_buffered_bytes / 2;
    if assembler.buffered_bytes() > low_water {
        due.extend(assembler.take_oldest(low_water));
    }
    shared.metrics.buffered_bytes.set(assembler.buffered_bytes() as i64);
    shared.metrics.pending_sessions.set(assembler.pending_sessions() as i64);
    due
}

/// Writes `sessions` and returns those that failed.
async fn write(shared: &Arc<Shared>, sessions: Vec<Complete>) -> Vec<Complete> {
    if sessions.is_empty() {
        return sessions;
    }
    let shared = shared.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut failed = Vec::new();
        for session in sessions {
            let Some(dir) = shared.agents.dir(&session.key.agent) else {
                // The Agent was deleted, or stopped asking, since its spans came: its sessions
                // have no store any more.
                tracing::warn!(agent = %session.key.agent, session = %session.key.session,
                    "the Agent no longer takes collected sessions; its session is not written");
                continue;
            };
            match writer::write_session(&dir, &session) {
                Ok(path) => {
                    shared.metrics.sessions_written.inc();
                    tracing::info!(agent = %session.key.agent, spans = session.spans, path = %path.display(), "session written");
                }
                Err(error) => {
                    shared.metrics.write_errors.inc();
                    tracing::warn!(agent = %session.key.agent, dir = %dir.display(), %error,
                        "cannot write a session; keeping it in memory and retrying");
                    failed.push(session);
                }
            }
        }
        failed
    })
    .await;
    outcome.unwrap_or_else(|e| {
        tracing::error!(error = %e, "the session writer panicked");
        Vec::new()
    })
}
