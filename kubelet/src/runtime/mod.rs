//! The kubelet's seam over containerd: one typed method per gRPC call the
//! kubelet makes (content, images, snapshots, diff, containers, tasks), each
//! in our `ferrokube` containerd namespace, with `NotFound`/`AlreadyExists`
//! turned into values where the caller treats them as normal outcomes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use containerd_client::Client;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
    StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, GetImageRequest, Image, InfoRequest, ReadContentRequest,
    UpdateImageRequest, WriteAction, WriteContentRequest,
};
use containerd_client::tonic::{Code, Request, Status};
use containerd_client::types::{Descriptor, Mount};

mod exec;
mod exec_sync;
mod tasks;

pub use exec_sync::{ExecError, ExecOutcome};

/// Our containerd namespace, apart from anything else on the host.
pub const NAMESPACE: &str = "ferrokube";
pub const SNAPSHOTTER: &str = "overlayfs";
const RUNTIME_NAME: &str = "io.containerd.runc.v2";
const WRITE_CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot connect to containerd at {socket}: {source}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: containerd_client::tonic::transport::Error,
    },
    #[error("containerd {call} {object}: {status}")]
    Call {
        call: &'static str,
        object: String,
        #[source]
        status: Status,
    },
    #[error("cannot encode the runtime spec of {object}: {source}")]
    Spec {
        object: String,
        #[source]
        source: serde_json::Error,
    },
}

impl RuntimeError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuntimeError::Call { status, .. } if status.code() == Code::NotFound)
    }
}

/// runc's shim options; only `root` matters to us. Declared here because
/// containerd-client does not compile `runc/options/oci.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct RuncOptions {
    #[prost(string, tag = "7")]
    root: String,
}

impl prost::Name for RuncOptions {
    const NAME: &'static str = "Options";
    const PACKAGE: &'static str = "containerd.runc.v1";
}

/// Where a task's or exec process's stdio goes: FIFO paths (empty: none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskIo {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// A task's state as the kubelet needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskState {
    Running {
        pid: u32,
    },
    Exited {
        code: u32,
        at: Option<jiff::Timestamp>,
    },
    /// Created but never started, or unknown/paused: treated as not running.
    Other,
}

/// A containerd connection bound to our namespace.
#[derive(Clone)]
pub struct Runtime {
    client: std::sync::Arc<Client>,
    runc_root: Option<PathBuf>,
    /// The lease resources are created under, if any.
    lease: Option<String>,
}

fn call(call: &'static str, object: impl Into<String>) -> impl FnOnce(Status) -> RuntimeError {
    let object = object.into();
    move |status| RuntimeError::Call {
        call,
        object,
        status,
    }
}

/// A unique-enough lease suffix: pid and nanoseconds.
fn uuid_like() -> String {
    let now = jiff::Timestamp::now();
    format!("{}-{}", std::process::id(), now.as_nanosecond())
}

fn timestamp(t: Option<prost_types::Timestamp>) -> Option<jiff::Timestamp> {
    let t = t?;
    jiff::Timestamp::new(t.seconds, t.nanos).ok()
}

impl Runtime {
    pub async fn connect(
        socket: &Path,
        runc_root: Option<PathBuf>,
    ) -> Result<Runtime, RuntimeError> {
        let client = Client::from_path(socket)
            .await
            .map_err(|source| RuntimeError::Connect {
                socket: socket.to_path_buf(),
                source,
            })?;
        Ok(Runtime {
            client: std::sync::Arc::new(client),
            runc_root,
            lease: None,
        })
    }

