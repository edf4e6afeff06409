//! The garbage collector (Kubernetes `pkg/controller/garbagecollector`):
//! deletes objects whose owners are all gone, and completes the `orphan`
//! and `foregroundDeletion` finalizers the API server adds for
//! `propagationPolicy=Orphan|Foreground`.
//!
//! Instead of Kubernetes' dependency graph we keep a watch-fed cache of
//! every served kind and rescan it whenever any of them changes. A cached
//! absence is never trusted on its own: an owner is gone only if a live
//! GET answers 404 or finds another uid (an owner created a moment ago may
//! not have reached our cache yet).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::resources::{RESOURCES, ResourceInfo, find_kind};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, Preconditions,
};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;

use crate::Error;
use crate::informers::{Informer, Informers, Kind};

/// Finalizers the API server adds for non-background propagation.
pub const ORPHAN: &str = "orphan";
pub const FOREGROUND: &str = "foregroundDeletion";

/// How long to let a burst of events settle before rescanning. A scan
/// walks every tracked object, so under a stream of changes (thousands of
/// pods being created) rescans are spaced out rather than run per event.
const SETTLE: Duration = Duration::from_millis(1000);
/// Rescan this often even without events (retries after failures).
const PERIOD: Duration = Duration::from_secs(5);

pub fn api_resource(info: &ResourceInfo) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(info.group, info.version, info.kind),
        info.plural,
    )
}

pub fn dynamic_api(client: &Client, info: &ResourceInfo, ns: Option<&str>) -> Api<DynamicObject> {
    let ar = api_resource(info);
    match (info.namespaced(), ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    }
}

/// Kinds the collector tracks: everything served but events, which own
/// nothing and are owned by nothing.
fn tracked() -> impl Iterator<Item = &'static ResourceInfo> {
    RESOURCES.iter().filter(|r| r.plural != "events")
}

/// What the collector reads of an object: its metadata, whichever cache
/// holds it (a shared typed informer or its own metadata-only one).
pub trait Meta: Send + Sync {
    fn meta(&self) -> &ObjectMeta;
}

impl<K: kube::Resource + Send + Sync> Meta for K {
    fn meta(&self) -> &ObjectMeta {
        kube::Resource::meta(self)
    }
}

type Entry = (&'static ResourceInfo, Arc<dyn Meta>);

/// The content of one tracked kind's cache.
type Snapshot = Box<dyn Fn() -> Vec<Arc<dyn Meta>> + Send + Sync>;

/// The objects of `store`, seen through [`Meta`].
fn snapshot<K>(store: Store<K>) -> Snapshot
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    Box::new(move || {
        store
            .state()
            .into_iter()
            .map(|o| o as Arc<dyn Meta>)
            .collect()
    })
}

/// One tracked kind: its cache's content, a future resolving once it has
/// been listed, and its changes.
struct Source {
    state: Snapshot,
    ready: BoxFuture<'static, ()>,
    changes: BoxStream<'static, ()>,
}

fn shared<K: Kind>(informer: Informer<K>) -> Source {
    let store = informer.store();
    let ready = informer.ready();
    Source {
        state: snapshot(store),
        ready: ready.map(|_| ()).boxed(),
        changes: informer.subscribe().map(|_| ()).boxed(),
    }
}

/// The kinds other controllers watch come from the shared informers, so
/// their events are not sent twice; the rest from a metadata-only watch
/// of the collector's own.
fn source(client: &Client, informers: &Informers, info: &'static ResourceInfo) -> Source {
    match (info.group, info.plural) {
        ("", "pods") => shared(informers.get::<Pod>()),
        ("", "nodes") => shared(informers.get::<Node>()),
        ("", "services") => shared(informers.get::<Service>()),
        ("apps", "replicasets") => shared(informers.get::<ReplicaSet>()),
        ("apps", "deployments") => shared(informers.get::<Deployment>()),
        ("", "namespaces") => shared(informers.get::<Namespace>()),
        ("", "persistentvolumes") => shared(informers.get::<PersistentVolume>()),
        ("", "persistentvolumeclaims") => shared(informers.get::<PersistentVolumeClaim>()),
        ("coordination.k8s.io", "leases") => shared(informers.get::<Lease>()),
        _ => metadata_only(client, info),
    }
}

