//! An in-process API server on a loopback port over a fresh embedded store,
//! for the tests of components that talk to the API (controllers,
//! scheduler, kubelet): real HTTP, real storage, no mocks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::serve::ListenerExt;

use crate::server::{ApiOptions, ServerError, build, kubeconfig};
use crate::storage::{EmbeddedStore, Storage};

/// A running test API server; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// A kubeconfig file pointing at the server.
    pub kubeconfig: PathBuf,
    /// The service account signing key (PKCS#8 PEM), to verify tokens.
    pub service_account_key: PathBuf,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum TestServerError {
    #[error("test server I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

impl TestServer {
    /// Starts a server; call from within a tokio runtime.
    pub async fn start() -> Result<TestServer, TestServerError> {
        let dir = tempfile::tempdir()?;
        let storage: Arc<dyn Storage> = Arc::new(EmbeddedStore::open(&dir.path().join("db"))?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let options = ApiOptions {
            advertise: addr,
            pki_dir: Some(dir.path().join("pki")),
            ..ApiOptions::default()
        };
        let app = build(storage, &options).await?;
        seed_service_account_objects(&app).await?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener.tap_io(crate::server::no_delay), app).await;
        });
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_text(addr))?;
        Ok(TestServer {
            addr,
            kubeconfig,
            service_account_key: dir
                .path()
                .join("pki")
                .join(crate::server::SERVICE_ACCOUNT_KEY),
            _dir: dir,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// What the controller-manager's serviceaccounts and root-ca-cert-publisher
/// controllers keep in every namespace, created in `default` so that pods
/// of component tests (which run no controller-manager) get their service
/// account token volume: the `default` ServiceAccount and the (empty, the
/// server speaks plain HTTP) `kube-root-ca.crt` bundle.
async fn seed_service_account_objects(app: &axum::Router) -> Result<(), TestServerError> {
    use tower::ServiceExt as _;
    let objects = [
        (
            "serviceaccounts",
            r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default"}}"#,
        ),
        (
            "configmaps",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kube-root-ca.crt"},"data":{"ca.crt":""}}"#,
        ),
    ];
    for (plural, body) in objects {
        let request = http::Request::post(format!("/api/v1/namespaces/default/{plural}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let response = app
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let code = response.status().as_u16();
        if code != 201 && code != 409 {
            return Err(std::io::Error::other(format!("cannot seed {plural}: HTTP {code}")).into());
        }
    }
    Ok(())
}

fn kubeconfig_text(addr: SocketAddr) -> String {
    kubeconfig(&format!("http://{addr}"))
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies an embedded store's directory file by file. Taken while no write
/// is in progress, the copy is the image a crash at that moment leaves on
/// disk (the store's crash tests and `bench recovery` open such images).
pub fn copy_store_files(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}
