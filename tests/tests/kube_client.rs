//! The `kube` crate, unchanged, against our server: typed create, list with
//! a label selector, and a watch from a list's resourceVersion that sees the
//! later events in order.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::{Backend, Cluster, both_backends_async};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

async fn client(cluster: &Cluster) -> Client {
    let kubeconfig =
        Kubeconfig::read_from(cluster.kubeconfig()).expect("ferrokube writes a kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("the kubeconfig is usable");
    Client::try_from(config).expect("a kube client")
}

fn configmap(name: &str, group: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.to_owned());
    cm.metadata.labels = Some(BTreeMap::from([("group".to_owned(), group.to_owned())]));
    cm.data = Some(BTreeMap::from([("name".to_owned(), name.to_owned())]));
    cm
}

async fn kube_client_creates_lists_and_watches(backend: Backend) {
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(backend))
        .await
        .expect("start");
    let client = client(&cluster).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    for i in 0..6 {
        let group = if i % 2 == 0 { "even" } else { "odd" };
        let created = api
            .create(
                &PostParams::default(),
                &configmap(&format!("cm-{i}"), group),
            )
            .await
            .expect("create");
        assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    }

    let even = api
        .list(&ListParams::default().labels("group=even"))
        .await
        .expect("list");
    let names: Vec<_> = even
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(names, ["cm-0", "cm-2", "cm-4"]);
    let odd_not_3 = api
        .list(
            &ListParams::default()
                .labels("group=odd")
                .fields("metadata.name!=cm-3"),
        )
        .await
        .expect("list");
    let names: Vec<_> = odd_not_3
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(names, ["cm-1", "cm-5"]);

    // Paging: limit and continue cover the whole list exactly once.
    let mut paged = Vec::new();
    let mut params = ListParams::default().limit(4);
    loop {
        let page = api.list(&params).await.expect("page");
        paged.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    // kube-root-ca.crt is published in every namespace, as in Kubernetes.
    paged.retain(|n| n != "kube-root-ca.crt");
    assert_eq!(paged, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4", "cm-5"]);

    let rv = even
        .metadata
        .resource_version
        .expect("a list has a resourceVersion");
    let mut events = api
        .watch(
            &WatchParams::default().labels("group=even").timeout(60),
            &rv,
        )
        .await
        .expect("watch")
        .boxed();

    api.create(&PostParams::default(), &configmap("cm-6", "even"))
        .await
        .expect("create");
    api.create(&PostParams::default(), &configmap("cm-7", "odd"))
        .await
        .expect("create");
    let patch = serde_json::json!({"data": {"touched": "yes"}});
    api.patch("cm-0", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    api.delete("cm-2", &DeleteParams::default())
        .await
        .expect("delete");

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(20), events.try_next())
            .await
            .expect("an event within 20 s")
            .expect("the watch stream is healthy")
            .expect("the watch stream stays open");
        match event {
            WatchEvent::Added(cm) => {
                seen.push(format!("ADDED {}", cm.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Modified(cm) => {
                seen.push(format!("MODIFIED {}", cm.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Deleted(cm) => {
                seen.push(format!("DELETED {}", cm.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error: {e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED cm-6", "MODIFIED cm-0", "DELETED cm-2"]);

    // A kube-runtime watcher (list then watch) sees the current set.
    let initial = kube::runtime::watcher(
        api.clone(),
        kube::runtime::watcher::Config::default().labels("group=odd"),
    )
    .take_while(|e| {
        futures::future::ready(!matches!(e, Ok(kube::runtime::watcher::Event::InitDone)))
    })
    .try_fold(Vec::new(), |mut names, event| async move {
        if let kube::runtime::watcher::Event::InitApply(cm) = event {
            names.push(cm.metadata.name.unwrap_or_default());
        }
        Ok(names)
    });
    let names = tokio::time::timeout(Duration::from_secs(20), initial)
        .await
        .expect("the watcher's initial list within 20 s")
        .expect("the watcher lists");
    assert_eq!(names, ["cm-1", "cm-3", "cm-5", "cm-7"]);

    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .expect("stop");
}

both_backends_async!(kube_client_creates_lists_and_watches);
