//! Container states as process-node tracks them, and the `PodStatus` reported for them.
//! Pure: time is passed in.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// How a container run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: Option<String>,
}

impl Term {
    pub fn from_api(t: &ContainerStateTerminated) -> Term {
        Term {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: t.reason.clone().unwrap_or_default(),
            message: t.message.clone(),
            started_at: t.started_at.as_ref().map(|t| t.0),
            finished_at: t.finished_at.as_ref().map(|t| t.0).unwrap_or_else(Timestamp::now),
            container_id: t.container_id.clone(),
        }
    }

    fn to_api(&self) -> ContainerStateTerminated {
        ContainerStateTerminated {
            exit_code: self.exit_code,
            signal: self.signal,
            reason: Some(self.reason.clone()).filter(|r| !r.is_empty()),
            message: self.message.clone().filter(|m| !m.is_empty()),
            started_at: self.started_at.map(Time),
            finished_at: Some(Time(self.finished_at)),
            container_id: self.container_id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: Timestamp, pgid: i32 },
    Terminated(Term),
}

/// One container (init or regular) of a pod.
#[derive(Debug, Clone)]
pub struct Slot {
    pub name: String,
    pub image: String,
    pub init: bool,
    pub state: State,
    pub last: Option<Term>,
    pub restarts: i32,
    /// Incremented at every start; events of older runs are ignored.
    pub run: u64,
    pub restart_pending: bool,
}

impl Slot {
    pub fn new(name: &str, image: &str, init: bool, reason: &str) -> Slot {
        Slot {
            name: name.to_string(),
            image: image.to_string(),
            init,
            state: State::Waiting {
                reason: reason.to_string(),
                message: None,
            },
            last: None,
            restarts: 0,
            run: 0,
            restart_pending: false,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    pub fn exit_code(&self) -> Option<i32> {
        match &self.state {
            State::Terminated(t) => Some(t.exit_code),
            _ => None,
        }
    }

    fn to_api(&self) -> ContainerStatus {
        let (state, ready, started, container_id) = match &self.state {
            State::Waiting { reason, message } => (
                ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(reason.clone()),
                        message: message.clone(),
                    }),
                    ..Default::default()
                },
                false,
                false,
                None,
            ),
            State::Running { started_at, pgid } => (
                ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(Time(*started_at)),
                    }),
                    ..Default::default()
                },
                !self.init,
                true,
                Some(container_id(*pgid)),
            ),
            State::Terminated(t) => (
                ContainerState {
                    terminated: Some(t.to_api()),
                    ..Default::default()
                },
                self.init && t.exit_code == 0,
                false,
                t.container_id.clone(),
            ),
        };
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: String::new(),
            container_id,
            ready,
            started: Some(started),
            restart_count: self.restarts,
            state: Some(state),
            last_state: self.last.as_ref().map(|t| ContainerState {
                terminated: Some(t.to_api()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

pub fn container_id(pgid: i32) -> String {
    format!("process-node://{pgid}")
}

/// `restartPolicy` semantics for a container that exited with `code`.
pub fn should_restart(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// Restart delay: doubling from 1 s, capped at 30 s (the kubelet's 10 s … 5 min, scaled down
/// for tests), back to 1 s after a run of a minute or more.
pub fn backoff_secs(restarts: i32, last_run_secs: i64) -> u64 {
    if last_run_secs >= 60 {
        return 1;
    }
    (1u64 << restarts.clamp(0, 5)).min(30)
}

/// Given the regular containers, has the pod finished? `Some("Succeeded" | "Failed")` once
/// every container has terminated and none is waiting for a restart.
pub fn terminal_phase(main: &[&Slot]) -> Option<&'static str> {
    if main.is_empty() {
        return None;
    }
    if main
        .iter()
        .all(|s| !s.restart_pending && matches!(s.state, State::Terminated(_)))
    {
        if main.iter().all(|s| s.exit_code() == Some(0)) {
            Some("Succeeded")
        } else {
            Some("Failed")
        }
    } else {
        None
    }
}

/// What the worker knows about the pod as a whole.
#[derive(Debug, Clone)]
pub struct View<'a> {
    pub phase: &'a str,
    pub reason: Option<&'a str>,
    pub message: Option<&'a str>,
    /// All init containers have succeeded.
    pub initialized: bool,
    pub start_time: Option<Timestamp>,
    pub slots: &'a [Slot],
    pub ip: &'a str,
}

fn condition(old: Option<&PodStatus>, kind: &str, ok: bool, reason: Option<&str>, now: Timestamp) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let previous = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind));
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    PodCondition {
        type_: kind.to_string(),
        status: status.to_string(),
        reason: if ok { None } else { reason.map(str::to_string) },
        last_transition_time,
        last_probe_time: None,
        ..Default::default()
    }
}

