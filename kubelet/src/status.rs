//! Pod status from what the kubelet knows about its containers: the phase
//! by Kubernetes' `getPhase` rules (init containers included), the five
//! standard conditions with Kubernetes' reasons and messages (transition
//! times kept from the previous status while unchanged),
//! `initContainerStatuses` and `containerStatuses` with `ready` and
//! `started` as the probes decided. Pure, so every rule is tested without
//! a runtime.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// One finished run of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Terminated {
    pub id: String,
    pub exit_code: i32,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// The memory cgroup killed it for exceeding its limit.
    pub oom_killed: bool,
}

impl Terminated {
    /// `OOMKilled`, else `Completed` for exit 0, else `Error`.
    pub fn reason(&self) -> &'static str {
        if self.oom_killed {
            "OOMKilled"
        } else if self.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

/// Where a container is now.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        id: String,
        started_at: Timestamp,
    },
    Terminated(Terminated),
}

/// What the kubelet tracks per container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRecord {
    pub name: String,
    /// The image as the pod spec wrote it.
    pub image: String,
    /// The resolved image reference (`docker.io/library/busybox:latest`).
    pub image_id: String,
    pub restart_count: i32,
    pub state: RunState,
    pub last_terminated: Option<Terminated>,
    /// The startup probe succeeded (or there is none) for the running attempt.
    pub started: bool,
    /// The readiness probe succeeded (or there is none) for the running attempt.
    pub ready: bool,
}

impl ContainerRecord {
    fn running(&self) -> bool {
        matches!(self.state, RunState::Running { .. })
    }

    /// An init container that ran to success (now, or in its last run
    /// while a restart waits: Kubernetes counts both as done).
    pub fn succeeded(&self) -> bool {
        match &self.state {
            RunState::Terminated(t) => t.exit_code == 0,
            RunState::Waiting { .. } => self
                .last_terminated
                .as_ref()
                .is_some_and(|t| t.exit_code == 0),
            RunState::Running { .. } => false,
        }
    }
}

/// Inputs besides the containers.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    pub restart_policy: String,
    pub host_ip: String,
    pub pod_ip: Option<String>,
    pub start_time: Option<Timestamp>,
    pub now: Option<Timestamp>,
    /// The pod's network is up (`PodReadyToStartContainers`).
    pub sandbox_ready: bool,
    /// Every init container has succeeded (`Initialized`); the worker
    /// decides, as it also knows pods initialized before it started.
    pub initialized: bool,
}

/// Kubernetes times have second precision; equal statuses must compare equal.
pub fn seconds(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// The phase by the kubelet's `getPhase`: a failed init container fails
/// the pod under `restartPolicy: Never`; a pending one keeps it Pending.
pub fn phase(
    init: &[ContainerRecord],
    containers: &[ContainerRecord],
    restart_policy: &str,
) -> &'static str {
    let (mut pending_init, mut failed_init) = (0, 0);
    for c in init {
        match (&c.state, &c.last_terminated) {
            (RunState::Running { .. }, _) => pending_init += 1,
            (RunState::Terminated(t), _) | (RunState::Waiting { .. }, Some(t)) => {
                if t.exit_code != 0 {
                    failed_init += 1;
                }
            }
            (RunState::Waiting { .. }, None) => pending_init += 1,
        }
    }
    if failed_init > 0 && restart_policy == "Never" {
        return "Failed";
    }
    let any_started = containers
        .iter()
        .any(|c| !matches!(c.state, RunState::Waiting { .. }) || c.last_terminated.is_some());
    if pending_init > 0 && !any_started {
        return "Pending";
    }
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            RunState::Running { .. } => running += 1,
            RunState::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            RunState::Waiting { .. } => match &c.last_terminated {
                Some(t) => {
                    stopped += 1;
                    if t.exit_code == 0 {
                        succeeded += 1;
                    }
                }
                None => waiting += 1,
            },
        }
    }
    if containers.is_empty() || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    match restart_policy {
        "Never" if stopped != succeeded => "Failed",
        "Never" => "Succeeded",
        "OnFailure" if stopped == succeeded => "Succeeded",
        _ => "Running",
    }
}

