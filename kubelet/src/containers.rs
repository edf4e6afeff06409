//! One container run on containerd: the labels that identify it (so a
//! restarted kubelet finds and re-adopts its containers instead of
//! restarting them), starting an attempt (snapshot from the image, OCI
//! spec, container record, task), recording its exit in the labels, and
//! removing it with its task and snapshot.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use sha2::{Digest as _, Sha256};

use containerd_client::tonic::Code;

use crate::image::LocalImage;
use crate::runtime::{Runtime, RuntimeError, TaskState};
use crate::spec::{self, Placement, SpecError};
use crate::status::Terminated;

pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const LABEL_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const LABEL_STARTED_AT: &str = "io.ferrokube.startedAt";
pub const LABEL_EXIT_CODE: &str = "io.ferrokube.exitCode";
pub const LABEL_FINISHED_AT: &str = "io.ferrokube.finishedAt";
pub const LABEL_OOM_KILLED: &str = "io.ferrokube.oomKilled";

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Volume(#[from] crate::volumes::VolumeError),
    #[error(transparent)]
    Env(#[from] crate::env::EnvError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot write the pod's resolv.conf {path}: {source}")]
    ResolvConf {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Logs(#[from] crate::logs::LogError),
    /// The runtime could not start the process (a missing executable, a
    /// bad working directory): the runtime's message, as the CRI reports it.
    #[error("failed to create containerd task: {message}")]
    Start { message: String },
    #[error("cannot create log directory {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ContainerError {
    /// The waiting reason Kubernetes shows for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            ContainerError::Start { .. } => "RunContainerError",
            ContainerError::Spec(_)
            | ContainerError::Volume(_)
            | ContainerError::Env(_)
            | ContainerError::ResolvConf { .. } => "CreateContainerConfigError",
            ContainerError::Runtime(_) | ContainerError::Log { .. } | ContainerError::Logs(_) => {
                "CreateContainerError"
            }
        }
    }
}

/// The pod's identity, as labels carry it.
#[derive(Debug, Clone)]
pub struct PodRef {
    pub uid: String,
    pub namespace: String,
    pub name: String,
}

/// A deterministic containerd ID for attempt `attempt` of a container
/// (IDs must be short and `[A-Za-z0-9._-]`; pod UIDs plus names are not).
pub fn container_id(pod_uid: &str, container: &str, attempt: i32) -> String {
    let hash = Sha256::digest(format!("{pod_uid}/{container}/{attempt}").as_bytes());
    hex::encode(hash)
}

pub fn labels(pod: &PodRef, container: &str, attempt: i32) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_POD_UID.to_string(), pod.uid.clone()),
        (LABEL_POD_NAMESPACE.to_string(), pod.namespace.clone()),
        (LABEL_POD_NAME.to_string(), pod.name.clone()),
        (LABEL_CONTAINER_NAME.to_string(), container.to_string()),
        (LABEL_RESTART_COUNT.to_string(), attempt.to_string()),
    ])
}

/// A container of ours found in containerd.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub id: String,
    pub name: String,
    pub attempt: i32,
    pub started_at: Option<Timestamp>,
    pub state: FoundState,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FoundState {
    Running,
    Exited(Terminated),
    /// Never started, or its task vanished without a recorded exit.
    Unknown,
}

fn parse_time(labels: &HashMap<String, String>, key: &str) -> Option<Timestamp> {
    labels.get(key)?.parse().ok()
}

/// All containers of a pod with their states, oldest attempt first.
pub async fn find(rt: &Runtime, pod_uid: &str) -> Result<Vec<Found>, RuntimeError> {
    let mut found = Vec::new();
    for c in rt.list_containers(&[(LABEL_POD_UID, pod_uid)]).await? {
        let Some(name) = c.labels.get(LABEL_CONTAINER_NAME).cloned() else {
            continue;
        };
        let attempt = c
            .labels
            .get(LABEL_RESTART_COUNT)
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        let started_at = parse_time(&c.labels, LABEL_STARTED_AT);
        let recorded = c
            .labels
            .get(LABEL_EXIT_CODE)
            .and_then(|e| e.parse().ok())
            .map(|code| Terminated {
                id: c.id.clone(),
                exit_code: code,
                started_at,
                finished_at: parse_time(&c.labels, LABEL_FINISHED_AT),
                oom_killed: c.labels.get(LABEL_OOM_KILLED).is_some_and(|v| v == "true"),
            });
        let state = match (recorded, rt.task_state(&c.id).await?) {
            (Some(t), _) => FoundState::Exited(t),
            (None, Some(TaskState::Running { .. })) => FoundState::Running,
            (None, Some(TaskState::Exited { code, at })) => FoundState::Exited(Terminated {
                id: c.id.clone(),
                exit_code: code as i32,
                started_at,
                finished_at: at,
                oom_killed: false,
            }),
            (None, _) => FoundState::Unknown,
        };
        found.push(Found {
            id: c.id,
            name,
            attempt,
            started_at,
            state,
        });
    }
    found.sort_by_key(|f| f.attempt);
    Ok(found)
}

/// Starts attempt `attempt` of `container` from `local`, its image as the
/// image manager found it on the node; returns its ID and start time.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    rt: &Runtime,
    pod: &Pod,
    pod_ref: &PodRef,
    container: &Container,
    local: &LocalImage,
    attempt: i32,
    place: Placement,
    log_dir: PathBuf,
    logs: &Arc<crate::logs::copier::Registry>,
) -> Result<(String, Timestamp), ContainerError> {
    let id = create(
        rt, pod, pod_ref, container, local, attempt, place, log_dir, logs,
    )
    .await?;
    let started = start_created(rt, &id).await?;
    Ok((id, started))
}

