//! Containers and tasks: the container record (OCI spec and runc options),
//! and its task's lifecycle: create with the rootfs mounts and stdio FIFOs,
//! start, state, wait, kill, delete.

use std::collections::HashMap;

use containerd_client::services::v1::container::Runtime as ContainerRuntime;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, GetRequest, KillRequest, ListContainersRequest, StartRequest,
    UpdateContainerRequest, WaitRequest,
};
use containerd_client::to_any;
use containerd_client::tonic::Code;
use containerd_client::types::Mount;
use containerd_client::types::v1::Status as ProcessStatus;

use super::{
    RUNTIME_NAME, RuncOptions, Runtime, RuntimeError, SNAPSHOTTER, TaskIo, TaskState, call,
    timestamp,
};

impl Runtime {
    // ---- containers ----

    /// Creates a container record with its OCI spec and runc options.
    pub async fn create_container(
        &self,
        id: &str,
        image: &str,
        spec: &oci_spec::runtime::Spec,
        labels: HashMap<String, String>,
    ) -> Result<(), RuntimeError> {
        let spec_json = serde_json::to_vec(spec).map_err(|source| RuntimeError::Spec {
            object: id.into(),
            source,
        })?;
        let options = self.runc_root.as_ref().map(|root| {
            to_any(&RuncOptions {
                root: root.display().to_string(),
            })
        });
        let container = Container {
            id: id.into(),
            labels,
            image: image.into(),
            runtime: Some(ContainerRuntime {
                name: RUNTIME_NAME.into(),
                options,
            }),
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                value: spec_json,
            }),
            snapshotter: SNAPSHOTTER.into(),
            snapshot_key: id.into(),
            ..Container::default()
        };
        let request = self.req(CreateContainerRequest {
            container: Some(container),
        });
        self.client
            .containers()
            .create(request)
            .await
            .map(|_| ())
            .map_err(call("container create", id))
    }

    /// Containers whose labels match all `label=value` pairs.
    pub async fn list_containers(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<Container>, RuntimeError> {
        let filter = labels
            .iter()
            .map(|(k, v)| format!("labels.\"{k}\"=={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let request = self.req(ListContainersRequest {
            filters: if filter.is_empty() {
                vec![]
            } else {
                vec![filter]
            },
        });
        self.client
            .containers()
            .list(request)
            .await
            .map(|r| r.into_inner().containers)
            .map_err(call("container list", "all"))
    }

    pub async fn delete_container(&self, id: &str) -> Result<(), RuntimeError> {
        let request = self.req(DeleteContainerRequest { id: id.into() });
        match self.client.containers().delete(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(call("container delete", id)(status)),
        }
    }

    /// Sets `labels` on a container, leaving its other labels alone: one
    /// update whose field paths name each key (`labels.<key>`), so
    /// concurrent writers of different keys never lose each other's.
    pub async fn label_container(
        &self,
        id: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), RuntimeError> {
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        let request = self.req(UpdateContainerRequest {
            container: Some(Container {
                id: id.into(),
                labels,
                ..Container::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths }),
        });
        self.client
            .containers()
            .update(request)
            .await
            .map(|_| ())
            .map_err(call("container update", id))
    }

    // ---- tasks ----

    /// Creates the container's task with its stdio on `io`'s FIFOs (the
    /// shim opens them): runc sets the process up, stopped before it runs
    /// the container's command. Returns the pid.
    pub async fn create_task(
        &self,
        id: &str,
        rootfs: Vec<Mount>,
        io: &TaskIo,
    ) -> Result<u32, RuntimeError> {
        let request = self.req(CreateTaskRequest {
            container_id: id.into(),
            rootfs,
            stdin: io.stdin.clone(),
            stdout: io.stdout.clone(),
            stderr: io.stderr.clone(),
            terminal: io.terminal,
            ..CreateTaskRequest::default()
        });
        self.client
            .tasks()
            .create(request)
            .await
            .map(|r| r.into_inner().pid)
            .map_err(call("task create", id))
    }

    /// Starts a created task's process. Returns the pid.
    pub async fn start_task(&self, id: &str) -> Result<u32, RuntimeError> {
        let request = self.req(StartRequest {
            container_id: id.into(),
            ..StartRequest::default()
        });
        self.client
            .tasks()
            .start(request)
            .await
            .map(|r| r.into_inner().pid)
            .map_err(call("task start", id))
    }

    /// The task's state, or `None` if the container has no task.
    pub async fn task_state(&self, id: &str) -> Result<Option<TaskState>, RuntimeError> {
        let request = self.req(GetRequest {
            container_id: id.into(),
            ..GetRequest::default()
        });
        let process = match self.client.tasks().get(request).await {
            Ok(r) => r.into_inner().process.unwrap_or_default(),
            Err(status) if status.code() == Code::NotFound => return Ok(None),
            Err(status) => return Err(call("task get", id)(status)),
        };
        Ok(Some(match ProcessStatus::try_from(process.status) {
            Ok(ProcessStatus::Running) => TaskState::Running { pid: process.pid },
            Ok(ProcessStatus::Stopped) => TaskState::Exited {
                code: process.exit_status,
                at: timestamp(process.exited_at),
            },
            _ => TaskState::Other,
        }))
    }

    /// Blocks until the task exits; returns its exit status and time.
    pub async fn wait_task(
        &self,
        id: &str,
    ) -> Result<(u32, Option<jiff::Timestamp>), RuntimeError> {
        let request = self.req(WaitRequest {
            container_id: id.into(),
            ..WaitRequest::default()
        });
        let response = self
            .client
            .tasks()
            .wait(request)
            .await
            .map_err(call("task wait", id))?
            .into_inner();
        Ok((response.exit_status, timestamp(response.exited_at)))
    }

    /// Signals every process of the task; a task already gone is fine.
    pub async fn kill_task(
        &self,
        id: &str,
        signal: nix::sys::signal::Signal,
    ) -> Result<(), RuntimeError> {
        let request = self.req(KillRequest {
            container_id: id.into(),
            signal: signal as u32,
            all: true,
            ..KillRequest::default()
        });
        match self.client.tasks().kill(request).await {
            Ok(_) => Ok(()),
            Err(status) if matches!(status.code(), Code::NotFound | Code::FailedPrecondition) => {
                Ok(())
            }
            Err(status) => Err(call("task kill", id)(status)),
        }
    }

    /// Deletes an exited task; a missing one is already deleted.
    pub async fn delete_task(&self, id: &str) -> Result<(), RuntimeError> {
        let request = self.req(DeleteTaskRequest {
            container_id: id.into(),
        });
        match self.client.tasks().delete(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(call("task delete", id)(status)),
        }
    }
}
