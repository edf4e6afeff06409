//! Pod networking through the standard CNI plugins
//! (`containernetworking-plugins`): `loopback` brings `lo` up and `bridge`
//! with `host-local` IPAM puts `eth0` on the node bridge with an address
//! from the pod CIDR, the same wiring as containerd's default CNI config.
//! Plugins are executed per the CNI spec: config on stdin, `CNI_*`
//! variables in the environment, a JSON result (or error) on stdout.
//!
//! Pod traffic leaving the pod subnet is masqueraded by one node-wide
//! nftables rule the kubelet installs at start ([`Cni::install_masquerade`])
//! rather than by the bridge plugin's `ipMasq`, which runs `iptables`
//! several times on every ADD and DEL: measured here, a bridge ADD took
//! 30–44 ms with `ipMasq` and 12–13 ms without. Where `nft` cannot run,
//! `ipMasq` stays the fallback.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

pub const CNI_VERSION: &str = "0.4.0";
pub const NETWORK_NAME: &str = "ferrokube";
/// The default bridge interface.
pub const BRIDGE: &str = "fk0";

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("cannot run CNI plugin {plugin}: {source}")]
    Exec {
        plugin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CNI plugin {plugin} {command} failed: {message}")]
    Plugin {
        plugin: String,
        command: &'static str,
        message: String,
    },
}

/// The node's CNI setup.
#[derive(Debug, Clone)]
pub struct Cni {
    pub bin_dir: PathBuf,
    /// The node bridge ([`BRIDGE`] unless tests need one of their own).
    pub bridge: String,
    pub pod_cidr: String,
    /// host-local keeps its allocations here.
    pub ipam_dir: PathBuf,
    /// The node-wide masquerade rule is installed: the bridge plugin need
    /// not masquerade each pod.
    pub node_masquerade: bool,
}

impl Cni {
    /// Installs (or replaces) the node's masquerade table for this bridge;
    /// answers whether it is in place, else pods are masqueraded by the
    /// bridge plugin.
    pub async fn install_masquerade(&mut self) -> bool {
        let script = masquerade_script(&self.bridge, &self.pod_cidr);
        match proxy::nft::Nft::default().apply(&script).await {
            Ok(()) => self.node_masquerade = true,
            Err(e) => {
                tracing::warn!(error = %e, "pods are masqueraded by the bridge plugin instead");
            }
        }
        self.node_masquerade
    }

    fn plugins(&self) -> Vec<(Value, &'static str)> {
        // Masquerading needs iptables; without it pods still reach the node.
        let masquerade = !self.node_masquerade && has_iptables();
        vec![
            (
                json!({"cniVersion": CNI_VERSION, "name": NETWORK_NAME, "type": "loopback"}),
                "lo",
            ),
            (
                json!({
                    "cniVersion": CNI_VERSION,
                    "name": NETWORK_NAME,
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": masquerade,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": self.ipam_dir,
                    },
                }),
                "eth0",
            ),
        ]
    }

    /// Wires the namespace; returns the pod IP `bridge` assigned. The
    /// networks touch different interfaces, so they are set up at once, as
    /// containerd's go-cni `Setup` does (its `SetupSerially` is the opt-in).
    pub async fn add(&self, id: &str, netns: &Path) -> Result<Option<IpAddr>, CniError> {
        let plugins = self.plugins();
        let results = futures::future::try_join_all(
            plugins
                .iter()
                .map(|(config, ifname)| self.invoke("ADD", config, id, netns, ifname)),
        )
        .await?;
        Ok(plugins
            .iter()
            .zip(&results)
            .find(|((_, ifname), _)| *ifname == "eth0")
            .and_then(|(_, result)| first_ip(result)))
    }

    /// Unwires it (releases the address); safe to repeat.
    pub async fn del(&self, id: &str, netns: &Path) -> Result<(), CniError> {
        for (config, ifname) in self.plugins().into_iter().rev() {
            self.invoke("DEL", &config, id, netns, ifname).await?;
        }
        Ok(())
    }

    async fn invoke(
        &self,
        command: &'static str,
        config: &Value,
        id: &str,
        netns: &Path,
        ifname: &str,
    ) -> Result<Value, CniError> {
        let kind = config["type"].as_str().unwrap_or_default().to_string();
        let plugin = self.bin_dir.join(&kind);
        let exec = |source| CniError::Exec {
            plugin: plugin.clone(),
            source,
        };
        let mut child = tokio::process::Command::new(&plugin)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", &self.bin_dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(exec)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(config.to_string().as_bytes())
                .await
                .map_err(exec)?;
        }
        let output = child.wait_with_output().await.map_err(exec)?;
        let parsed: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        if !output.status.success() {
            let message = parsed["msg"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&output.stderr).trim().to_string());
            return Err(CniError::Plugin {
                plugin: kind,
                command,
                message,
            });
        }
        Ok(parsed)
    }
}

