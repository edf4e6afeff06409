//! iptables rule generation, after kube-proxy's iptables mode
//! (`pkg/proxy/iptables/proxier.go`), pure: a Service port becomes its own
//! chains plus its lines in the shared dispatch chains.
//!
//! nat table, with `P` the configured prefix:
//! - `P-SERVICES` (from PREROUTING and OUTPUT): one line per ClusterIP and
//!   load-balancer IP, then `P-NODEPORTS` for local destinations;
//! - `P-SVC-<hash>`: the cluster endpoints, spread evenly with
//!   `statistic --mode random --probability 1/n`, `recent` first for
//!   ClientIP affinity; `P-SVL-<hash>` the same over node-local endpoints;
//! - `P-EXT-<hash>`: traffic from outside (NodePort, load balancer):
//!   masqueraded and sent to SVC (policy Cluster) or kept on local
//!   endpoints with the client's address (policy Local);
//! - `P-SEP-<hash>`: one endpoint, DNAT; it marks hairpin traffic (a pod
//!   reaching itself) for masquerade so the reply comes back through us;
//! - `P-MARK-MASQ` / `P-POSTROUTING`: mark, then masquerade marked packets.
//!
//! filter table: `P-SERVICES` rejects new connections to Service ports
//! without endpoints, as kube-proxy does, instead of letting them hang; it
//! drops outsiders' ones to a policy-Local Service without a local endpoint
//! (iptables allows no DROP in nat).

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::model::{ServicePort, usable};

/// The names and addresses the rules use.
#[derive(Debug, Clone)]
pub struct RulesConfig {
    /// Chain prefix (at most [`MAX_PREFIX`] characters, so that every
    /// chain name fits iptables' 28).
    pub prefix: String,
    /// The pod network: traffic from outside it to a ClusterIP is
    /// masqueraded.
    pub cluster_cidr: String,
    /// The Service ClusterIP range.
    pub service_cidr: String,
    /// The packet mark bit for masquerade.
    pub masq_mark: u32,
}

pub const MAX_PREFIX: usize = 7;

impl RulesConfig {
    pub fn chain(&self, kind: &str) -> String {
        format!("{}-{kind}", self.prefix)
    }
    pub fn services(&self) -> String {
        self.chain("SERVICES")
    }
    pub fn nodeports(&self) -> String {
        self.chain("NODEPORTS")
    }
    pub fn mark_masq(&self) -> String {
        self.chain("MARK-MASQ")
    }
    pub fn postrouting(&self) -> String {
        self.chain("POSTROUTING")
    }
    fn hashed(&self, kind: &str, what: &str) -> String {
        format!("{}-{kind}-{}", self.prefix, hash16(what))
    }
}

/// kube-proxy's chain suffix: base32 of the SHA-256, first 16 characters.
pub(crate) fn hash16(s: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(16);
    let (mut bits, mut acc) = (0u32, 0u32);
    for b in digest.iter() {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 && out.len() < 16 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
        if out.len() == 16 {
            break;
        }
    }
    out
}

/// The rules of one Service port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortRules {
    /// nat chains this port owns, with their full lines (`-A CHAIN ...`).
    pub chains: Vec<(String, Vec<String>)>,
    /// Its lines in nat `P-SERVICES`.
    pub services: Vec<String>,
    /// Its lines in nat `P-NODEPORTS`.
    pub nodeports: Vec<String>,
    /// Its lines in filter `P-SERVICES`: rejects (no endpoints) and drops
    /// (outsiders under policy Local without a local endpoint).
    pub rejects: Vec<String>,
}

impl PortRules {
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|(_, r)| r.len()).sum::<usize>()
            + self.services.len()
            + self.nodeports.len()
            + self.rejects.len()
    }
}

