//! Node lifecycle against a real API server: a node whose Lease goes stale
//! is marked Unknown and tainted unreachable; a fresh heartbeat heals it.

mod common;

use std::time::Duration;

use common::eventually;
use controller_manager::nodelifecycle::{Config, UNREACHABLE, run_with};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

fn ready(n: &Node) -> Option<String> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

fn unreachable_effects(n: &Node) -> Vec<String> {
    let mut v: Vec<String> = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.key == UNREACHABLE)
        .map(|t| t.effect)
        .collect();
    v.sort();
    v
}

async fn heartbeat(nodes: &Api<Node>, leases: &Api<Lease>) {
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "reason": "KubeletReady", "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
    nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("node status");
    let renew = json!({"spec": {"renewTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()}});
    leases
        .patch("n1", &PatchParams::default(), &Patch::Merge(&renew))
        .await
        .expect("renew lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_stale_lease_is_marked_unknown_and_tainted_until_it_heartbeats() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server");
    let client = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        grace: Duration::from_secs(2),
        period: Duration::from_millis(200),
    };
    let informers = controller_manager::informers::Informers::new(client.clone());
    tokio::spawn(run_with(client.clone(), informers, config, async move {
        let _ = rx.await;
    }));
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).expect("node");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "n1"},
        "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}}))
    .expect("lease");
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create lease");
    heartbeat(&nodes, &leases).await;

    // Still healthy well within the grace period.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let n = nodes.get("n1").await.expect("node");
    assert_eq!(ready(&n).as_deref(), Some("True"));
    assert!(unreachable_effects(&n).is_empty());

    eventually("the node is Unknown and tainted unreachable", || async {
        let n = nodes.get("n1").await.expect("node");
        ready(&n).as_deref() == Some("Unknown")
            && unreachable_effects(&n) == ["NoExecute", "NoSchedule"]
    })
    .await;

    heartbeat(&nodes, &leases).await;
    eventually("the taints are removed", || async {
        let n = nodes.get("n1").await.expect("node");
        ready(&n).as_deref() == Some("True") && unreachable_effects(&n).is_empty()
    })
    .await;
    let _ = tx.send(());
}
