//! The ferrokube service proxy (`ferrokube proxy`): on every node it
//! watches Services, EndpointSlices and Nodes through kube-runtime
//! reflectors and programs the kernel's NAT so that ClusterIPs, NodePorts
//! and load-balancer IPs reach the ready endpoints ([`rules`], after
//! kube-proxy's iptables mode). Changes are batched (a burst of events
//! becomes one `iptables-restore`) and incremental ([`proxier`]: a
//! changed Service rewrites only its own chains); a start resyncs
//! everything and removes the chains a previous run left behind.

pub mod iptables;
pub mod model;
pub mod proxier;
pub mod rules;
pub mod servicelb;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;

use crate::iptables::{Iptables, IptablesError};
use crate::proxier::Proxier;
use crate::rules::{PortRules, RulesConfig};

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Quiet time after which unused chains are deleted.
const IDLE_COLLECT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Iptables(#[from] IptablesError),
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
    pub iptables: Iptables,
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
            iptables: Iptables::default(),
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

/// The rules of one Service from the caches.
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

fn rules_for(
    config: &ProxyConfig,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
    (ns, name): &Key,
) -> Option<Vec<PortRules>> {
    let svc = services.get(&ObjectRef::new(name).within(ns))?;
    let all = slices.state();
    let mine: Vec<&EndpointSlice> = all
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|s| s.labels().get(SERVICE_NAME_LABEL) == Some(name))
        .map(|s| s.as_ref())
        .collect();
    Some(service_rules(&config.rules, &config.node_name, &svc, &mine))
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
        watcher(
            Api::<Service>::all(client.clone()),
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
        watcher(
            Api::<EndpointSlice>::all(client.clone()),
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
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
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
        let mut proxier = Proxier::new(config.rules.clone());
        let mut full = true;
        let mut dirty: BTreeSet<Key> = BTreeSet::new();
        let mut lb_all = true;
        loop {
            if full {
                match full_sync(&config, &mut proxier, &services, &slices).await {
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
                let changed: Vec<(String, Option<Vec<PortRules>>)> = dirty
                    .iter()
                    .map(|k| {
                        (
                            format!("{}/{}", k.0, k.1),
                            rules_for(&config, &services, &slices, k),
                        )
                    })
                    .collect();
                let payload = proxier.update(changed);
                if let Err(e) = config.iptables.restore(&payload.text).await {
                    tracing::warn!(error = %e, "incremental proxy sync failed; resyncing everything");
                    full = true;
                    continue;
                }
                tracing::debug!(
                    services = dirty.len(),
                    chains = payload.chains,
                    rules = payload.rules,
                    "programmed"
                );
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
                        let payload = proxier.collect();
                        if let Err(e) = config.iptables.restore(&payload.text).await {
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
    proxier: &mut Proxier,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
) -> Result<(), IptablesError> {
    let mut all = BTreeMap::new();
    for svc in services.state() {
        let key = (svc.namespace().unwrap_or_default(), svc.name_any());
        if let Some(r) = rules_for(config, services, slices, &key) {
            all.insert(format!("{}/{}", key.0, key.1), r);
        }
    }
    let nat = config.iptables.chains("nat", &config.rules.prefix).await?;
    let filter = config
        .iptables
        .chains("filter", &config.rules.prefix)
        .await?;
    let payload = proxier.full_sync(all, &nat, &filter);
    config.iptables.restore(&payload.text).await?;
    config.iptables.ensure_hooks(&config.rules).await?;
    tracing::info!(
        services = proxier.service_count(),
        rules = payload.rules,
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
