//! Node lifecycle (Kubernetes `pkg/controller/nodelifecycle`): a node whose
//! kubelet stopped renewing its Lease (and posting status) for longer than
//! the grace period gets its conditions set to `Unknown`, and nodes that
//! are not Ready are tainted so the scheduler avoids them and pods without
//! a toleration can be evicted: `node.kubernetes.io/unreachable` (Ready
//! Unknown) or `node.kubernetes.io/not-ready` (Ready False), each with
//! `NoSchedule` and `NoExecute` effects. The taints go when Ready is back.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::Error;
use crate::events::{NORMAL, Recorder, WARNING};
use crate::informers::Informers;

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The namespace of the kubelets' heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Conditions a kubelet posts and the controller marks Unknown.
const CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// `--node-monitor-grace-period` (50s since Kubernetes 1.32).
    pub grace: Duration,
    /// `--node-monitor-period`.
    pub period: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            grace: Duration::from_secs(50),
            period: Duration::from_secs(5),
        }
    }
}

pub async fn run(
    client: Client,
    informers: Informers,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    run_with(client, informers, Config::default(), stop).await;
}

pub async fn run_with(
    client: Client,
    informers: Informers,
    config: Config,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    // Read on a timer, so the caches are enough. Leases come from the
    // shared cluster-wide informer (the collector watches them all too);
    // only those in `kube-node-lease` are heartbeats.
    let (node_informer, lease_informer) = (informers.get::<Node>(), informers.get::<Lease>());
    let (nodes, leases) = (node_informer.store(), lease_informer.store());
    let recorder = Recorder::new(client.clone(), "node-controller");
    let monitor = async {
        let _ = node_informer.ready().await;
        let _ = lease_informer.ready().await;
        let mut known = HashSet::new();
        loop {
            for node in nodes.state() {
                if known.insert(node.name_any()) {
                    let n = node.name_any();
                    recorder.emit(
                        &node_ref(&node),
                        NORMAL,
                        "RegisteredNode",
                        format!("Node {n} event: Registered Node {n} in Controller"),
                    );
                }
            }
            if let Err(e) = monitor_pass(&client, &recorder, &nodes, &leases, config).await {
                tracing::info!(error = %e, "node health pass failed; retrying");
            }
            tokio::time::sleep(config.period).await;
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = monitor => {}
    }
}

async fn monitor_pass(
    client: &Client,
    recorder: &Recorder,
    nodes: &Store<Node>,
    leases: &Store<Lease>,
    config: Config,
) -> Result<(), Error> {
    let api: Api<Node> = Api::all(client.clone());
    let now = jiff::Timestamp::now();
    for node in nodes.state() {
        let name = node.name_any();
        let lease = leases.get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
        let mut node = (*node).clone();
        if let Some(conditions) = stale_conditions(&node, lease.as_deref(), config.grace, now) {
            let was_ready = ready_status(&node) == Some("True");
            let patch = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "status": {"conditions": conditions},
            });
            node = match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(n) => n,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => continue,
                Err(e) => return Err(e.into()),
            };
            if was_ready {
                recorder.emit(
                    &node_ref(&node),
                    NORMAL,
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                );
                mark_pods_not_ready(client, recorder, &name).await?;
            }
        }
        if let Some(taints) = wanted_taints(&node, now) {
            let patch = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"taints": taints},
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The Node as events name it: Kubernetes records node events with an
/// empty namespace, so they land in `default`.
fn node_ref(node: &Node) -> Node {
    Node {
        metadata: ObjectMeta {
            name: node.metadata.name.clone(),
            uid: node.metadata.uid.clone(),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

/// `MarkPodsNotReady`: the pods of a node that stopped reporting are no
/// longer Ready, so workloads count them unavailable at once rather than
/// when they are evicted.
async fn mark_pods_not_ready(
    client: &Client,
    recorder: &Recorder,
    node: &str,
) -> Result<(), Error> {
    let all: Api<Pod> = Api::all(client.clone());
    let pods = all
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    for pod in pods.items {
        if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
            continue;
        }
        let Some(mut conditions) = pod.status.as_ref().and_then(|s| s.conditions.clone()) else {
            continue;
        };
        let Some(ready) = conditions
            .iter_mut()
            .find(|c| c.type_ == "Ready" && c.status != "False")
        else {
            continue;
        };
        ready.status = "False".into();
        ready.last_transition_time = Some(Time(jiff::Timestamp::now()));
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({
            "metadata": {"resourceVersion": pod.metadata.resource_version},
            "status": {"conditions": conditions},
        });
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            // Recorded after the update, so the pod still exists.
            Ok(_) => recorder.emit(&pod, WARNING, "NodeNotReady", "Node is not ready".into()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// The node's conditions with the kubelet-posted ones set to Unknown, if
/// its last heartbeat (Lease renewal or Ready heartbeat, or its creation
/// when it never posted) is older than `grace`; `None` when nothing
/// changes.
pub fn stale_conditions(
    node: &Node,
    lease: Option<&Lease>,
    grace: Duration,
    now: jiff::Timestamp,
) -> Option<Vec<NodeCondition>> {
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let heartbeat = conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let renewed = lease
        .and_then(|l| l.spec.as_ref()?.renew_time.as_ref())
        .map(|t| t.0);
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let probe = [heartbeat, renewed, created].into_iter().flatten().max()?;
    let grace = jiff::SignedDuration::try_from(grace).ok()?;
    if now.duration_since(probe) <= grace {
        return None;
    }
    let mut out = conditions.clone();
    let mut changed = false;
    for t in CONDITIONS {
        let stamp = Some(Time(now));
        match out.iter_mut().find(|c| c.type_ == t) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = stamp;
                changed = true;
            }
            None => {
                out.push(NodeCondition {
                    type_: t.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: created.map(Time),
                    last_transition_time: stamp,
                });
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

/// The node's taints with the not-ready/unreachable ones matching its Ready
/// condition; `None` when they already do.
pub fn wanted_taints(node: &Node, now: jiff::Timestamp) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let key = match ready_status(node) {
        Some("False") => Some(NOT_READY),
        Some("Unknown") => Some(UNREACHABLE),
        _ => None,
    };
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !((t.key == NOT_READY || t.key == UNREACHABLE) && Some(t.key.as_str()) != key))
        .cloned()
        .collect();
    if let Some(key) = key {
        for effect in ["NoSchedule", "NoExecute"] {
            if !out.iter().any(|t| t.key == key && t.effect == effect) {
                out.push(Taint {
                    key: key.into(),
                    effect: effect.into(),
                    // Eviction counts tolerationSeconds from timeAdded.
                    time_added: (effect == "NoExecute").then_some(Time(now)),
                    value: None,
                });
            }
        }
    }
    (out != current).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(ready: &str, heartbeat: &str, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": ready,
                "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat}]},
        }))
        .expect("node")
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn a_node_silent_past_the_grace_period_becomes_unknown() {
        let n = node("True", "2024-01-01T00:00:00Z", json!([]));
        let grace = Duration::from_secs(50);
        assert!(stale_conditions(&n, None, grace, at("2024-01-01T00:00:40Z")).is_none());
        let c = stale_conditions(&n, None, grace, at("2024-01-01T00:01:00Z")).expect("stale");
        let ready = c.iter().find(|c| c.type_ == "Ready").expect("ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("Unknown", Some("NodeStatusUnknown"))
        );
        assert_eq!(c.len(), 4, "pressure conditions are added as never updated");
    }

    #[test]
    fn a_renewed_lease_keeps_a_node_healthy() {
        let n = node("True", "2024-01-01T00:00:00Z", json!([]));
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": "n1"}, "spec": {"renewTime": "2024-01-01T00:00:55.000000Z"}}))
        .expect("lease");
        assert!(
            stale_conditions(
                &n,
                Some(&lease),
                Duration::from_secs(50),
                at("2024-01-01T00:01:00Z")
            )
            .is_none()
        );
    }

    #[test]
    fn taints_follow_the_ready_condition() {
        let now = at("2024-01-01T00:00:00Z");
        let keys = |t: Vec<Taint>| t.into_iter().map(|t| (t.key, t.effect)).collect::<Vec<_>>();
        let unknown = wanted_taints(&node("Unknown", "2024-01-01T00:00:00Z", json!([])), now)
            .expect("taints");
        assert_eq!(
            keys(unknown),
            [
                (UNREACHABLE.to_string(), "NoSchedule".to_string()),
                (UNREACHABLE.to_string(), "NoExecute".to_string())
            ]
        );
        let tainted = json!([{"key": UNREACHABLE, "effect": "NoExecute"}, {"key": "own", "effect": "NoSchedule"}]);
        let healed =
            wanted_taints(&node("True", "2024-01-01T00:00:00Z", tainted), now).expect("taints");
        assert_eq!(
            keys(healed),
            [("own".to_string(), "NoSchedule".to_string())]
        );
        let not_ready =
            wanted_taints(&node("False", "2024-01-01T00:00:00Z", json!([])), now).expect("taints");
        assert!(not_ready.iter().all(|t| t.key == NOT_READY));
        assert!(wanted_taints(&node("True", "2024-01-01T00:00:00Z", json!([])), now).is_none());
    }
}
