//! The two backends behind one interface: the proxy loop hands every
//! backend the same [`ServicePort`] model and the backend renders and
//! programs it (`--proxy-mode iptables|nftables`, as kube-proxy's
//! `--proxy-mode`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::iptables::Iptables;
use crate::model::ServicePort;
use crate::nft::Nft;
use crate::nftproxier::NftProxier;
use crate::nftrules;
use crate::proxier::Proxier;
use crate::rules::{self, RulesConfig};
use crate::tool::ToolError;

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// `nft` or an iptables tool failed (the error names the command).
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("unknown proxy mode {0:?} (iptables or nftables)")]
    Mode(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    Iptables,
    Nftables,
}

impl FromStr for ProxyMode {
    type Err = DataplaneError;
    fn from_str(s: &str) -> Result<ProxyMode, DataplaneError> {
        match s {
            "iptables" => Ok(ProxyMode::Iptables),
            "nftables" => Ok(ProxyMode::Nftables),
            other => Err(DataplaneError::Mode(other.into())),
        }
    }
}

impl fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyMode::Iptables => "iptables",
            ProxyMode::Nftables => "nftables",
        })
    }
}

/// What one sync wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    pub rules: usize,
    pub chains: usize,
    pub elements: usize,
}

/// A backend with its memory of what is programmed.
#[derive(Debug)]
pub enum Dataplane {
    Iptables {
        proxier: Proxier,
        iptables: Iptables,
    },
    Nftables {
        proxier: NftProxier,
        nft: Nft,
    },
}

impl Dataplane {
    pub fn new(mode: ProxyMode, cfg: RulesConfig, iptables: Iptables, nft: Nft) -> Dataplane {
        match mode {
            ProxyMode::Iptables => Dataplane::Iptables {
                proxier: Proxier::new(cfg),
                iptables,
            },
            ProxyMode::Nftables => Dataplane::Nftables {
                proxier: NftProxier::new(cfg),
                nft,
            },
        }
    }

    pub fn mode(&self) -> ProxyMode {
        match self {
            Dataplane::Iptables { .. } => ProxyMode::Iptables,
            Dataplane::Nftables { .. } => ProxyMode::Nftables,
        }
    }

    /// Programs every Service from scratch, removing whatever of ours a
    /// previous run left behind.
    pub async fn full_sync(
        &mut self,
        all: BTreeMap<String, Vec<ServicePort>>,
    ) -> Result<Written, DataplaneError> {
        match self {
            Dataplane::Iptables { proxier, iptables } => {
                let cfg = proxier.config().clone();
                let all = render_all(all, |p| rules::port_rules(&cfg, p));
                let nat = iptables.chains("nat", &cfg.prefix).await?;
                let filter = iptables.chains("filter", &cfg.prefix).await?;
                let p = proxier.full_sync(all, &nat, &filter);
                iptables.restore(&p.text).await?;
                iptables.ensure_hooks(&cfg).await?;
                Ok(Written {
                    rules: p.rules,
                    chains: p.chains,
                    elements: 0,
                })
            }
            Dataplane::Nftables { proxier, nft } => {
                let cfg = proxier.config();
                let all = render_all(all, |p| nftrules::port_rules(cfg, p));
                let s = proxier.full_sync(all);
                nft.apply(&s.text).await?;
                Ok(Written {
                    rules: s.rules,
                    chains: s.chains,
                    elements: s.elements,
                })
            }
        }
    }

    /// Programs changed Services (`None`: deleted).
    pub async fn update(
        &mut self,
        changed: Vec<(String, Option<Vec<ServicePort>>)>,
    ) -> Result<Written, DataplaneError> {
        match self {
            Dataplane::Iptables { proxier, iptables } => {
                let cfg = proxier.config();
                let changed = render_changed(changed, |p| rules::port_rules(cfg, p));
                let p = proxier.update(changed);
                iptables.restore(&p.text).await?;
                Ok(Written {
                    rules: p.rules,
                    chains: p.chains,
                    elements: 0,
                })
            }
            Dataplane::Nftables { proxier, nft } => {
                let cfg = proxier.config();
                let changed = render_changed(changed, |p| nftrules::port_rules(cfg, p));
                let s = proxier.update(changed);
                nft.apply(&s.text).await?;
                Ok(Written {
                    rules: s.rules,
                    chains: s.chains,
                    elements: s.elements,
                })
            }
        }
    }

    /// Idle housekeeping: iptables deletes the chains earlier updates left
    /// flushed; nftables deletes them in the update itself.
    pub async fn collect(&mut self) -> Result<(), DataplaneError> {
        if let Dataplane::Iptables { proxier, iptables } = self {
            let p = proxier.collect();
            iptables.restore(&p.text).await?;
        }
        Ok(())
    }
}

/// Removes every trace of a proxy with this configuration from both
/// backends (`ferrokube proxy --cleanup`): a node switching modes keeps
/// nothing of the old one. nftables is skipped when `nft` is missing.
/// A missing tool means that backend cannot have left anything.
pub async fn cleanup(
    cfg: &RulesConfig,
    iptables: &Iptables,
    nft: &Nft,
) -> Result<(), DataplaneError> {
    cleanup_iptables(cfg, iptables).await?;
    cleanup_nftables(cfg, nft).await
}

async fn cleanup_iptables(cfg: &RulesConfig, iptables: &Iptables) -> Result<(), DataplaneError> {
    match iptables.cleanup(cfg).await {
        Ok(()) | Err(ToolError::Spawn { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn cleanup_nftables(cfg: &RulesConfig, nft: &Nft) -> Result<(), DataplaneError> {
    if nft.available().await.is_ok() {
        nft.cleanup(&nftrules::table_name(cfg)).await?;
    }
    Ok(())
}

/// Removes what the other backend left (a node switched modes), as
/// kube-proxy cleans up the other proxiers' leftovers at start.
pub async fn cleanup_other(
    mode: ProxyMode,
    cfg: &RulesConfig,
    iptables: &Iptables,
    nft: &Nft,
) -> Result<(), DataplaneError> {
    match mode {
        ProxyMode::Nftables => cleanup_iptables(cfg, iptables).await,
        ProxyMode::Iptables => cleanup_nftables(cfg, nft).await,
    }
}

/// The mode to run: nftables falls back to iptables, with a warning, when
/// `nft` cannot be run here.
pub async fn effective_mode(wanted: ProxyMode, nft: &Nft) -> ProxyMode {
    if wanted == ProxyMode::Nftables
        && let Err(e) = nft.available().await
    {
        tracing::warn!(error = %e, "nftables is not usable here; falling back to the iptables proxy mode");
        return ProxyMode::Iptables;
    }
    wanted
}

/// Every Service's ports rendered by one backend's `port_rules`.
fn render_all<R>(
    all: BTreeMap<String, Vec<ServicePort>>,
    render: impl Fn(&ServicePort) -> R,
) -> BTreeMap<String, Vec<R>> {
    all.into_iter()
        .map(|(k, ports)| (k, ports.iter().map(&render).collect()))
        .collect()
}

/// The changed Services' ports rendered likewise (`None`: deleted).
fn render_changed<R>(
    changed: Vec<(String, Option<Vec<ServicePort>>)>,
    render: impl Fn(&ServicePort) -> R,
) -> Vec<(String, Option<Vec<R>>)> {
    changed
        .into_iter()
        .map(|(k, ports)| (k, ports.map(|ps| ps.iter().map(&render).collect())))
        .collect()
}
