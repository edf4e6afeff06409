//! Container logs: the CRI log format ([`cri`]), the rotating file
//! writer ([`writer`]), the per-container copier from containerd's FIFOs
//! ([`copier`]) and the reader behind `/containerLogs` ([`reader`]).
//! Files live at `DATA_DIR/pods/<ns>_<name>_<uid>/<container>/<restart>.log`.

pub mod copier;
pub mod cri;
pub mod reader;
pub mod writer;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("container log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The log file of attempt `attempt` in a container's log directory.
pub fn log_path(container_dir: &std::path::Path, attempt: i32) -> PathBuf {
    container_dir.join(format!("{attempt}.log"))
}
