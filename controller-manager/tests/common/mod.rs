//! A cluster for controller tests: a real in-process API server, the
//! controller-manager, and a fake kubelet that marks every pod Running and
//! Ready (there is no scheduler or kubelet in these tests).

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

pub struct Cluster {
    pub server: apiserver::testing::TestServer,
    pub client: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    kubelet: tokio::task::JoinHandle<()>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let server = apiserver::testing::TestServer::start()
            .await
            .expect("test server");
        let client = client::connect(Some(&server.kubeconfig))
            .await
            .expect("client");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(controller_manager::run(client.clone(), async move {
            let _ = rx.await;
        }));
        let kubelet = tokio::spawn(fake_kubelet(client.clone()));
        Cluster {
            server,
            client,
            stop: Some(tx),
            kubelet,
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), "default")
    }

    pub async fn pods(&self, selector: &str) -> Vec<Pod> {
        self.api::<Pod>()
            .list(&ListParams::default().labels(selector))
            .await
            .expect("list pods")
            .items
    }

    /// Runs the real kubectl (`$KUBECTL`, else `kubectl` on PATH) against
    /// this cluster; returns (success, stdout, stderr).
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let out = tokio::process::Command::new(bin)
            .arg("--kubeconfig")
            .arg(&self.server.kubeconfig)
            .args(args)
            .output()
            .await
            .expect("run kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs kubectl and returns its stdout, failing the test if it fails.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args).await;
        assert!(ok, "kubectl {args:?} failed: {err}{out}");
        out
    }

    pub async fn create_deployment(
        &self,
        name: &str,
        replicas: i32,
        extra_spec: serde_json::Value,
    ) -> Deployment {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
                },
            },
        });
        merge(&mut d, extra_spec);
        let d: Deployment = serde_json::from_value(d).expect("deployment");
        self.api::<Deployment>()
            .create(&PostParams::default(), &d)
            .await
            .expect("create deployment")
    }

    pub async fn create_replica_set(&self, name: &str, replicas: i32) -> ReplicaSet {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
                },
            },
        }))
        .expect("replicaset");
        self.api::<ReplicaSet>()
            .create(&PostParams::default(), &rs)
            .await
            .expect("create replicaset")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.kubelet.abort();
    }
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Stands in for the kubelet: every live pod becomes Running and Ready,
/// except pods of an image named `broken`.
pub async fn fake_kubelet(client: Client) {
    let all: Api<Pod> = Api::all(client.clone());
    let mut events = watcher(all, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(ev) = events.next().await {
        let Ok(pod) = ev else { continue };
        // Pods of a `broken` image never start, to stall rollouts.
        let broken = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.as_deref())
            .is_some_and(|i| i.contains("broken"));
        if broken
            || pod.metadata.deletion_timestamp.is_some()
            || controller_manager::pods::is_ready(&pod)
        {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let now = jiff::Timestamp::now().to_string();
        let status = json!({"status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        }});
        let _ = api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await;
    }
}

/// Polls `check` until it holds, failing the test after 60 seconds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
