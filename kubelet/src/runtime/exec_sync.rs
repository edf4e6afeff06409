//! Processes run inside a running container (containerd task Exec), the
//! way the kubelet runs exec probes and exec lifecycle hooks: the
//! container's own process spec (env, cwd, user, capabilities) with the
//! argv replaced, waited on with an optional timeout, then deleted.
//! stdout and stderr go to a FIFO we read until the shim closes it, as
//! containerd's own `cio` does: a `file://` destination loses output now
//! and then, since the shim may still be copying when the process is
//! reported exited. The FIFO is opened (non-blocking) before the exec, as
//! the shim opens its end while starting the process and gives up if no
//! reader is there.

use std::path::{Path, PathBuf};
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
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("exec output FIFO {path}: {source}")]
    Fifo {
        path: PathBuf,
        #[source]
        source: nix::Error,
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
        let fifo = scratch_dir.join(&exec_id);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).map_err(|source| {
            ExecError::Fifo {
                path: fifo.clone(),
                source,
            }
        })?;
        let receiver = tokio::net::unix::pipe::OpenOptions::new()
            .open_receiver(&fifo)
            .map_err(|source| ExecError::Scratch {
                path: fifo.clone(),
                source,
            });
        let receiver = match receiver {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&fifo);
                return Err(e);
            }
        };
        let mut reader = None;
        let path = fifo.display().to_string();
        let request = self.req(ExecProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.clone(),
            stdout: path.clone(),
            stderr: path,
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
            // The shim holds the FIFO's write end from here on, so an
            // end of file now means it has copied everything.
            reader = Some(tokio::spawn(read_all(receiver)));
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
        let output = match reader {
            Some(reader) => collect(reader).await,
            None => String::new(),
        };
        let _ = std::fs::remove_file(&fifo);
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

/// Reads the FIFO until every writer has closed it, keeping the first
/// [`MAX_OUTPUT`] bytes (and draining the rest, so the shim never blocks).
async fn read_all(mut receiver: tokio::net::unix::pipe::Receiver) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut kept = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match receiver.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    kept
}

/// The output read, waiting a little for the shim to close the FIFO
/// (a process that left children holding its stdout would keep it open).
async fn collect(mut reader: tokio::task::JoinHandle<Vec<u8>>) -> String {
    let bytes = match tokio::time::timeout(Duration::from_secs(5), &mut reader).await {
        Ok(read) => read.unwrap_or_default(),
        Err(_) => {
            reader.abort();
            Vec::new()
        }
    };
    String::from_utf8_lossy(&bytes).into_owned()
}
