//! `ferrokube`: one binary for the whole single-node cluster (`up`) and for
//! each component on its own (`apiserver`, ...).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "ferrokube",
    version,
    about = "A small, fast Kubernetes-style container orchestrator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole single-node cluster in this process.
    Up(UpArgs),
    /// Run the API server alone.
    Apiserver(ApiserverArgs),
    /// Run the controllers (ReplicaSet, Deployment, garbage collector,
    /// namespace, node lifecycle, taint eviction) against an API server.
    ControllerManager(ControllerManagerArgs),
    /// Run the node agent: register the node and run its pods on containerd.
    Kubelet(KubeletArgs),
    /// Manage node-local images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Run the scheduler against a cluster.
    Scheduler(SchedulerArgs),
    /// Register hollow nodes: Ready nodes whose pods run without containers.
    HollowNodes(HollowNodesArgs),
    /// Run the service proxy: program Services into nftables (or iptables) NAT.
    Proxy(ProxyArgs),
    /// Run the cluster DNS server (and register the kube-dns Service).
    Dns(DnsArgs),
    /// Run the ingress controller: HTTP routing by Ingress rules.
    Ingress(IngressArgs),
}

#[derive(Args, Clone)]
struct ProxyArgs {
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The Node this proxy runs on (defaults to the host name).
    #[arg(long)]
    hostname_override: Option<String>,
    #[command(flatten)]
    rules: ProxyRulesArgs,
    /// Remove every chain and jump of this prefix (iptables) and its
    /// nftables table, then exit.
    #[arg(long)]
    cleanup: bool,
}

#[derive(Args, Clone)]
struct ProxyRulesArgs {
    /// Prefix of the proxy's iptables chains (1-7 of A-Z, 0-9), so that
    /// several clusters on one host do not collide; it also names the
    /// nftables table (`ferrokube` for FKUBE, else `ferrokube-<prefix>`).
    #[arg(long, default_value = "FKUBE")]
    proxy_chain_prefix: String,
    /// nftables or iptables; nftables falls back to iptables (with a
    /// warning) when `nft` cannot run here.
    #[arg(long, default_value = "nftables")]
    proxy_mode: proxy::ProxyMode,
    /// The pod network (traffic from outside it to a ClusterIP is
    /// masqueraded).
    #[arg(long = "proxy-cluster-cidr", default_value = "10.42.0.0/16")]
    pod_network: String,
    /// The Service ClusterIP range.
    #[arg(long = "proxy-service-cidr", default_value = "10.43.0.0/16")]
    service_network: String,
}

impl ProxyRulesArgs {
    fn config(&self, node: String) -> proxy::ProxyConfig {
        let mut c = proxy::ProxyConfig::new(node);
        c.rules.prefix = self.proxy_chain_prefix.clone();
        c.mode = self.proxy_mode;
        c.rules.cluster_cidr = self.pod_network.clone();
        c.rules.service_cidr = self.service_network.clone();
        c
    }
}

#[derive(Args, Clone)]
struct DnsArgs {
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// UDP and TCP address to serve DNS on.
    #[arg(long, default_value = "0.0.0.0:53")]
    listen: SocketAddr,
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Upstream resolvers for other names (default: those of --resolv-conf).
    #[arg(long, value_delimiter = ',')]
    upstream: Vec<SocketAddr>,
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// The kube-dns Service's ClusterIP; without it no Service is registered.
    #[arg(long)]
    cluster_ip: Option<std::net::IpAddr>,
    /// The address the kube-dns endpoints point at (default: the node's).
    #[arg(long)]
    node_ip: Option<std::net::IpAddr>,
}

impl DnsArgs {
    fn config(&self) -> dns::Config {
        let mut c = dns::Config::new(self.listen);
        c.cluster_domain = self.cluster_domain.clone();
        c.upstreams = self.upstream.clone();
        c.resolv_conf = self.resolv_conf.clone();
        c.register = self
            .cluster_ip
            .map(|ip| (ip, self.node_ip.unwrap_or_else(node_ip)));
        c
    }
}

#[derive(Args, Clone)]
struct IngressArgs {
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Address to serve HTTP on.
    #[arg(long, default_value = "0.0.0.0:80")]
    listen: SocketAddr,
    /// The IngressClass this controller creates and serves.
    #[arg(long, default_value = "ferrokube")]
    class: String,
    /// Mark that IngressClass as the cluster default.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    default_class: bool,
    /// The address written to Ingress status (default: the node's).
    #[arg(long)]
    node_ip: Option<std::net::IpAddr>,
}

