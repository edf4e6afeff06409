//! The kernel side of the nftables backend: `nft -f -` applies a script as
//! one transaction, `nft list` reads our tables back (tests, the benchmark),
//! and `--cleanup` deletes the tables. Like [`crate::iptables`], every
//! command can run under a wrapper (`nsenter --net=/run/netns/NAME`).

use crate::tool::{self, ToolError};

/// Where Debian's `nftables` package puts the tool.
pub const NFT: &str = "/usr/sbin/nft";

/// How to run `nft`.
#[derive(Debug, Clone)]
pub struct Nft {
    /// The `nft` binary.
    pub binary: String,
    /// Words put before every command (empty: run directly).
    pub wrapper: Vec<String>,
    /// Incremental updates go over a netlink socket of our own, in this
    /// process's network namespace, or in the one at this path (which
    /// must be the one `wrapper` enters). `None` with a wrapper: `nft`.
    pub netns: Option<String>,
}

impl Default for Nft {
    fn default() -> Nft {
        Nft {
            binary: NFT.into(),
            wrapper: Vec::new(),
            netns: None,
        }
    }
}

impl Nft {
    async fn run(&self, args: &[&str], input: Option<&str>) -> Result<String, ToolError> {
        tool::run(&self.wrapper, &self.binary, args, input).await
    }

    /// Whether nftables can be used here: `nft list ruleset` runs (the tool
    /// is installed and the kernel speaks nf_tables to us).
    pub async fn available(&self) -> Result<(), ToolError> {
        self.run(&["list", "ruleset"], None).await.map(|_| ())
    }

    /// Applies a script as one transaction.
    pub async fn apply(&self, script: &str) -> Result<(), ToolError> {
        if script.is_empty() {
            return Ok(());
        }
        self.run(&["-f", "-"], Some(script)).await.map(|_| ())
    }

    /// The names of the `ip` family's tables.
    pub async fn list_tables(&self) -> Result<Vec<String>, ToolError> {
        let out = self.run(&["list", "tables", "ip"], None).await?;
        Ok(tables_in_listing(&out))
    }

    /// `nft list table ip TABLE` (the table must exist).
    pub async fn list_table(&self, table: &str) -> Result<String, ToolError> {
        self.run(&["list", "table", "ip", table], None).await
    }

    /// The same as JSON (`nft -j`).
    pub async fn list_table_json(&self, table: &str) -> Result<String, ToolError> {
        self.run(&["-j", "list", "table", "ip", table], None).await
    }

    /// Where a netlink socket for this `nft` must live: `Some(None)` here,
    /// `Some(Some(path))` in that namespace, `None` when only the wrapper
    /// knows (then every update runs `nft`).
    pub fn netlink_netns(&self) -> Option<Option<&std::path::Path>> {
        match (&self.netns, self.wrapper.is_empty()) {
            (Some(path), _) => Some(Some(std::path::Path::new(path))),
            (None, true) => Some(None),
            (None, false) => None,
        }
    }

    /// Removes the tables and everything in them, whether or not they
    /// exist; nothing of ours stays hooked into netfilter (`ferrokube
    /// proxy --cleanup`).
    pub async fn cleanup(&self, tables: &[String]) -> Result<(), ToolError> {
        let script: String = tables
            .iter()
            .map(|t| format!("add table ip {t}\ndelete table ip {t}\n"))
            .collect();
        self.apply(&script).await
    }
}

/// The chain names declared in `nft list` output.
pub fn chains_in_listing(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("chain "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The table names in `nft list tables` output (`table ip NAME`).
pub fn tables_in_listing(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table ip "))
        .map(|l| l.trim().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_read_from_a_listing() {
        let listing = "table ip ferrokube\ntable ip ferrokube.shard03\n";
        assert_eq!(
            tables_in_listing(listing),
            ["ferrokube", "ferrokube.shard03"]
        );
    }

    #[test]
    fn chain_names_are_read_from_a_listing() {
        let listing = "table ip ferrokube {\n\tmap service-ips {\n\t}\n\n\tchain services {\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t}\n\n\tchain endpoint-ABCD1234-default/web/tcp/__10.42.0.2/80 {\n\t}\n}\n";
        assert_eq!(
            chains_in_listing(listing),
            [
                "services",
                "endpoint-ABCD1234-default/web/tcp/__10.42.0.2/80"
            ]
        );
    }
}
