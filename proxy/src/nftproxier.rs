//! The nftables proxier's memory of what is programmed, and the smallest
//! transaction that brings our table to the new wanted state: a list of
//! [`Op`]s, also rendered as an `nft -f` script. The dataplane sends the
//! ops over netlink ([`crate::nftcompile`]), or the script to `nft`.
//!
//! A changed Service touches only what it owns: its chains (rewritten by
//! `flush chain` + `add rule`), its affinity sets and its verdict-map
//! elements. No shared chain is ever rewritten after the start, so an
//! endpoint change costs the same with 10 or 10,000 Services. A script is
//! one transaction: elements leave the maps before the chains they name are
//! flushed and deleted, and new chains exist before elements name them.
//!
//! A full sync (start, or after a failed update) deletes and recreates the
//! whole table in one transaction: nothing stale survives a restart, and
//! traffic never sees a half-programmed table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::nftrules::{self, Element, NftPort};
use crate::rules::RulesConfig;

/// One `nft -f` script, with what it touches.
#[derive(Debug, Default, Clone)]
pub struct Script {
    pub text: String,
    /// Rules written.
    pub rules: usize,
    /// Map elements added or deleted.
    pub elements: usize,
    /// Chains written or deleted.
    pub chains: usize,
    /// The commands of an incremental update (empty for a full sync).
    pub ops: Vec<Op>,
}

