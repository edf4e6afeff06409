//! The scheduler cache (`internal/cache`): a [`NodeInfo`] per node built
//! from the node and pod informers, plus pods *assumed* on a node between
//! the scheduling decision and the informer seeing the binding, so the
//! next decision already counts them.
//!
//! The cache keeps the [`Snapshot`] a cycle reads up to date as it
//! changes — a node's `NodeInfo` is replaced copy-on-write and the node
//! list is shared with the snapshot — so taking a snapshot per cycle costs
//! a few reference counts, not a walk over thousands of nodes.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::framework::snapshot::affinity_indexes;
use crate::framework::{NodeInfo, PodInfo, Snapshot, pod_key};

#[derive(Debug, Clone)]
struct PodState {
    node: String,
    assumed: bool,
}

#[derive(Default)]
pub struct Cache {
    /// Nodes the informer knows; shared with snapshots, copied on write.
    nodes: Arc<Vec<Arc<NodeInfo>>>,
    /// Node name → index in `nodes`.
    index: HashMap<String, usize>,
    /// Nodes known only from pods bound to them, not (or no longer) from
    /// the informer: their pods keep their accounting until the node
    /// arrives or the pods go.
    orphans: HashMap<String, NodeInfo>,
    pods: HashMap<String, PodState>,
    image_nodes: Arc<HashMap<String, usize>>,
    /// Affinity indexes of the last snapshot, rebuilt when a node gains or
    /// loses its first pod with affinity terms, or a node is removed.
    with_affinity: Arc<Vec<usize>>,
    with_required_anti_affinity: Arc<Vec<usize>>,
    affinity_dirty: bool,
}

fn placeholder(name: &str) -> NodeInfo {
    let mut n = Node::default();
    n.metadata.name = Some(name.to_string());
    NodeInfo::new(Arc::new(n))
}

/// Whether the node's affinity index membership differs between `a` and `b`.
fn affinity_flags(n: &NodeInfo) -> (bool, bool) {
    (
        n.pods_with_affinity > 0,
        n.pods_with_required_anti_affinity > 0,
    )
}

impl Cache {
    fn count_images(&mut self, info: &NodeInfo, add: bool) {
        if info.images.is_empty() {
            return;
        }
        let counts = Arc::make_mut(&mut self.image_nodes);
        for image in info.images.keys() {
            if add {
                *counts.entry(image.clone()).or_default() += 1;
            } else if let Some(c) = counts.get_mut(image) {
                *c -= 1;
                if *c == 0 {
                    counts.remove(image);
                }
            }
        }
    }

