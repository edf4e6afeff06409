//! Hollow nodes (kubemark's idea): N Node objects that register with
//! capacity and a Ready condition, renew their Lease in `kube-node-lease`
//! every 10 s, and mark pods bound to them Running and Ready with a pod IP
//! through the status subresource — with no containers behind them. They
//! give the scheduler something real to schedule onto in tests and
//! benchmarks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use client::lean::{self, Lean};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_DURATION_SECONDS: i32 = 40;
pub const RENEW_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HollowError {
    #[error("bad {flag} {value:?}: {message}")]
    Flag {
        flag: &'static str,
        value: String,
        message: String,
    },
    #[error("cannot register node {node}: {source}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Client(#[from] client::ClientError),
    #[error("cannot create namespace {LEASE_NAMESPACE}: {0}")]
    Namespace(#[source] kube::Error),
}

/// What the hollow nodes look like.
#[derive(Debug, Clone)]
pub struct HollowSpec {
    pub count: usize,
    pub cpu: String,
    pub memory: String,
    pub pods: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub name_prefix: String,
}

impl Default for HollowSpec {
    fn default() -> HollowSpec {
        HollowSpec {
            count: 1,
            cpu: "4".into(),
            memory: "16Gi".into(),
            pods: "110".into(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            name_prefix: "hollow-".into(),
        }
    }
}

/// `k=v` labels as on the command line.
pub fn parse_label(s: &str) -> Result<(String, String), HollowError> {
    let (k, v) = s.split_once('=').ok_or_else(|| HollowError::Flag {
        flag: "--labels",
        value: s.into(),
        message: "expected key=value".into(),
    })?;
    Ok((k.trim().into(), v.trim().into()))
}

/// `key=value:Effect` or `key:Effect` taints, as `kubectl taint` writes them.
pub fn parse_taint(s: &str) -> Result<Taint, HollowError> {
    let bad = |m: &str| HollowError::Flag {
        flag: "--taints",
        value: s.into(),
        message: m.into(),
    };
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| bad("expected key=value:Effect"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(bad(
            "effect must be NoSchedule, PreferNoSchedule or NoExecute",
        ));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if key.is_empty() {
        return Err(bad("empty key"));
    }
    Ok(Taint {
        key: key.into(),
        value,
        effect: effect.into(),
        time_added: None,
    })
}

fn node_name(spec: &HollowSpec, i: usize) -> String {
    format!("{}{i}", spec.name_prefix)
}

/// Node `i`'s internal IP and pod range, one /24 of 10.128.0.0/9 per node.
fn node_ips(i: usize) -> (String, [u8; 3]) {
    let a = 128 + ((i >> 8) & 0x7f) as u8;
    let b = (i & 0xff) as u8;
    (format!("10.{}.{}.1", a.wrapping_sub(64), b), [10, a, b])
}

fn node_object(spec: &HollowSpec, i: usize) -> Node {
    let name = node_name(spec, i);
    let mut labels = spec.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), "amd64".into());
    labels.insert("node.ferrokube.io/hollow".into(), "true".into());
    let (_, pod_net) = node_ips(i);
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "taints": spec.taints,
            "podCIDR": format!("{}.{}.{}.0/24", pod_net[0], pod_net[1], pod_net[2]),
            "podCIDRs": [format!("{}.{}.{}.0/24", pod_net[0], pod_net[1], pod_net[2])],
        },
    }))
    .unwrap_or_default()
}

fn node_status(spec: &HollowSpec, i: usize) -> serde_json::Value {
    let now = Time(jiff::Timestamp::now());
    let (ip, _) = node_ips(i);
    let resources = json!({"cpu": spec.cpu, "memory": spec.memory, "pods": spec.pods, "ephemeral-storage": "100Gi"});
    let cond = |t: &str, status: &str, reason: &str, msg: &str| {
        json!({
        "type": t, "status": status, "reason": reason, "message": msg,
        "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({"status": {
        "capacity": resources,
        "allocatable": resources,
        "phase": "Running",
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status (hollow)"),
        ],
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": node_name(spec, i)}],
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "hollow",
            "osImage": "ferrokube hollow node", "containerRuntimeVersion": "hollow://0",
            "kubeletVersion": "v1.33.0", "kubeProxyVersion": "v1.33.0",
            "operatingSystem": "linux", "architecture": "amd64"
        },
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
    }})
}

/// Nodes registered at once: thousands of nodes one after another would
/// spend most of the time waiting for each round trip.
const REGISTER_CONCURRENCY: usize = 32;

/// Registers the nodes (idempotently) and sets their status.
pub async fn register(
    client: &kube::Client,
    spec: &HollowSpec,
) -> Result<Vec<String>, HollowError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let results: Vec<Result<String, HollowError>> = futures::stream::iter(0..spec.count)
        .map(|i| register_one(&nodes, spec, i))
        .buffered(REGISTER_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn register_one(
    nodes: &Api<Node>,
    spec: &HollowSpec,
    i: usize,
) -> Result<String, HollowError> {
    let name = node_name(spec, i);
    match nodes
        .create(&PostParams::default(), &node_object(spec, i))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(source) => return Err(HollowError::Register { node: name, source }),
    }
    nodes
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(node_status(spec, i)),
        )
        .await
        .map_err(|source| HollowError::Register {
            node: name.clone(),
            source,
        })?;
    Ok(name)
}

async fn ensure_lease_namespace(client: &kube::Client) -> Result<(), HollowError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": LEASE_NAMESPACE}})).unwrap_or_default();
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(HollowError::Namespace(e)),
    }
}

