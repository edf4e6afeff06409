//! The controllers share one informer per kind: the controller-manager
//! opens a single watch of pods (and of every other kind it caches), as
//! kube-controller-manager's shared informer factory does.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::eventually;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};

/// Watch requests per path and selectors: one key per distinct watch.
type Watches = Arc<Mutex<HashMap<String, usize>>>;

/// A client whose watch requests are counted.
fn counting_client(config: kube::Config, watches: Watches) -> Client {
    let count = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        let query = req.uri().query().unwrap_or_default();
        if query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1")
        {
            let selectors: Vec<&str> = query
                .split('&')
                .filter(|p| p.starts_with("labelSelector=") || p.starts_with("fieldSelector="))
                .collect();
            let key = format!("{}?{}", req.uri().path(), selectors.join("&"));
            *watches.lock().expect("lock").entry(key).or_default() += 1;
        }
        req
    });
    kube::client::ClientBuilder::try_from(config)
        .expect("client builder")
        .with_layer(&count)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_manager_watches_pods_nodes_and_replica_sets_once() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server");
    let config = kube::Config::new(server.url().parse().expect("url"));
    let watches: Watches = Arc::default();
    let client = counting_client(config, watches.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let cm = tokio::spawn(controller_manager::run(client.clone(), async move {
        let _ = stop_rx.await;
    }));

    // Once a ReplicaSet has its pods, every controller has started.
    let admin = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}},
    }))
    .expect("replica set");
    Api::<ReplicaSet>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &rs)
        .await
        .expect("create replica set");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    eventually("3 pods", || async {
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .is_ok_and(|l| l.items.len() == 3)
    })
    .await;

    let seen = watches.lock().expect("lock").clone();
    // Each watched by several controllers.
    for path in [
        "/api/v1/pods",
        "/api/v1/nodes",
        "/api/v1/services",
        "/api/v1/namespaces",
        "/apis/apps/v1/replicasets",
        "/apis/apps/v1/deployments",
        "/apis/coordination.k8s.io/v1/leases",
        "/api/v1/persistentvolumes",
        "/api/v1/persistentvolumeclaims",
    ] {
        let key = format!("{path}?");
        assert_eq!(seen.get(&key), Some(&1), "watches of {key}: {seen:?}");
    }
    // No watch is opened twice (a kind may still be watched by the
    // collector and, filtered, by a controller of its own).
    for (key, n) in &seen {
        assert_eq!(*n, 1, "watches of {key}: {seen:?}");
    }
    let _ = stop_tx.send(());
    cm.await.expect("controller-manager stops");
}
