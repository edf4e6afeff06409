//! Extra processes in a running container (`kubectl exec`): containerd's
//! task Exec with a process spec derived from the container's own (its
//! env, user, cwd and capabilities, with the requested command and
//! terminal), then start, wait, resize, close stdin and delete.

use containerd_client::services::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, GetContainerRequest,
    ResizePtyRequest, StartRequest, WaitRequest,
};
use containerd_client::tonic::Code;

use super::{Runtime, RuntimeError, TaskIo, call};

impl Runtime {
    /// The OCI process of a container's spec, as a template for execs.
    pub async fn container_process(
        &self,
        id: &str,
    ) -> Result<oci_spec::runtime::Process, RuntimeError> {
        let request = self.req(GetContainerRequest { id: id.into() });
        let container = self
            .client
            .containers()
            .get(request)
            .await
            .map_err(call("container get", id))?
            .into_inner()
            .container
            .unwrap_or_default();
        let raw = container.spec.map(|s| s.value).unwrap_or_default();
        let spec: oci_spec::runtime::Spec =
            serde_json::from_slice(&raw).map_err(|source| RuntimeError::Spec {
                object: id.into(),
                source,
            })?;
        Ok(spec.process().clone().unwrap_or_default())
    }

    /// Creates and starts exec process `exec_id` in container `id`.
    pub async fn exec(
        &self,
        id: &str,
        exec_id: &str,
        process: &oci_spec::runtime::Process,
        io: &TaskIo,
    ) -> Result<(), RuntimeError> {
        let spec = serde_json::to_vec(process).map_err(|source| RuntimeError::Spec {
            object: exec_id.into(),
            source,
        })?;
        let request = self.req(ExecProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            stdin: io.stdin.clone(),
            stdout: io.stdout.clone(),
            stderr: io.stderr.clone(),
            terminal: io.terminal,
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: spec,
            }),
        });
        self.client
            .tasks()
            .exec(request)
            .await
            .map_err(call("task exec", exec_id))?;
        let request = self.req(StartRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        });
        self.client
            .tasks()
            .start(request)
            .await
            .map(|_| ())
            .map_err(call("exec start", exec_id))
    }

    /// Blocks until the exec process exits; returns its exit status.
    pub async fn wait_exec(&self, id: &str, exec_id: &str) -> Result<u32, RuntimeError> {
        let request = self.req(WaitRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        });
        self.client
            .tasks()
            .wait(request)
            .await
            .map(|r| r.into_inner().exit_status)
            .map_err(call("exec wait", exec_id))
    }

    /// Resizes the exec process's terminal (columns × rows).
    pub async fn resize_exec(
        &self,
        id: &str,
        exec_id: &str,
        width: u32,
        height: u32,
    ) -> Result<(), RuntimeError> {
        let request = self.req(ResizePtyRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            width,
            height,
        });
        self.client
            .tasks()
            .resize_pty(request)
            .await
            .map(|_| ())
            .map_err(call("exec resize", exec_id))
    }

    /// Closes the exec process's stdin (the shim's side of the FIFO).
    pub async fn close_exec_stdin(&self, id: &str, exec_id: &str) -> Result<(), RuntimeError> {
        let request = self.req(CloseIoRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            stdin: true,
        });
        match self.client.tasks().close_io(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(call("exec close stdin", exec_id)(status)),
        }
    }

    /// Removes an exited exec process; a missing one is already gone.
    pub async fn delete_exec(&self, id: &str, exec_id: &str) -> Result<(), RuntimeError> {
        let request = self.req(DeleteProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        });
        match self.client.tasks().delete_process(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(call("exec delete", exec_id)(status)),
        }
    }
}
