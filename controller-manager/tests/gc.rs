//! The garbage collector and the namespace controller against a real API
//! server.

mod common;

use common::{Cluster, eventually};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::{Api, ResourceExt};
use serde_json::json;

fn policy(p: PropagationPolicy) -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(p),
        ..DeleteParams::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_deployment_in_the_background_removes_its_replica_sets_and_pods() {
    let c = Cluster::start().await;
    c.create_deployment("web", 3, json!({})).await;
    eventually("3 pods", || async { c.pods("app=web").await.len() == 3 }).await;
    c.api::<Deployment>()
        .delete("web", &policy(PropagationPolicy::Background))
        .await
        .expect("delete");
    eventually("replica sets and pods are gone", || async {
        let sets = c
            .api::<ReplicaSet>()
            .list(&ListParams::default())
            .await
            .expect("rs")
            .items;
        sets.is_empty() && c.pods("app=web").await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_propagation_keeps_the_pods_without_their_owner() {
    let c = Cluster::start().await;
    c.create_replica_set("keep", 2).await;
    eventually("2 pods", || async { c.pods("app=keep").await.len() == 2 }).await;
    c.api::<ReplicaSet>()
        .delete("keep", &policy(PropagationPolicy::Orphan))
        .await
        .expect("delete");
    eventually("the replica set is gone", || async {
        c.api::<ReplicaSet>()
            .get_opt("keep")
            .await
            .expect("get")
            .is_none()
    })
    .await;
    let pods = c.pods("app=keep").await;
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p.owner_references().is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_propagation_deletes_the_pods_before_the_owner() {
    let c = Cluster::start().await;
    c.create_replica_set("fg", 2).await;
    eventually("2 pods", || async { c.pods("app=fg").await.len() == 2 }).await;
    c.api::<ReplicaSet>()
        .delete("fg", &policy(PropagationPolicy::Foreground))
        .await
        .expect("delete");
    eventually("the replica set is gone", || async {
        c.api::<ReplicaSet>()
            .get_opt("fg")
            .await
            .expect("get")
            .is_none()
    })
    .await;
    assert!(c.pods("app=fg").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_owner_never_existed_is_collected() {
    let c = Cluster::start().await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "dangling", "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost",
            "uid": "00000000-0000-0000-0000-000000000001"}]},
        "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
    }))
    .expect("pod");
    c.api::<Pod>()
        .create(&PostParams::default(), &pod)
        .await
        .expect("create");
    eventually("the dangling pod is collected", || async {
        c.api::<Pod>()
            .get_opt("dangling")
            .await
            .expect("get")
            .is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_leaves_nothing_behind() {
    let c = Cluster::start().await;
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).expect("ns");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create ns");
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), "team");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "app"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "app"}},
            "template": {"metadata": {"labels": {"app": "app"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}},
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "team");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "b"}}))
            .expect("cm");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create cm");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "team");
    eventually("2 pods", || async {
        pods.list(&ListParams::default())
            .await
            .expect("pods")
            .items
            .len()
            == 2
    })
    .await;

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .expect("delete ns");
    eventually("the namespace is gone", || async {
        namespaces.get_opt("team").await.expect("get").is_none()
    })
    .await;
    assert!(
        pods.list(&ListParams::default())
            .await
            .expect("pods")
            .items
            .is_empty()
    );
    assert!(
        cms.list(&ListParams::default())
            .await
            .expect("cms")
            .items
            .is_empty()
    );
    assert!(
        deployments
            .list(&ListParams::default())
            .await
            .expect("d")
            .items
            .is_empty()
    );
}
