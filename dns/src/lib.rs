//! Cluster DNS: serves `<svc>.<ns>.svc.<zone>` and friends from watch-fed
//! caches of Services and EndpointSlices, and forwards every other name to
//! the host's resolvers.

pub mod feed;
pub mod forward;
pub mod index;
pub mod kube_dns;
pub mod resolve;
pub mod server;
pub mod udp;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use kube::Client;

pub use resolve::Zone;
pub use server::{ServeError, Sockets};

/// How the DNS server runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// UDP and TCP address to serve on.
    pub listen: SocketAddr,
    /// `cluster.local`.
    pub cluster_domain: String,
    /// Seconds cluster records may be cached (CoreDNS's default: 5).
    pub ttl: u32,
    /// Upstream resolvers; empty means those of `resolv_conf`.
    pub upstreams: Vec<SocketAddr>,
    pub resolv_conf: PathBuf,
    /// Register the `kube-dns` Service with this ClusterIP, and its
    /// endpoints at `node_ip` (when it is an address pods can reach).
    pub register: Option<(IpAddr, IpAddr)>,
}

impl Config {
    pub fn new(listen: SocketAddr) -> Config {
        Config {
            listen,
            cluster_domain: "cluster.local".into(),
            ttl: 5,
            upstreams: Vec::new(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            register: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Forward(#[from] forward::ForwardError),
    #[error(transparent)]
    Register(#[from] kube_dns::RegisterError),
}

/// Binds, then serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    client: Client,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let sockets = Sockets::bind(config.listen).await?;
    run_on(sockets, config, client, shutdown).await
}

/// Serves on already bound sockets (tests bind port 0 first).
pub async fn run_on(
    sockets: Sockets,
    config: Config,
    client: Client,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let local = sockets.local_addr();
    let upstreams = if config.upstreams.is_empty() {
        match forward::Upstreams::from_resolv_conf(&config.resolv_conf, local) {
            Ok(u) => u,
            Err(e) => {
                // Cluster names still work; other names get REFUSED.
                tracing::warn!(error = %e, "no upstream resolvers");
                forward::Upstreams {
                    servers: Vec::new(),
                    timeout: std::time::Duration::from_secs(2),
                }
            }
        }
    } else {
        forward::Upstreams {
            servers: config.upstreams.clone(),
            timeout: std::time::Duration::from_secs(2),
        }
    };
    tracing::info!(addr = ?local, domain = %config.cluster_domain,
                   upstreams = ?upstreams.servers, "cluster DNS serving");
    let index: feed::Shared = Arc::new(ArcSwap::from_pointee(index::Index::default()));
    let (generation, _) = tokio::sync::watch::channel(0);
    let feed = feed::run(client.clone(), index.clone(), generation);
    let handler = server::Handler {
        index,
        zone: Zone::new(&config.cluster_domain, config.ttl),
        upstreams,
    };
    if let (Some((cluster_ip, node_ip)), Some(local)) = (config.register, local) {
        let client = client.clone();
        tokio::spawn(async move {
            // The API server may still be starting (`ferrokube up`): retry.
            let mut delay = std::time::Duration::from_millis(100);
            loop {
                match kube_dns::register(&client, cluster_ip, node_ip, local.port()).await {
                    Ok(()) => return,
                    Err(e) => tracing::info!(error = %e, "kube-dns not registered yet"),
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(10));
            }
        });
    }
    tokio::select! {
        _ = feed => {}
        _ = server::serve(sockets, handler, shutdown) => {}
    }
    Ok(())
}
