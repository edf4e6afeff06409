//! The ferrokube kubelet: the node agent. It registers the Node and keeps
//! its Lease and status fresh, runs (or connects to) containerd, imports
//! node-local images, and runs the pods bound to this node, reporting their
//! status back through the API server — the only place it meets the rest
//! of the cluster.

pub mod atomic_writer;
pub mod busybox_image;
pub mod cgroups;
pub mod cni;
pub mod containers;
pub mod credentials;
pub mod daemon;
pub mod dns;
pub mod env;
pub mod events;
pub mod hooks;
pub mod host;
pub mod image;
pub mod logs;
pub mod netns;
pub mod node;
mod pods;
pub mod pressure;
pub mod prober;
pub mod projection;
pub mod pull;
pub mod quantity;
pub mod reference;
pub mod runtime;
pub mod security;
pub mod server;
pub mod spec;
pub mod status;
pub mod testing;
pub mod tokens;
pub mod volumes;
pub mod worker;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use pods::{cleanup_orphans, run_pods};

/// How a kubelet is started (`ferrokube kubelet …`).
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub kubeconfig: PathBuf,
    pub node_name: String,
    /// An existing containerd; without it a private one is started.
    pub containerd_socket: Option<PathBuf>,
    pub data_dir: PathBuf,
    /// The containerd binary for the private daemon.
    pub containerd_binary: String,
    /// Where the CNI plugins live; `None` disables CNI (pods then get a
    /// bare network namespace with only a down `lo`).
    pub cni_bin_dir: Option<PathBuf>,
    /// The pod network; `None` waits for the Node's `spec.podCIDR` (node
    /// IPAM in the controller-manager assigns it), as the kubelet does.
    pub pod_cidr: Option<String>,
    /// The CNI bridge interface (host-global: tests pick their own).
    pub bridge: String,
    /// `--cluster-dns`: written as the nameservers of ClusterFirst pods.
    pub cluster_dns: Vec<std::net::IpAddr>,
    /// `--cluster-domain`.
    pub cluster_domain: String,
    /// `--resolv-conf`: the host resolvers Default pods get.
    pub resolv_conf: PathBuf,
    /// Container log rotation (size, files kept).
    pub log_rotation: logs::writer::Rotation,
    /// Where the kubelet API listens (`--kubelet-address`,
    /// `--kubelet-port`; port 0 picks a free one).
    pub server_addr: std::net::SocketAddr,
    /// The node's InternalIP (`--node-ip`); by default the host's
    /// outbound address.
    pub node_ip: Option<std::net::IpAddr>,
    /// `--insecure-registry`: registries (`host[:port]`) pulled from over
    /// plain HTTP.
    pub insecure_registries: Vec<String>,
}

