//! The EndpointSlice and Endpoints controllers against a real in-process
//! API server. There is no kubelet here and readiness probes are not the
//! point: the test plays the kubelet and writes each pod's IP and Ready
//! condition through the status subresource (pods use a `broken` image so
//! the harness' fake kubelet leaves them alone).

mod common;

use common::{Cluster, eventually};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

async fn create_pod(c: &Cluster, name: &str, port_name: &str, port: i32) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "broken:1",
            "ports": [{"name": port_name, "containerPort": port}]}]},
    }))
    .expect("pod");
    c.api::<Pod>()
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
}

async fn set_status(c: &Cluster, name: &str, ip: &str, ready: bool) {
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    c.api::<Pod>()
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("pod status");
}

/// `(ip, ready, serving, terminating, port)` of every endpoint of `web`.
async fn endpoints_of(c: &Cluster) -> Vec<(String, bool, bool, bool, i32)> {
    let slices = c
        .api::<EndpointSlice>()
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .expect("slices")
        .items;
    let mut out = Vec::new();
    for s in slices {
        assert_eq!(
            s.labels()["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        let port = s
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .and_then(|p| p.port)
            .unwrap_or(0);
        for e in s.endpoints {
            let cond = e.conditions.unwrap_or_default();
            out.push((
                e.addresses[0].clone(),
                cond.ready == Some(true),
                cond.serving == Some(true),
                cond.terminating == Some(true),
                port,
            ));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn slices_and_endpoints_follow_pod_readiness_and_deletion() {
    let c = Cluster::start().await;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }))
    .expect("svc");
    c.api::<Service>()
        .create(&PostParams::default(), &svc)
        .await
        .expect("create svc");
    create_pod(&c, "a", "http", 8080).await;
    create_pod(&c, "b", "http", 9090).await;
    set_status(&c, "a", "10.42.0.2", true).await;
    set_status(&c, "b", "10.42.0.3", true).await;
    eventually(
        "both pods are ready endpoints on their own named port",
        || async {
            endpoints_of(&c).await
                == vec![
                    ("10.42.0.2".into(), true, true, false, 8080),
                    ("10.42.0.3".into(), true, true, false, 9090),
                ]
        },
    )
    .await;

    set_status(&c, "b", "10.42.0.3", false).await;
    eventually(
        "a pod failing readiness leaves the ready endpoints",
        || async {
            endpoints_of(&c).await
                == vec![
                    ("10.42.0.2".into(), true, true, false, 8080),
                    ("10.42.0.3".into(), false, false, false, 9090),
                ]
        },
    )
    .await;
    let eps: Api<Endpoints> = c.api();
    eventually("the legacy Endpoints lists it as not ready", || async {
        let Ok(e) = eps.get("web").await else {
            return false;
        };
        let subsets = e.subsets.unwrap_or_default();
        let not_ready: Vec<String> = subsets
            .iter()
            .flat_map(|s| s.not_ready_addresses.iter().flatten())
            .map(|a| a.ip.clone())
            .collect();
        let ready: Vec<String> = subsets
            .iter()
            .flat_map(|s| s.addresses.iter().flatten())
            .map(|a| a.ip.clone())
            .collect();
        ready == ["10.42.0.2"] && not_ready == ["10.42.0.3"]
    })
    .await;

    // Graceful deletion: the pod (bound to a node) stays with a
    // deletionTimestamp until the kubelet would confirm.
    c.api::<Pod>()
        .delete("a", &DeleteParams::default().grace_period(30))
        .await
        .expect("delete a");
    eventually("the deleted pod's endpoint is terminating", || async {
        endpoints_of(&c).await.first() == Some(&("10.42.0.2".into(), false, true, true, 8080))
    })
    .await;
    eventually("and out of the legacy Endpoints", || async {
        let Ok(e) = eps.get("web").await else {
            return false;
        };
        !serde_json::to_string(&e.subsets)
            .unwrap_or_default()
            .contains("10.42.0.2")
    })
    .await;
    c.api::<Pod>()
        .delete("a", &DeleteParams::default().grace_period(0))
        .await
        .expect("force delete a");
    eventually("then gone", || async {
        endpoints_of(&c).await == vec![("10.42.0.3".into(), false, false, false, 9090)]
    })
    .await;

    c.api::<Service>()
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete svc");
    eventually(
        "a deleted Service loses its Endpoints and slices",
        || async {
            eps.get_opt("web").await.expect("get").is_none() && endpoints_of(&c).await.is_empty()
        },
    )
    .await;
}