impl IngressArgs {
    fn config(&self) -> ingress::Config {
        let mut c = ingress::Config::new(self.listen);
        c.class_name = self.class.clone();
        c.default_class = self.default_class;
        c.node_ip = Some(self.node_ip.unwrap_or_else(node_ip));
        c
    }
}

/// The node's address, as the kubelet reports it.
fn node_ip() -> std::net::IpAddr {
    kubelet::host::outbound_ip().unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}

#[derive(Args)]
struct SchedulerArgs {
    /// Kubeconfig of the cluster (default: the usual inference).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// A KubeSchedulerConfiguration file (profiles, plugins, weights).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to serve `GET /explain/<namespace>/<pod>` on.
    #[arg(long)]
    explain_listen: Option<SocketAddr>,
}

#[derive(Args)]
struct HollowNodesArgs {
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How many nodes to register.
    #[arg(long, default_value_t = 1)]
    count: usize,
    #[arg(long, default_value = "4")]
    cpu: String,
    #[arg(long, default_value = "16Gi")]
    memory: String,
    #[arg(long, default_value = "110")]
    pods: String,
    /// Node labels, `k=v` (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Node taints, `key=value:Effect` (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    taints: Vec<String>,
    #[arg(long, default_value = "hollow-")]
    name_prefix: String,
}

#[derive(Args)]
struct ControllerManagerArgs {
    /// Kubeconfig of the cluster; without it, `$KUBECONFIG` or
    /// `~/.kube/config`.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Act only while holding the `kube-system/kube-controller-manager`
    /// Lease, so that several instances can run.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    #[command(flatten)]
    ipam: IpamArgs,
}

#[derive(Args, Clone)]
struct IpamArgs {
    /// The range Node pod CIDRs are carved from (node IPAM).
    #[arg(long, default_value = "10.42.0.0/16", value_parser = parse_node_cidr)]
    cluster_cidr: controller_manager::nodeipam::Cidr,
    /// The prefix length of each Node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
}

impl IpamArgs {
    fn options(&self) -> anyhow::Result<controller_manager::Options> {
        if self.node_cidr_mask_size < self.cluster_cidr.prefix || self.node_cidr_mask_size > 30 {
            anyhow::bail!(
                "--node-cidr-mask-size {} does not fit --cluster-cidr {}",
                self.node_cidr_mask_size,
                self.cluster_cidr
            );
        }
        Ok(controller_manager::Options {
            node_ipam: controller_manager::nodeipam::Config {
                cluster_cidr: self.cluster_cidr,
                node_mask: self.node_cidr_mask_size,
            },
        })
    }
}

fn parse_node_cidr(s: &str) -> Result<controller_manager::nodeipam::Cidr, String> {
    controller_manager::nodeipam::Cidr::parse(s)
        .ok_or_else(|| format!("{s:?} is not an IPv4 CIDR such as 10.42.0.0/16"))
}

#[derive(Args, Clone)]
struct KubeletArgs {
    /// The kubeconfig to reach the API server with.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The Node name (defaults to the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// An existing containerd socket; without it a private containerd runs.
    #[arg(long)]
    containerd_socket: Option<PathBuf>,
    /// The kubelet's state: private containerd, images/*.tar, pod logs.
    #[arg(long, default_value = "/var/lib/ferrokube/kubelet")]
    data_dir: PathBuf,
    /// The pod network (CNI bridge with host-local IPAM); without it the
    /// kubelet waits for its Node's `spec.podCIDR` from node IPAM.
    #[arg(long)]
    pod_cidr: Option<String>,
    /// The CNI bridge interface.
    #[arg(long, default_value = kubelet::cni::BRIDGE)]
    cni_bridge: String,
    /// The cluster DNS address(es) ClusterFirst pods resolve with.
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Vec<std::net::IpAddr>,
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The host resolvers Default pods get.
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    #[command(flatten)]
    api: KubeletApiArgs,
}

