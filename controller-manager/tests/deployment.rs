//! The Deployment controller (with the ReplicaSet controller and the fake
//! kubelet) against a real API server.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::{Cluster, eventually};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;

async fn done(c: &Cluster, name: &str, replicas: i32) -> bool {
    let d = c.api::<Deployment>().get(name).await.expect("deployment");
    let s = d.status.unwrap_or_default();
    let progressed = s.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing"
            && c.status == "True"
            && c.reason.as_deref() == Some("NewReplicaSetAvailable")
    });
    s.observed_generation >= d.metadata.generation
        && s.replicas == Some(replicas)
        && s.updated_replicas == Some(replicas)
        && s.available_replicas == Some(replicas)
        && progressed
}

async fn live_pods(c: &Cluster, app: &str) -> usize {
    c.pods(&format!("app={app}"))
        .await
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .count()
}

async fn set_replicas(c: &Cluster, name: &str, n: i32) {
    c.api::<Deployment>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": n}})),
        )
        .await
        .expect("scale");
}

async fn set_image(c: &Cluster, name: &str, image: &str) {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
    c.api::<Deployment>()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("update template");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_of_ten_becomes_available_and_scales_down_and_up() {
    let c = Cluster::start().await;
    c.create_deployment("web", 10, json!({})).await;
    eventually("10 available", || done(&c, "web", 10)).await;
    assert_eq!(live_pods(&c, "web").await, 10);
    let sets = c
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .expect("rs")
        .items;
    assert_eq!(sets.len(), 1);
    let rs = &sets[0];
    let hash = rs
        .labels()
        .get("pod-template-hash")
        .cloned()
        .expect("hash label");
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    assert_eq!(
        rs.annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );
    for p in c.pods("app=web").await {
        assert_eq!(p.labels().get("pod-template-hash"), Some(&hash));
    }

    set_replicas(&c, "web", 3).await;
    eventually("3 available", || done(&c, "web", 3)).await;
    eventually("3 pods", || async { live_pods(&c, "web").await == 3 }).await;
    set_replicas(&c, "web", 20).await;
    eventually("20 available", || done(&c, "web", 20)).await;
    assert_eq!(live_pods(&c, "web").await, 20);

    // Kubernetes' wording since 1.27: `Scaled up replica set x from 0 to 10`.
    for m in [
        format!("Scaled up replica set web-{hash} from 0 to 10"),
        format!("Scaled down replica set web-{hash} from 10 to 3"),
        format!("Scaled up replica set web-{hash} from 3 to 20"),
    ] {
        eventually(&format!("an event {m:?}"), || async {
            c.api::<Event>()
                .list(&ListParams::default())
                .await
                .expect("events")
                .items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("ScalingReplicaSet")
                        && e.message.as_deref() == Some(m.as_str())
                        && e.source.as_ref().and_then(|s| s.component.as_deref())
                            == Some("deployment-controller")
                })
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_with_surge_one_never_exceeds_eleven_pods_nor_drops_below_ten_ready() {
    let c = Cluster::start().await;
    let strategy = json!({"spec": {"strategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}});
    c.create_deployment("roll", 10, strategy).await;
    eventually("10 available", || done(&c, "roll", 10)).await;

    // Watch every pod change: (live pods, ready live pods) after each.
    let seen: Arc<Mutex<(usize, usize)>> = Arc::new(Mutex::new((0, usize::MAX)));
    let watch_seen = seen.clone();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(1);
    let pods: kube::Api<Pod> = c.api();
    let observer = tokio::spawn(async move {
        let mut state: HashMap<String, bool> = HashMap::new();
        let mut listed = false;
        let cfg = watcher::Config::default().labels("app=roll");
        let mut stream = watcher(pods, cfg).boxed();
        while let Some(Ok(ev)) = stream.next().await {
            let mut upsert = |p: Pod| {
                if p.metadata.deletion_timestamp.is_some() {
                    state.remove(&p.name_any());
                } else {
                    state.insert(p.name_any(), controller_manager::pods::is_ready(&p));
                }
            };
            match ev {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => upsert(p),
                watcher::Event::Delete(p) => {
                    state.remove(&p.name_any());
                }
                watcher::Event::Init => {
                    state.clear();
                    listed = false;
                }
                watcher::Event::InitDone => {
                    listed = true;
                    let _ = ready_tx.try_send(());
                }
            }
            // The initial list arrives one object at a time; judge only whole states.
            if !listed {
                continue;
            }
            let live = state.len();
            let ready = state.values().filter(|r| **r).count();
            let mut s = watch_seen.lock().expect("lock");
            s.0 = s.0.max(live);
            s.1 = s.1.min(ready);
        }
    });
    ready_rx.recv().await.expect("watch started");
    set_image(&c, "roll", "nginx:2").await;
    eventually("the rollout completes", || async {
        let sets = c
            .api::<ReplicaSet>()
            .list(&ListParams::default())
            .await
            .expect("rs")
            .items;
        sets.len() == 2 && done(&c, "roll", 10).await
    })
    .await;
    eventually("old pods are gone", || async {
        live_pods(&c, "roll").await == 10
    })
    .await;
    observer.abort();
    let (max_live, min_ready) = *seen.lock().expect("lock");
    assert_eq!(max_live, 11, "surge is used but never exceeded");
    assert!(min_ready >= 10, "saw only {min_ready} ready pods");

    let sets = c
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .expect("rs")
        .items;
    let mut revisions: Vec<(String, i32)> = sets
        .iter()
        .map(|rs| {
            (
                rs.annotations()
                    .get("deployment.kubernetes.io/revision")
                    .cloned()
                    .unwrap_or_default(),
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1),
            )
        })
        .collect();
    revisions.sort();
    assert_eq!(revisions, [("1".to_string(), 0), ("2".to_string(), 10)]);
    for p in c.pods("app=roll").await {
        let image = p.spec.as_ref().and_then(|s| s.containers[0].image.clone());
        assert_eq!(image.as_deref(), Some("nginx:2"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_history_limit_keeps_two_old_replica_sets() {
    let c = Cluster::start().await;
    c.create_deployment("hist", 2, json!({"spec": {"revisionHistoryLimit": 2}}))
        .await;
    eventually("2 available", || done(&c, "hist", 2)).await;
    for v in 2..=5 {
        set_image(&c, "hist", &format!("nginx:{v}")).await;
        eventually("the rollout completes", || async {
            let d = c.api::<Deployment>().get("hist").await.expect("d");
            let sets = c
                .api::<ReplicaSet>()
                .list(&ListParams::default())
                .await
                .expect("rs")
                .items;
            let newest = sets.iter().any(|rs| {
                rs.annotations().get("deployment.kubernetes.io/revision") == Some(&v.to_string())
            });
            newest && d.status.is_some() && done(&c, "hist", 2).await
        })
        .await;
    }
    eventually("only two old sets remain", || async {
        c.api::<ReplicaSet>()
            .list(&ListParams::default())
            .await
            .expect("rs")
            .items
            .len()
            == 3
    })
    .await;
    let sets = c
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .expect("rs")
        .items;
    let mut revisions: Vec<String> = sets
        .iter()
        .filter_map(|rs| {
            rs.annotations()
                .get("deployment.kubernetes.io/revision")
                .cloned()
        })
        .collect();
    revisions.sort();
    assert_eq!(revisions, ["3", "4", "5"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreate_deployment_replaces_all_pods() {
    let c = Cluster::start().await;
    c.create_deployment(
        "rec",
        3,
        json!({"spec": {"strategy": {"type": "Recreate"}}}),
    )
    .await;
    eventually("3 available", || done(&c, "rec", 3)).await;
    set_image(&c, "rec", "nginx:2").await;
    eventually("the rollout completes", || async {
        let pods = c.pods("app=rec").await;
        pods.len() == 3
            && pods.iter().all(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.containers[0].image.as_deref())
                    == Some("nginx:2")
            })
            && done(&c, "rec", 3).await
    })
    .await;
}

async fn set_sizes(c: &Cluster) -> Vec<(String, i32)> {
    let mut v: Vec<(String, i32)> = c
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .expect("rs")
        .items
        .iter()
        .map(|rs| {
            let image = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.containers[0].image.clone())
                .unwrap_or_default();
            (
                image,
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_a_stalled_rollout_grows_both_replica_sets_in_proportion() {
    let c = Cluster::start().await;
    let strategy = json!({"spec": {"strategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}}});
    c.create_deployment("prop", 10, strategy).await;
    eventually("10 available", || done(&c, "prop", 10)).await;
    set_image(&c, "prop", "broken:1").await;
    // Kubernetes' arithmetic: the new set surges to 3, the old one drops
    // to 8 (10 - maxUnavailable), the new one grows to 5, and the rollout
    // stalls because new pods never become available.
    eventually("the rollout stalls at 8 old and 5 new", || async {
        set_sizes(&c).await == [("broken:1".to_string(), 5), ("nginx:1".to_string(), 8)]
    })
    .await;
    set_replicas(&c, "prop", 20).await;
    // 23 allowed (20 + surge 3), 10 to add: the old set takes
    // round(8 * 23 / 13) = 14, the new one the remaining 4 (9).
    eventually("both sets grow in proportion", || async {
        set_sizes(&c).await == [("broken:1".to_string(), 9), ("nginx:1".to_string(), 14)]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_rollout_exceeds_its_progress_deadline() {
    let c = Cluster::start().await;
    c.create_deployment("slow", 2, json!({"spec": {"progressDeadlineSeconds": 1}}))
        .await;
    eventually("2 available", || done(&c, "slow", 2)).await;
    set_image(&c, "slow", "broken:1").await;
    eventually(
        "Progressing is False with ProgressDeadlineExceeded",
        || async {
            let d = c.api::<Deployment>().get("slow").await.expect("d");
            d.status
                .unwrap_or_default()
                .conditions
                .iter()
                .flatten()
                .any(|c| {
                    c.type_ == "Progressing"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_deployment_does_not_roll_out_until_resumed() {
    let c = Cluster::start().await;
    c.create_deployment("pause", 2, json!({})).await;
    eventually("2 available", || done(&c, "pause", 2)).await;
    let pause = |p: bool| json!({"spec": {"paused": p}});
    let api = c.api::<Deployment>();
    api.patch(
        "pause",
        &PatchParams::default(),
        &Patch::Merge(&pause(true)),
    )
    .await
    .expect("pause");
    set_image(&c, "pause", "nginx:2").await;
    eventually("the paused condition is reported", || async {
        let d = api.get("pause").await.expect("d");
        d.status
            .unwrap_or_default()
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("DeploymentPaused"))
    })
    .await;
    assert_eq!(set_sizes(&c).await, [("nginx:1".to_string(), 2)]);
    api.patch(
        "pause",
        &PatchParams::default(),
        &Patch::Merge(&pause(false)),
    )
    .await
    .expect("resume");
    eventually("the rollout completes after resuming", || async {
        set_sizes(&c).await == [("nginx:1".to_string(), 0), ("nginx:2".to_string(), 2)]
            && done(&c, "pause", 2).await
    })
    .await;
}
