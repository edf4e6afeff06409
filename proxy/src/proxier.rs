//! The proxier's memory of what is programmed, and the smallest
//! `iptables-restore --noflush` payload that brings the kernel to the new
//! wanted state. A changed Service rewrites only its own chains; the shared
//! dispatch chains (`P-SERVICES`, `P-NODEPORTS`, filter `P-SERVICES`) are
//! rewritten only when one of their lines changes (a Service added or
//! removed, a port changed, endpoints appearing or vanishing), so an
//! endpoint change costs the same with 10 or 10,000 Services.
//!
//! With `--noflush`, `:CHAIN - [0:0]` creates or flushes just that chain,
//! and `-X` removes one; one payload is one atomic transaction, so a chain
//! is never deleted while something still jumps to it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::rules::{self, PortRules, RulesConfig};

/// One payload for `iptables-restore --noflush`, with what it touches.
#[derive(Debug, Default, Clone)]
pub struct Payload {
    pub text: String,
    /// Rule lines written (`-A`).
    pub rules: usize,
    /// Chains (re)written or deleted.
    pub chains: usize,
}

impl Payload {
    pub fn is_empty(&self) -> bool {
        self.chains == 0
    }
}

#[derive(Debug)]
pub struct Proxier {
    cfg: RulesConfig,
    /// Every Service's port rules, keyed `namespace/name`.
    services: BTreeMap<String, Vec<PortRules>>,
    /// Our nat chains as programmed.
    nat: HashMap<String, Vec<String>>,
    services_lines: Vec<String>,
    nodeports_lines: Vec<String>,
    reject_lines: Vec<String>,
    /// Chains no longer used, already flushed, not yet deleted: `-X` makes
    /// iptables-nft load the whole table, so deletions wait for a payload
    /// that rewrites the dispatch chain anyway, or for [`Proxier::collect`].
    stale: BTreeSet<String>,
}

impl Proxier {
    pub fn new(cfg: RulesConfig) -> Proxier {
        Proxier {
            cfg,
            services: BTreeMap::new(),
            nat: HashMap::new(),
            services_lines: Vec::new(),
            nodeports_lines: Vec::new(),
            reject_lines: Vec::new(),
            stale: BTreeSet::new(),
        }
    }

    /// Deletes the chains left flushed by earlier updates (the daemon
    /// calls this when idle).
    pub fn collect(&mut self) -> Payload {
        let stale: Vec<String> = std::mem::take(&mut self.stale).into_iter().collect();
        render(&[], &[], &stale, None, &self.cfg.services(), &[])
    }

