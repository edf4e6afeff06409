//! Resource arithmetic as the scheduler does it (`framework.Resource`,
//! `resourcehelper.PodRequests`): what a pod requests (containers, init
//! containers, sidecars, overhead) and what a node offers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity::{milli_value, value};

pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
pub const PODS: &str = "pods";

/// Kubernetes' defaults for containers that request nothing, used when
/// scoring so that many zero-request pods do not all pile on one node.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of every resource the scheduler tracks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pod_number: i64,
    /// Extended resources (`example.com/gpu`, `hugepages-2Mi`).
    pub scalar: BTreeMap<String, i64>,
}

impl Resource {
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resource {
        let mut r = Resource::default();
        for (name, q) in list.into_iter().flatten() {
            r.set(name, q);
        }
        r
    }

    fn set(&mut self, name: &str, q: &Quantity) {
        match name {
            CPU => self.milli_cpu = milli_value(q),
            MEMORY => self.memory = value(q),
            EPHEMERAL_STORAGE => self.ephemeral_storage = value(q),
            PODS => self.allowed_pod_number = value(q),
            other if is_scalar(other) => {
                self.scalar.insert(other.to_string(), value(q));
            }
            _ => {}
        }
    }

    /// The amount of `name` (`cpu` in millicores).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            CPU => self.milli_cpu,
            MEMORY => self.memory,
            EPHEMERAL_STORAGE => self.ephemeral_storage,
            PODS => self.allowed_pod_number,
            other => self.scalar.get(other).copied().unwrap_or(0),
        }
    }

    pub fn add(&mut self, o: &Resource) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.allowed_pod_number += o.allowed_pod_number;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, o: &Resource) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.allowed_pod_number -= o.allowed_pod_number;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    fn set_max(&mut self, o: &Resource) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

/// Extended resources and hugepages, which the scheduler counts as
/// opaque integers (`IsScalarResourceName`).
pub fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("requests.")
        || (name.contains('/') && !name.starts_with("kubernetes.io/"))
        || name.starts_with("attachable-volumes-")
}

/// A node's allocatable resources (capacity when allocatable is unset).
pub fn node_allocatable(node: &Node) -> Resource {
    let status = node.status.as_ref();
    let list = status
        .and_then(|s| s.allocatable.as_ref())
        .or_else(|| status.and_then(|s| s.capacity.as_ref()));
    Resource::from_list(list)
}

fn container_requests(c: &Container, non_zero: bool) -> Resource {
    let mut r = Resource::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
    if non_zero {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        let has = |n: &str| requests.is_some_and(|m| m.contains_key(n));
        if !has(CPU) {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !has(MEMORY) {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// What a pod requests of a node (`PodRequests`): the sum of its
/// containers and sidecars, or the largest init step if larger, plus the
/// pod overhead. With `non_zero`, containers without a CPU or memory
/// request count the scoring defaults instead.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resource {
    let mut reqs = Resource::default();
    let Some(spec) = pod.spec.as_ref() else {
        return reqs;
    };
    for c in &spec.containers {
        reqs.add(&container_requests(c, non_zero));
    }
    // Sidecars (init containers with restartPolicy Always) keep running
    // next to the app containers; a regular init container runs next to
    // the sidecars started before it.
    let mut sidecars = Resource::default();
    let mut init_max = Resource::default();
    for ic in spec.init_containers.iter().flatten() {
        let r = container_requests(ic, non_zero);
        if ic.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            reqs.add(&r);
            init_max.set_max(&sidecars);
        } else {
            let mut step = r;
            step.add(&sidecars);
            init_max.set_max(&step);
        }
    }
    reqs.set_max(&init_max);
    if let Some(overhead) = spec.overhead.as_ref() {
        reqs.add(&Resource::from_list(Some(overhead)));
    }
    reqs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn pod_requests_count_containers_init_containers_sidecars_and_overhead() {
        let cases = [
            (
                "containers add up",
                json!({"spec": {"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Ki"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "200m"}}}]}}),
                (300, 1024),
            ),
            (
                "a larger init container wins",
                json!({"spec": {
                    "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
                    "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "10"}}}]}}),
                (2000, 10),
            ),
            (
                "sidecars add to the containers and to later init steps",
                json!({"spec": {
                    "initContainers": [
                        {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                        {"name": "i", "resources": {"requests": {"cpu": "1"}}}],
                    "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]}}),
                (1500, 0),
            ),
            (
                "overhead is added",
                json!({"spec": {"overhead": {"cpu": "250m", "memory": "1"},
                    "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}}),
                (1250, 1),
            ),
        ];
        for (name, p, (cpu, mem)) in cases {
            let r = pod_requests(&pod(p), false);
            assert_eq!((r.milli_cpu, r.memory), (cpu, mem), "{name}");
        }
    }

    #[test]
    fn non_zero_requests_fill_in_scoring_defaults() {
        let p = pod(json!({"spec": {"containers": [{"name": "a"}]}}));
        let r = pod_requests(&p, true);
        assert_eq!(
            (r.milli_cpu, r.memory),
            (DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST)
        );
    }

    #[test]
    fn extended_resources_are_scalars() {
        for (name, scalar) in [
            ("example.com/gpu", true),
            ("hugepages-2Mi", true),
            ("cpu", false),
            ("kubernetes.io/foo", false),
        ] {
            assert_eq!(is_scalar(name), scalar, "{name}");
        }
    }
}
