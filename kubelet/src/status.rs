//! Pod status from what the kubelet knows about its containers: the phase
//! by Kubernetes' `getPhase` rules, the four standard conditions (with
//! transition times kept from the previous status while unchanged) and
//! `containerStatuses`. Pure, so every rule is tested without a runtime.

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
}

/// Inputs besides the containers.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    pub restart_policy: String,
    pub host_ip: String,
    pub pod_ip: Option<String>,
    pub start_time: Option<Timestamp>,
    pub now: Option<Timestamp>,
}

/// Kubernetes times have second precision; equal statuses must compare equal.
pub fn seconds(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// The phase by the kubelet's `getPhase` (regular containers only).
pub fn phase(containers: &[ContainerRecord], restart_policy: &str) -> &'static str {
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

fn container_status(c: &ContainerRecord) -> ContainerStatus {
    let running = matches!(c.state, RunState::Running { .. });
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
        ready: running,
        started: Some(running),
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

/// The full status; `previous` supplies unchanged conditions' transition times.
pub fn pod_status(
    containers: &[ContainerRecord],
    facts: &PodFacts,
    previous: Option<&PodStatus>,
) -> PodStatus {
    let phase = phase(containers, &facts.restart_policy);
    let now = facts.now.unwrap_or_else(Timestamp::now);
    let unready: Vec<&str> = containers
        .iter()
        .filter(|c| !matches!(c.state, RunState::Running { .. }))
        .map(|c| c.name.as_str())
        .collect();
    let terminal = phase == "Succeeded" || phase == "Failed";
    let (ready, reason, message) = if unready.is_empty() && !containers.is_empty() {
        ("True", None, None)
    } else if terminal {
        ("False", Some("PodCompleted"), None)
    } else {
        (
            "False",
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
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
    let conditions = vec![
        condition("PodReadyToStartContainers", "True", None, None),
        condition("Initialized", "True", None, None),
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
        container_statuses: Some(containers.iter().map(container_status).collect()),
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
            assert_eq!(phase(&containers, policy), want, "{containers:?} {policy}");
        }
    }

    #[test]
    fn terminated_containers_report_exit_code_and_reason() {
        let c = record(RunState::Terminated(exited(3)), None);
        let status = pod_status(
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
        assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
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
        let first = pod_status(&[record(waiting(), None)], &facts(10), None);
        let second = pod_status(&[record(waiting(), None)], &facts(20), Some(&first));
        assert_eq!(first, second, "a status recomputed later is unchanged");
        let running = RunState::Running {
            id: "id".into(),
            started_at: Timestamp::from_second(15).expect("ts"),
        };
        let third = pod_status(&[record(running, None)], &facts(30), Some(&second));
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
}
