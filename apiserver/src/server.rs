//! Assembles and runs the API server: storage backend, watch cache, one
//! store per kind, the HTTP routes, and the namespaces that exist at start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use axum::serve::ListenerExt;
use serde_json::json;
use tokio::net::TcpListener;
use tracing::info;

use crate::cache::Cache;
use crate::http::{Api, AppState};
use crate::kinds::Kinds;
use crate::registry::hooks::WriteHooks;
use crate::registry::rest::WriteOptions;
pub use crate::registry::service_alloc::Cidr;
use crate::registry::service_alloc::ServiceAllocator;
use crate::registry::store::{Shared, UnknownFieldCheck};
use crate::serviceaccount::TokenSigner;
use crate::storage::embedded::EmbeddedStore;
use crate::storage::etcd::EtcdStore;
use crate::storage::{Storage, StorageError};

/// The service account signing key's file name in `ApiOptions::pki_dir`.
pub const SERVICE_ACCOUNT_KEY: &str = "sa.key";

/// The namespaces Kubernetes creates at start.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where the embedded store keeps its file (unused with etcd).
    pub data_dir: PathBuf,
    /// etcd endpoints; empty selects the embedded store.
    pub etcd_servers: Vec<String>,
    /// How often old revisions are compacted (`--etcd-compaction-interval`).
    pub compaction_interval: Duration,
    pub api: ApiOptions,
}

/// What the API itself needs to know about the cluster.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// `--service-cluster-ip-range`.
    pub service_range: Cidr,
    /// `--service-node-port-range`.
    pub node_ports: (u16, u16),
    /// Where the `kubernetes` Service's endpoints point.
    pub advertise: SocketAddr,
    /// Where the service account signing key is kept (`sa.key`); `None`
    /// keeps a fresh key in memory only.
    pub pki_dir: Option<PathBuf>,
    /// The admission plugins that run (`--disable-admission-plugins`).
    pub admission: crate::admission::Admission,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            service_range: Cidr {
                base: u32::from(std::net::Ipv4Addr::new(10, 43, 0, 0)),
                bits: 16,
            },
            node_ports: (30000, 32767),
            advertise: SocketAddr::from(([127, 0, 0, 1], 6443)),
            pki_dir: None,
            admission: crate::admission::Admission::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bootstrap namespace {name}: {message}")]
    Bootstrap { name: String, message: String },
    #[error(transparent)]
    ServiceAccountKey(#[from] crate::serviceaccount::TokenError),
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Opens the configured storage backend.
pub async fn open_storage(config: &Config) -> Result<Arc<dyn Storage>, ServerError> {
    if config.etcd_servers.is_empty() {
        let path = config.data_dir.join("db");
        Ok(Arc::new(EmbeddedStore::open(&path)?))
    } else {
        Ok(Arc::new(EtcdStore::connect(&config.etcd_servers).await?))
    }
}

/// Builds the whole API (caches loaded, system namespaces present) over a
/// storage backend.
pub async fn build(storage: Arc<dyn Storage>, options: &ApiOptions) -> Result<Router, ServerError> {
    let mut cache = Cache::new();
    let kinds = Kinds::register(&mut cache, options.admission);
    let namespaces = kinds
        .namespaces
        .clone()
        .ok_or_else(|| ServerError::Bootstrap {
            name: "namespaces".into(),
            message: "namespaces are not served".into(),
        })?;
    let cache = Arc::new(cache);
    cache.start(storage.clone()).await?;
    let unknown_fields: UnknownFieldCheck =
        Arc::new(|(group, version, kind), v: &serde_json::Value| {
            crate::openapi::validate::unknown_fields(group, version, kind, v)
        });
    let allocator: Arc<dyn WriteHooks> = Arc::new(ServiceAllocator::new(
        storage.clone(),
        options.service_range,
        options.node_ports,
    ));
    let hooks = HashMap::from([(("", "v1", "services"), allocator)]);
    let shared = Arc::new(Shared {
        storage,
        cache,
        namespaces,
        unknown_fields,
    });
    let tokens = match &options.pki_dir {
        Some(dir) => TokenSigner::load_or_create(&dir.join(SERVICE_ACCOUNT_KEY))?,
        None => TokenSigner::ephemeral()?,
    };
    let api: AppState = Arc::new(Api {
        registries: kinds.build(shared, &hooks),
        tokens: Arc::new(tokens),
    });
    bootstrap(&api, options).await?;
    Ok(routes(api))
}

async fn bootstrap(api: &Api, options: &ApiOptions) -> Result<(), ServerError> {
    let Some(ns) = api.registries.get(&("", "v1", "namespaces")) else {
        return Ok(());
    };
    let opts = WriteOptions {
        field_manager: "kube-apiserver".into(),
        ..WriteOptions::default()
    };
    for name in SYSTEM_NAMESPACES {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match ns.create(None, body, &opts).await {
            Ok(_) => info!(namespace = name, "created system namespace"),
            Err(e) if e.code == 409 => {}
            Err(e) => {
                return Err(ServerError::Bootstrap {
                    name: name.to_string(),
                    message: e.message,
                });
            }
        }
    }
    bootstrap_kubernetes_service(api, options, &opts).await
}

/// The `kubernetes` Service in `default`, on the first IP of the service
/// range, with Endpoints pointing at this API server.
async fn bootstrap_kubernetes_service(
    api: &Api,
    options: &ApiOptions,
    opts: &WriteOptions,
) -> Result<(), ServerError> {
    let port = options.advertise.port();
    let ip = options.advertise.ip().to_string();
    let objects = [
        (
            ("", "v1", "services"),
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": options.service_range.first().to_string(), "type": "ClusterIP",
                         "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
            }),
        ),
        (
            ("", "v1", "endpoints"),
            json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
            }),
        ),
    ];
    let ip_addr = options.advertise.ip();
    for (key, body) in objects {
        // Endpoints may not point at loopback (Kubernetes validation); a
        // server listening only there has no address pods could use.
        if key.2 == "endpoints" && (ip_addr.is_loopback() || ip_addr.is_unspecified()) {
            continue;
        }
        let Some(reg) = api.registries.get(&key) else {
            continue;
        };
        match reg.create(Some("default"), body, opts).await {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => {
                return Err(ServerError::Bootstrap {
                    name: format!("{}/kubernetes", key.2),
                    message: e.message,
                });
            }
        }
    }
    Ok(())
}

