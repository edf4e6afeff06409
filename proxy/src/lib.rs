//! The ferrokube service proxy (`ferrokube proxy`): on every node it
//! watches Services, EndpointSlices and Nodes through kube-runtime
//! reflectors and programs the kernel's NAT so that ClusterIPs, NodePorts
//! and load-balancer IPs reach the ready endpoints. One model
//! ([`model`]) feeds two backends ([`dataplane`]): nftables ([`nftrules`],
//! after kube-proxy's nftables mode: verdict maps, tables of our own
//! sharded by Service, [`nftlayout`])
//! and iptables ([`rules`], after kube-proxy's iptables mode). Changes are
//! batched (a burst of events becomes one transaction) and incremental (a
//! changed Service rewrites only what it owns); a start resyncs
//! everything and removes what a previous run left behind.

pub mod dataplane;
#[cfg(test)]
mod fixtures;
pub mod iptables;
pub mod model;
pub mod netlink;
pub mod nft;
pub mod nftcompile;
pub mod nftlayout;
pub mod nftproxier;
pub mod nftrules;
pub mod proxier;
pub mod rules;
pub mod servicelb;
pub mod tool;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use client::lean::{self, Lean};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;

pub use crate::dataplane::ProxyMode;
use crate::dataplane::{Dataplane, DataplaneError};
use crate::iptables::Iptables;
use crate::model::ServicePort;
use crate::nft::Nft;
use crate::rules::{PortRules, RulesConfig};

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Quiet time after which unused chains are deleted.
const IDLE_COLLECT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error("chain prefix {0:?} must be 1 to 7 characters of A-Z and 0-9")]
    Prefix(String),
}

/// How a proxy is run (`ferrokube proxy ...`).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// This node (`--hostname-override`): decides which endpoints are
    /// local for the `Local` traffic policies.
    pub node_name: String,
    pub rules: RulesConfig,
    /// The backend wanted; nftables falls back to iptables when `nft`
    /// cannot run.
    pub mode: ProxyMode,
    pub iptables: Iptables,
    pub nft: Nft,
    /// How long to gather events before programming them (kube-proxy's
    /// `--iptables-min-sync-period`, much shorter here because each sync
    /// is incremental).
    pub batch: Duration,
    /// Write `status.loadBalancer` of LoadBalancer Services.
    pub service_lb: bool,
}

impl ProxyConfig {
    pub fn new(node_name: String) -> ProxyConfig {
        ProxyConfig {
            node_name,
            rules: RulesConfig {
                prefix: "FKUBE".into(),
                cluster_cidr: "10.42.0.0/16".into(),
                service_cidr: "10.43.0.0/16".into(),
                masq_mark: 0x4000,
            },
            mode: ProxyMode::Nftables,
            iptables: Iptables::default(),
            nft: Nft::default(),
            batch: Duration::from_millis(10),
            service_lb: true,
        }
    }

    pub fn validate(&self) -> Result<(), ProxyError> {
        let p = &self.rules.prefix;
        let ok = !p.is_empty()
            && p.len() <= rules::MAX_PREFIX
            && p.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(())
        } else {
            Err(ProxyError::Prefix(p.clone()))
        }
    }
}

/// `(namespace, name)` of a Service.
type Key = (String, String);

/// The iptables rules of one Service (the benchmark's entry point).
pub fn service_rules(
    cfg: &RulesConfig,
    node: &str,
    svc: &Service,
    slices: &[&EndpointSlice],
) -> Vec<PortRules> {
    model::service_ports(svc, slices, node)
        .iter()
        .map(|p| rules::port_rules(cfg, p))
        .collect()
}

/// The model of one Service from the caches.
fn ports_for(
    config: &ProxyConfig,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
    (ns, name): &Key,
) -> Option<Vec<ServicePort>> {
    let svc = services.get(&ObjectRef::new(name).within(ns))?;
    let all = slices.state();
    let mine: Vec<&EndpointSlice> = all
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|s| s.labels().get(SERVICE_NAME_LABEL) == Some(name))
        .map(|s| s.as_ref())
        .collect();
    Some(model::service_ports(&svc, &mine, &config.node_name))
}