fn has_iptables() -> bool {
    ["/usr/sbin/iptables", "/sbin/iptables", "/usr/bin/iptables"]
        .iter()
        .any(|p| Path::new(p).exists())
}

/// The kubelet's nftables table for the pods on `bridge`.
pub fn masquerade_table(bridge: &str) -> String {
    format!("ferrokube-kubelet-{bridge}")
}

/// The table, recreated: pod traffic to anywhere but the pod subnet (and
/// multicast) is masqueraded, as the bridge plugin's per-pod `ipMasq`
/// chains did.
pub fn masquerade_script(bridge: &str, pod_cidr: &str) -> String {
    let t = format!("ip {}", masquerade_table(bridge));
    format!(
        "add table {t}\ndelete table {t}\nadd table {t}\n\
         add chain {t} postrouting {{ type nat hook postrouting priority srcnat ; policy accept ; }}\n\
         add rule {t} postrouting ip saddr {pod_cidr} ip daddr != {pod_cidr} ip daddr != 224.0.0.0/4 masquerade\n"
    )
}

/// Removes the table (a node torn down); absent is fine.
pub fn remove_masquerade(bridge: &str) {
    let _ = std::process::Command::new(proxy::nft::NFT)
        .args(["delete", "table", "ip", &masquerade_table(bridge)])
        .stderr(std::process::Stdio::null())
        .status();
}

/// The first address of a CNI result (`ips[0].address`, `10.88.0.5/16`).
pub fn first_ip(result: &Value) -> Option<IpAddr> {
    let address = result["ips"].as_array()?.first()?["address"].as_str()?;
    address.split('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cni(node_masquerade: bool) -> Cni {
        Cni {
            bin_dir: "/usr/lib/cni".into(),
            bridge: "fk0".into(),
            pod_cidr: "10.42.0.0/24".into(),
            ipam_dir: "/tmp/ipam".into(),
            node_masquerade,
        }
    }

    #[test]
    fn the_bridge_plugin_masquerades_only_without_the_node_rule() {
        let masq = |c: &Cni| -> Vec<Value> {
            c.plugins()
                .iter()
                .filter(|(p, _)| p["type"] == "bridge")
                .map(|(p, _)| p["ipMasq"].clone())
                .collect()
        };
        assert_eq!(masq(&cni(true)), [json!(false)]);
        assert_eq!(masq(&cni(false)), [json!(has_iptables())]);
    }

    #[tokio::test]
    async fn the_node_rule_masquerades_what_leaves_the_pod_subnet() {
        let script = masquerade_script("fk0", "10.42.0.0/24");
        assert!(script.contains(
            "add rule ip ferrokube-kubelet-fk0 postrouting ip saddr 10.42.0.0/24 ip daddr != 10.42.0.0/24 ip daddr != 224.0.0.0/4 masquerade"
        ));
        // Applied for real, twice (a restart replaces it), in a namespace
        // of the test's own.
        let ns = format!("fkcni-{}", std::process::id());
        let ip = |args: &[&str]| {
            std::process::Command::new("ip")
                .args(args)
                .status()
                .expect("ip")
                .success()
        };
        assert!(ip(&["netns", "add", &ns]));
        let nft = proxy::nft::Nft {
            wrapper: ["ip", "netns", "exec", &ns].map(String::from).to_vec(),
            ..proxy::nft::Nft::default()
        };
        let first = nft.apply(&script).await.is_ok();
        let second = nft.apply(&script).await.is_ok();
        let listing = nft.list_table("ferrokube-kubelet-fk0").await;
        ip(&["netns", "del", &ns]);
        assert!(first && second);
        let listing = listing.expect("the table is there");
        assert_eq!(listing.matches("masquerade").count(), 1, "{listing}");
        assert!(
            listing.contains("table ip ferrokube-kubelet-fk0"),
            "{listing}"
        );
    }

    #[test]
    fn the_pod_ip_is_the_first_result_address_without_its_prefix() {
        let result = json!({"ips": [{"address": "10.88.0.7/16", "gateway": "10.88.0.1"}]});
        assert_eq!(first_ip(&result), Some("10.88.0.7".parse().expect("ip")));
        assert_eq!(first_ip(&json!({})), None);
    }
}
