//! The controller-manager: level-triggered controllers that drive the
//! cluster's observed state towards the declared one, talking to the API
//! server only (watch-fed caches from `kube-runtime`, never the store).
//!
//! Each controller is one module with a `reconcile(obj, ctx)` and an
//! `error_policy`, run by [`kube::runtime::Controller`], which provides the
//! deduplicating queue, per-object serialisation, backoff and resync.

pub mod claim;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod informers;
pub mod leader;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod pods;
pub mod replicaset;
pub mod serviceaccounts;
pub mod taint_eviction;
pub mod volumebinding;

use std::future::Future;
use std::time::Duration;

/// Why a reconcile failed; the controller retries it after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("{object}: invalid selector: {source}")]
    Selector {
        object: String,
        #[source]
        source: common::selector::SelectorError,
    },
    #[error("{object}: {what} is missing")]
    Missing { object: String, what: &'static str },
    #[error("cannot (de)serialise an object: {0}")]
    Json(#[from] serde_json::Error),
}

/// Retry delay after a failed reconcile. Kubernetes' workqueues back off
/// exponentially from 5ms; a flat short delay is enough at our scale and
/// keeps conflicts (the common failure) cheap to recover from.
pub(crate) const RETRY: Duration = Duration::from_millis(500);

/// Resync period: every object is reconciled again this often even without
/// events, as informers' resync does in Kubernetes.
pub(crate) const RESYNC: Duration = Duration::from_secs(300);

/// Waits until the API server answers (started in the same process, it
/// may not be listening yet), so the controllers' first watches succeed.
pub async fn wait_until_serving(client: &kube::Client) {
    while client.apiserver_version().await.is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Settings of controllers that have any (`ferrokube controller-manager`
/// flags).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub node_ipam: nodeipam::Config,
}

/// Runs every controller with default options until `shutdown` resolves.
pub async fn run(client: kube::Client, shutdown: impl Future<Output = ()> + Send + 'static) {
    run_with(client, Options::default(), shutdown).await;
}

/// Runs every controller until `shutdown` resolves.
pub async fn run_with(
    client: kube::Client,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = move || {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    // One watch per kind for every controller, stopped with them.
    let informers = informers::Informers::new(client.clone());
    let i = || informers.clone();
    let tasks = vec![
        tokio::spawn(replicaset::run(client.clone(), i(), stop())),
        tokio::spawn(deployment::run(client.clone(), i(), stop())),
        tokio::spawn(gc::run(client.clone(), i(), stop())),
        tokio::spawn(namespace::run(client.clone(), i(), stop())),
        tokio::spawn(nodelifecycle::run(client.clone(), i(), stop())),
        tokio::spawn(taint_eviction::run(client.clone(), i(), stop())),
        tokio::spawn(endpoints::run(client.clone(), i(), stop())),
        tokio::spawn(nodeipam::run(
            client.clone(),
            i(),
            options.node_ipam,
            stop(),
        )),
        tokio::spawn(volumebinding::run(client.clone(), i(), stop())),
        tokio::spawn(serviceaccounts::run(client.clone(), i(), stop())),
    ];
    shutdown.await;
    let _ = tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    informers.stop().await;
}

/// Runs the controllers only while this process holds the leader Lease
/// (`kube-system/kube-controller-manager`), until `shutdown` resolves.
pub async fn run_elected(
    client: kube::Client,
    config: leader::Config,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let lead_client = client.clone();
    leader::run(client, config, shutdown, move |mut lost| {
        let c = lead_client.clone();
        async move {
            run_with(c, options, async move {
                let _ = lost.wait_for(|l| *l).await;
            })
            .await;
        }
    })
    .await;
}
