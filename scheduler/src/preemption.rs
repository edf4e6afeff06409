//! `DefaultPreemption` as a PostFilter: when no node fits, find nodes where
//! evicting lower-priority pods would make room, pick the cheapest, and
//! otherwise explain, node by node, why preemption cannot help (the
//! `preemption: 0/N nodes are available: ...` tail of the message).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::framework::runtime::{FitError, Framework};
use crate::framework::{Code, CycleState, NodeInfo, PodInfo, Snapshot, Status, pod_priority};

pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// What preemption decided.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Evict `victims` so the pod fits on `node`.
    Preempt {
        node: String,
        victims: Vec<Arc<Pod>>,
    },
    /// No candidate; the message to append to the failure.
    NotPossible(String),
}

fn is_terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

/// Runs preemption for `pod` after Filter failed with `fit`.
pub fn preempt(fw: &Framework, pod: &Pod, nodes: &Snapshot, fit: &FitError) -> Outcome {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref());
    if policy == Some("Never") {
        return Outcome::NotPossible(
            "preemption: not eligible due to preemptionPolicy=Never.".into(),
        );
    }
    let mut state = CycleState::default();
    for p in &fw.pre_filters {
        if let Some(pf) = p.as_pre_filter() {
            let s = pf.pre_filter(&mut state, pod, nodes);
            if !(s.is_success() || s.code == Code::Skip) {
                return Outcome::NotPossible(format!(
                    "preemption: 0/{} nodes are available: {} {NOT_HELPFUL}.",
                    nodes.len(),
                    nodes.len()
                ));
            }
        }
    }
    let priority = pod_priority(pod);
    // Only nodes Filter found `Unschedulable` (not unresolvable) may be
    // helped by evicting pods.
    let resolvable: std::collections::HashSet<&str> = fit
        .node_statuses
        .iter()
        .filter(|(_, s)| s.code == Code::Unschedulable)
        .map(|(n, _)| n.as_str())
        .collect();
    let mut statuses: Vec<(String, Status)> = Vec::new();
    let mut candidates: Vec<(String, Vec<Arc<Pod>>)> = Vec::new();
    for node in nodes.iter() {
        let name = node.name().to_string();
        if !resolvable.contains(name.as_str()) {
            statuses.push((name, Status::unresolvable(NOT_HELPFUL)));
            continue;
        }
        match select_victims(fw, &state, pod, priority, node) {
            Ok(victims) => candidates.push((name, victims)),
            Err(s) => statuses.push((name, s)),
        }
    }
    if candidates.is_empty() {
        let err = FitError {
            num_all_nodes: nodes.len(),
            pre_filter_msg: None,
            node_statuses: statuses,
            post_filter_msg: None,
        };
        return Outcome::NotPossible(format!("preemption: {}", err.message()));
    }
    // `pickOneNodeForPreemption`: the lowest highest-victim priority, then the
    // lowest sum of victim priorities, then the fewest victims.
    let cost = |victims: &Vec<Arc<Pod>>| {
        let max = victims
            .iter()
            .map(|v| pod_priority(v))
            .max()
            .unwrap_or(i32::MIN);
        let sum: i64 = victims.iter().map(|v| i64::from(pod_priority(v))).sum();
        (max, sum, victims.len())
    };
    let best = candidates
        .into_iter()
        .min_by_key(|(_, v)| cost(v))
        .map(|(node, victims)| Outcome::Preempt { node, victims });
    best.unwrap_or_else(|| Outcome::NotPossible(String::new()))
}

/// `SelectVictimsOnNode`: remove every lower-priority pod; if the pod then
/// fits, give back as many as possible, highest priority first.
fn select_victims(
    fw: &Framework,
    state: &CycleState,
    pod: &Pod,
    priority: i32,
    node: &NodeInfo,
) -> Result<Vec<Arc<Pod>>, Status> {
    let mut info = node.clone();
    let mut potential: Vec<PodInfo> = info
        .pods
        .iter()
        .filter(|p| pod_priority(&p.pod) < priority && !is_terminating(&p.pod))
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err(Status::unresolvable(NO_VICTIMS));
    }
    for p in &potential {
        info.remove_pod(&p.key);
    }
    let fits = fw.run_filters(state, pod, &info);
    if !fits.is_success() {
        return Err(fits);
    }
    potential.sort_by_key(|p| std::cmp::Reverse(pod_priority(&p.pod)));
    let mut victims = Vec::new();
    for p in potential {
        info.add_pod(p.clone());
        if !fw.run_filters(state, pod, &info).is_success() {
            info.remove_pod(&p.key);
            victims.push(p.pod);
        }
    }
    Ok(victims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::config::KubeSchedulerConfiguration;
    use crate::framework::runtime::Explanation;
    use crate::framework::runtime::ScheduleError;
    use crate::plugins::testutil::{node_with_pods, pod};
    use serde_json::{Value, json};

    fn p(name: &str, priority: i32, cpu: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "d"},
            "spec": {"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}})
    }

    fn n(name: &str, taints: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": {"taints": taints},
            "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "10"}}})
    }

    fn attempt(nodes: &[Arc<NodeInfo>], incoming: &Pod) -> Outcome {
        let nodes = &Snapshot::from_nodes(nodes.to_vec());
        let fw = KubeSchedulerConfiguration::default()
            .build()
            .expect("default")
            .remove(0);
        let mut rng = rand::rng();
        let mut start = 0;
        let mut ex = Explanation::default();
        match fw.schedule(incoming, nodes, &mut start, &mut rng, &mut ex) {
            Err(ScheduleError::Fit(fit)) => preempt(&fw, incoming, nodes, &fit),
            other => panic!("expected a fit error, got {other:?}"),
        }
    }

    #[test]
    fn without_lower_priority_pods_preemption_explains_itself() {
        let gpu = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        let nodes = vec![
            node_with_pods(n("a", gpu), vec![]),
            node_with_pods(n("b", json!([])), vec![p("x", 0, "2")]),
            node_with_pods(n("c", json!([])), vec![p("y", 0, "2")]),
        ];
        let Outcome::NotPossible(msg) = attempt(&nodes, &pod(p("new", 0, "1"))) else {
            panic!("no preemption expected")
        };
        assert_eq!(
            msg,
            format!("preemption: 0/3 nodes are available: 1 {NOT_HELPFUL}, 2 {NO_VICTIMS}.")
        );
    }

    #[test]
    fn the_cheapest_node_is_chosen_and_unneeded_victims_are_spared() {
        let nodes = vec![
            node_with_pods(
                n("a", json!([])),
                vec![p("a-mid", 5, "1"), p("a-low", 3, "1")],
            ),
            node_with_pods(
                n("b", json!([])),
                vec![p("b-low1", 1, "1"), p("b-low2", 2, "1")],
            ),
        ];
        let Outcome::Preempt { node, victims } = attempt(&nodes, &pod(p("new", 10, "1"))) else {
            panic!("preemption expected")
        };
        assert_eq!(node, "b");
        let names: Vec<_> = victims
            .iter()
            .map(|v| v.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, vec!["b-low1"]);
    }

    #[test]
    fn pods_that_never_preempt_say_so() {
        let nodes = vec![node_with_pods(n("a", json!([])), vec![p("x", 0, "2")])];
        let mut v = p("new", 10, "1");
        v["spec"]["preemptionPolicy"] = json!("Never");
        let Outcome::NotPossible(msg) = attempt(&nodes, &pod(v)) else {
            panic!("no preemption expected")
        };
        assert_eq!(
            msg,
            "preemption: not eligible due to preemptionPolicy=Never."
        );
    }
}
