//! The kernel side: `iptables-restore --noflush` for the chains,
//! `iptables-save` to find our chains after a restart, and `iptables
//! -C/-I/-D` for the few jumps from the built-in chains. Every command can
//! run under a prefix (`nsenter --net=/run/netns/NAME`), which is how the
//! benchmark programs a private network namespace.
//!
//! The iptables backend (`--proxy-mode iptables`): kube-proxy's iptables
//! mode, which operators can read with `iptables-save`. Its per-change
//! cost grows with the ruleset (iptables-nft reloads the table's chain
//! list on every commit), which is why nftables ([`crate::nft`]) is the
//! default.

use crate::rules::{self, RulesConfig};
use crate::tool::{self, ToolError};
use std::collections::BTreeSet;

/// How to run the iptables tools.
#[derive(Debug, Clone, Default)]
pub struct Iptables {
    /// Words put before every command (empty: run directly).
    pub wrapper: Vec<String>,
}

impl Iptables {
    async fn run(
        &self,
        tool: &str,
        args: &[String],
        input: Option<&str>,
    ) -> Result<String, ToolError> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tool::run(&self.wrapper, tool, &args, input).await
    }

    /// Applies a payload atomically, leaving every chain it does not name
    /// alone.
    pub async fn restore(&self, payload: &str) -> Result<(), ToolError> {
        if payload.is_empty() {
            return Ok(());
        }
        self.run("iptables-restore", &["--noflush".into()], Some(payload))
            .await
            .map(|_| ())
    }

    /// The names of the chains in `table` that start with `prefix-`.
    pub async fn chains(&self, table: &str, prefix: &str) -> Result<BTreeSet<String>, ToolError> {
        let out = self
            .run("iptables-save", &["-t".into(), table.into()], None)
            .await?;
        Ok(chains_in_save(&out, prefix))
    }

    /// The whole `iptables-save` output of a table (tests read it).
    pub async fn save(&self, table: &str) -> Result<String, ToolError> {
        self.run("iptables-save", &["-t".into(), table.into()], None)
            .await
    }

    /// Makes sure the built-in chains jump to ours (kube-proxy's
    /// `EnsureRule`): checked first, inserted at the top when missing. The
    /// target chains must exist (a full sync creates them).
    pub async fn ensure_hooks(&self, cfg: &RulesConfig) -> Result<(), ToolError> {
        for (table, chain, rule) in rules::hooks(cfg) {
            let mut check = vec![
                "-w".into(),
                "-t".into(),
                table.into(),
                "-C".into(),
                chain.into(),
            ];
            check.extend(rule.iter().cloned());
            if self.run("iptables", &check, None).await.is_ok() {
                continue;
            }
            let mut insert = vec![
                "-w".into(),
                "-t".into(),
                table.into(),
                "-I".into(),
                chain.into(),
            ];
            insert.extend(rule);
            self.run("iptables", &insert, None).await?;
        }
        Ok(())
    }

    /// Removes every trace of the proxy with this prefix: the hooks, then
    /// all its chains (`ferrokube proxy --cleanup`, and tests).
    pub async fn cleanup(&self, cfg: &RulesConfig) -> Result<(), ToolError> {
        for (table, chain, rule) in rules::hooks(cfg) {
            let mut delete = vec![
                "-w".into(),
                "-t".into(),
                table.into(),
                "-D".into(),
                chain.into(),
            ];
            delete.extend(rule);
            // Repeated: an interrupted start may have inserted it twice.
            while self.run("iptables", &delete, None).await.is_ok() {}
        }
        let mut payload = String::new();
        for table in ["nat", "filter"] {
            let chains = self.chains(table, &cfg.prefix).await?;
            if chains.is_empty() {
                continue;
            }
            payload.push_str(&format!("*{table}\n"));
            for c in &chains {
                payload.push_str(&format!(":{c} - [0:0]\n"));
            }
            for c in &chains {
                payload.push_str(&format!("-X {c}\n"));
            }
            payload.push_str("COMMIT\n");
        }
        self.restore(&payload).await
    }
}

/// Chain declarations (`:NAME POLICY [p:b]`) of `prefix-*` in a save.
pub fn chains_in_save(save: &str, prefix: &str) -> BTreeSet<String> {
    let start = format!(":{prefix}-");
    save.lines()
        .filter(|l| l.starts_with(&start))
        .filter_map(|l| l[1..].split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_chains_of_our_prefix_are_ours() {
        let save = "*nat\n:PREROUTING ACCEPT [0:0]\n:FK-SERVICES - [0:0]\n:FK-SVC-ABC - [0:0]\n:FKX-SERVICES - [0:0]\n-A FK-SERVICES -j FK-SVC-ABC\nCOMMIT\n";
        let got: Vec<String> = chains_in_save(save, "FK").into_iter().collect();
        assert_eq!(got, ["FK-SERVICES", "FK-SVC-ABC"]);
    }
}
