//! The pod loop: watch the pods bound to this node
//! (`fieldSelector=spec.nodeName=<node>`) and keep one worker per pod UID,
//! feeding each the latest object (or `None` once it is gone). After the
//! first full listing, containers and network namespaces of pods that no
//! longer exist are removed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use client::lean::{self, Lean};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::containers::{self, LABEL_POD_UID};
use crate::worker::{self, NodeContext};

type Workers = HashMap<String, watch::Sender<Option<Arc<Pod>>>>;

fn deliver(ctx: &Arc<NodeContext>, workers: &mut Workers, tasks: &mut JoinSet<String>, pod: Pod) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    let pod = Arc::new(pod);
    if let Some(tx) = workers.get(&uid) {
        let _ = tx.send(Some(pod));
        return;
    }
    tracing::debug!(pod = ?pod.metadata.name, "pod delivered to a new worker");
    let (tx, rx) = watch::channel(Some(pod));
    workers.insert(uid.clone(), tx);
    let ctx = ctx.clone();
    tasks.spawn(async move {
        worker::run(ctx, rx).await;
        uid
    });
}

/// Runs forever (until the caller drops it).
pub async fn run_pods(ctx: Arc<NodeContext>) {
    let pods: Api<Lean<Pod>> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let mut stream = lean::watcher(pods, config).boxed();
    let mut workers: Workers = HashMap::new();
    let mut tasks: JoinSet<String> = JoinSet::new();
    let mut listing: Option<HashSet<String>> = None;
    let mut first_listing = true;
    loop {
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(Event::Apply(pod))) => deliver(&ctx, &mut workers, &mut tasks, pod),
                Some(Ok(Event::Delete(pod))) => {
                    if let Some(tx) = pod.metadata.uid.as_ref().and_then(|uid| workers.get(uid)) {
                        let _ = tx.send(None);
                    }
                }
                Some(Ok(Event::Init)) => listing = Some(HashSet::new()),
                Some(Ok(Event::InitApply(pod))) => {
                    if let (Some(seen), Some(uid)) = (listing.as_mut(), pod.metadata.uid.clone()) {
                        seen.insert(uid);
                    }
                    deliver(&ctx, &mut workers, &mut tasks, pod);
                }
                Some(Ok(Event::InitDone)) => {
                    let seen = listing.take().unwrap_or_default();
                    // Pods deleted while we were not watching.
                    for (uid, tx) in &workers {
                        if !seen.contains(uid) {
                            let _ = tx.send(None);
                        }
                    }
                    if first_listing {
                        first_listing = false;
                        cleanup_orphans(&ctx, &seen).await;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "pod watch failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                None => return,
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(uid) = done {
                    workers.remove(&uid);
                }
            }
        }
    }
}

/// Removes containers and network namespaces of pods not in `live`.
pub async fn cleanup_orphans(ctx: &NodeContext, live: &HashSet<String>) {
    let all = match ctx.runtime.list_containers(&[]).await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list containers for orphan cleanup");
            return;
        }
    };
    for c in all {
        let Some(uid) = c.labels.get(LABEL_POD_UID) else {
            continue;
        };
        if live.contains(uid) {
            continue;
        }
        tracing::info!(container = %c.id, pod_uid = %uid, "removing orphaned container");
        if let Err(e) = containers::remove(&ctx.runtime, &c.id).await {
            tracing::warn!(container = %c.id, error = %e, "cannot remove orphaned container");
        }
    }
    let netns_dir = ctx.data_dir.join("netns");
    for entry in std::fs::read_dir(&netns_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let uid = entry.file_name().to_string_lossy().into_owned();
        if live.contains(&uid) {
            continue;
        }
        if let Some(cni) = &ctx.cni {
            let _ = cni.del(&uid, &entry.path()).await;
        }
        if let Err(e) = crate::netns::remove(&entry.path()) {
            tracing::warn!(error = %e, "cannot remove orphaned netns");
        }
        crate::cgroups::remove_pod(&ctx.cgroup_parent, &uid).await;
    }
}
