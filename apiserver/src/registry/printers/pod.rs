//! The Pod table: NAME READY STATUS RESTARTS AGE, and with `-o wide` IP NODE
//! NOMINATED NODE READINESS GATES. STATUS is `printPod`'s aggregate of the
//! pod phase, init containers and containers (`Init:1/2`,
//! `CrashLoopBackOff`, `Completed`, `Terminating`, ...).

use std::collections::HashSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod, PodCondition};
use serde_json::Value;

use super::descriptions as doc;
use super::format::{self, NONE};
use super::{AGE, NAME, age_cell, name_cell};
use crate::registry::{Column, Printer};

/// `node.NodeUnreachablePodReason`: set by the node lifecycle controller on
/// pods of a node that stopped reporting.
const NODE_UNREACHABLE_POD_REASON: &str = "NodeLost";

impl Printer for Pod {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            Column::new(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            Column::new(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            Column::new("IP", "string", 1, doc::POD_STATUS_POD_IP),
            Column::new("Node", "string", 1, doc::POD_SPEC_NODE_NAME),
            Column::new(
                "Nominated Node",
                "string",
                1,
                doc::POD_STATUS_NOMINATED_NODE_NAME,
            ),
            Column::new(
                "Readiness Gates",
                "string",
                1,
                doc::POD_SPEC_READINESS_GATES,
            ),
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let summary = summarize(self);
        let restarts = match summary.last_restart {
            Some(at) if summary.restarts != 0 => {
                format!(
                    "{} ({} ago)",
                    summary.restarts,
                    format::since(Some(at), now)
                )
            }
            _ => summary.restarts.to_string(),
        };
        let spec = self.spec.as_ref();
        let status = self.status.as_ref();
        let node = spec
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default();
        let nominated = status
            .and_then(|s| s.nominated_node_name.as_deref())
            .unwrap_or_default();
        vec![
            name_cell(&self.metadata),
            Value::from(format!("{}/{}", summary.ready, summary.total)),
            Value::from(summary.reason),
            Value::from(restarts),
            age_cell(&self.metadata, now),
            Value::from(or_none(pod_ip(self))),
            Value::from(or_none(node)),
            Value::from(or_none(nominated)),
            Value::from(readiness_gates(self)),
        ]
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { NONE } else { s }
}

/// What `printPod` derives from the container statuses.
struct Summary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

fn summarize(pod: &Pod) -> Summary {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let init_specs = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let init_statuses = status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or_default();
    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();

    // Sidecars (init containers with restartPolicy Always) keep running
    // beside the app containers and count towards READY.
    let sidecars: HashSet<&str> = init_specs
        .iter()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let total = spec.map_or(0, |s| s.containers.len())
        + init_specs
            .iter()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"))
            .count();

    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or_default();
    let status_reason = status.and_then(|s| s.reason.as_deref()).unwrap_or_default();
    let mut reason = if status_reason.is_empty() {
        phase.to_string()
    } else {
        status_reason.to_string()
    };
    if conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
    {
        reason = "SchedulingGated".to_string();
    }

    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;
    let mut initializing = false;
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += i64::from(c.restart_count);
        let finished = last_finished_at(c);
        last_restart = later(last_restart, finished);
        let is_sidecar = sidecars.contains(c.name.as_str());
        if is_sidecar {
            sidecar_restarts += i64::from(c.restart_count);
            last_sidecar_restart = later(last_sidecar_restart, finished);
        }
        let state = c.state.as_ref();
        let terminated = state.and_then(|s| s.terminated.as_ref());
        if terminated.is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if is_sidecar && c.started == Some(true) {
            if c.ready {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match t.reason.as_deref().unwrap_or_default() {
                "" if t.signal.unwrap_or(0) != 0 => {
                    format!("Init:Signal:{}", t.signal.unwrap_or(0))
                }
                "" => format!("Init:ExitCode:{}", t.exit_code),
                r => format!("Init:{r}"),
            }
        } else if let Some(r) = waiting_reason(state).filter(|r| *r != "PodInitializing") {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        // Walked backwards so the first container's state wins, as in printPod.
        for c in statuses.iter().rev() {
            restarts += i64::from(c.restart_count);
            last_restart = later(last_restart, last_finished_at(c));
            let state = c.state.as_ref();
            if let Some(r) = waiting_reason(state) {
                reason = r.to_string();
            } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
                reason = match t.reason.as_deref().unwrap_or_default() {
                    "" if t.signal.unwrap_or(0) != 0 => {
                        format!("Signal:{}", t.signal.unwrap_or(0))
                    }
                    "" => format!("ExitCode:{}", t.exit_code),
                    r => r.to_string(),
                };
            } else if c.ready && state.is_some_and(|s| s.running.is_some()) {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container state is Completed but that still has
        // a running container is shown by its readiness instead.
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        if status_reason == NODE_UNREACHABLE_POD_REASON {
            reason = "Unknown".to_string();
        } else if phase != "Failed" && phase != "Succeeded" {
            reason = "Terminating".to_string();
        }
    }

    Summary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

/// A non-empty waiting reason of a container state.
fn waiting_reason(state: Option<&ContainerState>) -> Option<&str> {
    state
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref())
        .filter(|r| !r.is_empty())
}

/// When the previous run of a container ended, if it was restarted.
fn last_finished_at(c: &ContainerStatus) -> Option<Timestamp> {
    c.last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.finished_at.as_ref())
        .map(|t| t.0)
}

fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Whether the first condition of `type_` has status True
/// (`isPodInitializedConditionTrue`, `hasPodReadyCondition`).
fn condition_true(conditions: &[PodCondition], type_: &str) -> bool {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .is_some_and(|c| c.status == "True")
}

/// The pod's first IP. Kubernetes' v1-to-internal conversion makes `podIP`
/// authoritative over `podIPs[0]` when both are set.
fn pod_ip(pod: &Pod) -> &str {
    let Some(status) = pod.status.as_ref() else {
        return "";
    };
    match status.pod_ip.as_deref() {
        Some(ip) if !ip.is_empty() => ip,
        _ => status
            .pod_ips
            .as_deref()
            .and_then(|ips| ips.first())
            .map(|ip| ip.ip.as_str())
            .unwrap_or_default(),
    }
}

/// `true/total` readiness gates, or `<none>` when the pod has none.
fn readiness_gates(pod: &Pod) -> String {
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or_default();
    if gates.is_empty() {
        return NONE.to_string();
    }
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let passing = gates
        .iter()
        .filter(|g| condition_true(conditions, &g.condition_type))
        .count();
    format!("{passing}/{}", gates.len())
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