/// The full status to report (sent as a JSON merge patch of `status`).
pub fn build(view: &View, old: Option<&PodStatus>, now: Timestamp) -> PodStatus {
    let main: Vec<&Slot> = view.slots.iter().filter(|s| !s.init).collect();
    let terminal = matches!(view.phase, "Succeeded" | "Failed");
    let all_running = !main.is_empty() && main.iter().all(|s| s.is_running());
    let ready = view.phase == "Running" && all_running;
    let not_ready_reason = if terminal { "PodCompleted" } else { "ContainersNotReady" };
    let conditions = vec![
        condition(
            old,
            "Initialized",
            view.initialized,
            Some("ContainersNotInitialized"),
            now,
        ),
        condition(old, "Ready", ready, Some(not_ready_reason), now),
        condition(old, "ContainersReady", ready, Some(not_ready_reason), now),
        condition(old, "PodScheduled", true, None, now),
    ];
    let init: Vec<ContainerStatus> = view.slots.iter().filter(|s| s.init).map(Slot::to_api).collect();
    PodStatus {
        phase: Some(view.phase.to_string()),
        reason: view.reason.map(str::to_string),
        message: view.message.map(str::to_string),
        conditions: Some(conditions),
        host_ip: Some(view.ip.to_string()),
        pod_ip: Some(view.ip.to_string()),
        pod_ips: Some(vec![PodIP {
            ip: view.ip.to_string(),
        }]),
        start_time: view.start_time.map(Time),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(main.iter().map(|s| s.to_api()).collect()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn term(code: i32) -> Term {
        Term {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: (code != 0).then(|| "boom".to_string()),
            started_at: Some(ts(10)),
            finished_at: ts(20),
            container_id: Some(container_id(42)),
        }
    }

    fn slot(name: &str, init: bool, state: State) -> Slot {
        Slot {
            state,
            ..Slot::new(name, "img", init, "PodInitializing")
        }
    }

    #[test]
    fn restart_policy_and_backoff() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("Always", 1));
        assert!(should_restart("OnFailure", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(!should_restart("Never", 1));
        assert_eq!(backoff_secs(0, 0), 1);
        assert_eq!(backoff_secs(3, 0), 8);
        assert_eq!(backoff_secs(10, 0), 30);
        assert_eq!(backoff_secs(10, 120), 1);
    }

    #[test]
    fn terminal_phase_needs_every_container_done() {
        let ok = slot("a", false, State::Terminated(term(0)));
        let bad = slot("b", false, State::Terminated(term(1)));
        let running = slot(
            "c",
            false,
            State::Running {
                started_at: ts(1),
                pgid: 7,
            },
        );
        assert_eq!(terminal_phase(&[&ok]), Some("Succeeded"));
        assert_eq!(terminal_phase(&[&ok, &bad]), Some("Failed"));
        assert_eq!(terminal_phase(&[&ok, &running]), None);
        let mut pending = bad.clone();
        pending.restart_pending = true;
        assert_eq!(terminal_phase(&[&pending]), None);
        assert_eq!(terminal_phase(&[]), None);
    }

    #[test]
    fn running_pod_status_is_ready() {
        let slots = vec![
            slot("init", true, State::Terminated(term(0))),
            slot(
                "main",
                false,
                State::Running {
                    started_at: ts(30),
                    pgid: 99,
                },
            ),
        ];
        let view = View {
            phase: "Running",
            reason: None,
            message: None,
            initialized: true,
            start_time: Some(ts(5)),
            slots: &slots,
            ip: "127.0.0.1",
        };
        let status = build(&view, None, ts(40));
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("127.0.0.1"));
        let conds = status.conditions.clone().unwrap();
        assert!(conds.iter().all(|c| c.status == "True"), "{conds:?}");
        let init = &status.init_container_statuses.as_ref().unwrap()[0];
        assert!(init.ready);
        assert_eq!(init.state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 0);
        let main = &status.container_statuses.as_ref().unwrap()[0];
        assert!(main.ready);
        assert_eq!(main.container_id.as_deref(), Some("process-node://99"));
        assert!(main.state.as_ref().unwrap().running.is_some());

        // Same conditions later: transition times are kept.
        let later = build(&view, Some(&status), ts(100));
        assert_eq!(later.conditions, status.conditions);

        // The JSON carries only what the process node knows (no hostIPs: there is no host network).
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["podIPs"][0]["ip"], "127.0.0.1");
        assert_eq!(json["startTime"], "1970-01-01T00:00:05Z");
        assert!(json.get("hostIPs").is_none());
    }

    #[test]
    fn failed_pod_reports_exit_codes_and_not_ready() {
        let mut failed = slot("main", false, State::Terminated(term(3)));
        failed.restarts = 2;
        failed.last = Some(term(1));
        let slots = vec![failed];
        let running_conds = build(
            &View {
                phase: "Running",
                reason: None,
                message: None,
                initialized: true,
                start_time: Some(ts(5)),
                slots: &[slot(
                    "main",
                    false,
                    State::Running {
                        started_at: ts(6),
                        pgid: 5,
                    },
                )],
                ip: "127.0.0.1",
            },
            None,
            ts(7),
        );
        let status = build(
            &View {
                phase: "Failed",
                reason: None,
                message: Some("container main failed"),
                initialized: true,
                start_time: Some(ts(5)),
                slots: &slots,
                ip: "127.0.0.1",
            },
            Some(&running_conds),
            ts(50),
        );
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        let t = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(t.exit_code, 3);
        assert_eq!(t.message.as_deref(), Some("boom"));
        assert_eq!(cs.restart_count, 2);
        assert!(cs.last_state.as_ref().unwrap().terminated.is_some());
        let ready = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
        assert_eq!(ready.last_transition_time, Some(Time(ts(50))));
        assert!(status.init_container_statuses.is_none());
    }
}