/// Where the kubelet API listens and what the Node advertises.
#[derive(Args, Clone)]
struct KubeletApiArgs {
    /// The kubelet API port (0 picks a free one; the Node advertises it).
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// The Node's InternalIP (default: the host's outbound address); the
    /// kubelet API then listens on it alone, else on every address.
    #[arg(long)]
    node_ip: Option<std::net::IpAddr>,
    /// Container log files rotate at this size (bytes).
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    container_log_max_size: u64,
    /// Log files kept per container, the current one included.
    #[arg(long, default_value_t = 5)]
    container_log_max_files: usize,
    /// A registry (`host[:port]`) to pull images from over plain HTTP
    /// (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Import an OCI image layout tarball into the node's containerd.
    Import {
        file: PathBuf,
        /// An existing containerd socket; without it the kubelet's private
        /// containerd under --data-dir is started for the import.
        #[arg(long)]
        containerd_socket: Option<PathBuf>,
        #[arg(long, default_value = "/var/lib/ferrokube/kubelet")]
        data_dir: PathBuf,
    },
    /// Build an OCI image layout tarball from the host's static busybox
    /// (Debian's busybox-static), so an offline node runs the example
    /// manifests: put it in the kubelet's DATA_DIR/images, or import it.
    Busybox {
        /// Where to write the tarball.
        #[arg(long)]
        out: PathBuf,
        /// The image name it is imported as.
        #[arg(long, default_value = "docker.io/library/busybox:latest")]
        name: String,
        /// A statically linked busybox binary.
        #[arg(long, default_value = "/bin/busybox")]
        busybox: PathBuf,
    },
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl KubeletArgs {
    fn config(&self) -> kubelet::KubeletConfig {
        let mut config = kubelet::KubeletConfig::new(
            self.kubeconfig.clone(),
            self.node_name.clone().unwrap_or_else(host_name),
            self.data_dir.clone(),
        );
        config.containerd_socket = self.containerd_socket.clone();
        config.pod_cidr = self.pod_cidr.clone();
        config.bridge = self.cni_bridge.clone();
        config.cluster_dns = self.cluster_dns.clone();
        config.cluster_domain = self.cluster_domain.clone();
        config.resolv_conf = self.resolv_conf.clone();
        config.node_ip = self.api.node_ip;
        let ip = self
            .api
            .node_ip
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        config.server_addr = SocketAddr::new(ip, self.api.kubelet_port);
        config.log_rotation = kubelet::logs::writer::Rotation {
            max_size: self.api.container_log_max_size,
            max_files: self.api.container_log_max_files,
        };
        config.insecure_registries = self.api.insecure_registries.clone();
        config
    }
}

#[derive(Args, Clone)]
struct ApiserverArgs {
    /// Address to serve the Kubernetes API on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Directory for the embedded store (and, with `up`, the kubeconfig).
    #[arg(long, default_value = "/var/lib/ferrokube")]
    data_dir: PathBuf,
    /// etcd endpoints (comma-separated); without them the embedded store is used.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// Seconds between compactions of old revisions.
    #[arg(long, default_value_t = 300)]
    compaction_interval_seconds: u64,
    /// The range Service cluster IPs are allocated from.
    #[arg(long, default_value = "10.43.0.0/16", value_parser = parse_cidr)]
    service_cluster_ip_range: apiserver::server::Cidr,
    /// The range node ports are allocated from, `FIRST-LAST`.
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    service_node_port_range: (u16, u16),
    /// Admission plugins to turn off (comma-separated), as kube-apiserver's
    /// flag: ServiceAccount, Priority, DefaultTolerationSeconds.
    #[arg(long, value_delimiter = ',', value_parser = parse_admission_plugin)]
    disable_admission_plugins: Vec<&'static str>,
}

fn parse_admission_plugin(s: &str) -> Result<&'static str, String> {
    apiserver::admission::known(s.trim()).map_err(|e| e.to_string())
}

fn parse_cidr(s: &str) -> Result<apiserver::server::Cidr, String> {
    apiserver::server::Cidr::parse(s)
        .ok_or_else(|| format!("{s:?} is not an IPv4 CIDR such as 10.43.0.0/16"))
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not a range such as 30000-32767"))?;
    let a: u16 = a.trim().parse().map_err(|_| format!("bad port {a:?}"))?;
    let b: u16 = b.trim().parse().map_err(|_| format!("bad port {b:?}"))?;
    if a == 0 || a > b {
        return Err(format!("{s:?} is not a valid port range"));
    }
    Ok((a, b))
}

