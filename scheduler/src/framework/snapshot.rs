//! The cluster as one scheduling cycle sees it (`framework.SharedLister`
//! over `internal/cache.Snapshot`): every node's [`NodeInfo`], plus the
//! indexes plugins would otherwise rebuild from all nodes on every cycle —
//! which nodes hold pods with pod (anti-)affinity terms, and how many
//! nodes hold each image.
//!
//! Everything is behind `Arc`s so taking a snapshot costs a few reference
//! counts, not a copy of the cluster; the cache copies a list only when it
//! changes while a snapshot still holds it.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use super::NodeInfo;

#[derive(Clone, Default)]
pub struct Snapshot {
    pub nodes: Arc<Vec<Arc<NodeInfo>>>,
    /// Indexes into `nodes` of nodes with a pod that has any pod affinity
    /// or anti-affinity term (`HavePodsWithAffinityNodeInfoList`).
    pub with_affinity: Arc<Vec<usize>>,
    /// Indexes of nodes with a pod that has required anti-affinity
    /// (`HavePodsWithRequiredAntiAffinityNodeInfoList`).
    pub with_required_anti_affinity: Arc<Vec<usize>>,
    /// Normalised image name → number of nodes that have it.
    pub image_nodes: Arc<HashMap<String, usize>>,
}

impl Snapshot {
    /// Builds every index from the nodes (tests and one-off callers; the
    /// cache maintains them incrementally).
    pub fn from_nodes(nodes: Vec<Arc<NodeInfo>>) -> Snapshot {
        let (with_affinity, with_required_anti_affinity) = affinity_indexes(&nodes);
        let mut image_nodes: HashMap<String, usize> = HashMap::new();
        for n in &nodes {
            for image in n.images.keys() {
                *image_nodes.entry(image.clone()).or_default() += 1;
            }
        }
        Snapshot {
            nodes: Arc::new(nodes),
            with_affinity: Arc::new(with_affinity),
            with_required_anti_affinity: Arc::new(with_required_anti_affinity),
            image_nodes: Arc::new(image_nodes),
        }
    }

    /// The nodes holding pods with pod affinity or anti-affinity terms.
    pub fn nodes_with_affinity(&self) -> impl Iterator<Item = &Arc<NodeInfo>> {
        self.with_affinity.iter().map(|i| &self.nodes[*i])
    }

    /// The nodes holding pods with required anti-affinity terms.
    pub fn nodes_with_required_anti_affinity(&self) -> impl Iterator<Item = &Arc<NodeInfo>> {
        self.with_required_anti_affinity
            .iter()
            .map(|i| &self.nodes[*i])
    }
}

/// The two affinity indexes of `nodes`.
pub fn affinity_indexes(nodes: &[Arc<NodeInfo>]) -> (Vec<usize>, Vec<usize>) {
    let mut with_affinity = Vec::new();
    let mut with_anti = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.pods_with_affinity > 0 {
            with_affinity.push(i);
        }
        if n.pods_with_required_anti_affinity > 0 {
            with_anti.push(i);
        }
    }
    (with_affinity, with_anti)
}

impl Deref for Snapshot {
    type Target = [Arc<NodeInfo>];
    fn deref(&self) -> &[Arc<NodeInfo>] {
        &self.nodes
    }
}

impl From<Vec<Arc<NodeInfo>>> for Snapshot {
    fn from(nodes: Vec<Arc<NodeInfo>>) -> Snapshot {
        Snapshot::from_nodes(nodes)
    }
}