/// Runs the proxy until `shutdown` resolves. The rules stay in the kernel
/// afterwards, so traffic keeps flowing across a restart.
pub async fn run(
    client: Client,
    config: ProxyConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProxyError> {
    config.validate()?;
    let (services, sw) = reflector::store::<Service>();
    let (slices, lw) = reflector::store::<EndpointSlice>();
    let (nodes, nw) = reflector::store::<Node>();
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<Key>>();

    let t = tx.clone();
    let service_feed = reflector::reflector(
        sw,
        lean::watcher(
            Api::<Lean<Service>>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .for_each(move |ev| {
        if let Ok(ev) = ev {
            for o in objects(&ev) {
                let _ = t.send(Some((o.namespace().unwrap_or_default(), o.name_any())));
            }
        }
        async {}
    });
    let t = tx.clone();
    let slice_feed = reflector::reflector(
        lw,
        lean::watcher(
            Api::<Lean<EndpointSlice>>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .for_each(move |ev| {
        if let Ok(ev) = ev {
            for o in objects(&ev) {
                if let Some(svc) = o.labels().get(SERVICE_NAME_LABEL) {
                    let _ = t.send(Some((o.namespace().unwrap_or_default(), svc.clone())));
                }
            }
        }
        async {}
    });
    // A Node change can change every load balancer's addresses.
    let t = tx.clone();
    let node_feed = reflector::reflector(
        nw,
        lean::watcher(
            Api::<Lean<Node>>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .for_each(move |_| {
        let _ = t.send(None);
        async {}
    });

    let work = async {
        let _ = services.wait_until_ready().await;
        let _ = slices.wait_until_ready().await;
        let _ = nodes.wait_until_ready().await;
        let mode = dataplane::effective_mode(config.mode, &config.nft).await;
        if let Err(e) =
            dataplane::cleanup_other(mode, &config.rules, &config.iptables, &config.nft).await
        {
            tracing::warn!(error = %e, "cannot remove the other proxy mode's leftovers");
        }
        tracing::info!(%mode, "service proxy mode");
        let mut plane = Dataplane::new(
            mode,
            config.rules.clone(),
            config.iptables.clone(),
            config.nft.clone(),
        );
        let mut full = true;
        let mut dirty: BTreeSet<Key> = BTreeSet::new();
        let mut lb_all = true;
        loop {
            if full {
                match full_sync(&config, &mut plane, &services, &slices).await {
                    Ok(()) => {
                        full = false;
                        dirty.clear();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "full proxy sync failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            } else if !dirty.is_empty() {
                let changed: Vec<(String, Option<Vec<ServicePort>>)> = dirty
                    .iter()
                    .map(|k| {
                        (
                            format!("{}/{}", k.0, k.1),
                            ports_for(&config, &services, &slices, k),
                        )
                    })
                    .collect();
                match plane.update(changed).await {
                    Ok(w) => tracing::debug!(
                        services = dirty.len(),
                        chains = w.chains,
                        rules = w.rules,
                        elements = w.elements,
                        "programmed"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "incremental proxy sync failed; resyncing everything");
                        full = true;
                        continue;
                    }
                }
            }
            if config.service_lb {
                update_load_balancers(
                    &client,
                    &services,
                    &nodes,
                    if lb_all { None } else { Some(&dirty) },
                )
                .await;
            }
            dirty.clear();
            lb_all = false;
            // Wait for a change, then gather the burst that follows. When
            // idle, delete the chains earlier updates left flushed.
            let next = loop {
                match tokio::time::timeout(IDLE_COLLECT, rx.recv()).await {
                    Ok(m) => break m,
                    Err(_) => {
                        if let Err(e) = plane.collect().await {
                            tracing::warn!(error = %e, "cannot delete unused chains; resyncing everything");
                            full = true;
                            break Some(None);
                        }
                    }
                }
            };
            match next {
                Some(Some(k)) => {
                    dirty.insert(k);
                }
                Some(None) => lb_all = true,
                None => return,
            }
            tokio::time::sleep(config.batch).await;
            while let Ok(m) = rx.try_recv() {
                match m {
                    Some(k) => {
                        dirty.insert(k);
                    }
                    None => lb_all = true,
                }
            }
        }
    };
    tokio::select! {
        _ = shutdown => {}
        _ = service_feed => {}
        _ = slice_feed => {}
        _ = node_feed => {}
        _ = work => {}
    }
    Ok(())
}

async fn full_sync(
    config: &ProxyConfig,
    plane: &mut Dataplane,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
) -> Result<(), DataplaneError> {
    let mut all = BTreeMap::new();
    for svc in services.state() {
        let key = (svc.namespace().unwrap_or_default(), svc.name_any());
        if let Some(r) = ports_for(config, services, slices, &key) {
            all.insert(format!("{}/{}", key.0, key.1), r);
        }
    }
    let count = all.len();
    let w = plane.full_sync(all).await?;
    tracing::info!(
        mode = %plane.mode(),
        services = count,
        rules = w.rules,
        elements = w.elements,
        "proxy rules programmed from scratch"
    );
    Ok(())
}

/// Writes `status.loadBalancer` of the LoadBalancer Services among
/// `only` (all when `None`).
async fn update_load_balancers(
    client: &Client,
    services: &Store<Service>,
    nodes: &Store<Node>,
    only: Option<&BTreeSet<Key>>,
) {
    let nodes = nodes.state();
    for svc in services.state() {
        let key = (svc.namespace().unwrap_or_default(), svc.name_any());
        if only.is_some_and(|o| !o.contains(&key)) {
            continue;
        }
        let Some(ips) = servicelb::wanted_ingress(&svc, &nodes) else {
            continue;
        };
        let Some(patch) = servicelb::status_patch(&svc, &ips) else {
            continue;
        };
        let api: Api<Service> = Api::namespaced(client.clone(), &key.0);
        if let Err(e) = api
            .patch_status(&key.1, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::info!(service = %format!("{}/{}", key.0, key.1), error = %e, "cannot set the load balancer status");
        }
    }
}

fn objects<K>(ev: &watcher::Event<K>) -> Vec<&K> {
    match ev {
        watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
            vec![o]
        }
        watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
    }
}