    pub fn add_or_update_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(&i) = self.index.get(&name) {
            let old = self.nodes[i].clone();
            self.count_images(&old, false);
            let info = Arc::make_mut(&mut Arc::make_mut(&mut self.nodes)[i]);
            info.set_node(node);
            let info = self.nodes[i].clone();
            self.count_images(&info, true);
            return;
        }
        let mut info = self
            .orphans
            .remove(&name)
            .unwrap_or_else(|| placeholder(&name));
        info.set_node(node);
        self.count_images(&info, true);
        if info.pods_with_affinity > 0 {
            self.affinity_dirty = true;
        }
        let nodes = Arc::make_mut(&mut self.nodes);
        self.index.insert(name, nodes.len());
        nodes.push(Arc::new(info));
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let nodes = Arc::make_mut(&mut self.nodes);
        let info = nodes.swap_remove(i);
        if let Some(moved) = nodes.get(i) {
            self.index.insert(moved.name().to_string(), i);
        }
        self.affinity_dirty = true;
        self.count_images(&info, false);
        if !info.pods.is_empty() {
            // Pods still bound to it keep their accounting until deleted.
            let mut orphan = Arc::unwrap_or_clone(info);
            orphan.images.clear();
            self.orphans.insert(name.to_string(), orphan);
        }
    }

    /// Applies `f` to the node's info, wherever it lives (creating an
    /// orphan for an unknown node), keeping the indexes right.
    fn with_node<R>(&mut self, name: &str, f: impl FnOnce(&mut NodeInfo) -> R) -> R {
        if let Some(&i) = self.index.get(name) {
            let info = Arc::make_mut(&mut Arc::make_mut(&mut self.nodes)[i]);
            let before = affinity_flags(info);
            let r = f(info);
            if affinity_flags(info) != before {
                self.affinity_dirty = true;
            }
            return r;
        }
        let orphan = self
            .orphans
            .entry(name.to_string())
            .or_insert_with(|| placeholder(name));
        let r = f(orphan);
        if orphan.pods.is_empty() {
            self.orphans.remove(name);
        }
        r
    }

    fn detach(&mut self, key: &str) -> Option<PodState> {
        let state = self.pods.remove(key)?;
        let known = self.index.contains_key(&state.node) || self.orphans.contains_key(&state.node);
        if known {
            self.with_node(&state.node, |info| info.remove_pod(key));
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
        let info = PodInfo::new(pod);
        self.with_node(&node, |n| n.add_pod(info));
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
        let info = PodInfo::new(Arc::new(assumed));
        self.with_node(node, |n| n.add_pod(info));
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

    /// The nodes to schedule onto, with their indexes.
    pub fn snapshot(&mut self) -> Snapshot {
        if self.affinity_dirty {
            let (a, r) = affinity_indexes(&self.nodes);
            self.with_affinity = Arc::new(a);
            self.with_required_anti_affinity = Arc::new(r);
            self.affinity_dirty = false;
        }
        Snapshot {
            nodes: self.nodes.clone(),
            with_affinity: self.with_affinity.clone(),
            with_required_anti_affinity: self.with_required_anti_affinity.clone(),
            image_nodes: self.image_nodes.clone(),
        }
    }

    /// How many nodes a snapshot holds.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The node object of `name`, if the informer knows it.
    pub fn node(&self, name: &str) -> Option<Arc<Node>> {
        self.index.get(name).map(|i| self.nodes[*i].node.clone())
    }

    pub fn node_names(&self) -> Vec<String> {
        self.index.keys().cloned().collect()
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

    fn requested(c: &mut Cache, node: &str) -> i64 {
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
        assert_eq!(requested(&mut c, "a"), 1000);
        assert!(c.is_assumed("d/p"));
        c.forget("d/p");
        assert_eq!(requested(&mut c, "a"), 0);

        c.assume(&pod("p", None, "1"), "a");
        c.add_or_update_pod(Arc::new(pod("p", Some("a"), "1")));
        assert!(!c.is_assumed("d/p"));
        c.forget("d/p");
        assert_eq!(requested(&mut c, "a"), 1000, "a confirmed pod is not forgotten");
        c.remove_pod("d/p");
        assert_eq!(requested(&mut c, "a"), 0);
    }

    #[test]
    fn pods_on_unknown_nodes_wait_for_the_node() {
        let mut c = Cache::default();
        c.add_or_update_pod(Arc::new(pod("p", Some("late"), "2")));
        assert!(c.snapshot().is_empty());
        c.add_or_update_node(node("late"));
        assert_eq!(requested(&mut c, "late"), 2000);
        c.remove_node("late");
        assert!(c.snapshot().is_empty());
        c.remove_pod("d/p");
        assert!(c.node_names().is_empty());
        assert!(c.orphans.is_empty(), "an orphan without pods is dropped");
    }

    #[test]
    fn moving_a_pod_updates_both_nodes() {
        let mut c = Cache::default();
        c.add_or_update_node(node("a"));
        c.add_or_update_node(node("b"));
        c.add_or_update_pod(Arc::new(pod("p", Some("a"), "1")));
        c.add_or_update_pod(Arc::new(pod("p", Some("b"), "1")));
        assert_eq!((requested(&mut c, "a"), requested(&mut c, "b")), (0, 1000));
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
