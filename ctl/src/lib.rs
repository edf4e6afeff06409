//! fkctl: the ferrokube command line. A few kubectl verbs (`apply -f`
//! with server-side apply, `get` printing the server's tables, `delete`)
//! on the `kube` crate's dynamic API, plus `explain-placement`, which
//! shows why the scheduler put a pod where it did — or nowhere.

pub mod apply;
pub mod discovery;
pub mod explain;
pub mod get;
pub mod table;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Client(#[from] client::ClientError),
    /// The server refused the request: printed as kubectl prints it.
    #[error("Error from server ({reason}): {message}")]
    Server { reason: String, message: String },
    #[error("the server doesn't have a resource type {0:?}")]
    UnknownResource(String),
    #[error("cannot reach the API server: {0}")]
    Transport(#[source] kube::Error),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: document {index}: {message}")]
    Manifest {
        path: String,
        index: usize,
        message: String,
    },
    #[error("cannot decode the server's answer: {0}")]
    Decode(#[source] serde_json::Error),
    #[error(
        "cannot find the scheduler's explanations endpoint: {0} (is the scheduler running? pass --scheduler URL to name it)"
    )]
    NoScheduler(String),
    #[error("cannot query the scheduler at {url}: {source}")]
    Scheduler {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{0}")]
    NotFound(String),
}

impl From<kube::Error> for CtlError {
    fn from(e: kube::Error) -> CtlError {
        match e {
            kube::Error::Api(s) => CtlError::Server {
                reason: if s.reason.is_empty() {
                    "Unknown".into()
                } else {
                    s.reason.clone()
                },
                message: s.message.clone(),
            },
            other => CtlError::Transport(other),
        }
    }
}
