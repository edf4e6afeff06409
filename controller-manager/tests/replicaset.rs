//! The ReplicaSet controller against a real API server.

mod common;

use common::{Cluster, eventually};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn owned_live(c: &Cluster, app: &str) -> Vec<Pod> {
    c.pods(&format!("app={app}"))
        .await
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.owner_references()
                .iter()
                .any(|r| r.controller == Some(true))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_set_creates_pods_replaces_deleted_ones_and_reports_status() {
    let c = Cluster::start().await;
    c.create_replica_set("web", 3).await;
    eventually("3 pods exist", || async {
        owned_live(&c, "web").await.len() == 3
    })
    .await;
    let pods = owned_live(&c, "web").await;
    for p in &pods {
        let name = p.name_any();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        let r = &p.owner_references()[0];
        assert_eq!((r.kind.as_str(), r.name.as_str()), ("ReplicaSet", "web"));
        assert_eq!(r.block_owner_deletion, Some(true));
    }
    let rsapi = c.api::<ReplicaSet>();
    eventually("status shows 3 available", || async {
        let s = rsapi
            .get("web")
            .await
            .expect("rs")
            .status
            .unwrap_or_default();
        s.replicas == 3 && s.available_replicas == Some(3) && s.ready_replicas == Some(3)
    })
    .await;

    let victim = pods[0].name_any();
    c.api::<Pod>()
        .delete(&victim, &DeleteParams::default())
        .await
        .expect("delete pod");
    eventually("the deleted pod is replaced", || async {
        let now = owned_live(&c, "web").await;
        now.len() == 3 && now.iter().all(|p| p.name_any() != victim)
    })
    .await;

    eventually("a SuccessfulCreate event", || async {
        c.api::<Event>()
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("SuccessfulCreate")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("Created pod: web-"))
            })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_down_deletes_the_excess_and_a_relabelled_pod_is_released_and_replaced() {
    let c = Cluster::start().await;
    c.create_replica_set("api", 4).await;
    eventually("4 pods", || async {
        owned_live(&c, "api").await.len() == 4
    })
    .await;
    let rsapi = c.api::<ReplicaSet>();
    rsapi
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scale");
    eventually("2 pods", || async {
        owned_live(&c, "api").await.len() == 2
    })
    .await;

    let pod = owned_live(&c, "api").await.remove(0).name_any();
    c.api::<Pod>()
        .patch(
            &pod,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"app": "other"}}})),
        )
        .await
        .expect("relabel");
    eventually("the relabelled pod is released", || async {
        let p = c.api::<Pod>().get(&pod).await.expect("pod");
        p.owner_references().is_empty()
    })
    .await;
    eventually("a replacement restores 2 pods", || async {
        let now = owned_live(&c, "api").await;
        now.len() == 2 && now.iter().all(|p| p.name_any() != pod)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_matching_the_selector_is_adopted() {
    let c = Cluster::start().await;
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "stray", "labels": {"app": "db"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
    }))
    .expect("pod");
    c.api::<Pod>()
        .create(&PostParams::default(), &orphan)
        .await
        .expect("create orphan");
    // A barrier: once the controller reports a pod of a set created after
    // the orphan, its pod cache holds the orphan too (one ordered watch).
    let marker = c.create_replica_set("marker", 1).await;
    eventually("the controller has seen the orphan", || async {
        let m = c
            .api::<ReplicaSet>()
            .get(&marker.name_any())
            .await
            .expect("marker");
        m.status.is_some_and(|s| s.replicas == 1)
    })
    .await;
    let rs = c.create_replica_set("db", 2).await;
    eventually("the orphan is adopted", || async {
        let p = c.api::<Pod>().get("stray").await.expect("pod");
        p.owner_references()
            .iter()
            .any(|r| Some(&r.uid) == rs.metadata.uid.as_ref())
    })
    .await;
    eventually("2 pods in all", || async {
        owned_live(&c, "db").await.len() == 2
    })
    .await;
    // Only one pod was created; the orphan counts as the other.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(c.pods("app=db").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_count_as_available_only_after_min_ready_seconds() {
    let c = Cluster::start().await;
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "slow"},
        "spec": {"replicas": 2, "minReadySeconds": 4,
            "selector": {"matchLabels": {"app": "slow"}},
            "template": {"metadata": {"labels": {"app": "slow"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}},
    }))
    .expect("rs");
    let rsapi = c.api::<ReplicaSet>();
    rsapi
        .create(&PostParams::default(), &rs)
        .await
        .expect("create");
    eventually("2 ready", || async {
        let s = rsapi
            .get("slow")
            .await
            .expect("rs")
            .status
            .unwrap_or_default();
        s.ready_replicas == Some(2)
    })
    .await;
    let s = rsapi
        .get("slow")
        .await
        .expect("rs")
        .status
        .unwrap_or_default();
    assert_eq!(s.available_replicas.unwrap_or(0), 0, "not yet available");
    eventually("2 available after minReadySeconds", || async {
        let s = rsapi
            .get("slow")
            .await
            .expect("rs")
            .status
            .unwrap_or_default();
        s.available_replicas == Some(2)
    })
    .await;
}
