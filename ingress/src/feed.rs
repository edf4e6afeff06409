//! The watch-fed caches: reflectors over Ingresses, IngressClasses,
//! Services and EndpointSlices. Each change wakes one task that rebuilds
//! the routing table, swaps it in, and brings our Ingresses'
//! `status.loadBalancer` to the node address.

use std::net::IpAddr;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde_json::json;
use tokio::sync::Notify;

use crate::proxy::SharedTable;
use crate::routes::{self, ClassFilter, Endpoints};

fn feed<K>(
    client: &Client,
    changed: &Arc<Notify>,
) -> (Store<K>, impl std::future::Future<Output = ()> + Send + use<K>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let changed = changed.clone();
    let stream = reflector::reflector(writer, watcher(Api::<K>::all(client.clone()), watcher::Config::default()))
        .default_backoff()
        .for_each(move |_| {
            changed.notify_one();
            futures::future::ready(())
        });
    (store, stream)
}

/// Keeps `table` current until dropped; `generation` counts the tables
/// published (tests wait on it).
pub async fn run(
    client: Client,
    table: SharedTable,
    filter: ClassFilter,
    node_ip: Option<IpAddr>,
    generation: tokio::sync::watch::Sender<u64>,
) {
    let changed = Arc::new(Notify::new());
    let (ingresses, f1) = feed::<Ingress>(&client, &changed);
    let (classes, f2) = feed::<IngressClass>(&client, &changed);
    let (services, f3) = feed::<Service>(&client, &changed);
    let (slices, f4) = feed::<EndpointSlice>(&client, &changed);
    let rebuild = async {
        for ready in [
            ingresses.wait_until_ready().await,
            classes.wait_until_ready().await,
            services.wait_until_ready().await,
            slices.wait_until_ready().await,
        ] {
            if ready.is_err() {
                return;
            }
        }
        loop {
            let ings = ingresses.state();
            let cls = classes.state();
            let class_refs: Vec<&IngressClass> = cls.iter().map(|c| c.as_ref()).collect();
            let ours: Vec<&Ingress> = ings
                .iter()
                .map(|i| i.as_ref())
                .filter(|i| routes::is_ours(i, &class_refs, &filter))
                .collect();
            let svcs = services.state();
            let eps = slices.state();
            let endpoints = Endpoints::new(svcs.iter().map(|s| s.as_ref()), eps.iter().map(|s| s.as_ref()));
            let built = routes::build(&ours, &endpoints);
            tracing::debug!(ingresses = built.ingresses.len(), "routing table rebuilt");
            table.store(Arc::new(built));
            generation.send_modify(|g| *g += 1);
            if let Some(ip) = node_ip {
                for ing in &ours {
                    update_status(&client, ing, ip).await;
                }
            }
            changed.notified().await;
        }
    };
    tokio::select! {
        _ = f1 => {}
        _ = f2 => {}
        _ = f3 => {}
        _ = f4 => {}
        _ = rebuild => {}
    }
}

/// Sets `status.loadBalancer.ingress` to the node address (as k3s's
/// Traefik does with the node IPs) when it says anything else.
async fn update_status(client: &Client, ing: &Ingress, ip: IpAddr) {
    let (Some(ns), Some(name)) = (&ing.metadata.namespace, &ing.metadata.name) else {
        return;
    };
    let want = ip.to_string();
    let current: Vec<String> = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|list| list.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default();
    if current == [want.clone()] {
        return;
    }
    let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": want}]}}});
    let api = Api::<Ingress>::namespaced(client.clone(), ns);
    if let Err(e) = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        // The next change retries; a deleted Ingress needs nothing.
        tracing::info!(namespace = %ns, %name, error = %e, "cannot set Ingress status");
    }
}
