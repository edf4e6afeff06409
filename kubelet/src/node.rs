//! The Node object and its heartbeat: register the Node with its capacity,
//! addresses and `nodeInfo`, keep the `Ready` condition fresh in
//! NodeStatus, and renew the node's Lease in `kube-node-lease` every 10 s
//! (the lightweight heartbeat the node lifecycle controller watches).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Namespace, Node, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::host::HostFacts;
use crate::pressure::Pressure;

/// How often the Lease is renewed (kubelet `nodeLeaseRenewInterval`).
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// The Lease duration the kubelet advertises (`nodeLeaseDurationSeconds`).
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// How often NodeStatus is refreshed when nothing changes
/// (`nodeStatusReportFrequency`).
pub const STATUS_REPORT: Duration = Duration::from_secs(60);
const LEASE_NAMESPACE: &str = "kube-node-lease";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot register node {node}: {source}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot update the status of node {node}: {source}")]
    Status {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot renew the lease of node {node}: {source}")]
    Lease {
        node: String,
        #[source]
        source: kube::Error,
    },
}

/// What the kubelet knows about its node.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub name: String,
    pub facts: HostFacts,
    /// `containerd://1.6.20`.
    pub runtime_version: String,
    /// Where the kubelet API listens (`status.daemonEndpoints`).
    pub kubelet_port: u16,
    /// The kubelet's root directory, whose filesystem is `nodefs`.
    pub data_dir: std::path::PathBuf,
}

/// The pressure conditions and when each last changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureState {
    pub pressure: Pressure,
    pub memory_since: Timestamp,
    pub disk_since: Timestamp,
    pub pid_since: Timestamp,
}

impl PressureState {
    pub fn new(pressure: Pressure, since: Timestamp) -> PressureState {
        PressureState {
            pressure,
            memory_since: since,
            disk_since: since,
            pid_since: since,
        }
    }

    /// The next state given a new observation at `now`.
    pub fn observe(&self, pressure: Pressure, now: Timestamp) -> PressureState {
        let since = |was: bool, is: bool, at: Timestamp| if was == is { at } else { now };
        PressureState {
            pressure,
            memory_since: since(self.pressure.memory, pressure.memory, self.memory_since),
            disk_since: since(self.pressure.disk, pressure.disk, self.disk_since),
            pid_since: since(self.pressure.pid, pressure.pid, self.pid_since),
        }
    }
}

/// The host's pressure now, against Kubernetes' default thresholds.
pub fn observe_pressure(data_dir: &std::path::Path) -> Pressure {
    crate::pressure::evaluate(
        &crate::pressure::read_signals(data_dir),
        &crate::pressure::Thresholds::default(),
    )
}

impl NodeIdentity {
    pub fn host_ip(&self) -> String {
        self.facts
            .internal_ip
            .map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string())
    }

    /// The status the kubelet reports; `now` stamps the heartbeat.
    pub fn status(
        &self,
        now: Timestamp,
        ready_since: Timestamp,
        pressure: &PressureState,
    ) -> NodeStatus {
        let p = pressure.pressure;
        let capacity = self.facts.capacity();
        let addresses = vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: self.host_ip(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: self.name.clone(),
            },
        ];
        let condition =
            |type_: &str, status: &str, reason: &str, message: &str, since| NodeCondition {
                type_: type_.into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_heartbeat_time: Some(Time(now)),
                last_transition_time: Some(Time(since)),
            };
        NodeStatus {
            allocatable: Some(capacity.clone()),
            capacity: Some(capacity),
            addresses: Some(addresses),
            daemon_endpoints: Some(k8s_openapi::api::core::v1::NodeDaemonEndpoints {
                kubelet_endpoint: Some(k8s_openapi::api::core::v1::DaemonEndpoint {
                    port: i32::from(self.kubelet_port),
                }),
            }),
            conditions: Some(vec![
                if p.memory {
                    condition(
                        "MemoryPressure",
                        "True",
                        "KubeletHasInsufficientMemory",
                        "kubelet has insufficient memory available",
                        pressure.memory_since,
                    )
                } else {
                    condition(
                        "MemoryPressure",
                        "False",
                        "KubeletHasSufficientMemory",
                        "kubelet has sufficient memory available",
                        pressure.memory_since,
                    )
                },
                if p.disk {
                    condition(
                        "DiskPressure",
                        "True",
                        "KubeletHasDiskPressure",
                        "kubelet has disk pressure",
                        pressure.disk_since,
                    )
                } else {
                    condition(
                        "DiskPressure",
                        "False",
                        "KubeletHasNoDiskPressure",
                        "kubelet has no disk pressure",
                        pressure.disk_since,
                    )
                },
                if p.pid {
                    condition(
                        "PIDPressure",
                        "True",
                        "KubeletHasInsufficientPID",
                        "kubelet has insufficient PID available",
                        pressure.pid_since,
                    )
                } else {
                    condition(
                        "PIDPressure",
                        "False",
                        "KubeletHasSufficientPID",
                        "kubelet has sufficient PID available",
                        pressure.pid_since,
                    )
                },
                condition(
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                    ready_since,
                ),
            ]),
            node_info: Some(NodeSystemInfo {
                architecture: self.facts.architecture.clone(),
                boot_id: self.facts.boot_id.clone(),
                container_runtime_version: self.runtime_version.clone(),
                kernel_version: self.facts.kernel_version.clone(),
                kube_proxy_version: String::new(),
                kubelet_version: concat!("v1.33.0-ferrokube-", env!("CARGO_PKG_VERSION")).into(),
                machine_id: self.facts.machine_id.clone(),
                operating_system: "linux".into(),
                os_image: self.facts.os_image.clone(),
                system_uuid: self.facts.machine_id.clone(),
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        }
    }
}

