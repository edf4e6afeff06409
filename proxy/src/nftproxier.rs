//! The nftables proxier's memory of what is programmed, and the smallest
//! transaction that brings our tables to the new wanted state: a list of
//! [`Op`]s, each in its table, also rendered as an `nft -f` script. The
//! dataplane sends the ops over netlink ([`crate::nftcompile`]), or the
//! script to `nft`.
//!
//! A changed Service touches only what it owns, in its shard table
//! ([`crate::nftlayout`]): its chains (rewritten by `flush chain` +
//! `add rule`), its affinity sets and its verdict-map elements (and the
//! common table's reject maps when it has no endpoints). No fixed chain is
//! rewritten after the start, and the kernel validates only the tables a
//! transaction touches, so an endpoint change costs the same with 10 or
//! 10,000 Services. A script is one transaction: elements leave the maps
//! before the chains they name are flushed and deleted, and new chains
//! exist before elements name them.
//!
//! A full sync (start, or after a failed update) deletes and recreates
//! every table of ours in one transaction: nothing stale survives a
//! restart, and traffic never sees a half-programmed table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::nftlayout::{self, SHARDS, Table, Tables, shard_of};
use crate::nftrules::{HAIRPIN, NftPort};
use crate::rules::RulesConfig;

/// One `nft -f` script, with what it touches.
#[derive(Debug, Default, Clone)]
pub struct Script {
    pub text: String,
    /// Commands creating the (empty) shard tables an update populates,
    /// applied by `nft -f` before the update: an empty shard changes no
    /// traffic, and the update proper still goes over netlink.
    pub prepare: String,
    /// Rules written.
    pub rules: usize,
    /// Map elements added or deleted.
    pub elements: usize,
    /// Per-Service chains written or deleted.
    pub chains: usize,
    /// The fixed chains a full sync creates (common and shard tables).
    pub fixed_chains: usize,
    /// The commands of an incremental update, each with the name of its
    /// table (empty for a full sync).
    pub ops: Vec<(String, Op)>,
}

impl Script {
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.prepare.is_empty()
    }

    /// The tables an update's ops touch.
    pub fn tables(&self) -> BTreeSet<&str> {
        self.ops.iter().map(|(t, _)| t.as_str()).collect()
    }
}

