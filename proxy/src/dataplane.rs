//! The two backends behind one interface: the proxy loop hands every
//! backend the same [`ServicePort`] model and the backend renders and
//! programs it (`--proxy-mode iptables|nftables`, as kube-proxy's
//! `--proxy-mode`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::iptables::Iptables;
use crate::model::ServicePort;
use crate::netlink::{self, NetlinkError, Socket};
use crate::nft::Nft;
use crate::nftcompile;
use crate::nftlayout::Tables;
use crate::nftproxier::{NftProxier, Script};
use crate::nftrules;
use crate::proxier::Proxier;
use crate::rules::{self, RulesConfig};
use crate::tool::ToolError;

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// `nft` or an iptables tool failed (the error names the command).
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// The kernel refused an incremental nftables update.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("the netlink task died: {0}")]
    Task(String),
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
    /// The fixed chains a full nftables sync created besides the
    /// Services' (0 otherwise).
    pub fixed_chains: usize,
    /// Applied over the proxy's netlink socket rather than by `nft`.
    pub netlink: bool,
}

/// The nftables backend's socket for incremental updates, opened at the
/// first one.
#[derive(Debug, Default)]
pub enum NetlinkState {
    #[default]
    Unopened,
    Open(Arc<Socket>),
    /// Cannot be opened (or `nft` runs under a wrapper alone): updates
    /// run `nft -f`.
    Unavailable,
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
        netlink: NetlinkState,
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
                netlink: NetlinkState::default(),
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
                    netlink: false,
                    ..Written::default()
                })
            }
            Dataplane::Nftables { proxier, nft, .. } => {
                let cfg = proxier.config();
                let all = render_all(all, |p| nftrules::port_rules(cfg, p));
                // The kernel's tables, for shard tables no layout of ours
                // creates any more; without a listing the sync still
                // replaces every table of the current layout.
                let existing = nft.list_tables().await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot list the nftables tables");
                    Vec::new()
                });
                let s = proxier.full_sync(all, &existing);
                nft.apply(&s.text).await?;
                Ok(Written {
                    rules: s.rules,
                    chains: s.chains,
                    elements: s.elements,
                    fixed_chains: s.fixed_chains,
                    netlink: false,
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
                    netlink: false,
                    ..Written::default()
                })
            }
            Dataplane::Nftables {
                proxier,
                nft,
                netlink,
            } => {
                let cfg = proxier.config();
                let changed = render_changed(changed, |p| nftrules::port_rules(cfg, p));
                let s = proxier.update(changed);
                let over_netlink = apply_update(&s, nft, netlink).await?;
                Ok(Written {
                    rules: s.rules,
                    chains: s.chains,
                    elements: s.elements,
                    netlink: over_netlink,
                    ..Written::default()
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

/// Applies an incremental nftables update over the netlink socket when it
/// can (answers true), else through `nft -f`: when the socket cannot be
/// opened, when a rule is of a form the compiler does not know, or when
/// the batch is too large for one send. Shard tables it populates first
/// are created by `nft` (rare: a shard's first Service).
async fn apply_update(
    s: &Script,
    nft: &Nft,
    state: &mut NetlinkState,
) -> Result<bool, DataplaneError> {
    if s.is_empty() {
        return Ok(false);
    }
    nft.apply(&s.prepare).await?;
    if let NetlinkState::Unopened = state {
        *state = match nft.netlink_netns() {
            None => NetlinkState::Unavailable,
            Some(netns) => match Socket::open(netns) {
                Ok(socket) => NetlinkState::Open(Arc::new(socket)),
                Err(e) => {
                    tracing::warn!(error = %e, "no nf_tables netlink socket; updates run nft");
                    NetlinkState::Unavailable
                }
            },
        };
    }
    let NetlinkState::Open(socket) = state else {
        nft.apply(&s.text).await?;
        return Ok(false);
    };
    let batch = match nftcompile::compile(s.ops.iter().map(|(t, op)| (t.as_str(), op))) {
        Ok(b) if b.size() <= netlink::MAX_BATCH => b,
        Ok(_) => {
            nft.apply(&s.text).await?;
            return Ok(false);
        }
        Err(e) => {
            tracing::debug!(error = %e, "update runs nft");
            nft.apply(&s.text).await?;
            return Ok(false);
        }
    };
    let socket = Arc::clone(socket);
    tokio::task::spawn_blocking(move || socket.apply(&batch))
        .await
        .map_err(|e| DataplaneError::Task(e.to_string()))??;
    Ok(true)
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

/// Every table of ours: those the kernel lists (a shard of another
/// layout too) and every name of the current layout.
async fn cleanup_nftables(cfg: &RulesConfig, nft: &Nft) -> Result<(), DataplaneError> {
    let Ok(listed) = nft.list_tables().await else {
        // nft cannot run here: nothing of ours can be in nftables.
        return Ok(());
    };
    let ours = Tables::new(cfg);
    let mut tables: Vec<String> = listed.into_iter().filter(|t| ours.is_ours(t)).collect();
    for t in std::iter::once(ours.common()).chain(ours.shards().iter().map(String::as_str)) {
        if !tables.iter().any(|l| l == t) {
            tables.push(t.to_string());
        }
    }
    nft.cleanup(&tables).await?;
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
