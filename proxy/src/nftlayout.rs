//! How the nftables backend spreads its state over tables: one common
//! table and [`SHARDS`] shard tables, each Service in the shard its
//! `namespace/name` hashes to.
//!
//! Why: the kernel validates a whole table (every chain reachable from its
//! base chains) on each commit that adds a jump, goto, vmap, dnat or mark
//! rule or element to it, so with one table an endpoint change cost grew
//! with the number of Services (about 12 ms for 1,000 Services × 10
//! endpoints, against 1 ms in a small table). A Service's chains, its
//! affinity sets and its `service-ips` / `service-nodeports` elements live
//! in its shard, which has its own maps and nat base chains dispatching
//! through them; an endpoint change is validated against one shard only.
//!
//! What every Service shares stays once in the common table (named as the
//! single table was, [`table_name`]): the postrouting masquerade of marked
//! packets (marks set in a shard are the packet's, seen by every table)
//! and of hairpin connections (through the set of endpoint addresses),
//! the marking of outsiders reaching a ClusterIP (before any shard's DNAT),
//! and the filter hooks rejecting Services without endpoints, whose maps
//! name the common `reject-chain` only. The common table is small, so a
//! Service losing its last endpoint (elements in both) is still cheap.
//!
//! A shard table exists while it holds a Service: a small cluster hooks a
//! few shards into nat, not all of them.

use crate::nftrules::{
    HAIRPIN, MARK_MASQ, NO_ENDPOINT_NODEPORTS, NO_ENDPOINT_SERVICES, REJECT_CHAIN, SERVICE_IPS,
    SERVICE_IPS_CHAIN, SERVICE_NODEPORTS, table_name,
};
use crate::rules::RulesConfig;

/// The number of shard tables. Measured with `bench -- proxy` (16 shards,
/// N Services × 10 endpoints, so N/16 Services per shard, when every
/// endpoint still had a chain): a change's p50 was 0.5 ms at 31 Services
/// per shard, 0.8–1.1 ms at 62, 5–7 ms at 125 and 10.6 ms at 250. At
/// 1,000 Services (~750 chains per shard) the validation was no longer
/// the main cost: every commit also walks each chain of every table in
/// the namespace (~0.1 µs a chain, 1.2 ms for 12,000), which no sharding
/// avoids, hence endpoints without chains ([`crate::nftrules`]). More
/// shards would add a nat base chain (two lookups) per shard to every
/// connection's first packet.
pub const SHARDS: usize = 16;

/// Where an object lives: the common table or a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Common,
    Shard(usize),
}

/// The names of a proxy's tables (after its chain prefix).
#[derive(Debug, Clone)]
pub struct Tables {
    common: String,
    shards: Vec<String>,
}

impl Tables {
    pub fn new(cfg: &RulesConfig) -> Tables {
        let common = table_name(cfg);
        let shards = (0..SHARDS).map(|i| shard_table(&common, i)).collect();
        Tables { common, shards }
    }

    pub fn common(&self) -> &str {
        &self.common
    }

    pub fn name(&self, t: Table) -> &str {
        match t {
            Table::Common => &self.common,
            Table::Shard(i) => &self.shards[i],
        }
    }

    /// Every shard table's name, in shard order.
    pub fn shards(&self) -> &[String] {
        &self.shards
    }

