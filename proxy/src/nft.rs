//! The kernel side of the nftables backend: `nft -f -` applies a script as
//! one transaction, `nft list` reads our table back (tests, the benchmark),
//! and `--cleanup` deletes the table. Like [`crate::iptables`], every
//! command can run under a wrapper (`nsenter --net=/run/netns/NAME`).

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// Where Debian's `nftables` package puts the tool.
pub const NFT: &str = "/usr/sbin/nft";

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed: {stderr}")]
    Failed { command: String, stderr: String },
}

/// How to run `nft`.
#[derive(Debug, Clone)]
pub struct Nft {
    /// The `nft` binary.
    pub binary: String,
    /// Words put before every command (empty: run directly).
    pub wrapper: Vec<String>,
}

impl Default for Nft {
    fn default() -> Nft {
        Nft {
            binary: NFT.into(),
            wrapper: Vec::new(),
        }
    }
}

impl Nft {
    async fn run(&self, args: &[&str], input: Option<&str>) -> Result<String, NftError> {
        let command = format!("{} {}", self.binary, args.join(" "));
        let mut words = self.wrapper.iter();
        let mut cmd = match words.next() {
            Some(first) => {
                let mut c = tokio::process::Command::new(first);
                c.args(words).arg(&self.binary);
                c
            }
            None => tokio::process::Command::new(&self.binary),
        };
        cmd.args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawn = |source| NftError::Spawn {
            command: command.clone(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn)?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes()).await.map_err(spawn)?;
        }
        let out = child.wait_with_output().await.map_err(spawn)?;
        if !out.status.success() {
            return Err(NftError::Failed {
                command,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether nftables can be used here: `nft list ruleset` runs (the tool
    /// is installed and the kernel speaks nf_tables to us).
    pub async fn available(&self) -> Result<(), NftError> {
        self.run(&["list", "ruleset"], None).await.map(|_| ())
    }

    /// Applies a script as one transaction.
    pub async fn apply(&self, script: &str) -> Result<(), NftError> {
        if script.is_empty() {
            return Ok(());
        }
        self.run(&["-f", "-"], Some(script)).await.map(|_| ())
    }

    /// `nft list table ip TABLE` (the table must exist).
    pub async fn list_table(&self, table: &str) -> Result<String, NftError> {
        self.run(&["list", "table", "ip", table], None).await
    }

    /// Removes the table and everything in it; nothing of ours stays
    /// hooked into netfilter (`ferrokube proxy --cleanup`).
    pub async fn cleanup(&self, table: &str) -> Result<(), NftError> {
        self.apply(&format!("add table ip {table}\ndelete table ip {table}\n"))
            .await
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

#[cfg(test)]
mod tests {
    use super::*;

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