/// Creates or renews each node's Lease.
async fn renew_leases(client: &kube::Client, names: &[String]) {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let nodes: Api<Node> = Api::all(client.clone());
    let now = MicroTime(jiff::Timestamp::now());
    for name in names {
        let patch = json!({"spec": {"renewTime": now}});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => continue,
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "cannot renew lease");
                continue;
            }
        }
        let uid = nodes.get(name).await.ok().and_then(|n| n.metadata.uid);
        let mut lease = json!({
            "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": now},
        });
        if let Some(uid) = uid {
            lease["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]);
        }
        let lease: Lease = serde_json::from_value(lease).unwrap_or_default();
        if let Err(e) = api.create(&PostParams::default(), &lease).await {
            tracing::warn!(node = %name, error = %e, "cannot create lease");
        }
    }
}

fn running_status(pod: &Pod, host_ip: &str, pod_ip: &str) -> serde_json::Value {
    let now = Time(jiff::Timestamp::now());
    let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    let statuses: Vec<serde_json::Value> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| {
            json!({
                "name": c.name, "ready": true, "started": true, "restartCount": 0,
                "image": c.image.clone().unwrap_or_default(),
                "imageID": format!("hollow://{}", c.image.clone().unwrap_or_default()),
                "containerID": format!("hollow://{}", uuid_like(pod, &c.name)),
                "state": {"running": {"startedAt": now}},
            })
        })
        .collect();
    json!({"status": {
        "phase": "Running",
        "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    }})
}

fn uuid_like(pod: &Pod, container: &str) -> String {
    format!(
        "{}-{container}",
        pod.metadata.uid.as_deref().unwrap_or("pod")
    )
}

struct Kubelet {
    client: kube::Client,
    /// Node name → (index, next host octet, pod key → IP).
    nodes: HashMap<String, (usize, u8, HashMap<String, String>)>,
    /// Pods already marked running (key → uid).
    running: HashSet<String>,
}

impl Kubelet {
    async fn handle(&mut self, pod: Pod) {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            return;
        };
        let Some((i, next, ips)) = self.nodes.get_mut(&node) else {
            return;
        };
        let key = crate::framework::pod_key(&pod);
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if pod.metadata.deletion_timestamp.is_some() {
            // Nothing to stop: finish the graceful deletion at once.
            ips.remove(&key);
            self.running.remove(&key);
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: pod.metadata.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let _ = api.delete(&name, &dp).await;
            return;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if self.running.contains(&key) || matches!(phase, Some("Running" | "Succeeded" | "Failed"))
        {
            return;
        }
        let (host_ip, net) = node_ips(*i);
        let ip = match ips.get(&key) {
            Some(ip) => ip.clone(),
            None => {
                *next = if *next >= 254 { 2 } else { *next + 1 };
                let ip = format!("{}.{}.{}.{}", net[0], net[1], net[2], *next);
                ips.insert(key.clone(), ip.clone());
                ip
            }
        };
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Strategic(running_status(&pod, &host_ip, &ip)),
            )
            .await
        {
            Ok(_) => {
                self.running.insert(key);
            }
            Err(e) => tracing::warn!(pod = %key, error = %e, "cannot mark hollow pod running"),
        }
    }
}

/// Registers the nodes, then keeps leases and pods up to date until `shutdown`.
pub async fn run(
    client: kube::Client,
    spec: HollowSpec,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HollowError> {
    ensure_lease_namespace(&client).await?;
    let names = Arc::new(register(&client, &spec).await?);
    tracing::info!(count = names.len(), "hollow nodes registered");
    let lease_client = client.clone();
    let lease_names = names.clone();
    let leases = tokio::spawn(async move {
        let mut tick = tokio::time::interval(RENEW_INTERVAL);
        loop {
            tick.tick().await;
            renew_leases(&lease_client, &lease_names).await;
        }
    });
    let mut kubelet = Kubelet {
        client: client.clone(),
        nodes: names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), (i, 1, HashMap::new())))
            .collect(),
        running: HashSet::new(),
    };
    let pods = async move {
        let api: Api<Lean<Pod>> = Api::all(client.clone());
        let mut stream = lean::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Apply(p) | Event::InitApply(p)) => kubelet.handle(p).await,
                Ok(Event::Delete(p)) => {
                    let key = crate::framework::pod_key(&p);
                    kubelet.running.remove(&key);
                    for (_, _, ips) in kubelet.nodes.values_mut() {
                        ips.remove(&key);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "hollow pod watch failed; retrying"),
            }
        }
    };
    tokio::select! {
        _ = pods => {}
        _ = shutdown => {}
    }
    leases.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_parse_as_kubectl_writes_them() {
        let t = parse_taint("dedicated=gpu:NoSchedule").expect("valid");
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        let t = parse_taint("spot:PreferNoSchedule").expect("valid");
        assert_eq!(
            (t.key.as_str(), t.value, t.effect.as_str()),
            ("spot", None, "PreferNoSchedule")
        );
        for bad in ["nokey", "k=v:Sometimes", "=v:NoSchedule"] {
            assert!(parse_taint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_node_gets_its_own_addresses() {
        let (a, na) = node_ips(0);
        let (b, nb) = node_ips(1);
        let (c, nc) = node_ips(300);
        assert_ne!(a, b);
        assert_ne!(na, nb);
        assert_ne!(nb, nc);
        assert_ne!(b, c);
    }

    #[test]
    fn labels_parse_as_key_value() {
        assert_eq!(
            parse_label("zone=a").expect("valid"),
            ("zone".into(), "a".into())
        );
        assert!(parse_label("zone").is_err());
    }
}
