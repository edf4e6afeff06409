//! Node IPAM (Kubernetes `pkg/controller/nodeipam`, range allocator): each
//! Node gets `spec.podCIDR`/`spec.podCIDRs`, a /24 (by default) carved from
//! `--cluster-cidr`, never one another Node holds. The state is the Nodes
//! themselves: on start the allocator marks every CIDR a Node already has,
//! so a restart neither forgets nor hands out anything twice.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::Ipv4Addr;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::informers::Informers;
use crate::{Error, RETRY};

/// An IPv4 network, `10.42.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`; the host bits are cleared.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, bits) = s.split_once('/')?;
        let ip: Ipv4Addr = ip.trim().parse().ok()?;
        let prefix: u8 = bits.trim().parse().ok()?;
        if prefix > 32 {
            return None;
        }
        Some(Cidr {
            addr: Ipv4Addr::from(u32::from(ip) & mask(prefix)),
            prefix,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// `--cluster-cidr` and `--node-cidr-mask-size`.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub cluster_cidr: Cidr,
    pub node_mask: u8,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            cluster_cidr: Cidr {
                addr: Ipv4Addr::new(10, 42, 0, 0),
                prefix: 16,
            },
            node_mask: 24,
        }
    }
}

/// Hands out node subnets of one cluster CIDR.
#[derive(Debug)]
pub struct Allocator {
    config: Config,
    /// Indexes of the subnets in use.
    used: BTreeSet<u32>,
}

impl Allocator {
    pub fn new(config: Config) -> Allocator {
        Allocator {
            config,
            used: BTreeSet::new(),
        }
    }

    fn count(&self) -> u32 {
        let bits = u32::from(
            self.config
                .node_mask
                .saturating_sub(self.config.cluster_cidr.prefix),
        );
        1u32.checked_shl(bits).unwrap_or(u32::MAX)
    }

    fn index_of(&self, cidr: &Cidr) -> Option<u32> {
        let base = u32::from(self.config.cluster_cidr.addr);
        let ip = u32::from(cidr.addr);
        let inside = ip & mask(self.config.cluster_cidr.prefix) == base;
        (inside && cidr.prefix == self.config.node_mask)
            .then(|| (ip - base) >> (32 - u32::from(self.config.node_mask)))
    }

    /// Marks a CIDR a Node already has (one of ours or not) as taken.
    pub fn occupy(&mut self, cidr: &str) {
        if let Some(i) = Cidr::parse(cidr).and_then(|c| self.index_of(&c)) {
            self.used.insert(i);
        }
    }

    /// The lowest free subnet, now taken; `None` when the range is full.
    pub fn allocate(&mut self) -> Option<Cidr> {
        let i = (0..self.count()).find(|i| !self.used.contains(i))?;
        self.used.insert(i);
        let shift = 32 - u32::from(self.config.node_mask);
        Some(Cidr {
            addr: Ipv4Addr::from(u32::from(self.config.cluster_cidr.addr) + (i << shift)),
            prefix: self.config.node_mask,
        })
    }
}

pub async fn run(
    client: Client,
    informers: Informers,
    config: Config,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let informer = informers.get::<Node>();
    let nodes = informer.store();
    let ready = informer.ready();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let feed = informer.subscribe().for_each(move |_| {
        let _ = tx.send(());
        async {}
    });
    let work = async {
        let _ = ready.await;
        let mut pending = HashMap::new();
        loop {
            // One pass per burst of Node events.
            while rx.try_recv().is_ok() {}
            if let Err(e) = assign_all(&client, &nodes, config, &mut pending).await {
                tracing::info!(error = %e, "node CIDR assignment failed; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
            if rx.recv().await.is_none() {
                return;
            }
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = feed => {}
        _ = work => {}
    }
}

/// Gives every Node without a podCIDR the lowest free one. The allocator
/// is rebuilt from the cache on each pass, so a patch the cache has not
/// seen yet must not be handed out again: those are remembered until
/// their Node shows them.
async fn assign_all(
    client: &Client,
    nodes: &Store<Node>,
    config: Config,
    pending: &mut HashMap<String, Cidr>,
) -> Result<(), Error> {
    let api: Api<Node> = Api::all(client.clone());
    let mut alloc = Allocator::new(config);
    let all = nodes.state();
    pending.retain(|name, _| {
        all.iter().any(|n| {
            &n.name_any() == name
                && n.spec
                    .as_ref()
                    .and_then(|s| s.pod_cidr.as_deref())
                    .is_none_or(str::is_empty)
        })
    });
    for c in pending.values() {
        alloc.occupy(&c.to_string());
    }
    for n in &all {
        let spec = n.spec.as_ref();
        for c in spec
            .and_then(|s| s.pod_cidrs.as_ref())
            .into_iter()
            .flatten()
        {
            alloc.occupy(c);
        }
        if let Some(c) = spec.and_then(|s| s.pod_cidr.as_deref()) {
            alloc.occupy(c);
        }
    }
    for n in all {
        let has = n
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .is_some_and(|c| !c.is_empty());
        if has || n.metadata.deletion_timestamp.is_some() || pending.contains_key(&n.name_any()) {
            continue;
        }
        let Some(cidr) = alloc.allocate() else {
            tracing::warn!(node = %n.name_any(), cluster_cidr = %config.cluster_cidr, "no pod CIDR left for the node");
            return Ok(());
        };
        // The resourceVersion guards against a podCIDR set meanwhile.
        let patch = json!({
            "metadata": {"resourceVersion": n.metadata.resource_version},
            "spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]},
        });
        match api
            .patch(
                &n.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                tracing::info!(node = %n.name_any(), pod_cidr = %cidr, "assigned pod CIDR");
                pending.insert(n.name_any(), cidr);
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_handed_out_lowest_first_and_never_twice() {
        let mut a = Allocator::new(Config::default());
        a.occupy("10.42.1.0/24");
        a.occupy("192.168.0.0/24");
        let got: Vec<String> = (0..3)
            .filter_map(|_| a.allocate())
            .map(|c| c.to_string())
            .collect();
        assert_eq!(got, ["10.42.0.0/24", "10.42.2.0/24", "10.42.3.0/24"]);
    }

    #[test]
    fn a_full_range_allocates_nothing() {
        let mut a = Allocator::new(Config {
            cluster_cidr: Cidr::parse("10.0.0.0/23").expect("cidr"),
            node_mask: 24,
        });
        assert!(a.allocate().is_some() && a.allocate().is_some());
        assert_eq!(a.allocate(), None);
    }

    #[test]
    fn cidrs_parse_with_host_bits_cleared() {
        assert_eq!(
            Cidr::parse("10.42.7.9/16")
                .map(|c| c.to_string())
                .as_deref(),
            Some("10.42.0.0/16")
        );
        assert_eq!(Cidr::parse("10.42.0.0/33"), None);
        assert_eq!(Cidr::parse("nope"), None);
    }
}