    /// Whether `name` is one of this proxy's tables, of any layout (the
    /// single table of earlier versions is the common one; shard tables
    /// of another shard count too), so a resync removes it.
    pub fn is_ours(&self, name: &str) -> bool {
        name == self.common
            || name
                .strip_prefix(self.common.as_str())
                .and_then(|rest| rest.strip_prefix(".shard"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// `<common>.shardNN`: the dot cannot appear in a common table's name
/// (prefixes are chain-name words), so no two proxies' names collide.
fn shard_table(common: &str, shard: usize) -> String {
    format!("{common}.shard{shard:02}")
}

/// The shard of the Service `namespace/name`: FNV-1a, fixed here rather
/// than std's hasher, whose output may change between Rust releases (a
/// restart then moves nothing).
pub fn shard_of(service: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in service.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

/// The table holding a map's or set's elements for a Service in `shard`.
pub fn map_table(map: &str, shard: usize) -> Table {
    if map == NO_ENDPOINT_SERVICES || map == NO_ENDPOINT_NODEPORTS || map == HAIRPIN {
        Table::Common
    } else {
        Table::Shard(shard)
    }
}

/// The common table's fixed content, as `nft -f` commands for the empty
/// table `table`.
pub fn common_commands(cfg: &RulesConfig, table: &str) -> Vec<String> {
    let mark = format!("{:#x}", cfg.masq_mark);
    let t = format!("ip {table}");
    let mut out = vec![
        format!(
            "add map {t} {NO_ENDPOINT_SERVICES} {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}"
        ),
        format!(
            "add map {t} {NO_ENDPOINT_NODEPORTS} {{ type inet_proto . inet_service : verdict ; }}"
        ),
        format!("add set {t} {HAIRPIN} {{ type ipv4_addr . ipv4_addr ; }}"),
    ];
    let regular: [(&str, Vec<String>); 4] = [
        (
            "masquerading",
            vec![
                // A pod reaching itself through a Service.
                format!("ct status dnat ip saddr . ip daddr @{HAIRPIN} masquerade fully-random"),
                format!("meta mark & {mark} == 0 return"),
                // Clear the bit so a re-traversal does not masquerade again.
                format!("meta mark set meta mark xor {mark}"),
                "masquerade fully-random".into(),
            ],
        ),
        (
            "service-endpoints-check",
            vec![format!(
                "ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"
            )],
        ),
        (
            "nodeport-endpoints-check",
            vec![format!(
                "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"
            )],
        ),
        (REJECT_CHAIN, vec!["reject".into()]),
    ];
    // Clients outside the pod network reaching a ClusterIP are masqueraded,
    // so the reply returns through this node: marked one step before the
    // shards' DNAT (nat chains run in priority order until one NATs).
    let outsiders = format!(
        "ip saddr != {} ip daddr {} meta mark set meta mark or {mark}",
        cfg.cluster_cidr, cfg.service_cidr
    );
    // Filter hooks run before DNAT (dstnat is -100), as kube-proxy's, so a
    // Service without endpoints is rejected at its own address.
    let check = "ct state new jump service-endpoints-check".to_string();
    let base = [
        ("nat-prerouting", "nat", "prerouting", "-101", &outsiders),
        ("nat-output", "nat", "output", "-101", &outsiders),
        (
            "nat-postrouting",
            "nat",
            "postrouting",
            "srcnat",
            &"jump masquerading".to_string(),
        ),
        ("filter-forward", "filter", "forward", "-110", &check),
        ("filter-output", "filter", "output", "-110", &check),
        ("filter-input", "filter", "input", "-110", &check),
    ];
    chains(&mut out, &t, &regular, &base);
    // A NodePort without endpoints, reached from outside or from the node.
    for chain in ["filter-input", "filter-output"] {
        out.push(format!(
            "add rule {t} {chain} ct state new jump nodeport-endpoints-check"
        ));
    }
    out
}

/// A shard table's fixed content: its dispatch maps, the chains looking
/// them up and the nat base chains, at the priorities of the single table
/// of earlier versions.
pub fn shard_commands(cfg: &RulesConfig, table: &str) -> Vec<String> {
    let mark = format!("{:#x}", cfg.masq_mark);
    let t = format!("ip {table}");
    let mut out = vec![
        format!(
            "add map {t} {SERVICE_IPS} {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}"
        ),
        format!("add map {t} {SERVICE_NODEPORTS} {{ type inet_proto . inet_service : verdict ; }}"),
    ];
    let regular: [(&str, Vec<String>); 3] = [
        // Endpoint chains jump here (a jump cannot leave the table).
        (
            MARK_MASQ,
            vec![format!("meta mark set meta mark or {mark}")],
        ),
        (
            "services",
            vec![
                // Through a chain of its own, so that a Service chain is
                // as deep here as behind its `external-` chain: the
                // kernel's validation of every commit then walks each
                // Service's chains once per hook instead of twice (it
                // remembers a chain validated at a depth, not above it).
                // The same verdicts: every Service chain ends in one.
                format!("jump {SERVICE_IPS_CHAIN}"),
                // NodePorts on every local address but loopback (martian
                // once DNATed to a pod without route_localnet).
                format!(
                    "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"
                ),
            ],
        ),
        (
            SERVICE_IPS_CHAIN,
            vec![format!(
                "ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"
            )],
        ),
    ];
    let jump = "jump services".to_string();
    let base = [
        ("nat-prerouting", "nat", "prerouting", "dstnat", &jump),
        ("nat-output", "nat", "output", "-100", &jump),
    ];
    chains(&mut out, &t, &regular, &base);
    out
}

/// Regular chains (all created before any rule names them), then base
/// chains with their one rule.
fn chains(
    out: &mut Vec<String>,
    t: &str,
    regular: &[(&str, Vec<String>)],
    base: &[(&str, &str, &str, &str, &String)],
) {
    for (name, _) in regular {
        out.push(format!("add chain {t} {name}"));
    }
    for (name, rules) in regular {
        for r in rules {
            out.push(format!("add rule {t} {name} {r}"));
        }
    }
    for (name, kind, hook, priority, rule) in base {
        out.push(format!(
            "add chain {t} {name} {{ type {kind} hook {hook} priority {priority} ; policy accept ; }}"
        ));
        out.push(format!("add rule {t} {name} {rule}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::cfg;

    #[test]
    fn a_service_always_lands_in_the_same_shard() {
        // Fixed values: a change of hash would move every Service at the
        // next restart.
        let known: Vec<usize> = ["default/web", "kube-system/kube-dns", "bench/svc-0"]
            .iter()
            .map(|k| shard_of(k))
            .collect();
        // FNV-1a of the key, mod 16, computed independently.
        assert_eq!(known, [11, 8, 1]);
    }

    #[test]
    fn services_spread_evenly_over_the_shards() {
        let mut counts = [0usize; SHARDS];
        for i in 0..1000 {
            counts[shard_of(&format!("bench/svc-{i}"))] += 1;
        }
        // 62.5 each on average; a fair spread stays well within 30–100.
        assert!(counts.iter().all(|c| (30..=100).contains(c)), "{counts:?}");
    }

    #[test]
    fn table_names_follow_the_prefix_and_are_recognised_as_ours() {
        let t = Tables::new(&cfg());
        assert_eq!(t.common(), "ferrokube-fk");
        assert_eq!(t.name(Table::Shard(3)), "ferrokube-fk.shard03");
        assert!(t.is_ours("ferrokube-fk"));
        assert!(t.is_ours("ferrokube-fk.shard03"));
        // A shard of a build with more shards is ours too.
        assert!(t.is_ours("ferrokube-fk.shard40"));
        assert!(!t.is_ours("ferrokube-fkx.shard03"));
        assert!(!t.is_ours("ferrokube"));
        assert!(!t.is_ours("ferrokube-fk.shard"));
        let default = RulesConfig {
            prefix: "FKUBE".into(),
            ..cfg()
        };
        assert_eq!(
            Tables::new(&default).name(Table::Shard(0)),
            "ferrokube.shard00"
        );
        assert!(!Tables::new(&default).is_ours("ferrokube-fk.shard03"));
    }

    #[test]
    fn the_common_table_marks_outsiders_before_the_shards_dnat_and_rejects_first() {
        let cmds = common_commands(&cfg(), "t");
        let has = |s: &str| cmds.iter().any(|c| c == s);
        assert!(has(
            "add chain ip t nat-prerouting { type nat hook prerouting priority -101 ; policy accept ; }"
        ));
        assert!(has(
            "add rule ip t nat-prerouting ip saddr != 10.42.0.0/16 ip daddr 10.43.0.0/16 meta mark set meta mark or 0x4000"
        ));
        assert!(has(
            "add chain ip t filter-input { type filter hook input priority -110 ; policy accept ; }"
        ));
        assert!(has("add rule ip t masquerading masquerade fully-random"));
        assert!(has(
            "add rule ip t service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services"
        ));
        // No Service dispatch here: that is the shards'.
        assert!(!cmds.iter().any(|c| c.contains("service-ips")), "{cmds:?}");
        created_before_named(&cmds);
    }

    #[test]
    fn a_shard_dispatches_cluster_ips_then_node_ports_at_dstnat() {
        let cmds = shard_commands(&cfg(), "t");
        let has = |s: &str| cmds.iter().any(|c| c == s);
        assert!(has(
            "add chain ip t nat-prerouting { type nat hook prerouting priority dstnat ; policy accept ; }"
        ));
        assert!(has(
            "add chain ip t nat-output { type nat hook output priority -100 ; policy accept ; }"
        ));
        let services: Vec<&String> = cmds
            .iter()
            .filter(|c| c.starts_with("add rule ip t services "))
            .collect();
        assert!(
            services[0].ends_with("jump service-ip-dispatch"),
            "{services:?}"
        );
        assert!(
            services[1].ends_with("vmap @service-nodeports"),
            "{services:?}"
        );
        assert!(has(
            "add rule ip t service-ip-dispatch ip daddr . meta l4proto . th dport vmap @service-ips"
        ));
        assert!(has(
            "add rule ip t mark-for-masquerade meta mark set meta mark or 0x4000"
        ));
        assert!(!cmds.iter().any(|c| c.contains("filter")), "{cmds:?}");
        created_before_named(&cmds);
    }

    /// Every regular chain is created before the first rule.
    fn created_before_named(cmds: &[String]) {
        let first_rule = cmds
            .iter()
            .position(|c| c.starts_with("add rule"))
            .expect("rules");
        let last_plain_chain = cmds
            .iter()
            .rposition(|c| c.starts_with("add chain") && !c.contains("hook"))
            .expect("chains");
        assert!(last_plain_chain < first_rule);
    }
}