fn routes(api: AppState) -> Router {
    let health = || async { "ok" };
    crate::http::router(api)
        .merge(crate::discovery_routes::router())
        .merge(crate::openapi::router())
        .route("/healthz", axum::routing::get(health))
        .route("/livez", axum::routing::get(health))
        .route("/readyz", axum::routing::get(health))
        .route("/healthz/{check}", axum::routing::get(health))
        .route("/livez/{check}", axum::routing::get(health))
        .route("/readyz/{check}", axum::routing::get(health))
        .fallback(|uri: http::Uri| async move {
            crate::error::ApiError::path_not_found(uri.path()).into_response()
        })
}

/// Runs the API server until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: config.listen,
                source,
            })?;
    let storage = open_storage(&config).await?;
    crate::storage::spawn_compactor(storage.clone(), config.compaction_interval);
    let app = build(storage, &config.api).await?;
    info!(addr = %config.listen, "API server ready");
    axum::serve(listener.tap_io(no_delay), app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServerError::Serve)
}

/// A kubeconfig that points kubectl at this server.
pub fn kubeconfig(server_url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ferrokube\n  cluster:\n    server: {server_url}\ncontexts:\n- name: ferrokube\n  context:\n    cluster: ferrokube\n    user: admin\n    namespace: default\ncurrent-context: ferrokube\nusers:\n- name: admin\n  user: {{}}\n"
    )
}

/// Turns Nagle's algorithm off on an accepted connection, as Go's net
/// package (hence kube-apiserver) does on every TCP connection: HTTP/2
/// frames and watch events are small writes, and with Nagle on one could
/// wait for the peer's delayed ACK of the previous one.
pub(crate) fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}
