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
    if config.cluster_url.scheme_str() == Some("http") && config.proxy_url.is_none() {
        return h2c(config);
    }
    kube::Client::try_from(config).map_err(ClientError::Build)
}

/// A client speaking HTTP/2 with prior knowledge to a plain-http API
/// server, as client-go speaks HTTP/2 to kube-apiserver: every request
/// shares one connection. Over HTTP/1.1 each request in flight holds a
/// connection of its own, so a ReplicaSet's burst of creations first
/// opened a couple of hundred connections (its first burst of 500 took a
/// fifth longer than the second). The layers are kube's own; its default
/// stack offers HTTP/2 only through TLS.
fn h2c(config: kube::Config) -> Result<kube::Client, ClientError> {
    use kube::client::ConfigExt;
    use tower::ServiceBuilder;
    type BoxError = Box<dyn std::error::Error + Send + Sync>;

    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_connect_timeout(config.connect_timeout);
    // HTTP/2 writes many small frames; with Nagle on, one could wait for
    // the peer's delayed ACK (it did: creates fell from 5,500 to 1,500/s).
    http.set_nodelay(true);
    let hyper: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build(http);
    // kube's default stack, less TLS: the retry of 429/503/504 answers
    // with backoff included, so only the transport differs.
    let retry = config
        .default_retry
        .then(|| tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer().map_err(ClientError::Build)?)
        .layer(config.extra_headers_layer().map_err(ClientError::Build)?)
        .map_err(BoxError::from)
        .service(hyper);
    Ok(kube::Client::new(service, config.default_namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that speaks nothing but HTTP/2 (prior knowledge) and
    /// answers `/version` with the protocol the request came in on.
    async fn http2_only_server() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        |req: hyper::Request<hyper::body::Incoming>| async move {
                            let body = serde_json::json!({
                                "major": "1", "minor": "33",
                                "gitVersion": format!("{:?}", req.version()),
                                "gitCommit": "", "gitTreeState": "", "buildDate": "",
                                "goVersion": "", "compiler": "", "platform": "",
                            })
                            .to_string();
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from(body)),
                            ))
                        },
                    );
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_plain_http_cluster_is_spoken_to_over_http2() {
        let addr = http2_only_server().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{addr}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"
            ),
        )
        .expect("write kubeconfig");
        let client = connect(Some(&path)).await.expect("client");
        let version = client
            .apiserver_version()
            .await
            .expect("an HTTP/1.1 client gets no answer from this server");
        assert_eq!(version.git_version, "HTTP/2.0");
    }
}