impl KubeletConfig {
    pub fn new(kubeconfig: PathBuf, node_name: String, data_dir: PathBuf) -> KubeletConfig {
        KubeletConfig {
            kubeconfig,
            node_name,
            containerd_socket: None,
            data_dir,
            containerd_binary: "containerd".into(),
            cni_bin_dir: default_cni_dir(),
            pod_cidr: None,
            bridge: cni::BRIDGE.into(),
            cluster_dns: Vec::new(),
            cluster_domain: "cluster.local".into(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            log_rotation: logs::writer::Rotation::default(),
            // Loopback and a free port unless told otherwise (the binary's
            // flags default to Kubernetes' 0.0.0.0:10250).
            server_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            node_ip: None,
            insecure_registries: Vec::new(),
        }
    }
}

/// The first CNI plugin directory that has `bridge` (Debian puts them in
/// `/usr/lib/cni`, upstream in `/opt/cni/bin`).
pub fn default_cni_dir() -> Option<PathBuf> {
    ["/opt/cni/bin", "/usr/lib/cni"]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("bridge").exists())
}

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("cannot create {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Daemon(#[from] daemon::DaemonError),
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    #[error(transparent)]
    Client(#[from] client::ClientError),
    #[error(transparent)]
    Host(#[from] host::HostError),
    #[error(transparent)]
    Node(#[from] node::NodeError),
    #[error(transparent)]
    Image(#[from] image::ImageError),
    #[error(transparent)]
    Server(#[from] server::ServerError),
}

/// containerd, either the one given or our private one.
pub struct Containerd {
    pub runtime: runtime::Runtime,
    daemon: Option<daemon::Daemon>,
}

impl Containerd {
    /// Connects to `socket`, or starts a private daemon under `data_dir`.
    pub async fn open(
        socket: Option<&Path>,
        binary: &str,
        data_dir: &Path,
    ) -> Result<Containerd, KubeletError> {
        match socket {
            Some(socket) => Ok(Containerd {
                runtime: runtime::Runtime::connect(socket, None).await?,
                daemon: None,
            }),
            None => {
                let daemon = daemon::Daemon::start(binary, data_dir).await?;
                let runtime = runtime::Runtime::connect(
                    &daemon.paths.socket(),
                    Some(daemon.paths.runc_root()),
                )
                .await;
                match runtime {
                    Ok(runtime) => Ok(Containerd {
                        runtime,
                        daemon: Some(daemon),
                    }),
                    Err(e) => {
                        daemon.stop().await;
                        Err(e.into())
                    }
                }
            }
        }
    }

    /// As [`Containerd::open`], but first tries a private daemon that a
    /// running kubelet already has under `data_dir` (for `image import`).
    pub async fn attach(
        socket: Option<&Path>,
        binary: &str,
        data_dir: &Path,
    ) -> Result<Containerd, KubeletError> {
        if socket.is_none() {
            let paths = daemon::DaemonPaths::new(data_dir);
            if tokio::net::UnixStream::connect(paths.socket())
                .await
                .is_ok()
            {
                return Ok(Containerd {
                    runtime: runtime::Runtime::connect(&paths.socket(), Some(paths.runc_root()))
                        .await?,
                    daemon: None,
                });
            }
        }
        Containerd::open(socket, binary, data_dir).await
    }

    /// Stops the private daemon, if any; containers keep running.
    pub async fn close(self) {
        if let Some(daemon) = self.daemon {
            daemon.stop().await;
        }
    }
}

/// Runs the kubelet until `shutdown` resolves. Pod containers outlive the
/// kubelet (the next one re-adopts them).
pub async fn run(
    config: KubeletConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), KubeletError> {
    for dir in [config.data_dir.clone(), config.data_dir.join("images")] {
        std::fs::create_dir_all(&dir).map_err(|source| KubeletError::DataDir {
            path: dir.clone(),
            source,
        })?;
    }
    let containerd = Containerd::open(
        config.containerd_socket.as_deref(),
        &config.containerd_binary,
        &config.data_dir,
    )
    .await?;
    let result = run_with(&config, &containerd.runtime, shutdown).await;
    containerd.close().await;
    result
}

async fn run_with(
    config: &KubeletConfig,
    rt: &runtime::Runtime,
    shutdown: impl Future<Output = ()>,
) -> Result<(), KubeletError> {
    let imported = image::import_dir(rt, &config.data_dir.join("images")).await;
    if !imported.is_empty() {
        tracing::info!(images = ?imported, "imported node-local images");
    }
    let client = client::connect(Some(&config.kubeconfig)).await?;
    let mut facts = host::HostFacts::read(&config.data_dir)?;
    if let Some(ip) = config.node_ip {
        facts.internal_ip = Some(ip);
    }
    let version = rt.version().await?;
    let (listener, api_addr) = server::bind(config.server_addr).await?;
    tracing::info!(addr = %api_addr, "kubelet API listening");
    let identity = node::NodeIdentity {
        kubelet_port: api_addr.port(),
        name: config.node_name.clone(),
        runtime_version: format!(
            "containerd://{}",
            version.split('~').next().unwrap_or(&version)
        ),
        facts,
        data_dir: config.data_dir.clone(),
    };
    // Under `ferrokube up` the API server may still be starting.
    let mut delay = std::time::Duration::from_millis(200);
    let node = loop {
        match node::register(&client, &identity).await {
            Ok(node) => break node,
            Err(e) => {
                tracing::warn!(error = %e, "node registration failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    };
    tracing::info!(node = %config.node_name, "node registered");
    // Without CNI pods get a bare namespace: no pod network to wait for.
    let pod_cidr = match (&config.pod_cidr, &config.cni_bin_dir) {
        (Some(c), _) => c.clone(),
        (None, None) => String::new(),
        (None, Some(_)) => node::wait_for_pod_cidr(&client, &config.node_name).await,
    };
    tracing::info!(node = %config.node_name, %pod_cidr, bridge = %config.bridge, "pod network");
    let mut cni = config.cni_bin_dir.clone().map(|bin_dir| cni::Cni {
        bin_dir,
        pod_cidr,
        bridge: config.bridge.clone(),
        ipam_dir: config.data_dir.join("cni").join("networks"),
        node_masquerade: false,
    });
    if let Some(cni) = &mut cni {
        cni.install_masquerade().await;
    }
    let heartbeat = tokio::spawn(node::heartbeat(client.clone(), identity.clone(), node));
    let ctx = Arc::new(worker::NodeContext {
        client,
        runtime: rt.clone(),
        node_name: config.node_name.clone(),
        host_ip: identity.host_ip(),
        data_dir: config.data_dir.clone(),
        cni,
        cgroup_parent: "/ferrokube".into(),
        cluster_dns: dns::ClusterDns {
            servers: config.cluster_dns.clone(),
            domain: config.cluster_domain.clone(),
        },
        // Read once, as the kubelet does; a missing file means no host
        // resolvers (Default pods then get an empty resolv.conf).
        host_resolv: dns::ResolvConf::parse(
            &std::fs::read_to_string(&config.resolv_conf).unwrap_or_default(),
        ),
        logs: Arc::new(logs::copier::Registry::new(
            config.data_dir.join("io"),
            config.log_rotation,
        )),
        pulls: worker::Pulls {
            insecure: config.insecure_registries.clone(),
            ..worker::Pulls::default()
        },
    });
    match rt.list_containers(&[]).await {
        Ok(existing) => ctx
            .logs
            .sweep(&existing.into_iter().map(|c| c.id).collect()),
        Err(e) => tracing::warn!(error = %e, "cannot list containers to sweep FIFOs"),
    }
    let api = server::spawn(listener, ctx.clone());
    tokio::select! {
        () = run_pods(ctx) => {}
        () = shutdown => {}
    }
    api.abort();
    heartbeat.abort();
    Ok(())
}