/// Creates the Node if it does not exist, then writes its status.
pub async fn register(client: &Client, id: &NodeIdentity) -> Result<Node, NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let labels = [
        ("kubernetes.io/hostname", id.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", id.facts.architecture.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let node = Node {
        metadata: ObjectMeta {
            name: Some(id.name.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(source) => {
            return Err(NodeError::Register {
                node: id.name.clone(),
                source,
            });
        }
    }
    let now = Timestamp::now();
    let pressure = PressureState::new(observe_pressure(&id.data_dir), now);
    update_status(client, id, now, now, &pressure).await
}

/// Writes the node status (a merge patch on `nodes/<name>/status`).
pub async fn update_status(
    client: &Client,
    id: &NodeIdentity,
    now: Timestamp,
    ready_since: Timestamp,
    pressure: &PressureState,
) -> Result<Node, NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({ "status": id.status(now, ready_since, pressure) });
    nodes
        .patch_status(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| NodeError::Status {
            node: id.name.clone(),
            source,
        })
}

/// Creates or renews the node's Lease, owned by the Node so that deleting
/// the Node collects it (as the kubelet does).
pub async fn renew_lease(client: &Client, node: &Node, now: Timestamp) -> Result<(), NodeError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let err = |source| NodeError::Lease {
        node: name.clone(),
        source,
    };
    ensure_namespace(client, LEASE_NAMESPACE)
        .await
        .map_err(err)?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let spec = LeaseSpec {
        holder_identity: Some(name.clone()),
        lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
        renew_time: Some(MicroTime(now)),
        ..LeaseSpec::default()
    };
    match leases.get_opt(&name).await.map_err(err)? {
        Some(mut lease) => {
            lease.spec = Some(spec);
            leases
                .replace(&name, &PostParams::default(), &lease)
                .await
                .map_err(err)?;
        }
        None => {
            let owner = node.metadata.uid.clone().map(|uid| OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: name.clone(),
                uid,
                ..OwnerReference::default()
            });
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    owner_references: owner.map(|o| vec![o]),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => return Err(err(e)),
            }
        }
    }
    Ok(())
}