    pub fn config(&self) -> &RulesConfig {
        &self.cfg
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// Everything from scratch: every chain written, and every chain of
    /// ours found in the kernel (`existing_nat`, `existing_filter`) that is
    /// no longer wanted removed. Used at start and after a failed restore.
    pub fn full_sync(
        &mut self,
        all: BTreeMap<String, Vec<PortRules>>,
        existing_nat: &BTreeSet<String>,
        existing_filter: &BTreeSet<String>,
    ) -> Payload {
        self.services = all;
        self.nat.clear();
        self.stale.clear();
        let mut wanted: Vec<(String, Vec<String>)> = rules::fixed_nat_chains(&self.cfg);
        for ports in self.services.values() {
            for p in ports {
                wanted.extend(p.chains.iter().cloned());
            }
        }
        self.rebuild_dispatch();
        wanted.push((self.cfg.services(), self.services_chain()));
        wanted.push((self.cfg.nodeports(), self.nodeports_lines.clone()));
        let names: BTreeSet<&String> = wanted.iter().map(|(n, _)| n).collect();
        let stale_nat: Vec<String> = existing_nat
            .iter()
            .filter(|n| !names.contains(n))
            .cloned()
            .collect();
        let filter_chain = self.cfg.services();
        let stale_filter: Vec<String> = existing_filter
            .iter()
            .filter(|n| **n != filter_chain)
            .cloned()
            .collect();
        let payload = render(
            &wanted,
            &[],
            &stale_nat,
            Some(&self.reject_lines),
            &filter_chain,
            &stale_filter,
        );
        for (name, lines) in wanted {
            self.nat.insert(name, lines);
        }
        payload
    }

    /// Applies changed Services (`None`: deleted) and returns the payload
    /// that programs just that.
    pub fn update(&mut self, changed: Vec<(String, Option<Vec<PortRules>>)>) -> Payload {
        let mut write: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut delete: BTreeSet<String> = BTreeSet::new();
        let mut dispatch_changed = false;
        for (key, new) in changed {
            let old = match &new {
                Some(n) => self.services.insert(key, n.clone()),
                None => self.services.remove(&key),
            }
            .unwrap_or_default();
            let new = new.unwrap_or_default();
            let new_names: BTreeSet<&String> = new
                .iter()
                .flat_map(|p| p.chains.iter().map(|(n, _)| n))
                .collect();
            for p in &old {
                for (name, _) in &p.chains {
                    if !new_names.contains(name) {
                        delete.insert(name.clone());
                    }
                }
            }
            for p in &new {
                for (name, lines) in &p.chains {
                    if self.nat.get(name) != Some(lines) {
                        write.insert(name.clone(), lines.clone());
                    }
                }
            }
            let same_dispatch = old.len() == new.len()
                && old.iter().zip(&new).all(|(a, b)| {
                    a.services == b.services && a.nodeports == b.nodeports && a.rejects == b.rejects
                });
            if !same_dispatch {
                dispatch_changed = true;
            }
        }
        // A chain moved between Services (never with hashed names, but
        // cheap to guard) is written, not deleted.
        delete.retain(|n| !write.contains_key(n));
        let mut filter = None;
        if dispatch_changed {
            let (old_s, old_n, old_r) = (
                std::mem::take(&mut self.services_lines),
                std::mem::take(&mut self.nodeports_lines),
                std::mem::take(&mut self.reject_lines),
            );
            self.rebuild_dispatch();
            if old_s != self.services_lines {
                write.insert(self.cfg.services(), self.services_chain());
            }
            if old_n != self.nodeports_lines {
                write.insert(self.cfg.nodeports(), self.nodeports_lines.clone());
            }
            if old_r != self.reject_lines {
                filter = Some(self.reject_lines.clone());
            }
        }
        for n in &delete {
            self.nat.remove(n);
            self.stale.insert(n.clone());
        }
        // A chain used again is no longer stale.
        self.stale.retain(|n| !write.contains_key(n));
        let wanted: Vec<(String, Vec<String>)> = write.into_iter().collect();
        let flushed: Vec<String> = delete.into_iter().collect();
        let deleted: Vec<String> = if dispatch_changed {
            std::mem::take(&mut self.stale).into_iter().collect()
        } else {
            Vec::new()
        };
        let flushed: Vec<String> = flushed
            .into_iter()
            .filter(|n| !deleted.contains(n))
            .collect();
        let payload = render(
            &wanted,
            &flushed,
            &deleted,
            filter.as_ref(),
            &self.cfg.services(),
            &[],
        );
        for (name, lines) in wanted {
            self.nat.insert(name, lines);
        }
        payload
    }

    fn rebuild_dispatch(&mut self) {
        let ports = || self.services.values().flatten();
        self.services_lines = ports().flat_map(|p| p.services.iter().cloned()).collect();
        self.nodeports_lines = ports().flat_map(|p| p.nodeports.iter().cloned()).collect();
        self.reject_lines = ports().flat_map(|p| p.rejects.iter().cloned()).collect();
    }

    fn services_chain(&self) -> Vec<String> {
        rules::services_chain(&self.cfg, self.services_lines.iter())
    }
}

/// The restore text: nat chains to write, to flush and to delete, then
/// (if given) the filter chain's new lines and stale filter chains to
/// delete.
fn render(
    write: &[(String, Vec<String>)],
    flush: &[String],
    delete: &[String],
    filter: Option<&Vec<String>>,
    filter_chain: &str,
    delete_filter: &[String],
) -> Payload {
    let mut p = Payload::default();
    if !write.is_empty() || !flush.is_empty() || !delete.is_empty() {
        p.text.push_str("*nat\n");
        for (name, _) in write {
            let _ = writeln!(p.text, ":{name} - [0:0]");
        }
        for name in flush.iter().chain(delete) {
            let _ = writeln!(p.text, ":{name} - [0:0]");
        }
        for (_, lines) in write {
            for l in lines {
                p.text.push_str(l);
                p.text.push('\n');
            }
            p.rules += lines.len();
        }
        for name in delete {
            let _ = writeln!(p.text, "-X {name}");
        }
        p.text.push_str("COMMIT\n");
        p.chains += write.len() + flush.len() + delete.len();
    }
    if filter.is_some() || !delete_filter.is_empty() {
        p.text.push_str("*filter\n");
        let _ = writeln!(p.text, ":{filter_chain} - [0:0]");
        for name in delete_filter {
            let _ = writeln!(p.text, ":{name} - [0:0]");
        }
        for l in filter.into_iter().flatten() {
            p.text.push_str(l);
            p.text.push('\n');
            p.rules += 1;
        }
        for name in delete_filter {
            let _ = writeln!(p.text, "-X {name}");
        }
        p.text.push_str("COMMIT\n");
        p.chains += 1 + delete_filter.len();
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{cfg, numbered};

    fn svc(i: u8, endpoints: u8) -> (String, Vec<PortRules>) {
        let sp = numbered(i, endpoints, None);
        (
            format!("default/s{i}"),
            vec![rules::port_rules(&cfg(), &sp)],
        )
    }

    #[test]
    fn an_endpoint_change_rewrites_only_that_services_chains() {
        let mut p = Proxier::new(cfg());
        let all: BTreeMap<_, _> = (1..=50).map(|i| svc(i, 3)).collect();
        let full = p.full_sync(all, &BTreeSet::new(), &BTreeSet::new());
        assert!(full.text.contains(":FK-SERVICES - [0:0]"));
        let (key, rules) = svc(7, 4);
        let up = p.update(vec![(key, Some(rules))]);
        // The SVC chain and the new endpoint's SEP chain; the dispatch
        // chain does not change.
        assert_eq!(up.chains, 2, "{}", up.text);
        assert_eq!(up.rules, 4 + 2);
        assert!(!up.text.contains("FK-SERVICES"), "{}", up.text);
        assert!(!up.text.contains("*filter"));
        // Applying the same state again writes nothing.
        let (key, rules) = svc(7, 4);
        assert!(p.update(vec![(key, Some(rules))]).is_empty());
    }

    #[test]
    fn removing_a_service_deletes_its_chains_with_the_dispatch_line() {
        let mut p = Proxier::new(cfg());
        let all: BTreeMap<_, _> = (1..=3).map(|i| svc(i, 2)).collect();
        p.full_sync(all, &BTreeSet::new(), &BTreeSet::new());
        let up = p.update(vec![("default/s2".into(), None)]);
        assert_eq!(up.text.matches("-X FK-").count(), 3, "{}", up.text);
        assert!(up.text.contains(":FK-SERVICES - [0:0]"));
        assert!(!up.text.contains("10.43.0.2/32"));
        assert_eq!(p.service_count(), 2);
    }

    #[test]
    fn losing_every_endpoint_moves_the_service_to_the_reject_chain() {
        let mut p = Proxier::new(cfg());
        p.full_sync([svc(1, 2)].into(), &BTreeSet::new(), &BTreeSet::new());
        let (key, rules) = svc(1, 0);
        let up = p.update(vec![(key, Some(rules))]);
        assert!(up.text.contains("*filter\n:FK-SERVICES - [0:0]\n"));
        assert!(
            up.text
                .contains("-d 10.43.0.1/32 -m tcp -p tcp --dport 80 -j REJECT")
        );
        assert!(up.text.contains("-X FK-SVC-"));
    }

    #[test]
    fn a_full_sync_removes_stale_chains_of_ours_only() {
        let mut p = Proxier::new(cfg());
        let stale: BTreeSet<String> =
            ["FK-SVC-OLDOLDOLDOLDOLD".to_string(), "FK-SERVICES".into()].into();
        let stale_filter: BTreeSet<String> = ["FK-SERVICES".to_string(), "FK-OLD".into()].into();
        let full = p.full_sync([svc(1, 1)].into(), &stale, &stale_filter);
        assert!(full.text.contains("-X FK-SVC-OLDOLDOLDOLDOLD\n"));
        assert!(!full.text.contains("-X FK-SERVICES"));
        assert!(full.text.contains("-X FK-OLD\n"));
    }
}