/// Creates attempt `attempt` of `container` up to its task: snapshot,
/// container record, output FIFOs, and the task, whose process runc has
/// set up in the pod's namespaces and cgroup but not yet run (the pod's
/// network may still be wiring meanwhile). Returns the container ID;
/// [`start_created`] runs it.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    rt: &Runtime,
    pod: &Pod,
    pod_ref: &PodRef,
    container: &Container,
    local: &LocalImage,
    attempt: i32,
    place: Placement,
    log_dir: PathBuf,
    logs: &Arc<crate::logs::copier::Registry>,
) -> Result<String, ContainerError> {
    let id = container_id(&pod_ref.uid, &container.name, attempt);
    let place = Placement {
        cgroups_path: format!("{}/{id}", place.cgroups_path),
        ..place
    };
    let spec = spec::build(pod, container, &local.process, &place)?;
    let labels = labels(pod_ref, &container.name, attempt);
    let mounts = match create_record(rt, &id, local, &spec, labels.clone()).await {
        // A kubelet that died mid-start left this attempt behind.
        Err(RuntimeError::Call { status, .. }) if status.code() == Code::AlreadyExists => {
            remove(rt, &id).await?;
            create_record(rt, &id, local, &spec, labels).await?
        }
        created => created?,
    };
    std::fs::create_dir_all(&log_dir).map_err(|source| ContainerError::Log {
        path: log_dir.clone(),
        source,
    })?;
    let log = crate::logs::log_path(&log_dir, attempt);
    let (io, keepalive) = match logs.start(&id, log, container.stdin.unwrap_or(false)) {
        Ok(started) => started,
        Err(e) => {
            let _ = remove(rt, &id).await;
            return Err(e.into());
        }
    };
    let result = rt.create_task(&id, mounts, &io).await;
    // The shim holds its write ends now (or never will): EOF means exit.
    drop(keepalive);
    if let Err(e) = result {
        let _ = remove(rt, &id).await;
        return Err(start_error(e));
    }
    Ok(id)
}

/// The snapshot and the container record, under a lease until the record
/// references the snapshot; returns the rootfs mounts.
async fn create_record(
    rt: &Runtime,
    id: &str,
    local: &LocalImage,
    spec: &oci_spec::runtime::Spec,
    labels: HashMap<String, String>,
) -> Result<Vec<containerd_client::types::Mount>, RuntimeError> {
    let leased = rt.begin_lease("container").await?;
    let created = async {
        let mounts = leased
            .prepare_snapshot(id, &local.top_chain, HashMap::new())
            .await?;
        leased
            .create_container(id, &local.name, spec, labels)
            .await?;
        Ok::<_, RuntimeError>(mounts)
    }
    .await;
    if let Err(e) = leased.end_lease().await {
        tracing::warn!(error = %e, "cannot end container lease");
    }
    created
}

/// Runs a [`create`]d attempt's process; returns its start time. A
/// failure removes the attempt.
pub async fn start_created(rt: &Runtime, id: &str) -> Result<Timestamp, ContainerError> {
    let started = Timestamp::now();
    if let Err(e) = rt.start_task(id).await {
        let _ = remove(rt, id).await;
        return Err(start_error(e));
    }
    rt.label_container(
        id,
        HashMap::from([(LABEL_STARTED_AT.to_string(), started.to_string())]),
    )
    .await?;
    Ok(started)
}

/// The runtime's own message for a process it could not set up or run
/// (a missing executable, a bad working directory), as the CRI reports it.
fn start_error(e: RuntimeError) -> ContainerError {
    match e {
        RuntimeError::Call { status, .. } => ContainerError::Start {
            message: status.message().to_string(),
        },
        other => other.into(),
    }
}

/// Records an exit in the container's labels (so it survives the task's
/// deletion and a kubelet restart), then deletes the task to free its shim.
pub async fn record_exit(rt: &Runtime, t: &Terminated) -> Result<(), RuntimeError> {
    let mut labels = HashMap::from([(LABEL_EXIT_CODE.to_string(), t.exit_code.to_string())]);
    if let Some(at) = t.finished_at {
        labels.insert(LABEL_FINISHED_AT.to_string(), at.to_string());
    }
    if t.oom_killed {
        labels.insert(LABEL_OOM_KILLED.to_string(), "true".into());
    }
    rt.label_container(&t.id, labels).await?;
    rt.delete_task(&t.id).await
}

/// Removes a container's task, record and snapshot; all steps tolerate
/// "already gone".
pub async fn remove(rt: &Runtime, id: &str) -> Result<(), RuntimeError> {
    if let Some(TaskState::Running { .. }) = rt.task_state(id).await? {
        rt.kill_task(id, nix::sys::signal::Signal::SIGKILL).await?;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), rt.wait_task(id)).await;
    }
    rt.delete_task(id).await?;
    rt.delete_container(id).await?;
    rt.remove_snapshot(id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_are_stable_valid_and_distinct_per_attempt() {
        let a = container_id("uid-1", "app", 0);
        assert_eq!(a, container_id("uid-1", "app", 0));
        assert_ne!(a, container_id("uid-1", "app", 1));
        assert_ne!(a, container_id("uid-1", "sidecar", 0));
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn labels_identify_pod_container_and_attempt() {
        let pod = PodRef {
            uid: "u".into(),
            namespace: "ns".into(),
            name: "p".into(),
        };
        let l = labels(&pod, "c", 2);
        assert_eq!(l[LABEL_POD_UID], "u");
        assert_eq!(l[LABEL_POD_NAMESPACE], "ns");
        assert_eq!(l[LABEL_POD_NAME], "p");
        assert_eq!(l[LABEL_CONTAINER_NAME], "c");
        assert_eq!(l[LABEL_RESTART_COUNT], "2");
    }
}