#[derive(Args)]
struct UpArgs {
    #[command(flatten)]
    apiserver: ApiserverArgs,
    /// The Node name of the in-process kubelet (defaults to the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Run no kubelet (an API-only cluster).
    #[arg(long)]
    disable_kubelet: bool,
    /// The in-process kubelet's CNI bridge interface.
    #[arg(long, default_value = kubelet::cni::BRIDGE)]
    cni_bridge: String,
    #[command(flatten)]
    ipam: IpamArgs,
    /// Run no service proxy.
    #[arg(long)]
    disable_proxy: bool,
    /// Prefix of the proxy's iptables chains (and of its nftables table).
    #[arg(long, default_value = "FKUBE")]
    proxy_chain_prefix: String,
    /// The service proxy's backend: nftables or iptables.
    #[arg(long, default_value = "nftables")]
    proxy_mode: proxy::ProxyMode,
    /// Where the cluster DNS listens (UDP and TCP); pods reach it through
    /// the kube-dns Service, so any port works.
    #[arg(long, default_value = "0.0.0.0:10053")]
    dns_listen: SocketAddr,
    /// Where the ingress controller serves HTTP.
    #[arg(long, default_value = "0.0.0.0:80")]
    ingress_listen: SocketAddr,
    /// Run no cluster DNS.
    #[arg(long)]
    disable_dns: bool,
    /// The host's resolv.conf (k3s's `--resolv-conf`): the cluster DNS
    /// forwards other names to its nameservers, Default pods get it, and
    /// ClusterFirst pods its search domains.
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// Run no ingress controller.
    #[arg(long)]
    disable_ingress: bool,
    #[command(flatten)]
    kubelet_api: KubeletApiArgs,
}

impl ApiserverArgs {
    fn config(&self) -> apiserver::server::Config {
        apiserver::server::Config {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            etcd_servers: self.etcd_servers.clone(),
            compaction_interval: Duration::from_secs(self.compaction_interval_seconds.max(1)),
            api: apiserver::server::ApiOptions {
                service_range: self.service_cluster_ip_range,
                node_ports: self.service_node_port_range,
                advertise: self.listen,
                pki_dir: Some(self.data_dir.join("pki")),
                // Every name was checked when the flag was parsed.
                admission: apiserver::admission::Admission::disabling(
                    &self.disable_admission_plugins,
                )
                .unwrap_or_default(),
            },
        }
    }
}

/// The cluster DNS and the ingress controller of `up`. A port that cannot
/// be bound (80 without privileges, or taken) disables that add-on with an
/// error in the log instead of failing the whole cluster.
async fn spawn_addons(
    args: &UpArgs,
    kubeconfig: &std::path::Path,
    cluster_dns: std::net::IpAddr,
    stop_rx: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    // Quietly wait for the API port: the client logs refused connections.
    let listen = args.apiserver.listen;
    let api_up = move || async move {
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if !args.disable_dns {
        let c = client::connect(Some(kubeconfig)).await?;
        let mut config = dns::Config::new(args.dns_listen);
        config.register = Some((cluster_dns, node_ip()));
        config.resolv_conf = args.resolv_conf.clone();
        let stop = stopped(stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            api_up().await;
            if let Err(e) = dns::run(config, c, stop).await {
                tracing::error!(error = %e, "cluster DNS stopped");
            }
        }));
    }
    if !args.disable_ingress {
        let c = client::connect(Some(kubeconfig)).await?;
        let mut config = ingress::Config::new(args.ingress_listen);
        config.node_ip = Some(node_ip());
        let stop = stopped(stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            api_up().await;
            if let Err(e) = ingress::run(config, c, stop).await {
                tracing::error!(error = %e, "ingress controller stopped");
            }
        }));
    }
    Ok(tasks)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

