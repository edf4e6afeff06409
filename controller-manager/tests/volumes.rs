//! PersistentVolumes and claims through a real API server with the
//! controller-manager running: the binder binds a claim to the fitting
//! volume and sets both statuses, `kubectl get pv,pvc` prints Kubernetes'
//! columns, a volume whose claim is deleted is Released; and every
//! namespace gets its `default` ServiceAccount and `kube-root-ca.crt`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolume, PersistentVolumeClaim, ServiceAccount,
};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let out = std::process::Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_bind_to_fitting_volumes_and_namespaces_get_service_accounts() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("test server");
    let client = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controllers = tokio::spawn(controller_manager::run(client.clone(), async move {
        let _ = stopped.await;
    }));
    let pp = PostParams::default();
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    for (name, size) in [("pv-small", "1Gi"), ("pv-large", "5Gi")] {
        let pv = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": "manual", "hostPath": {"path": format!("/tmp/{name}")}},
        }))
        .expect("pv");
        volumes.create(&pp, &pv).await.expect("create pv");
    }
    // Kubernetes' validation answers through kubectl too.
    let bad = volumes
        .create(
            &pp,
            &serde_json::from_value(
                json!({"metadata": {"name": "bad"}, "spec": {"hostPath": {"path": "/x"}}}),
            )
            .expect("pv"),
        )
        .await
        .expect_err("a volume without capacity is invalid");
    assert!(
        bad.to_string().contains("spec.capacity: Required value"),
        "{bad}"
    );
    eventually("new volumes to be Available", || async {
        let list = volumes.list(&Default::default()).await.expect("list");
        list.items
            .iter()
            .all(|v| v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Available"))
            .then_some(())
    })
    .await;

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let claim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
                 "resources": {"requests": {"storage": "2Gi"}}},
    }))
    .expect("pvc");
    claims.create(&pp, &claim).await.expect("create pvc");
    let bound = eventually("the claim to be Bound", || async {
        let c = claims.get("data").await.expect("get pvc");
        (c.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(c)
    })
    .await;
    assert_eq!(
        bound.spec.as_ref().and_then(|s| s.volume_name.as_deref()),
        Some("pv-large"),
        "the only volume big enough"
    );
    let status = bound.status.as_ref().expect("status");
    assert_eq!(
        status.capacity.as_ref().expect("capacity")["storage"].0,
        "5Gi"
    );
    assert_eq!(
        bound.metadata.annotations.as_ref().expect("annotations")["pv.kubernetes.io/bind-completed"],
        "yes"
    );
    let pv = eventually("the volume to be Bound", || async {
        let v = volumes.get("pv-large").await.expect("get pv");
        (v.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(v)
    })
    .await;
    let claim_ref = pv
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .expect("claimRef");
    assert_eq!(claim_ref.name.as_deref(), Some("data"));
    assert_eq!(claim_ref.uid, bound.metadata.uid);

    let kubeconfig = server.kubeconfig.clone();
    let table = tokio::task::spawn_blocking(move || kubectl(&kubeconfig, &["get", "pv,pvc"]))
        .await
        .expect("kubectl");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let header = rows
        .iter()
        .find(|r| r.first() == Some(&"NAME") && r.contains(&"RECLAIM"))
        .expect("the pv header");
    assert_eq!(
        header.join(" "),
        "NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM STORAGECLASS VOLUMEATTRIBUTESCLASS REASON AGE"
    );
    let large = rows
        .iter()
        .find(|r| r.first() == Some(&"persistentvolume/pv-large"))
        .expect("pv-large row");
    assert_eq!(
        large[1..7],
        ["5Gi", "RWO", "Retain", "Bound", "default/data", "manual"]
    );
    let pvc = rows
        .iter()
        .find(|r| r.first() == Some(&"persistentvolumeclaim/data"))
        .expect("the claim row");
    assert_eq!(pvc[1..6], ["Bound", "pv-large", "5Gi", "RWO", "manual"]);

    claims
        .delete("data", &DeleteParams::default())
        .await
        .expect("delete claim");
    eventually("the retained volume to be Released", || async {
        let v = volumes.get("pv-large").await.expect("get pv");
        (v.status.as_ref()?.phase.as_deref() == Some("Released")).then_some(())
    })
    .await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "team-a"}})).expect("ns"),
        )
        .await
        .expect("create namespace");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "team-a");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "team-a");
    eventually("the default service account and CA bundle", || async {
        accounts.get_opt("default").await.expect("get sa")?;
        let cm = config_maps
            .get_opt("kube-root-ca.crt")
            .await
            .expect("get cm")?;
        cm.data?.contains_key("ca.crt").then_some(())
    })
    .await;
    accounts
        .delete("default", &DeleteParams::default())
        .await
        .expect("delete sa");
    eventually("the default service account to come back", || async {
        accounts.get_opt("default").await.expect("get sa")
    })
    .await;

    let _ = stop.send(());
    let _ = controllers.await;
}
