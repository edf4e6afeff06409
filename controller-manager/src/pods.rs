//! Pod facts the workload controllers share (Kubernetes
//! `pkg/controller/controller_utils.go` and `pkg/api/v1/pod`): which pods
//! count as active, ready or available, and in which order a scale-down
//! deletes them.

use std::cmp::Ordering;
use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;

/// Not finished and not being deleted (`FilterActivePods`).
pub fn is_active(pod: &Pod) -> bool {
    let phase = phase(pod);
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn node(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// When the pod's `Ready` condition became true, if it is true.
pub fn ready_since(pod: &Pod) -> Option<Option<jiff::Timestamp>> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (cond.status == "True").then(|| cond.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` (`IsPodAvailable`). A ready pod
/// without a transition time counts as available, as in Kubernetes.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => true,
        Some(Some(t)) => t.as_second() + i64::from(min_ready_seconds) <= now.as_second(),
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

fn phase_rank(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

/// Orders `pods` so the ones to delete first come first, as Kubernetes'
/// `ActivePodsWithRanks` does: unscheduled before scheduled, pending before
/// running, not ready before ready, pods doubled up on a node (with more
/// related pods there) first, ready for less time first, more restarts
/// first, newer before older.
pub fn sort_for_deletion(pods: &mut [&Pod], related: &[&Pod]) {
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for p in related {
        if !node(p).is_empty() {
            *per_node.entry(node(p)).or_default() += 1;
        }
    }
    let rank = |p: &Pod| per_node.get(node(p)).copied().unwrap_or(0);
    pods.sort_by(|a, b| {
        let (sa, sb) = (!node(a).is_empty(), !node(b).is_empty());
        if sa != sb {
            return sa.cmp(&sb);
        }
        if phase_rank(a) != phase_rank(b) {
            return phase_rank(a).cmp(&phase_rank(b));
        }
        if is_ready(a) != is_ready(b) {
            return is_ready(a).cmp(&is_ready(b));
        }
        if rank(a) != rank(b) {
            return rank(b).cmp(&rank(a));
        }
        if let (Some(Some(ta)), Some(Some(tb))) = (ready_since(a), ready_since(b))
            && ta != tb
        {
            return tb.cmp(&ta);
        }
        if restarts(a) != restarts(b) {
            return restarts(b).cmp(&restarts(a));
        }
        let ca = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let cb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        match (ca, cb) {
            (Some(x), Some(y)) => y.cmp(&x),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str, phase: &str, ready: bool, created: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": if ready {"True"} else {"False"},
                 "lastTransitionTime": created}]},
        }))
        .expect("valid pod")
    }

    #[test]
    fn deletion_prefers_unscheduled_pending_unready_and_newer_pods() {
        let t1 = "2024-01-01T00:00:00Z";
        let t2 = "2024-01-02T00:00:00Z";
        let pods = [
            pod("old-ready", "n1", "Running", true, t1),
            pod("new-ready", "n2", "Running", true, t2),
            pod("unready", "n3", "Running", false, t1),
            pod("pending", "n4", "Pending", false, t1),
            pod("unscheduled", "", "Pending", false, t1),
        ];
        let mut refs: Vec<&Pod> = pods.iter().collect();
        refs.reverse();
        let related = refs.clone();
        sort_for_deletion(&mut refs, &related);
        let names: Vec<_> = refs
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "unscheduled",
                "pending",
                "unready",
                "new-ready",
                "old-ready"
            ]
        );
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod("p", "n", "Running", true, "2024-01-01T00:00:00Z");
        let at = |s: &str| s.parse::<jiff::Timestamp>().expect("timestamp");
        assert!(is_available(&p, 0, at("2024-01-01T00:00:00Z")));
        assert!(!is_available(&p, 10, at("2024-01-01T00:00:05Z")));
        assert!(is_available(&p, 10, at("2024-01-01T00:00:10Z")));
        let unready = pod("u", "n", "Running", false, "2024-01-01T00:00:00Z");
        assert!(!is_available(&unready, 0, at("2024-01-02T00:00:00Z")));
    }

    #[test]
    fn terminating_and_finished_pods_are_not_active() {
        let mut p = pod("p", "n", "Running", true, "2024-01-01T00:00:00Z");
        assert!(is_active(&p));
        p.metadata.deletion_timestamp = p.metadata.creation_timestamp.clone();
        assert!(!is_active(&p));
        let done = pod("d", "n", "Succeeded", false, "2024-01-01T00:00:00Z");
        assert!(!is_active(&done));
    }
}
