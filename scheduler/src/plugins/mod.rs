//! The in-tree plugins, one module each, and the registry mapping a
//! plugin name to its factory (`plugins/registry.go`).

pub mod balanced_allocation;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;

use std::sync::Arc;

use crate::framework::Plugin;

/// Why a plugin could not be built from its arguments.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ArgsError {
    /// The offending field, relative to the plugin's `args`.
    pub field: String,
    pub message: String,
}

/// Builds a plugin from its `pluginConfig` args (`null` when none).
pub type Factory = fn(&serde_json::Value) -> Result<Arc<dyn Plugin>, ArgsError>;

/// Names of the built-in stages that are not separate plugins here but
/// that configurations may name: the priority queue sort, the binder and
/// preemption.
pub const BUILTIN_STAGES: &[&str] = &["PrioritySort", "DefaultBinder", "DefaultPreemption"];

/// Every plugin this scheduler can run.
pub fn registry() -> Vec<(&'static str, Factory)> {
    vec![
        (node_unschedulable::NAME, node_unschedulable::new),
        (node_name::NAME, node_name::new),
        (taint_toleration::NAME, taint_toleration::new),
        (node_affinity::NAME, node_affinity::new),
        (node_ports::NAME, node_ports::new),
        (node_resources_fit::NAME, node_resources_fit::new),
        (balanced_allocation::NAME, balanced_allocation::new),
        (image_locality::NAME, image_locality::new),
        (pod_topology_spread::NAME, pod_topology_spread::new),
        (inter_pod_affinity::NAME, inter_pod_affinity::new),
    ]
}

/// The default profile's plugins with their score weights
/// (`getDefaultPlugins` for v1), in the order they run.
pub const DEFAULT_PLUGINS: &[(&str, i64)] = &[
    (node_unschedulable::NAME, 0),
    (node_name::NAME, 0),
    (taint_toleration::NAME, 3),
    (node_affinity::NAME, 2),
    (node_ports::NAME, 0),
    (node_resources_fit::NAME, 1),
    (pod_topology_spread::NAME, 2),
    (inter_pod_affinity::NAME, 2),
    (balanced_allocation::NAME, 1),
    (image_locality::NAME, 1),
];

#[cfg(test)]
pub(crate) mod testutil {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::Value;

    use crate::framework::{CycleState, NodeInfo, PodInfo, Status};

    pub fn pod(v: Value) -> Pod {
        serde_json::from_value(v).expect("test pod")
    }

    pub fn node(v: Value) -> Arc<NodeInfo> {
        let n: Node = serde_json::from_value(v).expect("test node");
        Arc::new(NodeInfo::new(Arc::new(n)))
    }

    pub fn node_with_pods(v: Value, pods: Vec<Value>) -> Arc<NodeInfo> {
        let n: Node = serde_json::from_value(v).expect("test node");
        let mut info = NodeInfo::new(Arc::new(n));
        for p in pods {
            info.add_pod(PodInfo::new(Arc::new(pod(p))));
        }
        Arc::new(info)
    }

    /// Runs a plugin's PreFilter (if any) then Filter on one node.
    pub fn run_filter(p: &dyn crate::framework::Plugin, pod: &Pod, node: &Arc<NodeInfo>) -> Status {
        let mut state = CycleState::default();
        if let Some(pf) = p.as_pre_filter() {
            let snapshot = crate::framework::Snapshot::from_nodes(vec![node.clone()]);
            let s = pf.pre_filter(&mut state, pod, &snapshot);
            if !s.is_success() && s.code != crate::framework::Code::Skip {
                return s;
            }
        }
        p.as_filter()
            .expect("a filter plugin")
            .filter(&state, pod, node)
    }

    /// PreScore, Score and normalisation over `nodes`.
    pub fn run_score(
        p: &dyn crate::framework::Plugin,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
    ) -> Vec<i64> {
        let mut state = CycleState::default();
        if let Some(ps) = p.as_pre_score() {
            let all = crate::framework::Snapshot::from_nodes(nodes.to_vec());
            let s = ps.pre_score(&mut state, pod, nodes, &all);
            if s.code == crate::framework::Code::Skip {
                return vec![0; nodes.len()];
            }
        }
        let sp = p.as_score().expect("a score plugin");
        let mut scores: Vec<crate::framework::NodeScore> = nodes
            .iter()
            .enumerate()
            .map(|(index, n)| crate::framework::NodeScore {
                index,
                score: sp.score(&state, pod, n).expect("score"),
            })
            .collect();
        sp.normalize(&state, pod, &mut scores);
        scores.into_iter().map(|s| s.score).collect()
    }
}
