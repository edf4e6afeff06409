//! The client layer of ferrokube: every component (scheduler, controllers,
//! kubelet, proxy, CLI) talks to the cluster only through the API server,
//! with the `kube` client built here and informers from `kube-runtime`.

use std::path::Path;

pub use kube;

pub mod lean;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot infer a cluster configuration: {0}")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot build the client: {0}")]
    Build(#[source] kube::Error),
}

/// A client for the cluster in `kubeconfig`, or, without one, the usual
/// inference (`$KUBECONFIG`, `~/.kube/config`, in-cluster service account).
pub async fn connect(kubeconfig: Option<&Path>) -> Result<kube::Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                ClientError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                }
            })?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|source| ClientError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?
        }
        None => kube::Config::infer().await.map_err(ClientError::Infer)?,
    };
    kube::Client::try_from(config).map_err(ClientError::Build)
}