    fn req<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert(
            "containerd-namespace",
            containerd_client::tonic::metadata::MetadataValue::from_static(NAMESPACE),
        );
        if let Some(lease) = self.lease.as_deref().and_then(|l| l.parse().ok()) {
            request.metadata_mut().insert("containerd-lease", lease);
        }
        request
    }

    /// A handle whose writes (content, snapshots) are held by a fresh
    /// lease, so containerd's garbage collector cannot take them before
    /// an image or container references them; end it with [`Runtime::end_lease`].
    /// The lease expires by itself after an hour should we die first.
    pub async fn begin_lease(&self, purpose: &str) -> Result<Runtime, RuntimeError> {
        let id = format!("ferrokube-{purpose}-{}", uuid_like());
        let expire = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
        let request = self.req(containerd_client::services::v1::CreateRequest {
            id: id.clone(),
            labels: HashMap::from([("containerd.io/gc.expire".to_string(), expire.to_string())]),
        });
        self.client
            .leases()
            .create(request)
            .await
            .map_err(call("lease create", id.clone()))?;
        Ok(Runtime {
            lease: Some(id),
            ..self.clone()
        })
    }

    /// Deletes this handle's lease; what it held stays only if referenced.
    pub async fn end_lease(&self) -> Result<(), RuntimeError> {
        let Some(id) = self.lease.clone() else {
            return Ok(());
        };
        let request = self.req(containerd_client::services::v1::DeleteRequest {
            id: id.clone(),
            ..Default::default()
        });
        match self.client.leases().delete(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(call("lease delete", id)(status)),
        }
    }

    /// `1.6.20~ds1`.
    pub async fn version(&self) -> Result<String, RuntimeError> {
        let response = self
            .client
            .version()
            .version(())
            .await
            .map_err(call("version", "daemon"))?;
        Ok(response.into_inner().version)
    }

    // ---- content ----

    pub async fn content_exists(&self, digest: &str) -> Result<bool, RuntimeError> {
        let request = self.req(InfoRequest {
            digest: digest.into(),
        });
        exists(
            self.client.content().info(request).await,
            "content info",
            digest,
        )
    }

    /// Writes a blob (chunked WRITE messages, then COMMIT with the expected
    /// digest, which containerd verifies). An existing blob is kept.
    pub async fn write_content(
        &self,
        digest: &str,
        data: Vec<u8>,
        labels: HashMap<String, String>,
    ) -> Result<(), RuntimeError> {
        if self.content_exists(digest).await? {
            return Ok(());
        }
        let total = data.len() as i64;
        let reference = format!("ferrokube-import-{digest}");
        let mut messages = Vec::new();
        let mut offset = 0usize;
        for chunk in data.chunks(WRITE_CHUNK) {
            messages.push(WriteContentRequest {
                action: WriteAction::Write as i32,
                r#ref: reference.clone(),
                total,
                offset: offset as i64,
                data: chunk.to_vec(),
                ..WriteContentRequest::default()
            });
            offset += chunk.len();
        }
        messages.push(WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: reference,
            total,
            offset: offset as i64,
            expected: digest.into(),
            labels,
            ..WriteContentRequest::default()
        });
        let request = self.req(futures::stream::iter(messages));
        let mut responses = match self.client.content().write(request).await {
            Ok(r) => r.into_inner(),
            Err(status) if status.code() == Code::AlreadyExists => return Ok(()),
            Err(status) => return Err(call("content write", digest)(status)),
        };
        loop {
            match responses.message().await {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                Err(status) if status.code() == Code::AlreadyExists => return Ok(()),
                Err(status) => return Err(call("content write", digest)(status)),
            }
        }
    }

    // ---- images ----

    /// Creates the image record, or points an existing one at `target`.
    pub async fn put_image(&self, name: &str, target: Descriptor) -> Result<(), RuntimeError> {
        let image = Image {
            name: name.into(),
            target: Some(target),
            ..Image::default()
        };
        let request = self.req(CreateImageRequest {
            image: Some(image.clone()),
            ..CreateImageRequest::default()
        });
        match self.client.images().create(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::AlreadyExists => {
                let request = self.req(UpdateImageRequest {
                    image: Some(image),
                    ..UpdateImageRequest::default()
                });
                self.client
                    .images()
                    .update(request)
                    .await
                    .map(|_| ())
                    .map_err(call("image update", name))
            }
            Err(status) => Err(call("image create", name)(status)),
        }
    }

    /// The image record, if containerd has it.
    pub async fn get_image(&self, name: &str) -> Result<Option<Image>, RuntimeError> {
        let request = self.req(GetImageRequest { name: name.into() });
        match self.client.images().get(request).await {
            Ok(r) => Ok(r.into_inner().image),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(call("image get", name)(status)),
        }
    }

    /// A whole blob from the content store.
    pub async fn read_content(&self, digest: &str) -> Result<Vec<u8>, RuntimeError> {
        let request = self.req(ReadContentRequest {
            digest: digest.into(),
            ..ReadContentRequest::default()
        });
        let mut stream = self
            .client
            .content()
            .read(request)
            .await
            .map_err(call("content read", digest))?
            .into_inner();
        let mut data = Vec::new();
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(call("content read", digest))?
        {
            data.extend_from_slice(&chunk.data);
        }
        Ok(data)
    }

    pub async fn label_image(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), RuntimeError> {
        let request = self.req(GetImageRequest { name: name.into() });
        let mut image = self
            .client
            .images()
            .get(request)
            .await
            .map_err(call("image get", name))?
            .into_inner()
            .image
            .unwrap_or_default();
        image.labels.extend(labels);
        let request = self.req(UpdateImageRequest {
            image: Some(image),
            ..UpdateImageRequest::default()
        });
        self.client
            .images()
            .update(request)
            .await
            .map(|_| ())
            .map_err(call("image update", name))
    }

    // ---- snapshots and diff ----

    pub async fn snapshot_exists(&self, key: &str) -> Result<bool, RuntimeError> {
        let request = self.req(StatSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.into(),
        });
        exists(
            self.client.snapshots().stat(request).await,
            "snapshot stat",
            key,
        )
    }

    pub async fn prepare_snapshot(
        &self,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>, RuntimeError> {
        let request = self.req(PrepareSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.into(),
            parent: parent.into(),
            labels,
        });
        match self.client.snapshots().prepare(request).await {
            Ok(r) => Ok(r.into_inner().mounts),
            // A kubelet that died between prepare and create left it behind.
            Err(status) if status.code() == Code::AlreadyExists => self.snapshot_mounts(key).await,
            Err(status) => Err(call("snapshot prepare", key)(status)),
        }
    }

    pub async fn snapshot_mounts(&self, key: &str) -> Result<Vec<Mount>, RuntimeError> {
        let request = self.req(MountsRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.into(),
        });
        self.client
            .snapshots()
            .mounts(request)
            .await
            .map(|r| r.into_inner().mounts)
            .map_err(call("snapshot mounts", key))
    }

    pub async fn commit_snapshot(&self, name: &str, key: &str) -> Result<(), RuntimeError> {
        let request = self.req(CommitSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            name: name.into(),
            key: key.into(),
            ..CommitSnapshotRequest::default()
        });
        match self.client.snapshots().commit(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::AlreadyExists => Ok(()),
            Err(status) => Err(call("snapshot commit", name)(status)),
        }
    }

    /// Removes a snapshot; a missing one is already removed.
    pub async fn remove_snapshot(&self, key: &str) -> Result<(), RuntimeError> {
        let request = self.req(RemoveSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.into(),
        });
        match self.client.snapshots().remove(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(call("snapshot remove", key)(status)),
        }
    }

    /// Unpacks a layer blob onto `mounts` (containerd's diff service).
    pub async fn apply_layer(
        &self,
        layer: Descriptor,
        mounts: Vec<Mount>,
    ) -> Result<(), RuntimeError> {
        let digest = layer.digest.clone();
        let request = self.req(ApplyRequest {
            diff: Some(layer),
            mounts,
            ..ApplyRequest::default()
        });
        self.client
            .diff()
            .apply(request)
            .await
            .map(|_| ())
            .map_err(call("diff apply", digest))
    }
}

/// The answer to an "is it there?" call: NotFound is `false`, not an error.
fn exists<T>(
    result: Result<T, Status>,
    what: &'static str,
    key: &str,
) -> Result<bool, RuntimeError> {
    match result {
        Ok(_) => Ok(true),
        Err(status) if status.code() == Code::NotFound => Ok(false),
        Err(status) => Err(call(what, key)(status)),
    }
}