pub fn port_rules(cfg: &RulesConfig, sp: &ServicePort) -> PortRules {
    let mut out = PortRules::default();
    let Some(cluster_ip) = sp.cluster_ip else {
        return out;
    };
    let id = format!("{}/{}", sp.key, sp.protocol);
    let svc_chain = cfg.hashed("SVC", &id);
    let svl_chain = cfg.hashed("SVL", &id);
    let ext_chain = cfg.hashed("EXT", &id);
    let proto = &sp.protocol;
    let comment = format!("-m comment --comment \"{}\"", sp.key);
    let cluster = usable(&sp.endpoints, false);
    let local = usable(&sp.endpoints, true);
    let sep = |e: &crate::model::Endpoint| cfg.hashed("SEP", &format!("{id}/{}:{}", e.ip, e.port));

    // Endpoint chains, shared by SVC and SVL.
    let mut seps: Vec<&crate::model::Endpoint> = cluster.clone();
    for e in &local {
        if !seps.contains(e) {
            seps.push(e);
        }
    }
    for e in &seps {
        let name = sep(e);
        let recent = sp
            .affinity_seconds
            .map(|_| format!(" -m recent --name {name} --set"))
            .unwrap_or_default();
        out.chains.push((
            name.clone(),
            vec![
                format!("-A {name} {comment} -s {}/32 -j {}", e.ip, cfg.mark_masq()),
                format!(
                    "-A {name} {comment} -m {proto} -p {proto}{recent} -j DNAT --to-destination {}:{}",
                    e.ip, e.port
                ),
            ],
        ));
    }
    let spread = |chain: &str, eps: &[&crate::model::Endpoint]| -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(seconds) = sp.affinity_seconds {
            for e in eps {
                let s = sep(e);
                lines.push(format!(
                    "-A {chain} {comment} -m recent --name {s} --rcheck --seconds {seconds} --reap -j {s}"
                ));
            }
        }
        let n = eps.len();
        for (i, e) in eps.iter().enumerate() {
            let mut line = format!(
                "-A {chain} -m comment --comment \"{} -> {}:{}\"",
                sp.key, e.ip, e.port
            );
            if i + 1 < n {
                let _ = write!(
                    line,
                    " -m statistic --mode random --probability {:.10}",
                    1.0 / (n - i) as f64
                );
            }
            let _ = write!(line, " -j {}", sep(e));
            lines.push(line);
        }
        lines
    };
    if !cluster.is_empty() {
        out.chains
            .push((svc_chain.clone(), spread(&svc_chain, &cluster)));
    }
    let wants_local = sp.internal_local || (sp.external_local && sp.has_external());
    if wants_local && !local.is_empty() {
        out.chains
            .push((svl_chain.clone(), spread(&svl_chain, &local)));
    }

    let dport = format!("-m {proto} -p {proto} --dport {}", sp.port);
    // Internal (ClusterIP) traffic.
    let internal = if sp.internal_local {
        (!local.is_empty()).then_some(&svl_chain)
    } else {
        (!cluster.is_empty()).then_some(&svc_chain)
    };
    match internal {
        Some(target) => out.services.push(format!(
            "-A {} {comment} -d {cluster_ip}/32 {dport} -j {target}",
            cfg.services()
        )),
        None => {
            // Endpoints, none of them here: dropped, as kube-proxy does
            // ("has no local endpoints"); no endpoints at all: rejected.
            let target = if sp.internal_local && !cluster.is_empty() {
                "DROP"
            } else {
                "REJECT"
            };
            out.rejects.push(format!(
                "-A {} {comment} -d {cluster_ip}/32 {dport} -j {target}",
                cfg.services()
            ));
        }
    }

    // External traffic (NodePort, load balancer).
    // Filter lines matching it before DNAT, as `target`.
    let external_filter = |lines: &mut Vec<String>, target: &str| {
        for ip in &sp.load_balancer_ips {
            lines.push(format!(
                "-A {} {comment} -d {ip}/32 {dport} -j {target}",
                cfg.services()
            ));
        }
        if let Some(np) = sp.node_port {
            lines.push(format!(
                "-A {} {comment} -m addrtype --dst-type LOCAL -m {proto} -p {proto} --dport {np} -j {target}",
                cfg.services()
            ));
        }
    };
    if sp.has_external() {
        let external_ok = if sp.external_local {
            !local.is_empty() || !cluster.is_empty()
        } else {
            !cluster.is_empty()
        };
        if external_ok {
            let mut ext = Vec::new();
            if sp.external_local {
                // Pods and the node itself are not "external": they may use
                // any endpoint; only true outsiders are kept local (with
                // their source address preserved).
                if !cluster.is_empty() {
                    ext.push(format!(
                        "-A {ext_chain} {comment} -s {} -j {svc_chain}",
                        cfg.cluster_cidr
                    ));
                    ext.push(format!(
                        "-A {ext_chain} {comment} -m addrtype --src-type LOCAL -j {}",
                        cfg.mark_masq()
                    ));
                    ext.push(format!(
                        "-A {ext_chain} {comment} -m addrtype --src-type LOCAL -j {svc_chain}"
                    ));
                }
                if !local.is_empty() {
                    ext.push(format!("-A {ext_chain} {comment} -j {svl_chain}"));
                } else {
                    // iptables refuses DROP in nat: outsiders leave the
                    // chain without DNAT, and filter drops them (kube-proxy's
                    // "has no local endpoints" rule).
                    external_filter(&mut out.rejects, "DROP");
                }
            } else {
                ext.push(format!("-A {ext_chain} {comment} -j {}", cfg.mark_masq()));
                ext.push(format!("-A {ext_chain} {comment} -j {svc_chain}"));
            }
            out.chains.push((ext_chain.clone(), ext));
            for ip in &sp.load_balancer_ips {
                out.services.push(format!(
                    "-A {} {comment} -d {ip}/32 {dport} -j {ext_chain}",
                    cfg.services()
                ));
            }
            if let Some(np) = sp.node_port {
                out.nodeports.push(format!(
                    "-A {} {comment} -m {proto} -p {proto} --dport {np} -j {ext_chain}",
                    cfg.nodeports()
                ));
            }
        } else {
            external_filter(&mut out.rejects, "REJECT");
        }
    }
    out
}