fn state(run: &RunState) -> ContainerState {
    match run {
        RunState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..ContainerState::default()
        },
        RunState::Running { started_at, .. } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(seconds(*started_at)),
            }),
            ..ContainerState::default()
        },
        RunState::Terminated(t) => ContainerState {
            terminated: Some(terminated(t)),
            ..ContainerState::default()
        },
    }
}

fn terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        container_id: Some(format!("containerd://{}", t.id)),
        exit_code: t.exit_code,
        reason: Some(t.reason().into()),
        started_at: t.started_at.map(seconds),
        finished_at: t.finished_at.map(seconds),
        ..ContainerStateTerminated::default()
    }
}

fn container_status(c: &ContainerRecord, init: bool) -> ContainerStatus {
    let running = c.running();
    // Init containers are ready once they have run to success.
    let ready = if init {
        matches!(&c.state, RunState::Terminated(t) if t.exit_code == 0)
    } else {
        running && c.started && c.ready
    };
    let id = match &c.state {
        RunState::Running { id, .. } => Some(id.clone()),
        RunState::Terminated(t) => Some(t.id.clone()),
        RunState::Waiting { .. } => c.last_terminated.as_ref().map(|t| t.id.clone()),
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id: id.map(|id| format!("containerd://{id}")),
        ready,
        started: Some(running && c.started),
        restart_count: c.restart_count,
        state: Some(state(&c.state)),
        last_state: Some(
            c.last_terminated
                .as_ref()
                .map(|t| ContainerState {
                    terminated: Some(terminated(t)),
                    ..ContainerState::default()
                })
                .unwrap_or_default(),
        ),
        ..ContainerStatus::default()
    }
}

/// `[a b]`, as Kubernetes lists container names in condition messages.
fn names(list: &[&str]) -> String {
    format!("[{}]", list.join(" "))
}

