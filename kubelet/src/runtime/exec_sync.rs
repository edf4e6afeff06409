//! Processes run inside a running container (containerd task Exec), the
//! way the kubelet runs exec probes and exec lifecycle hooks: the
//! container's own process spec (env, cwd, user, capabilities) with the
//! argv replaced, stdout and stderr sent to a scratch file the runc shim
//! appends to, waited on with an optional timeout, then deleted (which
//! also waits for the shim to finish copying the output).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use containerd_client::services::v1::{
    DeleteProcessRequest, ExecProcessRequest, GetContainerRequest, KillRequest, StartRequest,
    WaitRequest,
};
use containerd_client::tonic::Code;

use super::{Runtime, RuntimeError, call};

/// Kubernetes keeps at most this much of a probe's or hook's output.
pub const MAX_OUTPUT: usize = 10 * 1024;

/// How a process run in a container ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecOutcome {
    Exited { code: u32, output: String },
    TimedOut,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("container {id} has no readable runtime spec: {reason}")]
    Spec { id: String, reason: String },
    #[error("exec scratch file {path}: {source}")]
    Scratch {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

static NEXT_EXEC: AtomicU64 = AtomicU64::new(0);

/// A process ID unique in this kubelet (containerd IDs: `[A-Za-z0-9_.-]`, ≤ 76).
fn exec_id() -> String {
    let n = NEXT_EXEC.fetch_add(1, Ordering::Relaxed);
    format!("fk-exec-{}-{n}", std::process::id())
}

impl Runtime {
    /// The OCI spec a container was created with.
    pub async fn container_spec(&self, id: &str) -> Result<oci_spec::runtime::Spec, ExecError> {
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
        let spec = container.spec.ok_or_else(|| ExecError::Spec {
            id: id.into(),
            reason: "no spec".into(),
        })?;
        serde_json::from_slice(&spec.value).map_err(|e| ExecError::Spec {
            id: id.into(),
            reason: e.to_string(),
        })
    }

    /// Runs `argv` in container `id` and returns its exit code and
    /// combined output (at most [`MAX_OUTPUT`] bytes); past `timeout` the
    /// process is killed and [`ExecOutcome::TimedOut`] returned.
    /// `scratch_dir` holds the output file while the process runs.
    pub async fn exec_sync(
        &self,
        id: &str,
        argv: &[String],
        timeout: Option<Duration>,
        scratch_dir: &Path,
    ) -> Result<ExecOutcome, ExecError> {
        let spec = self.container_spec(id).await?;
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(argv.to_vec()));
        process.set_terminal(Some(false));
        let process_json = serde_json::to_vec(&process).map_err(|e| ExecError::Spec {
            id: id.into(),
            reason: e.to_string(),
        })?;
        let scratch = |source| ExecError::Scratch {
            path: scratch_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(scratch_dir).map_err(scratch)?;
        let exec_id = exec_id();
        let output_path = scratch_dir.join(&exec_id);
        let uri = format!("file://{}", output_path.display());
        let request = self.req(ExecProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.clone(),
            stdout: uri.clone(),
            stderr: uri,
            terminal: false,
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: process_json,
            }),
            ..ExecProcessRequest::default()
        });
        let result = async {
            self.client
                .tasks()
                .exec(request)
                .await
                .map_err(call("task exec", id))?;
            let request = self.req(StartRequest {
                container_id: id.into(),
                exec_id: exec_id.clone(),
            });
            self.client
                .tasks()
                .start(request)
                .await
                .map_err(call("exec start", id))?;
            let wait = self.wait_process(id, &exec_id);
            match timeout {
                None => wait.await.map(Some),
                Some(limit) => match tokio::time::timeout(limit, wait).await {
                    Ok(waited) => waited.map(Some),
                    Err(_) => {
                        self.kill_process(id, &exec_id).await?;
                        let _ = tokio::time::timeout(
                            Duration::from_secs(5),
                            self.wait_process(id, &exec_id),
                        )
                        .await;
                        Ok(None)
                    }
                },
            }
        }
        .await;
        if let Err(e) = self.delete_process(id, &exec_id).await {
            tracing::warn!(container = %id, exec = %exec_id, error = %e, "cannot delete exec process");
        }
        let output = read_output(&output_path);
        let _ = std::fs::remove_file(&output_path);
        Ok(match result? {
            Some(code) => ExecOutcome::Exited { code, output },
            None => ExecOutcome::TimedOut,
        })
    }

    async fn wait_process(&self, id: &str, exec_id: &str) -> Result<u32, RuntimeError> {
        let request = self.req(WaitRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        });
        self.client
            .tasks()
            .wait(request)
            .await
            .map(|r| r.into_inner().exit_status)
            .map_err(call("exec wait", id))
    }

    async fn kill_process(&self, id: &str, exec_id: &str) -> Result<(), RuntimeError> {
        let request = self.req(KillRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            signal: nix::sys::signal::Signal::SIGKILL as u32,
            all: false,
        });
        match self.client.tasks().kill(request).await {
            Ok(_) => Ok(()),
            Err(s) if matches!(s.code(), Code::NotFound | Code::FailedPrecondition) => Ok(()),
            Err(s) => Err(call("exec kill", id)(s)),
        }
    }

    async fn delete_process(&self, id: &str, exec_id: &str) -> Result<(), RuntimeError> {
        let request = self.req(DeleteProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        });
        match self.client.tasks().delete_process(request).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(call("exec delete", id)(s)),
        }
    }
}

/// The output, cut to [`MAX_OUTPUT`] bytes on a character boundary.
fn read_output(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let cut = &bytes[..bytes.len().min(MAX_OUTPUT)];
    String::from_utf8_lossy(cut).into_owned()
}
