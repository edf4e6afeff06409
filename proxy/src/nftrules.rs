//! nftables rule generation, after kube-proxy's nftables mode
//! (`pkg/proxy/nftables/proxier.go`), pure: the same [`ServicePort`] model
//! the iptables renderer ([`crate::rules`]) reads, rendered into the
//! `ip` tables of our own laid out by [`crate::nftlayout`]: a Service's
//! chains and dispatch elements in its shard table, the reject maps in the
//! common one.
//!
//! Dispatch goes through verdict maps keyed by `ip . proto . port`, so a
//! Service is a few map elements plus its own chains, and an endpoint
//! change rewrites only that Service's chains (no shared chain is touched):
//! - `service-ips` (ClusterIPs, load-balancer IPs) and `service-nodeports`
//!   (`proto . port` on local addresses) → `goto` the Service's chains,
//!   looked up from the `services` chain (nat prerouting and output), the
//!   first through a `service-ip-dispatch` chain;
//! - `service-<h>-ns/name/proto/port`: DNAT to the cluster endpoints,
//!   spread evenly by `numgen random mod N` into an inline `addr . port`
//!   map; `local-<h>-...` the same over local ones;
//! - `external-<h>-...`: NodePort and load-balancer traffic, masqueraded
//!   (policy Cluster) or kept on local endpoints (policy Local);
//! - `hairpin-endpoints` (common table): `ip . ip` of every endpoint, so
//!   that a pod reaching itself through a Service is masqueraded after
//!   DNAT (the reply must come back through the node);
//! - with ClientIP affinity only, `endpoint-<h>-...__ip/port` chains: DNAT
//!   after recording the client in the endpoint's `affinity-<h>-...` set
//!   (dynamic, with the affinity timeout), which is kube-proxy's
//!   replacement for iptables' `recent`, and the Service chain first sends
//!   a known client to its endpoint's chain;
//! - `no-endpoint-services` / `no-endpoint-nodeports`: filter-hook maps that
//!   reject new connections to Service ports without endpoints (and drop
//!   ClusterIP ones where internalTrafficPolicy Local finds endpoints on
//!   other nodes only, as `external-` chains drop outsiders for
//!   externalTrafficPolicy Local).
//!
//! Unlike kube-proxy, an endpoint has no chain of its own unless affinity
//! needs one: every commit walks every chain in the network namespace
//! (about 0.1 µs each), so chains per endpoint made an endpoint change
//! cost grow with the number of endpoints in the cluster.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::model::{Endpoint, ServicePort, usable};
use crate::rules::{RulesConfig, hash16};

pub const SERVICE_IPS: &str = "service-ips";
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
/// The common table's set of `endpoint . endpoint` pairs.
pub const HAIRPIN: &str = "hairpin-endpoints";
pub(crate) const MARK_MASQ: &str = "mark-for-masquerade";
/// The chain looking up `service-ips`, jumped to from `services`.
pub(crate) const SERVICE_IPS_CHAIN: &str = "service-ip-dispatch";
pub(crate) const REJECT_CHAIN: &str = "reject-chain";

/// The table of a proxy with this chain prefix: `ferrokube` for the
/// default prefix, `ferrokube-<prefix>` otherwise, so several clusters (and
/// tests) on one host do not collide.
pub fn table_name(cfg: &RulesConfig) -> String {
    if cfg.prefix == "FKUBE" {
        "ferrokube".into()
    } else {
        format!("ferrokube-{}", cfg.prefix.to_lowercase())
    }
}

/// One verdict-map element: `map`, key, verdict.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    pub map: &'static str,
    pub key: String,
    pub verdict: String,
}

/// What one Service port owns in the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftPort {
    /// Its chains, with their rules (the text after `add rule ip T CHAIN`).
    pub chains: Vec<(String, Vec<String>)>,
    /// ClientIP affinity sets: name and timeout in seconds.
    pub sets: Vec<(String, i32)>,
    pub elements: Vec<Element>,
    /// Its endpoints' addresses, for [`HAIRPIN`].
    pub hairpin: BTreeSet<Ipv4Addr>,
}

impl NftPort {
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|(_, r)| r.len()).sum()
    }
}

