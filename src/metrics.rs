//! Prometheus metrics of the operator, exposed on `/metrics` in the OpenMetrics text format.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    pub trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: &'static str,
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// Suspected injections are counted per agent and risk class: an attack on one agent shows as
/// one series rising.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InjectionLabels {
    pub namespace: String,
    pub agent: String,
    pub class: String,
}

/// Lessons are counted per agent and verdict of their measured effect.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LessonLabels {
    pub namespace: String,
    pub agent: String,
    pub verdict: &'static str,
}

/// Every metric the operator exports, registered once in one registry.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    failures: Family<ErrorLabels, Counter>,
    duration: Family<ControllerLabels, Histogram>,
    leader: Gauge,
    dreams_started: Family<TriggerLabels, Counter>,
    dreams_finished: Family<ResultLabels, Counter>,
    proposal_phases: Family<PhaseLabels, Counter>,
    changes_applied: Family<OpLabels, Counter>,
    suspected_injections: Family<InjectionLabels, Counter>,
    lessons: Family<LessonLabels, Gauge>,
    decision_seconds: Histogram,
    apply_seconds: Histogram,
    api_requests: Family<RequestLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("reverie");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            // 1 ms .. ~16 s: reconciles are API round trips, a few ms on a healthy cluster.
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "Reconciliations started, per controller",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, per controller and error kind",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time a reconciliation took, per controller",
            duration.clone(),
        );
        registry.register("leader", "1 while this replica holds the leader Lease", leader.clone());
        let dreams_started = Family::<TriggerLabels, Counter>::default();
        let dreams_finished = Family::<ResultLabels, Counter>::default();
        registry.register(
            "dream_jobs_started",
            "Dream Jobs created, per trigger (schedule or dream-now)",
            dreams_started.clone(),
        );
        registry.register(
            "dream_jobs_finished",
            "Dream Jobs seen finished, per result (Succeeded or Failed)",
            dreams_finished.clone(),
        );
        let suspected_injections = Family::<InjectionLabels, Counter>::default();
        registry.register(
            "suspected_injections",
            "Texts a dream pass refused to propose for their risk class (a suspected injection), per agent and class, counted in distinct sessions",
            suspected_injections.clone(),
        );
        let lessons = Family::<LessonLabels, Gauge>::default();
        registry.register(
            "lessons",
            "The agent's lessons by the verdict of their measured effect (effective, no-effect, regressed, too-early), as of its latest dream pass",
            lessons.clone(),
        );
        let proposal_phases = Family::<PhaseLabels, Counter>::default();
        let changes_applied = Family::<OpLabels, Counter>::default();
        // 1 s .. ~12 days: people decide in minutes to days.
        let decision_seconds = Histogram::new(exponential_buckets(1.0, 4.0, 10));
        // 1 ms .. ~16 s: an apply is a few API round trips.
        let apply_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "proposal_transitions",
            "MemoryProposals entering each phase",
            proposal_phases.clone(),
        );
        registry.register(
            "changes_applied",
            "Memory changes applied from approved proposals, per operation",
            changes_applied.clone(),
        );
        registry.register(
            "proposal_decision_seconds",
            "Time from a proposal's creation to its decision (approval, policy or rejection)",
            decision_seconds.clone(),
        );
        registry.register(
            "proposal_apply_seconds",
            "Time to apply an approved proposal to memory once the decision was seen",
            apply_seconds.clone(),
        );
        let api_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Requests sent to the Kubernetes API server, per verb and resource",
            api_requests.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            duration,
            leader,
            dreams_started,
            dreams_finished,
            proposal_phases,
            changes_applied,
            suspected_injections,
            lessons,
            decision_seconds,
            apply_seconds,
            api_requests,
        }
    }
}

impl Metrics {
    pub fn api_request(&self, verb: &'static str, resource: &str) {
        let labels = RequestLabels {
            verb,
            resource: resource.to_string(),
        };
        self.api_requests.get_or_create(&labels).inc();
    }

    pub fn reconcile_started(&self, controller: &'static str) {
        self.reconciles.get_or_create(&ControllerLabels { controller }).inc();
    }

    pub fn reconcile_finished(&self, controller: &'static str, took: Duration) {
        self.duration
            .get_or_create(&ControllerLabels { controller })
            .observe(took.as_secs_f64());
    }

    pub fn reconcile_failed(&self, controller: &'static str, error: &'static str) {
        self.failures.get_or_create(&ErrorLabels { controller, error }).inc();
    }

    pub fn dream_started(&self, trigger: &'static str) {
        self.dreams_started.get_or_create(&TriggerLabels { trigger }).inc();
    }

    pub fn dream_finished(&self, result: &'static str) {
        self.dreams_finished.get_or_create(&ResultLabels { result }).inc();
    }

    pub fn suspected_injection(&self, namespace: &str, agent: &str, class: &str, sessions: u32) {
        self.suspected_injections
            .get_or_create(&InjectionLabels {
                namespace: namespace.to_string(),
                agent: agent.to_string(),
                class: class.to_string(),
            })
            .inc_by(u64::from(sessions));
    }

    /// Sets the agent's lesson counts per verdict (every verdict, so a count that fell to zero
    /// reads zero).
    pub fn lesson_effects(&self, namespace: &str, agent: &str, counts: &crate::api::dream_job::LessonCounts) {
        let by_verdict = [
            ("effective", counts.effective),
            ("no-effect", counts.no_effect),
            ("regressed", counts.regressed),
            ("too-early", counts.too_early),
        ];
        for (verdict, count) in by_verdict {
            self.lessons
                .get_or_create(&LessonLabels {
                    namespace: namespace.to_string(),
                    agent: agent.to_string(),
                    verdict,
                })
                .set(i64::from(count));
        }
    }

    pub fn proposal_phase(&self, phase: &'static str) {
        self.proposal_phases.get_or_create(&PhaseLabels { phase }).inc();
    }

    pub fn proposal_decided(&self, seconds: f64) {
        self.decision_seconds.observe(seconds);
    }

    pub fn proposal_applied(&self, took: Duration, ops: impl Iterator<Item = &'static str>) {
        self.apply_seconds.observe(took.as_secs_f64());
        for op in ops {
            self.changes_applied.get_or_create(&OpLabels { op }).inc();
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_carries_per_controller_series() {
        let metrics = Metrics::default();
        metrics.reconcile_started("agent");
        metrics.reconcile_finished("agent", Duration::from_millis(3));
        metrics.reconcile_failed("agent", "kube_api");
        metrics.set_leader(true);
        let text = metrics.encode();
        assert!(
            text.contains("reverie_reconciles_total{controller=\"agent\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("reverie_reconcile_errors_total{controller=\"agent\",error=\"kube_api\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("reverie_reconcile_duration_seconds_count{controller=\"agent\"} 1"),
            "{text}"
        );
        assert!(text.contains("reverie_leader 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
