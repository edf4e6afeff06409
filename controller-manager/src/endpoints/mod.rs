//! The EndpointSlice and Endpoints controllers (Kubernetes
//! `pkg/controller/endpointslice` and `pkg/controller/endpoint`), run by
//! one driver that shares their caches: Services and Pods through
//! kube-runtime reflectors, a deduplicating queue of Service keys, and a
//! sync per key that writes both the slices ([`slices`]) and the legacy
//! object ([`legacy`]).
//!
//! kube-runtime's `Controller` is not used here because a deleted Service
//! must still be synced (its Endpoints object carries no owner reference,
//! as in Kubernetes) and `Controller` only reconciles objects it still
//! holds. Slices are listed from the API server on each sync rather than
//! read from a cache, so a slice this controller just created is never
//! missed and created twice (Kubernetes needs its `endpointSliceTracker`
//! for that).

pub mod legacy;
pub mod podinfo;
pub mod slices;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;

use crate::informers::{Change, Informers};
use crate::{Error, RESYNC, RETRY};

/// A Service's `(namespace, name)`.
pub type Key = (String, String);

struct Ctx {
    client: Client,
    services: Store<Service>,
    pods: Store<Pod>,
}

/// Runs both controllers until `stop` resolves.
pub async fn run(
    client: Client,
    informers: Informers,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let service_informer = informers.get::<Service>();
    let pod_informer = informers.get::<Pod>();
    let services = service_informer.store();
    let pods = pod_informer.store();
    let (tx, mut rx) = mpsc::unbounded_channel::<Key>();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        services: services.clone(),
        pods: pods.clone(),
    });

    let svc_tx = tx.clone();
    let service_feed = service_informer.objects().for_each(move |svc| {
        let _ = svc_tx.send(key_of(svc.as_ref()));
        async {}
    });

    let pod_tx = tx.clone();
    let pod_services = services.clone();
    let mut last: HashMap<Key, Vec<Key>> = HashMap::new();
    let pod_feed = pod_informer.subscribe().for_each(move |change| {
        let deleted = matches!(change, Change::Delete(_));
        let pod = change.object();
        let pod_key = key_of(pod.as_ref());
        let now = selecting(&pod_services, pod);
        let before = if deleted {
            last.remove(&pod_key)
        } else {
            last.insert(pod_key, now.clone())
        };
        let all: BTreeSet<Key> = now
            .into_iter()
            .chain(before.into_iter().flatten())
            .collect();
        for k in all {
            let _ = pod_tx.send(k);
        }
        async {}
    });

    // Slices written by someone else (or deleted) are put back.
    let slice_tx = tx.clone();
    let slice_feed = watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(&format!(
            "{}={}",
            slices::MANAGED_BY_LABEL,
            slices::CONTROLLER_NAME
        )),
    )
    .default_backoff()
    .for_each(move |ev| {
        if let Ok(ev) = ev {
            for s in event_objects(&ev) {
                if let (Some(ns), Some(svc)) =
                    (s.namespace(), s.labels().get(slices::SERVICE_NAME_LABEL))
                {
                    let _ = slice_tx.send((ns, svc.clone()));
                }
            }
        }
        async {}
    });

    let resync_tx = tx.clone();
    let resync_services = services.clone();
    let worker = async move {
        let _ = service_informer.ready().await;
        let _ = pod_informer.ready().await;
        let resync = async {
            loop {
                for svc in resync_services.state() {
                    let _ = resync_tx.send(key_of(svc.as_ref()));
                }
                tokio::time::sleep(RESYNC).await;
            }
        };
        let work = async {
            while let Some(first) = rx.recv().await {
                // Take everything queued: a burst of pod events for one
                // Service becomes one sync.
                let mut batch = BTreeSet::from([first]);
                while let Ok(k) = rx.try_recv() {
                    batch.insert(k);
                }
                for key in batch {
                    if let Err(e) = sync(&ctx, &key).await {
                        tracing::info!(namespace = %key.0, service = %key.1, error = %e, "endpoints sync failed; retrying");
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(RETRY).await;
                            let _ = tx.send(key);
                        });
                    }
                }
            }
        };
        tokio::join!(resync, work);
    };
    tokio::select! {
        _ = stop => {}
        _ = service_feed => {}
        _ = pod_feed => {}
        _ = slice_feed => {}
        _ = worker => {}
    }
}

fn event_objects<K>(ev: &watcher::Event<K>) -> Vec<&K> {
    match ev {
        watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
            vec![o]
        }
        watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
    }
}

fn key_of<K: kube::Resource>(o: &K) -> Key {
    (o.namespace().unwrap_or_default(), o.name_any())
}

/// The Services in the pod's namespace whose selector picks it.
fn selecting(services: &Store<Service>, pod: &Pod) -> Vec<Key> {
    let ns = pod.namespace().unwrap_or_default();
    services
        .state()
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
        .filter(|s| podinfo::selects(s, pod.labels()))
        .map(|s| key_of(s.as_ref()))
        .collect()
}

async fn sync(ctx: &Ctx, (ns, name): &Key) -> Result<(), Error> {
    let svc = ctx
        .services
        .get(&ObjectRef::new(name).within(ns))
        .filter(|s| s.metadata.deletion_timestamp.is_none());
    let slice_api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ns);
    let ep_api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), ns);
    let selector = format!(
        "{}={},{}={}",
        slices::SERVICE_NAME_LABEL,
        name,
        slices::MANAGED_BY_LABEL,
        slices::CONTROLLER_NAME
    );
    let existing = slice_api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    let Some(svc) = svc.filter(|s| podinfo::is_managed(s)) else {
        for s in existing {
            ignore_not_found(
                slice_api
                    .delete(&s.name_any(), &DeleteParams::default())
                    .await,
            )?;
        }
        // A Service without a selector keeps the Endpoints its owner
        // writes; a gone one loses ours.
        if ctx.services.get(&ObjectRef::new(name).within(ns)).is_none() {
            ignore_not_found(ep_api.delete(name, &DeleteParams::default()).await)?;
        }
        return Ok(());
    };
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .filter(|p| podinfo::selects(&svc, p.labels()))
        .collect();

    let ours: Vec<EndpointSlice> = existing
        .into_iter()
        .filter(|s| slices::is_ours(s, &svc))
        .collect();
    let plan = slices::plan(&svc, slices::desired(&svc, &pods), &ours);
    if !plan.is_empty() {
        tracing::debug!(namespace = %ns, service = %name, create = plan.create.len(),
            update = plan.update.len(), delete = plan.delete.len(), "writing endpoint slices");
    }
    for s in &plan.create {
        slice_api.create(&PostParams::default(), s).await?;
    }
    for s in &plan.update {
        slice_api
            .replace(&s.name_any(), &PostParams::default(), s)
            .await?;
    }
    for n in &plan.delete {
        ignore_not_found(slice_api.delete(n, &DeleteParams::default()).await)?;
    }

    let want = legacy::desired(&svc, &pods);
    match ep_api.get_opt(name).await? {
        None => {
            ep_api.create(&PostParams::default(), &want).await?;
        }
        Some(current) if !legacy::up_to_date(&current, &want) => {
            let mut updated = want;
            updated.metadata.resource_version = current.metadata.resource_version.clone();
            updated.metadata.annotations = current.metadata.annotations.clone();
            ep_api
                .replace(name, &PostParams::default(), &updated)
                .await?;
        }
        Some(_) => {}
    }
    Ok(())
}

fn ignore_not_found<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
