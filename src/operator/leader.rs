//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never both reconcile.
//!
//! The lease protocol itself is `kube-lease-manager`'s (server-side apply on the Lease, clock
//! skew tolerance, renew before expiry). This module adds what the operator needs around it:
//! knowing early whether another replica leads (for `/readyz`), and a signal when leadership is
//! lost, on which the process exits so a fresh start re-joins the election cleanly.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};

use super::health::{Health, Leadership};
use crate::metrics::Metrics;

/// Seconds a lease stays valid after its last renewal.
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// How long before expiry the holder renews.
pub const LEASE_GRACE_SECONDS: u64 = 5;

/// Where and as whom this replica takes part in the election.
#[derive(Clone, Debug)]
pub struct ElectionConfig {
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
}

/// Who a Lease says leads right now, seen from `identity` at `now`.
pub fn leadership_from_lease(lease: &Lease, identity: &str, now: Timestamp) -> Leadership {
    let Some(spec) = &lease.spec else {
        return Leadership::Unknown;
    };
    let Some(holder) = spec.holder_identity.as_deref().filter(|h| !h.is_empty()) else {
        return Leadership::Unknown;
    };
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(duration)) => renewed.0.as_second() + i64::from(duration) < now.as_second(),
        _ => true,
    };
    match (holder == identity, expired) {
        (true, false) => Leadership::Leader,
        (false, false) => Leadership::Follower,
        _ => Leadership::Unknown,
    }
}

/// Joins the election and resolves once this replica leads. Meanwhile it reports a live
/// holder as `Follower`. The returned manager must be kept (renewing) while leading.
pub async fn acquire(
    client: Client,
    config: &ElectionConfig,
    health: Arc<Health>,
) -> Result<Arc<LeaseManager>, kube_lease_manager::LeaseManagerError> {
    let manager = Arc::new(
        LeaseManagerBuilder::new(client.clone(), &config.lease_name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(LEASE_DURATION_SECONDS)
            .with_grace(LEASE_GRACE_SECONDS)
            .build()
            .await?,
    );
    if let Ok(lease) = Api::<Lease>::namespaced(client, &config.namespace)
        .get(&config.lease_name)
        .await
        && leadership_from_lease(&lease, &config.identity, Timestamp::now()) == Leadership::Follower
    {
        tracing::info!(holder = ?lease.spec.and_then(|s| s.holder_identity), "another replica leads; standing by");
        health.set_leadership(Leadership::Follower);
    }
    loop {
        if manager.changed().await? {
            health.set_leadership(Leadership::Leader);
            tracing::info!(identity = %config.identity, "acquired the leader lease");
            return Ok(manager);
        }
    }
}

/// Keeps renewing the lease; resolves when leadership is lost (or renewal fails for longer
/// than the lease lasts), after which the caller must stop acting.
pub async fn hold(manager: Arc<LeaseManager>, metrics: Arc<Metrics>) -> String {
    metrics.set_leader(true);
    let reason = loop {
        match manager.changed().await {
            Ok(true) => continue,
            Ok(false) => break "another replica took the leader lease".to_string(),
            Err(error) => break format!("could not renew the leader lease: {error}"),
        }
    };
    metrics.set_leader(false);
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: &str, renewed: i64) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
                lease_duration_seconds: Some(15),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_live_lease_names_the_leader() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert_eq!(leadership_from_lease(&lease("me", 990), "me", now), Leadership::Leader);
        assert_eq!(
            leadership_from_lease(&lease("other", 990), "me", now),
            Leadership::Follower
        );
    }

    #[test]
    fn an_expired_or_empty_lease_decides_nothing() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert_eq!(
            leadership_from_lease(&lease("other", 900), "me", now),
            Leadership::Unknown
        );
        assert_eq!(leadership_from_lease(&lease("", 990), "me", now), Leadership::Unknown);
        assert_eq!(leadership_from_lease(&Lease::default(), "me", now), Leadership::Unknown);
    }
}
