//! What `/readyz` reports: whether leadership is known and, on the leader, whether the
//! controllers' caches are synced.

use std::sync::atomic::{AtomicU8, Ordering};

/// This replica's view of the leader election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Leadership {
    /// The election has not answered yet.
    Unknown = 0,
    /// This replica holds the Lease and runs the controllers.
    Leader = 1,
    /// Another replica holds the Lease; this one waits on standby.
    Follower = 2,
}

/// Shared, lock-free health state of the process.
#[derive(Default)]
pub struct Health {
    leadership: AtomicU8,
    caches_synced: std::sync::atomic::AtomicBool,
}

impl Health {
    pub fn set_leadership(&self, leadership: Leadership) {
        self.leadership.store(leadership as u8, Ordering::Release);
    }

    pub fn leadership(&self) -> Leadership {
        match self.leadership.load(Ordering::Acquire) {
            1 => Leadership::Leader,
            2 => Leadership::Follower,
            _ => Leadership::Unknown,
        }
    }

    pub fn set_caches_synced(&self, synced: bool) {
        self.caches_synced.store(synced, Ordering::Release);
    }

    /// Ready once leadership is known and, when leading, the controller caches are synced.
    /// A follower is ready: it is a healthy standby that can take over.
    pub fn readiness(&self) -> Result<&'static str, &'static str> {
        match self.leadership() {
            Leadership::Unknown => Err("leader election has not answered yet"),
            Leadership::Follower => Ok("standby: another replica holds the leader lease"),
            Leadership::Leader if self.caches_synced.load(Ordering::Acquire) => Ok("leader: controllers running"),
            Leadership::Leader => Err("leader: waiting for controller caches to sync"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_leadership_and_caches() {
        let health = Health::default();
        assert!(health.readiness().is_err());
        health.set_leadership(Leadership::Follower);
        assert!(health.readiness().is_ok());
        health.set_leadership(Leadership::Leader);
        assert_eq!(health.readiness(), Err("leader: waiting for controller caches to sync"));
        health.set_caches_synced(true);
        assert!(health.readiness().is_ok());
    }
}