/// A map element's identity: its table, map and key.
type ElementKey = (Table, &'static str, String);

#[derive(Debug)]
pub struct NftProxier {
    cfg: RulesConfig,
    tables: Tables,
    services: BTreeMap<String, Vec<NftPort>>,
    /// Per-Service chains as programmed (names are unique across shards:
    /// they carry the Service's name).
    chains: HashMap<String, Vec<String>>,
    /// Element → verdict, as programmed.
    elements: HashMap<ElementKey, String>,
    sets: BTreeSet<String>,
    /// Service ports per endpoint address: its [`HAIRPIN`] element exists
    /// while one of them uses it.
    hairpin: HashMap<Ipv4Addr, usize>,
    /// Services per shard: a shard's table exists while it has one.
    per_shard: Vec<usize>,
}

impl NftProxier {
    pub fn new(cfg: RulesConfig) -> NftProxier {
        let tables = Tables::new(&cfg);
        NftProxier {
            cfg,
            tables,
            services: BTreeMap::new(),
            chains: HashMap::new(),
            elements: HashMap::new(),
            sets: BTreeSet::new(),
            hairpin: HashMap::new(),
            per_shard: vec![0; SHARDS],
        }
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    pub fn config(&self) -> &RulesConfig {
        &self.cfg
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// The shard tables holding Services now.
    pub fn populated(&self) -> Vec<&str> {
        (0..SHARDS)
            .filter(|&i| self.per_shard[i] > 0)
            .map(|i| self.tables.name(Table::Shard(i)))
            .collect()
    }

    /// Everything from scratch, atomically: every table of ours deleted
    /// (those of `existing`, the kernel's `ip` tables, too: a shard
    /// emptied while we were down, or left by a build with other shards)
    /// and the common table and the populated shards recreated.
    pub fn full_sync(
        &mut self,
        all: BTreeMap<String, Vec<NftPort>>,
        existing: &[String],
    ) -> Script {
        self.services = all;
        self.chains.clear();
        self.elements.clear();
        self.sets.clear();
        self.hairpin.clear();
        self.per_shard = vec![0; SHARDS];
        for key in self.services.keys() {
            self.per_shard[shard_of(key)] += 1;
        }
        let mut s = Script::default();
        let populated: Vec<String> = self.populated().into_iter().map(String::from).collect();
        for name in existing {
            let known = name == self.tables.common() || self.tables.shards().contains(name);
            if self.tables.is_ours(name) && !known {
                let _ = writeln!(s.text, "delete table ip {name}");
            }
        }
        // `add` first so that `delete` cannot fail on a fresh host.
        for name in self.tables.shards() {
            if !populated.contains(name) {
                let _ = writeln!(s.text, "add table ip {name}\ndelete table ip {name}");
            }
        }
        let common = self.tables.common().to_string();
        recreate(
            &mut s,
            &common,
            nftlayout::common_commands(&self.cfg, &common),
        );
        for name in &populated {
            recreate(&mut s, name, nftlayout::shard_commands(&self.cfg, name));
        }
        let mut by_map: BTreeMap<(Table, &'static str), Vec<(&str, &str)>> = BTreeMap::new();
        for (key, ports) in &self.services {
            let shard = shard_of(key);
            let t = format!("ip {}", self.tables.name(Table::Shard(shard)));
            for p in ports {
                for (name, secs) in &p.sets {
                    if self.sets.insert(name.clone()) {
                        add_set(&mut s.text, &t, name, *secs);
                    }
                }
                for (name, _) in &p.chains {
                    let _ = writeln!(s.text, "add chain {t} {name}");
                }
            }
            for p in ports {
                for (name, rules) in &p.chains {
                    for r in rules {
                        let _ = writeln!(s.text, "add rule {t} {name} {r}");
                    }
                    s.rules += rules.len();
                    s.chains += 1;
                    self.chains.insert(name.clone(), rules.clone());
                }
                for e in &p.elements {
                    let table = nftlayout::map_table(e.map, shard);
                    by_map
                        .entry((table, e.map))
                        .or_default()
                        .push((&e.key, &e.verdict));
                    self.elements
                        .insert((table, e.map, e.key.clone()), e.verdict.clone());
                }
                for ip in &p.hairpin {
                    *self.hairpin.entry(*ip).or_default() += 1;
                }
            }
        }
        let mut hairpin: Vec<&Ipv4Addr> = self.hairpin.keys().collect();
        hairpin.sort();
        for chunk in hairpin.chunks(1000) {
            let list: Vec<String> = chunk.iter().map(|ip| hairpin_key(**ip)).collect();
            let _ = writeln!(
                s.text,
                "add element ip {common} {HAIRPIN} {{ {} }}",
                list.join(", ")
            );
            s.elements += chunk.len();
        }
        for ((table, map), elements) in by_map {
            let t = self.tables.name(table);
            // Batches keep the script short and nft's parsing fast.
            for chunk in elements.chunks(1000) {
                let list: Vec<String> = chunk.iter().map(|(k, v)| format!("{k} : {v}")).collect();
                let _ = writeln!(s.text, "add element ip {t} {map} {{ {} }}", list.join(", "));
                s.elements += chunk.len();
            }
        }
        s
    }

    /// Applies changed Services (`None`: deleted) and returns the script
    /// that programs just that.
    pub fn update(&mut self, changed: Vec<(String, Option<Vec<NftPort>>)>) -> Script {
        let before = self.per_shard.clone();
        let mut old_chains: BTreeMap<String, Table> = BTreeMap::new();
        let mut old_sets: BTreeMap<String, Table> = BTreeMap::new();
        let mut old_elements: BTreeSet<ElementKey> = BTreeSet::new();
        let mut new_ports: Vec<(usize, NftPort)> = Vec::new();
        // Each touched endpoint address with its count before the update.
        let mut hairpin_before: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
        for (key, new) in changed {
            let shard = shard_of(&key);
            let here = Table::Shard(shard);
            let now = new.is_some();
            let old = match new.clone() {
                Some(n) => self.services.insert(key, n),
                None => self.services.remove(&key),
            };
            match (old.is_some(), now) {
                (false, true) => self.per_shard[shard] += 1,
                (true, false) => self.per_shard[shard] -= 1,
                _ => {}
            }
            for p in old.unwrap_or_default() {
                for ip in p.hairpin {
                    let count = self.hairpin.entry(ip).or_default();
                    hairpin_before.entry(ip).or_insert(*count);
                    *count = count.saturating_sub(1);
                }
                old_chains.extend(p.chains.into_iter().map(|(n, _)| (n, here)));
                old_sets.extend(p.sets.into_iter().map(|(n, _)| (n, here)));
                old_elements.extend(
                    p.elements
                        .into_iter()
                        .map(|e| (nftlayout::map_table(e.map, shard), e.map, e.key)),
                );
            }
            new_ports.extend(new.unwrap_or_default().into_iter().map(|p| (shard, p)));
        }
        let mut write: BTreeMap<String, (Table, Vec<String>)> = BTreeMap::new();
        let mut new_sets: BTreeMap<String, (Table, i32)> = BTreeMap::new();
        let mut wanted: BTreeMap<ElementKey, String> = BTreeMap::new();
        for (shard, p) in new_ports {
            let here = Table::Shard(shard);
            for ip in p.hairpin {
                let count = self.hairpin.entry(ip).or_default();
                hairpin_before.entry(ip).or_insert(*count);
                *count += 1;
            }
            for (name, rules) in p.chains {
                old_chains.remove(&name);
                if self.chains.get(&name) != Some(&rules) {
                    write.insert(name, (here, rules));
                }
            }
            for (name, secs) in p.sets {
                old_sets.remove(&name);
                if !self.sets.contains(&name) {
                    new_sets.insert(name, (here, secs));
                }
            }
            for e in p.elements {
                let table = nftlayout::map_table(e.map, shard);
                wanted.insert((table, e.map, e.key), e.verdict);
            }
        }
        let mut del_elements: Vec<ElementKey> = Vec::new();
        for k in old_elements {
            if !wanted.contains_key(&k) && self.elements.contains_key(&k) {
                del_elements.push(k);
            }
        }
        let mut add_elements: Vec<(ElementKey, String)> = Vec::new();
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
        let mut ops: Vec<(Table, Op)> = Vec::new();
        for (ip, was) in hairpin_before {
            let now = self.hairpin.get(&ip).copied().unwrap_or(0);
            if now == 0 {
                self.hairpin.remove(&ip);
            }
            let key = hairpin_key(ip);
            let op = match (was, now) {
                (0, 1..) => Op::AddMember { set: HAIRPIN, key },
                (1.., 0) => Op::DeleteElement { map: HAIRPIN, key },
                _ => continue,
            };
            s.elements += 1;
            ops.push((Table::Common, op));
        }
        for (name, (table, secs)) in &new_sets {
            ops.push((
                *table,
                Op::AddSet {
                    name: name.clone(),
                    timeout: *secs,
                },
            ));
            self.sets.insert(name.clone());
        }
        for (name, (table, _)) in &write {
            if !self.chains.contains_key(name) {
                ops.push((*table, Op::AddChain(name.clone())));
            }
        }
        for (table, map, key) in &del_elements {
            ops.push((
                *table,
                Op::DeleteElement {
                    map,
                    key: key.clone(),
                },
            ));
            self.elements.remove(&(*table, *map, key.clone()));
        }
        for (name, (table, rules)) in &write {
            if self.chains.contains_key(name) {
                ops.push((*table, Op::FlushChain(name.clone())));
            }
            for r in rules {
                ops.push((
                    *table,
                    Op::AddRule {
                        chain: name.clone(),
                        rule: r.clone(),
                    },
                ));
            }
            s.rules += rules.len();
        }
        for ((table, map, key), verdict) in &add_elements {
            ops.push((
                *table,
                Op::AddElement {
                    map,
                    key: key.clone(),
                    verdict: verdict.clone(),
                },
            ));
            self.elements
                .insert((*table, *map, key.clone()), verdict.clone());
        }
        // The removed chains may name each other (a Service chain its
        // endpoint chains): all are flushed before any is deleted, and no
        // rewritten chain or element names them any more, so they can go
        // in the same transaction.
        let removed: Vec<(&String, Table)> = old_chains
            .iter()
            .filter(|(n, _)| self.chains.remove(*n).is_some())
            .map(|(n, t)| (n, *t))
            .collect();
        for (name, table) in &removed {
            ops.push((*table, Op::FlushChain((*name).clone())));
        }
        for (name, table) in &removed {
            ops.push((*table, Op::DeleteChain((*name).clone())));
        }
        s.chains += removed.len();
        for (name, table) in &old_sets {
            if self.sets.remove(name) {
                ops.push((*table, Op::DeleteSet(name.clone())));
            }
        }
        s.chains += write.len();
        s.elements += del_elements.len() + add_elements.len();
        for (name, (_, rules)) in write {
            self.chains.insert(name, rules);
        }
        // A shard that lost its last Service goes as a whole (with it
        // its nat hooks); one that gains its first is created beforehand.
        for (shard, (&was, &now)) in before.iter().zip(&self.per_shard).enumerate() {
            let table = Table::Shard(shard);
            let name = self.tables.name(table);
            if was > 0 && now == 0 {
                ops.retain(|(t, _)| *t != table);
                ops.push((table, Op::DeleteTable));
            } else if was == 0 && now > 0 {
                let mut commands = Vec::new();
                recreate_commands(&mut commands, name);
                commands.extend(nftlayout::shard_commands(&self.cfg, name));
                for c in commands {
                    s.prepare.push_str(&c);
                    s.prepare.push('\n');
                }
            }
        }
        for (table, op) in ops {
            let name = self.tables.name(table).to_string();
            op.render(&mut s.text, &format!("ip {name}"));
            s.ops.push((name, op));
        }
        s
    }
}

/// `add`, `delete` and `add` of a table: gone with all it held, whether or
/// not it existed, then empty.
fn recreate_commands(out: &mut Vec<String>, table: &str) {
    out.push(format!("add table ip {table}"));
    out.push(format!("delete table ip {table}"));
    out.push(format!("add table ip {table}"));
}

/// A table recreated in a full sync, with its fixed content.
fn recreate(s: &mut Script, table: &str, fixed: Vec<String>) {
    let mut commands = Vec::new();
    recreate_commands(&mut commands, table);
    s.fixed_chains += fixed.iter().filter(|c| c.starts_with("add chain")).count();
    commands.extend(fixed);
    for c in commands {
        s.text.push_str(&c);
        s.text.push('\n');
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
    /// An element of a set (no verdict).
    AddMember {
        set: &'static str,
        key: String,
    },
    DeleteChain(String),
    DeleteSet(String),
    /// The table with everything in it (an emptied shard).
    DeleteTable,
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
            Op::AddMember { set, key } => writeln!(text, "add element {t} {set} {{ {key} }}"),
            Op::DeleteChain(name) => writeln!(text, "delete chain {t} {name}"),
            Op::DeleteSet(name) => writeln!(text, "delete set {t} {name}"),
            Op::DeleteTable => writeln!(text, "delete table {t}"),
        };
    }
}

/// The [`HAIRPIN`] element of an endpoint address: from it, to it.
fn hairpin_key(ip: Ipv4Addr) -> String {
    format!("{ip} . {ip}")
}

fn add_set(text: &mut String, t: &str, name: &str, secs: i32) {
    let _ = writeln!(
        text,
        "add set {t} {name} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {secs}s ; }}"
    );
}

#[cfg(test)]
#[path = "nftproxier_tests.rs"]
mod tests;
