//! The scheduler cache (`internal/cache`): a [`NodeInfo`] per node built
//! from the node and pod informers, plus pods *assumed* on a node between
//! the scheduling decision and the informer seeing the binding, so the
//! next decision already counts them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::framework::{NodeInfo, PodInfo, pod_key};

#[derive(Debug, Clone)]
struct PodState {
    node: String,
    assumed: bool,
}

#[derive(Default)]
pub struct Cache {
    nodes: BTreeMap<String, Arc<NodeInfo>>,
    /// Nodes known only from pods bound to them, not yet from the informer.
    placeholders: std::collections::HashSet<String>,
    pods: HashMap<String, PodState>,
}

fn placeholder(name: &str) -> Arc<Node> {
    let mut n = Node::default();
    n.metadata.name = Some(name.to_string());
    Arc::new(n)
}

impl Cache {
    pub fn add_or_update_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        self.placeholders.remove(&name);
        match self.nodes.get_mut(&name) {
            Some(info) => Arc::make_mut(info).set_node(node),
            None => {
                self.nodes.insert(name, Arc::new(NodeInfo::new(node)));
            }
        }
    }

    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.get(name) {
            if info.pods.is_empty() {
                self.nodes.remove(name);
            } else {
                // Pods still bound to it keep their accounting until deleted.
                self.placeholders.insert(name.to_string());
            }
        }
    }

    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        let info = self.nodes.entry(name.to_string()).or_insert_with(|| {
            self.placeholders.insert(name.to_string());
            Arc::new(NodeInfo::new(placeholder(name)))
        });
        Arc::make_mut(info)
    }

    fn detach(&mut self, key: &str) -> Option<PodState> {
        let state = self.pods.remove(key)?;
        let empty_placeholder = match self.nodes.get_mut(&state.node) {
            Some(info) => {
                let info = Arc::make_mut(info);
                info.remove_pod(key);
                info.pods.is_empty() && self.placeholders.contains(&state.node)
            }
            None => false,
        };
        if empty_placeholder {
            self.nodes.remove(&state.node);
            self.placeholders.remove(&state.node);
        }
        Some(state)
    }

    /// A pod bound to a node, as seen by the informer; confirms an assumed pod.
    pub fn add_or_update_pod(&mut self, pod: Arc<Pod>) {
        let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        else {
            return;
        };
        let key = pod_key(&pod);
        self.detach(&key);
        self.node_mut(&node).add_pod(PodInfo::new(pod));
        self.pods.insert(
            key,
            PodState {
                node,
                assumed: false,
            },
        );
    }

    pub fn remove_pod(&mut self, key: &str) {
        self.detach(key);
    }

    /// Counts `pod` on `node` before the binding is confirmed.
    pub fn assume(&mut self, pod: &Pod, node: &str) {
        let mut assumed = pod.clone();
        if let Some(spec) = assumed.spec.as_mut() {
            spec.node_name = Some(node.to_string());
        }
        let key = pod_key(pod);
        self.detach(&key);
        self.node_mut(node).add_pod(PodInfo::new(Arc::new(assumed)));
        self.pods.insert(
            key,
            PodState {
                node: node.to_string(),
                assumed: true,
            },
        );
    }

    /// Undoes [`Cache::assume`] after a failed binding; a confirmed pod stays.
    pub fn forget(&mut self, key: &str) {
        if self.pods.get(key).is_some_and(|s| s.assumed) {
            self.detach(key);
        }
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|s| s.assumed)
    }

    /// The nodes to schedule onto, by name.
    pub fn snapshot(&self) -> Vec<Arc<NodeInfo>> {
        self.nodes
            .iter()
            .filter(|(name, _)| !self.placeholders.contains(*name))
            .map(|(_, info)| info.clone())
            .collect()
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    pub fn pod_keys(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "10"}}}))
            .expect("node"),
        )
    }

    fn pod(name: &str, node: Option<&str>, cpu: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}))
        .expect("pod")
    }

    fn requested(c: &Cache, node: &str) -> i64 {
        c.snapshot()
            .iter()
            .find(|n| n.name() == node)
            .map(|n| n.requested.milli_cpu)
            .expect("node in snapshot")
    }

    #[test]
    fn assumed_pods_count_until_forgotten_or_confirmed() {
        let mut c = Cache::default();
        c.add_or_update_node(node("a"));
        c.assume(&pod("p", None, "1"), "a");
        assert_eq!(requested(&c, "a"), 1000);
        assert!(c.is_assumed("d/p"));
        c.forget("d/p");
        assert_eq!(requested(&c, "a"), 0);

        c.assume(&pod("p", None, "1"), "a");
        c.add_or_update_pod(Arc::new(pod("p", Some("a"), "1")));
        assert!(!c.is_assumed("d/p"));
        c.forget("d/p");
        assert_eq!(requested(&c, "a"), 1000, "a confirmed pod is not forgotten");
        c.remove_pod("d/p");
        assert_eq!(requested(&c, "a"), 0);
    }

    #[test]
    fn pods_on_unknown_nodes_wait_for_the_node() {
        let mut c = Cache::default();
        c.add_or_update_pod(Arc::new(pod("p", Some("late"), "2")));
        assert!(c.snapshot().is_empty());
        c.add_or_update_node(node("late"));
        assert_eq!(requested(&c, "late"), 2000);
        c.remove_node("late");
        assert!(c.snapshot().is_empty());
        c.remove_pod("d/p");
        assert!(c.node_names().is_empty());
    }

    #[test]
    fn moving_a_pod_updates_both_nodes() {
        let mut c = Cache::default();
        c.add_or_update_node(node("a"));
        c.add_or_update_node(node("b"));
        c.add_or_update_pod(Arc::new(pod("p", Some("a"), "1")));
        c.add_or_update_pod(Arc::new(pod("p", Some("b"), "1")));
        assert_eq!((requested(&c, "a"), requested(&c, "b")), (0, 1000));
    }

    #[test]
    fn snapshots_do_not_change_after_they_are_taken() {
        let mut c = Cache::default();
        c.add_or_update_node(node("a"));
        let before = c.snapshot();
        c.assume(&pod("p", None, "1"), "a");
        assert_eq!(before[0].requested.milli_cpu, 0);
    }
}