/// The full status; `previous` supplies unchanged conditions' transition times.
pub fn pod_status(
    init: &[ContainerRecord],
    containers: &[ContainerRecord],
    facts: &PodFacts,
    previous: Option<&PodStatus>,
) -> PodStatus {
    let phase = phase(init, containers, &facts.restart_policy);
    let now = facts.now.unwrap_or_else(Timestamp::now);
    let unready: Vec<&str> = containers
        .iter()
        .filter(|c| !(c.running() && c.started && c.ready))
        .map(|c| c.name.as_str())
        .collect();
    let terminal = phase == "Succeeded" || phase == "Failed";
    let (ready, reason, message) = if unready.is_empty() && !containers.is_empty() {
        ("True", None, None)
    } else if terminal && phase == "Succeeded" {
        ("False", Some("PodCompleted"), None)
    } else if phase == "Failed" {
        ("False", Some("PodFailed"), None)
    } else {
        (
            "False",
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: {}",
                names(&unready)
            )),
        )
    };
    let incomplete: Vec<&str> = init
        .iter()
        .filter(|c| !c.succeeded())
        .map(|c| c.name.as_str())
        .collect();
    let (initialized, init_reason, init_message) = if phase == "Succeeded" {
        ("True", Some("PodCompleted"), None)
    } else if facts.initialized || incomplete.is_empty() {
        ("True", None, None)
    } else {
        (
            "False",
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                names(&incomplete)
            )),
        )
    };
    let condition = |type_: &str, status: &str, reason: Option<&str>, message: Option<String>| {
        let since = previous
            .and_then(|p| p.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| seconds(now));
        PodCondition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.map(str::to_string),
            message,
            last_transition_time: Some(since),
            ..PodCondition::default()
        }
    };
    let sandbox = if facts.sandbox_ready { "True" } else { "False" };
    let conditions = vec![
        condition("PodReadyToStartContainers", sandbox, None, None),
        condition("Initialized", initialized, init_reason, init_message),
        condition("Ready", ready, reason, message.clone()),
        condition("ContainersReady", ready, reason, message),
        condition("PodScheduled", "True", None, None),
    ];
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(facts.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: facts.host_ip.clone(),
        }]),
        pod_ip: facts.pod_ip.clone(),
        pod_ips: facts.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        start_time: facts.start_time.map(seconds),
        init_container_statuses: (!init.is_empty())
            .then(|| init.iter().map(|c| container_status(c, true)).collect()),
        container_statuses: Some(
            containers
                .iter()
                .map(|c| container_status(c, false))
                .collect(),
        ),
        qos_class: previous.and_then(|p| p.qos_class.clone()),
        ..PodStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: RunState, last: Option<i32>) -> ContainerRecord {
        ContainerRecord {
            name: "c".into(),
            image: "busybox".into(),
            image_id: "docker.io/library/busybox:latest".into(),
            restart_count: 0,
            state,
            last_terminated: last.map(|code| exited(code).clone()),
            started: true,
            ready: true,
        }
    }

    fn exited(code: i32) -> Terminated {
        Terminated {
            id: "id".into(),
            exit_code: code,
            started_at: None,
            finished_at: None,
            oom_killed: false,
        }
    }

    fn waiting() -> RunState {
        RunState::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        }
    }

    #[test]
    fn phase_follows_the_kubelet_rules() {
        let running = RunState::Running {
            id: "id".into(),
            started_at: Timestamp::UNIX_EPOCH,
        };
        let cases = [
            (vec![record(waiting(), None)], "Always", "Pending"),
            (vec![record(running.clone(), None)], "Never", "Running"),
            (
                vec![record(RunState::Terminated(exited(0)), None)],
                "Never",
                "Succeeded",
            ),
            (
                vec![record(RunState::Terminated(exited(3)), None)],
                "Never",
                "Failed",
            ),
            (
                vec![record(RunState::Terminated(exited(0)), None)],
                "OnFailure",
                "Succeeded",
            ),
            (
                vec![record(RunState::Terminated(exited(1)), None)],
                "OnFailure",
                "Running",
            ),
            (
                vec![record(RunState::Terminated(exited(0)), None)],
                "Always",
                "Running",
            ),
            (vec![record(waiting(), Some(1))], "Always", "Running"),
            (
                vec![
                    record(running, None),
                    record(RunState::Terminated(exited(3)), None),
                ],
                "Never",
                "Running",
            ),
            (vec![], "Always", "Pending"),
        ];
        for (containers, policy, want) in cases {
            assert_eq!(
                phase(&[], &containers, policy),
                want,
                "{containers:?} {policy}"
            );
        }
    }

    #[test]
    fn terminated_containers_report_exit_code_and_reason() {
        let c = record(RunState::Terminated(exited(3)), None);
        let status = pod_status(
            &[],
            &[c],
            &PodFacts {
                restart_policy: "Never".into(),
                host_ip: "10.0.0.1".into(),
                ..PodFacts::default()
            },
            None,
        );
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        let cs = &status.container_statuses.expect("statuses")[0];
        let t = cs
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .expect("terminated");
        assert_eq!(t.exit_code, 3);
        assert_eq!(t.reason.as_deref(), Some("Error"));
        assert_eq!(t.container_id.as_deref(), Some("containerd://id"));
        let ready = status
            .conditions
            .expect("conditions")
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready");
        assert_eq!(ready.reason.as_deref(), Some("PodFailed"));
    }

    #[test]
    fn reasons_distinguish_completion_error_and_oom_kill() {
        let mut t = exited(0);
        assert_eq!(t.reason(), "Completed");
        t.exit_code = 1;
        assert_eq!(t.reason(), "Error");
        t.exit_code = 137;
        t.oom_killed = true;
        assert_eq!(t.reason(), "OOMKilled");
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let facts = |secs| PodFacts {
            restart_policy: "Always".into(),
            host_ip: "h".into(),
            now: Some(Timestamp::from_second(secs).expect("ts")),
            ..PodFacts::default()
        };
        let first = pod_status(&[], &[record(waiting(), None)], &facts(10), None);
        let second = pod_status(&[], &[record(waiting(), None)], &facts(20), Some(&first));
        assert_eq!(first, second, "a status recomputed later is unchanged");
        let running = RunState::Running {
            id: "id".into(),
            started_at: Timestamp::from_second(15).expect("ts"),
        };
        let third = pod_status(&[], &[record(running, None)], &facts(30), Some(&second));
        let cond = |s: &PodStatus, t: &str| {
            s.conditions
                .as_ref()
                .and_then(|cs| cs.iter().find(|c| c.type_ == t).cloned())
                .expect("condition")
        };
        assert_eq!(cond(&third, "Ready").status, "True");
        assert_eq!(
            cond(&third, "Ready").last_transition_time,
            Some(seconds(facts(30).now.expect("now")))
        );
        assert_eq!(
            cond(&third, "PodScheduled").last_transition_time,
            cond(&first, "PodScheduled").last_transition_time
        );
    }

    fn named(name: &str, state: RunState, last: Option<i32>) -> ContainerRecord {
        ContainerRecord {
            name: name.into(),
            ..record(state, last)
        }
    }

    fn running() -> RunState {
        RunState::Running {
            id: "id".into(),
            started_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn condition(s: &PodStatus, t: &str) -> PodCondition {
        s.conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == t).cloned())
            .expect("condition")
    }

    #[test]
    fn init_containers_decide_the_phase_first() {
        let done = || RunState::Terminated(exited(0));
        let app = || vec![record(waiting(), None)];
        let cases = [
            // One running: Pending.
            (vec![named("a", running(), None)], "Always", "Pending"),
            // First done, second not started: Pending.
            (
                vec![named("a", done(), None), named("b", waiting(), None)],
                "Always",
                "Pending",
            ),
            // A failed init container under Never fails the pod.
            (
                vec![named("a", RunState::Terminated(exited(1)), None)],
                "Never",
                "Failed",
            ),
            // In back-off after a failure: still Pending otherwise.
            (vec![named("a", waiting(), Some(1))], "OnFailure", "Pending"),
        ];
        for (init, policy, want) in cases {
            assert_eq!(phase(&init, &app(), policy), want, "{init:?} {policy}");
        }
        let all_done = [named("a", done(), None), named("b", done(), None)];
        assert_eq!(
            phase(&all_done, &[record(running(), None)], "Always"),
            "Running"
        );
    }

    #[test]
    fn initialized_lists_incomplete_init_containers() {
        let init = [
            named("a", RunState::Terminated(exited(0)), None),
            named("b", running(), None),
            named("c", waiting(), None),
        ];
        let facts = PodFacts {
            restart_policy: "Always".into(),
            sandbox_ready: true,
            ..PodFacts::default()
        };
        let status = pod_status(&init, &[record(waiting(), None)], &facts, None);
        let c = condition(&status, "Initialized");
        assert_eq!(c.status, "False");
        assert_eq!(c.reason.as_deref(), Some("ContainersNotInitialized"));
        assert_eq!(
            c.message.as_deref(),
            Some("containers with incomplete status: [b c]")
        );
        assert_eq!(
            condition(&status, "PodReadyToStartContainers").status,
            "True"
        );
        let statuses = status.init_container_statuses.expect("init statuses");
        assert_eq!(
            statuses.iter().map(|s| s.ready).collect::<Vec<_>>(),
            vec![true, false, false],
            "a finished init container is ready"
        );
        assert_eq!(status.phase.as_deref(), Some("Pending"));
    }

    #[test]
    fn readiness_and_startup_drive_ready_and_started() {
        let facts = PodFacts {
            restart_policy: "Always".into(),
            sandbox_ready: true,
            initialized: true,
            ..PodFacts::default()
        };
        let mut web = named("web", running(), None);
        web.ready = false;
        let side = named("side", running(), None);
        let status = pod_status(&[], &[web.clone(), side.clone()], &facts, None);
        for t in ["Ready", "ContainersReady"] {
            let c = condition(&status, t);
            assert_eq!(c.status, "False");
            assert_eq!(c.reason.as_deref(), Some("ContainersNotReady"));
            assert_eq!(
                c.message.as_deref(),
                Some("containers with unready status: [web]")
            );
        }
        let cs = status.container_statuses.clone().expect("statuses");
        assert!(!cs[0].ready && cs[0].started == Some(true));
        assert!(cs[1].ready);

        web.ready = true;
        let status = pod_status(&[], &[web.clone(), side.clone()], &facts, Some(&status));
        assert_eq!(condition(&status, "Ready").status, "True");
        assert_eq!(condition(&status, "Ready").reason, None);

        // Not started (startup probe pending): neither started nor ready.
        web.started = false;
        let status = pod_status(&[], &[web, side], &facts, Some(&status));
        let cs = status.container_statuses.clone().expect("statuses");
        assert!(!cs[0].ready && cs[0].started == Some(false));
        assert_eq!(condition(&status, "Ready").status, "False");
    }
}
