//! The real kubectl against the controllers: `rollout
//! status|history|undo|restart|pause|resume`, `set image`, `describe` and
//! `get events`, and `delete --cascade`, each compared with what kubectl
//! prints on Kubernetes (the strings of kubectl's `pkg/cmd/rollout` and
//! `pkg/polymorphichelpers`).

mod common;

use common::{Cluster, eventually};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::ResourceExt;
use kube::api::ListParams;

async fn image(c: &Cluster, name: &str) -> String {
    let d = c.api::<Deployment>().get(name).await.expect("deployment");
    d.spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
        .unwrap_or_default()
}

async fn pod_images(c: &Cluster, app: &str) -> Vec<String> {
    let mut v: Vec<String> = c
        .pods(&format!("app={app}"))
        .await
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
        .collect();
    v.sort();
    v
}

/// `kubectl rollout status` until it succeeds; every line it prints on the
/// way is one of kubectl's deployment status messages.
async fn rollout_status(c: &Cluster, name: &str) {
    let out = c
        .kubectl_ok(&[
            "rollout",
            "status",
            &format!("deployment/{name}"),
            "--timeout=60s",
        ])
        .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.last().copied(),
        Some(format!("deployment \"{name}\" successfully rolled out").as_str()),
        "{out}"
    );
    let waiting = format!("Waiting for deployment \"{name}\" rollout to finish: ");
    for l in &lines[..lines.len() - 1] {
        let known = l.strip_prefix(&waiting).is_some_and(|rest| {
            rest.ends_with(" new replicas have been updated...")
                || rest.ends_with(" old replicas are pending termination...")
                || rest.ends_with(" updated replicas are available...")
        }) || *l == "Waiting for deployment spec update to be observed...";
        assert!(known, "unexpected rollout status line {l:?} in {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_and_set_image_print_what_they_print_on_kubernetes() {
    let c = Cluster::start().await;
    let d = "deployment/web";
    assert_eq!(
        c.kubectl_ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx:1",
            "--replicas=3"
        ])
        .await,
        "deployment.apps/web created\n"
    );
    rollout_status(&c, "web").await;
    assert_eq!(
        c.kubectl_ok(&["set", "image", d, "nginx=nginx:2"]).await,
        "deployment.apps/web image updated\n"
    );
    rollout_status(&c, "web").await;
    eventually("old pods are gone", || async {
        pod_images(&c, "web").await == ["nginx:2"; 3]
    })
    .await;
    assert_eq!(
        c.kubectl_ok(&["rollout", "history", d]).await,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"
    );
    let rev1 = c
        .kubectl_ok(&["rollout", "history", d, "--revision=1"])
        .await;
    assert!(
        rev1.starts_with("deployment.apps/web with revision #1\nPod Template:\n")
            && rev1.contains("nginx:1"),
        "{rev1}"
    );
    let annotated = c.api::<Deployment>().get("web").await.expect("deployment");
    assert_eq!(
        annotated
            .annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("2")
    );

    // Undo brings back the previous template, as revision 3.
    assert_eq!(
        c.kubectl_ok(&["rollout", "undo", d]).await,
        "deployment.apps/web rolled back\n"
    );
    assert_eq!(image(&c, "web").await, "nginx:1");
    rollout_status(&c, "web").await;
    eventually("the pods run the previous image", || async {
        pod_images(&c, "web").await == ["nginx:1"; 3]
    })
    .await;
    assert_eq!(
        c.kubectl_ok(&["rollout", "history", d]).await,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n2         <none>\n3         <none>\n\n"
    );

    // Paused: template changes wait for resume.
    assert_eq!(
        c.kubectl_ok(&["rollout", "pause", d]).await,
        "deployment.apps/web paused\n"
    );
    let (ok, _, err) = c.kubectl(&["rollout", "pause", d]).await;
    assert!(
        !ok && err == "error: deployments.apps \"web\" is already paused\n",
        "{err}"
    );
    let (ok, _, err) = c.kubectl(&["rollout", "undo", d]).await;
    assert!(
        !ok && err.contains("you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again"),
        "{err}"
    );
    c.kubectl_ok(&["set", "image", d, "nginx=nginx:3"]).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let sets = c
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .expect("rs")
        .items;
    assert_eq!(sets.len(), 2, "no new ReplicaSet while paused");
    assert_eq!(pod_images(&c, "web").await, ["nginx:1"; 3]);
    assert_eq!(
        c.kubectl_ok(&["rollout", "resume", d]).await,
        "deployment.apps/web resumed\n"
    );
    let (ok, _, err) = c.kubectl(&["rollout", "resume", d]).await;
    assert!(
        !ok && err == "error: deployments.apps \"web\" is not paused\n",
        "{err}"
    );
    rollout_status(&c, "web").await;
    eventually("the resumed rollout replaced the pods", || async {
        pod_images(&c, "web").await == ["nginx:3"; 3]
    })
    .await;

    // Restart rolls the pods with a restartedAt annotation.
    let before: Vec<String> = c
        .pods("app=web")
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(
        c.kubectl_ok(&["rollout", "restart", d]).await,
        "deployment.apps/web restarted\n"
    );
    rollout_status(&c, "web").await;
    eventually("every pod was replaced", || async {
        let now = c.pods("app=web").await;
        let live: Vec<_> = now
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        live.len() == 3
            && live.iter().all(|p| {
                !before.contains(&p.name_any())
                    && p.annotations()
                        .contains_key("kubectl.kubernetes.io/restartedAt")
            })
    })
    .await;
    let history = c.kubectl_ok(&["rollout", "history", d]).await;
    assert!(
        history.ends_with("4         <none>\n5         <none>\n\n"),
        "{history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_and_get_events_read_as_on_kubernetes() {
    let c = Cluster::start().await;
    c.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1",
        "--replicas=15",
    ])
    .await;
    rollout_status(&c, "web").await;
    let rs = c
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .expect("rs")
        .items
        .remove(0)
        .name_any();
    let scaled = format!("Scaled up replica set {rs} from 0 to 15");
    eventually("describe deployment shows the scaling event", || async {
        let out = c.kubectl_ok(&["describe", "deployment", "web"]).await;
        out.contains("deployment.kubernetes.io/revision: 1")
            && out.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.first() == Some(&"Normal")
                    && f.get(1) == Some(&"ScalingReplicaSet")
                    && l.contains("deployment-controller")
                    && l.trim_end().ends_with(&scaled)
            })
    })
    .await;
    // Fifteen creations: nine events of their own, then one combined
    // event counted six times (client-go's aggregation after ten).
    eventually("describe replicaset shows aggregated creations", || async {
        let out = c.kubectl_ok(&["describe", "replicaset", &rs]).await;
        let created: Vec<&str> = out
            .lines()
            .filter(|l| l.contains("SuccessfulCreate"))
            .collect();
        created.len() == 10
            && created
                .iter()
                .filter(|l| l.contains("(combined from similar events): Created pod: "))
                .count()
                == 1
            && created.iter().any(|l| l.contains("(x6 over"))
    })
    .await;
    let events = c
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=SuccessfulCreate",
        ])
        .await;
    let header = events.lines().next().unwrap_or_default();
    assert!(
        header.split_whitespace().collect::<Vec<_>>()
            == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{events}"
    );
    assert!(
        events.contains(&format!("replicaset/{rs}")),
        "events name their object: {events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_delete_cascades_in_all_three_modes() {
    let c = Cluster::start().await;
    for app in ["orphan", "fore", "back"] {
        c.kubectl_ok(&[
            "create",
            "deployment",
            app,
            "--image=nginx:1",
            "--replicas=2",
        ])
        .await;
    }
    for app in ["orphan", "fore", "back"] {
        rollout_status(&c, app).await;
    }
    let live = |app: &'static str| {
        let c = &c;
        async move {
            c.pods(&format!("app={app}"))
                .await
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect::<Vec<_>>()
        }
    };
    let sets_of = |app: &'static str| {
        let c = &c;
        async move {
            c.api::<ReplicaSet>()
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await
                .expect("rs")
                .items
        }
    };

    assert_eq!(
        c.kubectl_ok(&["delete", "deployment", "orphan", "--cascade=orphan"])
            .await,
        "deployment.apps \"orphan\" deleted\n"
    );
    eventually("the orphaned ReplicaSet lost its owner", || async {
        let sets = sets_of("orphan").await;
        sets.len() == 1 && sets[0].owner_references().is_empty()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(live("orphan").await.len(), 2, "orphaned pods stay");

    // Foreground: kubectl waits until the Deployment is gone, which is
    // only after its ReplicaSet and pods.
    assert_eq!(
        c.kubectl_ok(&[
            "delete",
            "deployment",
            "fore",
            "--cascade=foreground",
            "--timeout=60s"
        ])
        .await,
        "deployment.apps \"fore\" deleted\n"
    );
    assert!(sets_of("fore").await.is_empty(), "dependents went first");
    assert!(c.pods("app=fore").await.is_empty(), "pods went first");

    assert_eq!(
        c.kubectl_ok(&["delete", "deployment", "back", "--cascade=background"])
            .await,
        "deployment.apps \"back\" deleted\n"
    );
    eventually("background deletion removes the dependents", || async {
        sets_of("back").await.is_empty() && c.pods("app=back").await.is_empty()
    })
    .await;
}