// Requests allocate many small JSON values; mimalloc handles that churn
// with far less CPU than glibc's malloc (measured with `bench api`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // mimalloc asks for transparent huge pages: every first touch of a
    // 2 MiB region then clears all of it, and its purges hand them back, so
    // under load a quarter of the process's system time went to zeroing
    // pages (`bench api`, 4 interleaved runs: sys 1.13 → 0.85 s, creates/s
    // 5,196 → 5,880, peak RSS 222 → 200 MB). Not fatal if refused.
    let _ = nix::sys::prctl::set_thp_disable(true);
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => {
                let a = &args.apiserver;
                std::fs::create_dir_all(&a.data_dir)
                    .with_context(|| format!("cannot create data dir {}", a.data_dir.display()))?;
                let kubeconfig = a.data_dir.join("kubeconfig");
                let url = format!("http://{}", a.listen);
                std::fs::write(&kubeconfig, apiserver::server::kubeconfig(&url))
                    .with_context(|| format!("cannot write {}", kubeconfig.display()))?;
                eprintln!(
                    "ferrokube: kubectl --kubeconfig {} get nodes",
                    kubeconfig.display()
                );
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                // k3s's choice: the tenth address of the service range.
                let cluster_dns = std::net::IpAddr::V4(dns::kube_dns::cluster_dns_ip(
                    std::net::Ipv4Addr::from(a.service_cluster_ip_range.base),
                ));
                let kubelet = (!args.disable_kubelet).then(|| {
                    let config = KubeletArgs {
                        kubeconfig: kubeconfig.clone(),
                        node_name: args.node_name.clone(),
                        containerd_socket: None,
                        data_dir: a.data_dir.join("kubelet"),
                        pod_cidr: None,
                        cni_bridge: args.cni_bridge.clone(),
                        cluster_dns: if args.disable_dns {
                            Vec::new()
                        } else {
                            vec![cluster_dns]
                        },
                        cluster_domain: "cluster.local".into(),
                        resolv_conf: args.resolv_conf.clone(),
                        api: args.kubelet_api.clone(),
                    }
                    .config();
                    let mut stop_rx = stop_rx.clone();
                    tokio::spawn(async move {
                        let stopped = async move {
                            let _ = stop_rx.wait_for(|stop| *stop).await;
                        };
                        if let Err(e) = kubelet::run(config, stopped).await {
                            tracing::error!(error = %e, "kubelet failed");
                        }
                    })
                });
                // The proxy programs this host for the in-process node; a
                // node-less cluster has nothing to proxy.
                let proxy = (!args.disable_kubelet && !args.disable_proxy).then(|| {
                    let mut config =
                        proxy::ProxyConfig::new(args.node_name.clone().unwrap_or_else(host_name));
                    config.rules.prefix = args.proxy_chain_prefix.clone();
                    config.mode = args.proxy_mode;
                    config.rules.cluster_cidr = args.ipam.cluster_cidr.to_string();
                    config.rules.service_cidr = a.service_cluster_ip_range.to_string();
                    let kubeconfig = kubeconfig.clone();
                    let listen = a.listen;
                    let mut stop_rx = stop_rx.clone();
                    tokio::spawn(async move {
                        while tokio::net::TcpStream::connect(listen).await.is_err() {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        let stopped = async move {
                            let _ = stop_rx.wait_for(|stop| *stop).await;
                        };
                        let run = async {
                            let c = client::connect(Some(&kubeconfig)).await?;
                            proxy::run(c, config, stopped).await?;
                            anyhow::Ok(())
                        };
                        if let Err(e) = run.await {
                            tracing::error!(error = %e, "proxy failed");
                        }
                    })
                });
                let cm = client::connect(Some(&kubeconfig)).await?;
                let cm_options = args.ipam.options()?;
                let mut cm_stop = stop_rx.clone();
                let listen = a.listen;
                let controllers = tokio::spawn(async move {
                    // Quietly wait for the port first: the client logs
                    // every refused connection as an error.
                    while tokio::net::TcpStream::connect(listen).await.is_err() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    controller_manager::wait_until_serving(&cm).await;
                    controller_manager::run_with(cm, cm_options, async move {
                        let _ = cm_stop.wait_for(|stop| *stop).await;
                    })
                    .await;
                });
                let sched_kubeconfig = kubeconfig.clone();
                let mut sched_stop = stop_rx.clone();
                let scheduler = tokio::spawn(async move {
                    while tokio::net::TcpStream::connect(listen).await.is_err() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    // An ephemeral loopback port: `fkctl explain-placement`
                    // finds it through the scheduler's Lease.
                    let explain = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                    let res = scheduler::scheduler::run_component(
                        Some(&sched_kubeconfig),
                        None,
                        Some(explain),
                        true,
                        async move {
                            let _ = sched_stop.wait_for(|stop| *stop).await;
                        },
                    )
                    .await;
                    if let Err(e) = res {
                        tracing::error!(error = %e, "scheduler stopped");
                    }
                });
                let addons = spawn_addons(&args, &kubeconfig, cluster_dns, &stop_rx).await?;
                apiserver::server::run(a.config(), async move {
                    shutdown_signal().await;
                    let _ = stop_tx.send(true);
                })
                .await?;
                let _ = scheduler.await;
                if let Some(proxy) = proxy {
                    let _ = proxy.await;
                }
                if let Some(kubelet) = kubelet {
                    let _ = kubelet.await;
                }
                let _ = controllers.await;
                for task in addons {
                    let _ = task.await;
                }
            }
            Command::Dns(d) => {
                let c = client::connect(d.kubeconfig.as_deref()).await?;
                dns::run(d.config(), c, shutdown_signal()).await?;
            }
            Command::Ingress(i) => {
                let c = client::connect(i.kubeconfig.as_deref()).await?;
                ingress::run(i.config(), c, shutdown_signal()).await?;
            }
            Command::ControllerManager(a) => {
                let options = a.ipam.options()?;
                let c = client::connect(a.kubeconfig.as_deref()).await?;
                if a.leader_elect {
                    let config = controller_manager::leader::Config::new(
                        controller_manager::leader::default_identity(),
                    );
                    controller_manager::run_elected(c, config, options, shutdown_signal()).await;
                } else {
                    controller_manager::run_with(c, options, shutdown_signal()).await;
                }
            }
            Command::Proxy(p) => {
                let node = p.hostname_override.clone().unwrap_or_else(host_name);
                let config = p.rules.config(node);
                if p.cleanup {
                    config.validate()?;
                    proxy::dataplane::cleanup(&config.rules, &config.iptables, &config.nft).await?;
                    return Ok(());
                }
                let c = client::connect(p.kubeconfig.as_deref()).await?;
                proxy::run(c, config, shutdown_signal()).await?;
            }
            Command::Kubelet(k) => {
                kubelet::run(k.config(), shutdown_signal()).await?;
            }
            Command::Image(ImageCommand::Import {
                file,
                containerd_socket,
                data_dir,
            }) => {
                std::fs::create_dir_all(&data_dir)
                    .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
                let containerd = kubelet::Containerd::attach(
                    containerd_socket.as_deref(),
                    "containerd",
                    &data_dir,
                )
                .await?;
                let result = kubelet::image::import_file(&containerd.runtime, &file).await;
                containerd.close().await;
                for name in result? {
                    println!("imported {name}");
                }
            }
            Command::Image(ImageCommand::Busybox { out, name, busybox }) => {
                kubelet::busybox_image::write_busybox_image(&busybox, &name, &out).with_context(
                    || {
                        format!(
                            "cannot build {name} from {} into {}",
                            busybox.display(),
                            out.display()
                        )
                    },
                )?;
                println!("wrote {name} to {}", out.display());
            }
            Command::Scheduler(s) => {
                scheduler::scheduler::run_component(
                    s.kubeconfig.as_deref(),
                    s.config.as_deref(),
                    s.explain_listen,
                    false,
                    shutdown_signal(),
                )
                .await?;
            }
            Command::HollowNodes(h) => {
                let spec = scheduler::hollow::HollowSpec {
                    count: h.count,
                    cpu: h.cpu,
                    memory: h.memory,
                    pods: h.pods,
                    labels: h
                        .labels
                        .iter()
                        .filter(|l| !l.is_empty())
                        .map(|l| scheduler::hollow::parse_label(l))
                        .collect::<Result<_, _>>()?,
                    taints: h
                        .taints
                        .iter()
                        .filter(|t| !t.is_empty())
                        .map(|t| scheduler::hollow::parse_taint(t))
                        .collect::<Result<_, _>>()?,
                    name_prefix: h.name_prefix,
                };
                let client = client::connect(h.kubeconfig.as_deref()).await?;
                scheduler::hollow::run(client, spec, shutdown_signal()).await?;
            }
            Command::Apiserver(a) => {
                std::fs::create_dir_all(&a.data_dir)
                    .with_context(|| format!("cannot create data dir {}", a.data_dir.display()))?;
                apiserver::server::run(a.config(), shutdown_signal()).await?;
            }
        }
        Ok(())
    })
}