impl Script {
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

#[derive(Debug)]
pub struct NftProxier {
    cfg: RulesConfig,
    table: String,
    services: BTreeMap<String, Vec<NftPort>>,
    /// Per-Service chains as programmed.
    chains: HashMap<String, Vec<String>>,
    /// `(map, key)` → verdict, as programmed.
    elements: HashMap<(&'static str, String), String>,
    sets: BTreeSet<String>,
}

impl NftProxier {
    pub fn new(cfg: RulesConfig) -> NftProxier {
        let table = nftrules::table_name(&cfg);
        NftProxier {
            cfg,
            table,
            services: BTreeMap::new(),
            chains: HashMap::new(),
            elements: HashMap::new(),
            sets: BTreeSet::new(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn config(&self) -> &RulesConfig {
        &self.cfg
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// Everything from scratch: the table deleted (if any) and recreated
    /// with every Service, atomically.
    pub fn full_sync(&mut self, all: BTreeMap<String, Vec<NftPort>>) -> Script {
        self.services = all;
        self.chains.clear();
        self.elements.clear();
        self.sets.clear();
        let t = format!("ip {}", self.table);
        let mut s = Script::default();
        // `add` first so that `delete` cannot fail on a fresh host.
        let _ = writeln!(s.text, "add table {t}\ndelete table {t}\nadd table {t}");
        for c in nftrules::base_commands(&self.cfg, &self.table) {
            s.text.push_str(&c);
            s.text.push('\n');
        }
        let ports: Vec<NftPort> = self.services.values().flatten().cloned().collect();
        for p in &ports {
            for (name, secs) in &p.sets {
                if self.sets.insert(name.clone()) {
                    add_set(&mut s.text, &t, name, *secs);
                }
            }
            for (name, _) in &p.chains {
                let _ = writeln!(s.text, "add chain {t} {name}");
            }
        }
        for p in &ports {
            for (name, rules) in &p.chains {
                for r in rules {
                    let _ = writeln!(s.text, "add rule {t} {name} {r}");
                }
                s.rules += rules.len();
                s.chains += 1;
                self.chains.insert(name.clone(), rules.clone());
            }
        }
        let mut by_map: BTreeMap<&'static str, Vec<&Element>> = BTreeMap::new();
        for e in ports.iter().flat_map(|p| &p.elements) {
            by_map.entry(e.map).or_default().push(e);
            self.elements
                .insert((e.map, e.key.clone()), e.verdict.clone());
        }
        for (map, elements) in by_map {
            // Batches keep the script short and nft's parsing fast.
            for chunk in elements.chunks(1000) {
                let list: Vec<String> = chunk
                    .iter()
                    .map(|e| format!("{} : {}", e.key, e.verdict))
                    .collect();
                let _ = writeln!(s.text, "add element {t} {map} {{ {} }}", list.join(", "));
                s.elements += chunk.len();
            }
        }
        s
    }

    /// Applies changed Services (`None`: deleted) and returns the script
    /// that programs just that.
    pub fn update(&mut self, changed: Vec<(String, Option<Vec<NftPort>>)>) -> Script {
        let mut old_chains: BTreeSet<String> = BTreeSet::new();
        let mut old_sets: BTreeSet<String> = BTreeSet::new();
        let mut old_elements: BTreeSet<(&'static str, String)> = BTreeSet::new();
        let mut new_ports: Vec<NftPort> = Vec::new();
        for (key, new) in changed {
            let old = match &new {
                Some(n) => self.services.insert(key, n.clone()),
                None => self.services.remove(&key),
            }
            .unwrap_or_default();
            for p in old {
                old_chains.extend(p.chains.into_iter().map(|(n, _)| n));
                old_sets.extend(p.sets.into_iter().map(|(n, _)| n));
                old_elements.extend(p.elements.into_iter().map(|e| (e.map, e.key)));
            }
            new_ports.extend(new.unwrap_or_default());
        }
        let mut write: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut new_sets: BTreeMap<String, i32> = BTreeMap::new();
        let mut wanted: BTreeMap<(&'static str, String), String> = BTreeMap::new();
        for p in new_ports {
            for (name, rules) in p.chains {
                old_chains.remove(&name);
                if self.chains.get(&name) != Some(&rules) {
                    write.insert(name, rules);
                }
            }
            for (name, secs) in p.sets {
                old_sets.remove(&name);
                if !self.sets.contains(&name) {
                    new_sets.insert(name, secs);
                }
            }
            for e in p.elements {
                wanted.insert((e.map, e.key), e.verdict);
            }
        }
        let mut del_elements: Vec<(&'static str, String)> = Vec::new();
        for k in old_elements {
            if !wanted.contains_key(&k) && self.elements.contains_key(&k) {
                del_elements.push(k);
            }
        }
        let mut add_elements: Vec<((&'static str, String), String)> = Vec::new();
        for (k, v) in wanted {
            match self.elements.get(&k) {
                Some(cur) if *cur == v => {}
                Some(_) => {
                    del_elements.push(k.clone());
                    add_elements.push((k, v));
                }
                None => add_elements.push((k, v)),
            }
        }

        let mut s = Script::default();
        let mut ops = Vec::new();
        for (name, secs) in &new_sets {
            ops.push(Op::AddSet {
                name: name.clone(),
                timeout: *secs,
            });
            self.sets.insert(name.clone());
        }
        for name in write.keys() {
            if !self.chains.contains_key(name) {
                ops.push(Op::AddChain(name.clone()));
            }
        }
        for (map, key) in &del_elements {
            ops.push(Op::DeleteElement {
                map,
                key: key.clone(),
            });
            self.elements.remove(&(*map, key.clone()));
        }
        for (name, rules) in &write {
            if self.chains.contains_key(name) {
                ops.push(Op::FlushChain(name.clone()));
            }
            for r in rules {
                ops.push(Op::AddRule {
                    chain: name.clone(),
                    rule: r.clone(),
                });
            }
            s.rules += rules.len();
        }
        for ((map, key), verdict) in &add_elements {
            ops.push(Op::AddElement {
                map,
                key: key.clone(),
                verdict: verdict.clone(),
            });
            self.elements.insert((*map, key.clone()), verdict.clone());
        }
        // The removed chains may name each other (a Service chain its
        // endpoint chains): all are flushed before any is deleted, and no
        // rewritten chain or element names them any more, so they can go
        // in the same transaction.
        let removed: Vec<&String> = old_chains
            .iter()
            .filter(|n| self.chains.remove(*n).is_some())
            .collect();
        for name in &removed {
            ops.push(Op::FlushChain((*name).clone()));
        }
        for name in &removed {
            ops.push(Op::DeleteChain((*name).clone()));
        }
        s.chains += removed.len();
        for name in &old_sets {
            if self.sets.remove(name) {
                ops.push(Op::DeleteSet(name.clone()));
            }
        }
        s.chains += write.len();
        s.elements = del_elements.len() + add_elements.len();
        for (name, rules) in write {
            self.chains.insert(name, rules);
        }
        let t = format!("ip {}", self.table);
        for op in &ops {
            op.render(&mut s.text, &t);
        }
        s.ops = ops;
        s
    }
}

/// One command of an incremental update: [`Script::text`] has it as `nft`
/// syntax, [`crate::nftcompile`] turns it into netlink messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    AddSet {
        name: String,
        timeout: i32,
    },
    AddChain(String),
    DeleteElement {
        map: &'static str,
        key: String,
    },
    /// Deletes every rule of the chain.
    FlushChain(String),
    /// `rule` is the text after `add rule ip T CHAIN`.
    AddRule {
        chain: String,
        rule: String,
    },
    AddElement {
        map: &'static str,
        key: String,
        verdict: String,
    },
    DeleteChain(String),
    DeleteSet(String),
}

impl Op {
    /// The `nft -f` line of this command in table `t` (`ip NAME`).
    fn render(&self, text: &mut String, t: &str) {
        let _ = match self {
            Op::AddSet { name, timeout } => {
                add_set(text, t, name, *timeout);
                Ok(())
            }
            Op::AddChain(name) => writeln!(text, "add chain {t} {name}"),
            Op::DeleteElement { map, key } => {
                writeln!(text, "delete element {t} {map} {{ {key} }}")
            }
            Op::FlushChain(name) => writeln!(text, "flush chain {t} {name}"),
            Op::AddRule { chain, rule } => writeln!(text, "add rule {t} {chain} {rule}"),
            Op::AddElement { map, key, verdict } => {
                writeln!(text, "add element {t} {map} {{ {key} : {verdict} }}")
            }
            Op::DeleteChain(name) => writeln!(text, "delete chain {t} {name}"),
            Op::DeleteSet(name) => writeln!(text, "delete set {t} {name}"),
        };
    }
}

fn add_set(text: &mut String, t: &str, name: &str, secs: i32) {
    let _ = writeln!(
        text,
        "add set {t} {name} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {secs}s ; }}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{cfg, numbered};

    fn svc(i: u8, endpoints: u8) -> (String, Vec<NftPort>) {
        let sp = numbered(i, endpoints, Some(30000 + u16::from(i)));
        (
            format!("default/s{i}"),
            vec![nftrules::port_rules(&cfg(), &sp)],
        )
    }

    #[test]
    fn a_full_sync_recreates_the_table_in_one_script() {
        let mut p = NftProxier::new(cfg());
        let s = p.full_sync((1..=3).map(|i| svc(i, 2)).collect());
        assert!(s.text.starts_with(
            "add table ip ferrokube-fk\ndelete table ip ferrokube-fk\nadd table ip ferrokube-fk\n"
        ));
        // Per Service: the SVC, EXT and two endpoint chains.
        assert_eq!(s.chains, 3 * 4);
        assert_eq!(s.elements, 3 * 2, "a ClusterIP and a NodePort each");
        assert!(s.text.contains(
            "add element ip ferrokube-fk service-ips { 10.43.0.1 . tcp . 80 : goto service-"
        ));
    }

    #[test]
    fn an_endpoint_change_rewrites_only_that_services_chains() {
        let mut p = NftProxier::new(cfg());
        p.full_sync((1..=50).map(|i| svc(i, 3)).collect());
        let (key, ports) = svc(7, 4);
        let s = p.update(vec![(key, Some(ports))]);
        // The service chain (one numgen rule) and the new endpoint chain.
        assert_eq!((s.chains, s.rules, s.elements), (2, 1 + 2, 0), "{}", s.text);
        assert_eq!(s.text.lines().count(), 1 + 1 + 1 + 2, "{}", s.text);
        assert!(s.text.contains("numgen random mod 4 vmap"));
        assert!(!s.text.contains("services "), "{}", s.text);
        // The same state again writes nothing.
        let (key, ports) = svc(7, 4);
        assert!(p.update(vec![(key, Some(ports))]).is_empty());
    }

    #[test]
    fn a_lost_endpoint_chain_is_flushed_and_deleted_after_the_rewrite() {
        let mut p = NftProxier::new(cfg());
        p.full_sync([svc(1, 3)].into());
        let (key, ports) = svc(1, 2);
        let s = p.update(vec![(key, Some(ports))]);
        let rewrite = s
            .text
            .find("flush chain ip ferrokube-fk service-")
            .expect("rewrite");
        let delete = s
            .text
            .find("delete chain ip ferrokube-fk endpoint-")
            .expect("delete");
        assert!(rewrite < delete, "{}", s.text);
        assert_eq!(s.text.matches("delete chain").count(), 1);
    }

    #[test]
    fn a_removed_service_chain_is_flushed_before_its_endpoint_chains_go() {
        let mut p = NftProxier::new(cfg());
        p.full_sync([svc(1, 3)].into());
        let s = p.update(vec![("default/s1".into(), None)]);
        let last_flush = s.text.rfind("flush chain").expect("flush");
        let first_delete = s.text.find("delete chain").expect("delete");
        assert!(last_flush < first_delete, "{}", s.text);
    }

    #[test]
    fn losing_every_endpoint_moves_the_elements_to_the_reject_maps() {
        let mut p = NftProxier::new(cfg());
        p.full_sync([svc(1, 2)].into());
        let (key, ports) = svc(1, 0);
        let s = p.update(vec![(key, Some(ports))]);
        let text = &s.text;
        assert!(
            text.contains("delete element ip ferrokube-fk service-ips { 10.43.0.1 . tcp . 80 }")
        );
        assert!(text.contains("delete element ip ferrokube-fk service-nodeports { tcp . 30001 }"));
        assert!(text.contains(
            "add element ip ferrokube-fk no-endpoint-services { 10.43.0.1 . tcp . 80 : goto reject-chain }"
        ));
        assert!(text.contains(
            "add element ip ferrokube-fk no-endpoint-nodeports { tcp . 30001 : goto reject-chain }"
        ));
        // The elements leave before the chains they name are deleted.
        let del_el = text.find("delete element").expect("element");
        let del_chain = text.find("delete chain").expect("chain");
        assert!(del_el < del_chain, "{text}");
        assert_eq!(text.matches("delete chain").count(), 4, "{text}");
    }

    #[test]
    fn removing_a_service_removes_everything_it_owned() {
        let mut p = NftProxier::new(cfg());
        p.full_sync((1..=3).map(|i| svc(i, 2)).collect());
        let s = p.update(vec![("default/s2".into(), None)]);
        assert_eq!(s.text.matches("delete chain").count(), 4, "{}", s.text);
        assert_eq!(s.text.matches("delete element").count(), 2, "{}", s.text);
        assert!(!s.text.contains("add "), "{}", s.text);
        assert_eq!(p.service_count(), 2);
        assert!(p.update(vec![("default/s2".into(), None)]).is_empty());
    }
}
