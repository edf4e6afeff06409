//! The ingress controller: serves HTTP on the node and routes requests by
//! host and path to the endpoints of the Services that the Ingresses of its
//! IngressClass name, reloading routes as the objects change.

pub mod feed;
pub mod proxy;
pub mod routes;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use k8s_openapi::api::networking::v1::IngressClass;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::net::TcpListener;

pub use routes::{ClassFilter, DEFAULT_CLASS_ANNOTATION};

/// The `spec.controller` of the IngressClasses this controller serves.
pub const CONTROLLER: &str = "ferrokube.io/ingress-controller";

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// The IngressClass to create for this controller (`ferrokube`).
    pub class_name: String,
    /// Mark that class as the cluster's default.
    pub default_class: bool,
    /// Written to our Ingresses' `status.loadBalancer.ingress`.
    pub node_ip: Option<IpAddr>,
}

impl Config {
    pub fn new(listen: SocketAddr) -> Config {
        Config {
            listen,
            class_name: "ferrokube".into(),
            default_class: true,
            node_ip: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Applies our IngressClass, retrying while the API server starts.
async fn register_class(client: Client, config: Config) {
    let mut annotations = serde_json::Map::new();
    if config.default_class {
        annotations.insert(DEFAULT_CLASS_ANNOTATION.into(), json!("true"));
    }
    let class = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": config.class_name, "annotations": annotations},
        "spec": {"controller": CONTROLLER},
    });
    let api = Api::<IngressClass>::all(client);
    let params = PatchParams::apply("ferrokube-ingress").force();
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        match api.patch(&config.class_name, &params, &Patch::Apply(&class)).await {
            Ok(_) => return,
            Err(e) => tracing::info!(error = %e, "IngressClass not registered yet"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(10));
    }
}

/// Binds `config.listen` and serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    client: Client,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
    let (generation, _) = tokio::sync::watch::channel(0);
    run_on(listener, config, client, generation, shutdown).await;
    Ok(())
}

/// Serves on a bound listener; `generation` counts routing tables published.
pub async fn run_on(
    listener: TcpListener,
    config: Config,
    client: Client,
    generation: tokio::sync::watch::Sender<u64>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tracing::info!(addr = ?listener.local_addr().ok(), class = %config.class_name, "ingress serving");
    let table: proxy::SharedTable = Arc::new(ArcSwap::from_pointee(routes::Table::default()));
    let filter = ClassFilter {
        controller: CONTROLLER.into(),
    };
    let register = tokio::spawn(register_class(client.clone(), config.clone()));
    tokio::select! {
        _ = feed::run(client, table.clone(), filter, config.node_ip, generation) => {}
        _ = proxy::serve(listener, table, shutdown) => {}
    }
    register.abort();
}