async fn ensure_namespace(client: &Client, name: &str) -> Result<(), kube::Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(name).await?.is_some() {
        return Ok(());
    }
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match namespaces.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Renews the Lease every 10 s, observes the host's pressure as often, and
/// refreshes NodeStatus every minute or at once when a pressure condition
/// changes, forever; errors are logged and retried on the next tick (the
/// kubelet keeps heartbeating through API outages).
pub async fn heartbeat(client: Client, id: NodeIdentity, mut node: Node) {
    let ready_since = Timestamp::now();
    let mut pressure = PressureState::new(observe_pressure(&id.data_dir), ready_since);
    let mut last_status = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(LEASE_RENEW);
    loop {
        tick.tick().await;
        let now = Timestamp::now();
        if let Err(e) = renew_lease(&client, &node, now).await {
            tracing::warn!(error = %e, "lease renewal failed");
        }
        let observed = pressure.observe(observe_pressure(&id.data_dir), now);
        let changed = observed.pressure != pressure.pressure;
        pressure = observed;
        if changed || last_status.elapsed() >= STATUS_REPORT {
            match update_status(&client, &id, now, ready_since, &pressure).await {
                Ok(updated) => {
                    node = updated;
                    last_status = tokio::time::Instant::now();
                }
                Err(e) => tracing::warn!(error = %e, "node status update failed"),
            }
        }
    }
}

/// Waits until the Node has a `spec.podCIDR` (assigned by node IPAM in
/// the controller-manager) and returns it. Pods cannot be networked
/// before that, so the kubelet starts none.
pub async fn wait_for_pod_cidr(client: &Client, name: &str) -> String {
    let api: Api<Node> = Api::all(client.clone());
    let mut logged = false;
    loop {
        match api.get_opt(name).await {
            Ok(Some(node)) => {
                if let Some(c) = node.spec.and_then(|s| s.pod_cidr).filter(|c| !c.is_empty()) {
                    return c;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "reading the node for its pod CIDR"),
        }
        if !logged {
            tracing::info!(node = %name, "waiting for the node's podCIDR");
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> NodeIdentity {
        NodeIdentity {
            name: "node-a".into(),
            facts: HostFacts {
                cpus: 4,
                memory_bytes: 1 << 30,
                ephemeral_storage_bytes: 1 << 30,
                hostname: "host".into(),
                internal_ip: Some("10.0.0.5".parse().expect("ip")),
                kernel_version: "6.1.0".into(),
                os_image: "Debian".into(),
                architecture: "amd64".into(),
                machine_id: "m".into(),
                boot_id: "b".into(),
            },
            runtime_version: "containerd://1.6.20".into(),
            kubelet_port: 10250,
            data_dir: "/".into(),
        }
    }

    #[test]
    fn status_reports_ready_addresses_and_runtime() {
        let now = Timestamp::UNIX_EPOCH;
        let status = identity().status(now, now, &PressureState::new(Pressure::default(), now));
        let ready = status
            .conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .expect("Ready condition");
        assert_eq!(ready.status, "True");
        let addresses = status.addresses.expect("addresses");
        assert_eq!(addresses[0].type_, "InternalIP");
        assert_eq!(addresses[0].address, "10.0.0.5");
        assert_eq!(addresses[1].type_, "Hostname");
        let endpoint = status.daemon_endpoints.and_then(|d| d.kubelet_endpoint);
        assert_eq!(endpoint.map(|e| e.port), Some(10250));
        let info = status.node_info.expect("nodeInfo");
        assert_eq!(info.container_runtime_version, "containerd://1.6.20");
        assert_eq!(info.kernel_version, "6.1.0");
        assert_eq!(status.allocatable, status.capacity);
    }

    #[test]
    fn pressure_conditions_follow_the_host_with_their_own_transition_times() {
        let start = Timestamp::UNIX_EPOCH;
        let later = Timestamp::from_second(100).expect("ts");
        let calm = PressureState::new(Pressure::default(), start);
        let pressed = calm.observe(
            Pressure {
                memory: true,
                ..Pressure::default()
            },
            later,
        );
        assert_eq!(pressed.memory_since, later);
        assert_eq!(
            pressed.disk_since, start,
            "unchanged conditions keep their time"
        );
        let status = identity().status(later, start, &pressed);
        let condition = |t: &str| {
            status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == t)
                .cloned()
                .expect("condition")
        };
        let memory = condition("MemoryPressure");
        assert_eq!(memory.status, "True");
        assert_eq!(
            memory.reason.as_deref(),
            Some("KubeletHasInsufficientMemory")
        );
        assert_eq!(memory.last_transition_time, Some(Time(later)));
        assert_eq!(condition("DiskPressure").status, "False");
        assert_eq!(
            condition("PIDPressure").reason.as_deref(),
            Some("KubeletHasSufficientPID")
        );
    }
}
