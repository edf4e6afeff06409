//! Taint-based eviction (Kubernetes `pkg/controller/tainteviction`): a pod
//! on a node with a `NoExecute` taint it does not tolerate is deleted at
//! once; one it tolerates for `tolerationSeconds` is deleted that long after
//! the taint was added (the API server gives every pod 300s tolerations of
//! `not-ready` and `unreachable`); one it tolerates without a limit stays.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};

use crate::Error;
use crate::events::Recorder;
use crate::informers::Informers;
use crate::pods::is_active;

const PERIOD: Duration = Duration::from_millis(500);

/// `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => key.is_empty() || key == taint.key,
        "Equal" | "" => {
            key == taint.key
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Eviction {
    Never,
    Now,
    /// Seconds after the latest of the taints was added.
    After(i64),
}

/// When `pod` must leave a node with `taints` (only `NoExecute` count).
pub fn eviction(pod: &Pod, taints: &[Taint]) -> Eviction {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut matching: Vec<&Toleration> = Vec::new();
    let mut any = false;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        any = true;
        let m: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if m.is_empty() {
            return Eviction::Now;
        }
        matching.extend(m);
    }
    // `getMinTolerationTime`: the shortest `tolerationSeconds` among the
    // matching tolerations; none with seconds tolerates forever.
    match matching.iter().filter_map(|t| t.toleration_seconds).min() {
        _ if !any => Eviction::Never,
        None => Eviction::Never,
        Some(s) => Eviction::After(s.max(0)),
    }
}

pub async fn run(
    client: Client,
    informers: Informers,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    // Read on a timer, so the caches are enough: no events needed.
    let (pod_informer, node_informer) = (informers.get::<Pod>(), informers.get::<Node>());
    let (pods, nodes) = (pod_informer.store(), node_informer.store());
    let recorder = Recorder::new(client.clone(), "taint-eviction-controller");
    let work = async {
        let _ = pod_informer.ready().await;
        let _ = node_informer.ready().await;
        // When we first saw a NoExecute taint without `timeAdded`.
        let mut first_seen: HashMap<(String, String), jiff::Timestamp> = HashMap::new();
        loop {
            if let Err(e) = pass(&client, &recorder, &pods, &nodes, &mut first_seen).await {
                tracing::info!(error = %e, "taint eviction pass failed; retrying");
            }
            tokio::time::sleep(PERIOD).await;
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = work => {}
    }
}

async fn pass(
    client: &Client,
    recorder: &Recorder,
    pods: &Store<Pod>,
    nodes: &Store<Node>,
    first_seen: &mut HashMap<(String, String), jiff::Timestamp>,
) -> Result<(), Error> {
    let now = jiff::Timestamp::now();
    let mut tainted: HashMap<String, (Vec<Taint>, jiff::Timestamp)> = HashMap::new();
    for node in nodes.state() {
        let taints: Vec<Taint> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.effect == "NoExecute")
            .collect();
        if taints.is_empty() {
            continue;
        }
        let added = taints
            .iter()
            .map(|t| match &t.time_added {
                Some(at) => at.0,
                None => *first_seen
                    .entry((node.name_any(), t.key.clone()))
                    .or_insert(now),
            })
            .max()
            .unwrap_or(now);
        tainted.insert(node.name_any(), (taints, added));
    }
    first_seen.retain(|(n, _), _| tainted.contains_key(n));
    for pod in pods.state() {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        let Some((taints, added)) = tainted.get(node) else {
            continue;
        };
        if !is_active(&pod) {
            continue;
        }
        let due = match eviction(&pod, taints) {
            Eviction::Never => false,
            Eviction::Now => true,
            Eviction::After(s) => added.as_second() + s <= now.as_second(),
        };
        if !due {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&pod.name_any(), &dp).await {
            Ok(_) => {
                recorder
                    .normal(
                        pod.as_ref(),
                        "TaintManagerEviction",
                        format!("Marking for deletion Pod {ns}/{}", pod.name_any()),
                    )
                    .await;
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        serde_json::from_value(json!({"key": key, "value": value, "effect": effect}))
            .expect("taint")
    }

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"spec": {"containers": [], "tolerations": tolerations}}))
            .expect("pod")
    }

    #[test]
    fn tolerations_match_taints_as_kubernetes_does() {
        let t = taint("k", "v", "NoExecute");
        let cases = [
            (json!({"key": "k", "operator": "Equal", "value": "v"}), true),
            (
                json!({"key": "k", "value": "v", "effect": "NoExecute"}),
                true,
            ),
            (json!({"key": "k", "value": "other"}), false),
            (json!({"key": "k", "operator": "Exists"}), true),
            (json!({"operator": "Exists"}), true),
            (
                json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"}),
                false,
            ),
            (json!({"key": "x", "operator": "Exists"}), false),
        ];
        for (tol, want) in cases {
            let tol: Toleration = serde_json::from_value(tol.clone()).expect("toleration");
            assert_eq!(tolerates(&tol, &t), want, "{tol:?}");
        }
    }

    #[test]
    fn eviction_is_now_bounded_or_never() {
        let taints = [taint("k", "", "NoExecute"), taint("s", "", "NoSchedule")];
        assert_eq!(eviction(&pod(json!([])), &taints), Eviction::Now);
        assert_eq!(
            eviction(
                &pod(
                    json!([{"key": "k", "operator": "Exists", "tolerationSeconds": 30},
                                 {"operator": "Exists", "tolerationSeconds": 10}])
                ),
                &taints
            ),
            Eviction::After(10)
        );
        assert_eq!(
            eviction(&pod(json!([{"key": "k", "operator": "Exists"}])), &taints),
            Eviction::Never
        );
        assert_eq!(
            eviction(&pod(json!([])), &[taint("s", "", "NoSchedule")]),
            Eviction::Never
        );
    }
}
