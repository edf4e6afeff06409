//! Taint-based eviction against a real API server.

mod common;

use common::{Cluster, eventually};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

fn deleting(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_leave_a_no_execute_node_unless_they_tolerate_it() {
    let c = Cluster::start().await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "n1"},
        "spec": {"taints": [{"key": "example.com/drain", "effect": "NoExecute",
            "timeAdded": jiff::Timestamp::now().to_string()}]},
    }))
    .expect("node");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("node");
    let pods = c.api::<Pod>();
    for (name, tolerations) in [
        ("intolerant", json!([])),
        (
            "brief",
            json!([{"key": "example.com/drain", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]),
        ),
        (
            "patient",
            json!([{"key": "example.com/drain", "operator": "Exists", "effect": "NoExecute"}]),
        ),
    ] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": "n1", "tolerations": tolerations,
                "containers": [{"name": "c", "image": "nginx:1"}]},
        }))
        .expect("pod");
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
    }
    eventually("the intolerant pod is evicted", || async {
        pods.get_opt("intolerant")
            .await
            .expect("get")
            .is_none_or(|p| deleting(&p))
    })
    .await;
    assert!(
        !deleting(&pods.get("brief").await.expect("brief")),
        "brief is tolerated for 2s"
    );
    eventually("the briefly tolerating pod is evicted", || async {
        pods.get_opt("brief")
            .await
            .expect("get")
            .is_none_or(|p| deleting(&p))
    })
    .await;
    assert!(!deleting(&pods.get("patient").await.expect("patient")));
}