fn metadata_only(client: &Client, info: &'static ResourceInfo) -> Source {
    let writer = Writer::new(api_resource(info));
    let store = writer.as_reader();
    let ready = writer.as_reader();
    // The collector reads only metadata: keep nothing else, so its cache
    // costs a fraction of the objects it tracks.
    let stripped = watcher(dynamic_api(client, info, None), watcher::Config::default()).modify(
        |o: &mut DynamicObject| {
            o.data = serde_json::Value::Null;
            o.metadata.managed_fields = None;
            o.metadata.annotations = None;
            o.metadata.labels = None;
        },
    );
    Source {
        state: snapshot(store),
        ready: async move {
            let _ = ready.wait_until_ready().await;
        }
        .boxed(),
        changes: reflector::reflector(writer, stripped)
            .default_backoff()
            .map(|_| ())
            .boxed(),
    }
}

pub async fn run(
    client: Client,
    informers: Informers,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let notify = tokio::sync::Notify::new();
    let mut caches = Vec::new();
    let mut ready = Vec::new();
    let mut changes = Vec::new();
    for info in tracked() {
        let s = source(&client, &informers, info);
        caches.push((info, s.state));
        ready.push(s.ready);
        changes.push(s.changes);
    }
    // Driven here, with the scans: a watch of our own only advances when
    // polled, and a shared informer's events only need counting.
    let feed = futures::stream::select_all(changes).for_each(|()| {
        notify.notify_one();
        async {}
    });
    let gc = Collector { client, caches };
    let scan_loop = async {
        futures::future::join_all(ready).await;
        loop {
            if let Err(e) = gc.scan().await {
                tracing::info!(error = %e, "garbage collection pass failed; retrying");
            }
            let _ = tokio::time::timeout(PERIOD, notify.notified()).await;
            tokio::time::sleep(SETTLE).await;
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = scan_loop => {}
        _ = feed => {}
    }
}

struct Collector {
    client: Client,
    caches: Vec<(&'static ResourceInfo, Snapshot)>,
}

fn has_finalizer(o: &dyn Meta, f: &str) -> bool {
    o.meta().finalizers.iter().flatten().any(|x| x == f)
}

fn owner_refs(o: &dyn Meta) -> &[OwnerReference] {
    o.meta().owner_references.as_deref().unwrap_or_default()
}

fn name(o: &dyn Meta) -> String {
    o.meta().name.clone().unwrap_or_default()
}

fn namespace(o: &dyn Meta) -> Option<String> {
    o.meta().namespace.clone()
}

impl Collector {
    async fn scan(&self) -> Result<(), Error> {
        let all: Vec<Entry> = self
            .caches
            .iter()
            .flat_map(|(info, state)| state().into_iter().map(move |o| (*info, o)))
            .collect();
        let live: HashSet<&str> = all
            .iter()
            .filter_map(|(_, o)| o.meta().uid.as_deref())
            .collect();
        let mut dependents: HashMap<&str, Vec<&Entry>> = HashMap::new();
        for e in &all {
            for r in owner_refs(&*e.1) {
                dependents.entry(r.uid.as_str()).or_default().push(e);
            }
        }
        let mut absent: HashMap<String, bool> = HashMap::new();
        for (info, o) in &all {
            let o: &dyn Meta = &**o;
            if o.meta().deletion_timestamp.is_some() {
                let uid = o.meta().uid.as_deref().unwrap_or_default();
                let deps = dependents.get(uid).map(Vec::as_slice).unwrap_or_default();
                if has_finalizer(o, ORPHAN) {
                    self.orphan(info, o, deps).await?;
                } else if has_finalizer(o, FOREGROUND) {
                    self.foreground(info, o, deps).await?;
                }
                continue;
            }
            let refs = owner_refs(o);
            if refs.is_empty() || refs.iter().all(|r| live.contains(r.uid.as_str())) {
                continue;
            }
            let mut gone = Vec::new();
            for r in refs {
                if live.contains(r.uid.as_str()) {
                    continue;
                }
                let known = match absent.get(&r.uid) {
                    Some(a) => *a,
                    None => {
                        let a = self.owner_absent(r, namespace(o).as_deref()).await?;
                        absent.insert(r.uid.clone(), a);
                        a
                    }
                };
                if known {
                    gone.push(r.uid.clone());
                }
            }
            if gone.is_empty() {
                continue;
            }
            if gone.len() == refs.len() {
                self.delete(info, o, "Background").await?;
            } else {
                let keep: Vec<OwnerReference> = refs
                    .iter()
                    .filter(|r| !gone.contains(&r.uid))
                    .cloned()
                    .collect();
                self.set_owner_refs(info, o, keep).await?;
            }
        }
        Ok(())
    }

    /// Whether the owner `r` names is really gone (404 or a new uid). An
    /// owner of a kind we do not serve is assumed present.
    async fn owner_absent(&self, r: &OwnerReference, ns: Option<&str>) -> Result<bool, Error> {
        let Some(info) = find_kind(&r.api_version, &r.kind) else {
            return Ok(false);
        };
        if info.namespaced() && ns.is_none() {
            // A cluster-scoped dependent cannot have a namespaced owner.
            return Ok(true);
        }
        match dynamic_api(&self.client, info, ns).get_opt(&r.name).await? {
            None => Ok(true),
            Some(o) => Ok(o.meta().uid.as_deref() != Some(r.uid.as_str())),
        }
    }

    async fn delete(&self, info: &ResourceInfo, o: &dyn Meta, policy: &str) -> Result<(), Error> {
        let dp = DeleteParams {
            propagation_policy: Some(match policy {
                "Foreground" => kube::api::PropagationPolicy::Foreground,
                _ => kube::api::PropagationPolicy::Background,
            }),
            preconditions: Some(Preconditions {
                uid: o.meta().uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        tracing::debug!(kind = info.kind, name = %name(o), "garbage collecting");
        match dynamic_api(&self.client, info, namespace(o).as_deref())
            .delete(&name(o), &dp)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn patch_meta(
        &self,
        info: &ResourceInfo,
        o: &dyn Meta,
        meta: serde_json::Value,
    ) -> Result<(), Error> {
        let mut meta = meta;
        meta["resourceVersion"] = json!(o.meta().resource_version);
        let api = dynamic_api(&self.client, info, namespace(o).as_deref());
        match api
            .patch(
                &name(o),
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": meta})),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn set_owner_refs(
        &self,
        info: &ResourceInfo,
        o: &dyn Meta,
        refs: Vec<OwnerReference>,
    ) -> Result<(), Error> {
        self.patch_meta(info, o, json!({"ownerReferences": refs}))
            .await
    }

    async fn remove_finalizer(
        &self,
        info: &ResourceInfo,
        o: &dyn Meta,
        f: &str,
    ) -> Result<(), Error> {
        let rest: Vec<&String> = o
            .meta()
            .finalizers
            .iter()
            .flatten()
            .filter(|x| *x != f)
            .collect();
        self.patch_meta(info, o, json!({"finalizers": rest})).await
    }

    /// `orphan`: dependents lose their reference to the owner, then the
    /// owner goes.
    async fn orphan(
        &self,
        info: &ResourceInfo,
        o: &dyn Meta,
        deps: &[&Entry],
    ) -> Result<(), Error> {
        let uid = o.meta().uid.as_deref().unwrap_or_default();
        for (dinfo, d) in deps {
            let d: &dyn Meta = &**d;
            let keep: Vec<OwnerReference> = owner_refs(d)
                .iter()
                .filter(|r| r.uid != uid)
                .cloned()
                .collect();
            self.set_owner_refs(dinfo, d, keep).await?;
        }
        if deps.is_empty() {
            self.remove_finalizer(info, o, ORPHAN).await?;
        }
        Ok(())
    }

    /// `foregroundDeletion`: dependents go first (blocking ones in the
    /// foreground too), then the owner.
    async fn foreground(
        &self,
        info: &ResourceInfo,
        o: &dyn Meta,
        deps: &[&Entry],
    ) -> Result<(), Error> {
        let uid = o.meta().uid.as_deref().unwrap_or_default();
        for (dinfo, d) in deps {
            let d: &dyn Meta = &**d;
            if d.meta().deletion_timestamp.is_some() {
                continue;
            }
            let blocking = owner_refs(d)
                .iter()
                .any(|r| r.uid == uid && r.block_owner_deletion == Some(true));
            self.delete(dinfo, d, if blocking { "Foreground" } else { "Background" })
                .await?;
        }
        if deps.is_empty() {
            self.remove_finalizer(info, o, FOREGROUND).await?;
        }
        Ok(())
    }
}
