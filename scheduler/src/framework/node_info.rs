//! What the scheduler knows about one node: the node object, the pods on
//! it (bound or assumed), the resources they request, the host ports they
//! use and the images present (`framework.NodeInfo`).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};

use super::pod_key;
use crate::resources::{Resource, node_allocatable, pod_requests};

/// A pod placed on a node, with its requests computed once.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub key: String,
    pub requests: Resource,
    pub non_zero_requests: Resource,
    /// The pod has a pod affinity or anti-affinity term (required or preferred).
    pub has_affinity: bool,
    /// The pod has a required anti-affinity term.
    pub has_required_anti_affinity: bool,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let some = |v: Option<usize>| v.is_some_and(|n| n > 0);
        let has_required_anti_affinity = some(paa.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
                .map(Vec::len)
        }));
        let has_affinity = has_required_anti_affinity
            || some(paa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
                    .map(Vec::len)
            }))
            || some(pa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
                    .map(Vec::len)
            }))
            || some(pa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
                    .map(Vec::len)
            }));
        PodInfo {
            key: pod_key(&pod),
            requests: pod_requests(&pod, false),
            non_zero_requests: pod_requests(&pod, true),
            has_affinity,
            has_required_anti_affinity,
            pod,
        }
    }
}

/// A host port in use: `(hostIP, protocol, port)`; hostIP `0.0.0.0` means all.
pub type HostPort = (String, String, i32);

#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    /// `spec.unschedulable` and `spec.taints`, copied out of the node: the
    /// first Filters read them on every node of every cycle, and reaching
    /// them through `node` costs two cache misses per node (measured: 12%
    /// of the scheduler benchmark's CPU in `NodeUnschedulable` alone).
    pub unschedulable: bool,
    pub taints: Vec<Taint>,
    pub pods: Vec<PodInfo>,
    pub requested: Resource,
    pub non_zero_requested: Resource,
    pub allocatable: Resource,
    pub used_ports: Vec<HostPort>,
    /// Normalised image name → size in bytes.
    pub images: HashMap<String, i64>,
    /// How many of `pods` have pod (anti-)affinity terms, and required
    /// anti-affinity terms: the cache indexes nodes by these.
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let mut info = NodeInfo {
            node: node.clone(),
            unschedulable: false,
            taints: Vec::new(),
            pods: Vec::new(),
            requested: Resource::default(),
            non_zero_requested: Resource::default(),
            allocatable: Resource::default(),
            used_ports: Vec::new(),
            images: HashMap::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
        };
        info.set_node(node);
        info
    }

    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    /// Replaces the node object, keeping the pods.
    pub fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = node_allocatable(&node);
        let spec = node.spec.as_ref();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        self.taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        self.images.clear();
        for image in node.status.iter().flat_map(|s| s.images.iter().flatten()) {
            for name in image.names.iter().flatten() {
                self.images
                    .insert(normalize_image(name), image.size_bytes.unwrap_or(0));
            }
        }
        self.node = node;
    }

    pub fn add_pod(&mut self, info: PodInfo) {
        self.requested.add(&info.requests);
        self.non_zero_requested.add(&info.non_zero_requests);
        self.used_ports.extend(host_ports(&info.pod));
        self.pods_with_affinity += usize::from(info.has_affinity);
        self.pods_with_required_anti_affinity += usize::from(info.has_required_anti_affinity);
        self.pods.push(info);
    }

    /// Removes the pod with `key`; whether it was there.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.key == key) else {
            return false;
        };
        let info = self.pods.swap_remove(i);
        self.requested.sub(&info.requests);
        self.non_zero_requested.sub(&info.non_zero_requests);
        self.pods_with_affinity -= usize::from(info.has_affinity);
        self.pods_with_required_anti_affinity -= usize::from(info.has_required_anti_affinity);
        for port in host_ports(&info.pod) {
            if let Some(j) = self.used_ports.iter().position(|p| *p == port) {
                self.used_ports.swap_remove(j);
            }
        }
        true
    }
}

/// The host ports a pod's containers ask for (`0` host ports are not
/// reserved; an empty host IP means every address, as in Kubernetes).
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let mut out = Vec::new();
    let Some(spec) = pod.spec.as_ref() else {
        return out;
    };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for p in c.ports.iter().flatten() {
            let Some(port) = p.host_port.filter(|p| *p > 0) else {
                continue;
            };
            let ip = p
                .host_ip
                .clone()
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| "0.0.0.0".to_string());
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".to_string());
            out.push((ip, proto, port));
        }
    }
    out
}

/// `docker.io/library/nginx:latest` for `nginx`, as image locality compares
/// images by their fully-qualified names.
pub fn normalize_image(name: &str) -> String {
    let (repo, tag_or_digest) = if let Some((r, d)) = name.split_once('@') {
        (r.to_string(), format!("@{d}"))
    } else {
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        match name[last_slash..].rfind(':') {
            Some(i) => (
                name[..last_slash + i].to_string(),
                name[last_slash + i..].to_string(),
            ),
            None => (name.to_string(), ":latest".to_string()),
        }
    };
    let first = repo.split('/').next().unwrap_or("");
    let has_registry =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        repo
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    format!("{full}{tag_or_digest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn image_names_are_normalised_like_docker_references() {
        for (input, want) in [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.27", "docker.io/library/nginx:1.27"),
            ("bitnami/redis", "docker.io/bitnami/redis:latest"),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("nginx@sha256:abc", "docker.io/library/nginx@sha256:abc"),
        ] {
            assert_eq!(normalize_image(input), want, "{input}");
        }
    }

    #[test]
    fn adding_and_removing_a_pod_restores_the_node() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": "4", "memory": "1Gi", "pods": "10"}}}))
        .expect("node");
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "d"},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}],
                "resources": {"requests": {"cpu": "1"}}}]}}))
        .expect("pod");
        let mut info = NodeInfo::new(Arc::new(node));
        assert_eq!(info.allocatable.milli_cpu, 4000);
        info.add_pod(PodInfo::new(Arc::new(pod)));
        assert_eq!(info.requested.milli_cpu, 1000);
        assert_eq!(
            info.used_ports,
            vec![("0.0.0.0".to_string(), "TCP".to_string(), 8080)]
        );
        assert!(info.remove_pod("d/p"));
        assert_eq!(info.requested.milli_cpu, 0);
        assert!(info.used_ports.is_empty());
        assert!(!info.remove_pod("d/p"));
    }
}
