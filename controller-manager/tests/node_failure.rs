//! A node stops heartbeating: the node lifecycle controller marks it
//! Unknown, taints it unreachable and marks its pods not ready; taint
//! eviction deletes them after their toleration, and the ReplicaSet
//! controller replaces them, which the real scheduler places on the node
//! that is still alive. A stand-in kubelet per node renews the node's
//! Lease and marks its pods Ready, and stops both when its node "dies".

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::eventually;
use controller_manager::nodelifecycle::{self, Config};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use scheduler::framework::config::KubeSchedulerConfiguration;
use scheduler::hollow::{self, HollowSpec};
use scheduler::scheduler::Scheduler;
use serde_json::json;

type Alive = Arc<Mutex<HashSet<String>>>;

fn alive(set: &Alive, node: &str) -> bool {
    set.lock().expect("lock").contains(node)
}

/// Renews the Leases of the live nodes.
async fn heartbeats(client: Client, nodes: Vec<String>, live: Alive) {
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    loop {
        for n in &nodes {
            if !alive(&live, n) {
                continue;
            }
            let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": n},
                "spec": {"holderIdentity": n, "leaseDurationSeconds": 40,
                    "renewTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}});
            let _ = leases
                .patch(
                    n,
                    &PatchParams::apply("test-kubelet").force(),
                    &Patch::Apply(&lease),
                )
                .await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Marks pods bound to a live node Running and Ready.
async fn kubelets(client: Client, live: Alive) {
    let all: Api<Pod> = Api::all(client.clone());
    let mut events = watcher(all, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(ev) = events.next().await {
        let Ok(pod) = ev else { continue };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        if !alive(&live, &node)
            || pod.metadata.deletion_timestamp.is_some()
            || controller_manager::pods::is_ready(&pod)
        {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let now = jiff::Timestamp::now().to_string();
        let status = json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
        let _ = api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await;
    }
}

fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_goes_not_ready_and_its_pods_are_replaced_on_another() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server");
    let client = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "kube-node-lease"}})).expect("ns");
    let _ = namespaces.create(&PostParams::default(), &ns).await;
    let names = hollow::register(
        &client,
        &HollowSpec {
            count: 2,
            name_prefix: "node-".into(),
            ..HollowSpec::default()
        },
    )
    .await
    .expect("register nodes");
    let live: Alive = Arc::new(Mutex::new(names.iter().cloned().collect()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut tasks = vec![
        tokio::spawn(heartbeats(client.clone(), names.clone(), live.clone())),
        tokio::spawn(kubelets(client.clone(), live.clone())),
    ];
    let config = Config {
        grace: Duration::from_secs(2),
        period: Duration::from_millis(200),
    };
    let informers = controller_manager::informers::Informers::new(client.clone());
    tasks.push(tokio::spawn(nodelifecycle::run_with(
        client.clone(),
        informers.clone(),
        config,
        stop(),
    )));
    tasks.push(tokio::spawn(controller_manager::taint_eviction::run(
        client.clone(),
        informers.clone(),
        stop(),
    )));
    tasks.push(tokio::spawn(controller_manager::replicaset::run(
        client.clone(),
        informers.clone(),
        stop(),
    )));
    tasks.push(tokio::spawn(controller_manager::deployment::run(
        client.clone(),
        informers.clone(),
        stop(),
    )));
    let frameworks = KubeSchedulerConfiguration::default()
        .build()
        .expect("scheduler profiles");
    let sched = Scheduler::new(client.clone(), frameworks);
    tasks.push(tokio::spawn(async move {
        let _ = sched.run(None, std::future::pending()).await;
    }));

    // Short tolerations of the unreachable taint, so eviction comes soon.
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}],
                    "tolerations": [
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 1},
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 1}]}}},
    }))
    .expect("deployment");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
    let available = |n: i32| {
        let deployments = deployments.clone();
        async move {
            let s = deployments
                .get("web")
                .await
                .expect("deployment")
                .status
                .unwrap_or_default();
            s.available_replicas == Some(n) && s.replicas == Some(n)
        }
    };
    eventually("4 available", || available(4)).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let before = pods.list(&ListParams::default()).await.expect("pods").items;
    let victim = node_of(&before[0]);
    let survivor = names
        .iter()
        .find(|n| **n != victim)
        .cloned()
        .expect("two nodes");
    let doomed: Vec<String> = before
        .iter()
        .filter(|p| node_of(p) == victim)
        .map(|p| p.name_any())
        .collect();
    live.lock().expect("lock").remove(&victim);

    let nodes: Api<Node> = Api::all(client.clone());
    eventually("the silent node is NotReady (Unknown)", || async {
        let n = nodes.get(&victim).await.expect("node");
        n.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "Unknown")
    })
    .await;
    eventually("its pods are replaced on the live node", || async {
        let now = pods.list(&ListParams::default()).await.expect("pods").items;
        let live: Vec<&Pod> = now
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        live.len() == 4
            && live.iter().all(|p| {
                node_of(p) == survivor
                    && controller_manager::pods::is_ready(p)
                    && !doomed.contains(&p.name_any())
            })
    })
    .await;
    eventually("4 available again", || available(4)).await;

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually("the node and its pods have events", || async {
        let all = events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items;
        let has = |reason: &str, message: &str| {
            all.iter().any(|e| {
                e.reason.as_deref() == Some(reason) && e.message.as_deref() == Some(message)
            })
        };
        has(
            "NodeNotReady",
            &format!("Node {victim} status is now: NodeNotReady"),
        ) && doomed.iter().all(|p| {
            has(
                "TaintManagerEviction",
                &format!("Marking for deletion Pod default/{p}"),
            ) && has("NodeNotReady", "Node is not ready")
        })
    })
    .await;
    let _ = stop_tx.send(true);
    for t in tasks {
        t.abort();
    }
}
