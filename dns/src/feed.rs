//! The watch-fed caches: kube-runtime reflectors over Services and
//! EndpointSlices; each change wakes one task that rebuilds the [`Index`]
//! and swaps it in whole (a burst of events costs one rebuild).

use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::Notify;

use crate::index::Index;

/// The current index, shared with the query handlers.
pub type Shared = Arc<ArcSwap<Index>>;

/// Keeps `shared` up to date until the returned future is dropped;
/// `generation` counts the indexes published (1 once both caches listed).
pub async fn run(client: Client, shared: Shared, generation: tokio::sync::watch::Sender<u64>) {
    let (services, sw) = reflector::store::<Service>();
    let (slices, ew) = reflector::store::<EndpointSlice>();
    let changed = Arc::new(Notify::new());
    let svc_feed = {
        let changed = changed.clone();
        reflector::reflector(
            sw,
            watcher(Api::<Service>::all(client.clone()), watcher::Config::default()),
        )
        .default_backoff()
        .for_each(move |_| {
            changed.notify_one();
            futures::future::ready(())
        })
    };
    let slice_feed = {
        let changed = changed.clone();
        reflector::reflector(
            ew,
            watcher(Api::<EndpointSlice>::all(client), watcher::Config::default()),
        )
        .default_backoff()
        .for_each(move |_| {
            changed.notify_one();
            futures::future::ready(())
        })
    };
    let rebuild = async {
        if services.wait_until_ready().await.is_err() || slices.wait_until_ready().await.is_err() {
            return;
        }
        loop {
            publish(&shared, &services, &slices);
            generation.send_modify(|g| *g += 1);
            changed.notified().await;
        }
    };
    tokio::select! {
        _ = svc_feed => {}
        _ = slice_feed => {}
        _ = rebuild => {}
    }
}

fn publish(shared: &Shared, services: &Store<Service>, slices: &Store<EndpointSlice>) {
    let svcs = services.state();
    let eps = slices.state();
    let index = Index::build(svcs.iter().map(|s| s.as_ref()), eps.iter().map(|s| s.as_ref()));
    tracing::debug!(services = index.services.len(), "DNS index rebuilt");
    shared.store(Arc::new(index));
}