/// The fixed chains: their names and lines. `services_tail` is what
/// follows every Service's lines in nat `P-SERVICES`.
pub fn fixed_nat_chains(cfg: &RulesConfig) -> Vec<(String, Vec<String>)> {
    let (mm, pr) = (cfg.mark_masq(), cfg.postrouting());
    let mark = format!("{:#x}", cfg.masq_mark);
    vec![
        (
            mm.clone(),
            vec![format!("-A {mm} -j MARK --or-mark {mark}")],
        ),
        (
            pr.clone(),
            vec![
                format!("-A {pr} -m mark ! --mark {mark}/{mark} -j RETURN"),
                // Clear the bit so a re-traversal does not masquerade again.
                format!("-A {pr} -j MARK --xor-mark {mark}"),
                format!("-A {pr} -j MASQUERADE --random-fully"),
            ],
        ),
    ]
}

/// nat `P-SERVICES` from every Service's lines.
pub fn services_chain<'a>(
    cfg: &RulesConfig,
    lines: impl Iterator<Item = &'a String>,
) -> Vec<String> {
    let s = cfg.services();
    // Clients outside the pod network reaching a ClusterIP are
    // masqueraded, so the reply returns through this node.
    let mut out = vec![format!(
        "-A {s} ! -s {} -d {} -j {}",
        cfg.cluster_cidr,
        cfg.service_cidr,
        cfg.mark_masq()
    )];
    out.extend(lines.cloned());
    // NodePorts on every local address but loopback (martian once
    // DNATed to a pod without route_localnet, which we do not turn on).
    out.push(format!(
        "-A {s} -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j {}",
        cfg.nodeports()
    ));
    out
}

/// The jumps from the built-in chains into ours: `(table, chain, rule)`.
pub fn hooks(cfg: &RulesConfig) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let comment = |what: &str| {
        vec![
            "-m".into(),
            "comment".into(),
            "--comment".into(),
            format!("{} {what}", cfg.prefix),
        ]
    };
    let jump = |what: &str, chain: String| {
        let mut v = comment(what);
        v.extend(["-j".into(), chain]);
        v
    };
    let filter_jump = |what: &str| {
        let mut v = comment(what);
        v.extend([
            "-m".into(),
            "conntrack".into(),
            "--ctstate".into(),
            "NEW".into(),
            "-j".into(),
            cfg.services(),
        ]);
        v
    };
    vec![
        ("nat", "PREROUTING", jump("service portals", cfg.services())),
        ("nat", "OUTPUT", jump("service portals", cfg.services())),
        ("nat", "POSTROUTING", jump("postrouting", cfg.postrouting())),
        ("filter", "INPUT", filter_jump("service rejects")),
        ("filter", "FORWARD", filter_jump("service rejects")),
        ("filter", "OUTPUT", filter_jump("service rejects")),
    ]
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