pub fn port_rules(cfg: &RulesConfig, sp: &ServicePort) -> NftPort {
    let mut out = NftPort::default();
    let Some(cluster_ip) = sp.cluster_ip else {
        return out;
    };
    let id = format!("{}/{}", sp.key, sp.protocol);
    // kube-proxy's servicePortChainNameBase: a hash for uniqueness, then
    // `namespace/name/protocol/portname` for whoever reads the ruleset.
    let (ns_name, port_name) = sp.key.rsplit_once(':').unwrap_or((&sp.key, ""));
    let readable = format!("{ns_name}/{}/{port_name}", sp.protocol);
    let base = format!("{}-{readable}", &hash16(&id)[..8]);
    let svc_chain = format!("service-{base}");
    let local_chain = format!("local-{base}");
    let ext_chain = format!("external-{base}");
    let ep_base = |e: &Endpoint| {
        let what = format!("{id}/{}:{}", e.ip, e.port);
        format!("{}-{readable}__{}/{}", &hash16(&what)[..8], e.ip, e.port)
    };
    let ep_chain = |e: &Endpoint| format!("endpoint-{}", ep_base(e));
    // The timeout is part of the name: a changed timeout is a new set.
    let affinity_set = |e: &Endpoint, secs: i32| {
        let what = format!("{id}/{}:{}/{secs}", e.ip, e.port);
        format!(
            "affinity-{}-{readable}__{}/{}",
            &hash16(&what)[..8],
            e.ip,
            e.port
        )
    };
    let proto = &sp.protocol;
    let cluster = usable(&sp.endpoints, false);
    let local = usable(&sp.endpoints, true);

    let mut eps: Vec<&Endpoint> = cluster.clone();
    for e in &local {
        if !eps.contains(e) {
            eps.push(e);
        }
    }
    out.hairpin = eps.iter().map(|e| e.ip).collect();
    let dnat = |e: &Endpoint| format!("meta l4proto {proto} dnat to {}:{}", e.ip, e.port);
    if let Some(secs) = sp.affinity_seconds {
        for e in &eps {
            let set = affinity_set(e, secs);
            let rules = vec![format!("update @{set} {{ ip saddr }}"), dnat(e)];
            out.sets.push((set, secs));
            out.chains.push((ep_chain(e), rules));
        }
    }
    let spread = |eps: &[&Endpoint]| -> Vec<String> {
        let Some(secs) = sp.affinity_seconds else {
            return match eps {
                [] => vec![],
                [one] => vec![dnat(one)],
                _ => vec![format!(
                    "meta l4proto {proto} dnat to {}",
                    numgen(eps, "map", |e| format!("{} . {}", e.ip, e.port))
                )],
            };
        };
        // A client seen before goes back to its endpoint.
        let mut rules: Vec<String> = eps
            .iter()
            .map(|e| format!("ip saddr @{} goto {}", affinity_set(e, secs), ep_chain(e)))
            .collect();
        match eps {
            [] => {}
            [one] => rules.push(format!("goto {}", ep_chain(one))),
            _ => rules.push(numgen(eps, "vmap", |e| format!("goto {}", ep_chain(e)))),
        }
        rules
    };
    if !cluster.is_empty() {
        out.chains.push((svc_chain.clone(), spread(&cluster)));
    }
    let wants_local = sp.internal_local || (sp.external_local && sp.has_external());
    if wants_local && !local.is_empty() {
        out.chains.push((local_chain.clone(), spread(&local)));
    }

    let ip_key = |ip: &dyn std::fmt::Display| format!("{ip} . {proto} . {}", sp.port);
    let element = |map: &'static str, key: String, verdict: String| Element { map, key, verdict };
    let reject = format!("goto {REJECT_CHAIN}");
    // Internal (ClusterIP) traffic.
    let internal = if sp.internal_local {
        (!local.is_empty()).then_some(&local_chain)
    } else {
        (!cluster.is_empty()).then_some(&svc_chain)
    };
    out.elements.push(match internal {
        Some(target) => element(SERVICE_IPS, ip_key(&cluster_ip), format!("goto {target}")),
        // Endpoints, none of them here: dropped, as kube-proxy does ("has
        // no local endpoints"); no endpoints at all: rejected.
        None if sp.internal_local && !cluster.is_empty() => {
            element(NO_ENDPOINT_SERVICES, ip_key(&cluster_ip), "drop".into())
        }
        None => element(NO_ENDPOINT_SERVICES, ip_key(&cluster_ip), reject.clone()),
    });

    // External traffic (NodePort, load balancer).
    if sp.has_external() {
        let external_ok = if sp.external_local {
            !local.is_empty() || !cluster.is_empty()
        } else {
            !cluster.is_empty()
        };
        let np_key = |np: u16| format!("{proto} . {np}");
        if external_ok {
            let mut ext = Vec::new();
            if sp.external_local {
                // Pods and the node itself are not "external": they may use
                // any endpoint; only true outsiders are kept local (with
                // their source address preserved).
                if !cluster.is_empty() {
                    ext.push(format!("ip saddr {} goto {svc_chain}", cfg.cluster_cidr));
                    ext.push(format!("fib saddr type local jump {MARK_MASQ}"));
                    ext.push(format!("fib saddr type local goto {svc_chain}"));
                }
                if local.is_empty() {
                    ext.push("drop".into());
                } else {
                    ext.push(format!("goto {local_chain}"));
                }
            } else {
                ext.push(format!("jump {MARK_MASQ}"));
                ext.push(format!("goto {svc_chain}"));
            }
            out.chains.push((ext_chain.clone(), ext));
            for ip in &sp.load_balancer_ips {
                out.elements.push(element(
                    SERVICE_IPS,
                    ip_key(ip),
                    format!("goto {ext_chain}"),
                ));
            }
            if let Some(np) = sp.node_port {
                out.elements.push(element(
                    SERVICE_NODEPORTS,
                    np_key(np),
                    format!("goto {ext_chain}"),
                ));
            }
        } else {
            for ip in &sp.load_balancer_ips {
                out.elements
                    .push(element(NO_ENDPOINT_SERVICES, ip_key(ip), reject.clone()));
            }
            if let Some(np) = sp.node_port {
                out.elements
                    .push(element(NO_ENDPOINT_NODEPORTS, np_key(np), reject.clone()));
            }
        }
    }
    out
}

/// `numgen random mod N <kind> { 0 : …, 1 : … }`: an even random spread.
fn numgen(eps: &[&Endpoint], kind: &str, value: impl Fn(&Endpoint) -> String) -> String {
    let mut out = format!("numgen random mod {} {kind} {{ ", eps.len());
    for (i, e) in eps.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{i} : {}", value(e));
    }
    out.push_str(" }");
    out
}

#[cfg(test)]
#[path = "nftrules_tests.rs"]
mod tests;
