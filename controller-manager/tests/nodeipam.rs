//! Node IPAM against a real in-process API server: every Node gets its own
//! /24 of the cluster CIDR, and CIDRs Nodes already hold (what a previous
//! controller-manager handed out) are never handed out again.

mod common;

use common::{Cluster, eventually};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

async fn create(api: &Api<Node>, name: &str, cidr: Option<&str>) {
    let mut n = json!({"metadata": {"name": name}});
    if let Some(c) = cidr {
        n["spec"] = json!({"podCIDR": c, "podCIDRs": [c]});
    }
    let node: Node = serde_json::from_value(n).expect("node");
    api.create(&PostParams::default(), &node)
        .await
        .expect("create node");
}

async fn cidr(api: &Api<Node>, name: &str) -> Option<String> {
    api.get(name).await.ok()?.spec?.pod_cidr
}

#[tokio::test]
async fn nodes_get_distinct_pod_cidrs_and_held_ones_are_never_reused() {
    let c = Cluster::start().await;
    let api: Api<Node> = Api::all(c.client.clone());
    // Held from before: as if assigned by an earlier run.
    create(&api, "held", Some("10.42.0.0/24")).await;
    create(&api, "a", None).await;
    create(&api, "b", None).await;
    eventually("both new nodes have a podCIDR", || async {
        cidr(&api, "a").await.is_some() && cidr(&api, "b").await.is_some()
    })
    .await;
    let mut got = vec![
        cidr(&api, "a").await.expect("a"),
        cidr(&api, "b").await.expect("b"),
    ];
    got.sort();
    assert_eq!(got, ["10.42.1.0/24", "10.42.2.0/24"]);
    let a = api.get("a").await.expect("a");
    let spec = a.spec.expect("spec");
    assert_eq!(
        spec.pod_cidrs,
        Some(vec![spec.pod_cidr.clone().expect("cidr")])
    );
}
